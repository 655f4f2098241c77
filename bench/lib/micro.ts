/**
 * The micro-benchmarks other parts of the project keep in bench/ (policy, store, scan, minting,
 * monitor). Each
 * is run as `node --import tsx bench/NAME.ts --json [args]`; one that is missing, fails or
 * prints no JSON is reported as skipped with the reason.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BENCH_DIR, ROOT, track } from './children.js';

export type MicroResult =
  | { name: string; ok: true; args: string[]; seconds: number; data: Record<string, unknown> }
  | { name: string; ok: false; args: string[]; reason: string };

export async function runMicro(
  name: string,
  args: string[],
  timeoutMs: number,
): Promise<MicroResult> {
  const file = join(BENCH_DIR, `${name}.ts`);
  if (!existsSync(file))
    return { name, ok: false, args, reason: `bench/${name}.ts does not exist` };
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', file, '--json', ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    track(child);
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (t: string) => (out = (out + t).slice(-1_000_000)));
    child.stderr.setEncoding('utf8').on('data', (t: string) => (err = (err + t).slice(-4000)));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const fail = (reason: string) => resolve({ name, ok: false, args, reason });
      if (signal) return fail(`killed by ${signal} (time limit ${Math.round(timeoutMs / 1000)} s)`);
      if (code !== 0) return fail(`exited ${code}: ${err.trim().split('\n').slice(-3).join(' ')}`);
      try {
        const data = JSON.parse(out) as Record<string, unknown>;
        resolve({ name, ok: true, args, seconds: (Date.now() - t0) / 1000, data });
      } catch {
        fail('printed no JSON document on stdout');
      }
    });
  });
}
