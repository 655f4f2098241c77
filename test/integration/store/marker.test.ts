import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/core/index.js';
import { openStore, type Store } from '../../../src/store/index.js';
import { TempDirs, dbFiles, findMarker, markerForms } from '../../unit/store/helpers.js';

const temp = new TempDirs();
const cleanups: (() => unknown)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  temp.cleanup();
});

function newMarker(): string {
  return `TRMARK-${randomBytes(12).toString('hex')} p@ss=w0rd&x`;
}

/** A store that logs everything at debug level into a file inside the data directory. */
async function storeWithLog(dataDir: string): Promise<Store> {
  const logger = createLogger({
    level: 'debug',
    destination: pino.destination({ dest: join(dataDir, 'store.log'), sync: true }),
  });
  const store = await openStore({ dataDir, logger });
  cleanups.push(() => store.close().catch(() => undefined));
  return store;
}

async function record(store: Store, sessionId: string, marker: string): Promise<string> {
  const body = Buffer.from(`{"patient":"${marker}"}`);
  const id = await store.addRequest({
    sessionId,
    connectionId: null,
    startedAt: Date.now(),
    method: 'POST',
    scheme: 'https',
    host: 'api.example.com',
    port: 443,
    url: `/patients/${encodeURIComponent(marker)}?q=${marker}`,
    requestHeaders: [
      ['host', 'api.example.com'],
      ['x-patient', marker],
    ],
    verdict: null,
  });
  store.completeRequest(id, {
    endedAt: Date.now(),
    status: 200,
    responseHeaders: [['x-echo', marker]],
    requestBody: { data: body, truncated: false, size: body.length },
    responseBody: { data: Buffer.concat([body, body]), truncated: true, size: 10 * body.length },
    outcome: 'ok',
  });
  return id;
}

describe('a marker sent in a URL, a header and a body never reaches the files', () => {
  it('finds every form of a marker in a file that holds it (the search works)', () => {
    const dir = temp.make();
    const marker = newMarker();
    expect(markerForms(marker).map((f) => f.name)).toEqual(
      expect.arrayContaining(['raw', 'utf16le', 'base64@0', 'base64@1', 'base64@2', 'url']),
    );
    for (const form of markerForms(marker)) {
      const db = new Database(join(dir, `${form.name.replace('@', '-')}.db`));
      db.exec('CREATE TABLE t (v BLOB)');
      db.prepare('INSERT INTO t VALUES (?)').run(Buffer.concat([randomBytes(7), form.bytes]));
      db.close();
    }
    expect(findMarker(dir, marker).length).toBeGreaterThanOrEqual(markerForms(marker).length);
    // And a base64 encoding at each alignment inside a larger text.
    for (let shift = 0; shift < 3; shift++) {
      const d = temp.make();
      const text = Buffer.concat([randomBytes(shift + 3), Buffer.from(marker), randomBytes(5)]);
      new Database(join(d, 'b.db')).exec(`CREATE TABLE "${text.toString('base64')}" (x)`);
      expect(findMarker(d, marker).length, `shift ${shift}`).toBeGreaterThan(0);
    }
  });

  it('after insert, checkpoint, shredding and purging', async () => {
    const dataDir = temp.make();
    const marker = newMarker();
    const store = await storeWithLog(dataDir);
    const s = store.startSession({ kind: 'proxy', level: 'full' });
    const ids = [];
    for (let i = 0; i < 50; i++) ids.push(await record(store, s.id, marker));
    await store.flush();
    expect(store.getRequest(ids[0]!)?.url).toContain(marker); // it was stored...
    expect(dbFiles(dataDir)).toEqual(expect.arrayContaining([join(dataDir, 'trustrun.db-wal')]));
    expect(findMarker(dataDir, marker)).toEqual([]); // ...but only sealed

    await store.close(); // flush + checkpoint
    expect(findMarker(dataDir, marker)).toEqual([]);

    const again = await storeWithLog(dataDir);
    expect(again.getRequest(ids[1]!)?.requestHeaders).toContainEqual(['x-patient', marker]);
    await again.shredSession(s.id);
    expect(findMarker(dataDir, marker)).toEqual([]);
    again.endSession(s.id, { status: 'completed' });
    await again.purgeSession(s.id);
    expect(findMarker(dataDir, marker)).toEqual([]);
  });

  it('after kill -9 of a process that was writing: intact database, interrupted session, no lost record', async () => {
    const dataDir = temp.make();
    const marker = newMarker();
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(import.meta.dirname, 'writer-child.ts'), dataDir, marker],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    cleanups.push(() => child.exitCode === null && child.kill('SIGKILL'));
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += String(d)));
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child.on('exit', (_code, signal) => resolve(signal)),
    );

    let session = '';
    const committed: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(new Error(`child wrote ${committed.length} records in 60 s; stderr: ${stderr}`)),
        60_000,
      );
      createInterface({ input: child.stdout }).on('line', (line) => {
        const [kind, id] = line.split(' ');
        if (kind === 'session') session = id!;
        if (kind === 'ok') committed.push(id!);
        if (committed.length === 2000) {
          child.kill('SIGKILL'); // mid-load: 32 requests are in flight at any time
          clearTimeout(timer);
          resolve();
        }
      });
      child.on('exit', () => reject(new Error(`child exited early; stderr: ${stderr}`)));
    });
    expect(await exited).toBe('SIGKILL');
    expect(session).not.toBe('');

    // The files the killed process left: never the marker.
    expect(findMarker(dataDir, marker)).toEqual([]);

    const check = new Database(join(dataDir, 'trustrun.db'));
    expect(check.pragma('integrity_check', { simple: true })).toBe('ok');
    check.close();

    const store = await storeWithLog(dataDir);
    const s = store.getSession(session);
    expect(s?.status).toBe('interrupted');
    expect(s?.counts.requests).toBeGreaterThanOrEqual(2000);
    const missing = committed.filter((id) => store.getRequest(id) === null);
    expect(missing).toEqual([]);
    expect(store.getRequest(committed[1999]!)?.url).toContain(marker);
    await store.close();
    expect(findMarker(dataDir, marker)).toEqual([]);
  });
});
