import type { ApiDeps } from '../deps.js';
import { notFound } from '../errors.js';
import { sessionHar } from '../har.js';
import type { Router } from '../router.js';
import { idParam } from '../schemas.js';

export function harRoutes(r: Router, { store, version }: ApiDeps): void {
  r.add({
    method: 'get',
    path: '/api/sessions/:id/har',
    tag: 'sessions',
    summary: "HAR 1.2 export of a session's requests, redacted",
    description: 'Sent as a download (trustrun-SESSION.har); the first 10,000 requests.',
    params: idParam,
    produces: 'application/json',
    handler: (c, { params }) => {
      if (!store.getSession(params.id)) throw notFound(`session ${params.id}`);
      const har = sessionHar(store, params.id, version);
      c.header('Content-Disposition', `attachment; filename="trustrun-${params.id}.har"`);
      return c.json(har);
    },
  });
}
