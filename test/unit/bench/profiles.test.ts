import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { monotonicUs } from '../../../bench/lib/flame.js';
import { describeMachine } from '../../../bench/lib/machine.js';
import { Profiles } from '../../../bench/lib/profiles.js';

const dir = mkdtempSync(join(tmpdir(), 'trustrun-profiles-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const run = {
  date: '2026-11-27 08:00:00 UTC',
  command: 'npm run bench -- --profile',
  machine: describeMachine(),
  rps: () => 1234,
};

describe('Profiles', () => {
  it('profiles a program started through `node` on PATH and draws the marked window', () => {
    const profiles = new Profiles(join(dir, 'work'));
    const start = profiles.start('trustrun-headers');
    const shim = join(start.env.PATH.split(':')[0]!, 'node');
    expect(statSync(shim).mode & 0o111).not.toBe(0);
    // A launcher-like start: `node` found on PATH, with flags of its own after the shim's.
    const from = monotonicUs();
    const out = execFileSync(
      'sh',
      [
        '-c',
        'exec node --expose-gc -e "function spin(){const t=Date.now();while(Date.now()-t<150);} spin(); console.log(JSON.stringify(process.execArgv))"',
      ],
      { env: { ...process.env, PATH: start.env.PATH }, encoding: 'utf8' },
    );
    const to = monotonicUs();
    const execArgv = JSON.parse(out) as string[];
    expect(execArgv).toContain('--cpu-prof');
    expect(execArgv).toContain('--expose-gc');
    profiles.mark('trustrun-headers', '1k-c32', { fromUs: from, toUs: to });
    profiles.mark('squid', '1k-c32', { fromUs: from, toUs: to }); // not profiled: ignored
    const { graphs, missing } = profiles.write(join(dir, 'out'), run);
    expect(missing).toEqual([]);
    expect(graphs.map((g) => g.file)).toEqual(['trustrun-headers-1k-c32.svg']);
    const svg = readFileSync(join(dir, 'out', 'trustrun-headers-1k-c32.svg'), 'utf8');
    expect(svg).toMatch(/<title>spin \[eval\]:1: [\d.]+ ms/);
    expect(svg).toContain('1234 req/s under the profiler');
    const index = readFileSync(join(dir, 'out', 'README.md'), 'utf8');
    expect(index).toContain('`npm run bench -- --profile`');
    expect(index).toContain('[trustrun-headers-1k-c32.svg](trustrun-headers-1k-c32.svg)');
    expect(readdirSync(join(dir, 'out')).sort()).toEqual([
      'README.md',
      'trustrun-headers-1k-c32.svg',
    ]);
  });

  it('reports a configuration that left no profile, and writes nothing when none ran', () => {
    const gone = new Profiles(join(dir, 'gone'));
    gone.start('trustrun-full');
    gone.mark('trustrun-full', '1m-c32', { fromUs: 0, toUs: 1 });
    expect(gone.write(join(dir, 'gone-out'), run)).toEqual({
      graphs: [],
      missing: ['trustrun-full'],
    });
    expect(readFileSync(join(dir, 'gone-out', 'README.md'), 'utf8')).toContain(
      'No profile was written by: trustrun-full',
    );
    const none = new Profiles(join(dir, 'none'));
    expect(none.write(join(dir, 'none-out'), run)).toEqual({ graphs: [], missing: [] });
    expect(existsSync(join(dir, 'none-out'))).toBe(false);
  });
});
