/** `startApiServer()`: serves the API and UI on 127.0.0.1 (used by `trustrun server` and `proxy --api-port`). */
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { TrustRunError, silentLogger, type Logger } from '../core/index.js';
import type { Store } from '../store/index.js';
import { createApi } from './app.js';
import { Credentials, loadOrCreateApiToken } from './tokens.js';

export interface ApiServerOptions {
  store: Store;
  dataDir: string;
  port: number;
  /** Default 127.0.0.1. Anything but loopback is refused: the API is for this machine only. */
  host?: string;
  logger?: Logger;
  pollMs?: number;
  /** The flag that set the port, named in the hint when it is taken. Default `--port`. */
  portFlag?: string;
}

export interface ApiServer {
  /** http://127.0.0.1:PORT */
  url: string;
  port: number;
  /** Opens the UI once: exchanged for a browser cookie on first use, valid 15 minutes. */
  oneTimeUrl: string;
  /** Issues another one-time URL. */
  newOneTimeUrl(): string;
  close(): Promise<void>;
}

const LOOPBACK = new Set(['127.0.0.1', '::1']);

export async function startApiServer(opts: ApiServerOptions): Promise<ApiServer> {
  const host = opts.host ?? '127.0.0.1';
  if (!LOOPBACK.has(host)) {
    throw new TrustRunError('TR_USAGE', `the API listens on loopback only, not ${host}`, {
      hint: 'use 127.0.0.1 or ::1',
    });
  }
  const logger = opts.logger ?? silentLogger();
  const flag = opts.portFlag ?? '--port';
  const credentials = new Credentials(loadOrCreateApiToken(opts.dataDir));
  let port = opts.port;
  const app = createApi({
    store: opts.store,
    dataDir: opts.dataDir,
    port: () => port,
    credentials,
    logger,
    pollMs: opts.pollMs,
  });
  const server = serve({ fetch: app.fetch, port: opts.port, hostname: host });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      reject(
        err.code === 'EADDRINUSE'
          ? new TrustRunError('TR_USAGE', `port ${opts.port} on ${host} is already in use`, {
              hint: `pick another with ${flag}, or ${flag} 0 for any free port`,
            })
          : err,
      );
    };
    server.once('error', onError);
    server.once('listening', () => {
      server.off('error', onError);
      resolve();
    });
  });
  port = (server.address() as AddressInfo).port;
  const urlHost = host === '::1' ? '[::1]' : '127.0.0.1';
  const url = `http://${urlHost}:${port}`;
  const newOneTimeUrl = () => `${url}/auth?token=${credentials.issueOneTime()}`;
  logger.info({ port }, 'api listening');
  return {
    url,
    port,
    oneTimeUrl: newOneTimeUrl(),
    newOneTimeUrl,
    close: () =>
      new Promise<void>((resolve) => {
        const s = server as unknown as { closeAllConnections?: () => void };
        server.close(() => resolve());
        s.closeAllConnections?.();
      }),
  };
}
