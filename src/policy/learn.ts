/**
 * The learner: from the destinations a program was seen to reach, a least-privilege `version: 2`
 * policy — one `allow` rule per distinct destination pattern, with the ports seen, and
 * `defaults: block`. Host names are generalised to their registrable domain using the Public
 * Suffix List (private section included, so one tenant of a shared platform is not widened to
 * every tenant): `api.openai.com` → `*.openai.com`, `foo.bar.co.uk` → `*.bar.co.uk`,
 * `mybucket.s3.amazonaws.com` stays as it is. An apex (`example.com`) is kept exact, since
 * `*.example.com` does not match it. Addresses are kept as they are.
 */
import { createRequire } from 'node:module';
import type * as Tldts from 'tldts';
import type * as Yaml from 'yaml';
import type { Action } from '../core/index.js';
import { canonicalIp, parseHostLiteral, parseIp } from './ip.js';
import { matchError } from './match.js';
import { normalizePath } from './path.js';

/** tldts (the Public Suffix List), loaded on first use: only learning needs it. */
let tldtsModule: typeof Tldts | undefined;
function tldts(): typeof Tldts {
  tldtsModule ??= createRequire(import.meta.url)('tldts') as typeof Tldts;
  return tldtsModule;
}

/** The YAML writer, loaded on first use like tldts. */
let yamlModule: typeof Yaml | undefined;
function yaml(): typeof Yaml {
  yamlModule ??= createRequire(import.meta.url)('yaml') as typeof Yaml;
  return yamlModule;
}

/** One destination as observed, with how many times (connections) it was seen. */
export interface ObservedDestination {
  /** Host name asked for (CONNECT target, SNI, DNS, or an IP literal); absent when unknown. */
  host?: string | null;
  /** Remote port; absent or 0 when unknown. */
  port?: number | null;
  /** Remote address, used when there is no host name. */
  ip?: string | null;
  /** Times seen; default 1. */
  count?: number;
}

export type LearnDefaultAction = Extract<Action, 'alert' | 'block' | 'kill'>;

export interface LearnOptions {
  /** Policy name; default `learned-policy`. */
  name?: string;
  description?: string;
  /** What happens to anything else; default `block`. */
  defaultAction?: LearnDefaultAction;
  /** Keep host names as observed instead of generalising them to their registrable domain. */
  exact?: boolean;
  /** A comment written above the YAML (each line prefixed with `#`). */
  comment?: string;
  /**
   * What the session's policy refused. A host name is not generalised to a pattern that would
   * also cover a refused host (it is kept as seen), and each refused request to a destination
   * that is otherwise allowed becomes a `block` rule for its method and path, ahead of the
   * `allow` rules: a learned policy never turns a refusal into an `allow`.
   */
  refused?: readonly RefusedDestination[];
  /**
   * Masks what a refused request's path must not show (a patient id, a session token), as
   * `[REDACTED:kind]` markers; each marker becomes `*` in the `block` rule's path glob, so the
   * policy file and the summary never hold the value and the rule still refuses that request.
   * Without it the path is kept as it was.
   */
  redactPath?: (path: string) => string;
}

/** A destination the session's policy refused; with `method` and `path`, one refused request. */
export interface RefusedDestination {
  host?: string | null;
  port?: number | null;
  ip?: string | null;
  method?: string;
  /** The request's path, without its query string. */
  path?: string;
}

/** A `block` rule carried over from a refused request. */
export interface LearnedRefusal {
  match: string;
  port: number | null;
  method: string;
  path: string;
  reason: string;
}

export interface LearnedRule {
  match: string;
  /** Ports seen, ascending; empty when some observation had no known port (any port). */
  ports: number[];
  /** Observations behind the rule. */
  count: number;
  /** The distinct host names (or addresses) that the pattern stands for, in order of first sight. */
  hosts: string[];
  reason: string;
}

export interface LearnedPolicy {
  name: string;
  description: string;
  defaultAction: LearnDefaultAction;
  rules: LearnedRule[];
  /** Refused requests kept as `block` rules, ahead of the `allow` rules. */
  refusals: LearnedRefusal[];
  /** Observations that gave no usable pattern (no host and no address, or an unusable name). */
  skipped: { destination: ObservedDestination; reason: string }[];
  /** The policy file. */
  yaml: string;
}

