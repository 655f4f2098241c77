import type {
  Action,
  CaptureLevel,
  Logger,
  Outcome,
  SessionKind,
  SessionStatus,
  Verdict,
} from '../core/index.js';

export type ConnectionMode = 'tunnel' | 'intercept' | 'http';
export const CONNECTION_MODES: readonly ConnectionMode[] = ['tunnel', 'intercept', 'http'];

export type HeaderList = [string, string][];

export interface StoreOptions {
  dataDir: string;
  /** Derive the master key from this passphrase (Argon2id); defaults to $TRUSTRUN_PASSPHRASE. */
  passphrase?: string;
  logger?: Logger;
  /** Most operations committed in one transaction (default 256). */
  batchMax?: number;
  /** How long a write waits for another process's lock before failing (default 2000 ms). */
  busyTimeoutMs?: number;
  /**
   * Most bytes of sealed bodies kept queued while commits fail, e.g. on a full disk (default
   * 64 MiB); beyond it the oldest bodies are dropped (their records kept) and reported.
   */
  maxRetainedBytes?: number;
}

export interface SessionInput {
  kind: SessionKind;
  command?: string[] | null;
  policy?: string | null;
  level: CaptureLevel;
  listen?: string | null;
}

export interface SessionRow {
  id: string;
  kind: SessionKind;
  command: string[] | null;
  policy: string | null;
  level: CaptureLevel;
  listen: string | null;
  /** The TrustRun process that owns the session. */
  pid: number | null;
  startedAt: number;
  endedAt: number | null;
  status: SessionStatus;
  exitCode: number | null;
  /** When the session's data key was deleted; its sealed fields can no longer be opened. */
  shreddedAt: number | null;
  /** Records in the session: counted live while it runs, frozen when it ends. */
  counts: SessionCounts;
}

export interface SessionCounts {
  connections: number;
  requests: number;
  violations: number;
  monitorEvents: number;
}

/** A session as `getSession` returns it: its counts are always counted live. */
export type SessionDetail = SessionRow;

export interface SessionEnd {
  status: SessionStatus;
  exitCode?: number | null;
}

export interface ConnectionInput {
  sessionId: string;
  /** Milliseconds since the epoch. */
  startedAt: number;
  clientAddr: string;
  clientPort: number;
  pid?: number | null;
  exe?: string | null;
  host: string;
  port: number;
  ip?: string | null;
  sni?: string | null;
  alpn?: string | null;
  mode: ConnectionMode;
}

/** Fields left out (or undefined) keep their stored value; `verdict: null` clears the verdict. */
export interface ConnectionPatch {
  ip?: string | null;
  sni?: string | null;
  alpn?: string | null;
  bytesUp?: number | null;
  bytesDown?: number | null;
  endedAt?: number | null;
  outcome?: Outcome | null;
  reason?: string | null;
  verdict?: Verdict | null;
}

export interface ConnectionRow {
  id: string;
  sessionId: string;
  startedAt: number;
  endedAt: number | null;
  clientAddr: string | null;
  clientPort: number | null;
  pid: number | null;
  exe: string | null;
  host: string;
  port: number;
  ip: string | null;
  sni: string | null;
  alpn: string | null;
  mode: ConnectionMode;
  bytesUp: number;
  bytesDown: number;
  outcome: Outcome | null;
  reason: string | null;
  verdictAction: Action | null;
  verdictRule: string | null;
  violation: boolean;
}

export interface RequestInput {
  sessionId: string;
  connectionId: string | null;
  startedAt: number;
  method: string;
  scheme: 'http' | 'https';
  host: string;
  port: number;
  /** Path and query: sealed. */
  url: string;
  /** Sealed. */
  requestHeaders: HeaderList;
  verdict: Verdict | null;
  pid?: number | null;
  exe?: string | null;
}

/** A body as captured: at most --max-body bytes of it, and the size actually seen. */
export interface CapturedBody {
  /** The captured bytes, or those after the parts already written (see `parts`). */
  data: Buffer;
  truncated: boolean;
  size: number;
  /**
   * Parts of this body already written with `addBodyPart` (seq 0 to parts-1); `data` is what
   * follows them. 0 or absent: `data` is the whole captured body.
   */
  parts?: number;
}

