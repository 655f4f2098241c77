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
}

export interface SessionDetail extends SessionRow {
  counts: { connections: number; requests: number; violations: number };
}

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
  data: Buffer;
  truncated: boolean;
  size: number;
}

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

  /** Deletes the session's data key: its sealed fields can never be opened again. */
  shredSession(id: string): Promise<void>;
  /** Deletes a finished session and everything recorded in it. */
  purgeSession(id: string): Promise<void>;
  /** Retention: purges finished sessions that ended before `endedBefore`; returns how many. */
  purgeSessions(q: { endedBefore: number }): Promise<number>;
}
