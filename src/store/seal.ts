import { randomBytes } from 'node:crypto';
import { TrustRunError } from '../core/index.js';
import { SMALL_AD_MAX, aeadOpen, aeadSeal, beginSmallSeal, loadAead } from './aead.js';
import { encodeHeaders, hasSurrogate, pairsText } from './headers.js';
import type { HeaderList } from './types.js';

/**
 * Sealed values: XChaCha20-Poly1305-IETF (see aead.ts), one fresh random 24-byte nonce per value,
 * associated data binding (format version, table, record id, field, key id).
 *
 * Stored blob: [version 1 byte][key id 8 bytes][nonce 24 bytes][ciphertext + 16-byte tag].
 * A blob moved to another row or field, a changed record id or any flipped byte fails to open.
 */
export const SEAL_VERSION = 1;
export const KEY_ID_BYTES = 8;
export const NONCE_BYTES = 24;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + KEY_ID_BYTES;
/** Bytes a sealed blob adds to its plaintext. */
export const SEAL_OVERHEAD = HEADER_BYTES + NONCE_BYTES + TAG_BYTES;

/** A session's data key. `keyId` is 16 hex characters (8 bytes). */
export interface DataKey {
  keyId: string;
  key: Uint8Array;
}

/** Where a sealed value lives; bound into its associated data. */
export interface SealContext {
  table: string;
  recordId: string;
  field: string;
}

/** Finds the data key for a key id, or explains why there is none (e.g. shredded). */
export type KeyLookup = (keyId: string) => DataKey | { missing: string };

/** Resolves once libsodium is loaded; every function below needs it. */
export async function loadSealing(): Promise<void> {
  await loadAead();
}

export function newDataKey(): DataKey {
  return { keyId: randomBytes(KEY_ID_BYTES).toString('hex'), key: new Uint8Array(randomBytes(32)) };
}

// Nonces come from node's CSPRNG in blocks: one randomBytes call per 512 nonces instead of per
// value (each call costs ~3 µs; libsodium's randombytes_buf is slower still).
const NONCE_BLOCK = NONCE_BYTES * 512;
let noncePool = Buffer.alloc(0);
let nonceOffset = 0;

function nextNonce(): Buffer {
  if (nonceOffset + NONCE_BYTES > noncePool.length) {
    noncePool = randomBytes(NONCE_BLOCK);
    nonceOffset = 0;
  }
  const nonce = noncePool.subarray(nonceOffset, nonceOffset + NONCE_BYTES);
  nonceOffset += NONCE_BYTES;
  return nonce;
}

const PART = '[A-Za-z0-9_.:-]+';
const AD_SHAPE = new RegExp(`^trustrun-seal/\\d+/${PART}/${PART}/${PART}/${PART}$`);
const RECORD_ID = /^[A-Za-z0-9_.:-]+$/;

/** Checked `trustrun-seal/<version>/<table>/` prefixes and `/<field>/<keyId>` suffixes, as bytes. */
const adParts = new Map<string, { prefix: Buffer; suffix: Buffer }>();

function checkedParts(
  version: number,
  ctx: SealContext,
  keyId: string,
): { prefix: Buffer; suffix: Buffer } {
  const partsKey = `${version}\0${ctx.table}\0${ctx.field}\0${keyId}`;
  let parts = adParts.get(partsKey);
  if (parts === undefined) {
    const ad = `trustrun-seal/${version}/${ctx.table}/${ctx.recordId}/${ctx.field}/${keyId}`;
    if (!AD_SHAPE.test(ad)) {
      throw new TrustRunError('TR_INTERNAL', `invalid sealing context: ${JSON.stringify(ctx)}`);
    }
    parts = {
      prefix: Buffer.from(`trustrun-seal/${version}/${ctx.table}/`, 'latin1'),
      suffix: Buffer.from(`/${ctx.field}/${keyId}`, 'latin1'),
    };
    if (adParts.size >= 4096) adParts.clear();
    adParts.set(partsKey, parts);
  } else if (!RECORD_ID.test(ctx.recordId)) {
    throw new TrustRunError('TR_INTERNAL', `invalid sealing context: ${JSON.stringify(ctx)}`);
  }
  return parts;
}

