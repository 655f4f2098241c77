import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';

/**
 * Builds dist/ once before the suite so that CLI tests run the real `bin/trustrun.js`, exactly
 * as a user would. tsc emits even when it reports type errors; those fail the separate
 * typecheck step, so here they are only shown.
 */
export default function setup(): () => void {
  const teardown = (): void => {
    const home = process.env.TRUSTRUN_HOME;
    if (home?.includes('trustrun-test-home-')) rmSync(home, { recursive: true, force: true });
  };
  if (process.env.TRUSTRUN_SKIP_BUILD) return teardown;
  // The package's own build script: tsc plus the web UI's static files.
  const r = spawnSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' });
  if (r.status !== 0) console.warn('tsc reported errors; dist/ was emitted anyway');
  return teardown;
}
