import pino from 'pino';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connect as netConnect, createServer as createNetServer, type AddressInfo } from 'node:net';
import type { ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { ProxyAgent, request } from 'undici';
import { parsePolicy } from '../../../src/policy/index.js';
import { DEFAULT_LIMITS, parseResolveRule } from '../../../src/proxy/index.js';
import { startProxy, type Harness } from '../../helpers/harness.js';
import { makeLeaf, makeTestCa, type TestCa } from '../../helpers/pki.js';
import { tunnelTls } from '../../helpers/tunnel.js';
import { startUpstream, type Handler } from '../../helpers/upstream.js';

let upstreamCa: TestCa;
const closers: (() => Promise<void>)[] = [];
beforeAll(async () => {
  upstreamCa = await makeTestCa();
});
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

async function setup(level: 'metadata' | 'headers' | 'full', opts: { plain?: boolean } = {}) {
  const upstream = await startUpstream(
    opts.plain ? {} : { leaf: await makeLeaf(upstreamCa, ['api.example.test']) },
  );
  const port = opts.plain ? 80 : 443;
  const h = await startProxy({
    level,
    upstreamCa: [upstreamCa.certPem],
    resolve: [parseResolveRule(`api.example.test:${port}:127.0.0.1:${upstream.port}`)],
  });
  closers.push(
    () => upstream.close(),
    () => h.close(),
  );
  return { upstream, h };
}

/** Writes `text` on an open tunnel; resolves with all it answered once it closed. */
function untilClosed(t: TLSSocket, text: string): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    t.on('data', (d: Buffer) => (out += d.toString('latin1')));
    t.once('close', () => resolve(out));
    t.write(text);
  });
}

/** GET `path` on an open tunnel with `Connection: close`; resolves with all it answered. */
const getAndClose = (t: TLSSocket, path: string): Promise<string> =>
  untilClosed(t, `GET ${path} HTTP/1.1\r\nHost: api.example.test\r\nConnection: close\r\n\r\n`);

/** Sends raw bytes to the proxy and returns everything it answers until it closes. */
function raw(h: Harness, data: string | Buffer, waitMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = netConnect(h.port, '127.0.0.1');
    let out = '';
    s.on('data', (d) => (out += d.toString('latin1')));
    s.on('error', reject);
    s.on('close', () => resolve(out));
    s.write(data);
    setTimeout(() => s.destroy(), waitMs);
  });
}

function readAll(t: TLSSocket, ms = 3000): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    t.on('data', (d: Buffer) => (out += d.toString('latin1')));
    t.on('close', () => resolve(out));
    t.on('error', () => resolve(out));
    setTimeout(() => {
      t.destroy();
    }, ms);
  });
}

describe('node fetch (undici ProxyAgent) at every level', () => {
  for (const level of ['metadata', 'headers', 'full'] as const) {
    it(`${level}: GET and POST reach the upstream and are recorded`, async () => {
      const { upstream, h } = await setup(level);
      const ca = level === 'metadata' ? upstreamCa.certPem : h.proxyCa.certPem;
      const agent = new ProxyAgent({ uri: h.url, requestTls: { ca } });
      try {
        const r1 = await request('https://api.example.test/a?x=1', { dispatcher: agent });
        expect(r1.statusCode).toBe(200);
        expect(await r1.body.json()).toMatchObject({ url: '/a?x=1' });
        const r2 = await request('https://api.example.test/b', {
          dispatcher: agent,
          method: 'POST',
          body: 'hello world',
          headers: { 'content-type': 'text/plain' },
        });
        expect(r2.statusCode).toBe(200);
        expect(await r2.body.json()).toMatchObject({ method: 'POST', received: 11 });
      } finally {
        await agent.close();
      }
      expect(upstream.requests.map((r) => r.url)).toEqual(['/a?x=1', '/b']);
      if (level === 'metadata') {
        await h.recorder.until(() => h.recorder.connections.every((c) => c.endedAt !== undefined));
        expect(h.recorder.requests).toHaveLength(0);
        expect(h.recorder.connections[0]).toMatchObject({
          mode: 'tunnel',
          sni: 'api.example.test',
        });
      } else {
        await h.recorder.until(
          () => h.recorder.requests.length === 2 && h.recorder.requests.every((r) => r.outcome),
        );
        const post = h.recorder.requests[1]!;
        expect(post).toMatchObject({ method: 'POST', url: '/b', status: 200, requestSize: 11 });
        if (level === 'full') {
          expect(post.requestBody!.data.toString()).toBe('hello world');
          expect(JSON.parse(post.responseBody!.data.toString())).toMatchObject({ received: 11 });
        } else {
          expect(post.requestBody ?? null).toBeNull();
        }
      }
    });
  }
});

