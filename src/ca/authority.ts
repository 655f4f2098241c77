import { X509Certificate, createPrivateKey, randomBytes, type KeyObject } from 'node:crypto';
import { open, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { TrustRunError, ensurePrivateDir, type DataPaths } from '../core/index.js';
import { ensureBundle } from './bundle.js';
import { certificateExtension, certificateSubject, pemEncode, readTlv } from './der.js';
import { exists, octalMode, writeFileAtomic } from './files.js';
import { OID, newP256Key, randomSerial, selfSignedCa } from './x509.js';

/** The local CA as the rest of the program sees it. The private key is not part of it. */
export interface CertificateAuthority {
  certPem: string;
  certDer: Buffer;
  /** SHA-256 fingerprint, colon-separated uppercase hex (as `openssl x509 -fingerprint`). */
  fingerprint256: string;
  subject: string;
  notAfter: Date;
  paths: DataPaths;
}

/** What the leaf minter needs from the CA; never leaves this module folder. */
export interface CaSecrets {
  key: KeyObject;
  /** Exact DER of the CA subject, used as the leaves' issuer. */
  subjectDer: Buffer;
  /** The CA's subject key identifier, for the leaves' authority key identifier (null: none). */
  keyId: Buffer | null;
  notAfter: Date;
}

const secrets = new WeakMap<CertificateAuthority, CaSecrets>();

export function caSecrets(ca: CertificateAuthority): CaSecrets {
  const s = secrets.get(ca);
  if (!s) {
    throw new TrustRunError(
      'TR_CA_INVALID',
      'this CertificateAuthority was not made by loadOrCreateCa',
    );
  }
  return s;
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const CA_VALIDITY_DAYS = 3652;
const LOCK_STALE_MS = 60_000;
const LOCK_WAIT_MS = 15_000;

/**
 * Loads the CA from the data directory, creating it on first use. Refuses a key that group or
 * others can access, a key that does not match the certificate, and an expired CA. Also keeps
 * `ca/bundle.pem` (system roots + our CA) current.
 */
export async function loadOrCreateCa(paths: DataPaths): Promise<CertificateAuthority> {
  ensurePrivateDir(paths.root);
  ensurePrivateDir(paths.caDir);
  const lockFile = join(paths.caDir, '.create.lock');
  const deadline = Date.now() + LOCK_WAIT_MS;
  let ca: CertificateAuthority | undefined;
  while (!ca) {
    if ((await exists(paths.caCert)) && (await exists(paths.caKey))) {
      ca = await loadCa(paths);
      break;
    }
    const release = await tryLock(lockFile);
    if (release) {
      try {
        ca = await createOrLoadLocked(paths);
      } finally {
        await release();
      }
      break;
    }
    if (Date.now() > deadline) {
      throw new TrustRunError(
        'TR_CA_INVALID',
        `timed out waiting for another process to create the CA (lock ${lockFile})`,
        { hint: `if no trustrun process is running, remove ${lockFile}` },
      );
    }
    await sleep(25);
  }
  await ensureBundle(paths.caBundle, ca.certPem);
  return ca;
}

async function createOrLoadLocked(paths: DataPaths): Promise<CertificateAuthority> {
  const [haveCert, haveKey] = [await exists(paths.caCert), await exists(paths.caKey)];
  if (haveCert && haveKey) return loadCa(paths);
  if (haveCert || haveKey) {
    const missing = haveCert ? paths.caKey : paths.caCert;
    throw new TrustRunError('TR_CA_INVALID', `CA is incomplete: ${missing} is missing`, {
      hint: `restore it, or remove ${paths.caDir} to create a new CA (clients must then trust the new one)`,
    });
  }
  await createCa(paths);
  return loadCa(paths);
}

/** An exclusive lock file; a lock older than a minute is left over from a crash and removed. */
async function tryLock(file: string): Promise<(() => Promise<void>) | null> {
  try {
    const fh = await open(file, 'wx', 0o600);
    await fh.close();
    return () => rm(file, { force: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const st = await stat(file).catch(() => null);
    if (st && Date.now() - st.mtimeMs > LOCK_STALE_MS) await rm(file, { force: true });
    return null;
  }
}

async function createCa(paths: DataPaths): Promise<void> {
  const { privateKey, spkiDer } = await newP256Key();
  const notBefore = new Date(Math.floor((Date.now() - HOUR) / 1000) * 1000);
  const certDer = selfSignedCa({
    commonName: `TrustRun Local CA ${randomBytes(4).toString('hex')}`,
    serial: randomSerial(),
    notBefore,
    notAfter: new Date(notBefore.getTime() + CA_VALIDITY_DAYS * DAY),
    key: privateKey,
    spki: spkiDer,
  });
  const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'der' });
  // Key first: a certificate on disk always has its key beside it. A certificate that cannot be
  // written (a full disk) takes its new key with it, so that the next start makes a whole CA
  // instead of finding half of one.
  await writeFileAtomic(paths.caKey, pemEncode('PRIVATE KEY', pkcs8), 0o600);
  try {
    await writeFileAtomic(paths.caCert, pemEncode('CERTIFICATE', certDer), 0o644);
  } catch (err) {
    await rm(paths.caKey, { force: true });
    throw err;
  }
}

/** Reads a CA file; an unreadable one (permissions, a directory) is a TR_CA_INVALID. */
async function readCaFile(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new TrustRunError('TR_CA_INVALID', `CA file ${file} cannot be read (${code})`, {
      cause: err,
    });
  }
}

async function loadCa(paths: DataPaths): Promise<CertificateAuthority> {
  const keyFile = paths.caKey;
  const certFile = paths.caCert;
  const mode = (await stat(keyFile)).mode & 0o777;
  if (mode & 0o077) {
    const what = mode & 0o044 ? 'readable' : 'writable';
    throw new TrustRunError(
      'TR_CA_INSECURE',
      `CA key ${keyFile} is ${what} by others (mode ${octalMode(mode)})`,
      { hint: `chmod 600 ${keyFile}` },
    );
  }
  const certPem = await readCaFile(certFile);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    throw new TrustRunError('TR_CA_INVALID', `CA certificate ${certFile} cannot be parsed`, {
      cause: err,
      hint: `restore it, or remove ${paths.caDir} to create a new CA`,
    });
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(await readCaFile(keyFile));
  } catch (err) {
    if (err instanceof TrustRunError) throw err;
    throw new TrustRunError('TR_CA_INVALID', `CA key ${keyFile} cannot be parsed`, {
      cause: err,
      hint: `restore it, or remove ${paths.caDir} to create a new CA`,
    });
  }
  if (!cert.checkPrivateKey(key)) {
    throw new TrustRunError(
      'TR_CA_INVALID',
      `CA key ${keyFile} does not match the certificate ${certFile}`,
      {
        hint: `restore the matching pair, or remove ${paths.caDir} to create a new CA (clients must then trust the new one)`,
      },
    );
  }
  if (!cert.ca) {
    throw new TrustRunError('TR_CA_INVALID', `${certFile} is not a CA certificate`);
  }
  const notAfter = new Date(cert.validTo);
  if (notAfter.getTime() <= Date.now()) {
    throw new TrustRunError(
      'TR_CA_INVALID',
      `CA certificate ${certFile} expired on ${notAfter.toISOString()}`,
      {
        hint: `remove ${paths.caDir} and run 'trustrun ca init' (clients must then trust the new CA)`,
      },
    );
  }
  checkKeyType(key, keyFile);
  const certDer = cert.raw;
  const ca: CertificateAuthority = {
    certPem,
    certDer,
    fingerprint256: cert.fingerprint256,
    subject: cert.subject,
    notAfter,
    paths,
  };
  secrets.set(ca, {
    key,
    subjectDer: certificateSubject(certDer),
    keyId: subjectKeyId(certDer),
    notAfter,
  });
  return ca;
}

function checkKeyType(key: KeyObject, keyFile: string): void {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  const ok =
    key.asymmetricKeyType === 'rsa' ||
    (key.asymmetricKeyType === 'ec' && (curve === 'prime256v1' || curve === 'secp384r1'));
  if (!ok) {
    throw new TrustRunError(
      'TR_CA_INVALID',
      `CA key ${keyFile} has an unsupported type (${[key.asymmetricKeyType ?? 'unknown', curve].filter(Boolean).join(' ')})`,
      { hint: 'use an EC P-256, EC P-384 or RSA key' },
    );
  }
}

/** The CA's subject key identifier (the extension holds an OCTET STRING), or null. */
function subjectKeyId(certDer: Buffer): Buffer | null {
  const value = certificateExtension(certDer, OID.subjectKeyIdentifier);
  if (!value) return null;
  const inner = readTlv(value, 0);
  return inner.tag === 0x04 ? Buffer.from(value.subarray(inner.contentStart, inner.end)) : null;
}
