import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { loadSodium, type Sodium } from './sodium.js';

/**
 * XChaCha20-Poly1305-IETF, the AEAD of libsodium's crypto_aead_xchacha20poly1305_ietf_*, with
 * two engines that produce the same bytes:
 *
 * - small values (most URLs and header lists): libsodium's WebAssembly function, called on a
 *   scratch area of its heap so that one value costs one copy in and one copy out (the
 *   wrapper's own per-call allocations triple the cost). If the raw module is not what this
 *   code expects, the public wrapper function is used instead (checked once at load).
 * - large values (bodies): the same construction on Node's OpenSSL: subkey = HChaCha20(key,
 *   nonce[0..16]), then ChaCha20-Poly1305 (RFC 8439) with nonce 0x00000000 || nonce[16..24].
 *   About four times the throughput of the WebAssembly build for a 1 MiB body.
 *
 * Both engines are checked against libsodium's public function when loaded.
 */
export const AEAD_KEY_BYTES = 32;
export const AEAD_NONCE_BYTES = 24;
export const AEAD_TAG_BYTES = 16;
/** Values from this size up go to the OpenSSL engine. */
export const LARGE_VALUE_BYTES = 4096;

interface RawSodium {
  HEAPU8: Uint8Array;
  _malloc(size: number): number;
  _free(ptr: number): void;
  _crypto_aead_xchacha20poly1305_ietf_encrypt(
    c: number,
    clenP: number,
    m: number,
    mlenLo: number,
    mlenHi: number,
    ad: number,
    adlenLo: number,
    adlenHi: number,
    nsec: number,
    npub: number,
    k: number,
  ): number;
  _crypto_aead_xchacha20poly1305_ietf_decrypt(
    m: number,
    mlenP: number,
    nsec: number,
    c: number,
    clenLo: number,
    clenHi: number,
    ad: number,
    adlenLo: number,
    adlenHi: number,
    npub: number,
    k: number,
  ): number;
}

let sodium: Sodium | null = null;
let raw: RawSodium | null = null;
let scratch = 0;
let scratchSize = 0;

/** Loads libsodium and checks both engines against its public function. */
export async function loadAead(): Promise<void> {
  if (sodium) return;
  const s = await loadSodium();
  const candidate = (s as unknown as { libsodium?: RawSodium }).libsodium;
  sodium = s;
  raw =
    candidate &&
    typeof candidate._malloc === 'function' &&
    typeof candidate._crypto_aead_xchacha20poly1305_ietf_encrypt === 'function' &&
    typeof candidate._crypto_aead_xchacha20poly1305_ietf_decrypt === 'function'
      ? candidate
      : null;
  if (raw && !selfTest(rawSeal, rawOpen)) raw = null;
  if (!selfTest(nodeSeal, nodeOpen)) {
    throw new Error('XChaCha20-Poly1305 on OpenSSL disagrees with libsodium');
  }
}

function lib(): Sodium {
  if (!sodium) throw new Error('sealing is not loaded: await loadSealing() first');
  return sodium;
}

/**
 * Encrypts `msg` into `out` at `offset` (ciphertext then the 16-byte tag); `out` must have
 * msg.length + 16 bytes there.
 */
export function aeadSeal(
  key: Uint8Array,
  nonce: Uint8Array,
  ad: Uint8Array,
  msg: Uint8Array,
  out: Uint8Array,
  offset: number,
): void {
  if (msg.length >= LARGE_VALUE_BYTES) nodeSeal(key, nonce, ad, msg, out, offset);
  else if (raw) rawSeal(key, nonce, ad, msg, out, offset);
  else wrapperSeal(key, nonce, ad, msg, out, offset);
}

/** Decrypts ciphertext+tag; null when authentication fails. */
export function aeadOpen(
  key: Uint8Array,
  nonce: Uint8Array,
  ad: Uint8Array,
  ct: Uint8Array,
): Buffer | null {
  if (ct.length < AEAD_TAG_BYTES) return null;
  if (ct.length - AEAD_TAG_BYTES >= LARGE_VALUE_BYTES) return nodeOpen(key, nonce, ad, ct);
  return raw ? rawOpen(key, nonce, ad, ct) : wrapperOpen(key, nonce, ad, ct);
}

// ---- libsodium, public wrapper --------------------------------------------------------------

function wrapperSeal(
  key: Uint8Array,
  nonce: Uint8Array,
  ad: Uint8Array,
  msg: Uint8Array,
  out: Uint8Array,
  offset: number,
): void {
  out.set(lib().crypto_aead_xchacha20poly1305_ietf_encrypt(msg, ad, null, nonce, key), offset);
}

