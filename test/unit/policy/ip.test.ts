import { isIP } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  parseHostLiteral,
  parseIp,
  parseIpv4,
  parseIpv6,
  parseNetwork,
} from '../../../src/policy/ip.js';

describe('IPv4', () => {
  it.each([
    ['0.0.0.0', 0],
    ['10.1.2.3', 0x0a010203],
    ['255.255.255.255', 0xffffffff],
  ])('%s', (text, n) => {
    expect(parseIpv4(text)).toBe(n);
  });

  it.each([
    '1.2.3',
    '1.2.3.4.5',
    '256.1.1.1',
    '01.2.3.4',
    '1.2.3.',
    '.1.2.3',
    'a.b.c.d',
    '',
    '1..2.3',
  ])('rejects %s', (text) => {
    expect(parseIpv4(text)).toBeNull();
  });

  it.each([
    ['2130706433', 0x7f000001],
    ['0x7f.1', 0x7f000001],
    ['127.1', 0x7f000001],
    ['0177.0.0.1', 0x7f000001],
    ['10.0x10.258', 0x0a100102],
  ])('host literal %s is what a resolver would connect to', (host, n) => {
    expect(parseHostLiteral(host)).toEqual({ v: 4, n });
  });

  it.each(['face.cafe', 'example.com', '4294967296', '1.2.3.256', '0x', 'deadbeef'])(
    'host %s is not an address',
    (host) => {
      expect(parseHostLiteral(host)).toBeNull();
    },
  );
});

describe('IPv6', () => {
  const groups = fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 });
  const words = (g: number[]) =>
    [0, 2, 4, 6].map((k) => ((g[k] as number) * 65536 + (g[k + 1] as number)) >>> 0);

  it('parses every spelling of an address to the same words', () => {
    fc.assert(
      fc.property(groups, fc.nat(7), fc.nat(8), fc.boolean(), (g, from, span, upper) => {
        const hex = g.map((x) => x.toString(16));
        const full = g.map((x) => x.toString(16).padStart(4, '0')).join(':');
        expect(parseIpv6(full)).toEqual(words(g));
        let text = hex.join(':');
        // Compress a run of zero groups with "::" when there is one.
        const zeros = Array.from({ length: Math.min(span, 8 - from) }, (_, k) => from + k);
        if (zeros.length >= 1 && zeros.every((k) => g[k] === 0)) {
          text = hex.slice(0, from).join(':') + '::' + hex.slice(from + zeros.length).join(':');
        }
        if (upper) text = text.toUpperCase();
        expect(isIP(text)).toBe(6);
        expect(parseIpv6(text)).toEqual(words(g));
      }),
      { numRuns: 500 },
    );
  });

  it.each([
    ['::', [0, 0, 0, 0]],
    ['::1', [0, 0, 0, 1]],
    ['1::', [0x00010000, 0, 0, 0]],
    ['2001:db8::1', [0x20010db8, 0, 0, 1]],
    ['::ffff:10.1.2.3', [0, 0, 0xffff, 0x0a010203]],
    ['64:ff9b::192.0.2.1', [0x0064ff9b, 0, 0, 0xc0000201]],
  ])('%s', (text, expected) => {
    expect(parseIpv6(text)).toEqual(expected);
  });

  it.each([
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7',
    '1::2::3',
    ':1:2:3:4:5:6:7',
    '1:2:3:4:5:6:7:',
    '12345::1',
    '::g',
    '1:2:3:4:5:6:7::8',
    '::1.2.3',
    '::1.2.3.4.5',
    '1:2:3:4:5:6:7:1.2.3.4',
  ])('rejects %s (as node does)', (text) => {
    expect(isIP(text)).toBe(0);
    expect(parseIpv6(text)).toBeNull();
  });

  it('mapped addresses are IPv4; brackets and zones are accepted in subjects', () => {
    expect(parseIp('::ffff:10.1.2.3')).toEqual({ v: 4, n: 0x0a010203 });
    expect(parseIp('::ffff:a01:203')).toEqual({ v: 4, n: 0x0a010203 });
    expect(parseIp('[::1]')).toEqual({ v: 6, w: [0, 0, 0, 1] });
    expect(parseIp('fe80::1%eth0')).toEqual({ v: 6, w: [0xfe800000, 0, 0, 1] });
  });
});

describe('networks', () => {
  it.each([
    ['10.1.2.3/8', { v: 4, net: 0x0a000000, len: 8 }],
    ['1.2.3.4', { v: 4, net: 0x01020304, len: 32 }],
    ['0.0.0.0/0', { v: 4, net: 0, len: 0 }],
    ['2001:db8:ffff::/33', { v: 6, net: [0x20010db8, 0x80000000, 0, 0], len: 33 }],
    ['::ffff:10.0.0.0/104', { v: 4, net: 0x0a000000, len: 8 }],
  ])('%s', (text, expected) => {
    expect(parseNetwork(text)).toEqual(expected);
  });

  it.each([
    ['10.0.0.0/33', 'prefix length must be a number from 0 to 32'],
    ['10.0.0.0/', 'prefix length must be a number from 0 to 32'],
    ['10.0.0.0/-1', 'prefix length must be a number from 0 to 32'],
    ['::/129', 'prefix length must be a number from 0 to 128'],
    ['10.0.0/8', '"10.0.0" is not an IPv4 address (four numbers 0-255, no leading zeros)'],
    ['1:2:3/64', '"1:2:3" is not an IPv6 address'],
  ])('rejects %s', (text, message) => {
    expect(parseNetwork(text)).toBe(message);
  });
});
