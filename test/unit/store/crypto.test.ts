import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import sodium from 'libsodium-wrappers';
import { beforeAll, describe, expect, it } from 'vitest';
import { aeadOpen, aeadSeal, hchacha20, LARGE_VALUE_BYTES } from '../../../src/store/aead.js';
import { argon2id, loadSealing } from '../../../src/store/index.js';

beforeAll(async () => {
  await loadSealing();
});

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('argon2id', () => {
  it('matches the RFC 9106 test vector (secret, associated data, 4 lanes)', () => {
    const tag = argon2id(new Uint8Array(32).fill(1), new Uint8Array(16).fill(2), {
      passes: 3,
      memoryKiB: 32,
      parallelism: 4,
      tagLength: 32,
      secret: new Uint8Array(8).fill(3),
      associatedData: new Uint8Array(12).fill(4),
    });
    expect(hex(tag)).toBe('0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659');
  });

  // Expected values from the reference implementation (Debian's argon2 command).
  const pw = Buffer.from('correct horse battery staple');
  const salt = Buffer.from('saltsaltsalt1234');
  it.each([
    [1, 64, 1, 32, 'ca82636f4d956dc1256650f37c7355532e03995c1d69852851002223858ab756'],
    [3, 4096, 2, 32, 'd9c4c6207db248189bbd77c710afe100db6274afdc570c05df39d2c102088133'],
    [2, 16384, 4, 32, '846a62eca00e5c78c49c2e7dd741fd99bcdab4d90bcb74c8ca423a5604a5b022'],
    [
      2,
      1000,
      3,
      100,
      '05f07d6413bd32405d5c5f2dc2c48de7209a92eaccd30aa392ddc0b86fb986a342a31656986e2918cfbd4b94aa2578972f578c720d9d7270105723796db7896f67de191fdd8ff38fc5c9ba9492fd57da9deea6e9e7bfec2e67635618839ffe4bcf58486d',
    ],
  ])(
    'matches the reference for t=%i m=%i p=%i len=%i',
    (passes, memoryKiB, parallelism, len, want) => {
      const tag = argon2id(pw, salt, { passes, memoryKiB, parallelism, tagLength: len });
      expect(hex(tag)).toBe(want);
    },
  );

  it('matches the reference at the cost used for passphrases (46 MiB, 1 pass)', () => {
    const tag = argon2id(Buffer.from('pässwörd 🔑'), Buffer.from('0123456789abcdef'), {
      passes: 1,
      memoryKiB: 47_104,
      parallelism: 1,
      tagLength: 32,
    });
    expect(hex(tag)).toBe('52cd9d1ef47d785b610de0e7cb8f9dd52cc93110354e566d43886cc7c464b6a3');
  });

  it('refuses parameters outside the algorithm', () => {
    expect(() =>
      argon2id(pw, Buffer.from('short'), {
        passes: 1,
        memoryKiB: 64,
        parallelism: 1,
        tagLength: 32,
      }),
    ).toThrow(/salt/);
    expect(() =>
      argon2id(pw, salt, { passes: 0, memoryKiB: 64, parallelism: 1, tagLength: 32 }),
    ).toThrow(/passes/);
    expect(() =>
      argon2id(pw, salt, { passes: 1, memoryKiB: 4, parallelism: 1, tagLength: 32 }),
    ).toThrow(/memoryKiB/);
  });
});

describe('XChaCha20-Poly1305 engines', () => {
  it('derives the HChaCha20 subkey of draft-irtf-cfrg-xchacha 2.2.1', () => {
    const key = Buffer.from([...Array(32).keys()]);
    const nonce = Buffer.from('000000090000004a0000000031415927', 'hex');
    expect(hex(hchacha20(key, nonce))).toBe(
      '82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc',
    );
  });

  it('produces the bytes of libsodium crypto_aead_xchacha20poly1305_ietf_encrypt at every size', () => {
    const sizes = [0, 1, 15, 16, 17, 63, 64, 65, 1000, LARGE_VALUE_BYTES - 1, LARGE_VALUE_BYTES];
    sizes.push(LARGE_VALUE_BYTES + 1, 65_536 + 3, 1 << 20);
    for (const size of sizes) {
      const key = randomBytes(32);
      const nonce = randomBytes(24);
      const ad = randomBytes(size % 50);
      const msg = randomBytes(size);
      const want = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(msg, ad, null, nonce, key);
      const got = Buffer.alloc(size + 16 + 5);
      aeadSeal(key, nonce, ad, msg, got, 5);
      expect(hex(got.subarray(5)), `size ${size}`).toBe(hex(want));
      expect(aeadOpen(key, nonce, ad, want)?.equals(msg), `open size ${size}`).toBe(true);
    }
  });

  it('opens what libsodium sealed and refuses any change (property)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 9000 }),
        fc.uint8Array({ maxLength: 40 }),
        fc.nat(),
        (msg, ad, flip) => {
          const key = randomBytes(32);
          const nonce = randomBytes(24);
          const ct = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(msg, ad, null, nonce, key);
          expect(aeadOpen(key, nonce, ad, ct)?.equals(Buffer.from(msg))).toBe(true);
          const bad = Buffer.from(ct);
          const at = flip % bad.length;
          bad[at] = bad[at]! ^ (1 << (flip % 8));
          expect(aeadOpen(key, nonce, ad, bad)).toBeNull();
          expect(
            aeadOpen(key, nonce, Buffer.concat([Buffer.from(ad), Buffer.from([0])]), ct),
          ).toBeNull();
        },
      ),
      { numRuns: 60 },
    );
  });
});