function wrapperOpen(key: Uint8Array, nonce: Uint8Array, ad: Uint8Array, ct: Uint8Array) {
  try {
    const m = lib().crypto_aead_xchacha20poly1305_ietf_decrypt(null, ct, ad, nonce, key);
    return Buffer.from(m.buffer, m.byteOffset, m.byteLength);
  } catch {
    return null;
  }
}

// ---- libsodium, raw WebAssembly calls on a scratch area -------------------------------------

function ensureScratch(r: RawSodium, size: number): void {
  if (size <= scratchSize) return;
  if (scratch) r._free(scratch);
  scratchSize = Math.max(size, 16 * 1024);
  scratch = r._malloc(scratchSize);
  if (!scratch) {
    scratchSize = 0;
    throw new Error('libsodium heap allocation failed');
  }
}

function rawSeal(
  key: Uint8Array,
  nonce: Uint8Array,
  ad: Uint8Array,
  msg: Uint8Array,
  out: Uint8Array,
  offset: number,
): void {
  const r = raw!;
  ensureScratch(r, 32 + 24 + ad.length + 2 * msg.length + AEAD_TAG_BYTES);
  const k = scratch;
  const n = k + 32;
  const a = n + 24;
  const m = a + ad.length;
  const c = m + msg.length;
  let heap = r.HEAPU8;
  heap.set(key, k);
  heap.set(nonce, n);
  heap.set(ad, a);
  heap.set(msg, m);
  const rc = r._crypto_aead_xchacha20poly1305_ietf_encrypt(
    c,
    0,
    m,
    msg.length,
    0,
    a,
    ad.length,
    0,
    0,
    n,
    k,
  );
  heap = r.HEAPU8; // a call may have grown (and so replaced) the heap
  if (rc !== 0) {
    heap.fill(0, k, c);
    throw new Error('libsodium encryption failed');
  }
  out.set(heap.subarray(c, c + msg.length + AEAD_TAG_BYTES), offset);
  heap.fill(0, k, c + msg.length + AEAD_TAG_BYTES);
}

function rawOpen(
  key: Uint8Array,
  nonce: Uint8Array,
  ad: Uint8Array,
  ct: Uint8Array,
): Buffer | null {
  const r = raw!;
  const mlen = ct.length - AEAD_TAG_BYTES;
  ensureScratch(r, 32 + 24 + ad.length + ct.length + mlen);
  const k = scratch;
  const n = k + 32;
  const a = n + 24;
  const c = a + ad.length;
  const m = c + ct.length;
  let heap = r.HEAPU8;
  heap.set(key, k);
  heap.set(nonce, n);
  heap.set(ad, a);
  heap.set(ct, c);
  const rc = r._crypto_aead_xchacha20poly1305_ietf_decrypt(
    m,
    0,
    0,
    c,
    ct.length,
    0,
    a,
    ad.length,
    0,
    n,
    k,
  );
  heap = r.HEAPU8;
  const plain = rc === 0 ? Buffer.from(heap.subarray(m, m + mlen)) : null;
  heap.fill(0, k, m + mlen);
  return plain;
}

// ---- libsodium, one small value written straight into the scratch area ----------------------

/**
 * The fast path for the small values of a request record (URL, header lists): the caller writes
 * the nonce, the associated data and the UTF-8 plaintext directly into libsodium's heap through
 * `SmallSeal` (no intermediate buffers), then `seal()` encrypts in place and returns the blob
 * with `prefixBytes` bytes left for the caller's header. Same bytes as aeadSeal.
 */
export interface SmallSeal {
  /** Appends bytes to the associated data. */
  adBytes(bytes: Uint8Array): void;
  /** Appends a string of one-byte characters (checked by the caller) to the associated data. */
  adLatin1(text: string): void;
  /** Writes `text` as UTF-8 as the message; returns the number of bytes. */
  message(text: string): number;
  /**
   * Encrypts with `key` and the 24-byte `nonce`; returns [prefixBytes free][ciphertext][tag].
   * The scratch area is zeroed.
   */
  seal(key: Uint8Array, nonce: Uint8Array, prefixBytes: number): Buffer;
  /** Zeroes what was written (when the caller gives up on this value). */
  discard(): void;
}

/** Associated data a small seal can take (longer: use aeadSeal). */
export const SMALL_AD_MAX = 512;
const S_KEY = 0;
const S_NONCE = 32;
const S_AD = 56;
const S_MSG = S_AD + SMALL_AD_MAX;

/**
 * Buffer's own string writers, without `write()`'s argument handling (a third of the cost for a
 * short string); `write()` where a runtime lacks them.
 */
