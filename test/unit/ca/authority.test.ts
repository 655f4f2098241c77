import { X509Certificate, createHash } from 'node:crypto';
import { chmod, copyFile, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { rootCertificates } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { loadOrCreateCa } from '../../../src/ca/index.js';
import { pemCertificates, SYSTEM_BUNDLES } from '../../../src/ca/bundle.js';
import { isTrustRunError, type TrustRunError } from '../../../src/core/index.js';
import { cleanupTemp, opensslText, tempPaths, writeCustomCa } from './helpers.js';

afterEach(cleanupTemp);

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

async function rejection(p: Promise<unknown>): Promise<TrustRunError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  if (!isTrustRunError(err)) throw new Error(`expected a TrustRunError, got ${String(err)}`);
  return err;
}

describe('loadOrCreateCa: a new CA', () => {
  it('has the documented properties (node X509Certificate and openssl agree)', async () => {
    const paths = await tempPaths();
    const before = Date.now();
    const ca = await loadOrCreateCa(paths);
    const cert = new X509Certificate(await readFile(paths.caCert));

    expect(cert.ca).toBe(true);
    expect(cert.subject).toMatch(/^CN=TrustRun Local CA [0-9a-f]{8}$/);
    expect(cert.issuer).toBe(cert.subject);
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(cert.publicKey.asymmetricKeyType).toBe('ec');
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    const notBefore = new Date(cert.validFrom).getTime();
    const notAfter = new Date(cert.validTo).getTime();
    expect(notBefore).toBeGreaterThan(before - HOUR - 5_000);
    expect(notBefore).toBeLessThanOrEqual(before - HOUR + 5_000);
    expect((notAfter - notBefore) / DAY).toBeGreaterThanOrEqual(3650);
    expect((notAfter - notBefore) / DAY).toBeLessThanOrEqual(3653);
    expect(cert.serialNumber).toMatch(/^[0-9A-F]{32}$/);

    const text = opensslText(cert.raw);
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0\n/);
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign\n/);
    // RFC 5280 method 1: SHA-1 of the public key bits (a P-256 SubjectPublicKeyInfo is 91 bytes,
    // the last 65 of them the uncompressed point).
    const spki = cert.publicKey.export({ type: 'spki', format: 'der' });
    expect(spki.length).toBe(91);
    const keyId = createHash('sha1').update(spki.subarray(26)).digest('hex').toUpperCase();
    const ski = /X509v3 Subject Key Identifier:\s+([0-9A-F:]{59})\n/.exec(text)?.[1];
    expect(ski?.replaceAll(':', '')).toBe(keyId);
    expect(text).toContain('Signature Algorithm: ecdsa-with-SHA256');

    // The returned object describes the files on disk.
    expect(ca.certPem).toBe(await readFile(paths.caCert, 'utf8'));
    expect(ca.certDer.equals(cert.raw)).toBe(true);
    expect(ca.fingerprint256).toBe(cert.fingerprint256);
    expect(ca.subject).toBe(cert.subject);
    expect(ca.notAfter.getTime()).toBe(notAfter);
    expect(Object.keys(ca).sort()).toEqual(
      ['certDer', 'certPem', 'fingerprint256', 'notAfter', 'paths', 'subject'].sort(),
    );
    expect(JSON.stringify(ca)).not.toContain('PRIVATE KEY');
  });

  it('is unique per install: two inits give different serials, keys and names', async () => {
    const [a, b] = await Promise.all([tempPaths(), tempPaths()]);
    const [caA, caB] = await Promise.all([loadOrCreateCa(a), loadOrCreateCa(b)]);
    const certA = new X509Certificate(caA.certPem);
    const certB = new X509Certificate(caB.certPem);
    expect(certA.serialNumber).not.toBe(certB.serialNumber);
    expect(certA.subject).not.toBe(certB.subject);
    const spki = (c: X509Certificate) => c.publicKey.export({ type: 'spki', format: 'der' });
    expect(spki(certA).equals(spki(certB))).toBe(false);
    expect(await readFile(a.caKey, 'utf8')).not.toBe(await readFile(b.caKey, 'utf8'));
  });

  it('loads the same CA on later calls without rewriting it', async () => {
    const paths = await tempPaths();
    const first = await loadOrCreateCa(paths);
    const keyStat = await stat(paths.caKey);
    const second = await loadOrCreateCa(paths);
    expect(second.fingerprint256).toBe(first.fingerprint256);
    const again = await stat(paths.caKey);
    expect(again.ino).toBe(keyStat.ino);
    expect(again.mtimeMs).toBe(keyStat.mtimeMs);
  });

  it('creates one CA when several callers race on a fresh directory', async () => {
    const paths = await tempPaths();
    const cas = await Promise.all(Array.from({ length: 6 }, () => loadOrCreateCa(paths)));
    expect(new Set(cas.map((c) => c.fingerprint256)).size).toBe(1);
    expect(new X509Certificate(await readFile(paths.caCert)).fingerprint256).toBe(
      cas[0]?.fingerprint256,
    );
  });

  it('writes the key 0600 in 0700 directories even under umask 000', async () => {
    const paths = await tempPaths();
    const old = process.umask(0);
    try {
      await loadOrCreateCa(paths);
    } finally {
      process.umask(old);
    }
    const mode = async (p: string) => (await stat(p)).mode & 0o777;
    expect(await mode(paths.caKey)).toBe(0o600);
    expect(await mode(paths.caDir)).toBe(0o700);
    expect(await mode(paths.root)).toBe(0o700);
    expect(await mode(paths.caCert)).toBe(0o644);
  });
});

