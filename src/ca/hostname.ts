import { isIP } from 'node:net';
import { TrustRunError } from '../core/index.js';

/** A host name ready to be put in a certificate: the cache key and, for IP literals, the bytes. */
export interface NormalizedHost {
  /** Lowercase, no trailing dot, no IPv6 brackets; IPv6 in its canonical compressed form. */
  name: string;
  /** Address bytes (4 or 16) for an IP literal, else null. */
  ip: Buffer | null;
}

const LABEL = /^[a-z0-9_-]{1,63}$/;

function invalid(input: string, why: string): TrustRunError {
  const shown = JSON.stringify(input.length > 80 ? input.slice(0, 80) + '…' : input);
  return new TrustRunError('TR_BAD_REQUEST', `cannot mint a certificate for host ${shown}: ${why}`);
}

/**
 * Normalises a host name as it comes from SNI, a CONNECT line or a URL: lowercase, trailing dot
 * removed, IPv6 brackets removed. Throws TR_BAD_REQUEST for anything that is not a DNS name
 * (ASCII letters, digits, '-', '_' in labels of 1–63 characters, 253 at most) or an IP literal.
 */
export function normalizeHost(input: string): NormalizedHost {
  let h = input.trim().toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h.endsWith('.')) h = h.slice(0, -1);
  if (h === '') throw invalid(input, 'the name is empty');
  const family = isIP(h);
  if (family === 4) return { name: h, ip: Buffer.from(h.split('.').map(Number)) };
  if (family === 6) {
    if (h.includes('%')) throw invalid(input, 'an IPv6 zone cannot appear in a certificate');
    const canonical = new URL(`http://[${h}]/`).hostname.slice(1, -1);
    return { name: canonical, ip: ipv6Bytes(canonical) };
  }
  if (h.length > 253) throw invalid(input, 'the name is longer than 253 characters');
  if (!h.split('.').every((label) => LABEL.test(label))) {
    throw invalid(input, 'not a DNS name or IP address (international names must be in punycode)');
  }
  return { name: h, ip: null };
}

/** Bytes of a canonical (WHATWG-serialised) IPv6 address: hex groups and at most one '::'. */
function ipv6Bytes(addr: string): Buffer {
  const [head = '', tail] = addr.split('::');
  const groups = (s: string): number[] =>
    s === '' ? [] : s.split(':').map((g) => parseInt(g, 16));
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const all = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}