/** Scratch space for the associated data of the value being sealed (used at once, then reused). */
let adScratch = Buffer.alloc(256);

/** Writes the associated data into the scratch buffer; the view is valid until the next call. */
function scratchAssociatedData(version: number, ctx: SealContext, keyId: string): Buffer {
  const { prefix, suffix } = checkedParts(version, ctx, keyId);
  return scratchFromParts(prefix, ctx.recordId, suffix);
}

/** Record ids are ASCII (checked with the parts): one byte per character. */
function scratchFromParts(prefix: Buffer, recordId: string, suffix: Buffer): Buffer {
  const size = prefix.length + recordId.length + suffix.length;
  if (size > adScratch.length) adScratch = Buffer.alloc(Math.max(size, 2 * adScratch.length));
  let at = prefix.copy(adScratch, 0);
  at += adScratch.write(recordId, at, 'latin1');
  at += suffix.copy(adScratch, at);
  return adScratch.subarray(0, at);
}

/**
 * The associated data of a sealed value. Parts may not contain the separator (checked on the
 * whole string the first time a table/field/key combination is seen, then on the record id), so
 * no two contexts give the same bytes.
 */
export function associatedData(version: number, ctx: SealContext, keyId: string): Buffer {
  return Buffer.from(scratchAssociatedData(version, ctx, keyId));
}

/**
 * What sealing with one data key needs, computed once per key: its id bytes, and the checked
 * associated-data prefix and suffix of each table/field (found by two map lookups on the
 * caller's strings, no string built per value).
 */
interface KeyState {
  keyId: string;
  idBytes: Buffer;
  tables: Map<string, Map<string, { prefix: Buffer; suffix: Buffer }>>;
}

const keyStates = new WeakMap<DataKey, KeyState>();

function keyState(dataKey: DataKey): KeyState {
  let st = keyStates.get(dataKey);
  if (st === undefined || st.keyId !== dataKey.keyId) {
    st = { keyId: dataKey.keyId, idBytes: Buffer.from(dataKey.keyId, 'hex'), tables: new Map() };
    keyStates.set(dataKey, st);
  }
  return st;
}

function sealParts(st: KeyState, ctx: SealContext): { prefix: Buffer; suffix: Buffer } {
  let fields = st.tables.get(ctx.table);
  if (fields === undefined) {
    fields = new Map();
    st.tables.set(ctx.table, fields);
  }
  let parts = fields.get(ctx.field);
  if (parts === undefined) {
    parts = checkedParts(SEAL_VERSION, ctx, st.keyId); // checks the whole shape once
    fields.set(ctx.field, parts);
  } else if (!RECORD_ID.test(ctx.recordId)) {
    throw new TrustRunError('TR_INTERNAL', `invalid sealing context: ${JSON.stringify(ctx)}`);
  }
  return parts;
}

export function sealValue(
  dataKey: DataKey,
  ctx: SealContext,
  plaintext: Uint8Array | string,
): Buffer {
  if (typeof plaintext === 'string') {
    const blob = sealSmallText(dataKey, ctx, plaintext, false);
    if (blob) return blob;
  }
  const message = typeof plaintext === 'string' ? Buffer.from(plaintext, 'utf8') : plaintext;
  const st = keyState(dataKey);
  const { prefix, suffix } = sealParts(st, ctx);
  const nonce = nextNonce();
  const ad = scratchFromParts(prefix, ctx.recordId, suffix);
  const blob = Buffer.allocUnsafe(HEADER_BYTES + NONCE_BYTES + message.length + TAG_BYTES);
  blob[0] = SEAL_VERSION;
  st.idBytes.copy(blob, 1);
  nonce.copy(blob, HEADER_BYTES);
  aeadSeal(dataKey.key, nonce, ad, message, blob, HEADER_BYTES + NONCE_BYTES);
  return blob;
}

