import { describe, expect, it } from 'vitest';
import * as der from '../../../src/ca/der.js';
import { normalizeHost } from '../../../src/ca/index.js';

describe('DER encoding', () => {
  it('encodes OIDs, integers and lengths as DER requires', () => {
    expect(der.oid('1.2.840.10045.4.3.2').toString('hex')).toBe('06082a8648ce3d040302');
    expect(der.oid('2.5.29.17').toString('hex')).toBe('0603551d11');
    expect(der.integer(Buffer.from([0x80])).toString('hex')).toBe('02020080');
    expect(der.integer(Buffer.from([0x00, 0x00, 0x7f])).toString('hex')).toBe('02017f');
    expect(der.integer(Buffer.from([0x00, 0x00, 0x80])).toString('hex')).toBe('02020080');
    expect(der.tlv(0x04, Buffer.alloc(0x7f)).subarray(0, 2).toString('hex')).toBe('047f');
    expect(der.tlv(0x04, Buffer.alloc(0x80)).subarray(0, 3).toString('hex')).toBe('048180');
    expect(der.tlv(0x04, Buffer.alloc(0x1234)).subarray(0, 4).toString('hex')).toBe('04821234');
  });

  it('uses UTCTime through 2049 and GeneralizedTime from 2050', () => {
    expect(der.time(new Date('2049-12-31T23:59:59.900Z')).toString('latin1')).toBe(
      '\x17\x0d491231235959Z',
    );
    expect(der.time(new Date('2050-01-01T00:00:00Z')).toString('latin1')).toBe(
      '\x18\x0f20500101000000Z',
    );
  });

  it('reads back what it writes', () => {
    const inner = der.seq(der.utf8('a'), der.octets(Buffer.alloc(300)));
    const outer = der.seq(der.explicit(0, der.integer(Buffer.from([2]))), inner);
    const top = der.readTlv(outer, 0);
    expect(top.end).toBe(outer.length);
    const kids = der.children(outer, top);
    expect(kids.map((k) => k.tag)).toEqual([0xa0, 0x30]);
    expect(() => der.readTlv(outer.subarray(0, 5), 0)).toThrow(/truncated/);
  });
});

describe('normalizeHost', () => {
  it('lowercases, drops the trailing dot and IPv6 brackets, canonicalises IPv6', () => {
    expect(normalizeHost('API.Example.COM.')).toEqual({ name: 'api.example.com', ip: null });
    expect(normalizeHost('10.1.2.3')).toEqual({ name: '10.1.2.3', ip: Buffer.from([10, 1, 2, 3]) });
    const v6 = normalizeHost('[2001:DB8:0:0::1]');
    expect(v6.name).toBe('2001:db8::1');
    expect(v6.ip?.toString('hex')).toBe('20010db8000000000000000000000001');
    expect(normalizeHost('::ffff:1.2.3.4').ip?.toString('hex')).toBe(
      '00000000000000000000ffff01020304',
    );
    expect(normalizeHost('::').ip?.toString('hex')).toBe('0'.repeat(32));
    expect(normalizeHost('_dmarc.example.com').name).toBe('_dmarc.example.com');
    expect(normalizeHost('xn--bcher-kva.example').name).toBe('xn--bcher-kva.example');
  });

  it('rejects what cannot go in a certificate, naming the input', () => {
    expect(() => normalizeHost('exa mple.com')).toThrow(/"exa mple.com"/);
    expect(() => normalizeHost('a..b')).toThrow(/not a DNS name/);
    expect(() => normalizeHost('.')).toThrow(/empty/);
    expect(() => normalizeHost('evil.com\r\nx')).toThrow(/not a DNS name/);
  });
});