type StringWriter = (this: Buffer, text: string, offset: number, max: number) => number;
const bufferProto = Buffer.prototype as unknown as Record<string, unknown>;
const utf8Write: StringWriter =
  typeof bufferProto.utf8Write === 'function'
    ? (bufferProto.utf8Write as StringWriter)
    : function (this: Buffer, text, offset, max) {
        return this.write(text, offset, max, 'utf8');
      };
const latin1Write: StringWriter =
  typeof bufferProto.latin1Write === 'function'
    ? (bufferProto.latin1Write as StringWriter)
    : function (this: Buffer, text, offset, max) {
        return this.write(text, offset, max, 'latin1');
      };

let heapView: Buffer | null = null;
let small: SmallSealState | null = null;

interface SmallSealState extends SmallSeal {
  reset(maxTextLength: number): boolean;
}

/** A Buffer over libsodium's heap (made again when the heap grows and its memory is replaced). */
function heapBuffer(r: RawSodium): Buffer {
  const heap = r.HEAPU8;
  if (heapView === null || heapView.buffer !== heap.buffer) {
    heapView = Buffer.from(heap.buffer, heap.byteOffset, heap.byteLength);
  }
  return heapView;
}

function makeSmall(r: RawSodium): SmallSealState {
  let hb: Buffer = heapBuffer(r);
  let base = 0;
  let adLen = 0;
  let msgLen = 0;
  let dirty = false;
  const st: SmallSealState = {
    reset(maxTextLength) {
      // UTF-8 takes at most 3 bytes per UTF-16 code unit; the ciphertext follows the message.
      const msgCap = 3 * maxTextLength;
      if (msgCap >= LARGE_VALUE_BYTES) return false;
      ensureScratch(r, S_MSG + 2 * msgCap + AEAD_TAG_BYTES);
      hb = heapBuffer(r);
      base = scratch;
      adLen = 0;
      msgLen = 0;
      dirty = true;
      return true;
    },
    adBytes(bytes) {
      if (adLen + bytes.length > SMALL_AD_MAX) throw new RangeError('associated data too long');
      hb.set(bytes, base + S_AD + adLen);
      adLen += bytes.length;
    },
    adLatin1(text) {
      if (adLen + text.length > SMALL_AD_MAX) throw new RangeError('associated data too long');
      adLen += latin1Write.call(hb, text, base + S_AD + adLen, text.length);
    },
    message(text) {
      msgLen = utf8Write.call(hb, text, base + S_MSG, 3 * text.length);
      return msgLen;
    },
    seal(key, nonce, prefixBytes) {
      const k = base + S_KEY;
      const n = base + S_NONCE;
      const m = base + S_MSG;
      const c = m + msgLen;
      const end = c + msgLen + AEAD_TAG_BYTES;
      hb.set(key, k);
      hb.set(nonce, n);
      const rc = r._crypto_aead_xchacha20poly1305_ietf_encrypt(
        c,
        0,
        m,
        msgLen,
        0,
        base + S_AD,
        adLen,
        0,
        0,
        n,
        k,
      );
      hb = heapBuffer(r); // a call may have grown (and so replaced) the heap
      if (rc !== 0) {
        st.discard();
        throw new Error('libsodium encryption failed');
      }
      const blob = Buffer.allocUnsafe(prefixBytes + msgLen + AEAD_TAG_BYTES);
      blob.set(hb.subarray(c, end), prefixBytes);
      hb.fill(0, base, end);
      dirty = false;
      return blob;
    },
    discard() {
      if (!dirty) return;
      // Everything this value may have written: key, nonce, associated data, message, output.
      heapBuffer(r).fill(0, base, base + S_MSG + 2 * msgLen + AEAD_TAG_BYTES);
      dirty = false;
    },
  };
  return st;
}

/**
 * Starts a small seal of a text of at most `maxTextLength` UTF-16 code units; null when the
 * value may be large (use aeadSeal) or the raw module is not in use.
 */
export function beginSmallSeal(maxTextLength: number): SmallSeal | null {
  const r = raw;
  if (!r) return null;
  small ??= makeSmall(r);
  return small.reset(maxTextLength) ? small : null;
}

// ---- OpenSSL: HChaCha20 subkey + ChaCha20-Poly1305 ------------------------------------------

