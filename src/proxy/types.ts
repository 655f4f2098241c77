import type { SecureContext } from 'node:tls';
import type { CaptureLevel, Logger, Outcome, Subject, Verdict } from '../core/index.js';
import type { ResolveRule } from './resolve.js';
import type { CapturedBody } from './tap.js';

/** The two bodies of a request, as the store names them. */
export type BodyField = 'request_body' | 'response_body';

/**
 * What the proxy needs from the store. The store module implements it; the proxy never opens a
 * database itself.
 */
export interface FlowRecorder {
  readonly healthy: boolean;
  /** Resolves once everything queued so far is committed. */
  flush(): Promise<void>;
  addConnection(c: {
    sessionId: string;
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
    mode: 'tunnel' | 'intercept' | 'http';
  }): string;
  updateConnection(
    id: string,
    patch: {
      ip?: string | null;
      sni?: string | null;
      alpn?: string | null;
      bytesUp?: number;
      bytesDown?: number;
      endedAt?: number;
      outcome?: Outcome;
      reason?: string | null;
      verdict?: Verdict | null;
    },
  ): void;
  /** Resolves once the record is durably committed (audit before forward). */
  addRequest(r: {
    sessionId: string;
    connectionId: string | null;
    startedAt: number;
    method: string;
    scheme: 'http' | 'https';
    host: string;
    port: number;
    url: string;
    requestHeaders: [string, string][];
    verdict: Verdict | null;
    pid?: number | null;
    exe?: string | null;
  }): Promise<string>;
  /**
   * Records part `seq` of a long body while it streams (full level); `data` is copied before
   * this returns (the caller reuses it).
   */
  addBodyPart(requestId: string, field: BodyField, seq: number, data: Buffer): void;
  completeRequest(
    id: string,
    done: {
      endedAt: number;
      status?: number | null;
      responseHeaders?: [string, string][] | null;
      /** `parts`: parts already written with addBodyPart; `data` is what follows them. */
      requestBody?: CapturedBody | null;
      responseBody?: CapturedBody | null;
      requestSize?: number;
      responseSize?: number;
      durationMs?: number;
      ttfbMs?: number | null;
      outcome: Outcome;
      reason?: string | null;
    },
  ): void;
  addViolation(v: {
    sessionId: string;
    time: number;
    host: string;
    port: number;
    method?: string | null;
    verdict: Verdict;
    enforced: boolean;
    connectionId?: string | null;
    requestId?: string | null;
  }): string;
}

/** What the proxy needs from a compiled policy. */
export interface PolicyGate {
  readonly name: string | null;
  evaluate(subject: Subject): Verdict;
  evaluateConnect(subject: Subject): Verdict | 'per-request';
}

/** What the proxy needs from the CA module to intercept TLS. */
export interface ContextSource {
  getSecureContext(hostname: string): Promise<SecureContext>;
  /**
   * A quiet moment on this thread: work that speeds up the next new host (key-holding contexts
   * made ahead) can be done now instead of in front of a TLS handshake. Called when a tunnel's
   * exchange is over and when a tunnel closes.
   */
  refillSpares?(): void;
}

/** Who owns a client socket, when that can be found (procfs). */
export interface ClientIdentity {
  pid: number;
  exe: string | null;
}

export interface ProxyOptions {
  host: string;
  port: number;
  level: CaptureLevel;
  /** Most bytes of each body kept at the `full` level. */
  maxBody: number;
  /** PEM text of extra CAs trusted for upstream servers (system roots stay trusted). */
  upstreamCa: string[];
  resolve: ResolveRule[];
  /** What to do when the store cannot be written: refuse traffic (default) or pass it unrecorded. */
  onStoreError: 'fail' | 'pass';
  /** Other local ports the proxy must never connect to (the API server). */
  guardPorts: number[];
  limits: ProxyLimits;
}

export interface ProxyLimits {
  maxHeaderBytes: number;
  maxUrlLength: number;
  maxHeaderCount: number;
  headersTimeoutMs: number;
  idleTimeoutMs: number;
  maxConnections: number;
  upstreamConnectTimeoutMs: number;
  upstreamHeadersTimeoutMs: number;
  /**
   * How long an upstream connection opened ahead of a tunnel's first request stays open when no
   * request takes it (default 5000 ms).
   */
  predialIdleMs: number;
}

export const DEFAULT_LIMITS: ProxyLimits = {
  maxHeaderBytes: 32 * 1024,
  maxUrlLength: 8 * 1024,
  maxHeaderCount: 200,
  headersTimeoutMs: 30_000,
  idleTimeoutMs: 120_000,
  maxConnections: 8192,
  upstreamConnectTimeoutMs: 10_000,
  upstreamHeadersTimeoutMs: 300_000,
  predialIdleMs: 5_000,
};

export interface ProxyDeps {
  recorder: FlowRecorder;
  sessionId: string;
  /** Required for the headers and full levels. */
  contexts: ContextSource | null;
  /** null: pure audit, everything allowed, nothing is a violation. */
  policy: PolicyGate | null;
  logger: Logger;
  /** Finds the process behind a client socket (optional). */
  identify?: (clientAddr: string, clientPort: number) => ClientIdentity | null;
  /**
   * Called when a verdict says kill; returns the process terminated, or null when none could be.
   * `client` is what `identify` found (null when it found nothing or is not given); `from` is the
   * client socket's address, still open, and the proxy's port on that connection, for a lookup
   * done only when a kill is needed.
   */
  kill?: (
    client: ClientIdentity | null,
    verdict: Verdict,
    from: { addr: string; port: number; proxyPort: number },
  ) => ClientIdentity | null;
  /**
   * Told the size of each body chunk relayed, either way, by every exchange the proxy handles
   * (intercepted ones, and plain-HTTP proxy requests at any level). Default: a Reclaimer with
   * the runtime's collector (see reclaim.ts).
   */
  relayed?: (bytes: number) => void;
}
