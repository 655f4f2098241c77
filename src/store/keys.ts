import { randomBytes, timingSafeEqual } from 'node:crypto';
import { join } from 'node:path';
import { TrustRunError, ensurePrivateDir } from '../core/index.js';
import { argon2id } from './argon2.js';
import { createPrivateFile, fileExists, readPrivateFile } from './files.js';
import type { DataKey } from './seal.js';
import { loadSodium, sodiumReady } from './sodium.js';

/**
 * The key hierarchy: one master key per data directory (a random key file, or derived from a
 * passphrase with Argon2id) wraps one random data key per session. Deleting a session's wrapped
 * key (shredding) makes that session's sealed values unreadable for good.
 */
export interface MasterKey {
  key: Uint8Array;
  source: 'file' | 'passphrase';
  /** A keyed hash of the key: stored in the database to detect a key that does not belong. */
  check: string;
}

export const MASTER_KEY_FILE = 'master.key';
export const PASSPHRASE_FILE = 'passphrase.json';

/** Argon2id cost for new passphrase files (OWASP's first recommendation: 46 MiB, 1 pass). */
export const DEFAULT_KDF = { memoryKiB: 47_104, passes: 1, parallelism: 1 } as const;

interface PassphraseFile {
  version: 1;
  kdf: 'argon2id';
  argon2Version: 19;
  memoryKiB: number;
  passes: number;
  parallelism: number;
  salt: string;
  verifier: string;
}

export interface LoadKeyOptions {
  keysDir: string;
  passphrase?: string | undefined;
  /** May new key material be made? Only when the database has none recorded yet. */
  create: boolean;
  /** Argon2id cost for a new passphrase file. */
  kdf?: { memoryKiB: number; passes: number; parallelism: number };
}

export async function loadMasterKey(opts: LoadKeyOptions): Promise<MasterKey> {
  await loadSodium();
  ensurePrivateDir(opts.keysDir);
  const keyFile = join(opts.keysDir, MASTER_KEY_FILE);
  const passFile = join(opts.keysDir, PASSPHRASE_FILE);
  const passphrase = opts.passphrase ? opts.passphrase : undefined;

  if (passphrase !== undefined) {
    if (fileExists(passFile)) return fromPassphrase(passFile, passphrase);
    if (fileExists(keyFile)) {
      throw new TrustRunError(
        'TR_KEY',
        `this data directory is protected by a key file (${keyFile}), not a passphrase`,
        { hint: 'Unset TRUSTRUN_PASSPHRASE to use the key file.' },
      );
    }
    if (!opts.create) throw missingKeys(opts.keysDir, 'passphrase');
    const kdf = opts.kdf ?? DEFAULT_KDF;
    const salt = randomBytes(16);
    const key = deriveKey(passphrase, salt, kdf);
    const file: PassphraseFile = {
      version: 1,
      kdf: 'argon2id',
      argon2Version: 19,
      ...kdf,
      salt: salt.toString('base64'),
      verifier: Buffer.from(keyedHash(key, 'trustrun passphrase verifier v1')).toString('base64'),
    };
    if (!createPrivateFile(passFile, JSON.stringify(file, null, 2) + '\n')) {
      return fromPassphrase(passFile, passphrase); // another process made it first
    }
    return masterKey(key, 'passphrase');
  }

  if (fileExists(keyFile)) return fromKeyFile(keyFile);
  if (fileExists(passFile)) {
    throw new TrustRunError('TR_KEY', `this data directory is protected by a passphrase`, {
      hint: 'Set TRUSTRUN_PASSPHRASE to open it.',
    });
  }
  if (!opts.create) throw missingKeys(opts.keysDir);
  createPrivateFile(keyFile, randomBytes(32)); // false: another process made it first
  return fromKeyFile(keyFile);
}

function missingKeys(keysDir: string, mode: 'file' | 'passphrase' = 'file'): TrustRunError {
  return new TrustRunError(
    'TR_KEY',
    `the master key is missing from ${keysDir}, but the database holds data sealed with one`,
    {
      hint:
        mode === 'passphrase'
          ? 'With TRUSTRUN_PASSPHRASE set, the key comes from keys/passphrase.json: restore it from a backup (or unset TRUSTRUN_PASSPHRASE if the data directory used keys/master.key).'
          : 'Restore keys/master.key (or set TRUSTRUN_PASSPHRASE) from a backup.',
    },
  );
}

