import { createServer as createHttps, type Server as HttpsServer } from 'node:https';
import {
  createServer as createHttp,
  type IncomingMessage,
  type ServerResponse,
  type Server,
} from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { TestLeaf } from './pki.js';

export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  bodyBytes: number;
  body: Buffer;
}

/** One TCP connection the upstream accepted, watched from accept to close. */
export interface SeenConnection {
  /** When it was accepted (ms since the epoch). */
  accepted: number;
  /** Its TLS handshake finished (HTTPS upstreams). */
  secured: boolean;
  /** Requests that arrived on it. */
  requests: number;
  closed: boolean;
}

/**
 * A local upstream server (HTTPS with a test certificate, or plain HTTP) that counts the TCP
 * connections and requests it sees and answers with a small JSON echo, unless a handler is given.
 */
export interface TestUpstream {
  port: number;
  /** Connections accepted so far (`sockets.length`). */
  readonly connections: number;
  /** Every connection accepted, in order. */
  sockets: SeenConnection[];
  requests: SeenRequest[];
  close(): Promise<void>;
}

export type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;

const defaultHandler: Handler = (req, res, body) => {
  const payload = JSON.stringify({
    ok: true,
    method: req.method,
    url: req.url,
    received: body.length,
  });
  res.writeHead(200, {
    'content-type': 'application/json',
    'set-cookie': 'session=upstream-cookie-secret; HttpOnly',
    'x-upstream': 'yes',
  });
  res.end(payload);
};

export async function startUpstream(
  opts: {
    leaf?: TestLeaf;
    handler?: Handler;
    keepBody?: boolean;
    host?: string;
    port?: number;
  } = {},
): Promise<TestUpstream> {
  const handler = opts.handler ?? defaultHandler;
  const state: TestUpstream = {
    port: 0,
    get connections() {
      return this.sockets.length;
    },
    sockets: [],
    requests: [],
    close: async () => undefined,
  };
  const seen = new Map<Socket, SeenConnection>();
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    const conn = seen.get((req.socket as Socket & { _parent?: Socket })._parent ?? req.socket);
    if (conn) conn.requests++;
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (opts.keepBody !== false && size <= 4 * 1024 * 1024) chunks.push(c);
    });
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      state.requests.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        bodyBytes: size,
        body,
      });
      handler(req, res, body);
    });
  };
  const server: Server | HttpsServer = opts.leaf
    ? createHttps({ key: opts.leaf.keyPem, cert: opts.leaf.certPem }, onRequest)
    : createHttp(onRequest);
  server.on('connection', (s: Socket) => {
    const conn: SeenConnection = {
      accepted: Date.now(),
      secured: false,
      requests: 0,
      closed: false,
    };
    state.sockets.push(conn);
    seen.set(s, conn);
    s.on('close', () => {
      conn.closed = true;
      seen.delete(s);
    });
  });
  server.on('secureConnection', (t: Socket & { _parent?: Socket }) => {
    const conn = seen.get(t._parent ?? t);
    if (conn) conn.secured = true;
  });
  await new Promise<void>((r) => server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', r));
  state.port = (server.address() as AddressInfo).port;
  state.close = () =>
    new Promise<void>((r) => {
      for (const s of seen.keys()) s.destroy();
      server.close(() => r());
    });
  return state;
}
