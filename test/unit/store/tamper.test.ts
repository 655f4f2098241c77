import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { openStore } from '../../../src/store/index.js';
import { TempDirs, dbFiles, expectCode, rawDb, requestInput } from './helpers.js';

const temp = new TempDirs();
const cleanups: (() => unknown)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  temp.cleanup();
});

async function seeded() {
  const dataDir = temp.make();
  const store = await openStore({ dataDir });
  cleanups.push(() => store.close().catch(() => undefined));
  const s = store.startSession({ kind: 'proxy', level: 'full' });
  const ids: string[] = [];
  for (const url of ['/first?a=1', '/second?b=2']) {
    const id = await store.addRequest(requestInput(s.id, { url }));
    const body = Buffer.from(`body of ${url}`);
    store.completeRequest(id, {
      endedAt: Date.now(),
      status: 200,
      responseHeaders: [['content-type', 'text/plain']],
      responseBody: { data: body, truncated: false, size: body.length },
      outcome: 'ok',
    });
    ids.push(id);
  }
  await store.flush();
  // Another connection, as an attacker with write access to the file would have.
  const db = rawDb(dataDir, cleanups);
  return { dataDir, store, db, session: s.id, ids: ids as [string, string] };
}

describe('tampering with sealed data', () => {
  it('detects a flipped byte in any sealed field', async () => {
    const { store, db, ids } = await seeded();
    for (const field of ['url', 'request_headers', 'response_headers', 'response_body']) {
      const { blob } = db
        .prepare(`SELECT ${field} AS blob FROM requests WHERE id = ?`)
        .get(ids[0]) as {
        blob: Buffer;
      };
      const bad = Buffer.from(blob);
      bad[bad.length - 3] = bad[bad.length - 3]! ^ 0x40;
      db.prepare(`UPDATE requests SET ${field} = ? WHERE id = ?`).run(bad, ids[0]);
      const err = await expectCode(() => store.getRequest(ids[0]), 'TR_SEAL_OPEN');
      expect(err.message).toContain(`requests.${field} of record ${ids[0]}`);
      db.prepare(`UPDATE requests SET ${field} = ? WHERE id = ?`).run(blob, ids[0]);
      expect(store.getRequest(ids[0])).not.toBeNull();
    }
  });

  it('detects a blob swapped between rows', async () => {
    const { store, db, ids } = await seeded();
    db.exec(
      `UPDATE requests SET url = (SELECT url FROM requests WHERE id = '${ids[1]}') WHERE id = '${ids[0]}'`,
    );
    const err = await expectCode(() => store.getRequest(ids[0]), 'TR_SEAL_OPEN');
    expect(err.message).toContain(`requests.url of record ${ids[0]}`);
    expect(store.getRequest(ids[1])?.url).toBe('/second?b=2');
  });

  it('detects blobs swapped between fields of one row', async () => {
    const { store, db, ids } = await seeded();
    db.prepare(
      'UPDATE requests SET request_headers = response_headers, response_headers = request_headers WHERE id = ?',
    ).run(ids[0]);
    const err = await expectCode(() => store.getRequest(ids[0]), 'TR_SEAL_OPEN');
    expect(err.message).toMatch(/requests\.(request|response)_headers of record/);
  });

  it('detects a changed record id', async () => {
    const { store, db, ids } = await seeded();
    const moved = ids[0].slice(0, -1) + (ids[0].endsWith('0') ? '1' : '0');
    db.prepare('UPDATE requests SET id = ? WHERE id = ?').run(moved, ids[0]);
    const err = await expectCode(() => store.getRequest(moved), 'TR_SEAL_OPEN');
    expect(err.message).toContain(`record ${moved}`);
  });

  it('detects an altered wrapped data key', async () => {
    const { dataDir, store, db, session, ids } = await seeded();
    await store.close();
    const { wrapped } = db
      .prepare('SELECT wrapped FROM session_keys WHERE session_id = ?')
      .get(session) as {
      wrapped: Buffer;
    };
    wrapped[30] = wrapped[30]! ^ 1;
    db.prepare('UPDATE session_keys SET wrapped = ? WHERE session_id = ?').run(wrapped, session);
    const again = await openStore({ dataDir });
    cleanups.push(() => again.close().catch(() => undefined));
    const err = await expectCode(() => again.getRequest(ids[0]), 'TR_KEY');
    expect(err.message).toMatch(/cannot be unwrapped/);
  });
});

describe('shredding and purging', () => {
  it('shreds a session: its data can never be opened, and the wrapped key leaves the files', async () => {
    const { dataDir, store, db, session, ids } = await seeded();
    const other = store.startSession({ kind: 'proxy', level: 'headers' });
    const kept = await store.addRequest(requestInput(other.id, { url: '/other' }));
    const { wrapped } = db
      .prepare('SELECT wrapped FROM session_keys WHERE session_id = ?')
      .get(session) as {
      wrapped: Buffer;
    };
    db.close();
    cleanups.pop();
    const holding = () => dbFiles(dataDir).filter((f) => readFileSync(f).includes(wrapped));
    expect(holding().length).toBeGreaterThan(0); // the search below can find it

    await store.shredSession(session);
    const err = await expectCode(() => store.getRequest(ids[0]), 'TR_SEAL_OPEN');
    expect(err.message).toMatch(new RegExp(`session ${session}, which was shredded`));
    expect(store.getSession(session)?.shreddedAt).toEqual(expect.any(Number));
    expect(store.listRequests({ sessionId: session }).items).toHaveLength(2); // clear columns stay
    expect(store.getRequest(kept)?.url).toBe('/other');
    await expectCode(() => store.addRequest(requestInput(session)), 'TR_KEY');
    expect(holding()).toEqual([]);
    // After a restart too (no key cached in memory).
    await store.close();
    const again = await openStore({ dataDir });
    cleanups.push(() => again.close().catch(() => undefined));
    await expectCode(() => again.getRequest(ids[1]), 'TR_SEAL_OPEN');
    expect(again.getRequest(kept)?.url).toBe('/other');
  });

  it('purges a finished session and everything recorded in it', async () => {
    const { store, session, ids } = await seeded();
    await expectCode(() => store.purgeSession(session), 'TR_USAGE'); // still running
    store.endSession(session, { status: 'completed', exitCode: 0 });
    await store.purgeSession(session);
    expect(store.getSession(session)).toBeNull();
    expect(store.getRequest(ids[0])).toBeNull();
    expect(store.listRequests().items).toHaveLength(0);
    await expectCode(() => store.purgeSession(session), 'TR_NOT_FOUND');
  });

  it('purges sessions that ended before a time (retention)', async () => {
    const { store, session } = await seeded();
    const newer = store.startSession({ kind: 'run', level: 'metadata' });
    store.endSession(session, { status: 'completed' });
    await store.flush();
    const cut = Date.now() + 1;
    await new Promise((r) => setTimeout(r, 5));
    store.endSession(newer.id, { status: 'failed', exitCode: 1 });
    const running = store.startSession({ kind: 'proxy', level: 'metadata' });
    await store.flush();
    expect(await store.purgeSessions({ endedBefore: cut })).toBe(1);
    expect(
      store
        .listSessions()
        .items.map((s) => s.id)
        .sort(),
    ).toEqual([newer.id, running.id].sort());
  });
});
