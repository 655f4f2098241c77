import { isBenignLiteral } from '../endpoint.js';
import { RULES } from '../rules.js';
import type { Hit, PatternName } from '../types.js';

/**
 * What a language analyzer returns: its own hits, and which of the probed offsets (where
 * universal patterns found endpoints) lie in comments or docstrings.
 */
export interface AnalyzerResult {
  hits: Hit[];
  commented: Set<number>;
}

export function makeHit(
  pattern: PatternName,
  start: number,
  end: number,
  text: string,
  endpoint: string | null,
  extra: Partial<Hit> = {},
): Hit {
  return { pattern, severity: RULES[pattern].severity, start, end, text, endpoint, ...extra };
}

const MAX_TEXT = 200;

/** Schemes that make a string literal a URL literal. */
export const URL_SCHEMES = /^(?:https?|wss?|ftp):\/\//i;

export function shorten(s: string): string {
  return s.length > MAX_TEXT ? s.slice(0, MAX_TEXT - 1) + '…' : s;
}

/**
 * The endpoint a string literal names, given its static text before the first interpolation
 * (`head`) and whether there was one: the whole URL, or its static head when that already
 * holds the complete host (`f"https://api.x.com/{path}"`). Null when it names none or a
 * benign one.
 */
export function urlLiteralEndpoint(head: string, interpolated: boolean): string | null {
  if (!URL_SCHEMES.test(head)) return null;
  let endpoint = head;
  if (interpolated) {
    const m = /^[a-z]+:\/\/[^/?#:@\s]+(?=[/?#:])/i.exec(head);
    if (!m) return null;
    endpoint = m[0];
  }
  return isBenignLiteral(endpoint) ? null : endpoint;
}

/** A string argument value used as an endpoint (`host="db.internal"`), unless benign. */
export function endpointArgument(value: string): string | null {
  if (value.trim() === '' || /\s/.test(value.trim())) return null;
  return isBenignLiteral(value) ? null : value;
}

/**
 * Python's repr() of a str for display: single quotes unless the value holds one. The value
 * is the literal's source text, so its escapes are already written out.
 */
export function pyRepr(value: string): string {
  if (value.includes("'") && !value.includes('"')) return `"${value}"`;
  return `'${value.replace(/(?<!\\)'/g, "\\'")}'`;
}
