import type { SessionRow } from '../../store/index.js';
import type { ApiDeps } from '../deps.js';
import { notFound } from '../errors.js';
import { filteredPage } from '../paging.js';
import type { Router } from '../router.js';
import { idParam, pageOf, sessionDetailSchema, sessionSchema, sessionsQuery } from '../schemas.js';

/**
 * A session as the API shows it: whether it may hold PHI. Its command line is stored redacted
 * (the store does it), so a search cannot probe a masked secret either.
 */
export function withPhi<T extends SessionRow>(s: T): T & { phi: boolean } {
  return { ...s, phi: s.level !== 'metadata' };
}

export function sessionRoutes(r: Router, { store }: ApiDeps): void {
  r.add({
    method: 'get',
    path: '/api/sessions',
    tag: 'sessions',
    summary: 'List sessions, newest first',
    query: sessionsQuery,
    response: pageOf(sessionSchema),
    handler: (_c, { query }) => {
      const { status, kind, q, ...page } = query;
      const needle = q?.trim().toLowerCase() ?? '';
      const keep =
        status === undefined && kind === undefined && needle === ''
          ? null
          : (s: SessionRow) =>
              (status === undefined || s.status === status) &&
              (kind === undefined || s.kind === kind) &&
              (needle === '' ||
                [s.id, s.policy ?? '', ...(s.command ?? [])].some((t) =>
                  t.toLowerCase().includes(needle),
                ));
      const res = filteredPage((p) => store.listSessions(p), page, keep);
      return { items: res.items.map(withPhi), nextCursor: res.nextCursor };
    },
  });

  r.add({
    method: 'get',
    path: '/api/sessions/:id',
    tag: 'sessions',
    summary: 'One session with its counts of connections, requests and violations',
    params: idParam,
    response: sessionDetailSchema,
    handler: (_c, { params }) => {
      const s = store.getSession(params.id);
      if (!s) throw notFound(`session ${params.id}`);
      return withPhi(s);
    },
  });
}
