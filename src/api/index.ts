/**
 * The local REST API and web UI: `createApi()` builds the hono app (tested in-process),
 * `startApiServer()` serves it on 127.0.0.1.
 */
export { createApi, type ApiOptions } from './app.js';
export { startApiServer, type ApiServer, type ApiServerOptions } from './server.js';
export { Credentials, loadOrCreateApiToken, ONE_TIME_TTL_MS } from './tokens.js';
export { policiesDir } from './policies.js';
export { openApiDocument } from './openapi.js';
