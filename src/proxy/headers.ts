import { normalizeHost } from './resolve.js';

/** Headers that belong to one hop and are never forwarded. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect',
  'http2-settings',
]);

/** Turns Node's flat rawHeaders into pairs, in order, duplicates kept. */
export function pairs(raw: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i]!, raw[i + 1]!]);
  return out;
}

function connectionTokens(raw: string[]): Set<string> | null {
  let tokens: Set<string> | null = null;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === 'connection') {
      tokens ??= new Set();
      for (const t of raw[i + 1]!.split(',')) tokens.add(t.trim().toLowerCase());
    }
  }
  return tokens;
}

/** The request headers to send upstream, as a flat [name, value, ...] list. */
export function forwardRequestHeaders(raw: string[]): string[] {
  const extra = connectionTokens(raw);
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || extra?.has(lower)) continue;
    out.push(name, raw[i + 1]!);
  }
  return out;
}

/**
 * The response headers to send to the client from undici's raw header list (names and values
 * as buffers), as pairs (for the record) and as a flat list (for writeHead). Names are
 * lower-cased and repeated fields are grouped at their first position, as undici's header
 * object would give them, without building that object.
 */
export function forwardRawResponseHeaders(raw: (Buffer | string)[]): {
  pairs: [string, string][];
  flat: string[];
  /** The Transfer-Encoding values (not forwarded), joined and lower-cased; null: none. */
  transferEncoding: string | null;
} {
  const n = raw.length >> 1;
  const names: string[] = new Array<string>(n);
  const values: string[] = new Array<string>(n);
  let extra: Set<string> | null = null;
  let repeated = false;
  let te: string | null = null;
  for (let i = 0; i < n; i++) {
    const name = raw[2 * i]!.toString('latin1').toLowerCase();
    const value = raw[2 * i + 1]!.toString('latin1');
    names[i] = name;
    values[i] = value;
    if (name === 'connection') {
      extra ??= new Set();
      for (const t of value.split(',')) extra.add(t.trim().toLowerCase());
    } else if (name === 'transfer-encoding') {
      const v = value.trim().toLowerCase();
      te = te === null ? v : `${te}, ${v}`;
    }
    if (!repeated) {
      for (let j = 0; j < i; j++) {
        if (names[j] === name) {
          repeated = true;
          break;
        }
      }
    }
  }
  const p: [string, string][] = [];
  const flat: string[] = [];
  const transferEncoding = te === null ? null : te.replace(/\s*,\s*/g, ', ');
  const keep = (name: string) => !HOP_BY_HOP.has(name) && !extra?.has(name);
  if (!repeated) {
    for (let i = 0; i < n; i++) {
      const name = names[i]!;
      if (!keep(name)) continue;
      p.push([name, values[i]!]);
      flat.push(name, values[i]!);
    }
    return { pairs: p, flat, transferEncoding };
  }
  const grouped = new Map<string, string[]>();
  for (let i = 0; i < n; i++) {
    const list = grouped.get(names[i]!);
    if (list) list.push(values[i]!);
    else grouped.set(names[i]!, [values[i]!]);
  }
  for (const [name, list] of grouped) {
    if (!keep(name)) continue;
    for (const v of list) {
      p.push([name, v]);
      flat.push(name, v);
    }
  }
  return { pairs: p, flat, transferEncoding };
}

/** Parses `host[:port]` (IPv6 in brackets) as found in a Host header or a CONNECT target. */
export function parseAuthority(
  value: string,
  defaultPort: number | null,
): { host: string; port: number } | null {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]\s/@]+)(?::(\d{1,5}))?$/.exec(value.trim());
  if (!m) return null;
  const port = m[2] === undefined ? defaultPort : Number(m[2]);
  if (port === null || !(port >= 1 && port <= 65535)) return null;
  return { host: normalizeHost(m[1]!), port };
}

/** Counts how many times a header appears in rawHeaders. */
export function headerCount(raw: string[], lowerName: string): number {
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === lowerName) n++;
  return n;
}

/** A Content-Length value as a number, or null when absent or not a plain decimal. */
export function contentLength(value: string | undefined): number | null {
  if (value === undefined || !/^\d{1,15}$/.test(value)) return null;
  return Number(value);
}
