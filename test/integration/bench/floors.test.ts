import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeUpstreamPki, type UpstreamPki } from '../../../bench/lib/certs.js';
import { buildChild, spawnUpstream, stopAll, type Spawned } from '../../../bench/lib/children.js';
import { tunnel, type Config, type StartEnv } from '../../../bench/lib/configs.js';

// The Node floors the suite measures trustrun against (bench/children/tunnel.ts), each started as
// the suite starts it, in front of the suite's own upstream, and spoken to over real sockets.

let dir: string;
let pki: UpstreamPki;
let upstream: Spawned;
let env: StartEnv;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'trustrun-floors-'));
  pki = makeUpstreamPki(dir);
  const children = join(dir, 'children');
  upstream = spawnUpstream(buildChild('upstream', children), dir, pki, [
    { host: '127.0.0.1', port: 0 },
  ]);
  const up = await upstream.firstJson<{ ports: number[] }>(15_000);
  env = {
    tmp: dir,
    pki,
    upstreamPort: up.ports[0]!,
    squidUpstream: false,
    hostNames: ['api.bench.test'],
    tunnelScript: buildChild('tunnel', children),
  };
}, 60_000);

afterAll(async () => {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
});

interface Reply {
  /** Subject CN of the certificate the client was shown. */
  cn: string;
  status: number;
  body: Buffer;
}

/** CONNECT to `host`:443 through the config, TLS with SNI, one GET, the raw reply. */
function get(config: Config, host: string, path: string): Promise<Reply> {
  const proxy = new URL((config.target as { proxyUrl: string }).proxyUrl);
  return new Promise((resolve, reject) => {
    const req = httpRequest({
      host: proxy.hostname,
      port: proxy.port,
      method: 'CONNECT',
      path: `${host}:443`,
    });
    req.on('error', reject);
    req.on('connect', (res, socket) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        resolve({ cn: '', status: res.statusCode ?? 0, body: Buffer.alloc(0) });
        return;
      }
      const tls = tlsConnect({ socket, servername: host, ca: pki.caPem });
      const chunks: Buffer[] = [];
      tls.on('error', reject);
      tls.on('secureConnect', () => {
        tls.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      });
      tls.on('data', (c: Buffer) => chunks.push(c));
      tls.on('end', () => {
        const raw = Buffer.concat(chunks);
        const split = raw.indexOf('\r\n\r\n');
        const cn = String(tls.getPeerCertificate().subject?.CN ?? '');
        resolve({
          cn,
          status: Number(/^HTTP\/1\.1 (\d{3})/.exec(raw.toString('latin1'))?.[1] ?? 0),
          body: raw.subarray(split + 4),
        });
      });
    });
    req.end();
  });
}

describe('the Node floors in bench/children/tunnel.ts', () => {
  // The plain tunnel shows the client the upstream's certificate; the relays terminate the
  // client's TLS with their own (same names, same CA), so the bytes really are decrypted there.
  it.each([
    ['tunnel', 'api.bench.test'],
    ['tls', 'bench relay'],
    ['http', 'bench relay'],
  ] as const)(
    '%s: relays a request to the upstream, showing the certificate of %s',
    async (mode, cn) => {
      const config = await tunnel(env, mode);
      try {
        const r = await get(config, 'n7.bench.test', '/1k');
        expect(r.cn).toBe(cn);
        expect(r.status).toBe(200);
        expect(r.body.length).toBe(1024);
        expect(r.body.toString()).toBe('k'.repeat(1024));
        // nothing but the benchmark's names is tunnelled, so nothing leaves the machine
        expect((await get(config, 'example.com', '/1k')).status).toBe(403);
      } finally {
        await config.stop();
      }
    },
    30_000,
  );
});
