/** Shared vocabulary of TrustRun: capture levels, policy actions, verdicts, sessions. */

export const CAPTURE_LEVELS = ['metadata', 'headers', 'full'] as const;
export type CaptureLevel = (typeof CAPTURE_LEVELS)[number];

export const ACTIONS = ['allow', 'alert', 'block', 'kill'] as const;
export type Action = (typeof ACTIONS)[number];

/**
 * The outcome of checking one destination (or one request) against a policy.
 * Serialisable: it is stored with the record and shown by the CLI, the API and the UI.
 */
export interface Verdict {
  action: Action;
  /** true when the destination counts as a violation (alert, block, kill; legacy semantics differ). */
  violation: boolean;
  /** Index of the matching rule in the flattened rule list; null when the default applied. */
  ruleIndex: number | null;
  /** The rule's `match` text, or null when the default applied. */
  rule: string | null;
  /** The rule's own reason, or a generated one for the default. */
  reason: string;
  /** One sentence a person can read: which rule matched and why this action follows. */
  explanation: string;
  /** Name of the policy that decided, or null when there was no policy. */
  policy: string | null;
}

/** What a policy is asked about: a destination, and for decrypted traffic the request line. */
export interface Subject {
  host: string;
  port: number;
  /** The address the proxy connects (or the process connected) to, when known. */
  ip?: string | null;
  method?: string;
  /** Path without the query string. */
  path?: string;
}

export const SESSION_KINDS = ['proxy', 'run', 'watch', 'learn'] as const;
export type SessionKind = (typeof SESSION_KINDS)[number];

export const SESSION_STATUSES = ['running', 'completed', 'failed', 'interrupted'] as const;
export type SessionStatus = (typeof SESSION_STATUSES)[number];

/** Outcome of a proxied connection or request, as stored. */
export const OUTCOMES = [
  'ok',
  'blocked',
  'killed',
  'refused',
  'upstream_tls',
  'upstream_connect',
  'upstream_dns',
  'upstream_reset',
  'upstream_protocol',
  'upstream_timeout',
  'client_tls',
  'client_abort',
  'bad_request',
  'identity_mismatch',
  'loop',
  'store_unavailable',
  'error',
] as const;
export type Outcome = (typeof OUTCOMES)[number];
