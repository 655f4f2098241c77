import { X509Certificate } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { checkServerIdentity, connect } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import {
  LeafMinter,
  MAX_LEAF_DAYS,
  loadOrCreateCa,
  type CertificateAuthority,
} from '../../../src/ca/index.js';
import { loopTurns, until } from '../../helpers/wait.js';
import { isTrustRunError } from '../../../src/core/index.js';
import {
  cleanupTemp,
  opensslText,
  peerCertificate,
  sleep,
  startHttps,
  tempDir,
  tempPaths,
  writeCustomCa,
  type HttpsTestServer,
} from './helpers.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const servers: HttpsTestServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  await cleanupTemp();
});

async function setup(opts?: { maxEntries?: number; ttlMs?: number; refillAfterMs?: number }) {
  const ca = await loadOrCreateCa(await tempPaths());
  const minter = await LeafMinter.create(ca, opts);
  return { ca, minter };
}

/** The leaf the minter serves for `servername` (or, without SNI, for `defaultHost`). */
async function leafFor(
  ca: CertificateAuthority,
  minter: LeafMinter,
  opts: { servername?: string; defaultHost?: string; host?: string },
) {
  const server = await startHttps(minter, { defaultHost: opts.defaultHost, host: opts.host });
  servers.push(server);
  return peerCertificate(server.port, {
    host: opts.host,
    servername: opts.servername,
    ca: ca.certPem,
  });
}

