import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openStore, type MonitorEventInput, type Store } from '../../../src/store/index.js';
import { TempDirs, blockVerdict, requestInput } from './helpers.js';

const temp = new TempDirs();
const open: Store[] = [];

async function newStore(dataDir = temp.make()): Promise<Store> {
  const store = await openStore({ dataDir });
  open.push(store);
  return store;
}

afterEach(async () => {
  for (const s of open.splice(0)) await s.close().catch(() => undefined);
  temp.cleanup();
});

function event(sessionId: string, over: Partial<MonitorEventInput> = {}): MonitorEventInput {
  return {
    sessionId,
    pid: 4242,
    exe: '/usr/bin/python3',
    protocol: 'tcp',
    localAddr: '10.0.0.2',
    localPort: 50123,
    remoteAddr: '93.184.216.34',
    remotePort: 5432,
    state: 'ESTABLISHED',
    firstSeen: 1_000,
    lastSeen: 1_000,
    ...over,
  };
}

describe('monitor events', () => {
  it('stores an event, applies patches (absent fields keep their value) and lists it', async () => {
    const store = await newStore();
    const s = store.startSession({ kind: 'run', level: 'metadata' });
    const id = store.addMonitorEvent(
      event(s.id, { remoteAddr: '2001:DB8::1', hostname: 'DB.Example.org' }),
    );
    await store.flush();
    expect(store.listMonitorEvents({ sessionId: s.id }).items).toEqual([
      {
        id,
        sessionId: s.id,
        pid: 4242,
        exe: '/usr/bin/python3',
        protocol: 'tcp',
        localAddr: '10.0.0.2',
        localPort: 50123,
        remoteAddr: '2001:db8::1',
        remotePort: 5432,
        state: 'ESTABLISHED',
        firstSeen: 1_000,
        lastSeen: 1_000,
        hostname: 'db.example.org',
        org: null,
        verdictAction: null,
        verdictRule: null,
        violation: false,
        enforced: false,
      },
    ]);
    store.updateMonitorEvent(id, { lastSeen: 2_500, org: 'Example Corp', verdict: blockVerdict });
    store.updateMonitorEvent(id, { state: 'CLOSE_WAIT', enforced: true });
    await store.flush();
    expect(store.listMonitorEvents({ sessionId: s.id }).items[0]).toMatchObject({
      lastSeen: 2_500,
      state: 'CLOSE_WAIT',
      hostname: 'db.example.org',
      org: 'Example Corp',
      verdictAction: 'block',
      verdictRule: '*.openai.com',
      violation: true,
      enforced: true,
      firstSeen: 1_000,
    });
    store.updateMonitorEvent(id, { verdict: null, hostname: null });
    await store.flush();
    expect(store.listMonitorEvents({ sessionId: s.id }).items[0]).toMatchObject({
      verdictAction: null,
      violation: false,
      hostname: null,
      org: 'Example Corp',
      enforced: true,
    });
  });

  it('refuses a protocol other than tcp or udp', async () => {
    const store = await newStore();
    const s = store.startSession({ kind: 'run', level: 'metadata' });
    expect(() =>
      store.addMonitorEvent(event(s.id, { protocol: 'icmp' as unknown as 'tcp' })),
    ).toThrow(/monitor protocol/);
  });

  it('filters by session, pid and time, and pages with a cursor', async () => {
    const store = await newStore();
    const a = store.startSession({ kind: 'run', level: 'metadata' });
    const b = store.startSession({ kind: 'watch', level: 'metadata' });
    const now = Date.now();
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      ids.push(
        store.addMonitorEvent(
          event(a.id, { pid: i % 2 === 0 ? 100 : 200, firstSeen: now + i, lastSeen: now + i }),
        ),
      );
    }
    store.addMonitorEvent(event(b.id, { protocol: 'udp', remotePort: 53 }));
    await store.flush();

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page = store.listMonitorEvents({ sessionId: a.id, limit: 3, cursor });
      expect(page.items.length).toBeLessThanOrEqual(3);
      seen.push(...page.items.map((e) => e.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual([...ids].sort().reverse()); // by id (creation time), newest first, no gap
    expect(store.listMonitorEvents({ sessionId: a.id, pid: 200 }).items).toHaveLength(3);
    expect(
      store
        .listMonitorEvents({ sessionId: a.id, since: now + 5, order: 'asc' })
        .items.map((e) => e.id),
    ).toEqual(ids.filter((_, i) => i >= 5).sort());
    expect(store.listMonitorEvents({ sessionId: b.id }).items[0]).toMatchObject({
      protocol: 'udp',
      remotePort: 53,
    });
    expect(store.listMonitorEvents().items).toHaveLength(8);
  });

  it('links a violation to its monitor event', async () => {
    const store = await newStore();
    const s = store.startSession({ kind: 'run', level: 'metadata' });
    const ev = store.addMonitorEvent(event(s.id, { verdict: blockVerdict, enforced: true }));
    const v = store.addViolation({
      sessionId: s.id,
      time: 1_000,
      host: '93.184.216.34',
      port: 5432,
      verdict: blockVerdict,
      enforced: true,
      monitorEventId: ev,
    });
    await store.flush();
    expect(store.listViolations({ sessionId: s.id }).items).toEqual([
      expect.objectContaining({ id: v, monitorEventId: ev, connectionId: null, requestId: null }),
    ]);
  });
});

describe('session counts', () => {
  it('are live while the session runs and frozen when it ends', async () => {
    const dataDir = temp.make();
    const store = await newStore(dataDir);
    const s = store.startSession({ kind: 'run', command: ['curl', 'x'], level: 'metadata' });
    expect(s.counts).toEqual({ connections: 0, requests: 0, violations: 0, monitorEvents: 0 });
    await store.addRequest(requestInput(s.id));
    await store.addRequest(requestInput(s.id));
    store.addMonitorEvent(event(s.id));
    store.addViolation({
      sessionId: s.id,
      time: 1,
      host: 'api.openai.com',
      port: 443,
      verdict: blockVerdict,
      enforced: true,
    });
    await store.flush();
    const live = { connections: 0, requests: 2, violations: 1, monitorEvents: 1 };
    expect(store.listSessions().items[0]?.counts).toEqual(live);
    store.endSession(s.id, { status: 'completed', exitCode: 0 });
    await store.flush();
    expect(store.listSessions().items[0]?.counts).toEqual(live);

    // Frozen: stored in the session row, so listing does not count rows again.
    const db = new Database(join(dataDir, 'trustrun.db'), { readonly: true });
    try {
      expect(
        db
          .prepare(
            'SELECT connection_count, request_count, violation_count, monitor_event_count FROM sessions',
          )
          .get(),
      ).toEqual({
        connection_count: 0,
        request_count: 2,
        violation_count: 1,
        monitor_event_count: 1,
      });
    } finally {
      db.close();
    }
    // getSession always counts live.
    await store.addRequest(requestInput(s.id));
    await store.flush();
    expect(store.getSession(s.id)?.counts.requests).toBe(3);
    expect(store.listSessions().items[0]?.counts.requests).toBe(2);
  });
});

describe('sessions left running by a dead process', () => {
  it('are marked interrupted with their counts frozen and the last socket seen as their end', async () => {
    const dataDir = temp.make();
    const store = await newStore(dataDir);
    const s = store.startSession({ kind: 'watch', level: 'metadata' });
    store.addMonitorEvent(event(s.id, { firstSeen: s.startedAt, lastSeen: s.startedAt + 9_000 }));
    await store.close();
    // The owner is gone: a pid that has exited.
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    const db = new Database(join(dataDir, 'trustrun.db'));
    db.prepare('UPDATE sessions SET pid = ?, owner_token = ? WHERE id = ?').run(
      dead,
      'linux:x:1',
      s.id,
    );
    db.close();

    const again = await newStore(dataDir);
    expect(again.listSessions().items[0]).toMatchObject({
      id: s.id,
      status: 'interrupted',
      endedAt: s.startedAt + 9_000,
      counts: { connections: 0, requests: 0, violations: 0, monitorEvents: 1 },
    });
    const raw = new Database(join(dataDir, 'trustrun.db'), { readonly: true });
    try {
      expect(raw.prepare('SELECT monitor_event_count AS n FROM sessions').get()).toEqual({ n: 1 });
      const plan = (sql: string) =>
        (raw.prepare(`EXPLAIN QUERY PLAN ${sql}`).all('s') as { detail: string }[])
          .map((r) => r.detail)
          .join('; ');
      expect(
        plan('SELECT * FROM monitor_events WHERE session_id = ? ORDER BY id DESC LIMIT 100'),
      ).toMatch(/USING (COVERING )?INDEX monitor_events_session/);
      expect(plan('SELECT * FROM scan_findings WHERE scan_id = ? ORDER BY id LIMIT 100')).toMatch(
        /USING (COVERING )?INDEX scan_findings_scan/,
      );
    } finally {
      raw.close();
    }
  });
});
