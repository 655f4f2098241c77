import { afterEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../../src/store/index.js';
import { redactRequest } from '../../../src/store/redact/index.js';
import { TempDirs, expectCode, findMarker, rawDb, requestInput } from './helpers.js';

const temp = new TempDirs();
const cleanups: (() => unknown)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  temp.cleanup();
});

const PART = 64 * 1024;

/** A body of `n` bytes whose every 4-byte word names its offset (a misplaced part shows). */
function numbered(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i + 4 <= n; i += 4) b.writeUInt32BE(i, i);
  return b;
}

async function open(): Promise<{ dataDir: string; store: Store; session: string }> {
  const dataDir = temp.make();
  const store = await openStore({ dataDir });
  cleanups.push(() => store.close().catch(() => undefined));
  const session = store.startSession({ kind: 'proxy', level: 'full' }).id;
  return { dataDir, store, session };
}

/** Writes `body` as the proxy does: whole parts while it streams, the rest with the completion. */
async function streamed(store: Store, session: string, body: Buffer, complete = true) {
  const id = await store.addRequest(requestInput(session));
  let seq = 0;
  for (; (seq + 1) * PART < body.length; seq++) {
    const part = Buffer.from(body.subarray(seq * PART, (seq + 1) * PART));
    store.addBodyPart(id, 'response_body', seq, part);
    part.fill(0); // the proxy reuses its buffer at once: the store must have copied it
  }
  if (complete) {
    store.completeRequest(id, {
      endedAt: Date.now(),
      status: 200,
      responseBody: {
        data: body.subarray(seq * PART),
        truncated: false,
        size: body.length,
        parts: seq,
      },
      outcome: 'ok',
    });
  }
  await store.flush();
  return { id, parts: seq };
}