describe('plain HTTP', () => {
  it('proxies absolute-URI requests (http_proxy style)', async () => {
    const { upstream, h } = await setup('headers', { plain: true });
    const agent = new ProxyAgent({ uri: h.url, proxyTunnel: false });
    try {
      const r = await request('http://api.example.test/plain?q=1', { dispatcher: agent });
      expect(r.statusCode).toBe(200);
      await r.body.text();
    } finally {
      await agent.close();
    }
    expect(upstream.requests[0]!.url).toBe('/plain?q=1');
    await h.recorder.until(() => h.recorder.requests[0]?.outcome !== undefined);
    expect(h.recorder.requests[0]).toMatchObject({
      scheme: 'http',
      host: 'api.example.test',
      port: 80,
      url: '/plain?q=1',
      status: 200,
    });
  });

  it.each([
    [
      'a malformed pipelined request',
      'GET http://api.example.test/b HTTP/1.1\r\nHost: api.example.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n',
      '',
    ],
    ['bytes after Connection: close', 'more bytes\r\n', 'Connection: close\r\n'],
  ])('answers a whole request followed by %s, then closes', async (_label, after, header) => {
    const { upstream, h } = await setup('headers', { plain: true });
    const out = await raw(
      h,
      `GET http://api.example.test/a HTTP/1.1\r\nHost: api.example.test\r\n${header}\r\n${after}`,
      5000,
    );
    expect(out).toMatch(/^HTTP\/1.1 200 /);
    expect(out.match(/HTTP\/1.1 /g)).toHaveLength(1);
    expect(upstream.requests.map((r) => r.url)).toEqual(['/a']);
    await h.recorder.until(() => h.recorder.requests[0]?.outcome !== undefined);
    expect(h.recorder.requests[0]).toMatchObject({ url: '/a', status: 200, outcome: 'ok' });
  });

  it('closes the connection after the answer when malformed bytes come once its head is out', async () => {
    const upstream = await startUpstream({
      handler: (_req, res) => {
        res.writeHead(200, { 'content-length': '10' });
        res.write('hello');
        setTimeout(() => res.end('world'), 300);
      },
    });
    const h = await startProxy({
      level: 'headers',
      resolve: [parseResolveRule(`api.example.test:80:127.0.0.1:${upstream.port}`)],
    });
    closers.push(
      () => upstream.close(),
      () => h.close(),
    );
    const s = netConnect(h.port, '127.0.0.1');
    let out = '';
    let finishedAt = 0;
    let sent = false;
    s.on('data', (d: Buffer) => {
      out += d.toString('latin1');
      if (out.endsWith('helloworld')) finishedAt = Date.now();
      else if (!sent && out.includes('\r\n\r\n')) {
        sent = true;
        s.write('\x00garbage\r\n\r\n');
      }
    });
    s.write('GET http://api.example.test/slow HTTP/1.1\r\nHost: api.example.test\r\n\r\n');
    await new Promise((r) => s.once('close', r));
    expect(out).toMatch(/^HTTP\/1.1 200 [\s\S]*helloworld$/);
    expect(finishedAt).toBeGreaterThan(0);
    expect(Date.now() - finishedAt).toBeLessThan(2000);
  });

  it('records a client that hangs up mid-upload as client_abort, not as malformed HTTP', async () => {
    const { h } = await setup('headers', { plain: true });
    const s = netConnect(h.port, '127.0.0.1');
    s.on('error', () => undefined);
    s.write(
      `POST http://api.example.test/part HTTP/1.1\r\nHost: api.example.test\r\nContent-Length: 100000\r\n\r\n${'x'.repeat(1000)}`,
    );
    await new Promise((r) => setTimeout(r, 300));
    s.end();
    await h.recorder.until(() => h.recorder.requests[0]?.outcome !== undefined);
    expect(h.recorder.requests[0]).toMatchObject({ url: '/part', outcome: 'client_abort' });
  });

  it("records an upload whose chunking breaks after forwarding began as the client's bad request", async () => {
    const { upstream, h } = await setup('headers', { plain: true });
    const s = netConnect(h.port, '127.0.0.1');
    let out = '';
    s.on('data', (d: Buffer) => (out += d.toString('latin1')));
    s.write(
      'POST http://api.example.test/up HTTP/1.1\r\nHost: api.example.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n',
    );
    await new Promise((r) => setTimeout(r, 300));
    s.write('zz\r\nbroken\r\n');
    await new Promise((r) => s.once('close', r));
    expect(out).toMatch(/^HTTP\/1.1 400 /);
    await h.recorder.until(() => h.recorder.requests[0]?.outcome !== undefined);
    expect(h.recorder.requests[0]).toMatchObject({ url: '/up', outcome: 'bad_request' });
    expect(h.recorder.requests[0]!.reason).toMatch(/malformed HTTP from client/);
    expect(upstream.requests.filter((r) => r.url === '/up').length).toBeLessThanOrEqual(1);
  });

  it('handles plain HTTP inside a CONNECT tunnel (undici sends http:// as CONNECT host:80)', async () => {
    const { upstream, h } = await setup('headers', { plain: true });
    const agent = new ProxyAgent({ uri: h.url, proxyTunnel: true });
    try {
      const r = await request('http://api.example.test/in-tunnel', { dispatcher: agent });
      expect(r.statusCode).toBe(200);
      await r.body.text();
    } finally {
      await agent.close();
    }
    expect(upstream.requests[0]!.url).toBe('/in-tunnel');
    await h.recorder.until(() => h.recorder.requests[0]?.outcome !== undefined);
    expect(h.recorder.requests[0]).toMatchObject({
      scheme: 'http',
      port: 80,
      url: '/in-tunnel',
      status: 200,
    });
  });

  it('answers a stray origin-form request to the proxy itself with 400', async () => {
    const { h } = await setup('headers');
    const out = await raw(h, 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', 1000);
    expect(out).toMatch(/^HTTP\/1.1 400/);
    expect(out).toContain('TrustRun proxy');
  });
});

describe('identity and strict parsing inside a tunnel', () => {
  const bad: [string, string][] = [
    [
      'Content-Length with Transfer-Encoding',
      'POST /x HTTP/1.1\r\nHost: api.example.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    ],
    [
      'two differing Content-Lengths',
      'POST /x HTTP/1.1\r\nHost: api.example.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!',
    ],
    [
      'malformed chunking',
      'POST /x HTTP/1.1\r\nHost: api.example.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n',
    ],
    ['bare CR in a header', 'GET /x HTTP/1.1\r\nHost: api.example.test\r\nX-A: a\rb\r\n\r\n'],
    [
      'two Host headers',
      'GET /x HTTP/1.1\r\nHost: api.example.test\r\nHost: api.example.test\r\n\r\n',
    ],
    ['Host of another server', 'GET /x HTTP/1.1\r\nHost: evil.example.test\r\n\r\n'],
    [
      'absolute URI of another server',
      'GET https://evil.example.test/x HTTP/1.1\r\nHost: api.example.test\r\n\r\n',
    ],
  ];
  for (const [label, payload] of bad) {
    it(`refuses ${label} with 400 and the upstream sees nothing`, async () => {
      const { upstream, h } = await setup('headers');
      const t = await tunnelTls(h.port, h.proxyCa.certPem, 'api.example.test:443');
      const done = readAll(t);
      t.write(payload);
      const out = await done;
      expect(out).toMatch(/^HTTP\/1.1 400/);
      expect(upstream.requests).toHaveLength(0);
      // At most the connection opened during the client's TLS handshake (docs/proxy.md, "Upstream
      // connection ahead of the first request"): a TLS handshake, never a request.
      expect(upstream.connections).toBeLessThanOrEqual(1);
      await h.recorder.until(() => h.recorder.connections[0]?.endedAt !== undefined);
    });
  }

  it('stores no URL or Host value the client sent in the clear reason of a refused request', async () => {
    const { h } = await setup('headers');
    for (const payload of [
      'GET http://QQURLMARK.example/?access_token=QQTOKSECRET HTTP/1.1\r\nHost: api.example.test\r\n\r\n',
      'GET http://QQURLMARK%zz/?access_token=QQTOKSECRET HTTP/1.1\r\nHost: api.example.test\r\n\r\n',
      'GET /x?access_token=QQTOKSECRET HTTP/1.1\r\nHost: QQHDRMARK.example\r\n\r\n',
    ]) {
      const t = await tunnelTls(h.port, h.proxyCa.certPem, 'api.example.test:443');
      const done = readAll(t);
      t.write(payload);
      expect(await done).toMatch(/^HTTP\/1.1 400/);
    }
    await h.recorder.until(
      () => h.recorder.requests.length === 3 && h.recorder.requests.every((r) => r.outcome),
    );
    for (const r of h.recorder.requests) {
      expect(r.outcome).toBe('identity_mismatch');
      expect(r.reason).toMatch(
        /neither a path|another server than the tunnel's|Host header does not match/,
      );
      expect(r.reason).not.toMatch(/QQ/);
    }
  });

  it('refuses a TLS session whose SNI differs from the CONNECT target and flags it', async () => {
    const { upstream, h } = await setup('headers');
    await expect(
      tunnelTls(h.port, h.proxyCa.certPem, 'api.example.test:443', 'other.example.test'),
    ).rejects.toThrow();
    await h.recorder.until(() => h.recorder.connections[0]?.endedAt !== undefined);
    expect(h.recorder.connections[0]!.outcome).toMatch(/identity_mismatch|client_tls/);
    // At most the connection opened at CONNECT time for the allowed host (a TLS handshake, closed
    // with the tunnel); no request.
    expect(upstream.requests).toHaveLength(0);
    expect(upstream.connections).toBeLessThanOrEqual(1);
  });

  it('refuses a CONNECT inside a tunnel with 405, and records why', async () => {
    const { upstream, h } = await setup('headers');
    const t = await tunnelTls(h.port, h.proxyCa.certPem, 'api.example.test:443');
    const out = await untilClosed(
      t,
      'CONNECT other.example.test:443 HTTP/1.1\r\nHost: other.example.test:443\r\n\r\n',
    );
    expect(out).toMatch(/^HTTP\/1.1 405 /);
    await h.recorder.until(() => h.recorder.connections[0]?.endedAt !== undefined);
    expect(h.recorder.connections[0]).toMatchObject({
      outcome: 'bad_request',
      reason: 'CONNECT inside a tunnel is not supported',
    });
    expect(upstream.requests).toHaveLength(0);
  });

  it('refuses OPTIONS * inside a tunnel with 400, recorded, nothing sent upstream', async () => {
    const { upstream, h } = await setup('headers');
    const t = await tunnelTls(h.port, h.proxyCa.certPem, 'api.example.test:443');
    const out = await untilClosed(
      t,
      'OPTIONS * HTTP/1.1\r\nHost: api.example.test\r\nConnection: close\r\n\r\n',
    );
    expect(out).toMatch(/^HTTP\/1.1 400 /);
    await h.recorder.until(() => h.recorder.requests[0]?.outcome !== undefined);
    expect(h.recorder.requests[0]).toMatchObject({ status: 400, outcome: 'bad_request' });
    expect(upstream.requests).toHaveLength(0);
  });

  it('takes an SNI spelt with a trailing dot as the CONNECT name', async () => {
    const { upstream, h } = await setup('headers');
    const t = await tunnelTls(
      h.port,
      h.proxyCa.certPem,
      'api.example.test:443',
      'api.example.test.',
    );
    try {
      expect(await getAndClose(t, '/dot')).toMatch(/^HTTP\/1.1 200/);
      expect(upstream.requests.map((r) => r.url)).toEqual(['/dot']);
    } finally {
      t.destroy();
    }
  });

  it('serves a client that offers only http/1.0 by ALPN (curl --http1.0)', async () => {
    const { upstream, h } = await setup('headers');
    const t = await tunnelTls(h.port, h.proxyCa.certPem, 'api.example.test:443', undefined, [
      'http/1.0',
    ]);
    try {
      expect(t.alpnProtocol).toBe('http/1.0');
      expect(await getAndClose(t, '/ten')).toMatch(/^HTTP\/1.1 200/);
      expect(upstream.requests.map((r) => r.url)).toEqual(['/ten']);
    } finally {
      t.destroy();
    }
  });

  it('records an h2-only client as a handshake failure that says so', async () => {
    const { upstream, h } = await setup('headers');
    await expect(
      tunnelTls(h.port, h.proxyCa.certPem, 'api.example.test:443', undefined, ['h2']),
    ).rejects.toThrow();
    await h.recorder.until(() => h.recorder.connections[0]?.endedAt !== undefined);
    expect(h.recorder.connections[0]).toMatchObject({ outcome: 'client_tls' });
    expect(h.recorder.connections[0]!.reason).toMatch(/offered no HTTP version the proxy speaks/);
    expect(upstream.requests).toHaveLength(0);
  });

  it('records a client that does not trust the CA as a handshake failure, with no request row', async () => {
    const { upstream, h } = await setup('headers');
    // Trusting another CA than the proxy's: the handshake fails.
    const err = await tunnelTls(h.port, upstreamCa.certPem, 'api.example.test:443').then(
      () => new Error('unexpectedly trusted'),
      (e: Error) => e,
    );
    expect(err.message).toMatch(/self-signed|unable to verify|issuer/i);
    await h.recorder.until(() => h.recorder.connections[0]?.endedAt !== undefined);
    expect(h.recorder.connections[0]).toMatchObject({
      outcome: 'client_tls',
      host: 'api.example.test',
    });
    expect(h.recorder.connections[0]!.reason).toMatch(/handshake/);
    expect(h.recorder.requests).toHaveLength(0);
    // At most the connection opened when the ClientHello arrived (a TLS handshake, no request).
    expect(upstream.requests).toHaveLength(0);
    expect(upstream.connections).toBeLessThanOrEqual(1);
  });

  it('answers 431 for oversized headers and 414 for an oversized URL', async () => {
    const { upstream, h } = await setup('headers');
    let t = await tunnelTls(h.port, h.proxyCa.certPem, 'api.example.test:443');
    let done = readAll(t);
    t.write(`GET /x HTTP/1.1\r\nHost: api.example.test\r\nX-Big: ${'a'.repeat(40_000)}\r\n\r\n`);
    expect(await done).toMatch(/^HTTP\/1.1 431/);
    t = await tunnelTls(h.port, h.proxyCa.certPem, 'api.example.test:443');
    done = readAll(t);
    t.write(`GET /${'b'.repeat(9000)} HTTP/1.1\r\nHost: api.example.test\r\n\r\n`);
    expect(await done).toMatch(/^HTTP\/1.1 414/);
    expect(upstream.requests).toHaveLength(0);
  });
});

describe('guards', () => {
  it('says in its log when the connection cap turns clients away', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (l: string) => void lines.push(l) });
    const h = await startProxy({
      level: 'headers',
      limits: { ...DEFAULT_LIMITS, maxConnections: 2 },
      logger,
    });
    closers.push(() => h.close());
    const held = [netConnect(h.port, '127.0.0.1'), netConnect(h.port, '127.0.0.1')];
    await Promise.all(held.map((c) => new Promise((r) => c.once('connect', r))));
    await new Promise((r) => setTimeout(r, 50));
    const extra = netConnect(h.port, '127.0.0.1');
    extra.on('error', () => undefined);
    await new Promise((r) => extra.once('close', r));
    for (const c of held) c.destroy();
    expect(lines.join('')).toMatch(/"limit":2.*connection limit reached/);
  });

  it('refuses to proxy to its own listener (loop guard)', async () => {
    const { h } = await setup('headers');
    const out = await raw(
      h,
      `CONNECT 127.0.0.1:${h.port} HTTP/1.1\r\nHost: 127.0.0.1:${h.port}\r\n\r\n`,
      1000,
    );
    expect(out).toMatch(/^HTTP\/1.1 403/);
    expect(out).toMatch(/own port/);
    const plain = await raw(
      h,
      `GET http://localhost:${h.port}/ HTTP/1.1\r\nHost: localhost:${h.port}\r\n\r\n`,
      1000,
    );
    expect(plain).toMatch(/^HTTP\/1.1 403/);
  });

  it('metadata: a CONNECT to an address is judged by its SNI name as well', async () => {
    const upstream = await startUpstream({
      leaf: await makeLeaf(upstreamCa, ['good.test', 'fine.test']),
    });
    const policy = await parsePolicy(
      'version: 2\nname: sni\nrules:\n  - match: good.test\n    action: block\ndefaults:\n  action: allow\n',
      'sni.yaml',
      { warn: () => undefined },
    );
    const h = await startProxy({ level: 'metadata', policy });
    closers.push(
      () => upstream.close(),
      () => h.close(),
    );
    const target = `127.0.0.1:${upstream.port}`;
    await expect(tunnelTls(h.port, upstreamCa.certPem, target, 'good.test')).rejects.toThrow();
    await h.recorder.until(() => h.recorder.connections[0]?.endedAt !== undefined);
    expect(h.recorder.connections[0]).toMatchObject({ outcome: 'blocked', sni: 'good.test' });
    expect(h.recorder.connections[0]!.reason).toMatch(/^TLS SNI 'good.test': /);
    expect(h.recorder.violations).toHaveLength(1);
    expect(h.recorder.violations[0]).toMatchObject({
      enforced: true,
      verdict: { action: 'block' },
    });
    expect(upstream.sockets.filter((c) => c.secured)).toHaveLength(0);
    // An allowed name on the same address still goes through.
    const t = await tunnelTls(h.port, upstreamCa.certPem, target, 'fine.test');
    const answer = readAll(t);
    t.write('GET /ok HTTP/1.1\r\nHost: fine.test\r\nConnection: close\r\n\r\n');
    expect(await answer).toMatch(/^HTTP\/1.1 200/);
    expect(upstream.requests.map((r) => r.url)).toEqual(['/ok']);
  });

  it('judges a dial by the port asked for, not the one a --resolve rule dials', async () => {
    const upstream = await startUpstream({
      leaf: await makeLeaf(upstreamCa, ['api.example.test']),
    });
    const policy = await parsePolicy(
      'version: 2\nname: p443\nrules:\n  - match: api.example.test\n    ports: [443]\n    action: allow\ndefaults:\n  action: block\n',
      'p443.yaml',
      { warn: () => undefined },
    );
    const h = await startProxy({
      level: 'headers',
      policy,
      upstreamCa: [upstreamCa.certPem],
      resolve: [parseResolveRule(`api.example.test:443:127.0.0.1:${upstream.port}`)],
    });
    closers.push(
      () => upstream.close(),
      () => h.close(),
    );
    const t = await tunnelTls(h.port, h.proxyCa.certPem, 'api.example.test:443');
    const answer = readAll(t);
    t.write('GET /ok HTTP/1.1\r\nHost: api.example.test\r\nConnection: close\r\n\r\n');
    expect(await answer).toMatch(/^HTTP\/1.1 200/);
    expect(upstream.requests.map((r) => r.url)).toEqual(['/ok']);
  });

  it('refuses its own listener under any spelling of a loopback address', async () => {
    const { h } = await setup('metadata');
    for (const addr of [
      '[::ffff:7f00:1]',
      '[0:0:0:0:0:ffff:7f00:1]',
      '[0:0:0:0:0:0:0:1]',
      '127.9.9.9',
    ]) {
      const out = await raw(h, `CONNECT ${addr}:${h.port} HTTP/1.1\r\nHost: x\r\n\r\n`, 1000);
      expect(out, addr).toMatch(/^HTTP\/1.1 403/);
      expect(out, addr).toMatch(/own port/);
    }
    const plain = await raw(
      h,
      `GET http://[::ffff:7f00:1]:${h.port}/ HTTP/1.1\r\nHost: [::ffff:7f00:1]:${h.port}\r\n\r\n`,
      1000,
    );
    expect(plain).toMatch(/^HTTP\/1.1 403/);
    expect(h.recorder.connections.every((c) => c.outcome === 'loop')).toBe(true);
  });

  it('refuses to dial an address the policy blocks when a name now resolves to it', async () => {
    const leaf = await makeLeaf(upstreamCa, ['rebind.test']);
    const closing = (_req: unknown, res: ServerResponse) => {
      res.writeHead(200, { connection: 'close', 'content-length': '2' });
      res.end('ok');
    };
    const allowed = await startUpstream({ leaf, host: '127.0.0.2', handler: closing });
    const internal = await startUpstream({ leaf, host: '127.0.0.1' });
    const policy = await parsePolicy(
      'version: 2\nname: rb\nrules:\n  - match: 127.0.0.1/32\n    action: block\n' +
        '  - match: rebind.test\n    action: allow\ndefaults:\n  action: block\n',
      'rb.yaml',
      { warn: () => undefined },
    );
    const h = await startProxy({ level: 'headers', policy, upstreamCa: [upstreamCa.certPem] });
    closers.push(
      () => allowed.close(),
      () => internal.close(),
      () => h.close(),
    );
    // The name's answer changes after the first request, as a rebinding DNS server's would.
    let rebound = false;
    const resolver = Reflect.get(h.proxy, 'resolver') as {
      resolve: (host: string, port: number) => Promise<unknown>;
    };
    resolver.resolve = async () =>
      rebound
        ? { address: '127.0.0.1', port: internal.port, overridden: false }
        : { address: '127.0.0.2', port: allowed.port, overridden: false };
    const t = await tunnelTls(h.port, h.proxyCa.certPem, 'rebind.test:443');
    t.on('error', () => undefined);
    const answers: string[] = [];
    t.on('data', (d: Buffer) => answers.push(d.toString('latin1')));
    t.write('GET /first HTTP/1.1\r\nHost: rebind.test\r\n\r\n');
    await h.recorder.until(() => h.recorder.requests[0]?.outcome !== undefined);
    expect(allowed.requests.map((r) => r.url)).toEqual(['/first']);
    rebound = true;
    t.write('GET /internal-secret HTTP/1.1\r\nHost: rebind.test\r\n\r\n');
    await h.recorder.until(() => h.recorder.requests[1]?.outcome !== undefined);
    expect(h.recorder.requests[1]).toMatchObject({
      url: '/internal-secret',
      outcome: 'blocked',
      status: 403,
    });
    expect(h.recorder.requests[1]!.reason).toMatch(
      /resolved to 127\.0\.0\.1, which the policy refuses/,
    );
    expect(internal.requests).toHaveLength(0);
    expect(internal.connections).toBe(0);
    expect(answers.join('')).toMatch(/HTTP\/1.1 403/);
    // A refusal like any other: a violation naming the rule that blocks the address.
    expect(h.recorder.violations).toEqual([
      expect.objectContaining({
        enforced: true,
        verdict: expect.objectContaining({ action: 'block', rule: '127.0.0.1/32' }),
      }),
    ]);
    t.destroy();
  });

  it('refuses the API port given as a guard port', async () => {
    const { upstream } = await setup('headers');
    const h = await startProxy({ level: 'headers', guardPorts: [upstream.port] });
    closers.push(() => h.close());
    const out = await raw(
      h,
      `CONNECT 127.0.0.1:${upstream.port} HTTP/1.1\r\nHost: x\r\n\r\n`,
      1000,
    );
    expect(out).toMatch(/^HTTP\/1.1 403/);
    expect(upstream.connections).toBe(0);
  });

  it('fails closed with 503 when the store cannot be written', async () => {
    const { upstream, h } = await setup('headers');
    h.recorder.failWrites = true;
    const agent = new ProxyAgent({ uri: h.url, requestTls: { ca: h.proxyCa.certPem } });
    try {
      const r = await request('https://api.example.test/x', { dispatcher: agent }).catch(
        (e: Error) => e,
      );
      // The CONNECT itself is refused: the flush before dialing fails.
      expect(
        String(r instanceof Error ? r.message : (r as { statusCode: number }).statusCode),
      ).toMatch(/503/);
    } finally {
      await agent.close();
    }
    expect(upstream.connections).toBe(0);
  });

  it('reports DNS failure as 502 with the reason and records it', async () => {
    const h = await startProxy({ level: 'metadata' });
    closers.push(() => h.close());
    const out = await raw(
      h,
      'CONNECT no-such-host.invalid:443 HTTP/1.1\r\nHost: no-such-host.invalid:443\r\n\r\n',
      5000,
    );
    expect(out).toMatch(/^HTTP\/1.1 502/);
    expect(h.recorder.connections[0]).toMatchObject({
      host: 'no-such-host.invalid',
      outcome: 'upstream_dns',
    });
  });

  it('records a plain-HTTP request to a name that does not resolve, and its alert', async () => {
    const policy = await parsePolicy(
      'version: 2\nname: al\ndefaults:\n  action: alert\n',
      'al.yaml',
      { warn: () => undefined },
    );
    const h = await startProxy({ level: 'headers', policy });
    closers.push(() => h.close());
    const out = await raw(
      h,
      'GET http://no-such-host.invalid/x HTTP/1.1\r\nHost: no-such-host.invalid\r\n\r\n',
      5000,
    );
    expect(out).toMatch(/^HTTP\/1.1 502/);
    expect(out).toMatch(/could not reach no-such-host.invalid/);
    await h.recorder.until(() => h.recorder.requests[0]?.outcome !== undefined);
    expect(h.recorder.requests).toHaveLength(1);
    expect(h.recorder.requests[0]).toMatchObject({
      scheme: 'http',
      host: 'no-such-host.invalid',
      url: '/x',
      status: 502,
      outcome: 'upstream_dns',
    });
    expect(h.recorder.violations).toHaveLength(1);
    expect(h.recorder.violations[0]).toMatchObject({ verdict: { action: 'alert' } });
  });

  it('records a plain-HTTP request the loop guard refused', async () => {
    const { h } = await setup('headers');
    const out = await raw(
      h,
      `GET http://localhost:${h.port}/loop HTTP/1.1\r\nHost: localhost:${h.port}\r\n\r\n`,
      1000,
    );
    expect(out).toMatch(/^HTTP\/1.1 403/);
    await h.recorder.until(() => h.recorder.requests[0]?.outcome !== undefined);
    expect(h.recorder.requests[0]).toMatchObject({
      host: 'localhost',
      url: '/loop',
      status: 403,
      outcome: 'loop',
    });
  });
});