/** The sealed body columns of a request, and the part table's `field` values. */
export type BodyField = 'request_body' | 'response_body';

/** Fields left out keep their stored value. */
export interface RequestCompletion {
  endedAt: number;
  status?: number | null;
  responseHeaders?: HeaderList | null;
  requestBody?: CapturedBody | null;
  responseBody?: CapturedBody | null;
  /** Bytes of the request body; defaults to requestBody.size. */
  requestSize?: number | null;
  /** Bytes of the response body; defaults to responseBody.size. */
  responseSize?: number | null;
  /** Defaults to endedAt - startedAt. */
  durationMs?: number | null;
  ttfbMs?: number | null;
  outcome: Outcome;
  reason?: string | null;
}

/** The clear columns of a request: what lists and filters show. */
export interface RequestRow {
  id: string;
  sessionId: string;
  connectionId: string | null;
  startedAt: number;
  endedAt: number | null;
  method: string;
  scheme: string;
  host: string;
  port: number;
  status: number | null;
  requestSize: number | null;
  responseSize: number | null;
  durationMs: number | null;
  ttfbMs: number | null;
  outcome: Outcome | null;
  reason: string | null;
  verdictAction: Action | null;
  verdictRule: string | null;
  violation: boolean;
  pid: number | null;
  exe: string | null;
  requestBodyTruncated: boolean;
  responseBodyTruncated: boolean;
}

/** A request with its sealed fields opened: raw, unredacted. */
export interface RequestDetail extends RequestRow {
  url: string;
  requestHeaders: HeaderList;
  responseHeaders: HeaderList | null;
  requestBody: Buffer | null;
  responseBody: Buffer | null;
  /** Set when the body is not all there: parts missing or never written (says which). */
  requestBodyNote?: string;
  responseBodyNote?: string;
}

export interface ViolationInput {
  sessionId: string;
  time: number;
  host: string;
  port: number;
  method?: string | null;
  verdict: Verdict;
  /** Whether the proxy refused the traffic (block, kill) or only recorded it (alert). */
  enforced: boolean;
  connectionId?: string | null;
  requestId?: string | null;
  /** The monitor event (a direct socket) the violation is about. */
  monitorEventId?: string | null;
}

export interface ViolationRow {
  id: string;
  sessionId: string;
  time: number;
  host: string;
  port: number;
  method: string | null;
  action: Action;
  rule: string | null;
  ruleIndex: number | null;
  reason: string;
  explanation: string;
  enforced: boolean;
  connectionId: string | null;
  requestId: string | null;
  monitorEventId: string | null;
}

export interface Page<T> {
  items: T[];
  /** Pass as `cursor` to get the next page; null on the last page. */
  nextCursor: string | null;
}

export interface PageQuery {
  /** 1..1000, default 100. */
  limit?: number;
  /** The id after which to continue (a previous page's nextCursor). */
  cursor?: string | null;
  /** By id (creation time): newest first by default. */
  order?: 'asc' | 'desc';
}

export interface TimeRange {
  /** Inclusive, milliseconds since the epoch. */
  since?: number;
  /** Exclusive. */
  until?: number;
}

export interface ConnectionQuery extends PageQuery, TimeRange {
  sessionId?: string;
  /** Host glob: case-insensitive, `*` crosses dots. */
  host?: string;
  violation?: boolean;
}

export interface RequestQuery extends PageQuery, TimeRange {
  sessionId?: string;
  /** Host glob: case-insensitive, `*` crosses dots. */
  host?: string;
  method?: string;
  status?: number;
  violation?: boolean;
}

export interface ViolationQuery extends PageQuery, TimeRange {
  sessionId?: string;
  host?: string;
  enforced?: boolean;
}

// ---- monitor events ----------------------------------------------------------------------------

