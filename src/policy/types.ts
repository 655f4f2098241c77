import type { Action, CaptureLevel, Subject, Verdict } from '../core/index.js';

/** `v2`: a file with `version: 2`. `legacy`: a file of the earlier tool (no `version`). */
export type PolicyFormat = 'v2' | 'legacy';

/** One rule of the flattened list (own rules first, then inherited ones), as data. */
export interface FlatRule {
  /** Position in the flattened list, from 0 (a verdict's `ruleIndex`). */
  index: number;
  /** Host glob, IP address or CIDR, as written. */
  match: string;
  action: Action;
  /** The rule's reason; '' when it gives none. */
  reason: string;
  /** Ports the rule applies to; empty = any port. */
  ports: number[];
  /** Request methods (upper case) the rule applies to; empty = any (and no decryption needed). */
  methods: string[];
  /** Request path globs the rule applies to; empty = any. */
  paths: string[];
  /** The file the rule was written in (`preset:NAME` for a preset). */
  source: string;
  /** Line of the rule in its file. */
  line: number;
  /** Dialect of the rule's file; it decides what a matched `alert` means. */
  format: PolicyFormat;
}

export interface CompiledPolicy {
  /** The policy's `name`, or null when the file gives none (legacy files: "unnamed"). */
  name: string | null;
  /** What the policy is called where one is shown: its `name`, or its file's name. */
  shownName: string;
  format: PolicyFormat;
  /** `capture_level` of the top file, or null when it sets none (the CLI default applies). */
  captureLevel: CaptureLevel | null;
  /** Every file loaded, the top file first (presets as `preset:NAME`). */
  files: string[];
  rules: FlatRule[];
  defaultAction: Action;
  /** true when some rule has `methods` or `paths` (needs a decrypted request to decide). */
  hasRequestRules: boolean;
  /** The verdict for a destination, or for one request when `method`/`path` are set. */
  evaluate(subject: Subject): Verdict;
  /**
   * The verdict at CONNECT time, or 'per-request' when a rule with methods/paths could decide
   * for this host/port/ip before any rule without them does.
   */
  evaluateConnect(subject: Subject): Verdict | 'per-request';
}

export interface LoadOptions {
  /** Receives the one-line notice about legacy files; default: stderr. */
  warn?: (msg: string) => void;
  /**
   * Inherited files must lie inside this directory (after following links), or the load fails
   * without reading them. Set for policies written through the API, whose author need not be
   * able to read the machine's files.
   */
  inheritWithin?: string;
}
