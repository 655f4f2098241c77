import { TrustRunError } from '../core/index.js';
import { sodiumReady } from './sodium.js';

/**
 * Argon2id (RFC 9106, version 0x13) for the passphrase mode of the store.
 *
 * Node 20 has no Argon2 and the standard build of libsodium-wrappers leaves out crypto_pwhash,
 * so the memory-hard part is written here; BLAKE2b comes from libsodium (crypto_generichash).
 * Checked against the RFC 9106 test vector and the reference implementation's output
 * (test/unit/store/argon2.test.ts). Lanes are computed one after another: the result is the
 * same as with threads, only slower for parallelism > 1.
 */
export interface Argon2idParams {
  /** t: number of passes over memory. */
  passes: number;
  /** m: memory in KiB (1 KiB blocks). */
  memoryKiB: number;
  /** p: number of lanes. */
  parallelism: number;
  /** Output length in bytes (16 or more). */
  tagLength: number;
  /** Optional secret value K. */
  secret?: Uint8Array;
  /** Optional associated data X. */
  associatedData?: Uint8Array;
}

const VERSION = 0x13;
const TYPE_ID = 2;
const WORDS = 256; // 32-bit words in a 1 KiB block (128 64-bit words as lo/hi pairs)
const TWO32 = 4294967296;
const TWO33 = 2 * TWO32;

export function argon2id(
  password: Uint8Array,
  salt: Uint8Array,
  params: Argon2idParams,
): Uint8Array {
  const { passes, memoryKiB, parallelism: lanes, tagLength } = params;
  const secret = params.secret ?? new Uint8Array(0);
  const ad = params.associatedData ?? new Uint8Array(0);
  if (!Number.isInteger(lanes) || lanes < 1 || lanes > 0xffffff) bad('parallelism', lanes);
  if (!Number.isInteger(passes) || passes < 1) bad('passes', passes);
  if (!Number.isInteger(memoryKiB) || memoryKiB < 8 * lanes) bad('memoryKiB', memoryKiB);
  if (!Number.isInteger(tagLength) || tagLength < 16) bad('tagLength', tagLength);
  if (salt.length < 8) bad('salt length', salt.length);

  const h0 = blake2b(
    64,
    concat([
      le32(lanes),
      le32(tagLength),
      le32(memoryKiB),
      le32(passes),
      le32(VERSION),
      le32(TYPE_ID),
      le32(password.length),
      password,
      le32(salt.length),
      salt,
      le32(secret.length),
      secret,
      le32(ad.length),
      ad,
    ]),
  );

  const segLen = Math.floor(memoryKiB / (4 * lanes));
  const laneLen = segLen * 4;
  const blocks = laneLen * lanes;
  const mem = new Uint32Array(blocks * WORDS);
  const ctx: Ctx = { mem, lanes, segLen, laneLen, blocks, passes };

  for (let l = 0; l < lanes; l++) {
    loadBlock(mem, l * laneLen, hPrime(1024, concat([h0, le32(0), le32(l)])));
    loadBlock(mem, l * laneLen + 1, hPrime(1024, concat([h0, le32(1), le32(l)])));
  }
  for (let pass = 0; pass < passes; pass++) {
    for (let slice = 0; slice < 4; slice++) {
      for (let lane = 0; lane < lanes; lane++) fillSegment(ctx, pass, slice, lane);
    }
  }

  const last = new Uint32Array(WORDS);
  for (let l = 0; l < lanes; l++) {
    const off = (l * laneLen + laneLen - 1) * WORDS;
    for (let i = 0; i < WORDS; i++) last[i] = (last[i]! ^ mem[off + i]!) >>> 0;
  }
  const tag = hPrime(tagLength, storeBlock(last));
  mem.fill(0);
  h0.fill(0);
  return tag;
}

function bad(name: string, value: number): never {
  throw new TrustRunError('TR_CONFIG', `invalid Argon2id ${name}: ${value}`);
}

interface Ctx {
  mem: Uint32Array;
  lanes: number;
  segLen: number;
  laneLen: number;
  blocks: number;
  passes: number;
}