describe('slow clients (a 500 ms header timeout)', () => {
  const slowSetup = () => limitedSetup({ headersTimeoutMs: 500 });

  it('answers 408 to a proxy request whose headers never end', async () => {
    const { h } = await slowSetup();
    const t0 = Date.now();
    const out = await raw(
      h,
      'GET http://api.example.test/ HTTP/1.1\r\nHost: api.example.test\r\n',
      5000,
    );
    expect(out).toMatch(/^HTTP\/1.1 408/);
    expect(Date.now() - t0).toBeLessThan(4000);
  });

  it('closes a tunnel whose client sends nothing after the 200', async () => {
    const { h } = await slowSetup();
    const t0 = Date.now();
    const out = await raw(
      h,
      'CONNECT api.example.test:443 HTTP/1.1\r\nHost: api.example.test:443\r\n\r\n',
      5000,
    );
    expect(out).toMatch(/^HTTP\/1.1 200/);
    expect(Date.now() - t0).toBeLessThan(4000);
    await h.recorder.until(() => h.recorder.connections[0]?.endedAt !== undefined);
    expect(h.recorder.connections[0]).toMatchObject({
      outcome: 'client_abort',
      reason: 'client sent nothing after CONNECT',
    });
  });

  it('answers 408 inside a TLS tunnel to headers that never end', async () => {
    const { upstream, h } = await slowSetup();
    const t = await tunnelTls(h.port, h.proxyCa.certPem, 'api.example.test:443');
    const done = readAll(t, 5000);
    const t0 = Date.now();
    t.write('GET /x HTTP/1.1\r\nHost: api.example.test\r\n');
    const drip = setInterval(() => t.writable && t.write('X-Drip: 1\r\n'), 100);
    try {
      expect(await done).toMatch(/^HTTP\/1.1 408/);
    } finally {
      clearInterval(drip);
    }
    expect(Date.now() - t0).toBeLessThan(4000);
    expect(upstream.requests).toHaveLength(0);
  });
});

