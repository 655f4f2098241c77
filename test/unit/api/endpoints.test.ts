import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sessionSchema, violationSchema } from '../../../src/api/schemas.js';
import { assertNoSecrets, makeFixture, type Fixture } from './fixture.js';

let f: Fixture;
beforeEach(async () => {
  f = await makeFixture(5);
});
afterEach(async () => {
  await f.close();
});

type Json = Record<string, unknown> & {
  items: Record<string, unknown>[];
  nextCursor: string | null;
};

async function json(path: string): Promise<Json> {
  const res = await f.call(path);
  const text = await res.text();
  expect(res.status, `${path}: ${text.slice(0, 300)}`).toBe(200);
  assertNoSecrets(text);
  return JSON.parse(text) as Json;
}

async function bad(
  path: string,
): Promise<{ code: string; issues: { path: string; message: string }[] }> {
  const res = await f.call(path);
  expect(res.status, path).toBe(400);
  return (
    (await res.json()) as { error: { code: string; issues: { path: string; message: string }[] } }
  ).error;
}

describe('sessions', () => {
  it('lists sessions newest first, with the PHI flag, and filters by status, kind and search', async () => {
    const all = await json('/api/sessions');
    expect(all.items.map((s) => s.id)).toEqual([f.otherSessionId, f.sessionId]);
    expect(all.items[1]).toMatchObject({ level: 'full', phi: true, status: 'running' });
    expect(all.items[0]).toMatchObject({ level: 'metadata', phi: false });
    expect((await json('/api/sessions?kind=run')).items.map((s) => s.id)).toEqual([
      f.otherSessionId,
    ]);
    expect((await json('/api/sessions?q=rscript')).items.map((s) => s.id)).toEqual([
      f.otherSessionId,
    ]);
    expect((await json('/api/sessions?status=completed')).items).toEqual([]);
    f.store.endSession(f.otherSessionId, { status: 'completed', exitCode: 0 });
    await f.store.flush();
    expect((await json('/api/sessions?status=completed')).items.map((s) => s.id)).toEqual([
      f.otherSessionId,
    ]);
  });

  it("shows a session's command line redacted, in the list, the detail and the search", async () => {
    const s = f.store.startSession({
      kind: 'run',
      level: 'headers',
      command: [
        'curl',
        '-H',
        'Authorization: Bearer CMDBEARERsecret1',
        'https://api.example.test/x?api_key=CMDLINEsecret999',
      ],
    });
    await f.store.flush();
    for (const path of ['/api/sessions', `/api/sessions/${s.id}`]) {
      const text = await (await f.call(path)).text();
      expect(text, path).not.toMatch(/CMDLINEsecret|CMDBEARERsecret/);
      expect(text, path).toContain('api_key=[REDACTED');
    }
    const shown = (await json(`/api/sessions/${s.id}`)) as unknown as { command: string[] };
    expect(shown.command[0]).toBe('curl');
    expect(shown.command[3]).toMatch(/^https:\/\/api\.example\.test\/x\?api_key=\[REDACTED:/);
    expect((await json('/api/sessions?q=CMDLINEsecret')).items).toEqual([]);
    expect((await json('/api/sessions?q=api.example.test')).items.map((x) => x.id)).toEqual([s.id]);
  });

  it('refuses unknown query parameters, also on routes that take none', async () => {
    for (const path of [
      '/api/sessions?foo=1',
      `/api/sessions/${f.sessionId}?foo=1`,
      '/api/policies?foo=1',
      `/api/requests/${f.requestIds[0]}?foo=1`,
    ]) {
      const e = await bad(path);
      expect(e.code, path).toBe('TR_BAD_REQUEST');
    }
  });

  it('gives one session with its counts, 404 for an unknown one, 400 for a bad id', async () => {
    const s = await json(`/api/sessions/${f.sessionId}`);
    expect(s.counts).toMatchObject({ connections: 1, requests: 5, violations: 2 });
    const missing = await f.call(`/api/sessions/${'0'.repeat(9)}${'a'.repeat(12)}`);
    expect(missing.status).toBe(404);
    const e = await bad('/api/sessions/not-an-id');
    expect(e.issues[0]!.path).toBe('params.id');
  });
});

describe('the published schemas', () => {
  it('describe sessions and violations exactly as the endpoints return them', async () => {
    for (const s of (await json('/api/sessions')).items) sessionSchema.strict().parse(s);
    sessionSchema.strict().parse(await json(`/api/sessions/${f.sessionId}`));
    const violations = (await json('/api/violations')).items;
    expect(violations.length).toBeGreaterThan(0);
    for (const v of violations) violationSchema.strict().parse(v);
  });
});

describe('requests', () => {
  it('lists clear metadata only, and filters by session, host, method, status, verdict, time', async () => {
    const all = await json('/api/requests');
    expect(all.items).toHaveLength(5);
    expect(all.items[0]).not.toHaveProperty('url');
    expect(all.items[0]).not.toHaveProperty('requestHeaders');
    expect(all.items[0]).toMatchObject({ pid: 4242, exe: '/usr/bin/curl', scheme: 'https' });
    expect((await json(`/api/requests?session=${f.sessionId}`)).items).toHaveLength(5);
    expect((await json(`/api/requests?session=${f.otherSessionId}`)).items).toHaveLength(0);
    expect((await json('/api/requests?host=files.example.test')).items).toHaveLength(2);
    expect((await json('/api/requests?host=*.example.test')).items).toHaveLength(5);
    expect((await json('/api/requests?method=post')).items.map((r) => r.id)).toEqual([
      f.requestIds[0],
    ]);
    expect((await json('/api/requests?status=404')).items.map((r) => r.id)).toEqual([
      f.requestIds[2],
    ]);
    expect((await json('/api/requests?verdict=block')).items).toHaveLength(0);
    expect((await json('/api/requests?verdict=alert')).items.map((r) => r.id)).toEqual([
      f.requestIds[3],
    ]);
    expect((await json('/api/requests?violation=true')).items.map((r) => r.id)).toEqual([
      f.requestIds[3],
    ]);
    expect((await json('/api/requests?violation=false')).items).toHaveLength(4);
    // Ids made in the same millisecond sort in random order, so the earliest request is found by
    // its start time, not by its place in the list.
    const first = Math.min(...all.items.map((r) => r.startedAt as number));
    const since = await json(`/api/requests?since=${first + 1}`);
    expect(since.items).toHaveLength(4);
    const iso = new Date(first + 1).toISOString();
    expect((await json(`/api/requests?until=${encodeURIComponent(iso)}`)).items).toHaveLength(1);
  });

  it('adds redacted paths on request', async () => {
    const page = await json('/api/requests?path=true&limit=2');
    expect(page.items[0]!.path).toMatch(
      /^\/v1\/patients\/\d\?access_token=\[REDACTED:[a-z-]+\]&page=\d$/,
    );
    const e = await bad('/api/requests?path=true&limit=500');
    expect(e.issues[0]!.path).toBe('query.limit');
  });

  it('pages with a cursor: every request once, in order, then nextCursor null', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: Json = await json(
        `/api/requests?limit=2&order=asc${cursor ? `&cursor=${cursor}` : ''}`,
      );
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items.map((r) => r.id as string));
      cursor = page.nextCursor;
      pages++;
    } while (cursor !== null);
    expect(pages).toBe(3);
    // Ids made in the same millisecond sort in random order; the API's order is the id order.
    expect(seen).toEqual([...f.requestIds].sort());
    // A filter the store cannot apply (host glob + method) still pages correctly.
    const p1 = await json('/api/requests?method=GET&limit=3&order=asc');
    const p2 = await json(`/api/requests?method=GET&limit=3&order=asc&cursor=${p1.nextCursor}`);
    const gets = [...f.requestIds.slice(1)].sort();
    expect([...p1.items, ...p2.items].map((r) => r.id)).toEqual(gets);
    expect(p2.nextCursor).toBeNull();
  });

  it('answers 400 with zod issues for bad query parameters', async () => {
    for (const [q, where] of [
      ['limit=0', 'query.limit'],
      ['limit=5000', 'query.limit'],
      ['limit=abc', 'query.limit'],
      ['cursor=zzz', 'query.cursor'],
      ['order=up', 'query.order'],
      ['status=abc', 'query.status'],
      ['verdict=maybe', 'query.verdict'],
      ['violation=yes', 'query.violation'],
      ['since=yesterday', 'query.since'],
      ['session=1', 'query.session'],
      ['colour=red', 'query'],
    ] as const) {
      const e = await bad(`/api/requests?${q}`);
      expect(e.code).toBe('TR_BAD_REQUEST');
      expect(e.issues.length, q).toBeGreaterThan(0);
      expect(e.issues[0]!.path, q).toBe(where);
      expect(e.issues[0]!.message.length).toBeGreaterThan(0);
    }
  });

  it('gives the detail with URL, headers and bodies redacted, the redactions and the verdict', async () => {
    const id = f.requestIds[0]!;
    const res = await f.call(`/api/requests/${id}`);
    const text = await res.text();
    expect(res.status).toBe(200);
    assertNoSecrets(text);
    const r = JSON.parse(text) as {
      url: string;
      requestHeaders: [string, string][];
      responseHeaders: [string, string][];
      requestBody: { text: string; binary: boolean };
      responseBody: { text: string };
      redactions: { kind: string; location: string; count: number }[];
      verdict: { action: string | null; explanation: string };
    };
    expect(r.url).toMatch(
      /^https:\/\/api\.example\.test\/v1\/patients\/0\?access_token=\[REDACTED:/,
    );
    expect(r.requestHeaders).toContainEqual(['Authorization', 'Bearer [REDACTED:authorization]']);
    expect(r.requestHeaders).toContainEqual(['Host', 'api.example.test']);
    expect(r.responseHeaders.find(([n]) => n === 'set-cookie')![1]).toContain('[REDACTED:');
    expect(r.requestBody.text).toContain('[REDACTED:ssn]');
    expect(r.requestBody.text).toContain('\n  "note"');
    expect(r.responseBody.text).toContain('[REDACTED:');
    const kinds = r.redactions.map((x) => `${x.kind}@${x.location}`);
    expect(kinds).toContain('authorization@request header:authorization');
    expect(kinds.some((k) => k.startsWith('ssn@request body'))).toBe(true);
    expect(r.verdict.action).toBeNull();
    expect(r.verdict.explanation).toMatch(/No policy/);
    expect((await f.call(`/api/requests/${'0'.repeat(9)}${'b'.repeat(12)}`)).status).toBe(404);
  });

  it("explains a request's verdict with its recorded violation", async () => {
    const r = (await json(`/api/requests/${f.requestIds[3]}`)) as unknown as {
      verdict: {
        action: string;
        rule: string;
        violation: boolean;
        explanation: string;
        violations: { requestId: string }[];
      };
    };
    expect(r.verdict).toMatchObject({
      action: 'alert',
      rule: 'files.example.test',
      violation: true,
      explanation: 'Rule 2 "files.example.test" matched: alert (review uploads).',
    });
    expect(r.verdict.violations.map((v) => v.requestId)).toEqual([f.requestIds[3]]);
  });

  it('answers 410 for a request of a shredded session', async () => {
    await f.store.shredSession(f.sessionId);
    const res = await f.call(`/api/requests/${f.requestIds[0]}`);
    expect(res.status).toBe(410);
    const text = await res.text();
    expect(text).toMatch(/shredded/);
    assertNoSecrets(text);
  });
});

