import { promises as dnsp } from 'node:dns';
import { isIP } from 'node:net';
import type { DnsFunctions } from './types.js';

/** IPv4 ranges → organisation, first match wins (the earlier tool's table, kept as is). */
export const ORG_RANGES: ReadonlyArray<readonly [string, readonly string[]]> = [
  [
    'Microsoft Azure',
    ['13.64.0.0/11', '20.0.0.0/11', '40.64.0.0/10', '52.96.0.0/12', '104.40.0.0/13'],
  ],
  ['Amazon AWS', ['3.0.0.0/9', '15.176.0.0/12', '16.0.0.0/8', '18.128.0.0/9', '52.0.0.0/11']],
  ['Google Cloud', ['34.0.0.0/9', '35.184.0.0/13', '104.196.0.0/14', '130.211.0.0/16']],
  ['Cloudflare', ['104.16.0.0/12', '172.64.0.0/13', '162.158.0.0/15']],
  ['Apple Inc.', ['17.0.0.0/8']],
  ['GitHub/Microsoft', ['20.33.0.0/16']],
];

/** Host-name suffixes → organisation, used when the address is in no range. */
export const ORG_SUFFIXES: ReadonlyArray<readonly [string, string]> = [
  ['.amazonaws.com', 'Amazon AWS'],
  ['.cloudfront.net', 'Amazon AWS'],
  ['.azure.com', 'Microsoft Azure'],
  ['.windows.net', 'Microsoft Azure'],
  ['.microsoft.com', 'Microsoft'],
  ['.google.com', 'Google'],
  ['.1e100.net', 'Google'],
  ['.googleapis.com', 'Google Cloud'],
  ['.googleusercontent.com', 'Google Cloud'],
  ['.cloudflare.com', 'Cloudflare'],
  ['.apple.com', 'Apple Inc.'],
  ['.icloud.com', 'Apple Inc.'],
  ['.akamai.net', 'Akamai'],
  ['.akamaiedge.net', 'Akamai'],
  ['.akamaitechnologies.com', 'Akamai'],
  ['.github.com', 'GitHub/Microsoft'],
  ['.github.io', 'GitHub/Microsoft'],
  ['.openai.com', 'OpenAI'],
  ['.fastly.net', 'Fastly'],
];

function ipv4ToInt(ip: string): number | null {
  const parts = ip.split('.');
  if (parts.length !== 4) return null;
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return null;
    n = n * 256 + Number(p);
  }
  return n;
}

const COMPILED = ORG_RANGES.flatMap(([org, cidrs]) =>
  cidrs.map((cidr) => {
    const [base, bits] = cidr.split('/') as [string, string];
    const size = 2 ** (32 - Number(bits));
    const start = Math.floor(ipv4ToInt(base)! / size) * size;
    return { org, start, end: start + size };
  }),
);

/** The organisation for an address (IPv4 table), then for a host name (suffix table). */
export function orgFor(ip: string, hostname: string | null = null): string | null {
  const v4 = ipv4ToInt(ip.toLowerCase().startsWith('::ffff:') ? ip.slice(7) : ip);
  if (v4 !== null) for (const r of COMPILED) if (v4 >= r.start && v4 < r.end) return r.org;
  if (hostname) {
    const h = hostname.toLowerCase().replace(/\.$/, '');
    for (const [suffix, org] of ORG_SUFFIXES)
      if (h.endsWith(suffix) || h === suffix.slice(1)) return org;
  }
  return null;
}

/** Loopback, unspecified and link-local addresses: not looked up (nothing useful, no leak). */
export function isLocalAddress(ip: string): boolean {
  const a = ip.toLowerCase().startsWith('::ffff:') ? ip.slice(7) : ip.toLowerCase();
  if (isIP(a) === 4) return a.startsWith('127.') || a.startsWith('169.254.') || a === '0.0.0.0';
  return a === '::1' || a === '::' || a.startsWith('fe80:');
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | null> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(null), ms);
    t.unref();
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      () => {
        clearTimeout(t);
        resolve(null);
      },
    );
  });
}

export function systemDns(timeoutMs: number): DnsFunctions {
  const resolver = new dnsp.Resolver({ timeout: timeoutMs, tries: 1 });
  return {
    reverse: (ip) => resolver.reverse(ip),
    lookup: async (name) => (await dnsp.lookup(name, { all: true })).map((a) => a.address),
  };
}

/**
 * Forward-confirmed reverse DNS with a timeout and a cache: the PTR names of the address are
 * looked up, and the first name that resolves back to the same address is the hostname.
 * A PTR name that does not resolve back (anyone who controls an address's reverse zone can
 * write any name there) is not used. Never throws; null when there is no confirmed name.
 */
export class NameResolver {
  private readonly cache = new Map<string, Promise<string | null>>();

  constructor(
    private readonly dns: DnsFunctions,
    private readonly timeoutMs: number,
    private readonly maxEntries = 10_000,
  ) {}

  /** The confirmed name of `ip` (one lookup per address; later calls share it). */
  resolve(ip: string): Promise<string | null> {
    let p = this.cache.get(ip);
    if (!p) {
      if (this.cache.size >= this.maxEntries) this.cache.delete(this.cache.keys().next().value!);
      p = this.lookup(ip);
      this.cache.set(ip, p);
    }
    return p;
  }

  private async lookup(ip: string): Promise<string | null> {
    const names = await withTimeout(this.dns.reverse(ip), this.timeoutMs);
    if (!names) return null;
    const want = ip.toLowerCase().startsWith('::ffff:') ? ip.slice(7) : ip.toLowerCase();
    for (const raw of names.slice(0, 4)) {
      const name = raw.replace(/\.$/, '').toLowerCase();
      if (!name) continue;
      const addrs = await withTimeout(this.dns.lookup(name), this.timeoutMs);
      if (addrs?.some((a) => a.toLowerCase() === want)) return name;
    }
    return null;
  }
}
