import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineConfig } from 'vitest/config';

// No test may read or write the user's own data directory: commands run without --data-dir
// land in this throw-away one (removed by the global teardown).
const home = mkdtempSync(join(tmpdir(), 'trustrun-test-home-'));
process.env.TRUSTRUN_HOME = home;
process.env.XDG_DATA_HOME = join(home, 'xdg');

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'src/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    globalSetup: ['test/helpers/global-setup.ts'],
    env: { TRUSTRUN_HOME: home, XDG_DATA_HOME: join(home, 'xdg') },
  },
});
