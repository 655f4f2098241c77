import 'reflect-metadata';
import { KeyObject, webcrypto, X509Certificate, randomBytes } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/**
 * Test certificates come from a general X.509 library, independent of the product's own encoder
 * (src/ca/x509.ts), so each checks the other.
 */
export { x509 };

const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface TestCa {
  certPem: string;
  keys: webcrypto.CryptoKeyPair;
  cert: x509.X509Certificate;
}

export interface TestLeaf {
  certPem: string;
  keyPem: string;
}

function serial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f;
  return b.toString('hex');
}

/** The key made at test time, as PKCS#8 PEM (encoded by node:crypto). */
async function keyPem(key: webcrypto.CryptoKey): Promise<string> {
  return KeyObject.from(key).export({ format: 'pem', type: 'pkcs8' }).toString();
}

/** A CA made at test time for the test's upstream servers (never the proxy's CA). */
export async function makeTestCa(name = 'Upstream Test CA'): Promise<TestCa> {
  const keys = (await webcrypto.subtle.generateKey(alg, true, [
    'sign',
    'verify',
  ])) as unknown as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${name}`,
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + 30 * 86400_000),
    keys,
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
    ],
  });
  return { certPem: cert.toString('pem'), keys, cert };
}

/** A server certificate for `names`, signed by `ca` (or self-signed when ca is null). */
export async function makeLeaf(
  ca: TestCa | null,
  names: string[],
  opts: { notBefore?: Date; notAfter?: Date } = {},
): Promise<TestLeaf> {
  const keys = (await webcrypto.subtle.generateKey(alg, true, [
    'sign',
    'verify',
  ])) as unknown as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const sans = names.map((n) =>
    /^[\d.]+$|:/.test(n) ? { type: 'ip' as const, value: n } : { type: 'dns' as const, value: n },
  );
  const extensions = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
    new x509.SubjectAlternativeNameExtension(sans),
  ];
  const common = {
    serialNumber: serial(),
    notBefore: opts.notBefore ?? new Date(now - 3600_000),
    notAfter: opts.notAfter ?? new Date(now + 7 * 86400_000),
    signingAlgorithm: alg,
    extensions,
  };
  const cert = ca
    ? await x509.X509CertificateGenerator.create({
        ...common,
        subject: `CN=${names[0]}`,
        issuer: ca.cert.subject,
        publicKey: keys.publicKey,
        signingKey: ca.keys.privateKey,
      })
    : await x509.X509CertificateGenerator.createSelfSigned({
        ...common,
        name: `CN=${names[0]}`,
        keys,
      });
  return { certPem: cert.toString('pem'), keyPem: await keyPem(keys.privateKey) };
}

export function subjectAltNames(pem: string): string | undefined {
  return new X509Certificate(pem).subjectAltName;
}
