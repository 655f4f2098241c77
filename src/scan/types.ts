import type { Action, Subject, Verdict } from '../core/index.js';

/** Severities, lowest first. */
export const SEVERITIES = ['info', 'warning', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

export function severityRank(s: Severity): number {
  return SEVERITIES.indexOf(s);
}

export function maxSeverity(a: Severity, b: Severity): Severity {
  return severityRank(a) >= severityRank(b) ? a : b;
}

/** Every pattern the scanner knows; a finding lists the ones that matched its literal. */
export const PATTERN_NAMES = [
  // universal: secrets
  'private_key',
  'aws_access_key',
  'azure_connection_string',
  'openai_api_key',
  'github_token',
  'google_api_key',
  'slack_token',
  'slack_webhook',
  'jwt',
  'generic_api_key',
  // universal: endpoints
  'database_url',
  'url',
  'ip_literal',
  // Python
  'python_endpoint_kwarg',
  'python_url_literal',
  'python_network_call',
  // JavaScript / TypeScript
  'js_endpoint_property',
  'js_url_literal',
  'js_network_call',
  // R
  'r_connection_string',
  'r_endpoint_argument',
  'r_url_literal',
  'r_network_call',
] as const;
export type PatternName = (typeof PATTERN_NAMES)[number];

/** Which analyzer read a file; '' is the generic (patterns only) analyzer. */
export type Language = 'python' | 'javascript' | 'typescript' | 'r' | '';

/**
 * One pattern matching at one place, before hits on the same literal are merged into a
 * finding. Offsets are UTF-16 code units into the file's text (as JavaScript strings count).
 */
export interface Hit {
  pattern: PatternName;
  severity: Severity;
  start: number;
  end: number;
  /** What matched, as shown (secrets are masked before anything leaves the scanner). */
  text: string;
  /** The destination the hit names (URL, host, IP), or null. */
  endpoint: string | null;
  /** A port known from the code around the hit (e.g. a sibling `port=` argument). */
  port?: number;
  /** Ranges (absolute offsets) holding secret material: masked in text and context. */
  masks?: Array<[number, number]>;
}

/** Where a finding's destination points, as given to the policy. */
export interface Destination {
  host: string;
  /** 0 when the code does not say (a bare host name). */
  port: number;
  /** The address when the host is an IP literal, else null. */
  ip: string | null;
}

/** One pattern's own view of a finding (its position and text), kept for every pattern. */
export interface PatternMatch {
  pattern: PatternName;
  severity: Severity;
  line: number;
  column: number;
  text: string;
}

/** The policy's word on a finding's destination. */
export interface FindingVerdict {
  action: Action;
  violation: boolean;
  rule: string | null;
  ruleIndex: number | null;
  reason: string;
  explanation: string;
  policy: string | null;
}

/**
 * One finding: one literal (or call site) in one file, with every pattern that matched it.
 * Serialisable as it is, so a scan can be stored and shown later.
 */
export interface Finding {
  id: string;
  /** Path relative to the scanned directory, with '/' separators. */
  file: string;
  /** 1-based line and column (UTF-16 code units) of the primary match. */
  line: number;
  column: number;
  endLine: number;
  endColumn: number;
  /** The primary pattern (the most specific one that matched). */
  kind: PatternName;
  /** Every pattern that matched this literal, primary first. */
  patterns: PatternName[];
  matches: PatternMatch[];
  /** Severity after the policy (if any). */
  severity: Severity;
  /** Severity from the patterns alone. */
  baseSeverity: Severity;
  /** The primary match's text; secrets masked. */
  text: string;
  /** The source line, trimmed (and shortened around the match when long); secrets masked. */
  context: string;
  endpoint: string | null;
  destination: Destination | null;
  language: Language;
  /** Stable across runs and line moves: hash of file, kind, matched text and occurrence. */
  fingerprint: string;
  verdict: FindingVerdict | null;
}

export type SkipReason = 'too_large' | 'unreadable' | 'binary';

export interface SkippedFile {
  file: string;
  reason: SkipReason;
  size?: number;
}

export interface ScanResult {
  id: string;
  /** Absolute, resolved directory that was scanned. */
  root: string;
  startedAt: string;
  durationMs: number;
  policy: string | null;
  filesScanned: number;
  filesSkipped: number;
  bytesScanned: number;
  skipped: SkippedFile[];
  findings: Finding[];
  counts: Record<Severity, number>;
}

/** How the scanner asks a policy about a destination (the policy module's `evaluate`). */
export type Evaluate = (subject: Subject) => Verdict;

export interface PolicyAdapter {
  name: string | null;
  evaluate: Evaluate;
}
