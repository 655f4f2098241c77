import Database from 'better-sqlite3';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Verdict } from '../../../src/core/index.js';
import type { RequestInput } from '../../../src/store/index.js';

/**
 * A second connection to a store's database file, as another process (or someone with write
 * access to the file) would have; closed by the test file's `cleanups`.
 */
export function rawDb(
  dataDir: string,
  cleanups: (() => unknown)[],
  readonly = false,
): Database.Database {
  const db = new Database(join(dataDir, 'trustrun.db'), { readonly });
  cleanups.push(() => db.close());
  return db;
}

/** Temporary directories made by a test file, removed by `cleanup()` in afterEach. */
export class TempDirs {
  private dirs: string[] = [];

  make(prefix = 'trustrun-store-'): string {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    this.dirs.push(dir);
    return dir;
  }

  cleanup(): void {
    for (const dir of this.dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  }
}

export const blockVerdict: Verdict = {
  action: 'block',
  violation: true,
  ruleIndex: 0,
  rule: '*.openai.com',
  reason: 'Direct OpenAI API bypasses the BAA',
  explanation: 'Rule 1 (*.openai.com) matched; action block.',
  policy: 'hipaa',
};

export const allowVerdict: Verdict = {
  action: 'allow',
  violation: false,
  ruleIndex: 1,
  rule: 'api.example.com',
  reason: 'approved endpoint',
  explanation: 'Rule 2 (api.example.com) matched; action allow.',
  policy: 'hipaa',
};

export function requestInput(sessionId: string, over: Partial<RequestInput> = {}): RequestInput {
  return {
    sessionId,
    connectionId: null,
    startedAt: Date.now(),
    method: 'POST',
    scheme: 'https',
    host: 'api.example.com',
    port: 443,
    url: '/v1/patients/12345?include=labs',
    requestHeaders: [
      ['host', 'api.example.com'],
      ['content-type', 'application/json'],
      ['authorization', 'Bearer secret-token'],
    ],
    verdict: null,
    ...over,
  };
}

/**
 * The forms a marker could take in a file: raw UTF-8, UTF-16LE, hex, base64 and base64url at
 * each of the three byte alignments, and URL-encoded (percent and form).
 */
export function markerForms(marker: string): { name: string; bytes: Buffer }[] {
  const raw = Buffer.from(marker, 'utf8');
  const forms = [
    { name: 'raw', bytes: raw },
    { name: 'utf16le', bytes: Buffer.from(marker, 'utf16le') },
    { name: 'hex', bytes: Buffer.from(raw.toString('hex')) },
    { name: 'url', bytes: Buffer.from(encodeURIComponent(marker)) },
    { name: 'form', bytes: Buffer.from(new URLSearchParams({ x: marker }).toString().slice(2)) },
  ];
  for (const enc of ['base64', 'base64url'] as const) {
    for (let shift = 0; shift < 3; shift++) {
      const text = Buffer.concat([Buffer.alloc(shift, 0x41), raw]).toString(enc);
      // Drop the characters that also encode the prefix bytes or the padding at the end.
      const start = shift === 0 ? 0 : 4;
      const whole = Math.floor((shift + raw.length) / 3) * 4;
      const core = text.slice(start, whole);
      forms.push({ name: `${enc}@${shift}`, bytes: Buffer.from(core) });
    }
  }
  return forms;
}

/** Every file under `dir` (recursively) in which some form of the marker appears. */
export function findMarker(dir: string, marker: string): string[] {
  const forms = markerForms(marker);
  const hits: string[] = [];
  for (const file of listFiles(dir)) {
    const data = readFileSync(file);
    for (const f of forms) if (data.includes(f.bytes)) hits.push(`${file} (${f.name})`);
  }
  return hits;
}

/** Files of the database: the main file, the WAL, the shared memory, a rollback journal. */
export function dbFiles(dataDir: string): string[] {
  return ['trustrun.db', 'trustrun.db-wal', 'trustrun.db-shm', 'trustrun.db-journal']
    .map((f) => join(dataDir, f))
    .filter((f) => {
      try {
        return statSync(f).isFile();
      } catch {
        return false;
      }
    });
}

export function listFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listFiles(p));
    else if (entry.isFile()) out.push(p);
  }
  return out;
}

export function modeOf(path: string): number {
  return statSync(path).mode & 0o777;
}

/** Expects `fn` to throw (or reject with) a TrustRunError with this code; returns it. */
export async function expectCode(
  fn: () => unknown,
  code: string,
): Promise<Error & { code: string }> {
  try {
    await fn();
  } catch (err) {
    const e = err as Error & { code?: string };
    if (e.code !== code)
      throw new Error(`expected ${code}, got ${e.code ?? 'no code'}: ${e.message}`);
    return e as Error & { code: string };
  }
  throw new Error(`expected ${code}, but nothing was thrown`);
}
