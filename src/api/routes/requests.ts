import { isTrustRunError } from '../../core/index.js';
import { redactUrl, type RequestRow, type ViolationRow } from '../../store/index.js';
import type { ApiDeps } from '../deps.js';
import { ApiError, notFound } from '../errors.js';
import { filteredPage } from '../paging.js';
import { showRequest } from '../redact.js';
import type { Router } from '../router.js';
import {
  idParam,
  pageOf,
  requestDetailSchema,
  requestListItemSchema,
  requestsQuery,
} from '../schemas.js';

function explain(row: RequestRow, violations: ViolationRow[]): string | null {
  const own = violations.find((v) => v.requestId === row.id) ?? violations[0];
  if (own) return own.explanation;
  if (row.verdictAction === null) return 'No policy was in force: the request was only recorded.';
  if (row.verdictRule === null)
    return `The policy's default action (${row.verdictAction}) applied.`;
  return `Rule "${row.verdictRule}" matched: ${row.verdictAction}.`;
}

/** Only the clear columns of a detail: the sealed fields leave through showRequest alone. */
function clearRow(d: RequestRow): RequestRow {
  const {
    url: _url,
    requestHeaders: _qh,
    responseHeaders: _sh,
    requestBody: _qb,
    responseBody: _sb,
    ...row
  } = d as RequestRow & Record<string, unknown>;
  return row as RequestRow;
}

export function requestRoutes(r: Router, { store }: ApiDeps): void {
  const pathOf = (id: string): string | null => {
    try {
      const d = store.getRequest(id);
      return d ? redactUrl(d.url).url : null;
    } catch (err) {
      if (isTrustRunError(err, 'TR_SEAL_OPEN')) return null;
      throw err;
    }
  };

  r.add({
    method: 'get',
    path: '/api/requests',
    tag: 'requests',
    summary: 'List requests (clear metadata only), newest first',
    query: requestsQuery,
    response: pageOf(requestListItemSchema),
    handler: (_c, { query }) => {
      const { session, verdict, path, ...q } = query;
      if (path && (q.limit ?? 100) > 200) {
        throw new ApiError(400, 'TR_BAD_REQUEST', 'invalid query', [
          { path: 'query.limit', message: 'at most 200 with path=true' },
        ]);
      }
      const page = filteredPage(
        (p) => store.listRequests({ ...q, ...p, sessionId: session }),
        q,
        verdict === undefined ? null : (row) => row.verdictAction === verdict,
      );
      if (!path) return page;
      return { ...page, items: page.items.map((row) => ({ ...row, path: pathOf(row.id) })) };
    },
  });

  r.add({
    method: 'get',
    path: '/api/requests/:id',
    tag: 'requests',
    summary: 'One request with its URL, headers and bodies, redacted, and its policy verdict',
    description:
      'The sealed fields are opened on the server and redacted before they are sent. ' +
      '410 when the session was shredded.',
    params: idParam,
    response: requestDetailSchema,
    handler: (_c, { params }) => {
      const d = store.getRequest(params.id);
      if (!d) throw notFound(`request ${params.id}`);
      const shown = showRequest(d);
      const violations = filteredPage(
        (p) => store.listViolations({ ...p, sessionId: d.sessionId, host: d.host, order: 'asc' }),
        { limit: 20, order: 'asc' },
        (v) =>
          v.requestId === d.id ||
          (v.requestId === null && d.connectionId !== null && v.connectionId === d.connectionId),
      ).items;
      return {
        ...clearRow(d),
        ...shown,
        verdict: {
          action: d.verdictAction,
          rule: d.verdictRule,
          violation: d.violation,
          explanation: explain(d, violations),
          violations,
        },
      };
    },
  });
}
