/**
 * The evaluator. Rules are compiled once into indexes that keep first-match-wins order:
 * literal hosts in a map, `*.suffix` globs in a map probed once per label of the host, other
 * globs bucketed by their literal last label, networks in one map per prefix length. An
 * evaluation probes each index and keeps the lowest rule index that fully matches.
 */
import type { Action, CaptureLevel, Subject, Verdict } from '../core/index.js';
import { compileHostGlob, compilePathGlobs, isLiteral } from './glob.js';
import {
  V4_MASKS,
  canonicalIp,
  looksLikeNetwork,
  parseHostLiteral,
  parseIp,
  parseNetwork,
  sameIp,
  v6Key,
  type Ip,
} from './ip.js';
import { broadPath, broadPattern, normalizePath } from './path.js';
import type { CompiledPolicy, FlatRule, PolicyFormat } from './types.js';
import { defaultVerdict, ruleVerdict } from './verdict.js';

interface RuleState {
  readonly ports: readonly number[] | null;
  readonly methods: readonly string[] | null;
  readonly paths: RegExp | null;
  /** The same globs read the broad way (path.ts), for the broad reading of a request's path. */
  readonly broadPaths: RegExp | null;
  /** An allow rule: its paths must match both readings of a path, any other rule either. */
  readonly allow: boolean;
  /** Has methods or paths: decided only on a decrypted request. */
  readonly request: boolean;
  /** From a legacy file: a network rule looks at the connected address only. */
  readonly legacy: boolean;
  /** For globs that are neither literal nor `*.suffix`. */
  readonly glob: RegExp | null;
  readonly verdict: Verdict;
}

interface Net4Table {
  readonly mask: number;
  readonly map: Map<number, number[]>;
}

interface Net6Table {
  readonly len: number;
  readonly map: Map<string, number[]>;
}

/** Lowest rule index in each index, so a probe that cannot beat the best match is skipped. */
interface Lowest {
  exact: number;
  suffix: number;
  byLabel: number;
  anyGlob: number;
  net4: number;
  net6: number;
}

/**
 * Whether a host glob could match an address's text (digits, hex letters, dots): true when
 * its literal characters (outside [sets]) are all of those. `1.2.3.*` can; `*.openai.com` cannot.
 */
function couldMatchAddressText(pattern: string): boolean {
  return /^[0-9a-f.*?]*$/.test(pattern.replace(/\[[^\]]*\]/g, ''));
}

interface Query {
  port: number;
  method: string | null;
  path: string | null;
  /** The broad reading of the path (path.ts). */
  broadPath: string | null;
  /** CONNECT time: methods/paths are not checked (a request rule counts as a match). */
  connect: boolean;
}

function push<K>(map: Map<K, number[]>, key: K, index: number): void {
  const list = map.get(key);
  if (list) list.push(index);
  else map.set(key, [index]);
}

function normalizeHost(host: string): string {
  let h = host.toLowerCase();
  if (h.endsWith('.')) h = h.slice(0, -1);
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  return h;
}

class Evaluator {
  private readonly states: RuleState[] = [];
  /** Whether any rule has `paths` (otherwise a request's path is never read). */
  private pathRules = false;
  private readonly exact = new Map<string, number[]>();
  private readonly suffix = new Map<string, number[]>();
  private readonly byLabel = new Map<string, number[]>();
  private readonly anyGlob: number[] = [];
  private readonly net4: Net4Table[] = [];
  private readonly net6: Net6Table[] = [];
  private readonly lowest: Lowest = {
    exact: Infinity,
    suffix: Infinity,
    byLabel: Infinity,
    anyGlob: Infinity,
    net4: Infinity,
    net6: Infinity,
  };
  /** Whether any network rule from a version 2 file exists (host literals then matter). */
  private hostLiteralRules = false;
  /** Whether some host glob could match an address's text (legacy `1.2.3.*` rules). */
  private addressTextRules = false;
  private readonly defaultVerdict: Verdict;

