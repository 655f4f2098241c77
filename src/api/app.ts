/**
 * `createApi()`: the hono app of the local REST API and web UI. The guards run first (security
 * headers, Host/Origin, JSON-only bodies, authentication), then one small file per resource adds
 * its routes.
 */
import { Hono } from 'hono';
import { VERSION, silentLogger, type Logger } from '../core/index.js';
import type { Store } from '../store/index.js';
import type { ApiDeps } from './deps.js';
import { errorResponse } from './errors.js';
import { openApiDocument } from './openapi.js';
import { policiesDir } from './policies.js';
import { Router } from './router.js';
import { authGuard, jsonOnly, originGuard, securityHeaders } from './security.js';
import { mountUi } from './static.js';
import { Credentials, loadOrCreateApiToken } from './tokens.js';
import { sessionRoutes } from './routes/sessions.js';
import { requestRoutes } from './routes/requests.js';
import { connectionRoutes } from './routes/connections.js';
import { violationRoutes } from './routes/violations.js';
import { policyRoutes } from './routes/policies.js';
import { harRoutes } from './routes/har.js';
import { streamRoutes } from './routes/stream.js';
import { authRoutes } from './routes/auth.js';
import { monitorRoutes } from './routes/monitor.js';
import { scanRoutes } from './routes/scans.js';

export interface ApiOptions {
  store: Store;
  /** Defaults to the store's data directory. */
  dataDir?: string;
  /** The port the server listens on (a function when it is known only after listen). */
  port: number | (() => number);
  /** Token checks and one-time links; by default from `<dataDir>/api-token`. */
  credentials?: Credentials;
  logger?: Logger;
  /** Live-stream poll interval, default 500 ms. */
  pollMs?: number;
}

export function createApi(opts: ApiOptions): Hono {
  const dataDir = opts.dataDir ?? opts.store.dataDir;
  const port = typeof opts.port === 'function' ? opts.port : () => opts.port as number;
  const logger = opts.logger ?? silentLogger();
  const credentials = opts.credentials ?? new Credentials(loadOrCreateApiToken(dataDir));
  const deps: ApiDeps = {
    store: opts.store,
    dataDir,
    policiesDir: policiesDir(dataDir),
    logger,
    credentials,
    pollMs: opts.pollMs ?? 500,
    version: VERSION,
  };
  const app = new Hono();
  app.onError((err, c) => errorResponse(err, c, logger));
  app.notFound((c) =>
    c.json({ error: { code: 'TR_NOT_FOUND', message: 'no such endpoint' } }, 404),
  );
  app.use('*', securityHeaders, originGuard(port), jsonOnly, authGuard(credentials, port));

  const router = new Router(app);
  for (const add of [
    sessionRoutes,
    harRoutes,
    requestRoutes,
    connectionRoutes,
    violationRoutes,
    policyRoutes,
    streamRoutes,
    monitorRoutes,
    scanRoutes,
    authRoutes,
  ]) {
    add(router, deps);
  }
  // Built on first request: converting every schema is start-up work most runs never need.
  let doc: ReturnType<typeof openApiDocument> | null = null;
  app.get('/api/openapi.json', (c) =>
    c.json((doc ??= openApiDocument(router.specs, deps.version))),
  );
  mountUi(app);
  return app;
}
