/**
 * The local HTTPS upstream (a child process of the benchmark runner). Keep-alive on.
 *   GET /1k, /1m          fixed 1 KiB / 1 MiB bodies
 *   GET /stream?bytes=N   N bytes streamed in 64 KiB chunks
 *   POST /sink            reads and discards the body, answers with its length
 * Answers the IPC message 'stats' with {connections, requests} so far.
 * Configuration as JSON in BENCH_UPSTREAM: {cert, key, listen: [{host, port}]}. Prints
 * {"ports":[...]} on stdout when every listener is up (a listener that fails reports its error
 * as null port plus "errors").
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

interface Config {
  cert: string;
  key: string;
  listen: { host: string; port: number }[];
}

const config = JSON.parse(process.env.BENCH_UPSTREAM ?? '{}') as Config;
const KIB = Buffer.alloc(1024, 'k');
const MIB = Buffer.alloc(1024 * 1024, 'm');
const CHUNK = Buffer.alloc(64 * 1024, 's');
const MAX_STREAM = 8 * 1024 * 1024 * 1024;

function send(res: ServerResponse, body: Buffer): void {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
  res.end(body);
}

function stream(res: ServerResponse, total: number): void {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total });
  let left = total;
  const pump = (): void => {
    while (left > 0) {
      const n = Math.min(left, CHUNK.length);
      left -= n;
      const more = res.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n));
      if (!more) {
        res.once('drain', pump);
        return;
      }
    }
    res.end();
  };
  pump();
}

function handle(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'https://upstream.invalid');
  if (req.method === 'GET' && url.pathname === '/1k') return send(res, KIB);
  if (req.method === 'GET' && url.pathname === '/1m') return send(res, MIB);
  if (req.method === 'GET' && url.pathname === '/stream') {
    const n = Number(url.searchParams.get('bytes'));
    if (Number.isInteger(n) && n >= 0 && n <= MAX_STREAM) return stream(res, n);
  }
  if (req.method === 'POST' && url.pathname === '/sink') {
    let bytes = 0;
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => send(res, Buffer.from(JSON.stringify({ bytes }))));
    return;
  }
  res.writeHead(404, { 'content-length': 0 });
  res.end();
}

const tls = { cert: readFileSync(config.cert), key: readFileSync(config.key) };
/** Counters the runner asks for over IPC ('stats'): TLS connections accepted, requests served. */
const stats = { connections: 0, requests: 0 };

function listen(host: string, port: number): Promise<number | string> {
  return new Promise((resolve) => {
    const server: Server = createServer({ ...tls, keepAliveTimeout: 60_000 }, (req, res) => {
      stats.requests++;
      handle(req, res);
    });
    server.on('secureConnection', () => stats.connections++);
    server.keepAliveTimeout = 60_000;
    server.headersTimeout = 30_000;
    server.requestTimeout = 0;
    server.once('error', (err: NodeJS.ErrnoException) =>
      resolve(`${host}:${port}: ${err.code ?? err.message}`),
    );
    server.listen(port, host, () => resolve((server.address() as AddressInfo).port));
  });
}

const results = await Promise.all(config.listen.map((l) => listen(l.host, l.port)));
process.stdout.write(
  `${JSON.stringify({
    ports: results.map((r) => (typeof r === 'number' ? r : null)),
    errors: results.filter((r) => typeof r === 'string'),
  })}\n`,
);
process.on('message', (msg) => {
  if (msg === 'stats') process.send?.({ ...stats });
});
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