function fillSegment(ctx: Ctx, pass: number, slice: number, lane: number): void {
  const { mem, lanes, segLen, laneLen } = ctx;
  const dataIndependent = pass === 0 && slice < 2;
  let address: Uint32Array | null = null;
  let input: Uint32Array | null = null;
  if (dataIndependent) {
    input = new Uint32Array(WORDS);
    input[0] = pass;
    input[2] = lane;
    input[4] = slice;
    input[6] = ctx.blocks;
    input[8] = ctx.passes;
    input[10] = TYPE_ID;
    address = new Uint32Array(WORDS);
  }
  let start = 0;
  if (pass === 0 && slice === 0) {
    start = 2;
    if (input && address) nextAddresses(input, address);
  }
  let curr = lane * laneLen + slice * segLen + start;
  let prev = curr % laneLen === 0 ? curr + laneLen - 1 : curr - 1;
  for (let i = start; i < segLen; i++, curr++, prev++) {
    if (curr % laneLen === 1) prev = curr - 1;
    let j1: number;
    let j2: number;
    if (input && address) {
      const k = i % 128;
      if (k === 0) nextAddresses(input, address);
      j1 = address[2 * k]!;
      j2 = address[2 * k + 1]!;
    } else {
      j1 = mem[prev * WORDS]!;
      j2 = mem[prev * WORDS + 1]!;
    }
    const refLane = pass === 0 && slice === 0 ? lane : j2 % lanes;
    const sameLane = refLane === lane;
    let area: number;
    if (pass === 0) {
      if (slice === 0) area = i - 1;
      else if (sameLane) area = slice * segLen + i - 1;
      else area = slice * segLen + (i === 0 ? -1 : 0);
    } else if (sameLane) area = laneLen - segLen + i - 1;
    else area = laneLen - segLen + (i === 0 ? -1 : 0);
    const rel = area - 1 - mulHi(area, mulHi(j1, j1));
    const startPos = pass !== 0 && slice !== 3 ? (slice + 1) * segLen : 0;
    const ref = refLane * laneLen + ((startPos + rel) % laneLen);
    compress(mem, prev * WORDS, mem, ref * WORDS, mem, curr * WORDS, pass !== 0);
  }
}

const ZERO = new Uint32Array(WORDS);
const TMP = new Uint32Array(WORDS);

function nextAddresses(input: Uint32Array, address: Uint32Array): void {
  input[12] = (input[12]! + 1) >>> 0;
  compress(ZERO, 0, input, 0, TMP, 0, false);
  compress(ZERO, 0, TMP, 0, address, 0, false);
}

const R = new Uint32Array(WORDS);
const Q = new Uint32Array(WORDS);

/** out = P-mix(X ^ Y) ^ (X ^ Y) [^ out when xor], the compression function G. */
function compress(
  x: Uint32Array,
  xo: number,
  y: Uint32Array,
  yo: number,
  out: Uint32Array,
  oo: number,
  xor: boolean,
): void {
  for (let i = 0; i < WORDS; i++) {
    const v = x[xo + i]! ^ y[yo + i]!;
    R[i] = v;
    Q[i] = v;
  }
  for (let i = 0; i < 8; i++) {
    // row i: 64-bit words 16i .. 16i+15
    const b = 32 * i;
    permute(
      b,
      b + 2,
      b + 4,
      b + 6,
      b + 8,
      b + 10,
      b + 12,
      b + 14,
      b + 16,
      b + 18,
      b + 20,
      b + 22,
      b + 24,
      b + 26,
      b + 28,
      b + 30,
    );
  }
  for (let i = 0; i < 8; i++) {
    // column i: 64-bit words 2i, 2i+1, 2i+16, 2i+17, ..., 2i+112, 2i+113
    const c = 4 * i;
    permute(
      c,
      c + 2,
      c + 32,
      c + 34,
      c + 64,
      c + 66,
      c + 96,
      c + 98,
      c + 128,
      c + 130,
      c + 160,
      c + 162,
      c + 192,
      c + 194,
      c + 224,
      c + 226,
    );
  }
  if (xor) {
    for (let i = 0; i < WORDS; i++) out[oo + i] = out[oo + i]! ^ Q[i]! ^ R[i]!;
  } else {
    for (let i = 0; i < WORDS; i++) out[oo + i] = Q[i]! ^ R[i]!;
  }
}

/** The BLAKE2b round (Argon2's variant) on 16 64-bit words of Q, given by the offsets of their low halves. */
function permute(
  v0: number,
  v1: number,
  v2: number,
  v3: number,
  v4: number,
  v5: number,
  v6: number,
  v7: number,
  v8: number,
  v9: number,
  v10: number,
  v11: number,
  v12: number,
  v13: number,
  v14: number,
  v15: number,
): void {
  gb(v0, v4, v8, v12);
  gb(v1, v5, v9, v13);
  gb(v2, v6, v10, v14);
  gb(v3, v7, v11, v15);
  gb(v0, v5, v10, v15);
  gb(v1, v6, v11, v12);
  gb(v2, v7, v8, v13);
  gb(v3, v4, v9, v14);
}

/**
 * G_B of RFC 9106 on four 64-bit words of Q (offsets of their low halves). Each step is
 * x = x + y + 2 * lo(x) * lo(y) (mod 2^64) on lo/hi pairs, then an xor and a rotation.
 */
