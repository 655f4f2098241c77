import type { ApiDeps } from '../deps.js';
import { notFound } from '../errors.js';
import type { Router } from '../router.js';
import {
  findingSchema,
  findingsQuery,
  idParam,
  pageOf,
  scanSchema,
  scansQuery,
} from '../schemas.js';

export function scanRoutes(r: Router, { store }: ApiDeps): void {
  r.add({
    method: 'get',
    path: '/api/scans',
    tag: 'scans',
    summary: 'Static scans (trustrun scan), newest first',
    query: scansQuery,
    response: pageOf(scanSchema),
    handler: (_c, { query }) => store.listScans(query),
  });

  r.add({
    method: 'get',
    path: '/api/scans/:id',
    tag: 'scans',
    summary: 'One scan with its counts by severity',
    params: idParam,
    response: scanSchema,
    handler: (_c, { params }) => {
      const s = store.getScan(params.id);
      if (!s) throw notFound(`scan ${params.id}`);
      return s;
    },
  });

  r.add({
    method: 'get',
    path: '/api/scans/:id/findings',
    tag: 'scans',
    summary: "A scan's findings, redacted (a secret's value is never shown)",
    params: idParam,
    query: findingsQuery,
    response: pageOf(findingSchema),
    handler: (_c, { params, query }) => {
      if (!store.getScan(params.id)) throw notFound(`scan ${params.id}`);
      return store.listFindings({ ...query, scanId: params.id });
    },
  });
}
