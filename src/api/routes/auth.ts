import { deleteCookie, getCookie } from 'hono/cookie';
import { z } from 'zod';
import type { ApiDeps } from '../deps.js';
import type { Router } from '../router.js';
import { linkBody } from '../schemas.js';
import { cookieName } from '../security.js';

export function authRoutes(r: Router, { credentials }: ApiDeps): void {
  r.add({
    method: 'post',
    path: '/api/auth/links',
    tag: 'auth',
    summary: 'Make a new one-time link for a browser (valid 15 minutes, one use)',
    body: linkBody,
    response: z.object({ oneTimeUrl: z.string() }),
    handler: (c) => {
      const url = new URL(c.req.url);
      return { oneTimeUrl: `${url.origin}/auth?token=${credentials.issueOneTime()}` };
    },
  });

  r.add({
    method: 'post',
    path: '/api/auth/logout',
    tag: 'auth',
    summary: "End this browser's session (its cookie stops working)",
    body: linkBody,
    response: z.object({ loggedOut: z.boolean() }),
    handler: (c) => {
      const port = Number(new URL(c.req.url).port);
      const name = cookieName(port);
      const secret = getCookie(c, name);
      if (secret !== undefined) credentials.endSession(secret);
      deleteCookie(c, name, { path: '/' });
      return { loggedOut: secret !== undefined };
    },
  });
}
