/**
 * The guards every request passes, in order: security headers on every response, Host allowlist
 * (DNS rebinding), Origin and Sec-Fetch-Site checks (no cross-origin use, no CORS), JSON-only
 * bodies, then authentication (bearer token or browser-session cookie).
 */
import type { Context, MiddlewareHandler } from 'hono';
import { getCookie, setCookie } from 'hono/cookie';
import { BROWSER_SESSION_TTL_MS, type Credentials } from './tokens.js';

export const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; " +
    "frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

export function cookieName(port: number): string {
  return `trustrun_session_${port}`;
}

export function allowedHosts(port: number): string[] {
  return [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`];
}

export const securityHeaders: MiddlewareHandler = async (c, next) => {
  await next();
  for (const [k, v] of Object.entries(SECURITY_HEADERS)) c.res.headers.set(k, v);
  for (const k of [...c.res.headers.keys()]) {
    if (k.toLowerCase().startsWith('access-control-')) c.res.headers.delete(k);
  }
};

function deny(c: Context, status: 403 | 401 | 415, code: string, message: string): Response {
  return c.json({ error: { code, message } }, status);
}

/** Host header and URL authority must name us; Origin, when sent, must be one of our origins. */
export function originGuard(port: () => number): MiddlewareHandler {
  return async (c, next) => {
    const hosts = allowedHosts(port());
    const header = c.req.header('host');
    const urlHost = new URL(c.req.url).host;
    if (
      (header !== undefined && !hosts.includes(header.toLowerCase())) ||
      !hosts.includes(urlHost)
    ) {
      return deny(
        c,
        403,
        'TR_FORBIDDEN_HOST',
        'this Host is not allowed (use 127.0.0.1 or localhost with the server port)',
      );
    }
    const origin = c.req.header('origin');
    if (origin !== undefined && !hosts.map((h) => `http://${h}`).includes(origin.toLowerCase())) {
      return deny(c, 403, 'TR_FORBIDDEN_ORIGIN', 'cross-origin requests are not allowed');
    }
    const site = c.req.header('sec-fetch-site');
    if (site === 'cross-site' || site === 'same-site') {
      return deny(c, 403, 'TR_FORBIDDEN_ORIGIN', 'cross-site requests are not allowed');
    }
    await next();
  };
}

/** Requests that carry a body must say application/json. */
export const jsonOnly: MiddlewareHandler = async (c, next) => {
  const m = c.req.method;
  if (m === 'POST' || m === 'PUT' || m === 'PATCH' || m === 'DELETE') {
    const hasBody =
      m !== 'DELETE' ||
      (c.req.header('content-length') ?? '0') !== '0' ||
      c.req.header('transfer-encoding') !== undefined;
    const type = (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
    if (hasBody && type !== 'application/json') {
      return deny(c, 415, 'TR_UNSUPPORTED_MEDIA_TYPE', 'request bodies must be application/json');
    }
  }
  await next();
};

const LOGIN_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>TrustRun: sign in</title></head>
<body><main><h1>TrustRun</h1>
<p>This page needs the one-time link that <code>trustrun server</code> printed when it started
(or an <code>Authorization: Bearer</code> header with the token in the data directory's
<code>api-token</code> file).</p>
<p>Restart <code>trustrun server</code> to get a new link.</p></main></body></html>`;

/**
 * `GET /auth?token=ONE_TIME` exchanges a one-time token for an HttpOnly SameSite=Strict cookie
 * and redirects to the UI; everything else needs the bearer token or that cookie.
 */
/** Whether the request carries the API's bearer token (not merely a browser cookie). */
export function hasBearer(c: Context, creds: Credentials): boolean {
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header('authorization') ?? '')?.[1];
  return bearer !== undefined && creds.bearerOk(bearer);
}

export function authGuard(creds: Credentials, port: () => number): MiddlewareHandler {
  return async (c, next) => {
    const path = new URL(c.req.url).pathname;
    if (path === '/auth' && c.req.method === 'GET') {
      const session = creds.exchange(c.req.query('token') ?? '');
      if (session === null) {
        return c.html(
          LOGIN_PAGE.replace('<p>This', '<p>That link was already used or has expired. This'),
          401,
        );
      }
      setCookie(c, cookieName(port()), session, {
        httpOnly: true,
        sameSite: 'Strict',
        path: '/',
        maxAge: BROWSER_SESSION_TTL_MS / 1000,
      });
      return c.redirect('/', 303);
    }
    if (hasBearer(c, creds)) return next();
    const cookie = getCookie(c, cookieName(port()));
    if (cookie !== undefined && creds.sessionOk(cookie)) return next();
    if (path.startsWith('/api/')) {
      return deny(c, 401, 'TR_UNAUTHORIZED', 'missing or invalid API token');
    }
    return c.html(LOGIN_PAGE, 401);
  };
}
