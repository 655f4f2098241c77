import { sign, type KeyObject } from 'node:crypto';
import type { CaSecrets } from './authority.js';
import * as der from './der.js';
import type { NormalizedHost } from './hostname.js';
import {
  OID,
  commonNameSubject,
  extension,
  keyIdentifier,
  newP256Key,
  randomSerial,
  signatureAlgorithm,
  signedCertificate,
  tbsCertificate,
} from './x509.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** CA/Browser Forum and Apple limit for TLS server certificates. */
export const MAX_LEAF_DAYS = 397;

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
  const { privateKey, spkiDer } = await newP256Key();
  return {
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    spkiDer,
    keyId: keyIdentifier(spkiDer),
  };
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
  const hasCn = host.name.length <= 64;
  const subject = hasCn ? commonNameSubject(host.name) : der.seq();
  const name = host.ip
    ? der.implicit(7, host.ip)
    : der.implicit(2, Buffer.from(host.name, 'ascii'));
  // RFC 5280 4.2.1.6: SAN is critical when the subject is empty.
  const san = extension(OID.subjectAltName, !hasCn, der.seq(name));
  const tbs = tbsCertificate({
    serial: randomSerial(),
    algId: t.algId,
    issuer: t.ca.subjectDer,
    notBefore,
    notAfter,
    subject,
    spki: t.spki,
    extensions: Buffer.concat([t.fixedExtensions, san]),
  });
  const signature = t.signInline
    ? sign(t.digest, tbs, t.ca.key)
    : await signAsync(t.digest, tbs, t.ca.key);
  return { certDer: signedCertificate(tbs, t.algId, signature), notBefore, notAfter };
}

function signAsync(digest: string, data: Buffer, key: KeyObject): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    sign(digest, data, key, (err, sig) => (err ? reject(err) : resolve(sig)));
  });
}