function fromKeyFile(path: string): MasterKey {
  const bytes = readPrivateFile(path);
  if (bytes.length !== 32) {
    throw new TrustRunError('TR_KEY', `${path} is not a TrustRun master key (expected 32 bytes)`);
  }
  return masterKey(new Uint8Array(bytes), 'file');
}

function fromPassphrase(path: string, passphrase: string): MasterKey {
  const file = parsePassphraseFile(path, readPrivateFile(path).toString('utf8'));
  const key = deriveKey(passphrase, Buffer.from(file.salt, 'base64'), file);
  const verifier = Buffer.from(keyedHash(key, 'trustrun passphrase verifier v1'));
  const expected = Buffer.from(file.verifier, 'base64');
  if (expected.length !== verifier.length || !timingSafeEqual(expected, verifier)) {
    key.fill(0);
    throw new TrustRunError('TR_KEY', 'wrong passphrase for this data directory', {
      hint: 'Check TRUSTRUN_PASSPHRASE.',
    });
  }
  return masterKey(key, 'passphrase');
}

function parsePassphraseFile(path: string, text: string): PassphraseFile {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new TrustRunError('TR_KEY', `${path} is not valid JSON`);
  }
  const f = raw as Partial<PassphraseFile>;
  const intIn = (v: unknown, min: number, max: number) =>
    typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
  if (
    f === null ||
    typeof f !== 'object' ||
    f.version !== 1 ||
    f.kdf !== 'argon2id' ||
    f.argon2Version !== 19 ||
    !intIn(f.parallelism, 1, 64) ||
    !intIn(f.memoryKiB, 8 * (f.parallelism ?? 1), 4 * 1024 * 1024) ||
    !intIn(f.passes, 1, 64) ||
    typeof f.salt !== 'string' ||
    Buffer.from(f.salt, 'base64').length < 16 ||
    typeof f.verifier !== 'string'
  ) {
    throw new TrustRunError('TR_KEY', `${path} is not a TrustRun passphrase file`);
  }
  return f as PassphraseFile;
}

function deriveKey(
  passphrase: string,
  salt: Uint8Array,
  kdf: { memoryKiB: number; passes: number; parallelism: number },
): Uint8Array {
  return argon2id(Buffer.from(passphrase.normalize('NFC'), 'utf8'), salt, {
    ...kdf,
    tagLength: 32,
  });
}

function keyedHash(key: Uint8Array, label: string): Uint8Array {
  return sodiumReady().crypto_generichash(32, Buffer.from(label, 'utf8'), key);
}

function masterKey(key: Uint8Array, source: MasterKey['source']): MasterKey {
  const check = Buffer.from(keyedHash(key, 'trustrun master key check v1')).toString('hex');
  return { key, source, check };
}

// Wrapped data key: [version 1][nonce 24][ciphertext of the 32-byte key + 16-byte tag].
const WRAP_VERSION = 1;

function wrapAd(sessionId: string, keyId: string): Buffer {
  return Buffer.from(`trustrun-keywrap/${WRAP_VERSION}/${sessionId}/${keyId}`, 'latin1');
}

export function wrapDataKey(master: MasterKey, sessionId: string, dataKey: DataKey): Buffer {
  const nonce = randomBytes(24);
  const ct = sodiumReady().crypto_aead_xchacha20poly1305_ietf_encrypt(
    dataKey.key,
    wrapAd(sessionId, dataKey.keyId),
    null,
    nonce,
    master.key,
  );
  return Buffer.concat([Buffer.from([WRAP_VERSION]), nonce, ct]);
}

export function unwrapDataKey(
  master: MasterKey,
  sessionId: string,
  keyId: string,
  wrapped: Uint8Array,
): DataKey {
  try {
    if (wrapped[0] !== WRAP_VERSION || wrapped.length !== 1 + 24 + 32 + 16) throw new Error();
    const key = sodiumReady().crypto_aead_xchacha20poly1305_ietf_decrypt(
      null,
      wrapped.subarray(25),
      wrapAd(sessionId, keyId),
      wrapped.subarray(1, 25),
      master.key,
    );
    return { keyId, key };
  } catch {
    throw new TrustRunError(
      'TR_KEY',
      `the data key ${keyId} of session ${sessionId} cannot be unwrapped (wrong master key, or the key row was altered)`,
    );
  }
}

/** Overwrites key bytes in memory. */
export function wipe(key: Uint8Array): void {
  sodiumReady().memzero(key);
}