export const DEFAULT_LEARNED_NAME = 'learned-policy';
const HOSTS_IN_REASON = 5;

/**
 * The rule pattern for one destination, or null when it has none: an IP address as it is
 * (canonical text), a host name generalised to `*.<registrable domain>` (or kept when it is the
 * apex, a single label, or a public suffix itself), or kept exactly with `exact`.
 */
export function destinationPattern(
  host: string | null | undefined,
  ip?: string | null,
  opts: { exact?: boolean; refusedNames?: readonly string[] } = {},
): string | null {
  const h = normaliseHost(host ?? '');
  if (h === '') {
    const a = (ip ?? '').trim();
    const parsed = a === '' ? null : parseIp(a);
    return parsed === null ? null : canonicalIp(parsed, a);
  }
  const literal = parseHostLiteral(h);
  // A name that is an address (any form a resolver accepts): its canonical text, which the
  // evaluator compares with the address the connection goes to.
  if (literal !== null) return canonicalIp(literal, h);
  let pattern = opts.exact ? h : generalise(h);
  // A pattern that would also cover a refused name: the name as seen instead.
  if (pattern !== h && opts.refusedNames?.some((r) => r.endsWith(pattern.slice(1)))) pattern = h;
  return matchError(pattern) === null ? pattern : null;
}

function generalise(host: string): string {
  const domain = tldts().getDomain(host, { allowPrivateDomains: true });
  if (domain === null || domain === host || !host.endsWith(`.${domain}`)) return host;
  return `*.${domain}`;
}

function normaliseHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.endsWith('.')) h = h.slice(0, -1);
  return h;
}

interface Group {
  match: string;
  ports: Set<number>;
  anyPort: boolean;
  count: number;
  hosts: string[];
  first: number;
}

/** Builds the policy. Rules are ordered by how often they were seen, then by first sight. */
export function learnPolicy(
  observed: readonly ObservedDestination[],
  opts: LearnOptions = {},
): LearnedPolicy {
  const groups = new Map<string, Group>();
  const skipped: LearnedPolicy['skipped'] = [];
  const refused = opts.refused ?? [];
  const { refusals, covered } = refusalRules(refused, observed, opts.redactPath);
  // Names no pattern may cover: every refusal but the requests kept as `block` rules.
  const refusedNames = refused
    .filter((r) => !covered.has(r))
    .map((r) => normaliseHost(r.host ?? ''))
    .filter((h) => h !== '');
  observed.forEach((d, i) => {
    const match = destinationPattern(d.host, d.ip, { exact: opts.exact, refusedNames });
    if (match === null) {
      skipped.push({
        destination: d,
        reason: d.host ? `"${d.host}" is not a usable host name` : 'no host name or address',
      });
      return;
    }
    let g = groups.get(match);
    if (!g) {
      g = { match, ports: new Set(), anyPort: false, count: 0, hosts: [], first: i };
      groups.set(match, g);
    }
    const port = d.port ?? 0;
    if (Number.isInteger(port) && port >= 1 && port <= 65535) g.ports.add(port);
    else g.anyPort = true;
    const n = d.count ?? 1;
    g.count += Number.isFinite(n) && n >= 1 ? Math.floor(n) : 1;
    const shown = normaliseHost(d.host ?? '') || (d.ip ?? '').trim().toLowerCase();
    if (!g.hosts.includes(shown)) g.hosts.push(shown);
  });
  const rules = [...groups.values()]
    .sort((a, b) => b.count - a.count || a.first - b.first)
    .map((g): LearnedRule => ({
      match: g.match,
      ports: g.anyPort ? [] : [...g.ports].sort((a, b) => a - b),
      count: g.count,
      hosts: g.hosts,
      reason: reasonFor(g),
    }));
  const name = opts.name?.trim() || DEFAULT_LEARNED_NAME;
  const description =
    opts.description ??
    `Auto-learned policy with ${rules.length} allowed endpoint${rules.length === 1 ? '' : 's'}`;
  const defaultAction = opts.defaultAction ?? 'block';
  const yaml = toYaml({ name, description, defaultAction, rules, refusals }, opts.comment);
  return { name, description, defaultAction, rules, refusals, skipped, yaml };
}