describe('a slow upstream', () => {
  it("is waited for past the client connection's idle limit (its own header timeout applies)", async () => {
    const { h } = await limitedSetup({ idleTimeoutMs: 300 }, (_req, res) =>
      setTimeout(() => res.end('late'), 900),
    );
    const t = await tunnelTls(h.port, h.proxyCa.certPem, 'api.example.test:443');
    // Read until well after the response (the connection then stays for keep-alive).
    const answer = readAll(t, 2000);
    t.write('GET /slow HTTP/1.1\r\nHost: api.example.test\r\n\r\n');
    const out = await answer;
    expect(out).toMatch(/^HTTP\/1.1 200/);
    expect(out).toMatch(/late$/);
    await h.recorder.until(() => h.recorder.requests[0]?.outcome !== undefined);
    expect(h.recorder.requests[0]).toMatchObject({ status: 200, outcome: 'ok' });
  });
});

describe('a stalled upload', () => {
  it("is still cut by the client connection's idle limit", async () => {
    const { upstream, h } = await limitedSetup({ idleTimeoutMs: 300 });
    const t = await tunnelTls(h.port, h.proxyCa.certPem, 'api.example.test:443');
    const closed = readAll(t, 5000);
    const t0 = Date.now();
    t.write(
      'POST /up HTTP/1.1\r\nHost: api.example.test\r\nContent-Length: 100000\r\n\r\n0123456789',
    );
    await closed;
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(upstream.requests).toHaveLength(0);
  });
});

