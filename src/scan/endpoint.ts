import { isIP, isIPv4 } from 'node:net';
import type { Destination } from './types.js';

/** Ports that a scheme implies when the URL names none. */
const DEFAULT_PORTS: Record<string, number> = {
  http: 80,
  https: 443,
  ws: 80,
  wss: 443,
  ftp: 21,
  postgres: 5432,
  postgresql: 5432,
  mysql: 3306,
  mariadb: 3306,
  mongodb: 27017,
  // mongodb+srv: the port comes from DNS SRV records, not the URL.
  'mongodb+srv': 0,
  redis: 6379,
  rediss: 6379,
  amqp: 5672,
  amqps: 5671,
  mssql: 1433,
  sqlserver: 1433,
  oracle: 1521,
  cockroachdb: 26257,
};

const HOST_CHARS = /^[a-z0-9._-]+$/i;

/**
 * The destination an endpoint names: a URL (any scheme; userinfo is never taken for the
 * host), `host:port`, a bare host or an IP literal. Null when no host can be read from it.
 */
export function parseDestination(endpoint: string, portHint?: number): Destination | null {
  const key = portHint === undefined ? endpoint : `${endpoint}\0${portHint}`;
  const cached = cache.get(key);
  if (cached !== undefined) return cached && { ...cached };
  const dest = parse(endpoint, portHint);
  if (cache.size >= 4096) cache.clear();
  cache.set(key, dest);
  return dest && { ...dest };
}

/** The same endpoints recur across a tree: parsed once each (bounded). */
const cache = new Map<string, Destination | null>();

function parse(endpoint: string, portHint?: number): Destination | null {
  let rest = endpoint.trim();
  let port = 0;
  const scheme = /^([a-z][a-z0-9+.:-]*?):\/\//i.exec(rest);
  if (scheme) {
    rest = rest.slice(scheme[0].length);
    port = defaultPort(scheme[1] as string);
  }
  // Authority: up to the path, query or fragment (';' starts parameters in JDBC URLs).
  let authority = rest.split(/[/?#;]/, 1)[0] as string;
  const at = authority.lastIndexOf('@');
  if (at !== -1) authority = authority.slice(at + 1);
  // Several hosts (mongodb://a:1,b:2/db): the first one stands for them.
  authority = authority.split(',', 1)[0] as string;
  let host: string;
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close === -1) return null;
    host = authority.slice(1, close);
    const after = authority.slice(close + 1);
    if (/^:\d{1,5}$/.test(after)) port = Number(after.slice(1));
  } else if (isIP(authority) === 6) {
    host = authority;
  } else {
    const m = /^(.*?)(?::(\d{1,5}))?$/.exec(authority) as RegExpExecArray;
    host = m[1] as string;
    if (m[2] !== undefined) port = Number(m[2]);
  }
  host = host.toLowerCase().replace(/\.$/, '');
  if (!host) return null;
  const ipVersion = isIP(host);
  if (ipVersion === 0 && !HOST_CHARS.test(host)) return null;
  if (port === 0 && portHint !== undefined) port = portHint;
  if (port > 65535) port = 0;
  return { host, port, ip: ipVersion === 0 ? null : host };
}

function defaultPort(scheme: string): number {
  const s = scheme.toLowerCase().replace(/^jdbc:/, '');
  const base = s.split('+', 1)[0] as string;
  return DEFAULT_PORTS[s] ?? DEFAULT_PORTS[base] ?? 0;
}

/** A host that is never a real destination: this machine or the unspecified address. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  return (
    h === 'localhost' ||
    h.endsWith('.localhost') ||
    h === '127.0.0.1' ||
    h === '0.0.0.0' ||
    h === '::1' ||
    h === '::'
  );
}

const DOC_DOMAINS = ['example.com', 'example.org', 'example.net'];

/**
 * Documentation hosts: schema namespaces, the W3C, the IETF's tools and the reserved example
 * domains. `subdomains` decides whether api.example.com counts too (it does for string
 * literals, not for the universal `url` pattern: both as before).
 */
function isDocsHost(host: string, subdomains: boolean): boolean {
  const h = host.toLowerCase();
  if (h.startsWith('schemas.') || h === 'www.w3.org' || h === 'tools.ietf.org') return true;
  return DOC_DOMAINS.some((d) => h === d || (subdomains && h.endsWith('.' + d)));
}

/** The false-positive filter of the universal `url` pattern. */
export function isBenignUrl(url: string): boolean {
  const dest = parseDestination(url);
  if (!dest) return true;
  return isLoopbackHost(dest.host) || isDocsHost(dest.host, false);
}

/** The filter of the language analyzers' URL literals and endpoint arguments. */
export function isBenignLiteral(value: string): boolean {
  const dest = parseDestination(value);
  if (!dest) return true;
  return isLoopbackHost(dest.host) || isDocsHost(dest.host, true);
}

const BENIGN_IPS = /^(?:127\.0\.0\.1|0\.0\.0\.0|255\.255\.255\.\d{1,3}|10\.0\.0\.0)$/;

/** IP literals that name no destination (loopback, any, netmasks, the 10/8 network). */
export function isBenignIp(ip: string): boolean {
  return BENIGN_IPS.test(ip) || !isIPv4(ip);
}

const BENIGN_TEXT =
  /https?:\/\/(?:localhost|127\.0\.0\.1|0\.0\.0\.0|example\.com|schemas\.|www\.w3\.org|tools\.ietf\.org)|\b(?:127\.0\.0\.1|0\.0\.0\.0|255\.255\.255\.\d{1,3}|10\.0\.0\.0)\b/i;

/**
 * The scanner's false-positive filter for a matched text: URLs are judged by their host
 * (so `https://localhost@evil.test` is not excused), anything else by the text it contains.
 */
export function isFalsePositive(text: string): boolean {
  if (/^https?:\/\//i.test(text)) return isBenignUrl(text);
  if (isIPv4(text)) return isBenignIp(text);
  return BENIGN_TEXT.test(text);
}