describe('connections and violations', () => {
  it('lists connections with filters', async () => {
    const all = await json('/api/connections');
    expect(all.items).toHaveLength(1);
    expect(all.items[0]).toMatchObject({ host: 'api.example.test', mode: 'intercept', pid: 4242 });
    expect((await json(`/api/connections?session=${f.otherSessionId}`)).items).toHaveLength(0);
    expect((await json('/api/connections?host=nope.test')).items).toHaveLength(0);
    expect((await json('/api/connections?verdict=allow')).items).toHaveLength(0);
    expect((await bad('/api/connections?violation=1')).issues[0]!.path).toBe('query.violation');
  });

  it('lists violations with their explanation, filtered by session, host, verdict, method, enforced', async () => {
    const all = await json('/api/violations');
    expect(all.items).toHaveLength(2);
    expect(all.items.find((v) => v.action === 'block')).toMatchObject({
      action: 'block',
      host: 'evil.example.test',
      enforced: true,
      explanation: 'Rule 1 "evil.example.test" matched: block (not approved).',
    });
    expect(
      (await json(`/api/violations?session=${f.sessionId}&verdict=block&method=post`)).items,
    ).toHaveLength(1);
    expect((await json('/api/violations?verdict=alert')).items.map((v) => v.requestId)).toEqual([
      f.requestIds[3],
    ]);
    expect((await json('/api/violations?verdict=kill')).items).toHaveLength(0);
    expect((await json('/api/violations?enforced=false')).items).toHaveLength(1);
    expect((await json('/api/violations?method=PUT')).items).toHaveLength(0);
    expect((await json(`/api/violations?session=${f.otherSessionId}`)).items).toHaveLength(0);
    expect((await json('/api/violations?host=*.example.test')).items).toHaveLength(2);
    expect((await json('/api/violations?host=evil.example.test')).items).toHaveLength(1);
    expect((await bad('/api/violations?verdict=deny')).issues[0]!.path).toBe('query.verdict');
  });
});

