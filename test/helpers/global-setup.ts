import { execFileSync } from 'node:child_process';

/**
 * Builds dist/ once before the suite so that CLI tests run the real `bin/trustrun.js`, exactly
 * as a user would.
 */
export default function setup(): void {
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], {
    stdio: 'inherit',
  });
}