function gb(a: number, b: number, c: number, d: number): void {
  let al = Q[a]!;
  let ah = Q[a + 1]!;
  let bl = Q[b]!;
  let bh = Q[b + 1]!;
  let cl = Q[c]!;
  let ch = Q[c + 1]!;
  let dl = Q[d]!;
  let dh = Q[d + 1]!;
  let p: number;
  let s: number;
  let t: number;
  let u: number;

  p = Math.imul(al, bl) >>> 0;
  s = al + bl + ((p << 1) >>> 0);
  ah =
    (ah +
      bh +
      2 * Math.round((al * bl - p) / TWO32) +
      (p >>> 31) +
      (s >= TWO32 ? (s >= TWO33 ? 2 : 1) : 0)) >>>
    0;
  al = s >>> 0;
  t = (dl ^ al) >>> 0; // d = rotr32(d ^ a)
  dl = (dh ^ ah) >>> 0;
  dh = t;

  p = Math.imul(cl, dl) >>> 0;
  s = cl + dl + ((p << 1) >>> 0);
  ch =
    (ch +
      dh +
      2 * Math.round((cl * dl - p) / TWO32) +
      (p >>> 31) +
      (s >= TWO32 ? (s >= TWO33 ? 2 : 1) : 0)) >>>
    0;
  cl = s >>> 0;
  t = bl ^ cl; // b = rotr24(b ^ c)
  u = bh ^ ch;
  bl = ((t >>> 24) | (u << 8)) >>> 0;
  bh = ((u >>> 24) | (t << 8)) >>> 0;

  p = Math.imul(al, bl) >>> 0;
  s = al + bl + ((p << 1) >>> 0);
  ah =
    (ah +
      bh +
      2 * Math.round((al * bl - p) / TWO32) +
      (p >>> 31) +
      (s >= TWO32 ? (s >= TWO33 ? 2 : 1) : 0)) >>>
    0;
  al = s >>> 0;
  t = dl ^ al; // d = rotr16(d ^ a)
  u = dh ^ ah;
  dl = ((t >>> 16) | (u << 16)) >>> 0;
  dh = ((u >>> 16) | (t << 16)) >>> 0;

  p = Math.imul(cl, dl) >>> 0;
  s = cl + dl + ((p << 1) >>> 0);
  ch =
    (ch +
      dh +
      2 * Math.round((cl * dl - p) / TWO32) +
      (p >>> 31) +
      (s >= TWO32 ? (s >= TWO33 ? 2 : 1) : 0)) >>>
    0;
  cl = s >>> 0;
  t = bl ^ cl; // b = rotr63(b ^ c)
  u = bh ^ ch;
  bl = ((t << 1) | (u >>> 31)) >>> 0;
  bh = ((u << 1) | (t >>> 31)) >>> 0;

  Q[a] = al;
  Q[a + 1] = ah;
  Q[b] = bl;
  Q[b + 1] = bh;
  Q[c] = cl;
  Q[c + 1] = ch;
  Q[d] = dl;
  Q[d + 1] = dh;
}

/**
 * High 32 bits of the 64-bit product of two unsigned 32-bit numbers. The double product is off
 * by at most 2^12 from the exact one; subtracting the exact low half (Math.imul) and rounding
 * the quotient by 2^32 removes that error.
 */
function mulHi(a: number, b: number): number {
  return Math.round((a * b - (Math.imul(a, b) >>> 0)) / TWO32) >>> 0;
}

/** H' of RFC 9106: variable-length hash built from BLAKE2b. */
function hPrime(outLen: number, input: Uint8Array): Uint8Array {
  const prefixed = concat([le32(outLen), input]);
  if (outLen <= 64) return blake2b(outLen, prefixed);
  const out = new Uint8Array(outLen);
  let v = blake2b(64, prefixed);
  out.set(v.subarray(0, 32), 0);
  let pos = 32;
  while (outLen - pos > 64) {
    v = blake2b(64, v);
    out.set(v.subarray(0, 32), pos);
    pos += 32;
  }
  out.set(blake2b(outLen - pos, v), pos);
  return out;
}

function blake2b(outLen: number, input: Uint8Array): Uint8Array {
  return sodiumReady().crypto_generichash(outLen, input, null);
}

function le32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0, true);
  return b;
}

function concat(parts: Uint8Array[]): Uint8Array {
  let len = 0;
  for (const p of parts) len += p.length;
  const out = new Uint8Array(len);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function loadBlock(mem: Uint32Array, index: number, bytes: Uint8Array): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const off = index * WORDS;
  for (let i = 0; i < WORDS; i++) mem[off + i] = view.getUint32(4 * i, true);
}

function storeBlock(words: Uint32Array): Uint8Array {
  const out = new Uint8Array(WORDS * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < WORDS; i++) view.setUint32(4 * i, words[i]!, true);
  return out;
}
