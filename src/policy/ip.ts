/**
 * IP addresses and networks, parsed once. IPv4 is a uint32 number; IPv6 is four uint32 words
 * (most significant first). IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are IPv4 everywhere,
 * in rules and in subjects.
 */

export type Words = readonly [number, number, number, number];

export type Ip = { readonly v: 4; readonly n: number } | { readonly v: 6; readonly w: Words };

export type Network =
  | { readonly v: 4; readonly net: number; readonly len: number }
  | { readonly v: 6; readonly net: Words; readonly len: number };

/** Strict dotted quad: four decimal octets 0-255, no leading zeros. */
export function parseIpv4(s: string): number | null {
  let n = 0;
  let octet = 0;
  let digits = 0;
  let parts = 0;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : 46; // virtual '.' at the end
    if (c === 46) {
      if (digits === 0 || octet > 255) return null;
      n = n * 256 + octet;
      parts++;
      octet = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return null; // leading zero
      octet = octet * 10 + (c - 48);
      digits++;
      if (digits > 3) return null;
    } else {
      return null;
    }
  }
  return parts === 4 ? n : null;
}

/**
 * The forms the C resolver accepts for an IPv4 host (inet_aton): 1 to 4 parts, each decimal,
 * octal (leading 0) or hex (0x), the last part filling the remaining bytes. `2130706433`,
 * `0x7f.1` and `127.1` are all 127.0.0.1 to a client that connects to them.
 */
export function parseIpv4Lenient(s: string): number | null {
  const strict = parseIpv4(s);
  if (strict !== null) return strict;
  if (s.length === 0 || s.length > 64) return null;
  const parts = s.split('.');
  if (parts.length > 4) return null;
  const values: number[] = [];
  for (const p of parts) {
    let v: number;
    if (/^0x[0-9a-f]+$/i.test(p)) v = parseInt(p.slice(2), 16);
    else if (/^0[0-7]*$/.test(p)) v = parseInt(p, 8);
    else if (/^[1-9][0-9]*$/.test(p)) v = parseInt(p, 10);
    else return null;
    if (!Number.isSafeInteger(v)) return null;
    values.push(v);
  }
  let n = 0;
  for (let i = 0; i < values.length - 1; i++) {
    const v = values[i] as number;
    if (v > 255) return null;
    n = n * 256 + v;
  }
  const last = values[values.length - 1] as number;
  const restBytes = 5 - values.length;
  if (last >= 256 ** restBytes) return null;
  return n * 256 ** restBytes + last;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const l = c | 0x20;
  return l >= 97 && l <= 102 ? l - 87 : -1;
}

/** IPv6 text (no brackets, no zone) to four words; accepts `::` and a dotted IPv4 tail. */
export function parseIpv6(s: string): Words | null {
  const n = s.length;
  if (n < 2 || n > 45) return null;
  const groups: number[] = [];
  let gap = -1; // where "::" stands, as a group count
  let i = 0;
  if (s.charCodeAt(0) === 58) {
    if (s.charCodeAt(1) !== 58) return null;
    gap = 0;
    i = 2;
  }
  while (i < n) {
    const start = i;
    let v = 0;
    let digits = 0;
    for (; i < n; i++) {
      const h = hexValue(s.charCodeAt(i));
      if (h < 0) break;
      if (++digits > 4) return null;
      v = v * 16 + h;
    }
    if (i < n && s.charCodeAt(i) === 46) {
      const v4 = parseIpv4(s.slice(start));
      if (v4 === null || groups.length > 6) return null;
      groups.push(v4 >>> 16, v4 & 0xffff);
      i = n;
      break;
    }
    if (digits === 0 || groups.length === 8) return null;
    groups.push(v);
    if (i === n) break;
    if (s.charCodeAt(i) !== 58) return null;
    i++;
    if (i < n && s.charCodeAt(i) === 58) {
      if (gap >= 0) return null;
      gap = groups.length;
      i++;
    } else if (i === n) {
      return null;
    }
  }
  if (gap >= 0) {
    if (groups.length > 7) return null;
    groups.splice(gap, 0, ...new Array<number>(8 - groups.length).fill(0));
  } else if (groups.length !== 8) {
    return null;
  }
  const g = groups;
  return [
    ((g[0] as number) * 65536 + (g[1] as number)) >>> 0,
    ((g[2] as number) * 65536 + (g[3] as number)) >>> 0,
    ((g[4] as number) * 65536 + (g[5] as number)) >>> 0,
    ((g[6] as number) * 65536 + (g[7] as number)) >>> 0,
  ];
}

function isMapped(w: Words): boolean {
  return w[0] === 0 && w[1] === 0 && w[2] === 0xffff;
}

function fromV6(w: Words): Ip {
  return isMapped(w) ? { v: 4, n: w[3] } : { v: 6, w };
}