describe('closing the proxy', () => {
  it('ends the records of open tunnels, with their byte counts, before close() returns', async () => {
    for (const level of ['metadata', 'headers'] as const) {
      const { upstream, h } = await setup(level);
      const ca = level === 'metadata' ? upstreamCa.certPem : h.proxyCa.certPem;
      const t = await tunnelTls(h.port, ca, 'api.example.test:443');
      t.on('error', () => undefined);
      t.write('GET /open HTTP/1.1\r\nHost: api.example.test\r\n\r\n');
      await new Promise<void>((r) => t.once('data', () => r()));
      expect(upstream.requests).toHaveLength(1);
      await h.proxy.close();
      // Checked at once: the caller closes the store right after close() returns.
      const c = h.recorder.connections[0]!;
      expect(c.endedAt, level).toEqual(expect.any(Number));
      expect(c.bytesUp, level).toBeGreaterThan(0);
      expect(c.bytesDown, level).toBeGreaterThan(0);
    }
  });

  it('lets an exchange under way record how it ended before close() returns', async () => {
    const upstream = await startUpstream({
      leaf: await makeLeaf(upstreamCa, ['slow.example.test']),
      handler: () => undefined, // never answers
    });
    const h = await startProxy({
      level: 'headers',
      upstreamCa: [upstreamCa.certPem],
      resolve: [parseResolveRule(`slow.example.test:443:127.0.0.1:${upstream.port}`)],
    });
    closers.push(
      () => upstream.close(),
      () => h.close(),
    );
    const t = await tunnelTls(h.port, h.proxyCa.certPem, 'slow.example.test:443');
    t.on('error', () => undefined);
    t.write('GET /hangs HTTP/1.1\r\nHost: slow.example.test\r\n\r\n');
    await h.recorder.until(() => upstream.requests.length === 1);
    await h.proxy.close();
    expect(h.recorder.requests[0]).toMatchObject({ url: '/hangs', outcome: 'client_abort' });
  });
});