function nodeSeal(
  key: Uint8Array,
  nonce: Uint8Array,
  ad: Uint8Array,
  msg: Uint8Array,
  out: Uint8Array,
  offset: number,
): void {
  const subkey = hchacha20(key, nonce);
  const cipher = createCipheriv('chacha20-poly1305', subkey, ietfNonce(nonce), {
    authTagLength: AEAD_TAG_BYTES,
  });
  cipher.setAAD(ad, { plaintextLength: msg.length });
  const body = cipher.update(msg);
  const tail = cipher.final();
  out.set(body, offset);
  out.set(tail, offset + body.length);
  out.set(cipher.getAuthTag(), offset + msg.length);
  subkey.fill(0);
}

function nodeOpen(
  key: Uint8Array,
  nonce: Uint8Array,
  ad: Uint8Array,
  ct: Uint8Array,
): Buffer | null {
  const mlen = ct.length - AEAD_TAG_BYTES;
  const subkey = hchacha20(key, nonce);
  try {
    const decipher = createDecipheriv('chacha20-poly1305', subkey, ietfNonce(nonce), {
      authTagLength: AEAD_TAG_BYTES,
    });
    decipher.setAAD(ad, { plaintextLength: mlen });
    decipher.setAuthTag(ct.subarray(mlen));
    const body = decipher.update(ct.subarray(0, mlen));
    const tail = decipher.final(); // throws when the tag does not match
    return tail.length ? Buffer.concat([body, tail]) : body;
  } catch {
    return null;
  } finally {
    subkey.fill(0);
  }
}

function ietfNonce(nonce: Uint8Array): Buffer {
  const n = Buffer.alloc(12);
  n.set(nonce.subarray(16, 24), 4);
  return n;
}

function rotl(x: number, n: number): number {
  return (x << n) | (x >>> (32 - n));
}

/** HChaCha20 (draft-irtf-cfrg-xchacha, section 2.2): a 32-byte subkey from a key and 16 nonce bytes. */
export function hchacha20(key: Uint8Array, nonce: Uint8Array): Buffer {
  const kv = new DataView(key.buffer, key.byteOffset, 32);
  const nv = new DataView(nonce.buffer, nonce.byteOffset, 16);
  const s = new Uint32Array(16);
  s[0] = 0x61707865;
  s[1] = 0x3320646e;
  s[2] = 0x79622d32;
  s[3] = 0x6b206574;
  for (let i = 0; i < 8; i++) s[4 + i] = kv.getUint32(4 * i, true);
  for (let i = 0; i < 4; i++) s[12 + i] = nv.getUint32(4 * i, true);
  const qr = (a: number, b: number, c: number, d: number) => {
    s[a] = s[a]! + s[b]!;
    s[d] = rotl(s[d]! ^ s[a]!, 16);
    s[c] = s[c]! + s[d]!;
    s[b] = rotl(s[b]! ^ s[c]!, 12);
    s[a] = s[a]! + s[b]!;
    s[d] = rotl(s[d]! ^ s[a]!, 8);
    s[c] = s[c]! + s[d]!;
    s[b] = rotl(s[b]! ^ s[c]!, 7);
  };
  for (let i = 0; i < 10; i++) {
    qr(0, 4, 8, 12);
    qr(1, 5, 9, 13);
    qr(2, 6, 10, 14);
    qr(3, 7, 11, 15);
    qr(0, 5, 10, 15);
    qr(1, 6, 11, 12);
    qr(2, 7, 8, 13);
    qr(3, 4, 9, 14);
  }
  const out = Buffer.allocUnsafe(32);
  for (let i = 0; i < 4; i++) {
    out.writeUInt32LE(s[i]!, 4 * i);
    out.writeUInt32LE(s[12 + i]!, 16 + 4 * i);
  }
  s.fill(0);
  return out;
}

type SealFn = typeof aeadSeal;
type OpenFn = typeof aeadOpen;

/** Compares an engine with libsodium's public function on a few sizes, both ways. */
function selfTest(seal: SealFn, open: OpenFn): boolean {
  const key = randomBytes(32);
  const nonce = randomBytes(24);
  const ad = Buffer.from('trustrun self-test');
  for (const size of [0, 1, 63, 64, 65, 1000, LARGE_VALUE_BYTES + 17]) {
    const msg = randomBytes(size);
    const expected = lib().crypto_aead_xchacha20poly1305_ietf_encrypt(msg, ad, null, nonce, key);
    const got = Buffer.alloc(size + AEAD_TAG_BYTES);
    seal(key, nonce, ad, msg, got, 0);
    if (!got.equals(expected)) return false;
    const back = open(key, nonce, ad, expected);
    if (!back || !back.equals(msg)) return false;
    const bad = Buffer.from(expected);
    bad[0] = (bad[0] ?? 0) ^ 1;
    if (open(key, nonce, ad, bad) !== null) return false;
  }
  return true;
}
