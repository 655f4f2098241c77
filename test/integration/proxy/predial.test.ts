import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connect as netConnect, createServer as createNet, type AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { parsePolicy } from '../../../src/policy/index.js';
import { DEFAULT_LIMITS, parseResolveRule, type PolicyGate } from '../../../src/proxy/index.js';
import type { TestContexts } from '../../helpers/harness.js';
import { startProxy, type Harness } from '../../helpers/harness.js';
import { makeLeaf, makeTestCa, type TestCa, type TestLeaf } from '../../helpers/pki.js';
import { startUpstream, type TestUpstream } from '../../helpers/upstream.js';
import { getInTunnel, tunnelTls } from '../../helpers/tunnel.js';
import { until } from '../../helpers/wait.js';

/**
 * The upstream connection is opened while the client does its TLS handshake with the proxy, and
 * the first request uses it. These tests watch the upstream's sockets one by one: when each was
 * accepted, whether it completed a TLS handshake, how many requests it carried, when it closed.
 */
const HOST = 'api.ahead.test';

let upstreamCa: TestCa;
let leaf: TestLeaf;
const closers: (() => Promise<void>)[] = [];
beforeAll(async () => {
  upstreamCa = await makeTestCa();
  leaf = await makeLeaf(upstreamCa, [HOST]);
});
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

/** An upstream that answers `ok`; its `sockets` show when each connection opened and closed. */
async function watchedUpstream(port = 0): Promise<TestUpstream> {
  const up = await startUpstream({ leaf, port, handler: (_req, res) => res.end('ok') });
  closers.push(() => up.close());
  return up;
}

/** The paths the upstream was asked for, in order. */
const paths = (up: TestUpstream) => up.requests.map((r) => r.url);

async function proxyTo(
  port: number,
  opts: { policy?: PolicyGate; predialIdleMs?: number } = {},
): Promise<Harness> {
  const h = await startProxy({
    level: 'headers',
    upstreamCa: [upstreamCa.certPem],
    resolve: [parseResolveRule(`${HOST}:443:127.0.0.1:${port}`)],
    policy: opts.policy ?? null,
    limits: { ...DEFAULT_LIMITS, predialIdleMs: opts.predialIdleMs ?? 60_000 },
  });
  closers.push(() => h.close());
  return h;
}

/** CONNECT, then a TLS session inside the tunnel trusting the proxy CA; no request yet. */
const openTunnel = (h: Harness): Promise<TLSSocket> =>
  tunnelTls(h.port, h.proxyCa.certPem, `${HOST}:443`);

