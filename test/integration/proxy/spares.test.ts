import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { LeafMinter, loadOrCreateCa, type CertificateAuthority } from '../../../src/ca/index.js';
import { parseResolveRule } from '../../../src/proxy/index.js';
import { startProxy } from '../../helpers/harness.js';
import { makeLeaf, makeTestCa } from '../../helpers/pki.js';
import { getInTunnel, tunnelTls } from '../../helpers/tunnel.js';
import { startUpstream } from '../../helpers/upstream.js';
import { until } from '../../helpers/wait.js';
import { cleanupTemp, tempPaths } from '../../unit/ca/helpers.js';

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
afterAll(cleanupTemp);

async function setup(): Promise<{
  ca: CertificateAuthority;
  minter: LeafMinter;
  proxyPort: number;
  sparesAtRequest: number[];
}> {
  const ca = await loadOrCreateCa(await tempPaths());
  // Without a call from the proxy the spares would come back only after a minute.
  const minter = await LeafMinter.create(ca, { refillAfterMs: 60_000 });
  const upstreamCa = await makeTestCa();
  const sparesAtRequest: number[] = [];
  const upstream = await startUpstream({
    leaf: await makeLeaf(upstreamCa, ['*.spares.test']),
    handler: (_req, res) => {
      sparesAtRequest.push(minter.spareCount);
      res.end('ok');
    },
  });
  closers.push(() => upstream.close());
  const h = await startProxy({
    level: 'headers',
    upstreamCa: [upstreamCa.certPem],
    resolve: [parseResolveRule(`*.spares.test:443:127.0.0.1:${upstream.port}`)],
    contexts: minter,
  });
  closers.push(() => h.close());
  return { ca, minter, proxyPort: h.port, sparesAtRequest };
}

/** CONNECT to `host`, TLS trusting the proxy CA, one GET; resolves with the whole response. */
async function getThroughTunnel(port: number, caPem: string, host: string): Promise<string> {
  const t = await tunnelTls(port, caPem, `${host}:443`);
  const out = await getInTunnel(t, host, '/');
  t.destroy();
  return out;
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
    (await tunnelTls(proxyPort, ca.certPem, 'idle.spares.test:443')).destroy();
    await until(() => minter.spareCount === 2, 'the spare to be replaced after the tunnel closed');
    expect(minter.stats().minted).toBe(1);
  });
});
