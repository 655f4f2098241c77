import { beforeAll, describe, expect, it } from 'vitest';
import {
  SEAL_OVERHEAD,
  loadSealing,
  newDataKey,
  openValue,
  sealValue,
  sealedKeyId,
  type SealContext,
} from '../../../src/store/index.js';

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
