import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeHeaders, encodeHeaders } from '../../../src/store/headers.js';

// Any code point, plus the characters the encoding must take care of (NUL, lone surrogates).
const text = fc.oneof(
  fc.string({ unit: 'binary' }),
  fc.string({ unit: fc.constantFrom('a', '\0', '\ud800', '\udfff', 'é', '😀', '\u0001', '[') }),
);

describe('sealed header lists', () => {
  it('round-trips any list of string pairs, in order, repeats included (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(text, text), { maxLength: 30 }), (headers) => {
        expect(decodeHeaders(encodeHeaders(headers))).toEqual(headers);
      }),
      { numRuns: 500 },
    );
  });

  it('uses the compact form for real headers and JSON for NUL or lone surrogates', () => {
    const real: [string, string][] = [
      ['set-cookie', 'a=1'],
      ['set-cookie', 'b=2'],
      ['x-empty', ''],
    ];
    expect(encodeHeaders(real)).toBe('\u0001set-cookie\0a=1\0set-cookie\0b=2\0x-empty\0\0');
    expect(encodeHeaders([])).toBe('\u0001');
    expect(decodeHeaders(encodeHeaders([]))).toEqual([]);
    for (const odd of [[['a\0b', 'c']], [['a', 'c\0']], [['a', '\ud800']]] as [
      string,
      string,
    ][][]) {
      expect(encodeHeaders(odd).startsWith('[')).toBe(true);
      expect(decodeHeaders(encodeHeaders(odd))).toEqual(odd);
    }
  });
});
