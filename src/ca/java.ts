import { createHash, createHmac, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import type forgeType from 'node-forge';
import { TrustRunError, ensurePrivateDir, type DataPaths } from '../core/index.js';
import type { CertificateAuthority } from './authority.js';
import { pemCertificates } from './bundle.js';
import { explicit, integer, NULL, octets, oid, seq, set, tlv } from './der.js';
import { writeFileAtomic } from './files.js';

/** node-forge, loaded on first use: only PKCS#12 work needs it, not a running proxy. */
let forgeModule: typeof forgeType | undefined;
function forgeLib(): typeof forgeType {
  forgeModule ??= createRequire(import.meta.url)('node-forge') as typeof forgeType;
  return forgeModule;
}

/**
 * PKCS#12 trust stores for Java (and for `ca export --format p12`). Certificates go in as they
 * are (DER, never re-encoded), one certBag each with a friendlyName (Java's alias) and the
 * attribute Java requires before it treats a certificate as a trusted entry (Oracle's
 * trustedKeyUsage = anyExtendedKeyUsage; keytool writes the same). The store holds no key, so
 * its password only guards integrity (HMAC-SHA1 with the PKCS#12 key derivation, which every
 * Java since 8 reads).
 */

const OID_DATA = '1.2.840.113549.1.7.1';
const OID_CERT_BAG = '1.2.840.113549.1.12.10.1.3';
const OID_X509_CERT = '1.2.840.113549.1.9.22.1';
const OID_FRIENDLY_NAME = '1.2.840.113549.1.9.20';
const OID_JAVA_TRUSTED_KEY_USAGE = '2.16.840.1.113894.746875.1.1';
const OID_ANY_EKU = '2.5.29.37.0';
const OID_SHA1 = '1.3.14.3.2.26';
const MAC_ITERATIONS = 10_000;

export interface TrustedCertificate {
  /** Java's alias for the entry (keytool shows it lower-cased). */
  alias: string;
  der: Buffer;
}

const bmpString = (s: string): Buffer => tlv(0x1e, Buffer.from(s, 'utf16le').swap16());

function certBag(cert: TrustedCertificate): Buffer {
  const value = explicit(0, seq(oid(OID_X509_CERT), explicit(0, octets(cert.der))));
  const attributes = set(
    seq(oid(OID_FRIENDLY_NAME), set(bmpString(cert.alias))),
    seq(oid(OID_JAVA_TRUSTED_KEY_USAGE), set(oid(OID_ANY_EKU))),
  );
  return seq(oid(OID_CERT_BAG), value, attributes);
}

/** The PKCS#12 MAC key (RFC 7292 appendix B, ID 3), derived by node-forge. */
function macKey(password: string, salt: Buffer, iterations: number): Buffer {
  const key = forgeLib().pkcs12.generateKey(
    password,
    forgeLib().util.createBuffer(salt.toString('binary')),
    3,
    iterations,
    20,
  );
  return Buffer.from(key.getBytes(), 'binary');
}

/** A PKCS#12 file (DER) holding `certs` as trusted certificate entries. */
export function buildTrustStore(certs: TrustedCertificate[], password: string): Buffer {
  if (certs.length === 0)
    throw new TrustRunError('TR_INTERNAL', 'a trust store needs a certificate');
  const aliases = new Set<string>();
  for (const c of certs) {
    const key = c.alias.toLowerCase();
    if (aliases.has(key)) throw new TrustRunError('TR_INTERNAL', `duplicate alias '${c.alias}'`);
    aliases.add(key);
  }
  const safeContents = seq(...certs.map(certBag));
  const authSafe = seq(seq(oid(OID_DATA), explicit(0, octets(safeContents))));
  const salt = randomBytes(16);
  const mac = createHmac('sha1', macKey(password, salt, MAC_ITERATIONS))
    .update(authSafe)
    .digest();
  const macData = seq(
    seq(seq(oid(OID_SHA1), NULL), octets(mac)),
    octets(salt),
    integer(Buffer.from([(MAC_ITERATIONS >> 8) & 0xff, MAC_ITERATIONS & 0xff])),
  );
  return seq(integer(Buffer.from([3])), seq(oid(OID_DATA), explicit(0, octets(authSafe))), macData);
}

function pemToDer(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[A-Z ]+-----|\s+/g, ''), 'base64');
}

