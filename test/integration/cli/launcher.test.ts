import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CLI, run } from '../../helpers/proc.js';

/**
 * bin/trustrun.js run as a program, as the installed `trustrun` command is: its sh preamble gives
 * the process its memory settings, and programs started by `trustrun run` get the caller's
 * environment back.
 */
describe('the trustrun launcher', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'trustrun-launcher-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function baseEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env, TRUSTRUN_HOME: dir };
    delete env.MALLOC_ARENA_MAX;
    delete env.MALLOC_MMAP_THRESHOLD_;
    delete env.TRUSTRUN_LAUNCHER;
    delete env.NODE_OPTIONS;
    return { ...env, ...extra };
  }

  it.runIf(process.platform === 'linux')(
    'starts node with the young generation capped, the collector exposed and malloc tuned',
    async () => {
      const child = spawn(CLI, ['proxy', '--port', '0', '--json', '--data-dir', dir], {
        env: baseEnv(),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      try {
        await new Promise<void>((resolve, reject) => {
          let out = '';
          child.stdout!.on('data', (d: Buffer) => {
            out += d.toString();
            if (out.includes('"listen"')) resolve();
          });
          child.once('exit', (code) => reject(new Error(`proxy exited with ${code}`)));
        });
        const cmdline = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0');
        expect(cmdline).toContain('--max-semi-space-size=2');
        expect(cmdline).toContain('--expose-gc'); // for the proxy's Reclaimer
        const environ = readFileSync(`/proc/${child.pid}/environ`, 'utf8').split('\0');
        expect(environ).toContain('MALLOC_ARENA_MAX=2');
        expect(environ).toContain('MALLOC_MMAP_THRESHOLD_=131072');
      } finally {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
    },
  );

  const probe =
    'echo "arena=${MALLOC_ARENA_MAX-unset} mmap=${MALLOC_MMAP_THRESHOLD_-unset} launcher=${TRUSTRUN_LAUNCHER-unset}"';

  it('gives the program under `trustrun run` the caller environment back', async () => {
    const r = await run(CLI, ['run', '--level', 'metadata', '--', 'sh', '-c', probe], {
      env: baseEnv(),
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('arena=unset mmap=unset launcher=unset');

    const set = await run(CLI, ['run', '--level', 'metadata', '--', 'sh', '-c', probe], {
      env: baseEnv({ MALLOC_ARENA_MAX: '8', MALLOC_MMAP_THRESHOLD_: '65536' }),
    });
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout.trim()).toBe('arena=8 mmap=65536 launcher=unset');
  });
});
