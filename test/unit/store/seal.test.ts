import sodium from 'libsodium-wrappers';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeHeaders, encodeHeaders } from '../../../src/store/headers.js';
import {
  KEY_ID_BYTES,
  NONCE_BYTES,
  SEAL_OVERHEAD,
  SEAL_VERSION,
  associatedData,
  loadSealing,
  newDataKey,
  openValue,
  sealValue,
  sealedKeyId,
  type DataKey,
  type HeaderList,
  type SealContext,
} from '../../../src/store/index.js';
import { sealHeaderList } from '../../../src/store/seal.js';

beforeAll(async () => {
  await loadSealing();
});

const ctx: SealContext = { table: 'requests', recordId: '0mwwnva45fb55707cdf73', field: 'url' };

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return 'no error';
}

describe('sealValue / openValue', () => {
  it('round-trips strings and bytes, with a fresh nonce each time', () => {
    const key = newDataKey();
    const a = sealValue(key, ctx, '/v1/patients/42?q=1');
    const b = sealValue(key, ctx, '/v1/patients/42?q=1');
    expect(a.equals(b)).toBe(false);
    expect(a.length).toBe('/v1/patients/42?q=1'.length + SEAL_OVERHEAD);
    expect(openValue(key, ctx, a).toString()).toBe('/v1/patients/42?q=1');
    const bytes = Buffer.from([0, 1, 2, 255]);
    expect(openValue(key, ctx, sealValue(key, ctx, bytes)).equals(bytes)).toBe(true);
    expect(openValue(key, ctx, sealValue(key, ctx, Buffer.alloc(0))).length).toBe(0);
    const big = Buffer.alloc(200_000, 7);
    expect(openValue(key, ctx, sealValue(key, ctx, big)).equals(big)).toBe(true);
  });

  it('names the key in the blob header', () => {
    const key = newDataKey();
    expect(sealedKeyId(sealValue(key, ctx, 'x'))).toBe(key.keyId);
    expect(sealedKeyId(Buffer.from('not sealed'))).toBeNull();
  });

  it('fails with TR_SEAL_OPEN when any single byte is flipped', () => {
    const key = newDataKey();
    for (const plain of ['/a?b=c', 'x'.repeat(5000)]) {
      const blob = sealValue(key, ctx, plain);
      const step = blob.length > 200 ? 97 : 1;
      for (let i = 0; i < blob.length; i += step) {
        const bad = Buffer.from(blob);
        bad[i] = bad[i]! ^ 0x01;
        expect(
          codeOf(() => openValue(key, ctx, bad)),
          `byte ${i}`,
        ).toBe('TR_SEAL_OPEN');
      }
    }
  });

  it('binds table, record id, field and key id', () => {
    const key = newDataKey();
    const blob = sealValue(key, ctx, 'secret');
    for (const other of [
      { ...ctx, table: 'connections' },
      { ...ctx, recordId: '0mwwnva45fb55707cdf74' },
      { ...ctx, field: 'request_headers' },
    ]) {
      expect(codeOf(() => openValue(key, other, blob))).toBe('TR_SEAL_OPEN');
    }
    // Same key bytes under another key id: the key id is in the associated data.
    const renamed = { keyId: newDataKey().keyId, key: key.key };
    expect(codeOf(() => openValue(renamed, ctx, blob))).toBe('TR_SEAL_OPEN');
    expect(codeOf(() => openValue(newDataKey(), ctx, blob))).toBe('TR_SEAL_OPEN');
  });

  it('says which table, field and record failed, and why', () => {
    const key = newDataKey();
    const bad = sealValue(key, ctx, 'secret');
    bad[bad.length - 1] = bad[bad.length - 1]! ^ 0xff;
    expect(() => openValue(key, ctx, bad)).toThrow(
      /requests\.url of record 0mwwnva45fb55707cdf73: authentication failed/,
    );
    expect(() => openValue(key, ctx, bad.subarray(0, 10))).toThrow(/truncated/);
    const v2 = Buffer.from(sealValue(key, ctx, 'x'));
    v2[0] = 2;
    expect(() => openValue(key, ctx, v2)).toThrow(/unknown sealed format version 2/);
    expect(() =>
      openValue(() => ({ missing: 'the session was shredded' }), ctx, sealValue(key, ctx, 'x')),
    ).toThrow(/the session was shredded/);
  });
});