/** Alias of our CA in every store TrustRun writes: `trustrun-` + 16 hex digits of its SHA-256. */
export function caAlias(ca: CertificateAuthority): string {
  return `trustrun-${ca.fingerprint256.replace(/:/g, '').slice(0, 16).toLowerCase()}`;
}

/** `trustrun ca export --format p12`: our CA alone, as a trusted-certificate PKCS#12 store. */
export function exportCaPkcs12(ca: CertificateAuthority, password: string): Buffer {
  return buildTrustStore([{ alias: caAlias(ca), der: Buffer.from(ca.certDer) }], password);
}

/** Password of the run trust store. It guards nothing secret (public certificates only). */
export const JAVA_TRUST_STORE_PASSWORD = 'trustrun';

export interface JavaTrustStore {
  path: string;
  password: string;
  type: 'PKCS12';
}

/**
 * The Java trust store used by `trustrun run`: every certificate of the CA bundle (system roots,
 * then our CA), so that `-Djavax.net.ssl.trustStore`, which replaces Java's own cacerts, still
 * trusts tunnelled hosts. Written to the data directory's shims/ (0600) and rewritten only when
 * the bundle changes.
 */
export async function ensureJavaTrustStore(
  ca: CertificateAuthority,
  paths: DataPaths,
): Promise<JavaTrustStore> {
  ensurePrivateDir(paths.shimsDir);
  const file = join(paths.shimsDir, 'java-truststore.p12');
  const stamp = join(paths.shimsDir, 'java-truststore.sha256');
  const bundle = await readFile(paths.caBundle, 'utf8');
  const digest = createHash('sha256').update(bundle).update('\0v1').digest('hex');
  const have = await readFile(stamp, 'utf8').catch(() => '');
  const present = await readFile(file).then(
    () => true,
    () => false,
  );
  if (!present || have.trim() !== digest) {
    const ours = caAlias(ca);
    const ourDer = Buffer.from(ca.certDer);
    const certs: TrustedCertificate[] = [];
    let n = 0;
    for (const pem of pemCertificates(bundle)) {
      const der = pemToDer(pem);
      if (der.equals(ourDer)) continue;
      certs.push({ alias: `system-${++n}`, der });
    }
    certs.push({ alias: ours, der: ourDer });
    await writeFileAtomic(file, buildTrustStore(certs, JAVA_TRUST_STORE_PASSWORD), 0o600);
    await writeFileAtomic(stamp, digest + '\n', 0o600);
  }
  return { path: file, password: JAVA_TRUST_STORE_PASSWORD, type: 'PKCS12' };
}

/** One JAVA_TOOL_OPTIONS word: quoted when it holds a space or a quote (JDK 9+ reads quotes). */
function javaWord(s: string): string {
  if (/[\x00-\x1f\x7f]/.test(s)) {
    throw new TrustRunError('TR_CONFIG', `cannot pass ${JSON.stringify(s)} to Java`);
  }
  if (!/[\s'"]/.test(s)) return s;
  if (!s.includes('"')) return `"${s}"`;
  if (!s.includes("'")) return `'${s}'`;
  throw new TrustRunError('TR_CONFIG', `cannot pass ${JSON.stringify(s)} to Java (both quotes)`);
}

/**
 * The JAVA_TOOL_OPTIONS words for a trust store and (optionally) a proxy. With a proxy,
 * http.nonProxyHosts is emptied so that loopback destinations go through it too (Java alone
 * skips them by default).
 */
export function javaToolOptions(store: JavaTrustStore, proxyUrl?: string): string {
  const words = [
    `-Djavax.net.ssl.trustStore=${store.path}`,
    `-Djavax.net.ssl.trustStoreType=${store.type}`,
    `-Djavax.net.ssl.trustStorePassword=${store.password}`,
  ];
  if (proxyUrl !== undefined) {
    const url = new URL(proxyUrl);
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = url.port || '80';
    words.push(
      `-Dhttp.proxyHost=${host}`,
      `-Dhttp.proxyPort=${port}`,
      `-Dhttps.proxyHost=${host}`,
      `-Dhttps.proxyPort=${port}`,
      '-Dhttp.nonProxyHosts=',
    );
  }
  return words.map(javaWord).join(' ');
}
