import type { ApiDeps } from '../deps.js';
import { filteredPage } from '../paging.js';
import type { Router } from '../router.js';
import { connectionSchema, connectionsQuery, pageOf } from '../schemas.js';

export function connectionRoutes(r: Router, { store }: ApiDeps): void {
  r.add({
    method: 'get',
    path: '/api/connections',
    tag: 'connections',
    summary: 'List connections (tunnels and intercepted connections), newest first',
    query: connectionsQuery,
    response: pageOf(connectionSchema),
    handler: (_c, { query }) => {
      const { session, verdict, ...q } = query;
      return filteredPage(
        (p) => store.listConnections({ ...q, ...p, sessionId: session }),
        q,
        verdict === undefined ? null : (row) => row.verdictAction === verdict,
      );
    },
  });
}