/** Sends one request on an open tunnel and returns the response head and body text. */
const get = (t: TLSSocket, path: string): Promise<string> => getInTunnel(t, HOST, path);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('upstream connection opened during the client handshake', () => {
  it('is TLS-connected before any request and carries the first request', async () => {
    const up = await watchedUpstream();
    const h = await proxyTo(up.port);
    const t = await openTunnel(h);
    // No request has been sent: the upstream already has one verified TLS connection, idle.
    await until(() => up.sockets[0]?.secured === true, 'the upstream handshake');
    expect(up.sockets).toHaveLength(1);
    expect(paths(up)).toEqual([]);
    expect(await get(t, '/one')).toMatch(/^HTTP\/1.1 200/);
    // The request went over that connection: no second one was dialed.
    expect(up.sockets).toHaveLength(1);
    expect(up.sockets[0]!.requests).toBe(1);
    expect(paths(up)).toEqual(['/one']);
    t.destroy();
  });

  it('closes a connection no request takes after the idle time, the tunnel still open', async () => {
    const up = await watchedUpstream();
    const h = await proxyTo(up.port, { predialIdleMs: 300 });
    const t = await openTunnel(h);
    await until(() => up.sockets[0]?.secured === true, 'the upstream handshake');
    const opened = up.sockets[0]!.accepted;
    await until(() => up.sockets[0]!.closed, 'the idle connection to close', 3000);
    expect(Date.now() - opened).toBeGreaterThanOrEqual(250);
    expect(t.destroyed).toBe(false);
    expect(up.sockets[0]!.requests).toBe(0);
    // A request afterwards still works: it dials a new connection.
    expect(await get(t, '/late')).toMatch(/^HTTP\/1.1 200/);
    expect(up.sockets).toHaveLength(2);
    expect(up.sockets[1]!.requests).toBe(1);
    t.destroy();
  });

  it('closes it when the tunnel ends before any request', async () => {
    const up = await watchedUpstream();
    const h = await proxyTo(up.port, { predialIdleMs: 60_000 });
    const t = await openTunnel(h);
    await until(() => up.sockets[0]?.secured === true, 'the upstream handshake');
    t.destroy();
    await until(() => up.sockets[0]!.closed, 'the connection to close with the tunnel', 3000);
    expect(paths(up)).toEqual([]);
  });

  it('does not dial (nor mint) for a blocked CONNECT', async () => {
    const up = await watchedUpstream();
    const policy = await parsePolicy(
      `version: 2\nrules:\n  - match: ${HOST}\n    action: block\n    reason: test\ndefaults:\n  action: allow\n`,
      'policy.yaml',
      { warn: () => undefined },
    );
    const h = await proxyTo(up.port, { policy });
    const answer = await new Promise<string>((resolve, reject) => {
      const s = netConnect(h.port, '127.0.0.1');
      let out = '';
      s.on('data', (d) => (out += d.toString()));
      s.on('error', reject);
      s.on('close', () => resolve(out));
      s.write(`CONNECT ${HOST}:443 HTTP/1.1\r\nHost: ${HOST}:443\r\n\r\n`);
    });
    expect(answer).toMatch(/^HTTP\/1.1 403/);
    await sleep(200);
    expect(up.sockets).toHaveLength(0);
    const contexts = (h.proxy as unknown as { deps: { contexts: TestContexts } }).deps.contexts;
    expect(contexts.minted).toBe(0);
  });

  it('a request a path rule blocks: the upstream saw the TLS handshake and no request', async () => {
    const up = await watchedUpstream();
    const policy = await parsePolicy(
      `version: 2\nrules:\n  - match: ${HOST}\n    paths: ["/admin/*"]\n    action: block\n    reason: admin\n  - match: ${HOST}\n    action: allow\ndefaults:\n  action: block\n`,
      'policy.yaml',
      { warn: () => undefined },
    );
    const h = await proxyTo(up.port, { policy });
    const t = await openTunnel(h);
    expect(await get(t, '/admin/keys')).toMatch(/^HTTP\/1.1 403/);
    await until(() => up.sockets[0]?.secured === true, 'the upstream handshake');
    expect(paths(up)).toEqual([]);
    expect(up.sockets[0]!.requests).toBe(0);
    await h.recorder.until(() => h.recorder.requests[0]?.outcome !== undefined);
    expect(h.recorder.requests[0]).toMatchObject({ url: '/admin/keys', outcome: 'blocked' });
    t.destroy();
    await until(() => up.sockets.every((s) => s.closed), 'the unused connection to close');
  });

  it('mints the leaf and opens the upstream connection at CONNECT time, before the ClientHello', async () => {
    const up = await watchedUpstream();
    const h = await proxyTo(up.port);
    const contexts = (h.proxy as unknown as { deps: { contexts: TestContexts } }).deps.contexts;
    const s = netConnect(h.port, '127.0.0.1');
    closers.push(async () => void s.destroy());
    s.write(`CONNECT ${HOST}:443 HTTP/1.1\r\nHost: ${HOST}:443\r\n\r\n`);
    await new Promise((r) => s.once('data', r));
    await until(() => contexts.minted === 1, 'the leaf to be minted');
    await until(() => up.sockets[0]?.secured === true, 'the upstream handshake');
    expect(paths(up)).toEqual([]);
  });

  it('sends no ClientHello to a port-80 upstream when the tunnel carries plain HTTP', async () => {
    const plain = await startUpstream();
    closers.push(() => plain.close());
    const h = await startProxy({
      level: 'headers',
      resolve: [parseResolveRule(`${HOST}:80:127.0.0.1:${plain.port}`)],
      limits: { ...DEFAULT_LIMITS, predialIdleMs: 60_000 },
    });
    closers.push(() => h.close());
    const out = await new Promise<string>((resolve, reject) => {
      const s = netConnect(h.port, '127.0.0.1');
      let buf = '';
      s.on('error', reject);
      s.once('data', (d) => {
        if (!d.toString().startsWith('HTTP/1.1 200')) return reject(new Error(d.toString()));
        s.on('data', (more) => {
          buf += more.toString();
          if (buf.includes('"ok":true')) {
            s.destroy();
            resolve(buf);
          }
        });
        s.write(`GET /plain HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
      });
      s.write(`CONNECT ${HOST}:80 HTTP/1.1\r\nHost: ${HOST}:80\r\n\r\n`);
    });
    expect(out).toMatch(/^HTTP\/1.1 200/);
    expect(paths(plain)).toEqual(['/plain']);
    expect(plain.connections).toBe(1);
  });
});

describe('a pre-dial that fails', () => {
  it('does not fail the CONNECT: the request dials normally once the upstream is up', async () => {
    const probe = createNet();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const h = await proxyTo(port);
    const t = await openTunnel(h); // the pre-dial meets a closed port
    await sleep(100);
    const up = await watchedUpstream(port);
    expect(await get(t, '/after')).toMatch(/^HTTP\/1.1 200/);
    expect(paths(up)).toEqual(['/after']);
    expect(up.sockets).toHaveLength(1);
    t.destroy();
  });

  it('leaves the error classified as before when the upstream stays down', async () => {
    const probe = createNet();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const h = await proxyTo(port);
    const t = await openTunnel(h);
    expect(await get(t, '/down')).toMatch(/^HTTP\/1.1 502/);
    await h.recorder.until(() => h.recorder.requests[0]?.outcome !== undefined);
    expect(h.recorder.requests[0]).toMatchObject({ outcome: 'upstream_connect' });
    expect(h.recorder.requests[0]!.reason).toMatch(/ECONNREFUSED/);
    t.destroy();
  });
});