describe('small text values and header lists (written straight into libsodium heap)', () => {
  const hctx: SealContext = {
    table: 'requests',
    recordId: '0mwwnva45fb55707cdf73',
    field: 'request_headers',
  };

  /** Opens a blob with libsodium's public function, independently of openValue. */
  function openWithLibsodium(key: DataKey, c: SealContext, blob: Buffer): Buffer {
    const nonce = blob.subarray(1 + KEY_ID_BYTES, 1 + KEY_ID_BYTES + NONCE_BYTES);
    const ct = blob.subarray(1 + KEY_ID_BYTES + NONCE_BYTES);
    const plain = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
      null,
      ct,
      associatedData(SEAL_VERSION, c, key.keyId),
      nonce,
      key.key,
    );
    return Buffer.from(plain);
  }

  it('seals strings of every size and script to exactly their UTF-8 bytes', () => {
    const key = newDataKey();
    const texts = [
      '',
      '/v1/patients/42?q=1',
      '/caf\u00e9/\u65e5\u672c/\u{1f600}',
      'lone \ud800 surrogate', // becomes U+FFFD, as Buffer.from does
      'a'.repeat(1365),
      '\u65e5'.repeat(1365), // 4095 bytes: 3 bytes per character
      '\u65e5'.repeat(1366), // 4098 bytes: the OpenSSL engine
      'b'.repeat(5000),
    ];
    for (const text of texts) {
      const blob = sealValue(key, ctx, text);
      const expected = Buffer.from(text, 'utf8');
      expect(blob.length).toBe(expected.length + SEAL_OVERHEAD);
      expect(sealedKeyId(blob)).toBe(key.keyId);
      expect(openWithLibsodium(key, ctx, blob).equals(expected), text.slice(0, 20)).toBe(true);
      expect(openValue(key, ctx, blob).equals(expected)).toBe(true);
    }
  });

  it('seals a header list as encodeHeaders would, falling back to JSON for NUL and surrogates', () => {
    const key = newDataKey();
    const lists: HeaderList[] = [
      [],
      [
        ['host', 'example.com'],
        ['x-empty', ''],
        ['set-cookie', 'a=1'],
        ['set-cookie', 'b=2'],
      ],
      [['x-name', 'Jos\u00e9 \u65e5\u672c']],
      [['x-nul', 'a\0b']],
      [['x-emoji', '\u{1f600}']],
      [['x-lone', 'a\udc00b']],
      [['x-big', 'v'.repeat(3000)]],
    ];
    for (const list of lists) {
      const blob = sealHeaderList(key, hctx, list);
      const expected = Buffer.from(encodeHeaders(list), 'utf8');
      expect(openWithLibsodium(key, hctx, blob).equals(expected)).toBe(true);
      expect(decodeHeaders(openValue(key, hctx, blob).toString('utf8'))).toEqual(list);
    }
  });

  it('binds the record, field and key like any sealed value', () => {
    const key = newDataKey();
    const blob = sealHeaderList(key, hctx, [['accept', '*/*']]);
    expect(codeOf(() => openValue(key, { ...hctx, recordId: 'other' }, blob))).toBe('TR_SEAL_OPEN');
    expect(codeOf(() => openValue(key, { ...hctx, field: 'response_headers' }, blob))).toBe(
      'TR_SEAL_OPEN',
    );
    expect(codeOf(() => openValue(newDataKey(), hctx, blob))).toBe('TR_SEAL_OPEN');
    expect(codeOf(() => sealHeaderList(key, { ...hctx, recordId: 'bad/id' }, []))).toBe(
      'TR_INTERNAL',
    );
  });

  it('leaves neither the plaintext nor the key in libsodium heap', () => {
    const key = newDataKey();
    const marker = 'MARKER-7d1f0c9e-in-a-header';
    const heap = () =>
      Buffer.from((sodium as unknown as { libsodium: { HEAPU8: Uint8Array } }).libsodium.HEAPU8);
    sealHeaderList(key, hctx, [['x-patient', marker]]);
    sealValue(key, ctx, `/patients/${marker}`);
    const h = heap();
    expect(h.includes(Buffer.from(marker))).toBe(false);
    expect(h.includes(Buffer.from(key.key))).toBe(false);
  });
});