describe('LeafMinter: certificates', () => {
  it('mints a DNS leaf with an exact SAN, CN, serverAuth, signed by the CA', async () => {
    const { ca, minter } = await setup();
    const { cert, authorized, authorizationError } = await leafFor(ca, minter, {
      servername: 'api.example.test',
    });
    expect(authorizationError).toBeNull();
    expect(authorized).toBe(true);
    expect(cert.subjectAltName).toBe('DNS:api.example.test');
    expect(cert.subject).toBe('CN=api.example.test');
    expect(cert.issuer).toBe(ca.subject);
    expect(cert.ca).toBe(false);
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
    expect(cert.verify(new X509Certificate(ca.certPem).publicKey)).toBe(true);
    expect(cert.checkIssued(new X509Certificate(ca.certPem))).toBe(true);
    expect(checkServerIdentity('api.example.test', cert.toLegacyObject())).toBeUndefined();
    expect(checkServerIdentity('other.example.test', cert.toLegacyObject())).toBeInstanceOf(Error);
    expect(checkServerIdentity('x.api.example.test', cert.toLegacyObject())).toBeInstanceOf(Error);

    const text = opensslText(cert.raw);
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE\n/);
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature\n/);
    expect(text).toMatch(/X509v3 Extended Key Usage:\s*\n\s+TLS Web Server Authentication\n/);
    const aki = /X509v3 Authority Key Identifier:\s*\n\s+(?:keyid:)?([0-9A-F:]{59})\n/.exec(
      text,
    )?.[1];
    const ski = /X509v3 Subject Key Identifier:\s*\n\s+([0-9A-F:]{59})\n/.exec(
      opensslText(ca.certDer),
    )?.[1];
    expect(aki).toBeDefined();
    expect(aki).toBe(ski);
  });

  it('passes `openssl verify -purpose sslserver` against the CA', async () => {
    const { ca, minter } = await setup();
    const { cert } = await leafFor(ca, minter, { servername: 'verify.example.test' });
    const dir = await tempDir();
    await writeFile(join(dir, 'leaf.pem'), cert.toString());
    const r = spawnSync(
      'openssl',
      [
        'verify',
        '-CAfile',
        ca.paths.caCert,
        '-purpose',
        'sslserver',
        '-verify_hostname',
        'verify.example.test',
        join(dir, 'leaf.pem'),
      ],
      { encoding: 'utf8' },
    );
    expect(r.stdout + r.stderr).toContain(': OK');
    expect(r.status).toBe(0);
  });

  it('uses an IP SAN for IPv4 and IPv6 literals', async () => {
    const { ca, minter } = await setup();
    const v4 = await leafFor(ca, minter, { defaultHost: '127.0.0.1' });
    expect(v4.authorized).toBe(true);
    expect(v4.cert.subjectAltName).toBe('IP Address:127.0.0.1');
    expect(v4.cert.subject).toBe('CN=127.0.0.1');
    expect(checkServerIdentity('127.0.0.1', v4.cert.toLegacyObject())).toBeUndefined();

    const v6 = await leafFor(ca, minter, { defaultHost: '[::1]' });
    expect(v6.cert.subjectAltName).toMatch(/^IP Address:(0:0:0:0:0:0:0:1|::1)$/);
    expect(v6.cert.subject).toBe('CN=::1');
    expect(checkServerIdentity('::1', v6.cert.toLegacyObject())).toBeUndefined();
    expect(checkServerIdentity('127.0.0.1', v6.cert.toLegacyObject())).toBeInstanceOf(Error);
    expect(opensslText(v6.cert.raw)).toMatch(/IP Address:0:0:0:0:0:0:0:1\b/);
  });

  it('serves a real IPv6 client on ::1 that verifies the address', async () => {
    const { ca, minter } = await setup();
    const r = await leafFor(ca, minter, { host: '::1', defaultHost: '::1' });
    expect(r.authorized).toBe(true);
  });

  it('normalises names: case, trailing dot and IPv6 brackets share one certificate', async () => {
    const { minter } = await setup();
    const a = await minter.getSecureContext('API.Example.TEST.');
    const b = await minter.getSecureContext('api.example.test');
    const c = await minter.getSecureContext('[0:0::1]');
    const d = await minter.getSecureContext('::1');
    expect(b).toBe(a);
    expect(d).toBe(c);
    expect(minter.stats()).toEqual({ minted: 2, hits: 2, size: 2 });
  });

  it('backdates an hour and stays within 397 days', async () => {
    const { ca, minter } = await setup();
    const before = Date.now();
    const { cert } = await leafFor(ca, minter, { servername: 'validity.example.test' });
    const from = new Date(cert.validFrom).getTime();
    const to = new Date(cert.validTo).getTime();
    expect(from).toBeGreaterThan(before - HOUR - 5_000);
    expect(from).toBeLessThanOrEqual(before - HOUR + 1_000);
    expect(to - from).toBeLessThanOrEqual(MAX_LEAF_DAYS * DAY);
    expect(to - from).toBeGreaterThan((MAX_LEAF_DAYS - 1) * DAY);
  });

  it('never outlives the CA', async () => {
    const paths = await tempPaths();
    const caEnd = new Date(Math.floor((Date.now() + 20 * DAY) / 1000) * 1000);
    await writeCustomCa(paths, { notBefore: new Date(Date.now() - DAY), notAfter: caEnd });
    const ca = await loadOrCreateCa(paths);
    const minter = await LeafMinter.create(ca);
    const { cert, authorized } = await leafFor(ca, minter, { servername: 'short.example.test' });
    expect(authorized).toBe(true);
    expect(new Date(cert.validTo).getTime()).toBe(caEnd.getTime());
  });

  it('shares one leaf key between hosts and gives each certificate a random serial', async () => {
    const { ca, minter } = await setup();
    const one = await leafFor(ca, minter, { servername: 'one.example.test' });
    const two = await leafFor(ca, minter, { servername: 'two.example.test' });
    const spki = (c: X509Certificate) => c.publicKey.export({ type: 'spki', format: 'der' });
    expect(spki(one.cert).equals(spki(two.cert))).toBe(true);
    expect(one.cert.serialNumber).not.toBe(two.cert.serialNumber);
    expect(one.cert.serialNumber).toMatch(/^[0-9A-F]{32}$/);
  });

  it('puts a long name only in a critical SAN (CN is limited to 64 characters)', async () => {
    const { ca, minter } = await setup();
    const name = `${'a'.repeat(60)}.${'b'.repeat(20)}.example.test`;
    const { cert, authorized } = await leafFor(ca, minter, { servername: name });
    expect(authorized).toBe(true);
    expect(cert.subjectAltName).toBe(`DNS:${name}`);
    expect(cert.subject ?? '').toBe(''); // node reports an empty subject as undefined
    expect(opensslText(cert.raw)).toMatch(/X509v3 Subject Alternative Name: critical/);
  });

  it('refuses names that are not DNS names or IP literals', async () => {
    const { minter } = await setup();
    for (const bad of [
      '',
      'a b.example',
      'x'.repeat(64) + '.com',
      'bücher.example',
      '*.example.com',
      'fe80::1%eth0',
      'a'.repeat(250) + '.com',
    ]) {
      const err = await minter.getSecureContext(bad).then(
        () => null,
        (e: unknown) => e,
      );
      expect(isTrustRunError(err, 'TR_BAD_REQUEST'), `host ${JSON.stringify(bad)}`).toBe(true);
    }
    expect(minter.stats().minted).toBe(0);
  });

  it('fails the handshake (and nothing else) when SNI carries a bad name', async () => {
    const { ca, minter } = await setup();
    const server = await startHttps(minter);
    servers.push(server);
    const err = await new Promise<Error | null>((resolve) => {
      const s = connect(
        { host: '127.0.0.1', port: server.port, servername: 'bad_na me', ca: ca.certPem },
        () => {
          s.end();
          resolve(null);
        },
      );
      s.on('error', resolve);
    });
    expect(err).toBeInstanceOf(Error);
    const ok = await peerCertificate(server.port, {
      servername: 'fine.example.test',
      ca: ca.certPem,
    });
    expect(ok.authorized).toBe(true);
  });

  it('refuses a CA object it did not load, and bad options', async () => {
    const { ca } = await setup();
    const forged = { ...ca };
    await expect(LeafMinter.create(forged)).rejects.toMatchObject({ code: 'TR_CA_INVALID' });
    await expect(LeafMinter.create(ca, { maxEntries: 0 })).rejects.toMatchObject({
      code: 'TR_CONFIG',
    });
    await expect(LeafMinter.create(ca, { ttlMs: -1 })).rejects.toMatchObject({ code: 'TR_CONFIG' });
    await expect(LeafMinter.create(ca, { refillAfterMs: -1 })).rejects.toMatchObject({
      code: 'TR_CONFIG',
    });
  });

  it('signs with an RSA CA too', async () => {
    const paths = await tempPaths();
    await mkdir(paths.caDir, { recursive: true, mode: 0o700 });
    const made = spawnSync('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      paths.caKey,
      '-out',
      paths.caCert,
      '-days',
      '30',
      '-subj',
      '/CN=RSA test CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    expect(made.status, made.stderr?.toString()).toBe(0);
    await chmod(paths.caKey, 0o600);
    const ca = await loadOrCreateCa(paths);
    const minter = await LeafMinter.create(ca);
    const { cert, authorized } = await leafFor(ca, minter, { servername: 'rsa.example.test' });
    expect(authorized).toBe(true);
    expect(cert.subjectAltName).toBe('DNS:rsa.example.test');
    expect(cert.verify(new X509Certificate(ca.certPem).publicKey)).toBe(true);
    expect(opensslText(cert.raw)).toMatch(/Signature Algorithm: sha256WithRSAEncryption/);
  });
});