describe('HAR export', () => {
  it('exports the session as HAR 1.2, redacted, as a download', async () => {
    const res = await f.call(`/api/sessions/${f.sessionId}/har`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-disposition')).toBe(
      `attachment; filename="trustrun-${f.sessionId}.har"`,
    );
    const text = await res.text();
    assertNoSecrets(text);
    const har = JSON.parse(text) as {
      log: {
        version: string;
        entries: {
          request: {
            url: string;
            headers: { name: string; value: string }[];
            postData?: { text: string };
          };
          response: { status: number; content: { text?: string } };
          _trustrun: { id: string };
        }[];
      };
    };
    expect(har.log.version).toBe('1.2');
    expect(har.log.entries.map((e) => e._trustrun.id)).toEqual([...f.requestIds].sort());
    const e0 = har.log.entries.find((e) => e._trustrun.id === f.requestIds[0])!;
    expect(e0.request.url).toMatch(/^https:\/\/api\.example\.test\/v1\/patients\/0\?/);
    expect(e0.request.headers).toContainEqual({
      name: 'Authorization',
      value: 'Bearer [REDACTED:authorization]',
    });
    expect(e0.request.postData!.text).toContain('[REDACTED:ssn]');
    expect(e0.response.status).toBe(200);
    expect((await f.call(`/api/sessions/${'0'.repeat(9)}${'c'.repeat(12)}/har`)).status).toBe(404);
  });
});

