import { statSync, writeFileSync, chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadOrCreateApiToken } from '../../../src/api/index.js';
import { PORT, makeFixture, type Fixture } from './fixture.js';

let f: Fixture;
beforeEach(async () => {
  f = await makeFixture(1);
});
afterEach(async () => {
  await f.close();
});

/** An empty JSON POST made by a browser: its session cookie, no bearer token. */
function postWithCookie(path: string, cookie: string): Promise<Response> {
  return f.call(path, {
    token: null,
    method: 'POST',
    headers: { cookie, 'content-type': 'application/json' },
    body: '{}',
  });
}

function expectSecurityHeaders(res: Response) {
  expect(res.headers.get('content-security-policy')).toContain("default-src 'self'");
  expect(res.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
  expect(res.headers.get('x-content-type-options')).toBe('nosniff');
  expect(res.headers.get('referrer-policy')).toBe('no-referrer');
  expect(res.headers.get('cache-control')).toBe('no-store');
  for (const k of res.headers.keys()) expect(k).not.toMatch(/^access-control-/);
}

describe('authentication', () => {
  it('answers 401 without a token, with a wrong token, and with a malformed header', async () => {
    for (const token of [null, 'x'.repeat(43), '']) {
      const res = await f.call('/api/sessions', { token });
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe(
        'TR_UNAUTHORIZED',
      );
      expectSecurityHeaders(res);
    }
    const basic = await f.call('/api/sessions', {
      token: null,
      headers: { authorization: `Basic ${f.token}` },
    });
    expect(basic.status).toBe(401);
  });

  it('protects the UI and the OpenAPI document too', async () => {
    for (const p of ['/', '/ui/app.js', '/api/openapi.json', '/api/stream']) {
      const res = await f.call(p, { token: null });
      expect(res.status, p).toBe(401);
      expect(await res.text()).not.toContain('<script');
    }
  });

  it('accepts the bearer token from <dataDir>/api-token, a 0600 file', async () => {
    const res = await f.call('/api/sessions');
    expect(res.status).toBe(200);
    expectSecurityHeaders(res);
    expect(statSync(join(f.dir, 'api-token')).mode & 0o777).toBe(0o600);
    expect(loadOrCreateApiToken(f.dir)).toBe(f.token);
  });

  it('refuses an api-token file that others can read', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tr-api-tok-'));
    try {
      writeFileSync(join(dir, 'api-token'), 'a'.repeat(43));
      chmodSync(join(dir, 'api-token'), 0o644);
      expect(() => loadOrCreateApiToken(dir)).toThrow(/readable by others/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('exchanges a one-time link for an HttpOnly SameSite=Strict cookie, once', async () => {
    const ott = f.creds.issueOneTime();
    const res = await f.call(`/auth?token=${ott}`, { token: null });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/');
    const setCookie = res.headers.get('set-cookie')!;
    expect(setCookie).toMatch(new RegExp(`^trustrun_session_${PORT}=`));
    expect(setCookie).toMatch(/HttpOnly/);
    expect(setCookie).toMatch(/SameSite=Strict/);
    expect(setCookie).not.toContain(ott);
    const cookie = setCookie.split(';')[0]!;

    const ok = await f.call('/api/sessions', { token: null, headers: { cookie } });
    expect(ok.status).toBe(200);
    const page = await f.call('/', { token: null, headers: { cookie } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<script type="module" src="/ui/app.js">');

    const again = await f.call(`/auth?token=${ott}`, { token: null });
    expect(again.status).toBe(401);
    expect(again.headers.get('set-cookie')).toBeNull();
    const forged = await f.call('/api/sessions', {
      token: null,
      headers: { cookie: `trustrun_session_${PORT}=${'b'.repeat(43)}` },
    });
    expect(forged.status).toBe(401);
  });

  it('logout ends the browser session', async () => {
    const res = await f.call(`/auth?token=${f.creds.issueOneTime()}`, { token: null });
    const cookie = res.headers.get('set-cookie')!.split(';')[0]!;
    const out = await postWithCookie('/api/auth/logout', cookie);
    expect(out.status).toBe(200);
    expect((await f.call('/api/sessions', { token: null, headers: { cookie } })).status).toBe(401);
  });

  it('issues new one-time links to a bearer client', async () => {
    const res = await f.call('/api/auth/links', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(res.status).toBe(200);
    const { oneTimeUrl } = (await res.json()) as { oneTimeUrl: string };
    expect(oneTimeUrl).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:${PORT}/auth\\?token=`));
    const token = new URL(oneTimeUrl).searchParams.get('token')!;
    const login = await f.call(`/auth?token=${token}`, { token: null });
    expect(login.status).toBe(303);
    // A browser session cannot mint links of its own (it would outlive its 12 hours).
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
    const again = await postWithCookie('/api/auth/links', cookie);
    expect(again.status).toBe(403);
    expect(await again.json()).toMatchObject({ error: { code: 'TR_FORBIDDEN' } });
    expect((await f.call('/api/sessions', { token: null, headers: { cookie } })).status).toBe(200);
  });
});

describe('Host, Origin and content type', () => {
  it('answers 403 for a foreign Host (DNS rebinding), even with a valid token', async () => {
    for (const host of [
      `evil.example:${PORT}`,
      '127.0.0.1:9999',
      `127.0.0.2:${PORT}`,
      'localhost',
    ]) {
      const res = await f.call('/api/sessions', { headers: { host } });
      expect(res.status, host).toBe(403);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe(
        'TR_FORBIDDEN_HOST',
      );
      expectSecurityHeaders(res);
    }
    for (const host of [`localhost:${PORT}`, `[::1]:${PORT}`]) {
      expect((await f.call('/api/sessions', { headers: { host } })).status, host).toBe(200);
    }
  });

  it('answers 403 for a foreign Origin or a cross-site fetch, and sends no CORS headers', async () => {
    for (const origin of ['http://evil.example', `http://127.0.0.1:${PORT + 1}`, 'null']) {
      const res = await f.call('/api/sessions', { headers: { origin } });
      expect(res.status, origin).toBe(403);
      expectSecurityHeaders(res);
    }
    const site = await f.call('/api/sessions', { headers: { 'sec-fetch-site': 'same-site' } });
    expect(site.status).toBe(403);
    const own = await f.call('/api/sessions', { headers: { origin: `http://localhost:${PORT}` } });
    expect(own.status).toBe(200);
    const pre = await f.call('/api/policies/validate', {
      method: 'OPTIONS',
      headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST' },
    });
    expect(pre.status).toBe(403);
    for (const k of pre.headers.keys()) expect(k).not.toMatch(/^access-control-/);
  });

  it('answers 415 for bodies that are not application/json', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data']) {
      const res = await f.call('/api/policies/validate', {
        method: 'POST',
        headers: { 'content-type': type },
        body: 'yaml=x',
      });
      expect(res.status, type).toBe(415);
    }
    const none = await f.call('/api/policies/p1', { method: 'PUT', body: '{"yaml":""}' });
    expect(none.status).toBe(415);
  });

  it('answers 400 for a body that is not JSON, and 404 for unknown endpoints', async () => {
    const bad = await f.call('/api/policies/validate', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{yaml:',
    });
    expect(bad.status).toBe(400);
    expect((await f.call('/api/nothing')).status).toBe(404);
    expect((await f.call('/ui/../../package.json')).status).toBe(404);
    expect((await f.call('/ui/%2e%2e/index.ts')).status).toBe(404);
  });
});
