import type { ViolationRow } from '../../store/index.js';
import type { ApiDeps } from '../deps.js';
import { filteredPage } from '../paging.js';
import type { Router } from '../router.js';
import { pageOf, violationSchema, violationsQuery } from '../schemas.js';

export function violationRoutes(r: Router, { store }: ApiDeps): void {
  r.add({
    method: 'get',
    path: '/api/violations',
    tag: 'violations',
    summary: 'List policy violations, newest first',
    query: violationsQuery,
    response: pageOf(violationSchema),
    handler: (_c, { query }) => {
      const { session, verdict, method, ...q } = query;
      const m = method?.toUpperCase();
      const keep =
        verdict === undefined && m === undefined
          ? null
          : (v: ViolationRow) =>
              (verdict === undefined || v.action === verdict) &&
              (m === undefined || v.method === m);
      return filteredPage((p) => store.listViolations({ ...q, ...p, sessionId: session }), q, keep);
    },
  });
}
