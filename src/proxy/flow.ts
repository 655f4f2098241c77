import type { Outcome, Verdict } from '../core/index.js';
import type { ClientIdentity } from './types.js';
import type { Destination } from './resolve.js';

/**
 * What the proxy knows about one client connection to a destination: a CONNECT tunnel, or a
 * plain-HTTP proxy request. Every request inside a tunnel is checked against this identity.
 */
export interface Tunnel {
  /** The connection record's id; null for plain-HTTP proxy requests. */
  connectionId: string | null;
  scheme: 'http' | 'https';
  host: string;
  port: number;
  dest: Destination;
  clientAddr: string;
  clientPort: number;
  client: ClientIdentity | null;
  /** The verdict taken at CONNECT time, or 'per-request' when method/path rules decide. */
  verdict: Verdict | 'per-request' | null;
  startedAt: number;
  endedAt: number | null;
  /** Set once something went wrong with the whole connection. */
  failure: { outcome: Outcome; reason: string } | null;
  /**
   * A plain-HTTP request whose destination cannot be dialed (its name does not resolve, or it is
   * the proxy's own port): the request is still recorded and judged, then answered with this
   * instead of being forwarded.
   */
  unreachable?: { status: number; outcome: Outcome; reason: string; text: string };
}

/** A verdict that refuses: block or kill. */
export type Refusal = Verdict & { action: 'block' | 'kill' };

/** What a refusal's record says once it was carried out. */
export interface Enforced {
  outcome: 'blocked' | 'killed';
  reason: string;
}

export function isRefusal(v: Verdict | null): v is Refusal {
  return v !== null && (v.action === 'block' || v.action === 'kill');
}

/** The short text body of a policy refusal. */
export function refusalBody(v: Verdict): string {
  return `Blocked by TrustRun policy${v.policy ? ` "${v.policy}"` : ''}: ${v.explanation}\n`;
}