describe('loadOrCreateCa: refusing a CA it cannot trust', () => {
  it('refuses a key readable by others, with the chmod hint', async () => {
    const paths = await tempPaths();
    await loadOrCreateCa(paths);
    await chmod(paths.caKey, 0o644);
    const err = await rejection(loadOrCreateCa(paths));
    expect(err.code).toBe('TR_CA_INSECURE');
    expect(err.message).toBe(`CA key ${paths.caKey} is readable by others (mode 0644)`);
    expect(err.hint).toBe(`chmod 600 ${paths.caKey}`);
  });

  it('refuses a key readable by its group', async () => {
    const paths = await tempPaths();
    await loadOrCreateCa(paths);
    await chmod(paths.caKey, 0o640);
    const err = await rejection(loadOrCreateCa(paths));
    expect(err.code).toBe('TR_CA_INSECURE');
    expect(err.message).toContain('(mode 0640)');
  });

  it('refuses a key that does not belong to the certificate', async () => {
    const [a, b] = await Promise.all([tempPaths(), tempPaths()]);
    await Promise.all([loadOrCreateCa(a), loadOrCreateCa(b)]);
    await copyFile(b.caKey, a.caKey);
    await chmod(a.caKey, 0o600);
    const err = await rejection(loadOrCreateCa(a));
    expect(err.code).toBe('TR_CA_INVALID');
    expect(err.message).toBe(`CA key ${a.caKey} does not match the certificate ${a.caCert}`);
  });

  it('refuses a half-present CA instead of replacing it', async () => {
    const paths = await tempPaths();
    await loadOrCreateCa(paths);
    await rm(paths.caCert);
    const err = await rejection(loadOrCreateCa(paths));
    expect(err.code).toBe('TR_CA_INVALID');
    expect(err.message).toBe(`CA is incomplete: ${paths.caCert} is missing`);
  });

  it('refuses an unparseable certificate', async () => {
    const paths = await tempPaths();
    await loadOrCreateCa(paths);
    await writeFile(paths.caCert, 'not a certificate\n');
    const err = await rejection(loadOrCreateCa(paths));
    expect(err.code).toBe('TR_CA_INVALID');
    expect(err.message).toContain('cannot be parsed');
  });

  it('refuses an expired CA', async () => {
    const paths = await tempPaths();
    await writeCustomCa(paths, {
      notBefore: new Date(Date.now() - 30 * DAY),
      notAfter: new Date(Date.now() - DAY),
    });
    const err = await rejection(loadOrCreateCa(paths));
    expect(err.code).toBe('TR_CA_INVALID');
    expect(err.message).toMatch(/expired on \d{4}-/);
  });

  it('refuses a certificate that is not a CA', async () => {
    const paths = await tempPaths();
    await writeCustomCa(paths, {
      notBefore: new Date(Date.now() - DAY),
      notAfter: new Date(Date.now() + 30 * DAY),
      isCa: false,
    });
    const err = await rejection(loadOrCreateCa(paths));
    expect(err.code).toBe('TR_CA_INVALID');
    expect(err.message).toBe(`${paths.caCert} is not a CA certificate`);
  });
});

describe('ca/bundle.pem', () => {
  async function systemCerts(): Promise<string[]> {
    for (const f of SYSTEM_BUNDLES) {
      const text = await readFile(f, 'utf8').catch(() => null);
      if (text !== null) return pemCertificates(text);
    }
    return [];
  }

  it('holds every system root and Node root once, then our CA', async () => {
    const paths = await tempPaths();
    const ca = await loadOrCreateCa(paths);
    const bundle = pemCertificates(await readFile(paths.caBundle, 'utf8'));
    const ours = pemCertificates(ca.certPem)[0];
    expect(bundle.at(-1)).toBe(ours);
    expect(new Set(bundle).size).toBe(bundle.length);
    const have = new Set(bundle);
    const system = await systemCerts();
    for (const pem of [...system, ...rootCertificates.flatMap(pemCertificates)]) {
      expect(have.has(pem)).toBe(true);
    }
    expect(bundle.length).toBe(
      new Set([...system, ...rootCertificates.flatMap(pemCertificates)]).size + 1,
    );
    // Every block parses as a certificate.
    for (const pem of bundle.slice(0, 5)) expect(() => new X509Certificate(pem)).not.toThrow();
  });

  it('is rewritten when missing, damaged, or when the CA changes', async () => {
    const paths = await tempPaths();
    const first = await loadOrCreateCa(paths);
    await rm(paths.caBundle);
    await loadOrCreateCa(paths);
    expect(await readFile(paths.caBundle, 'utf8')).toContain(pemCertificates(first.certPem)[0]);

    await writeFile(paths.caBundle, 'truncated');
    await loadOrCreateCa(paths);
    expect(pemCertificates(await readFile(paths.caBundle, 'utf8')).at(-1)).toBe(
      pemCertificates(first.certPem)[0],
    );

    await rm(paths.caCert);
    await rm(paths.caKey);
    const second = await loadOrCreateCa(paths);
    expect(second.fingerprint256).not.toBe(first.fingerprint256);
    const text = await readFile(paths.caBundle, 'utf8');
    expect(text).toContain(pemCertificates(second.certPem)[0]);
    expect(text).not.toContain(pemCertificates(first.certPem)[0]);
  });
});
