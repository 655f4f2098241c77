/**
 * The PKCS#12 trust stores: node-forge parses them back (MAC checked with the password), our CA
 * is in them, and when keytool is installed Java itself lists the certificates as trusted
 * entries (it ignores certificates that lack Oracle's trusted-key-usage attribute).
 */
import { spawnSync } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import forge from 'node-forge';
import { afterEach, describe, expect, it } from 'vitest';
import {
  buildTrustStore,
  caAlias,
  ensureJavaTrustStore,
  exportCaPkcs12,
  javaToolOptions,
  loadOrCreateCa,
} from '../../../src/ca/index.js';
import { pemCertificates } from '../../../src/ca/bundle.js';
import { caExport } from '../../../src/cli/commands/ca.js';
import { cleanupTemp, tempDir, tempPaths } from './helpers.js';
import { makeTestCa } from '../../helpers/pki.js';

afterEach(cleanupTemp);

const hasKeytool = spawnSync('keytool', ['-help'], { stdio: 'ignore' }).status === 0;

function der(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[A-Z ]+-----|\s+/g, ''), 'base64');
}

/**
 * The certificates of a PKCS#12 file: node-forge checks the MAC with the password and reads the
 * bag attributes; the DER bytes are taken from the raw structure (forge re-encodes what it parses).
 */
function readP12(bytes: Buffer, password: string) {
  const pfx = forge.asn1.fromDer(bytes.toString('binary'));
  const p12 = forge.pkcs12.pkcs12FromAsn1(pfx, true, password);
  const bags = p12.getBags({ bagType: forge.pki.oids.certBag! })[forge.pki.oids.certBag!] ?? [];
  const inner = (n: forge.asn1.Asn1, ...path: number[]): forge.asn1.Asn1 =>
    path.reduce((a, i) => (a.value as forge.asn1.Asn1[])[i]!, n);
  const authSafe = forge.asn1.fromDer(inner(pfx, 1, 1, 0).value as string);
  const raw: { der: Buffer; attributeOids: string[] }[] = [];
  for (const ci of authSafe.value as forge.asn1.Asn1[]) {
    const safe = forge.asn1.fromDer(inner(ci, 1, 0).value as string);
    for (const bag of safe.value as forge.asn1.Asn1[]) {
      raw.push({
        der: Buffer.from(inner(bag, 1, 0, 1, 0).value as string, 'binary'),
        attributeOids: (inner(bag, 2).value as forge.asn1.Asn1[]).map((a) =>
          forge.asn1.derToOid(inner(a, 0).value as string),
        ),
      });
    }
  }
  expect(raw).toHaveLength(bags.length);
  return bags.map((b, i) => ({
    name: b.attributes.friendlyName?.[0] as string | undefined,
    // Oracle's trustedKeyUsage, which forge does not decode.
    trusted: raw[i]!.attributeOids.includes('2.16.840.1.113894.746875.1.1'),
    der: raw[i]!.der,
  }));
}

function keytoolList(file: string, password: string): string {
  const r = spawnSync(
    'keytool',
    ['-list', '-keystore', file, '-storetype', 'PKCS12', '-storepass', password],
    { encoding: 'utf8', env: { ...process.env, JAVA_TOOL_OPTIONS: '' } },
  );
  expect(r.stderr.replace(/Picked up JAVA_TOOL_OPTIONS.*\n/, '')).toBe('');
  expect(r.status).toBe(0);
  return r.stdout;
}

