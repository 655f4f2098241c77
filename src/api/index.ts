/**
 * The local REST API and web UI: `createApi()` builds the hono app (tested in-process),
 * `startApiServer()` serves it on 127.0.0.1.
 */
export { createApi, type ApiOptions } from './app.js';
export { startApiServer, type ApiServer, type ApiServerOptions } from './server.js';
export { Credentials, loadOrCreateApiToken } from './tokens.js';