/**
 * An address as a client or the proxy reports it: strict IPv4, or IPv6 with optional brackets
 * and zone id. Mapped IPv6 becomes IPv4. Anything else is null.
 */
export function parseIp(s: string): Ip | null {
  const v4 = parseIpv4(s);
  if (v4 !== null) return { v: 4, n: v4 };
  return parseV6Literal(s);
}

function parseV6Literal(s: string): Ip | null {
  let text = s;
  if (text.startsWith('[') && text.endsWith(']')) text = text.slice(1, -1);
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  const v6 = parseIpv6(text);
  return v6 === null ? null : fromV6(v6);
}

function mightBeLenientV4(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i) | 0x20; // lower-case letters; digits and '.' keep their bit
    const digit = c >= 48 && c <= 57;
    if (!digit && c !== 46 && c !== 0x78 && !(c >= 0x61 && c <= 0x66)) return false;
  }
  return s.length > 0;
}

/** A host name that is really an address (any form a resolver would accept), or null. */
export function parseHostLiteral(host: string): Ip | null {
  if (host.length === 0) return null;
  const first = host.charCodeAt(0);
  if (first === 91 /* [ */ || host.indexOf(':') >= 0) return parseV6Literal(host);
  if (!mightBeLenientV4(host)) return null;
  const v4 = parseIpv4Lenient(host);
  return v4 === null ? null : { v: 4, n: v4 };
}

export function formatIpv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** Canonical text: dotted quad for IPv4 (also for mapped IPv6), lower case for IPv6. */
export function canonicalIp(ip: Ip, original: string): string {
  if (ip.v === 4) return formatIpv4(ip.n);
  return original.replace(/^\[|\]$|%.*$/g, '').toLowerCase();
}

export const V4_MASKS: readonly number[] = Array.from({ length: 33 }, (_, len) =>
  len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0,
);

/** Per prefix length: the mask of each of the four words. */
const V6_WORD_MASKS: readonly Words[] = Array.from({ length: 129 }, (_, len) => {
  const mask = (k: number) => V4_MASKS[Math.max(0, Math.min(32, len - k * 32))] as number;
  return [mask(0), mask(1), mask(2), mask(3)] as const;
});

/** The first `len` bits of an IPv6 address, as a map key. */
export function v6Key(w: Words, len: number): string {
  const m = V6_WORD_MASKS[len] as Words;
  if (len <= 32) return `${(w[0] & m[0]) >>> 0}`;
  if (len <= 64) return `${(w[0] & m[0]) >>> 0}:${(w[1] & m[1]) >>> 0}`;
  return `${(w[0] & m[0]) >>> 0}:${(w[1] & m[1]) >>> 0}:${(w[2] & m[2]) >>> 0}:${(w[3] & m[3]) >>> 0}`;
}

/** Parses `ADDR` or `ADDR/LEN`; host bits are allowed and cleared. Returns an error text. */
export function parseNetwork(s: string): Network | string {
  const slash = s.indexOf('/');
  const addr = slash < 0 ? s : s.slice(0, slash);
  const lenText = slash < 0 ? null : s.slice(slash + 1);
  const v4 = parseIpv4(addr);
  const v6 = v4 === null && addr.includes(':') ? parseIpv6(addr) : null;
  if (v4 === null && v6 === null) {
    const what = addr.includes(':')
      ? 'not an IPv6 address'
      : 'not an IPv4 address (four numbers 0-255, no leading zeros)';
    return lenText === null ? what : `"${addr}" is ${what}`;
  }
  const max = v4 !== null ? 32 : 128;
  let len = max;
  if (lenText !== null) {
    if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > max) {
      return `prefix length must be a number from 0 to ${max}`;
    }
    len = Number(lenText);
  }
  if (v4 !== null) return { v: 4, net: (v4 & (V4_MASKS[len] as number)) >>> 0, len };
  const w = v6 as Words;
  // An IPv4-mapped network is an IPv4 network.
  if (len >= 96 && isMapped(w)) {
    const l4 = len - 96;
    return { v: 4, net: (w[3] & (V4_MASKS[l4] as number)) >>> 0, len: l4 };
  }
  const net = w.map((word, k) => {
    const bits = Math.max(0, Math.min(32, len - k * 32));
    return (word & (V4_MASKS[bits] as number)) >>> 0;
  }) as unknown as Words;
  return { v: 6, net, len };
}

/** Whether a `match` text is meant as an address or network rather than a host glob. */
export function looksLikeNetwork(s: string): boolean {
  return s.includes(':') || s.includes('/') || /^[0-9.]+$/.test(s);
}

export function sameIp(a: Ip, b: Ip): boolean {
  if (a.v === 4) return b.v === 4 && a.n === b.n;
  return b.v === 6 && a.w.every((word, k) => word === b.w[k]);
}
