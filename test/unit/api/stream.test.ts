import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { newId } from '../../../src/core/index.js';
import { Follower } from '../../../src/api/follow.js';
import { assertNoSecrets, makeFixture, type Fixture } from './fixture.js';

interface Sse {
  event: string;
  id?: string;
  data: Record<string, unknown>;
}

/** Reads Server-Sent Events from a response body. */
function reader(res: Response) {
  const r = res.body!.getReader();
  const dec = new TextDecoder();
  let buf = '';
  const got: Sse[] = [];
  let raw = '';
  const pump = (async () => {
    for (;;) {
      const { value, done } = await r.read().catch(() => ({ value: undefined, done: true }));
      if (done) return;
      const text = dec.decode(value, { stream: true });
      raw += text;
      buf += text;
      let i: number;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const ev: Partial<Sse> & { dataText?: string } = {};
        for (const line of block.split('\n')) {
          const [k, ...rest] = line.split(':');
          const v = rest.join(':').replace(/^ /, '');
          if (k === 'event') ev.event = v;
          else if (k === 'id') ev.id = v;
          else if (k === 'data') ev.dataText = (ev.dataText ?? '') + v;
        }
        if (ev.event)
          got.push({
            event: ev.event,
            id: ev.id,
            data: JSON.parse(ev.dataText ?? 'null') as Record<string, unknown>,
          });
      }
    }
  })();
  return {
    got,
    raw: () => raw,
    async until(pred: (e: Sse[]) => boolean, ms = 10_000): Promise<void> {
      const end = Date.now() + ms;
      while (!pred(got)) {
        if (Date.now() > end)
          throw new Error(`timed out; got ${JSON.stringify(got.map((e) => e.event))}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async close() {
      await r.cancel().catch(() => undefined);
      await pump;
    },
  };
}

let f: Fixture;
const readers: ReturnType<typeof reader>[] = [];
beforeEach(async () => {
  f = await makeFixture(2);
});
afterEach(async () => {
  while (readers.length) await readers.pop()!.close();
  await f.close();
});

async function open(query = '') {
  const res = await f.call(`/api/stream${query}`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  expect(res.headers.get('cache-control')).toBe('no-store');
  const s = reader(res);
  readers.push(s);
  await s.until((e) => e.some((x) => x.event === 'ready'));
  return s;
}

async function addRequest(sessionId: string, host = 'live.example.test') {
  return f.store.addRequest({
    sessionId,
    connectionId: null,
    startedAt: Date.now(),
    method: 'GET',
    scheme: 'https',
    host,
    port: 443,
    url: '/live?token=QueryMarker9b1c7d3f',
    requestHeaders: [['Authorization', 'Bearer AuthMarker7f3a9c1e5b']],
    verdict: null,
  });
}

describe('live stream (SSE)', () => {
  it('sends new requests, their completion, and violations; nothing from before it opened', async () => {
    const s = await open();
    const id = await addRequest(f.sessionId);
    await s.until((e) => e.some((x) => x.event === 'request' && x.id === id));
    const first = s.got.find((x) => x.id === id)!;
    expect(first.data).toMatchObject({
      host: 'live.example.test',
      endedAt: null,
      sessionId: f.sessionId,
    });
    f.store.completeRequest(id, { endedAt: Date.now(), status: 201, outcome: 'ok' });
    await s.until((e) =>
      e.some((x) => x.event === 'request' && x.id === id && x.data.status === 201),
    );
    const vid = f.store.addViolation({
      sessionId: f.sessionId,
      time: Date.now(),
      host: 'bad.example.test',
      port: 443,
      verdict: {
        action: 'block',
        violation: true,
        ruleIndex: null,
        rule: null,
        reason: 'default',
        explanation: 'No rule matched: the default action block applies.',
        policy: 'p',
      },
      enforced: true,
    });
    await s.until((e) => e.some((x) => x.event === 'violation' && x.id === vid));
    await new Promise((r) => setTimeout(r, 300));
    expect(s.got.filter((x) => x.id === id)).toHaveLength(2);
    expect(s.got.filter((x) => x.id === vid)).toHaveLength(1);
    for (const old of f.requestIds) expect(s.got.some((x) => x.id === old)).toBe(false);
    assertNoSecrets(s.raw());
  });

  it('replays from `after`, and filters by session', async () => {
    const s = await open(`?after=${f.requestIds[0]}&session=${f.otherSessionId}`);
    const all = await open(`?after=${f.requestIds[0]}`);
    await all.until((e) => e.some((x) => x.id === f.requestIds[1]));
    const mine = await addRequest(f.otherSessionId, 'other.example.test');
    await s.until((e) => e.some((x) => x.id === mine));
    await all.until((e) => e.some((x) => x.id === mine));
    expect(s.got.some((x) => x.id === f.requestIds[1])).toBe(false);
    expect(
      s.got
        .filter((x) => x.event === 'request')
        .every((x) => x.data.sessionId === f.otherSessionId),
    ).toBe(true);
  });

  it('answers 400 for a bad `after`', async () => {
    expect((await f.call('/api/stream?after=yesterday')).status).toBe(400);
  });

  it('sees records written by another process', async () => {
    const s = await open();
    const script = join(f.dir, 'writer.mts');
    const storeIndex = resolve('src/store/index.ts');
    writeFileSync(
      script,
      `import { openStore } from ${JSON.stringify(storeIndex)};
const store = await openStore({ dataDir: process.argv[2] });
const s = store.startSession({ kind: 'proxy', level: 'headers' });
const id = await store.addRequest({ sessionId: s.id, connectionId: null, startedAt: Date.now(),
  method: 'GET', scheme: 'https', host: 'child.example.test', port: 443, url: '/x', requestHeaders: [], verdict: null });
store.completeRequest(id, { endedAt: Date.now(), status: 204, outcome: 'ok' });
await store.flush();
process.stdout.write(JSON.stringify({ session: s.id, request: id }));
await store.close();
`,
    );
    const child = spawn(process.execPath, ['--import', 'tsx', script, f.dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect(code, err).toBe(0);
    const ids = JSON.parse(out) as { session: string; request: string };
    await s.until((e) =>
      e.some((x) => x.event === 'request' && x.id === ids.request && x.data.status === 204),
    );
    await s.until((e) => e.some((x) => x.event === 'session' && x.id === ids.session));
    expect(s.got.find((x) => x.event === 'session' && x.id === ids.session)!.data).toMatchObject({
      level: 'headers',
      phi: true,
    });
  });
});

describe('Follower', () => {
  it('catches rows committed late with smaller ids, sends each state once', () => {
    const rows: { id: string; done: boolean }[] = [];
    const now = Date.now();
    const fol = new Follower(
      (q) => ({
        items: rows
          .filter((r) => r.id > q.cursor!)
          .sort((a, b) => (a.id < b.id ? -1 : 1))
          .slice(0, q.limit),
        nextCursor: null,
      }),
      (r) => String(r.done),
      (r) => !r.done,
      newId(now - 1000),
    );
    const b = { id: newId(now).slice(0, 9) + 'f'.repeat(12), done: true };
    rows.push(b);
    expect(fol.poll(now).map((r) => r.id)).toEqual([b.id]);
    // Same millisecond, smaller random part, committed after b was seen.
    const a = { id: newId(now).slice(0, 9) + '0'.repeat(11) + '1', done: false };
    rows.push(a);
    expect(fol.poll(now + 10).map((r) => r.id)).toEqual([a.id]);
    expect(fol.poll(now + 20)).toEqual([]);
    a.done = true;
    expect(fol.poll(now + 30).map((r) => r.id)).toEqual([a.id]);
    expect(fol.poll(now + 40)).toEqual([]);
    // Rows before `after` are never sent.
    rows.push({ id: newId(now - 2000), done: true });
    expect(fol.poll(now + 50)).toEqual([]);
  });

  /** A table of rows served a page at a time, as the store does. */
  function table(rows: { id: string; done: boolean }[]) {
    return (q: { cursor?: string | null; limit?: number }) => {
      const sorted = rows
        .filter((r) => q.cursor == null || r.id > q.cursor)
        .sort((a, b) => (a.id < b.id ? -1 : 1));
      const items = sorted.slice(0, q.limit);
      return {
        items,
        nextCursor: sorted.length > items.length ? items[items.length - 1]!.id : null,
      };
    };
  }

  it('replays every row after an old `after`, over several polls when there are many', () => {
    const now = Date.now();
    const rows = Array.from({ length: 6500 }, (_, i) => ({
      id: newId(now - 3_600_000 + i),
      done: true,
    }));
    const fol = new Follower(
      table(rows),
      () => '',
      () => false,
      '0'.repeat(21),
    );
    const first = fol.poll(now);
    expect(first).toHaveLength(5000);
    const second = fol.poll(now + 10);
    expect([...first, ...second].map((r) => r.id)).toEqual(rows.map((r) => r.id));
    expect(fol.poll(now + 20)).toEqual([]);
  });

  /**
   * `perSecond` records a second for 12 s, polled every 500 ms (a poll reads at most 5,000 rows),
   * then 10 s more of polls; with `openEvery`, one record in that many is still open when it is
   * recorded and ends only after the load. Returns every row and the states sent for each.
   */
  function heavyLoad(perSecond: number, openEvery: number | null) {
    const start = Date.now();
    const rows: { id: string; done: boolean }[] = [];
    const fol = new Follower(
      table(rows),
      (r) => String(r.done),
      (r) => !r.done,
      newId(start - 1),
    );
    const sent = new Map<string, string[]>();
    const take = (now: number) => {
      for (const r of fol.poll(now)) sent.set(r.id, [...(sent.get(r.id) ?? []), String(r.done)]);
    };
    let now = start;
    for (let tick = 0; tick < 24; tick++) {
      now += 500;
      for (let i = 0; i < perSecond / 2; i++) {
        const done = openEvery === null || i % openEvery !== 0;
        rows.push({ id: newId(now - 500 + Math.floor((i * 1000) / perSecond)), done });
      }
      take(now);
    }
    for (const r of rows) r.done = true;
    for (let tick = 0; tick < 20; tick++) take((now += 500));
    expect(rows).toHaveLength(perSecond * 12);
    return { rows, sent };
  }

  it('falls behind under a heavy load and catches up: no row skipped, none sent twice', () => {
    // More rows a poll than a poll reads: 6,000 against 5,000.
    const { rows, sent } = heavyLoad(12_000, null);
    expect(rows.filter((r) => !sent.has(r.id))).toHaveLength(0);
    expect([...sent.values()].filter((states) => states.length !== 1)).toHaveLength(0);
  });

  it('under a heavy load with open rows, sends every row and every end once', () => {
    // The open rows hold the re-read window back to the first of them.
    const { rows, sent } = heavyLoad(2_400, 100);
    expect(rows.filter((r) => !sent.has(r.id))).toHaveLength(0);
    const states = [...sent.values()].map((s) => s.join(','));
    // A row first read after it ended is sent once, ended; one read while open, twice.
    expect(states.filter((s) => s !== 'true' && s !== 'false,true')).toEqual([]);
    expect(states.filter((s) => s === 'false,true').length).toBeGreaterThan(100);
  });

  it('does not send again the rows after an open one a replay reached', () => {
    const now = Date.now();
    const open = { id: newId(now - 60_000), done: false };
    const later = Array.from({ length: 50 }, (_, i) => ({
      id: newId(now - 50_000 + i * 500),
      done: true,
    }));
    const fol = new Follower(
      table([open, ...later]),
      (r) => String(r.done),
      (r) => !r.done,
      newId(now - 3_600_000),
    );
    expect(fol.poll(now)).toHaveLength(51);
    expect(fol.poll(now + 10)).toEqual([]);
    open.done = true;
    expect(fol.poll(now + 20).map((r) => r.id)).toEqual([open.id]);
    expect(fol.poll(now + 30)).toEqual([]);
  });

  it('sends the end of a row that was open before the stream began', () => {
    const now = Date.now();
    const old = { id: newId(now - 60_000), done: false };
    const fol = new Follower(
      table([old]),
      (r) => String(r.done),
      (r) => !r.done,
      newId(now - 1),
    );
    expect(fol.poll(now)).toEqual([]);
    old.done = true;
    expect(fol.poll(now + 10).map((r) => r.id)).toEqual([old.id]);
    expect(fol.poll(now + 20)).toEqual([]);
  });

  it('follows open rows for ever with an infinite window (sessions), ten minutes otherwise', () => {
    const now = Date.now();
    const mk = () => ({ id: newId(now - 20 * 60_000), done: false });
    const forever = mk();
    const bounded = mk();
    const a = new Follower(
      table([forever]),
      (r) => String(r.done),
      (r) => !r.done,
      newId(now - 1),
      {
        openWindowMs: Number.POSITIVE_INFINITY,
      },
    );
    const b = new Follower(
      table([bounded]),
      (r) => String(r.done),
      (r) => !r.done,
      newId(now - 1),
    );
    expect(a.poll(now)).toEqual([]);
    expect(b.poll(now)).toEqual([]);
    forever.done = true;
    bounded.done = true;
    expect(a.poll(now + 10).map((r) => r.id)).toEqual([forever.id]);
    expect(b.poll(now + 10)).toEqual([]);
  });
});