describe('OpenAPI', () => {
  it('documents every route, generated from the zod schemas', async () => {
    const doc = (await json('/api/openapi.json')) as unknown as {
      openapi: string;
      paths: Record<
        string,
        Record<
          string,
          {
            parameters: { name: string; in: string }[];
            responses: Record<string, unknown>;
            requestBody?: unknown;
          }
        >
      >;
    };
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths).sort()).toEqual(
      [
        '/api/auth/links',
        '/api/auth/logout',
        '/api/connections',
        '/api/monitor-events',
        '/api/scans',
        '/api/scans/{id}',
        '/api/scans/{id}/findings',
        '/api/policies',
        '/api/policies/validate',
        '/api/policies/{name}',
        '/api/requests',
        '/api/requests/{id}',
        '/api/sessions',
        '/api/sessions/{id}',
        '/api/sessions/{id}/har',
        '/api/stream',
        '/api/violations',
      ].sort(),
    );
    const list = doc.paths['/api/requests']!.get!;
    expect(list.parameters.map((p) => p.name)).toEqual(
      expect.arrayContaining([
        'limit',
        'cursor',
        'session',
        'host',
        'method',
        'status',
        'verdict',
        'since',
        'until',
      ]),
    );
    expect(Object.keys(doc.paths['/api/policies/{name}']!).sort()).toEqual([
      'delete',
      'get',
      'put',
    ]);
    expect(doc.paths['/api/policies/{name}']!.put!.requestBody).toBeDefined();
    expect(doc.paths['/api/sessions/{id}']!.get!.parameters).toContainEqual(
      expect.objectContaining({ name: 'id', in: 'path' }),
    );
  });
});

describe('no response leaks a secret', () => {
  it('sweeps every endpoint and the UI files', async () => {
    const paths = [
      '/',
      '/ui/app.js',
      '/api/sessions',
      `/api/sessions/${f.sessionId}`,
      `/api/sessions/${f.sessionId}/har`,
      '/api/requests',
      '/api/requests?path=true',
      ...f.requestIds.map((id) => `/api/requests/${id}`),
      '/api/connections',
      '/api/violations',
      '/api/policies',
      '/api/openapi.json',
    ];
    for (const p of paths) {
      const res = await f.call(p);
      expect(res.status, p).toBe(200);
      assertNoSecrets(await res.text());
      for (const [k, v] of res.headers) assertNoSecrets(`${k}: ${v}`);
    }
  });
});
