import { afterEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../../src/store/index.js';
import type { FlowRecorder } from '../../../src/proxy/index.js';
import { TempDirs, allowVerdict, blockVerdict, expectCode, requestInput } from './helpers.js';

const temp = new TempDirs();
const open: Store[] = [];

async function newStore(batchMax?: number): Promise<Store> {
  const store = await openStore({ dataDir: temp.make(), batchMax });
  open.push(store);
  return store;
}

afterEach(async () => {
  for (const s of open.splice(0)) await s.close().catch(() => undefined);
  temp.cleanup();
});

describe('store round trips', () => {
  it('is a FlowRecorder for the proxy', async () => {
    const store = await newStore();
    const recorder: FlowRecorder = store; // compile-time contract with src/proxy
    expect(recorder.healthy).toBe(true);
  });

  it('starts, ends and lists sessions with their counts', async () => {
    const store = await newStore();
    const s = store.startSession({
      kind: 'run',
      command: ['Rscript', 'analysis.R'],
      policy: 'hipaa.yaml',
      level: 'full',
      listen: '127.0.0.1:8080',
    });
    expect(s.status).toBe('running');
    const c = store.addConnection({
      sessionId: s.id,
      startedAt: 1000,
      clientAddr: '127.0.0.1',
      clientPort: 50000,
      host: 'API.Example.com',
      port: 443,
      mode: 'intercept',
    });
    await store.addRequest(requestInput(s.id, { connectionId: c }));
    store.addViolation({
      sessionId: s.id,
      time: 2000,
      host: 'api.openai.com',
      port: 443,
      method: 'post',
      verdict: blockVerdict,
      enforced: true,
      connectionId: c,
    });
    store.endSession(s.id, { status: 'completed', exitCode: 3 });
    await store.flush();

    const got = store.getSession(s.id);
    expect(got).toMatchObject({
      id: s.id,
      kind: 'run',
      command: ['Rscript', 'analysis.R'],
      policy: 'hipaa.yaml',
      level: 'full',
      listen: '127.0.0.1:8080',
      pid: process.pid,
      status: 'completed',
      exitCode: 3,
      shreddedAt: null,
      counts: { connections: 1, requests: 1, violations: 1, monitorEvents: 0 },
    });
    expect(got?.endedAt).toBeGreaterThanOrEqual(s.startedAt);
    expect(store.listSessions().items.map((x) => x.id)).toEqual([s.id]);
    expect(store.getSession('0000000000000000000000')).toBeNull();
  });

  it('records a connection and applies patches (absent fields keep their value)', async () => {
    const store = await newStore();
    const s = store.startSession({ kind: 'proxy', level: 'metadata' });
    const id = store.addConnection({
      sessionId: s.id,
      startedAt: 1000,
      clientAddr: '127.0.0.1',
      clientPort: 50001,
      pid: 4242,
      exe: '/usr/bin/python3',
      host: 'api.example.com',
      port: 443,
      sni: 'api.example.com',
      mode: 'tunnel',
    });
    store.updateConnection(id, { ip: '93.184.216.34', alpn: 'h2', verdict: blockVerdict });
    store.updateConnection(id, {
      bytesUp: 120,
      bytesDown: 4096,
      endedAt: 1500,
      outcome: 'blocked',
      reason: 'policy',
    });
    await store.flush();
    const [row] = store.listConnections({ sessionId: s.id }).items;
    expect(row).toEqual({
      id,
      sessionId: s.id,
      startedAt: 1000,
      endedAt: 1500,
      clientAddr: '127.0.0.1',
      clientPort: 50001,
      pid: 4242,
      exe: '/usr/bin/python3',
      host: 'api.example.com',
      port: 443,
      ip: '93.184.216.34',
      sni: 'api.example.com',
      alpn: 'h2',
      mode: 'tunnel',
      bytesUp: 120,
      bytesDown: 4096,
      outcome: 'blocked',
      reason: 'policy',
      verdictAction: 'block',
      verdictRule: '*.openai.com',
      violation: true,
    });
    store.updateConnection(id, { verdict: null });
    await store.flush();
    expect(store.listConnections({ sessionId: s.id }).items[0]).toMatchObject({
      verdictAction: null,
      verdictRule: null,
      violation: false,
      ip: '93.184.216.34',
    });
  });

  it('stores a request with sealed URL, headers and bodies and opens them', async () => {
    const store = await newStore();
    const s = store.startSession({ kind: 'proxy', level: 'full' });
    const started = Date.now() - 50;
    const id = await store.addRequest(
      requestInput(s.id, {
        startedAt: started,
        method: 'post',
        host: 'API.example.com',
        verdict: allowVerdict,
        pid: 77,
        exe: '/usr/bin/curl',
      }),
    );
    const reqBody = Buffer.from('{"ssn":"123-45-6789"}');
    const resBody = Buffer.alloc(3000, 0x61);
    store.completeRequest(id, {
      endedAt: started + 40,
      status: 201,
      responseHeaders: [
        ['content-type', 'application/json'],
        ['set-cookie', 'a=1'],
        ['set-cookie', 'b=2'],
      ],
      requestBody: { data: reqBody, truncated: false, size: reqBody.length },
      responseBody: { data: resBody, truncated: true, size: 10_000 },
      ttfbMs: 12,
      outcome: 'ok',
    });
    await store.flush();
    const got = store.getRequest(id);
    expect(got).toEqual({
      id,
      sessionId: s.id,
      connectionId: null,
      startedAt: started,
      endedAt: started + 40,
      method: 'POST',
      scheme: 'https',
      host: 'api.example.com',
      port: 443,
      status: 201,
      requestSize: reqBody.length,
      responseSize: 10_000,
      durationMs: 40,
      ttfbMs: 12,
      outcome: 'ok',
      reason: null,
      verdictAction: 'allow',
      verdictRule: 'api.example.com',
      violation: false,
      pid: 77,
      exe: '/usr/bin/curl',
      requestBodyTruncated: false,
      responseBodyTruncated: true,
      url: '/v1/patients/12345?include=labs',
      requestHeaders: [
        ['host', 'api.example.com'],
        ['content-type', 'application/json'],
        ['authorization', 'Bearer secret-token'],
      ],
      responseHeaders: [
        ['content-type', 'application/json'],
        ['set-cookie', 'a=1'],
        ['set-cookie', 'b=2'],
      ],
      requestBody: reqBody,
      responseBody: resBody,
    });
    // Lists carry the clear columns only.
    const [listed] = store.listRequests({ sessionId: s.id }).items;
    expect(listed).not.toHaveProperty('url');
    expect(listed).not.toHaveProperty('requestHeaders');
    expect(listed?.id).toBe(id);
  });

  it('keeps a request without response or bodies readable', async () => {
    const store = await newStore();
    const s = store.startSession({ kind: 'proxy', level: 'headers' });
    const id = await store.addRequest(requestInput(s.id, { url: '/' }));
    store.completeRequest(id, {
      endedAt: Date.now(),
      outcome: 'upstream_reset',
      reason: 'ECONNRESET',
    });
    await store.flush();
    expect(store.getRequest(id)).toMatchObject({
      url: '/',
      responseHeaders: null,
      requestBody: null,
      responseBody: null,
      status: null,
      outcome: 'upstream_reset',
      reason: 'ECONNRESET',
    });
    expect(store.getRequest('0000000000000000000000')).toBeNull();
  });

  it('records violations with the verdict', async () => {
    const store = await newStore();
    const s = store.startSession({ kind: 'run', level: 'metadata' });
    const id = store.addViolation({
      sessionId: s.id,
      time: 5000,
      host: 'API.OpenAI.com',
      port: 443,
      verdict: blockVerdict,
      enforced: false,
    });
    await store.flush();
    expect(store.listViolations({ sessionId: s.id }).items).toEqual([
      {
        id,
        sessionId: s.id,
        time: 5000,
        host: 'api.openai.com',
        port: 443,
        method: null,
        action: 'block',
        rule: '*.openai.com',
        ruleIndex: 0,
        reason: 'Direct OpenAI API bypasses the BAA',
        explanation: 'Rule 1 (*.openai.com) matched; action block.',
        enforced: false,
        connectionId: null,
        requestId: null,
        monitorEventId: null,
      },
    ]);
  });

  it('refuses records for a session it does not know, and bad enumerations', async () => {
    const store = await newStore();
    await expectCode(() => store.addRequest(requestInput('0mwwnv1k5e35926cdc7d3')), 'TR_NOT_FOUND');
    const s = store.startSession({ kind: 'proxy', level: 'headers' });
    expect(() =>
      store.addConnection({
        sessionId: s.id,
        startedAt: 1,
        clientAddr: '127.0.0.1',
        clientPort: 1,
        host: 'a',
        port: 1,
        mode: 'teleport' as never,
      }),
    ).toThrow(/invalid connection mode/);
    expect(() => store.startSession({ kind: 'proxy', level: 'everything' as never })).toThrow(
      /invalid capture level/,
    );
    expect(() =>
      store.completeRequest('0mwwnv1k5e35926cdc7d3', { endedAt: 1, outcome: 'ok' }),
    ).toThrow(/no request/);
  });
});

describe('queries', () => {
  async function seeded() {
    const store = await newStore(16);
    const a = store.startSession({ kind: 'proxy', level: 'headers' });
    const b = store.startSession({ kind: 'proxy', level: 'headers' });
    const hosts = ['api.example.com', 'files.example.com', 'api.openai.com', 'example.org'];
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) {
      const id = await store.addRequest(
        requestInput(i % 2 ? b.id : a.id, {
          host: hosts[i % 4]!,
          method: i % 3 ? 'GET' : 'POST',
          startedAt: 10_000 + i,
          verdict: i % 5 === 0 ? blockVerdict : null,
        }),
      );
      store.completeRequest(id, { endedAt: 10_100 + i, status: i % 4 ? 200 : 404, outcome: 'ok' });
      ids.push(id);
    }
    await store.flush();
    return { store, a, b, ids };
  }

  it('filters by session, host glob, method, status, violation and time', async () => {
    const { store, a, ids } = await seeded();
    const all = (q: Parameters<Store['listRequests']>[0]) =>
      store.listRequests({ ...q, limit: 1000 }).items.map((r) => r.id);
    expect(all({ sessionId: a.id })).toHaveLength(20);
    expect(all({ host: '*.example.com' })).toHaveLength(20);
    expect(all({ host: 'API.*' })).toHaveLength(20);
    expect(all({ host: '*.com' })).toHaveLength(30);
    expect(all({ host: 'example.org' })).toHaveLength(10);
    expect(all({ host: 'example.*' })).toHaveLength(10);
    expect(all({ method: 'post' })).toHaveLength(14);
    expect(all({ status: 404 })).toHaveLength(10);
    // Lists are ordered by id: creation time to the millisecond, then the id's random part.
    const desc = (xs: string[]) => [...xs].sort().reverse();
    expect(all({ violation: true })).toEqual(desc(ids.filter((_, i) => i % 5 === 0)));
    expect(all({ since: 10_010, until: 10_020 })).toEqual(desc(ids.slice(10, 20)));
    expect(all({ sessionId: a.id, host: 'api.*', method: 'GET' })).toHaveLength(13);
  });

  it('pages by cursor in both orders without gaps or repeats', async () => {
    const { store, ids } = await seeded();
    for (const order of ['desc', 'asc'] as const) {
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const page = store.listRequests({ limit: 7, cursor, order });
        seen.push(...page.items.map((r) => r.id));
        cursor = page.nextCursor;
        pages++;
      } while (cursor);
      expect(pages).toBe(6);
      const sorted = [...ids].sort();
      expect(seen).toEqual(order === 'asc' ? sorted : sorted.reverse());
    }
    const last = store.listRequests({ limit: 40 });
    expect(last.nextCursor).toBeNull();
    const conn = store.listSessions({ limit: 1 });
    expect(conn.items).toHaveLength(1);
    expect(store.listSessions({ limit: 1, cursor: conn.nextCursor }).items).toHaveLength(1);
  });

  it('rejects a bad cursor, limit or order with a usage error', async () => {
    const { store } = await seeded();
    await expectCode(() => store.listRequests({ cursor: "x' OR 1=1 --" }), 'TR_USAGE');
    await expectCode(() => store.listRequests({ limit: 0 }), 'TR_USAGE');
    await expectCode(() => store.listRequests({ limit: 5000 }), 'TR_USAGE');
    await expectCode(() => store.listViolations({ order: 'sideways' as never }), 'TR_USAGE');
    await expectCode(() => store.listConnections({ since: Number.NaN }), 'TR_USAGE');
  });
});