describe('PKCS#12 trust stores', () => {
  it('ca export p12: forge verifies the MAC and finds our CA, with the trust attribute', async () => {
    const paths = await tempPaths();
    const ca = await loadOrCreateCa(paths);
    const p12 = exportCaPkcs12(ca, 's3cret pass');
    const certs = readP12(p12, 's3cret pass');
    expect(certs).toHaveLength(1);
    expect(certs[0]!.der.equals(Buffer.from(ca.certDer))).toBe(true);
    expect(certs[0]!.name).toBe(caAlias(ca));
    expect(certs[0]!.trusted).toBe(true);
    // A wrong password fails the MAC check.
    expect(() => readP12(p12, 'wrong')).toThrow(/MAC/i);
  });

  it('caExport --format p12: a random password when none is given; --password only for p12', async () => {
    const paths = await tempPaths();
    const ca = await loadOrCreateCa(paths);
    const out = join(await tempDir(), 'ca.p12');
    const made = await caExport({ dataDir: paths.root, format: 'p12', output: out });
    expect(made.generatedPassword).toMatch(/^[A-Za-z0-9_-]{16}$/);
    const certs = readP12(await readFile(out), made.generatedPassword!);
    expect(certs.map((c) => c.der.equals(Buffer.from(ca.certDer)))).toEqual([true]);
    const given = await caExport({ dataDir: paths.root, format: 'p12', password: 'pw' });
    expect(given.generatedPassword).toBeUndefined();
    expect(readP12(given, 'pw')).toHaveLength(1);
    await expect(caExport({ dataDir: paths.root, format: 'pem', password: 'pw' })).rejects.toThrow(
      /--password applies to --format p12 only/,
    );
  });

  it('holds ECDSA and RSA certificates byte for byte, with unique aliases', async () => {
    const ec = await makeTestCa('EC Test CA');
    const paths = await tempPaths();
    const rsa = await loadOrCreateCa(paths);
    const p12 = buildTrustStore(
      [
        { alias: 'ec', der: der(ec.certPem) },
        { alias: 'Ünïcode name', der: Buffer.from(rsa.certDer) },
      ],
      'pw',
    );
    const certs = readP12(p12, 'pw');
    expect(certs.map((c) => c.name)).toEqual(['ec', 'Ünïcode name']);
    expect(certs[0]!.der.equals(der(ec.certPem))).toBe(true);
    expect(() =>
      buildTrustStore(
        [
          { alias: 'a', der: der(ec.certPem) },
          { alias: 'A', der: der(ec.certPem) },
        ],
        'pw',
      ),
    ).toThrow(/duplicate alias/);
  });

  it('the run trust store: every bundle certificate, ours last; 0600; rewritten only on change', async () => {
    const paths = await tempPaths();
    const ca = await loadOrCreateCa(paths);
    const store = await ensureJavaTrustStore(ca, paths);
    expect(store.path).toBe(join(paths.shimsDir, 'java-truststore.p12'));
    expect((await stat(store.path)).mode & 0o777).toBe(0o600);
    expect((await stat(paths.shimsDir)).mode & 0o777).toBe(0o700);
    const bundle = pemCertificates(await readFile(paths.caBundle, 'utf8'));
    const certs = readP12(await readFile(store.path), store.password);
    expect(certs).toHaveLength(bundle.length);
    expect(certs.every((c) => c.trusted)).toBe(true);
    expect(certs.at(-1)!.der.equals(Buffer.from(ca.certDer))).toBe(true);
    expect(certs.at(-1)!.name).toBe(caAlias(ca));

    const before = (await stat(store.path)).mtimeMs;
    await new Promise((r) => setTimeout(r, 20));
    await ensureJavaTrustStore(ca, paths);
    expect((await stat(store.path)).mtimeMs).toBe(before);
    // A changed bundle (new system roots) makes a new store.
    await writeFile(paths.caBundle, ca.certPem);
    await ensureJavaTrustStore(ca, paths);
    expect(readP12(await readFile(store.path), store.password)).toHaveLength(1);
  });

  it.skipIf(!hasKeytool)(
    'keytool -list reads both stores as trusted certificate entries',
    async () => {
      const paths = await tempPaths();
      const ca = await loadOrCreateCa(paths);
      const dir = await tempDir();
      const exported = join(dir, 'ca.p12');
      await writeFile(exported, exportCaPkcs12(ca, 'changeit'));
      const one = keytoolList(exported, 'changeit');
      expect(one).toContain('Your keystore contains 1 entry');
      expect(one).toMatch(new RegExp(`${caAlias(ca)},.*trustedCertEntry`));
      const fp = spawnSync(
        'keytool',
        ['-list', '-v', '-keystore', exported, '-storepass', 'changeit'],
        {
          encoding: 'utf8',
        },
      ).stdout;
      expect(fp).toContain(`SHA256: ${ca.fingerprint256}`);

      const store = await ensureJavaTrustStore(ca, paths);
      const all = keytoolList(store.path, store.password);
      const count = Number(/contains (\d+) entries/.exec(all)?.[1]);
      expect(count).toBeGreaterThan(1);
      expect(all).toMatch(new RegExp(`${caAlias(ca)},.*trustedCertEntry`));
      expect(all.match(/trustedCertEntry/g)).toHaveLength(count);
    },
  );

  it('JAVA_TOOL_OPTIONS words: trust store, proxy both schemes, no loopback bypass, quoting', () => {
    const store = {
      path: '/d/shims/java-truststore.p12',
      password: 'trustrun',
      type: 'PKCS12' as const,
    };
    expect(javaToolOptions(store, 'http://127.0.0.1:4567')).toBe(
      '-Djavax.net.ssl.trustStore=/d/shims/java-truststore.p12 -Djavax.net.ssl.trustStoreType=PKCS12 ' +
        '-Djavax.net.ssl.trustStorePassword=trustrun -Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort=4567 ' +
        '-Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=4567 -Dhttp.nonProxyHosts=',
    );
    expect(javaToolOptions({ ...store, path: '/my data/x.p12' })).toMatch(
      /^"-Djavax\.net\.ssl\.trustStore=\/my data\/x\.p12" /,
    );
    expect(javaToolOptions(store, 'http://[::1]:9')).toContain(
      '-Dhttps.proxyHost=::1 -Dhttps.proxyPort=9',
    );
  });
});
