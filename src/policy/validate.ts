/**
 * Validates one parsed policy file and turns the first problem (by position in the file) into
 * a one-line `FILE:LINE:COL: what (path)` error.
 */
import type { z } from 'zod';
import { describe } from './match.js';
import {
  KNOWN_KEYS,
  legacyPolicySchema,
  toPolicyDoc,
  v2PolicySchema,
  type PolicyDoc,
} from './schema.js';
import {
  formatPath,
  policyError,
  positionOf,
  type PathSegment,
  type PolicySource,
} from './source.js';

function valueAt(root: unknown, path: readonly PathSegment[]): unknown {
  let v = root;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[seg];
  }
  return v;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0] as number;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j] as number;
      row[j] = Math.min(
        (row[j] as number) + 1,
        (row[j - 1] as number) + 1,
        prev + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      prev = tmp;
    }
  }
  return row[b.length] as number;
}

function suggestion(key: string, known: readonly string[]): string {
  const close = known.find((k) => editDistance(key.toLowerCase(), k) <= 2);
  return close ? `; did you mean "${close}"?` : `; known keys: ${known.join(', ')}`;
}

/** "rule 3: " for a path inside rules[2], else "". */
function rulePrefix(path: readonly PathSegment[]): string {
  return path[0] === 'rules' && typeof path[1] === 'number' ? `rule ${path[1] + 1} ` : '';
}

interface Problem {
  line: number;
  col: number;
  what: string;
  path: PathSegment[];
  /** A required key is absent, or a key is unknown: often the same mistake (a misspelt key). */
  kind?: 'missing' | 'unknown';
}

function describeIssue(src: PolicySource, issue: z.core.$ZodIssue): Problem {
  const path = issue.path.filter(
    (s): s is PathSegment => typeof s === 'string' || typeof s === 'number',
  );
  const prefix = rulePrefix(path);
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0] ?? '';
    const known =
      path.length === 0
        ? KNOWN_KEYS.policy
        : path[0] === 'defaults'
          ? KNOWN_KEYS.defaults
          : KNOWN_KEYS.rule;
    const where = prefix ? ` in ${prefix.trim()}` : path.length > 0 ? ` in ${path[0]}` : '';
    return {
      ...positionOf(src, path, key),
      what: `unknown key "${key}"${where}${suggestion(key, known)}`,
      path: [...path, key],
      kind: 'unknown',
    };
  }
  const pos = positionOf(src, path);
  if (issue.code === 'invalid_type') {
    const raw = valueAt(src.value, path);
    if (path.length === 2 && path[0] === 'rules') {
      return {
        ...pos,
        what: `${prefix}must be a mapping with match and action, got ${describe(raw)}`,
        path,
      };
    }
    if (raw === undefined) return { ...pos, what: `missing "${String(path.at(-1))}"`, path };
    const label = String(path.filter((s) => typeof s === 'string').at(-1) ?? 'policy');
    const names: Record<string, string> = { object: 'a mapping', array: 'a list', string: 'text' };
    const expected = names[issue.expected] ?? issue.expected;
    return { ...pos, what: `${label} must be ${expected}, got ${describe(raw)}`, path };
  }
  if (prefix === '') return { ...pos, what: issue.message, path };
  // "rule 3 has no match", "rule 3: unknown action ..."
  if (issue.message.startsWith('has no')) {
    return { ...pos, what: `${prefix}${issue.message}`, path, kind: 'missing' };
  }
  return { ...pos, what: `${prefix.trim()}: ${issue.message}`, path };
}

/** Validates a parsed file; throws TR_POLICY_INVALID naming the first problem's position. */
export function validatePolicy(src: PolicySource): PolicyDoc {
  const value = src.value;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw policyError(
      src.file,
      positionOf(src, []),
      `policy must be a YAML mapping (name, rules, defaults, ...), got ${value === null || value === undefined ? 'an empty document' : describe(value)}`,
    );
  }
  const version = (value as Record<string, unknown>).version;
  const format = version === undefined ? 'legacy' : 'v2';
  if (format === 'v2' && version !== 2) {
    throw policyError(
      src.file,
      positionOf(src, ['version']),
      `unsupported version ${describe(version)}; write "version: 2", or leave version out for a legacy file`,
      ['version'],
    );
  }
  const schema = format === 'v2' ? v2PolicySchema : legacyPolicySchema;
  const result = schema.safeParse(value);
  if (result.success) return toPolicyDoc(format, result.data);
  const all = result.error.issues.map((i) => describeIssue(src, i));
  // A misspelt key shows up as both "unknown key" and "has no ...": report the unknown key.
  const parent = (p: Problem) => formatPath(p.path.slice(0, -1));
  const misspelt = new Set(all.filter((p) => p.kind === 'unknown').map(parent));
  const problems = all.filter((p) => p.kind !== 'missing' || !misspelt.has(parent(p)));
  problems.sort((a, b) => a.line - b.line || a.col - b.col);
  const first = problems[0] as Problem;
  throw policyError(src.file, first, first.what, first.path);
}
