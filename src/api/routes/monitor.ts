import type { MonitorEventRow } from '../../store/index.js';
import type { ApiDeps } from '../deps.js';
import { filteredPage } from '../paging.js';
import type { Router } from '../router.js';
import { monitorEventSchema, monitorEventsQuery, pageOf } from '../schemas.js';

/** `*` matches any characters, dots included; case-insensitive, like the store's host filter. */
function hostMatcher(pattern: string): (s: string | null) => boolean {
  const p = pattern.trim().toLowerCase();
  const re = new RegExp(
    `^${p
      .split('*')
      .map((x) => x.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
  );
  return (s) => s !== null && re.test(s.toLowerCase());
}

export function monitorRoutes(r: Router, { store }: ApiDeps): void {
  r.add({
    method: 'get',
    path: '/api/monitor-events',
    tag: 'monitor',
    summary: 'Sockets of monitored process trees that did not go through the proxy, newest first',
    query: monitorEventsQuery,
    response: pageOf(monitorEventSchema),
    handler: (_c, { query }) => {
      const { session, verdict, violation, host, ...q } = query;
      const hostOk = host === undefined ? null : hostMatcher(host);
      const keep =
        verdict === undefined && violation === undefined && hostOk === null
          ? null
          : (e: MonitorEventRow) =>
              (verdict === undefined || e.verdictAction === verdict) &&
              (violation === undefined || e.violation === violation) &&
              (hostOk === null || hostOk(e.hostname) || hostOk(e.remoteAddr));
      return filteredPage(
        (p) => store.listMonitorEvents({ ...q, ...p, sessionId: session }),
        q,
        keep,
      );
    },
  });
}
