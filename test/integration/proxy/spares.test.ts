import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createHttps, type Server } from 'node:https';
import { connect as netConnect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { LeafMinter, loadOrCreateCa, type CertificateAuthority } from '../../../src/ca/index.js';
import { dataPaths, silentLogger } from '../../../src/core/index.js';
import { DEFAULT_LIMITS, InterceptingProxy, parseResolveRule } from '../../../src/proxy/index.js';
import { MemoryRecorder } from '../../helpers/memory-recorder.js';
import { makeLeaf, makeTestCa } from '../../helpers/pki.js';
import { until } from '../../helpers/wait.js';

/**
 * The minter keeps contexts that already hold the leaf key ready for new hosts. Making one
 * (a millisecond or more of key loading) must not run between a new host's mint and its TLS
 * handshake and request: the proxy asks for the refill once the exchange is over. These tests
 * run the real LeafMinter inside the proxy and read its stock from the upstream's handler, that
 * is, after the handshake and the request's record, while the response is still to come.
 */
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

async function setup(): Promise<{
  ca: CertificateAuthority;
  minter: LeafMinter;
  proxyPort: number;
  sparesAtRequest: number[];
}> {
  const dir = await mkdtemp(join(tmpdir(), 'trustrun-spares-'));
  closers.push(() => rm(dir, { recursive: true, force: true }));
  const ca = await loadOrCreateCa(dataPaths(join(dir, 'data')));
  // Without a call from the proxy the spares would come back only after a minute.
  const minter = await LeafMinter.create(ca, { refillAfterMs: 60_000 });
  const upstreamCa = await makeTestCa();
  const leaf = await makeLeaf(upstreamCa, ['*.spares.test']);
  const sparesAtRequest: number[] = [];
  const upstream: Server = createHttps({ key: leaf.keyPem, cert: leaf.certPem }, (req, res) => {
    sparesAtRequest.push(minter.spareCount);
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  closers.push(
    () =>
      new Promise<void>((r) => {
        upstream.closeAllConnections();
        upstream.close(() => r());
      }),
  );
  const upstreamPort = (upstream.address() as AddressInfo).port;
  const proxy = new InterceptingProxy(
    {
      host: '127.0.0.1',
      port: 0,
      level: 'headers',
      maxBody: 1024 * 1024,
      upstreamCa: [upstreamCa.certPem],
      resolve: [parseResolveRule(`*.spares.test:443:127.0.0.1:${upstreamPort}`)],
      onStoreError: 'fail',
      guardPorts: [],
      limits: DEFAULT_LIMITS,
    },
    {
      recorder: new MemoryRecorder(),
      sessionId: 'spares-session',
      contexts: minter,
      policy: null,
      logger: silentLogger(),
    },
  );
  const addr = await proxy.listen();
  closers.push(() => proxy.close());
  return { ca, minter, proxyPort: addr.port, sparesAtRequest };
}

/** CONNECT to `host`, TLS trusting the proxy CA, one GET; resolves with the whole response. */
function getThroughTunnel(port: number, caPem: string, host: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = netConnect(port, '127.0.0.1');
    s.once('error', reject);
    s.write(`CONNECT ${host}:443 HTTP/1.1\r\nHost: ${host}:443\r\n\r\n`);
    s.once('data', (d) => {
      if (!d.toString().startsWith('HTTP/1.1 200')) return reject(new Error(d.toString()));
      const t: TLSSocket = tlsConnect({ socket: s, servername: host, ca: caPem });
      t.once('error', reject);
      let out = '';
      t.on('data', (c: Buffer) => {
        out += c.toString('latin1');
        if (/\r\n\r\nok$/.test(out)) {
          t.destroy();
          resolve(out);
        }
      });
      t.write(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
    });
  });
}

describe('spare contexts in the proxy', () => {
  it('are refilled after a new host exchange, not between its mint and its request', async () => {
    const { ca, minter, proxyPort, sparesAtRequest } = await setup();
    expect(minter.spareCount).toBe(2);

    expect(await getThroughTunnel(proxyPort, ca.certPem, 'one.spares.test')).toMatch(
      /^HTTP\/1.1 200/,
    );
    // The host's handshake took a spare; none was made again before its request went upstream.
    expect(sparesAtRequest).toEqual([1]);
    await until(() => minter.spareCount === 2, 'the spare to be replaced after the exchange');

    expect(await getThroughTunnel(proxyPort, ca.certPem, 'two.spares.test')).toMatch(
      /^HTTP\/1.1 200/,
    );
    expect(sparesAtRequest).toEqual([1, 1]);
    await until(() => minter.spareCount === 2, 'the spare to be replaced again');
    expect(minter.stats().minted).toBe(2);
  });

  it('are refilled when a tunnel closes without any request', async () => {
    const { ca, minter, proxyPort } = await setup();
    await new Promise<void>((resolve, reject) => {
      const s = netConnect(proxyPort, '127.0.0.1');
      s.once('error', reject);
      s.write('CONNECT idle.spares.test:443 HTTP/1.1\r\nHost: idle.spares.test:443\r\n\r\n');
      s.once('data', () => {
        const t = tlsConnect({ socket: s, servername: 'idle.spares.test', ca: ca.certPem });
        t.once('error', reject);
        t.once('secureConnect', () => {
          t.destroy();
          resolve();
        });
      });
    });
    await until(() => minter.spareCount === 2, 'the spare to be replaced after the tunnel closed');
    expect(minter.stats().minted).toBe(1);
  });
});