export type MonitorProtocol = 'tcp' | 'udp';
export const MONITOR_PROTOCOLS: readonly MonitorProtocol[] = ['tcp', 'udp'];

/** A socket of the monitored process tree, seen by polling (a connection the proxy did not carry). */
export interface MonitorEventInput {
  sessionId: string;
  pid: number;
  exe?: string | null;
  protocol: MonitorProtocol;
  localAddr: string;
  localPort: number;
  /** The destination: stored in the clear, like a connection's host. */
  remoteAddr: string;
  remotePort: number;
  /** Socket state as the system names it (ESTABLISHED, SYN_SENT, ...). */
  state: string;
  /** Milliseconds since the epoch. */
  firstSeen: number;
  lastSeen: number;
  /** From the proxy's records, SNI, DNS or reverse DNS. */
  hostname?: string | null;
  /** Organisation owning the address (cloud provider, whois). */
  org?: string | null;
  verdict?: Verdict | null;
  /** Whether the verdict was carried out (the process tree was killed). */
  enforced?: boolean;
}

/** Fields left out (or undefined) keep their stored value; `verdict: null` clears the verdict. */
export interface MonitorEventPatch {
  lastSeen?: number;
  state?: string;
  hostname?: string | null;
  org?: string | null;
  verdict?: Verdict | null;
  enforced?: boolean;
}

export interface MonitorEventRow {
  id: string;
  sessionId: string;
  pid: number;
  exe: string | null;
  protocol: MonitorProtocol;
  localAddr: string;
  localPort: number;
  remoteAddr: string;
  remotePort: number;
  state: string;
  firstSeen: number;
  lastSeen: number;
  hostname: string | null;
  org: string | null;
  verdictAction: Action | null;
  verdictRule: string | null;
  violation: boolean;
  enforced: boolean;
}

export interface MonitorEventQuery extends PageQuery, TimeRange {
  sessionId?: string;
  pid?: number;
}

// ---- scans and findings ------------------------------------------------------------------------

export type FindingSeverity = 'info' | 'warning' | 'critical';
export const FINDING_SEVERITIES: readonly FindingSeverity[] = ['info', 'warning', 'critical'];

/** One run of the static scanner. Scans are not sessions: they have their own data key. */
export interface ScanInput {
  /** A time-ordered id made by core's newId (the scanner's own id); made here when absent. */
  id?: string;
  /** The directory scanned (absolute). */
  root: string;
  /** Milliseconds since the epoch. */
  startedAt: number;
  endedAt: number;
  /** Files scanned and files skipped. */
  files: number;
  skipped: number;
  /** Name of the policy the findings were checked against. */
  policy?: string | null;
  counts: Record<FindingSeverity, number>;
}

export interface ScanRow {
  id: string;
  root: string;
  startedAt: number;
  endedAt: number;
  files: number;
  skipped: number;
  policy: string | null;
  counts: Record<FindingSeverity, number>;
  /** Findings stored for the scan. */
  findings: number;
}

/** The policy's word on a finding's destination. */
export interface FindingVerdictInput {
  action: Action;
  violation: boolean;
  rule: string | null;
  reason: string;
}

export interface FindingInput {
  /** Path relative to the scanned directory. */
  file: string;
  line: number;
  column: number;
  /** The primary pattern. */
  kind: string;
  /** Every pattern that matched. */
  patterns?: string[];
  severity: FindingSeverity;
  /** The finding is secret material (a key, token, password): its value is never shown. */
  secret?: boolean;
  /** The matched text: sealed. */
  value: string;
  /** The source line around it: sealed. */
  context: string;
  /** The URL or host the finding names: sealed (a URL may carry a path and query). */
  endpoint?: string | null;
  /** The destination's host and port: clear, like a connection's. */
  host?: string | null;
  port?: number | null;
  fingerprint?: string | null;
  verdict?: FindingVerdictInput | null;
}