  constructor(rules: readonly FlatRule[], dflt: Verdict, policyName: string, topFile: string) {
    this.defaultVerdict = dflt;
    const nets4 = new Map<number, Map<number, number[]>>();
    const nets6 = new Map<number, Map<string, number[]>>();
    const lowest = (key: keyof Lowest, i: number) => {
      if (i < this.lowest[key]) this.lowest[key] = i;
    };
    for (const rule of rules) {
      const i = rule.index;
      const legacy = rule.format === 'legacy';
      let glob: RegExp | null = null;
      const m = rule.match.toLowerCase();
      if (looksLikeNetwork(m)) {
        const net = parseNetwork(m);
        if (typeof net === 'string') throw new Error(`unvalidated match ${rule.match}`);
        if (net.v === 4) {
          const table = nets4.get(net.len) ?? new Map<number, number[]>();
          nets4.set(net.len, table);
          push(table, net.net, i);
          lowest('net4', i);
        } else {
          const table = nets6.get(net.len) ?? new Map<string, number[]>();
          nets6.set(net.len, table);
          push(table, v6Key(net.net, net.len), i);
          lowest('net6', i);
        }
        if (!legacy) this.hostLiteralRules = true;
      } else {
        if (couldMatchAddressText(m)) this.addressTextRules = true;
        if (isLiteral(m)) {
          push(this.exact, m, i);
          lowest('exact', i);
        } else if (m.startsWith('*.') && isLiteral(m.slice(2))) {
          push(this.suffix, m.slice(2), i);
          lowest('suffix', i);
        } else {
          glob = compileHostGlob(m);
          const dot = m.lastIndexOf('.');
          const label = dot < 0 ? '' : m.slice(dot + 1);
          if (/^[a-z0-9_-]+$/.test(label)) {
            push(this.byLabel, label, i);
            lowest('byLabel', i);
          } else {
            this.anyGlob.push(i);
            lowest('anyGlob', i);
          }
        }
      }
      if (rule.paths.length > 0) this.pathRules = true;
      this.states.push({
        ports: rule.ports.length > 0 ? rule.ports : null,
        methods: rule.methods.length > 0 ? rule.methods : null,
        paths: rule.paths.length > 0 ? compilePathGlobs(rule.paths) : null,
        broadPaths: rule.paths.length > 0 ? compilePathGlobs(rule.paths.map(broadPattern)) : null,
        allow: rule.action === 'allow',
        request: rule.methods.length > 0 || rule.paths.length > 0,
        legacy,
        glob,
        verdict: ruleVerdict(rule, policyName, topFile),
      });
    }
    for (const [len, map] of [...nets4].sort((a, b) => b[0] - a[0])) {
      this.net4.push({ mask: V4_MASKS[len] as number, map });
    }
    for (const [len, map] of [...nets6].sort((a, b) => b[0] - a[0])) {
      this.net6.push({ len, map });
    }
  }

  private ok(i: number, q: Query, v2only: boolean): boolean {
    const r = this.states[i] as RuleState;
    if (v2only && r.legacy) return false;
    if (r.ports !== null && !r.ports.includes(q.port)) return false;
    if (q.connect || !r.request) return true;
    if (r.methods !== null && (q.method === null || !r.methods.includes(q.method))) return false;
    if (r.paths !== null) {
      if (q.path === null || q.broadPath === null) return false;
      const strict = r.paths.test(q.path);
      const broad = (r.broadPaths as RegExp).test(q.broadPath);
      if (r.allow ? !(strict && broad) : !(strict || broad)) return false;
    }
    return true;
  }

  private scan(list: readonly number[], best: number, q: Query, v2only: boolean): number {
    for (let k = 0; k < list.length; k++) {
      const i = list[k] as number;
      if (i >= best) break;
      if (this.ok(i, q, v2only)) return i;
    }
    return best;
  }

  private scanGlobs(list: readonly number[], best: number, q: Query, s: string): number {
    for (let k = 0; k < list.length; k++) {
      const i = list[k] as number;
      if (i >= best) break;
      if (this.ok(i, q, false) && (this.states[i] as RuleState).glob!.test(s)) return i;
    }
    return best;
  }

  /** Host-glob rules against a host name (or an address's text). */
  private byName(s: string, best: number, q: Query): number {
    const low = this.lowest;
    if (best > low.exact) {
      const exact = this.exact.get(s);
      if (exact !== undefined) best = this.scan(exact, best, q, false);
    }
    if (best > low.suffix) {
      for (let p = s.indexOf('.'); p >= 0; p = s.indexOf('.', p + 1)) {
        const list = this.suffix.get(s.slice(p + 1));
        if (list !== undefined) best = this.scan(list, best, q, false);
      }
    }
    if (best > low.byLabel) {
      const list = this.byLabel.get(s.slice(s.lastIndexOf('.') + 1));
      if (list !== undefined) best = this.scanGlobs(list, best, q, s);
    }
    if (best > low.anyGlob) best = this.scanGlobs(this.anyGlob, best, q, s);
    return best;
  }