/**
 * The refused requests whose host and port were also reached: the `allow` rule learned for
 * that destination would cover them, so each (method, path) becomes a `block` rule of its own.
 */
function refusalRules(
  refused: readonly RefusedDestination[],
  observed: readonly ObservedDestination[],
  redactPath: (path: string) => string = (p) => p,
): { refusals: LearnedRefusal[]; covered: Set<RefusedDestination> } {
  const key = (host: string | null | undefined, ip: string | null | undefined, port: unknown) =>
    `${normaliseHost(host ?? '') || (ip ?? '').trim().toLowerCase()} ${Number(port) || 0}`;
  const reached = new Set(observed.map((d) => key(d.host, d.ip, d.port)));
  const out = new Map<string, LearnedRefusal>();
  const covered = new Set<RefusedDestination>();
  for (const r of refused) {
    if (r.method === undefined || r.path === undefined) continue;
    if (!reached.has(key(r.host, r.ip, r.port))) continue;
    const match = destinationPattern(r.host, r.ip, { exact: true });
    if (match === null) continue;
    const method = r.method.toUpperCase();
    // The path as the policy reads it, its glob characters taken literally, what it must not
    // show as `*`.
    const path = redactPath(normalizePath(r.path))
      .split(MARKER)
      .map((piece, i) => (i % 2 === 1 ? '*' : literalGlob(piece)))
      .join('');
    const port = Number.isInteger(r.port) && r.port! >= 1 && r.port! <= 65535 ? r.port! : null;
    const k = `${match} ${port} ${method} ${path}`;
    covered.add(r);
    if (!out.has(k)) {
      out.set(k, {
        match,
        port,
        method,
        path,
        reason: `Refused in the learned session: ${method} ${path}`,
      });
    }
  }
  return { refusals: [...out.values()], covered };
}

/** A redaction marker, `[REDACTED:ssn]` (captured: split keeps it at the odd places). */
const MARKER = /(\[REDACTED:[a-z][a-z0-9-]*\])/;

/** A path as a glob that matches only itself: `*`, `?`, `[` and `]` become one-character sets. */
function literalGlob(path: string): string {
  return path.replace(/[*?[\]]/g, (c) => `[${c}]`);
}

function reasonFor(g: Group): string {
  let reason = `Learned: seen ${g.count} time(s)`;
  if (g.hosts.length > 1 || g.hosts[0] !== g.match) {
    const names = g.hosts.slice(0, HOSTS_IN_REASON).join(', ');
    const more = g.hosts.length - HOSTS_IN_REASON;
    reason += ` (${names}${more > 0 ? `, and ${more} more` : ''})`;
  }
  return reason;
}

function toYaml(
  p: Pick<LearnedPolicy, 'name' | 'description' | 'defaultAction' | 'rules' | 'refusals'>,
  comment?: string,
): string {
  const { Document, isSeq } = yaml();
  const doc = new Document({
    version: 2,
    name: p.name,
    description: p.description,
    rules: [
      ...p.refusals.map((r) => ({
        match: r.match,
        action: 'block',
        ...(r.port !== null ? { ports: [r.port] } : {}),
        methods: [r.method],
        paths: [r.path],
        reason: r.reason,
      })),
      ...p.rules.map((r) => ({
        match: r.match,
        action: 'allow',
        ...(r.ports.length > 0 ? { ports: r.ports } : {}),
        reason: r.reason,
      })),
    ],
    defaults: { action: p.defaultAction },
  });
  [...p.refusals, ...p.rules].forEach((_, i) => {
    for (const key of ['ports', 'methods', 'paths']) {
      const list = doc.getIn(['rules', i, key], true);
      if (isSeq(list)) list.flow = true;
    }
  });
  if (comment) {
    doc.commentBefore = comment
      .split('\n')
      .map((line) => ` ${line}`)
      .join('\n');
  }
  return doc.toString({ lineWidth: 0 });
}
