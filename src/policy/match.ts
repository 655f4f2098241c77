/**
 * Checks of a rule's `match` that need no schema library: the learner uses them on its output,
 * the schema on its input.
 */
import { hostGlobError } from './glob.js';
import { looksLikeNetwork, parseNetwork } from './ip.js';

/** A value as a person would name it in an error. */
export function describe(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return 'a list';
  return 'a mapping';
}

/** Error text for a `match`, or null when it is a valid host glob, IP address or CIDR. */
export function matchError(match: string): string | null {
  if (match.trim() !== match) return `match ${describe(match)} has spaces around it`;
  if (looksLikeNetwork(match) && !match.includes('://') && !/^[^:]+:\d+$/.test(match)) {
    const net = parseNetwork(match);
    if (typeof net === 'string') {
      const kind = match.includes('/') ? 'CIDR' : 'IP address';
      return `bad ${kind} ${describe(match)}: ${net}`;
    }
    return null;
  }
  const err = hostGlobError(match);
  return err === null ? null : `match ${describe(match)} ${err}`;
}