/** A finding as read: value, context and endpoint opened and redacted. */
export interface FindingRow {
  id: string;
  scanId: string;
  file: string;
  line: number;
  column: number;
  kind: string;
  patterns: string[];
  severity: FindingSeverity;
  secret: boolean;
  host: string | null;
  port: number | null;
  fingerprint: string | null;
  verdictAction: Action | null;
  verdictRule: string | null;
  verdictReason: string | null;
  violation: boolean;
  value: string;
  context: string;
  endpoint: string | null;
}

export interface ScanQuery extends PageQuery, TimeRange {
  /** Only scans of this directory. */
  root?: string;
}

/** Findings of one scan, in the order they were added unless `order` says otherwise. */
export interface FindingQuery extends PageQuery {
  scanId: string;
  severity?: FindingSeverity;
  kind?: string;
  file?: string;
  violation?: boolean;
}

export interface StoreStats {
  /** Transactions committed by the batching writer. */
  commits: number;
  /** Transactions that failed (disk full, locked, closed). */
  failedCommits: number;
  /** Operations written. */
  committedOps: number;
  /** Operations given up on (refused by a constraint, or over the retry cap). */
  droppedOps: number;
  /** Operations waiting for the next batch. */
  pending: number;
}

export type StoreErrorListener = (err: Error) => void;

export interface Store {
  /** False after a failed commit, until a commit succeeds. */
  readonly healthy: boolean;
  readonly stats: StoreStats;
  readonly dataDir: string;
  /** How the master key is held. */
  readonly keySource: 'file' | 'passphrase';

  startSession(s: SessionInput): SessionRow;
  endSession(id: string, end: SessionEnd): void;
  addConnection(c: ConnectionInput): string;
  updateConnection(id: string, patch: ConnectionPatch): void;
  /** Resolves with the id once the row is committed (audit before forward). */
  addRequest(r: RequestInput): Promise<string>;
  /**
   * Writes part `seq` of a long body while it streams (full level), sealed; `data` is copied
   * before this returns. The completion then names how many parts came before its `data`.
   */
  addBodyPart(requestId: string, field: BodyField, seq: number, data: Buffer): void;
  completeRequest(id: string, done: RequestCompletion): void;
  addViolation(v: ViolationInput): string;
  flush(): Promise<void>;
  close(): Promise<void>;
  /** Called with every write failure; returns a function that removes the listener. */
  onError(listener: StoreErrorListener): () => void;

  listSessions(q?: PageQuery): Page<SessionRow>;
  getSession(id: string): SessionDetail | null;
  listConnections(q?: ConnectionQuery): Page<ConnectionRow>;
  listRequests(q?: RequestQuery): Page<RequestRow>;
  getRequest(id: string): RequestDetail | null;
  listViolations(q?: ViolationQuery): Page<ViolationRow>;

  /** Queued like connections; returns the id at once. */
  addMonitorEvent(e: MonitorEventInput): string;
  updateMonitorEvent(id: string, patch: MonitorEventPatch): void;
  listMonitorEvents(q?: MonitorEventQuery): Page<MonitorEventRow>;

  /** Stores a scan (and its data key) at once; returns its id. */
  addScan(s: ScanInput): string;
  /** Stores findings of a scan in one transaction, value/context/endpoint sealed; returns their ids. */
  addFindings(scanId: string, findings: readonly FindingInput[]): string[];
  listScans(q?: ScanQuery): Page<ScanRow>;
  getScan(id: string): ScanRow | null;
  /** Findings with value, context and endpoint opened and redacted for display. */
  listFindings(q: FindingQuery): Page<FindingRow>;
  /** One finding opened raw (unredacted): for tools that must re-check the secret itself. */
  getFindingRaw(id: string): FindingRow | null;
  /** Deletes a scan, its findings and its data key. */
  purgeScan(id: string): Promise<void>;

  /** Deletes the session's data key: its sealed fields can never be opened again. */
  shredSession(id: string): Promise<void>;
  /** Deletes a finished session and everything recorded in it. */
  purgeSession(id: string): Promise<void>;
  /** Retention: purges finished sessions that ended before `endedBefore`; returns how many. */
  purgeSessions(q: { endedBefore: number }): Promise<number>;
}
