import { deleteCookie, getCookie } from 'hono/cookie';
import { z } from 'zod';
import type { ApiDeps } from '../deps.js';
import type { Router } from '../router.js';
import { linkBody } from '../schemas.js';
import { ApiError } from '../errors.js';
import { cookieName, hasBearer } from '../security.js';

export function authRoutes(r: Router, { credentials }: ApiDeps): void {
  r.add({
    method: 'post',
    path: '/api/auth/links',
    tag: 'auth',
    summary: 'Make a new one-time link for a browser (valid 15 minutes, one use)',
    body: linkBody,
    response: z.object({ oneTimeUrl: z.string() }),
    handler: (c) => {
      // A browser session must not renew itself past its 12 hours by minting new links.
      if (!hasBearer(c, credentials)) {
        throw new ApiError(
          403,
          'TR_FORBIDDEN',
          'a new link needs the bearer token, not a browser session',
        );
      }
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
