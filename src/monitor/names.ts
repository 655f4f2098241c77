import { execFile } from 'node:child_process';
import { promises as dnsp } from 'node:dns';
import { isIP } from 'node:net';
import type { DnsFunctions, WhoisFunction } from './types.js';

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

/** An address in lower case, an IPv4-mapped IPv6 one (`::ffff:1.2.3.4`) as its IPv4. */
export function unmapped(ip: string): string {
  const a = ip.toLowerCase();
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

/** The organisation for an address (IPv4 table), then for a host name (suffix table). */
export function orgFor(ip: string, hostname: string | null = null): string | null {
  const v4 = ipv4ToInt(unmapped(ip));
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
  const a = unmapped(ip);
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

/**
 * The lookup for `key`, made once and shared by later calls; at most `max` kept (the oldest goes
 * first).
 */
function once<T>(
  cache: Map<string, Promise<T>>,
  key: string,
  max: number,
  make: () => Promise<T>,
): Promise<T> {
  let p = cache.get(key);
  if (!p) {
    if (cache.size >= max) cache.delete(cache.keys().next().value!);
    p = make();
    cache.set(key, p);
  }
  return p;
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
    return once(this.cache, ip, this.maxEntries, () => this.lookup(ip));
  }

  private async lookup(ip: string): Promise<string | null> {
    const names = await withTimeout(this.dns.reverse(ip), this.timeoutMs);
    if (!names) return null;
    const want = unmapped(ip);
    for (const raw of names.slice(0, 4)) {
      const name = raw.replace(/\.$/, '').toLowerCase();
      if (!name) continue;
      const addrs = await withTimeout(this.dns.lookup(name), this.timeoutMs);
      if (addrs?.some((a) => a.toLowerCase() === want)) return name;
    }
    return null;
  }
}

/**
 * Addresses whose owner whois would not tell (private, shared, documentation-free local
 * ranges): never sent to a whois server, which would only learn the internal addressing.
 */
export function isPrivateAddress(ip: string): boolean {
  const a = unmapped(ip);
  if (isIP(a) === 4) {
    const [x, y] = a.split('.').map(Number) as [number, number];
    return (
      x === 10 ||
      x === 0 ||
      x >= 224 ||
      (x === 172 && y >= 16 && y < 32) ||
      (x === 192 && y === 168) ||
      (x === 100 && y >= 64 && y < 128)
    );
  }
  return /^f[cd]/.test(a) || /^fe[89ab]/.test(a) || a.startsWith('ff');
}

/** `whois ADDRESS` (the system program), with a timeout; its stdout. */
export function systemWhois(): WhoisFunction {
  return (ip, timeoutMs, signal) =>
    new Promise((resolve, reject) => {
      execFile(
        'whois',
        [ip],
        { timeout: timeoutMs, maxBuffer: 1 << 20, encoding: 'utf8', signal },
        (err, stdout) => {
          // Some whois clients exit non-zero after printing a useful answer.
          if (err && !stdout) reject(err);
          else resolve(stdout);
        },
      );
    });
}

/**
 * The organisation in a whois answer, as the earlier tool read it: the value of the last
 * `OrgName:` or `org-name:` line (any case), else of the first `netname:` line, else ''.
 */
export function whoisOrg(text: string): string {
  let org = '';
  let net = '';
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*(orgname|org-name|netname)\s*:\s*(.*?)\s*$/i.exec(line);
    if (!m || !m[2]) continue;
    if (m[1]!.toLowerCase() === 'netname') net ||= m[2];
    else org = m[2];
  }
  return org || net;
}

/** whois programs run at once, at most: a program reaching many new addresses queues them. */
const WHOIS_AT_ONCE = 4;

/**
 * whois lookups of organisations, one per address (cached), at most WHOIS_AT_ONCE at a time,
 * tried twice when the first attempt fails (a timeout, an error), never again once the program is
 * found missing. `stop()` ends the lookups under way and drops the queue (the programs are
 * killed: a command's exit does not wait for them). Never throws; '' when there is no answer.
 */
export class WhoisOrgs {
  private readonly cache = new Map<string, Promise<string>>();
  private missing = false;
  private running = 0;
  private readonly queue: (() => void)[] = [];
  private readonly stopper = new AbortController();

  constructor(
    private readonly whois: WhoisFunction,
    private readonly timeoutMs: number,
    private readonly maxEntries = 10_000,
  ) {}

  org(ip: string): Promise<string> {
    return once(this.cache, ip, this.maxEntries, () => this.lookup(ip));
  }

  stop(): void {
    this.stopper.abort();
    // Each waiter is handed a slot, as a finished lookup hands over its own.
    for (const go of this.queue.splice(0)) {
      this.running++;
      go();
    }
  }

  private async lookup(ip: string): Promise<string> {
    // A finished lookup hands its slot straight to the next in the queue (running stays
    // counted), so no newcomer slips in between.
    if (this.running >= WHOIS_AT_ONCE) await new Promise<void>((go) => this.queue.push(go));
    else this.running++;
    try {
      const signal = this.stopper.signal;
      for (let attempt = 0; attempt < 2 && !this.missing && !signal.aborted; attempt++) {
        try {
          return whoisOrg(await this.whois(ip, this.timeoutMs, signal));
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') this.missing = true;
        }
      }
      return '';
    } finally {
      const next = this.queue.shift();
      if (next) next();
      else this.running--;
    }
  }
}

/**
 * What an address is called, in the earlier tool's order: the range table, the PTR name
 * (forward-confirmed), the host-name suffix table, then whois. `quick` stops before whois, which
 * can take seconds: the monitor decides and reports with it, and adds whois's answer after.
 */
export class AddressNames {
  constructor(
    private readonly names: NameResolver | null,
    private readonly orgs: WhoisOrgs | null,
  ) {}

  async quick(ip: string): Promise<{ hostname: string | null; org: string | null }> {
    const org = orgFor(ip);
    if (!this.names || isLocalAddress(ip)) return { hostname: null, org };
    const hostname = await this.names.resolve(ip);
    return { hostname, org: orgFor(ip, hostname) };
  }

  /** whois's organisation for an address `quick` found none for; null when none (or off). */
  async slowOrg(ip: string): Promise<string | null> {
    if (!this.orgs || isLocalAddress(ip) || isPrivateAddress(ip)) return null;
    return (await this.orgs.org(ip)) || null;
  }

  /** Ends the whois lookups under way (see WhoisOrgs.stop). */
  stop(): void {
    this.orgs?.stop();
  }

  async describe(ip: string): Promise<{ hostname: string | null; org: string | null }> {
    const q = await this.quick(ip);
    return q.org !== null ? q : { hostname: q.hostname, org: await this.slowOrg(ip) };
  }
}