describe('LeafMinter: spare contexts', () => {
  it('takes a spare for a new host and refills it on refillSpares(), not right after the mint', async () => {
    const { ca, minter } = await setup({ refillAfterMs: 60_000 });
    expect(minter.spareCount).toBe(2);
    await minter.getSecureContext('one.spare.example.test');
    // The client's ClientHello follows the mint: no key loading may be queued in front of it.
    await loopTurns(10);
    expect(minter.spareCount).toBe(1);
    await minter.getSecureContext('two.spare.example.test');
    await loopTurns(10);
    expect(minter.spareCount).toBe(0);
    minter.refillSpares();
    await loopTurns(10);
    expect(minter.spareCount).toBe(2);
    // Contexts made from spares and the refilled ones serve real handshakes.
    const { cert, authorized } = await leafFor(ca, minter, {
      servername: 'three.spare.example.test',
    });
    expect(authorized).toBe(true);
    expect(cert.subjectAltName).toBe('DNS:three.spare.example.test');
  });

  it('makes a context on the spot when no spare is left', async () => {
    const { ca, minter } = await setup({ refillAfterMs: 60_000 });
    await minter.getSecureContext('a.empty.example.test');
    await minter.getSecureContext('b.empty.example.test');
    expect(minter.spareCount).toBe(0);
    const { cert, authorized } = await leafFor(ca, minter, { servername: 'c.empty.example.test' });
    expect(authorized).toBe(true);
    expect(cert.subjectAltName).toBe('DNS:c.empty.example.test');
    expect(minter.spareCount).toBe(0);
  });

  it('refills on its own refillAfterMs after a spare was taken when nobody asks', async () => {
    const { minter } = await setup({ refillAfterMs: 1000 });
    await minter.getSecureContext('late.example.test');
    await loopTurns(10);
    expect(minter.spareCount).toBe(1);
    await until(() => minter.spareCount === 2, 'the refill after refillAfterMs');
    expect(minter.spareCount).toBe(2);
  });
});