describe('bodies stored in parts', () => {
  it('reads a body written in parts back whole, and keeps none of it in the request row', async () => {
    const { dataDir, store, session } = await open();
    const body = numbered(5 * PART + 1234);
    const { id, parts } = await streamed(store, session, body);
    expect(parts).toBe(5);
    const got = store.getRequest(id)!;
    expect(got.responseBody!.equals(body)).toBe(true);
    expect(got.responseSize).toBe(body.length);

    const db = rawDb(dataDir, cleanups);
    const row = db
      .prepare('SELECT response_body, response_body_parts FROM requests WHERE id = ?')
      .get(id) as { response_body: Buffer | null; response_body_parts: number };
    expect(row.response_body).toBeNull();
    expect(row.response_body_parts).toBe(6);
    const stored = db
      .prepare('SELECT seq, length(data) AS n FROM body_parts WHERE request_id = ? ORDER BY seq')
      .all(id) as { seq: number; n: number }[];
    expect(stored.map((r) => r.seq)).toEqual([0, 1, 2, 3, 4, 5]);
    // Sealed: each part is longer than its plaintext (header, nonce, tag).
    expect(stored[0]!.n).toBeGreaterThan(PART);
  });

  it('keeps a short body in the request row, as before', async () => {
    const { dataDir, store, session } = await open();
    const body = Buffer.from('{"ok":true}');
    const { id, parts } = await streamed(store, session, body);
    expect(parts).toBe(0);
    expect(store.getRequest(id)!.responseBody!.toString()).toBe('{"ok":true}');
    const db = rawDb(dataDir, cleanups);
    expect(db.prepare('SELECT COUNT(*) AS n FROM body_parts').get()).toEqual({ n: 0 });
    expect(
      (
        db.prepare('SELECT response_body FROM requests WHERE id = ?').get(id) as {
          response_body: Buffer | null;
        }
      ).response_body,
    ).not.toBeNull();
  });

  it('seals every part: no plaintext in the files', async () => {
    const { dataDir, store, session } = await open();
    const marker = 'PART-MARKER-5e1f0c7a';
    const body = Buffer.alloc(3 * PART, `${marker} `);
    await streamed(store, session, body);
    await store.close();
    expect(findMarker(dataDir, marker)).toEqual([]);
  });

  it('shows the parts written before the proxy stopped mid-body, and says so', async () => {
    const { store, session } = await open();
    const body = numbered(4 * PART);
    const { id, parts } = await streamed(store, session, body, false);
    expect(parts).toBe(3);
    const got = store.getRequest(id)!;
    expect(got.outcome).toBeNull();
    expect(got.responseBody!.equals(body.subarray(0, 3 * PART))).toBe(true);
    expect(got.responseBodyNote).toBe(
      'the request did not complete: 3 part(s) of its body were stored',
    );
    expect(got.requestBodyNote).toBeUndefined();
  });

  it('shows the intact head of a body with a part missing, with a note every reader shows', async () => {
    const { dataDir, store, session } = await open();
    const body = numbered(3 * PART + 10);
    const { id } = await streamed(store, session, body);
    rawDb(dataDir, cleanups)
      .prepare('DELETE FROM body_parts WHERE request_id = ? AND seq = 1')
      .run(id);
    const got = store.getRequest(id)!;
    expect(got.url).toBe('/v1/patients/12345?include=labs'); // the rest of the record opens
    expect(got.status).toBe(200);
    expect(got.responseBody!.equals(body.subarray(0, PART))).toBe(true);
    expect(got.responseBodyNote).toBe('incomplete: the first 1 of 4 parts are stored (3 in all)');
    expect(redactRequest(got).responseBody!.note).toMatch(/^incomplete: the first 1 of 4 parts/);
  });

  it('does not open a body cut short after it was stored (the last part is sealed as the last)', async () => {
    const { dataDir, store, session } = await open();
    const { id } = await streamed(store, session, numbered(3 * PART + 10));
    const db = rawDb(dataDir, cleanups);
    db.prepare('DELETE FROM body_parts WHERE request_id = ? AND seq = 3').run(id);
    // Lowering the count to the parts left makes part 2 the last: it was not sealed as one.
    db.prepare('UPDATE requests SET response_body_parts = 3 WHERE id = ?').run(id);
    await expectCode(() => store.getRequest(id), 'TR_SEAL_OPEN');
    // Nor does a count of 0 ("never completed") open the real last part as an ordinary one.
    const b = await streamed(store, session, numbered(2 * PART + 10));
    db.prepare('UPDATE requests SET response_body_parts = 0 WHERE id = ?').run(b.id);
    await expectCode(() => store.getRequest(b.id), 'TR_SEAL_OPEN');
  });

  it('refuses parts stored beyond the count the completion wrote', async () => {
    const { dataDir, store, session } = await open();
    const { id } = await streamed(store, session, numbered(2 * PART + 10));
    const db = rawDb(dataDir, cleanups);
    const p0 = db
      .prepare('SELECT data FROM body_parts WHERE request_id = ? AND seq = 0')
      .get(id) as { data: Buffer };
    db.prepare(
      "INSERT INTO body_parts (request_id, field, seq, data) VALUES (?, 'response_body', 7, ?)",
    ).run(id, p0.data);
    await expectCode(() => store.getRequest(id), 'TR_SEAL_OPEN');
  });

  it('detects parts swapped in order or moved to another request', async () => {
    const { dataDir, store, session } = await open();
    const a = await streamed(store, session, numbered(3 * PART + 10));
    const b = await streamed(store, session, numbered(3 * PART + 10));
    const db = rawDb(dataDir, cleanups);
    const part = (id: string, seq: number) =>
      (
        db.prepare('SELECT data FROM body_parts WHERE request_id = ? AND seq = ?').get(id, seq) as {
          data: Buffer;
        }
      ).data;
    const set = db.prepare('UPDATE body_parts SET data = ? WHERE request_id = ? AND seq = ?');
    const [a0, a1] = [part(a.id, 0), part(a.id, 1)];
    set.run(a1, a.id, 0);
    set.run(a0, a.id, 1);
    await expectCode(() => store.getRequest(a.id), 'TR_SEAL_OPEN');
    set.run(part(a.id, 2), b.id, 2);
    await expectCode(() => store.getRequest(b.id), 'TR_SEAL_OPEN');
  });

  it('purges the parts with their session', async () => {
    const { dataDir, store, session } = await open();
    await streamed(store, session, numbered(3 * PART + 10));
    store.endSession(session, { status: 'completed', exitCode: 0 });
    await store.purgeSession(session);
    const db = rawDb(dataDir, cleanups);
    expect(db.prepare('SELECT COUNT(*) AS n FROM body_parts').get()).toEqual({ n: 0 });
  });

  it('rejects a part for a request it does not know', async () => {
    const { store } = await open();
    await expectCode(
      () => store.addBodyPart('aaaaaaaaa000000000000', 'response_body', 0, Buffer.from('x')),
      'TR_NOT_FOUND',
    );
  });
});
