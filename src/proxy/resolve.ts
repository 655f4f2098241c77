import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { TrustRunError } from '../core/index.js';

/** One `--resolve HOST:PORT:ADDR[:PORT]` override. HOST may be `*.domain`. */
export interface ResolveRule {
  host: string;
  port: number;
  address: string;
  targetPort: number;
}

/** Where the proxy actually connects for a destination. */
export interface Destination {
  address: string;
  port: number;
  /** true when a --resolve rule chose the address. */
  overridden: boolean;
}

function parsePort(text: string, spec: string): number {
  const n = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n <= 65535)) {
    throw new TrustRunError('TR_USAGE', `--resolve '${spec}': '${text}' is not a port (1-65535)`);
  }
  return n;
}

/**
 * Parses `HOST:PORT:ADDR[:PORT]` like curl's --resolve, plus an optional target port. ADDR may be
 * an IPv6 literal in brackets: `api.test:443:[::1]:8443`.
 */
export function parseResolveRule(spec: string): ResolveRule {
  const m = /^([^:\s]+):(\d+):(\[[0-9a-fA-F:.]+\]|[^:\s]+)(?::(\d+))?$/.exec(spec);
  if (!m) {
    throw new TrustRunError(
      'TR_USAGE',
      `--resolve '${spec}' is not HOST:PORT:ADDR[:PORT] (e.g. api.example.test:443:127.0.0.1:8443)`,
    );
  }
  const [, host, port, rawAddr, targetPort] = m as unknown as [
    string,
    string,
    string,
    string,
    string?,
  ];
  const address = rawAddr.startsWith('[') ? rawAddr.slice(1, -1) : rawAddr;
  if (!isIP(address)) {
    throw new TrustRunError('TR_USAGE', `--resolve '${spec}': '${rawAddr}' is not an IP address`);
  }
  const p = parsePort(port, spec);
  return {
    host: host.toLowerCase(),
    port: p,
    address,
    targetPort: targetPort === undefined ? p : parsePort(targetPort, spec),
  };
}

/** Lowercases and strips a trailing dot and IPv6 brackets. */
export function normalizeHost(host: string): string {
  let h = host.toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h.endsWith('.')) h = h.slice(0, -1);
  return h;
}

/**
 * Maps destinations to addresses: --resolve overrides first (exact before wildcard), then DNS
 * with a short cache, so the address that the policy checked is the address that is dialed.
 */
export class Resolver {
  private readonly exact = new Map<string, ResolveRule>();
  private readonly wildcards: ResolveRule[] = [];
  private readonly cache = new Map<string, { address: string; expires: number }>();
  private readonly pending = new Map<string, Promise<string>>();

  constructor(
    rules: ResolveRule[],
    private readonly ttlMs = 30_000,
  ) {
    for (const r of rules) {
      if (r.host.startsWith('*.')) this.wildcards.push(r);
      else this.exact.set(`${r.host}:${r.port}`, r);
    }
  }

  /** The override for host:port, if any. */
  override(host: string, port: number): ResolveRule | undefined {
    const exact = this.exact.get(`${host}:${port}`);
    if (exact) return exact;
    for (const r of this.wildcards) {
      if (r.port === port && host.endsWith(r.host.slice(1))) return r;
    }
    return undefined;
  }

  async resolve(host: string, port: number): Promise<Destination> {
    const o = this.override(host, port);
    if (o) return { address: o.address, port: o.targetPort, overridden: true };
    if (isIP(host)) return { address: host, port, overridden: false };
    return { address: await this.lookup(host), port, overridden: false };
  }

  private lookup(host: string): Promise<string> {
    const hit = this.cache.get(host);
    if (hit && hit.expires > Date.now()) return Promise.resolve(hit.address);
    let p = this.pending.get(host);
    if (!p) {
      p = lookup(host)
        .then(({ address }) => {
          this.cache.set(host, { address, expires: Date.now() + this.ttlMs });
          return address;
        })
        .catch((err: NodeJS.ErrnoException) => {
          throw new TrustRunError(
            'TR_UPSTREAM_DNS',
            `cannot resolve ${host}: ${err.code ?? err.message}`,
            {
              cause: err,
            },
          );
        })
        .finally(() => this.pending.delete(host));
      this.pending.set(host, p);
    }
    return p;
  }
}