describe('LeafMinter: cache', () => {
  it('reuses the context: the second request mints nothing', async () => {
    const { minter } = await setup();
    const first = await minter.getSecureContext('cache.example.test');
    expect(minter.stats()).toEqual({ minted: 1, hits: 0, size: 1 });
    const second = await minter.getSecureContext('cache.example.test');
    expect(second).toBe(first);
    expect(minter.stats()).toEqual({ minted: 1, hits: 1, size: 1 });
  });

  it('mints once for concurrent first requests to one host', async () => {
    const { minter } = await setup();
    const all = await Promise.all(
      Array.from({ length: 25 }, () => minter.getSecureContext('race.example.test')),
    );
    expect(new Set(all).size).toBe(1);
    expect(minter.stats()).toEqual({ minted: 1, hits: 24, size: 1 });
  });

  it('keeps at most maxEntries, dropping the least recently used', async () => {
    const { minter } = await setup({ maxEntries: 3 });
    const a = await minter.getSecureContext('a.test');
    await minter.getSecureContext('b.test');
    await minter.getSecureContext('c.test');
    await minter.getSecureContext('a.test'); // a is now the most recent; b the least
    await minter.getSecureContext('d.test');
    expect(minter.stats()).toEqual({ minted: 4, hits: 1, size: 3 });
    expect(await minter.getSecureContext('a.test')).toBe(a);
    expect(minter.stats().minted).toBe(4);
    await minter.getSecureContext('b.test'); // evicted: minted again
    expect(minter.stats()).toEqual({ minted: 5, hits: 2, size: 3 });
  });

  it('mints again after the entry expires', async () => {
    const { minter } = await setup({ ttlMs: 1000 });
    const first = await minter.getSecureContext('ttl.example.test');
    expect(await minter.getSecureContext('ttl.example.test')).toBe(first);
    await sleep(1300);
    const later = await minter.getSecureContext('ttl.example.test');
    expect(later).not.toBe(first);
    expect(minter.stats()).toEqual({ minted: 2, hits: 1, size: 1 });
  });
});

describe('LeafMinter: cost', () => {
  it('yields to the event loop between contexts during 200 concurrent first requests', async () => {
    const { minter } = await setup();
    await minter.getSecureContext('warm-up.example.test');
    // Counts turns of the event loop: one re-armed setImmediate per turn. Minting that yields
    // between contexts lets other traffic run between them; minting the burst in one go would
    // finish many contexts within one turn. (Milliseconds are for bench/, not for tests: they
    // depend on how busy the machine is; turns do not.)
    let turns = 0;
    let counting = true;
    const tick = (): void => {
      turns++;
      if (counting) setImmediate(tick);
    };
    setImmediate(tick);
    const histogram = monitorEventLoopDelay({ resolution: 1 });
    histogram.enable();
    const started = performance.now();
    const turnAtDone: number[] = [];
    const contexts = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        minter.getSecureContext(`host-${i}.burst.example.test`).then((ctx) => {
          turnAtDone.push(turns);
          return ctx;
        }),
      ),
    );
    const elapsed = performance.now() - started;
    counting = false;
    histogram.disable();
    console.info(
      `200 concurrent mints: ${elapsed.toFixed(0)} ms total, ${turns} loop turns, ` +
        `max event-loop delay ${(histogram.max / 1e6).toFixed(1)} ms`,
    );
    expect(new Set(contexts).size).toBe(200);
    expect(minter.stats().minted).toBe(201);
    // Every context completes in a later turn of the loop than the one before it.
    const sameTurn = turnAtDone.filter((t, i) => i > 0 && t === turnAtDone[i - 1]).length;
    expect(sameTurn).toBe(0);
    // One turn per context; the first may complete in the turn that asked for it (an EC CA
    // signs inline, without a trip through the thread pool).
    expect(turns).toBeGreaterThanOrEqual(199);
  });

  it('measures 200 sequential mints for distinct hosts', async () => {
    const { minter } = await setup();
    await minter.getSecureContext('warm-up.example.test');
    const times: number[] = [];
    for (let i = 0; i < 200; i++) {
      const t = performance.now();
      await minter.getSecureContext(`seq-${i}.example.test`);
      times.push(performance.now() - t);
    }
    times.sort((x, y) => x - y);
    const p50 = times[99] as number;
    const p99 = times[197] as number;
    console.info(
      `leaf mint (sign + secure context): p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms`,
    );
    expect(minter.stats().minted).toBe(201);
    expect(p50).toBeLessThan(25);
  });
});