/**
 * Seals a header list: the same plaintext as `encodeHeaders` (see headers.ts), written straight
 * into libsodium's heap when it is small.
 */
export function sealHeaderList(dataKey: DataKey, ctx: SealContext, headers: HeaderList): Buffer {
  const text = pairsText(headers);
  if (text !== null) {
    const blob = sealSmallText(dataKey, ctx, text, true);
    if (blob) return blob;
  }
  return sealValue(dataKey, ctx, encodeHeaders(headers));
}

/**
 * The small-text path: nonce, associated data and the UTF-8 text written into libsodium's heap
 * directly, encrypted there, copied out once. Null when it does not apply (a large or non-raw
 * value, a long record id) or, with `noSurrogates`, when the text holds a UTF-16 surrogate (the
 * caller then seals another plaintext).
 */
function sealSmallText(
  dataKey: DataKey,
  ctx: SealContext,
  text: string,
  noSurrogates: boolean,
): Buffer | null {
  const st = keyState(dataKey);
  const { prefix, suffix } = sealParts(st, ctx);
  if (prefix.length + ctx.recordId.length + suffix.length > SMALL_AD_MAX) return null;
  const small = beginSmallSeal(text.length);
  if (small === null) return null;
  try {
    const n = small.message(text);
    // All ASCII when the byte count equals the length: no surrogate then.
    if (noSurrogates && n !== text.length && hasSurrogate(text)) {
      small.discard();
      return null;
    }
    small.adBytes(prefix);
    small.adLatin1(ctx.recordId);
    small.adBytes(suffix);
    const nonce = nextNonce();
    const blob = small.seal(dataKey.key, nonce, HEADER_BYTES + NONCE_BYTES);
    blob[0] = SEAL_VERSION;
    blob.set(st.idBytes, 1);
    blob.set(nonce, HEADER_BYTES);
    return blob;
  } catch (err) {
    small.discard();
    throw err;
  }
}

/** The key id a blob names, or null when it is not a sealed blob of a known version. */
export function sealedKeyId(blob: Uint8Array): string | null {
  if (blob.length < SEAL_OVERHEAD || blob[0] !== SEAL_VERSION) return null;
  return Buffer.from(blob.buffer, blob.byteOffset + 1, KEY_ID_BYTES).toString('hex');
}

export function openValue(keys: DataKey | KeyLookup, ctx: SealContext, blob: Uint8Array): Buffer {
  const where = `${ctx.table}.${ctx.field} of record ${ctx.recordId}`;
  if (blob.length < SEAL_OVERHEAD) {
    throw sealError(`cannot open ${where}: the sealed value is truncated`);
  }
  if (blob[0] !== SEAL_VERSION) {
    throw sealError(`cannot open ${where}: unknown sealed format version ${blob[0]}`);
  }
  const keyId = Buffer.from(blob.buffer, blob.byteOffset + 1, KEY_ID_BYTES).toString('hex');
  let dataKey: DataKey;
  if (typeof keys === 'function') {
    const found = keys(keyId);
    if ('missing' in found) throw sealError(`cannot open ${where}: ${found.missing}`);
    dataKey = found;
  } else {
    dataKey = keys;
  }
  if (dataKey.keyId !== keyId) {
    throw sealError(`cannot open ${where}: it was sealed with another key (${keyId})`);
  }
  const nonce = blob.subarray(HEADER_BYTES, HEADER_BYTES + NONCE_BYTES);
  const ct = blob.subarray(HEADER_BYTES + NONCE_BYTES);
  let plain: Buffer | null = null;
  try {
    plain = aeadOpen(dataKey.key, nonce, associatedData(SEAL_VERSION, ctx, keyId), ct);
  } catch {
    plain = null;
  }
  if (plain === null) {
    throw sealError(
      `cannot open ${where}: authentication failed (the value was altered, or belongs to another record or field)`,
    );
  }
  return plain;
}

function sealError(message: string): TrustRunError {
  return new TrustRunError('TR_SEAL_OPEN', message, {
    hint: 'The database may have been modified outside TrustRun, or the wrong key is in use.',
  });
}