/** api.example.test:443 behind a headers-level proxy whose limits are changed as given. */
async function limitedSetup(limits: Partial<typeof DEFAULT_LIMITS>, handler?: Handler) {
  const upstream = await startUpstream({
    leaf: await makeLeaf(upstreamCa, ['api.example.test']),
    ...(handler ? { handler } : {}),
  });
  const h = await startProxy({
    level: 'headers',
    upstreamCa: [upstreamCa.certPem],
    resolve: [parseResolveRule(`api.example.test:443:127.0.0.1:${upstream.port}`)],
    limits: { ...DEFAULT_LIMITS, ...limits },
  });
  closers.push(
    () => upstream.close(),
    () => h.close(),
  );
  return { upstream, h };
}

/**
 * A raw upstream answering every request with `answer`, reached as evil.example.test:80 through
 * a headers-level proxy; resolves with what the proxy answered a plain GET.
 */
async function askHostile(answer: string): Promise<{ h: Harness; out: string }> {
  const srv = createNetServer((s) => {
    s.on('error', () => undefined); // the proxy may reset it (a head too large)
    s.on('data', () => s.end(answer));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  const h = await startProxy({
    level: 'headers',
    resolve: [parseResolveRule(`evil.example.test:80:127.0.0.1:${port}`)],
  });
  closers.push(
    () => h.close(),
    () => new Promise((r) => srv.close(() => r())),
  );
  const out = await raw(
    h,
    'GET http://evil.example.test/ HTTP/1.1\r\nHost: evil.example.test\r\n\r\n',
    2000,
  );
  return { h, out };
}

describe('hostile upstream', () => {
  it('gives 502 for a response with both Content-Length and Transfer-Encoding', async () => {
    const { h, out } = await askHostile(
      'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    );
    expect(out).toMatch(/^HTTP\/1.1 502/);
    await h.recorder.until(() => h.recorder.requests[0]?.outcome !== undefined);
    expect(h.recorder.requests[0]!.outcome).toBe('upstream_protocol');
  });

  it.each([
    [
      'a bad chunk size before any body byte',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n',
    ],
    ['a head over the header limit', `HTTP/1.1 200 OK\r\nX-A: ${'a'.repeat(70_000)}\r\n\r\n`],
    [
      'an unasked-for 100 Continue',
      'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
    ],
    [
      'Transfer-Encoding: chunked, identity (the body would run to the close, framing and all)',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
    ],
    ['an unknown transfer coding', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: bogus\r\n\r\nhello'],
    [
      'chunked given twice',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    ],
    [
      'an unasked-for 101 Switching Protocols',
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n',
    ],
  ])('answers 502 for %s and records it as upstream_protocol', async (_label, answer) => {
    const { h, out } = await askHostile(answer);
    expect(out).toMatch(/^HTTP\/1.1 502/);
    await h.recorder.until(() => h.recorder.requests[0]?.outcome !== undefined);
    expect(h.recorder.requests[0]).toMatchObject({ status: 502, outcome: 'upstream_protocol' });
  });

  it.each([
    ['304 with the Content-Length of the full response', 304, 'Content-Length: 1234\r\n'],
    ['304 without a length', 304, ''],
    ['204 with Content-Length: 0', 204, 'Content-Length: 0\r\n'],
  ])('relays a %s as it is (no body), recorded ok', async (_label, status, extra) => {
    const { h, out } = await askHostile(
      `HTTP/1.1 ${status} Whatever\r\nETag: "v1"\r\n${extra}\r\n`,
    );
    expect(out).toMatch(new RegExp(`^HTTP/1.1 ${status} `));
    expect(out).toMatch(/\r\netag: "v1"\r\n/i);
    await h.recorder.until(() => h.recorder.requests[0]?.outcome !== undefined);
    expect(h.recorder.requests[0]).toMatchObject({ status, outcome: 'ok' });
  });

  it('records an upstream reset mid-body and stays up', async () => {
    const upstream = await startUpstream({
      leaf: await makeLeaf(upstreamCa, ['api.example.test']),
      handler: (req, res) => {
        if (req.url !== '/reset') {
          res.end('fine');
          return;
        }
        res.writeHead(200, { 'content-length': '100000' });
        res.write(Buffer.alloc(1000));
        setTimeout(() => res.socket?.destroy(), 50);
      },
    });
    const h = await startProxy({
      level: 'full',
      upstreamCa: [upstreamCa.certPem],
      resolve: [parseResolveRule(`api.example.test:443:127.0.0.1:${upstream.port}`)],
    });
    closers.push(
      () => upstream.close(),
      () => h.close(),
    );
    const agent = new ProxyAgent({ uri: h.url, requestTls: { ca: h.proxyCa.certPem } });
    try {
      // The client sees the failure either before or after the response head, depending on
      // whether the proxy had flushed it when the reset arrived; both are a failed request.
      const failed = await request('https://api.example.test/reset', { dispatcher: agent })
        .then((r) => r.body.arrayBuffer())
        .then(
          () => false,
          () => true,
        );
      expect(failed).toBe(true);
      await h.recorder.until(() => h.recorder.requests[0]?.outcome !== undefined);
      expect(h.recorder.requests[0]!.outcome).toBe('upstream_reset');
      expect(h.recorder.requests[0]!.responseBody!.size).toBe(1000);
      // still serving
      const ok = await request('https://api.example.test/after', { dispatcher: agent }).catch(
        (e: Error) => e,
      );
      expect(ok instanceof Error ? ok.message : 'ok').toBe('ok');
      expect(await (ok as { body: { text(): Promise<string> } }).body.text()).toBe('fine');
    } finally {
      await agent.close();
    }
  });
});