  private byAddress(ip: Ip, best: number, q: Query, v2only: boolean): number {
    if (ip.v === 4) {
      if (best <= this.lowest.net4) return best;
      for (const t of this.net4) {
        const list = t.map.get((ip.n & t.mask) >>> 0);
        if (list !== undefined) best = this.scan(list, best, q, v2only);
      }
    } else {
      if (best <= this.lowest.net6) return best;
      for (const t of this.net6) {
        const list = t.map.get(v6Key(ip.w, t.len));
        if (list !== undefined) best = this.scan(list, best, q, v2only);
      }
    }
    return best;
  }

  /** Index of the first rule that matches, or -1. */
  first(subject: Subject, connect: boolean): number {
    const host = subject.host ? normalizeHost(subject.host) : '';
    const ipText = subject.ip ?? '';
    const ip = ipText === '' ? null : parseIp(ipText);
    // Read only when a rule looks at paths (a plain-HTTP request is judged with its path always).
    const withPath = this.pathRules && subject.path !== undefined && subject.path !== '';
    const q: Query = {
      port: subject.port,
      method: subject.method ? subject.method.toUpperCase() : null,
      path: withPath ? normalizePath(subject.path as string) : null,
      broadPath: withPath ? broadPath(subject.path as string) : null,
      connect,
    };
    let best = Number.MAX_SAFE_INTEGER;
    if (host !== '') best = this.byName(host, best, q);
    if (ip !== null) {
      if (this.addressTextRules) {
        const text = canonicalIp(ip, ipText);
        if (text !== host) best = this.byName(text, best, q);
      }
      best = this.byAddress(ip, best, q, false);
    }
    if (this.hostLiteralRules && host !== '') {
      const literal = parseHostLiteral(host);
      if (literal !== null && (ip === null || !sameIp(literal, ip))) {
        best = this.byAddress(literal, best, q, true);
      }
    }
    return best === Number.MAX_SAFE_INTEGER ? -1 : best;
  }

  evaluate(subject: Subject): Verdict {
    const i = this.first(subject, false);
    return i < 0 ? this.defaultVerdict : (this.states[i] as RuleState).verdict;
  }

  evaluateConnect(subject: Subject): Verdict | 'per-request' {
    const i = this.first(subject, true);
    if (i < 0) return this.defaultVerdict;
    const state = this.states[i] as RuleState;
    return state.request ? 'per-request' : state.verdict;
  }
}

export interface PolicyParts {
  name: string | null;
  format: PolicyFormat;
  captureLevel: CaptureLevel | null;
  files: string[];
  rules: FlatRule[];
  defaultAction: Action;
}

/** Builds the evaluator for a flattened policy. */
export function compilePolicy(parts: PolicyParts): CompiledPolicy {
  const topFile = parts.files[0] ?? '';
  const shownName = parts.name ?? (topFile.split(/[\\/]/).pop() || 'policy');
  const rules = parts.rules.map((r) =>
    Object.freeze({
      ...r,
      ports: Object.freeze([...r.ports]),
      methods: Object.freeze([...r.methods]),
      paths: Object.freeze([...r.paths]),
    }),
  ) as unknown as FlatRule[];
  Object.freeze(rules);
  const evaluator = new Evaluator(
    rules,
    defaultVerdict(parts.defaultAction, parts.format, shownName),
    shownName,
    topFile,
  );
  return Object.freeze({
    name: parts.name,
    shownName,
    format: parts.format,
    captureLevel: parts.captureLevel,
    files: Object.freeze([...parts.files]) as unknown as string[],
    rules,
    defaultAction: parts.defaultAction,
    hasRequestRules: rules.some((r) => r.methods.length > 0 || r.paths.length > 0),
    evaluate: (subject: Subject) => evaluator.evaluate(subject),
    evaluateConnect: (subject: Subject) => evaluator.evaluateConnect(subject),
  });
}
