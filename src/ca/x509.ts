import { createHash, generateKeyPair, randomBytes, sign, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import * as der from './der.js';

/**
 * The X.509 pieces that the CA certificate and the leaf certificates share, on top of the DER
 * encoder. Both are built here rather than through a general ASN.1 library: a leaf is minted on
 * the event loop for every new host, and the CA is made inside the long-running proxy on first
 * use, where a library's modules would stay loaded for the life of the process (about 10 MB).
 */

export const OID = {
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

/** Digest and AlgorithmIdentifier for a signing key's type. */
export function signatureAlgorithm(key: KeyObject): { digest: string; algId: Buffer } {
  if (key.asymmetricKeyType === 'rsa') {
    return { digest: 'sha256', algId: der.seq(der.oid(OID.rsaSha256), der.NULL) };
  }
  if (key.asymmetricKeyDetails?.namedCurve === 'secp384r1') {
    return { digest: 'sha384', algId: der.seq(der.oid(OID.ecdsaSha384)) };
  }
  return { digest: 'sha256', algId: der.seq(der.oid(OID.ecdsaSha256)) };
}

export function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical
    ? der.seq(der.oid(id), der.bool(true), der.octets(value))
    : der.seq(der.oid(id), der.octets(value));
}

/** RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits of a SubjectPublicKeyInfo. */
export function keyIdentifier(spkiDer: Buffer): Buffer {
  // SubjectPublicKeyInfo = SEQUENCE { algorithm, subjectPublicKey BIT STRING }
  const [, bits] = der.children(spkiDer, der.readTlv(spkiDer, 0));
  if (!bits || bits.tag !== 0x03) throw new Error('malformed SubjectPublicKeyInfo');
  return createHash('sha1')
    .update(spkiDer.subarray(bits.contentStart + 1, bits.end))
    .digest();
}

/** A new EC P-256 key pair (generated off the event loop), the public half as SPKI DER. */
export async function newP256Key(): Promise<{ privateKey: KeyObject; spkiDer: Buffer }> {
  const { privateKey, publicKey } = await promisify(generateKeyPair)('ec', {
    namedCurve: 'prime256v1',
  });
  return { privateKey, spkiDer: publicKey.export({ type: 'spki', format: 'der' }) };
}

/** A random 128-bit serial: positive, minimal in DER, never zero. */
export function randomSerial(): Buffer {
  const b = randomBytes(16);
  b[0] = ((b[0] as number) & 0x7f) | 0x01;
  return b;
}

/** A Name holding one commonName (UTF8String). */
export function commonNameSubject(cn: string): Buffer {
  return der.seq(der.set(der.seq(der.oid(OID.commonName), der.utf8(cn))));
}

/** TBSCertificate (version 3) for the given fields; `extensions` are already encoded. */
export function tbsCertificate(f: {
  serial: Buffer;
  algId: Buffer;
  issuer: Buffer;
  notBefore: Date;
  notAfter: Date;
  subject: Buffer;
  spki: Buffer;
  extensions: Buffer;
}): Buffer {
  return der.seq(
    der.explicit(0, der.integer(Buffer.from([2]))),
    der.integer(f.serial),
    f.algId,
    f.issuer,
    der.seq(der.time(f.notBefore), der.time(f.notAfter)),
    f.subject,
    f.spki,
    der.explicit(3, der.seq(f.extensions)),
  );
}

/** Certificate = SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }. */
export function signedCertificate(tbs: Buffer, algId: Buffer, signature: Buffer): Buffer {
  return der.seq(tbs, algId, der.bitString(signature));
}

/**
 * A self-signed CA certificate: basicConstraints CA:TRUE with pathlen 0 (it signs leaves only)
 * and keyUsage keyCertSign + cRLSign, both critical, and a subject key identifier.
 */
export function selfSignedCa(f: {
  commonName: string;
  serial: Buffer;
  notBefore: Date;
  notAfter: Date;
  key: KeyObject;
  spki: Buffer;
}): Buffer {
  const { digest, algId } = signatureAlgorithm(f.key);
  const name = commonNameSubject(f.commonName);
  const extensions = Buffer.concat([
    extension(OID.basicConstraints, true, der.seq(der.bool(true), der.integer(Buffer.from([0])))),
    // KeyUsage BIT STRING: keyCertSign (bit 5) and cRLSign (bit 6) = 0x06, 1 unused bit.
    extension(OID.keyUsage, true, Buffer.from([0x03, 0x02, 0x01, 0x06])),
    extension(OID.subjectKeyIdentifier, false, der.octets(keyIdentifier(f.spki))),
  ]);
  const tbs = tbsCertificate({
    serial: f.serial,
    algId,
    issuer: name,
    notBefore: f.notBefore,
    notAfter: f.notAfter,
    subject: name,
    spki: f.spki,
    extensions,
  });
  return signedCertificate(tbs, algId, sign(digest, tbs, f.key));
}
