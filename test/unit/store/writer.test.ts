import { afterEach, describe, expect, it } from 'vitest';
import { openStore } from '../../../src/store/index.js';
import type { SqliteStore } from '../../../src/store/store.js';
import { loopTurns, until } from '../../helpers/wait.js';
import { TempDirs, blockVerdict, expectCode, rawDb, requestInput } from './helpers.js';

const temp = new TempDirs();
const cleanups: (() => unknown)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  temp.cleanup();
});

async function newStore(
  opts: { batchMax?: number; busyTimeoutMs?: number; maxRetainedBytes?: number } = {},
) {
  const dataDir = temp.make();
  const store = await openStore({ dataDir, ...opts });
  cleanups.push(() => store.close().catch(() => undefined));
  return { store, dataDir, db: (store as SqliteStore).db };
}

const otherConnection = (dataDir: string, readonly = false) => rawDb(dataDir, cleanups, readonly);

describe('batching writer', () => {
  it('commits 1,000 concurrent requests in a few shared transactions, each before it resolves', async () => {
    const { store, dataDir } = await newStore();
    const s = store.startSession({ kind: 'proxy', level: 'headers' });
    const reader = otherConnection(dataDir, true);
    const visible = reader.prepare('SELECT 1 FROM requests WHERE id = ?');
    const before = store.stats.commits;
    let seenBeforeCommit = 0;
    const ids = await Promise.all(
      Array.from({ length: 1000 }, (_, i) =>
        store.addRequest(requestInput(s.id, { url: `/item/${i}` })).then((id) => {
          // Audit before forward: another connection already sees the row when the id arrives.
          if (!visible.get(id)) seenBeforeCommit++;
          return id;
        }),
      ),
    );
    expect(seenBeforeCommit).toBe(0);
    expect(new Set(ids).size).toBe(1000);
    const commits = store.stats.commits - before;
    expect(commits).toBeGreaterThanOrEqual(4); // batches of at most 256
    expect(commits).toBeLessThanOrEqual(5);
    expect(reader.prepare('SELECT COUNT(*) AS n FROM requests').get()).toEqual({ n: 1000 });
  });

  it('queues connection records off the caller and commits them with the next awaited record', async () => {
    const { store, dataDir } = await newStore();
    const s = store.startSession({ kind: 'proxy', level: 'metadata' });
    const reader = otherConnection(dataDir, true);
    const count = () =>
      (reader.prepare('SELECT COUNT(*) AS n FROM connections').get() as { n: number }).n;
    const addConnections = (n: number) => {
      for (let i = 0; i < n; i++) {
        store.addConnection({
          sessionId: s.id,
          startedAt: i,
          clientAddr: '127.0.0.1',
          clientPort: 40000 + i,
          host: 'h',
          port: 443,
          mode: 'tunnel',
        });
      }
    };
    addConnections(10);
    expect(count()).toBe(0); // queued, not written in the caller's stack
    expect(store.stats.pending).toBe(10);
    // Nobody waits for them: they stay queued for the next record that is waited for...
    await loopTurns(2);
    expect(count()).toBe(0);
    const before = store.stats.commits;
    const id = await store.addRequest(requestInput(s.id));
    // ...and go with it, in one commit.
    expect(store.stats.commits - before).toBe(1);
    expect(count()).toBe(10);
    expect(store.getRequest(id)).not.toBeNull();

    // With nothing else coming, they are committed within the deferral (20 ms), together.
    addConnections(5);
    const start = Date.now();
    await until(() => count() === 15, 'the deferred connection records', 2000);
    expect(Date.now() - start).toBeGreaterThanOrEqual(15);
    expect(store.stats.commits - before).toBe(2);
    expect(store.stats.pending).toBe(0);
  });

  it('commits at once when batchMax operations are queued', async () => {
    const { store, dataDir } = await newStore({ batchMax: 8 });
    const s = store.startSession({ kind: 'proxy', level: 'metadata' });
    const reader = otherConnection(dataDir, true);
    for (let i = 0; i < 8; i++) {
      store.addViolation({
        sessionId: s.id,
        time: i,
        host: 'x',
        port: 1,
        verdict: {
          action: 'alert',
          violation: true,
          ruleIndex: null,
          rule: null,
          reason: 'r',
          explanation: 'e',
          policy: null,
        },
        enforced: false,
      });
    }
    expect(reader.prepare('SELECT COUNT(*) AS n FROM violations').get()).toEqual({ n: 8 });
  });

  it('rejects requests when the disk is full, keeps other records, and recovers', async () => {
    const { store, db } = await newStore();
    const s = store.startSession({ kind: 'proxy', level: 'full' });
    await store.addRequest(requestInput(s.id));
    const errors: string[] = [];
    store.onError((e) => errors.push((e as { code?: string }).code ?? '?'));

    // Simulate a full disk: the database may not grow past its current size.
    const pages = db.pragma('page_count', { simple: true }) as number;
    db.pragma(`max_page_count = ${pages}`);
    const conn = store.addConnection({
      sessionId: s.id,
      startedAt: 1,
      clientAddr: '127.0.0.1',
      clientPort: 1,
      host: 'kept.example',
      port: 443,
      mode: 'intercept',
    });
    const big = { ...requestInput(s.id), url: '/' + 'x'.repeat(200_000) };
    const results = await Promise.allSettled([store.addRequest(big), store.addRequest(big)]);
    for (const r of results) {
      expect(r.status).toBe('rejected');
      expect((r as PromiseRejectedResult).reason.code).toBe('TR_STORE_UNAVAILABLE');
      expect((r as PromiseRejectedResult).reason.message).toMatch(/SQLITE_FULL/);
    }
    expect(store.healthy).toBe(false);
    expect(errors).toContain('TR_STORE_UNAVAILABLE');
    expect(store.stats.failedCommits).toBeGreaterThanOrEqual(1);

    // A completion that does not fit stays queued; flush says the store cannot be written.
    const [first] = store.listRequests({ sessionId: s.id }).items;
    const body = Buffer.alloc(300_000, 0x62);
    store.completeRequest(first!.id, {
      endedAt: Date.now(),
      status: 200,
      responseBody: { data: body, truncated: false, size: body.length },
      outcome: 'ok',
    });
    await expectCode(() => store.flush(), 'TR_STORE_UNAVAILABLE');
    expect(store.stats.pending).toBeGreaterThanOrEqual(1);

    // Space again: the next commit succeeds and the kept records are written.
    db.pragma('max_page_count = 1073741823');
    const id = await store.addRequest(requestInput(s.id));
    expect(store.healthy).toBe(true);
    await store.flush();
    expect(store.getRequest(id)?.url).toBe('/v1/patients/12345?include=labs');
    expect(store.getRequest(first!.id)?.responseBody?.equals(body)).toBe(true);
    expect(store.listConnections({ sessionId: s.id }).items.map((c) => c.id)).toEqual([conn]);
  });

  it('keeps at most maxRetainedBytes of bodies queued on a full disk, shedding the oldest bodies, never the records', async () => {
    const { store, db } = await newStore({ maxRetainedBytes: 1024 * 1024 });
    const s = store.startSession({ kind: 'proxy', level: 'full' });
    const a = await store.addRequest(requestInput(s.id));
    const b = await store.addRequest(requestInput(s.id));
    const errors: string[] = [];
    store.onError((e) => errors.push(e.message));
    const pages = db.pragma('page_count', { simple: true }) as number;
    db.pragma(`max_page_count = ${pages}`);

    // Queued while nothing can be written: a completion with a 200 KiB body, a violation, then
    // eight 256 KiB parts of another body, one per turn (each commit fails, the queue is cut).
    const inline = Buffer.alloc(200 * 1024, 0x61);
    store.completeRequest(a, {
      endedAt: Date.now(),
      status: 201,
      responseBody: { data: inline, truncated: false, size: inline.length },
      outcome: 'ok',
    });
    const violation = store.addViolation({
      sessionId: s.id,
      time: Date.now(),
      host: 'api.example.com',
      port: 443,
      verdict: blockVerdict,
      enforced: true,
    });
    await expectCode(() => store.flush(), 'TR_STORE_UNAVAILABLE');
    const part = Buffer.alloc(256 * 1024);
    for (let seq = 0; seq < 8; seq++) {
      store.addBodyPart(b, 'response_body', seq, part.fill(seq));
      await expectCode(() => store.flush(), 'TR_STORE_UNAVAILABLE');
    }
    // The oldest body went first (the completion stays, without it), then the oldest parts: a
    // sealed part is 256 KiB + 41 bytes, so three fit in 1 MiB.
    expect(store.stats.pending).toBe(2 + 3);
    expect(store.stats.droppedOps).toBe(5);
    expect(errors.some((m) => /queued bodies or body parts were dropped/.test(m))).toBe(true);

    db.pragma('max_page_count = 1073741823');
    await store.flush();
    const ra = store.getRequest(a)!;
    expect(ra.status).toBe(201);
    expect(ra.outcome).toBe('ok');
    expect(ra.responseBody).toBeNull();
    expect(ra.responseBodyNote).toBe('not stored: dropped while the store could not be written');
    expect(store.listViolations({ sessionId: s.id }).items.map((v) => v.id)).toEqual([violation]);
    const kept = otherConnection(store.dataDir)
      .prepare('SELECT seq FROM body_parts WHERE request_id = ? ORDER BY seq')
      .all(b) as { seq: number }[];
    expect(kept.map((r) => r.seq)).toEqual([5, 6, 7]);
    expect(store.getRequest(b)!.responseBodyNote).toBe(
      'the request did not complete: 0 part(s) of its body were stored (and 3 after a gap)',
    );
  });

  it('rejects requests while another process holds the database locked, then recovers', async () => {
    const { store, dataDir } = await newStore({ busyTimeoutMs: 50 });
    const s = store.startSession({ kind: 'proxy', level: 'headers' });
    const other = otherConnection(dataDir);
    other.prepare('BEGIN IMMEDIATE').run();
    const err = await expectCode(
      () => store.addRequest(requestInput(s.id)),
      'TR_STORE_UNAVAILABLE',
    );
    expect(err.message).toMatch(/SQLITE_BUSY/);
    expect(store.healthy).toBe(false);
    const start = await expectCode(
      () => store.startSession({ kind: 'proxy', level: 'headers' }),
      'TR_STORE_UNAVAILABLE',
    );
    expect(start.message).toMatch(/cannot start a session: SQLITE_BUSY/);
    other.prepare('ROLLBACK').run();
    await store.addRequest(requestInput(s.id));
    expect(store.healthy).toBe(true);
  });

  it('knows the store is back without a write of its own (every request refused meanwhile), and retries without waiting for the lock', async () => {
    const { store, dataDir } = await newStore({ busyTimeoutMs: 400 });
    const s = store.startSession({ kind: 'proxy', level: 'headers' });
    const other = otherConnection(dataDir);
    other.prepare('BEGIN IMMEDIATE').run();
    const started = performance.now();
    await expectCode(() => store.addRequest(requestInput(s.id)), 'TR_STORE_UNAVAILABLE');
    // The first attempt waited for the lock (the busy timeout).
    expect(performance.now() - started).toBeGreaterThanOrEqual(350);
    expect(store.healthy).toBe(false);
    // Nothing is queued, and the proxy refuses requests while unhealthy (it writes nothing):
    // the store probes by itself. Its attempts while the lock is held return at once.
    const loopStalls: number[] = [];
    let last = performance.now();
    const tick = setInterval(() => {
      const now = performance.now();
      loopStalls.push(now - last);
      last = now;
    }, 10);
    await new Promise((r) => setTimeout(r, 1500));
    expect(store.healthy).toBe(false);
    other.prepare('ROLLBACK').run();
    await until(() => store.healthy, 'the store healthy again');
    clearInterval(tick);
    expect(Math.max(...loopStalls)).toBeLessThan(300);
  });

  it('keeps no probe queued after it fails: nothing counts as unwritten at close', async () => {
    const { store, dataDir } = await newStore({ busyTimeoutMs: 50 });
    const s = store.startSession({ kind: 'proxy', level: 'headers' });
    const other = otherConnection(dataDir);
    other.prepare('BEGIN IMMEDIATE').run();
    await expectCode(() => store.addRequest(requestInput(s.id)), 'TR_STORE_UNAVAILABLE');
    // Long enough for several probes to fail.
    await new Promise((r) => setTimeout(r, 400));
    expect(store.stats.pending).toBe(0);
    other.prepare('ROLLBACK').run();
  });

  it('rejects requests when the database was closed underneath', async () => {
    const { store, db } = await newStore();
    const s = store.startSession({ kind: 'proxy', level: 'headers' });
    db.close();
    const err = await expectCode(
      () => store.addRequest(requestInput(s.id)),
      'TR_STORE_UNAVAILABLE',
    );
    expect(err.message).toMatch(/closed/);
    expect(store.healthy).toBe(false);
    // A queued record that cannot be written any more is reported when closing.
    store.addConnection({
      sessionId: s.id,
      startedAt: 1,
      clientAddr: 'a',
      clientPort: 1,
      host: 'h',
      port: 1,
      mode: 'tunnel',
    });
    const closing = await expectCode(() => store.close(), 'TR_STORE_UNAVAILABLE');
    expect(closing.message).toMatch(/1 queued records unwritten/);
  });

  it('refuses writes after close and says so', async () => {
    const { store } = await newStore();
    const s = store.startSession({ kind: 'proxy', level: 'headers' });
    await store.close();
    await expectCode(() => store.addRequest(requestInput(s.id)), 'TR_STORE_UNAVAILABLE');
    await expectCode(
      () =>
        store.addConnection({
          sessionId: s.id,
          startedAt: 1,
          clientAddr: 'a',
          clientPort: 1,
          host: 'h',
          port: 1,
          mode: 'tunnel',
        }),
      'TR_STORE_UNAVAILABLE',
    );
    await expectCode(() => store.listRequests(), 'TR_STORE_UNAVAILABLE');
    await store.close(); // closing twice is harmless
  });

  it('drops only the row a constraint refuses, not its batch', async () => {
    const { store } = await newStore();
    const s = store.startSession({ kind: 'proxy', level: 'metadata' });
    const errors: Error[] = [];
    store.onError((e) => errors.push(e));
    const good = store.addConnection({
      sessionId: s.id,
      startedAt: 1,
      clientAddr: 'a',
      clientPort: 1,
      host: 'h',
      port: 1,
      mode: 'tunnel',
    });
    // A connection for a session that does not exist violates the foreign key.
    store.addConnection({
      sessionId: '0mwwnv1k5e35926cdc7d3',
      startedAt: 1,
      clientAddr: 'a',
      clientPort: 1,
      host: 'h',
      port: 1,
      mode: 'tunnel',
    });
    const req = await store.addRequest(requestInput(s.id));
    expect(store.healthy).toBe(true);
    expect(store.listConnections().items.map((c) => c.id)).toEqual([good]);
    expect(store.getRequest(req)).not.toBeNull();
    expect(errors.map((e) => e.message).join()).toMatch(/refused connection .*FOREIGNKEY/);
    expect(store.stats.droppedOps).toBe(1);
  });
});
