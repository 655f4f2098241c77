import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Hono } from 'hono';
import type { Verdict } from '../../../src/core/index.js';
import { Credentials, createApi, loadOrCreateApiToken } from '../../../src/api/index.js';
import { openStore, type Store } from '../../../src/store/index.js';
import { nextMillisecond } from '../../helpers/wait.js';

export const PORT = 8470;
export const BASE = `http://127.0.0.1:${PORT}`;
/** Sent in redacted places; must never come back in any response. */
export const AUTH_MARKER = 'AuthMarker7f3a9c1e5b';
export const COOKIE_MARKER = 'CookieMarker4d2e8b6a';
export const QUERY_MARKER = 'QueryMarker9b1c7d3f';
export const SSN = '512-34-7890';

export interface Fixture {
  dir: string;
  store: Store;
  app: Hono;
  token: string;
  creds: Credentials;
  sessionId: string;
  otherSessionId: string;
  requestIds: string[];
  /** GET/other with the bearer token and an allowed Host. */
  call(path: string, init?: RequestInit & { token?: string | null }): Promise<Response>;
  close(): Promise<void>;
}

const alert: Verdict = {
  action: 'alert',
  violation: true,
  ruleIndex: 1,
  rule: 'files.example.test',
  reason: 'review uploads',
  explanation: 'Rule 2 "files.example.test" matched: alert (review uploads).',
  policy: 'test',
};

const block = (rule: string): Verdict => ({
  action: 'block',
  violation: true,
  ruleIndex: 0,
  rule,
  reason: 'not approved',
  explanation: `Rule 1 "${rule}" matched: block (not approved).`,
  policy: 'test',
});

/**
 * A real store in a temp data dir with two sessions, requests carrying secrets, and a violation.
 * Its records are made a clock tick apart, so they are in id order, "newest first" has one
 * answer, and a stream opened after the fixture starts after all of them.
 */
export async function makeFixture(requests = 5): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), 'tr-api-'));
  const store = await openStore({ dataDir: dir });
  const token = loadOrCreateApiToken(dir);
  const creds = new Credentials(token);
  const app = createApi({ store, port: PORT, credentials: creds, pollMs: 50 });

  const s = store.startSession({ kind: 'proxy', level: 'full', listen: '127.0.0.1:8080' });
  await nextMillisecond();
  const other = store.startSession({ kind: 'run', level: 'metadata', command: ['Rscript', 'x.R'] });
  const now = Date.now();
  const connectionId = store.addConnection({
    sessionId: s.id,
    startedAt: now,
    clientAddr: '127.0.0.1',
    clientPort: 50000,
    pid: 4242,
    exe: '/usr/bin/curl',
    host: 'api.example.test',
    port: 443,
    mode: 'intercept',
  });
  const requestIds: string[] = [];
  for (let i = 0; i < requests; i++) {
    const id = await store.addRequest({
      sessionId: s.id,
      connectionId,
      startedAt: now + i,
      method: i === 0 ? 'POST' : 'GET',
      scheme: 'https',
      host: i % 2 === 0 ? 'api.example.test' : 'files.example.test',
      port: 443,
      url: `/v1/patients/${i}?access_token=${QUERY_MARKER}&page=${i}`,
      requestHeaders: [
        ['Host', 'api.example.test'],
        ['Authorization', `Bearer ${AUTH_MARKER}`],
        ['Cookie', `sid=${COOKIE_MARKER}`],
        ['Content-Type', 'application/json'],
      ],
      verdict: i === 3 ? alert : null,
      pid: 4242,
      exe: '/usr/bin/curl',
    });
    store.completeRequest(id, {
      endedAt: now + i + 10,
      status: i === 2 ? 404 : 200,
      responseHeaders: [
        ['content-type', 'application/json'],
        ['set-cookie', `session=${COOKIE_MARKER}; HttpOnly`],
      ],
      requestBody: {
        data: Buffer.from(JSON.stringify({ note: `patient SSN ${SSN}`, ok: true })),
        truncated: false,
        size: 40,
      },
      responseBody: {
        data: Buffer.from(JSON.stringify({ ssn: SSN, result: 'fine' })),
        truncated: false,
        size: 30,
      },
      outcome: 'ok',
    });
    requestIds.push(id);
    await nextMillisecond();
  }
  store.addViolation({
    sessionId: s.id,
    time: now + 100,
    host: 'evil.example.test',
    port: 443,
    method: 'POST',
    verdict: block('evil.example.test'),
    enforced: true,
    connectionId: null,
    requestId: null,
  });
  await nextMillisecond();
  store.addViolation({
    sessionId: s.id,
    time: now + 3,
    host: 'files.example.test',
    port: 443,
    method: 'GET',
    verdict: alert,
    enforced: false,
    connectionId,
    requestId: requestIds[3]!,
  });
  await store.flush();
  await nextMillisecond();

  const call = (path: string, init: RequestInit & { token?: string | null } = {}) => {
    const { token: t, ...rest } = init;
    const headers = new Headers(rest.headers);
    if (!headers.has('host')) headers.set('host', `127.0.0.1:${PORT}`);
    const use = t === undefined ? token : t;
    if (use !== null && !headers.has('authorization'))
      headers.set('authorization', `Bearer ${use}`);
    return Promise.resolve(app.request(`${BASE}${path}`, { ...rest, headers }));
  };
  return {
    dir,
    store,
    app,
    token,
    creds,
    sessionId: s.id,
    otherSessionId: other.id,
    requestIds,
    call,
    async close() {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Fails when a response text contains a secret that must have been redacted. */
export function assertNoSecrets(text: string): void {
  for (const m of [AUTH_MARKER, COOKIE_MARKER, QUERY_MARKER, SSN]) {
    if (text.includes(m)) throw new Error(`response leaked ${m}: ${text.slice(0, 300)}`);
  }
}
