import { createHash, generateKeyPair, randomBytes, sign, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import type { CaSecrets } from './authority.js';
import * as der from './der.js';
import type { NormalizedHost } from './hostname.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** CA/Browser Forum and Apple limit for TLS server certificates. */
export const MAX_LEAF_DAYS = 397;

const OID = {
  ecdsaSha256: '1.2.840.10045.4.3.2',
  ecdsaSha384: '1.2.840.10045.4.3.3',
  rsaSha256: '1.2.840.113549.1.1.11',
  commonName: '2.5.4.3',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
};

/** The one key every leaf certificate of this process shares (EC P-256). */
export interface LeafKey {
  keyPem: string;
  spkiDer: Buffer;
  /** RFC 5280 method-1 key identifier of the public key. */
  keyId: Buffer;
}

let processKey: Promise<LeafKey> | undefined;

/** Generates the process's leaf key once (asynchronously); later calls get the same key. */
export function processLeafKey(): Promise<LeafKey> {
  if (!processKey) {
    processKey = makeLeafKey();
    processKey.catch(() => (processKey = undefined)); // a failed attempt is retried next call
  }
  return processKey;
}

async function makeLeafKey(): Promise<LeafKey> {
  const { privateKey, publicKey } = await promisify(generateKeyPair)('ec', {
    namedCurve: 'prime256v1',
  });
  const spkiDer = publicKey.export({ type: 'spki', format: 'der' });
  // SubjectPublicKeyInfo = SEQUENCE { algorithm, subjectPublicKey BIT STRING }
  const [, bits] = der.children(spkiDer, der.readTlv(spkiDer, 0));
  if (!bits) throw new Error('malformed SubjectPublicKeyInfo');
  const keyBits = spkiDer.subarray(bits.contentStart + 1, bits.end);
  return {
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    spkiDer,
    keyId: createHash('sha1').update(keyBits).digest(),
  };
}

/** Digest and AlgorithmIdentifier for the CA key's type. */
function signatureAlgorithm(key: KeyObject): { digest: string; algId: Buffer } {
  if (key.asymmetricKeyType === 'rsa') {
    return { digest: 'sha256', algId: der.seq(der.oid(OID.rsaSha256), der.NULL) };
  }
  if (key.asymmetricKeyDetails?.namedCurve === 'secp384r1') {
    return { digest: 'sha384', algId: der.seq(der.oid(OID.ecdsaSha384)) };
  }
  return { digest: 'sha256', algId: der.seq(der.oid(OID.ecdsaSha256)) };
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical
    ? der.seq(der.oid(id), der.bool(true), der.octets(value))
    : der.seq(der.oid(id), der.octets(value));
}

/** The parts of a leaf that are the same for every host, encoded once per minter. */
export interface LeafTemplate {
  ca: CaSecrets;
  digest: string;
  algId: Buffer;
  spki: Buffer;
  fixedExtensions: Buffer;
  /**
   * Sign on the event loop: an EC signature takes tens of microseconds, less than the trip
   * through libuv's thread pool (whose answer waits for the loop, busy with the handshakes of
   * the same moment). RSA signatures (milliseconds) go to the pool.
   */
  signInline: boolean;
}

export function leafTemplate(ca: CaSecrets, key: LeafKey): LeafTemplate {
  const { digest, algId } = signatureAlgorithm(ca.key);
  const fixed = [
    extension(OID.basicConstraints, true, der.seq()),
    // KeyUsage BIT STRING: digitalSignature only (EC key), 7 unused bits.
    extension(OID.keyUsage, true, Buffer.from([0x03, 0x02, 0x07, 0x80])),
    extension(OID.extKeyUsage, false, der.seq(der.oid(OID.serverAuth))),
    extension(OID.subjectKeyIdentifier, false, der.octets(key.keyId)),
  ];
  if (ca.keyId) {
    fixed.push(extension(OID.authorityKeyIdentifier, false, der.seq(der.implicit(0, ca.keyId))));
  }
  return {
    ca,
    digest,
    algId,
    spki: key.spkiDer,
    fixedExtensions: Buffer.concat(fixed),
    signInline: ca.key.asymmetricKeyType === 'ec',
  };
}

export interface MintedLeaf {
  certDer: Buffer;
  notBefore: Date;
  notAfter: Date;
}

/**
 * Builds and signs a leaf certificate for one host: exact SAN (dNSName, or iPAddress for an IP
 * literal), CN = host (when it fits the 64-character limit), serverAuth, random serial, backdated
 * an hour, valid 397 days at most and never beyond the CA. An EC CA signs on the event loop (tens
 * of microseconds); an RSA CA's signature is computed on libuv's thread pool.
 */
export async function mintLeaf(
  t: LeafTemplate,
  host: NormalizedHost,
  now = Date.now(),
): Promise<MintedLeaf> {
  const notBefore = new Date(Math.floor((now - HOUR) / 1000) * 1000);
  const notAfter = new Date(
    Math.min(notBefore.getTime() + MAX_LEAF_DAYS * DAY, t.ca.notAfter.getTime()),
  );
  const serial = randomBytes(16);
  serial[0] = ((serial[0] as number) & 0x7f) | 0x01;
  const hasCn = host.name.length <= 64;
  const subject = hasCn
    ? der.seq(der.set(der.seq(der.oid(OID.commonName), der.utf8(host.name))))
    : der.seq();
  const name = host.ip
    ? der.implicit(7, host.ip)
    : der.implicit(2, Buffer.from(host.name, 'ascii'));
  // RFC 5280 4.2.1.6: SAN is critical when the subject is empty.
  const san = extension(OID.subjectAltName, !hasCn, der.seq(name));
  const tbs = der.seq(
    der.explicit(0, der.integer(Buffer.from([2]))),
    der.integer(serial),
    t.algId,
    t.ca.subjectDer,
    der.seq(der.time(notBefore), der.time(notAfter)),
    subject,
    t.spki,
    der.explicit(3, der.seq(t.fixedExtensions, san)),
  );
  const signature = t.signInline
    ? sign(t.digest, tbs, t.ca.key)
    : await signAsync(t.digest, tbs, t.ca.key);
  return { certDer: der.seq(tbs, t.algId, der.bitString(signature)), notBefore, notAfter };
}

function signAsync(digest: string, data: Buffer, key: KeyObject): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    sign(digest, data, key, (err, sig) => (err ? reject(err) : resolve(sig)));
  });
}
