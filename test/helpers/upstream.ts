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

/**
 * A local upstream server (HTTPS with a test certificate, or plain HTTP) that counts the TCP
 * connections and requests it sees and answers with a small JSON echo, unless a handler is given.
 */
export interface TestUpstream {
  port: number;
  connections: number;
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
  opts: { leaf?: TestLeaf; handler?: Handler; keepBody?: boolean; host?: string } = {},
): Promise<TestUpstream> {
  const handler = opts.handler ?? defaultHandler;
  const state: TestUpstream = {
    port: 0,
    connections: 0,
    requests: [],
    close: async () => undefined,
  };
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
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
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    state.connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, opts.host ?? '127.0.0.1', r));
  state.port = (server.address() as AddressInfo).port;
  state.close = () =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  return state;
}
