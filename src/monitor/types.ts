import type { Subject, Verdict } from '../core/index.js';

export type Protocol = 'tcp' | 'udp';

/** One socket of a watched process, as every backend reports it. */
export interface OwnedSocket {
  protocol: Protocol;
  localAddr: string;
  localPort: number;
  remoteAddr: string;
  remotePort: number;
  /** Kernel state name: ESTABLISHED, SYN_SENT, CLOSE_WAIT … (UDP: ESTABLISHED when connected). */
  state: string;
  pid: number;
  /** Executable path (Linux) or command name (lsof on other systems); null when unreadable. */
  exe: string | null;
}

export type BackendName = 'procfs' | 'ss' | 'lsof';

/** The part of a compiled policy the monitor needs (src/policy's CompiledPolicy has it). */
export interface MonitorPolicy {
  evaluate(subject: Subject): Verdict;
}

/** A direct connection of the watched tree. */
export interface MonitorEvent {
  /** Time-ordered id (newId from src/core). */
  id: string;
  pid: number;
  exe: string | null;
  protocol: Protocol;
  localAddr: string;
  localPort: number;
  remoteAddr: string;
  remotePort: number;
  /** Socket state at the last sighting; 'CLOSED' once the connection is gone. */
  state: string;
  /** Epoch milliseconds of the poll that first saw it. */
  firstSeen: number;
  /** Epoch milliseconds of the last poll that saw it. */
  lastSeen: number;
  /** Forward-confirmed reverse-DNS name of remoteAddr, or null. */
  hostname: string | null;
  /** Organisation owning remoteAddr (built-in table), or null. */
  org: string | null;
  verdict: Verdict;
  /**
   * What was done about the verdict: null when there was nothing to enforce (allow, alert);
   * true when the process tree was killed; false when it could not be (a `block` on a direct
   * connection, which cannot be refused after the fact; a `kill` with killOnViolation off).
   */
  enforced: boolean | null;
}

export type UpdateReason = 'state' | 'closed' | 'org';

export interface KillInfo {
  /** The event whose verdict asked for the kill. */
  event: MonitorEvent;
  /** Pids that were signalled (SIGTERM, then SIGKILL after the grace period). */
  pids: number[];
}

export interface MonitorOptions {
  rootPid: number;
  /**
   * `NAME=VALUE` set in the root's environment when it was started (Linux): a process that
   * inherited it joins the tree even when its parent exited before a poll saw it (a double
   * fork). `trustrun run` sets `TRUSTRUN_SESSION=<session id>`.
   */
  treeMarker?: string;
  /** Poll interval in milliseconds (1 … 60000); default 100. */
  intervalMs?: number;
  /** Socket source; 'auto' (default) picks procfs, then ss, then lsof. */
  backend?: 'auto' | BackendName;
  /**
   * true for connections that are not direct (e.g. to the proxy itself): they produce no event,
   * but stay known to attribute(). Called with the remote address and port.
   */
  ignore?: (addr: string, port: number) => boolean;
  /** Policy to evaluate each connection against; none = audit (allow, no violation). */
  policy?: MonitorPolicy;
  /** A new connection, once, with its final hostname/org/verdict. */
  onEvent: (event: MonitorEvent) => void;
  /** A known connection changed state or is gone (lastSeen is current). */
  onUpdate?: (event: MonitorEvent, reason: UpdateReason) => void;
  /** The tree was killed because of `event`. */
  onKill?: (info: KillInfo) => void;
  /** A `kill` verdict terminates the tree (default true); false records it as not enforced. */
  killOnViolation?: boolean;
  /** Grace between SIGTERM and SIGKILL, ms (default 1000). */
  killGraceMs?: number;
  /** Reverse DNS for hostnames (default true). */
  resolveNames?: boolean;
  /** Per-lookup DNS timeout, ms (default 500). */
  dnsTimeoutMs?: number;
  /**
   * whois for the organisation of a public address the tables and the PTR name did not place
   * (default true; needs the `whois` program). Its answer comes as an update ('org').
   */
  whoisLookups?: boolean;
  /** Per-attempt whois timeout, ms (default 2000; a failed attempt is tried once more). */
  whoisTimeoutMs?: number;
  /** Replaces the whois program (tests). */
  whois?: WhoisFunction;
  /**
   * Another procfs root (tests: a fake /proc written by the test). Forces the procfs backend;
   * a kill verdict then signals nothing (the pids are not real).
   */
  procRoot?: string;
  /**
   * A process in the network namespace the watched tree uses, when that is not trustrun's own
   * (`run --isolate`): the socket tables are read from /proc/PID/net. Forces the procfs backend.
   */
  netPid?: number;
  /** Replaces node:dns (tests): reverse and forward lookups. */
  dns?: DnsFunctions;
}

/**
 * Runs whois for an address; resolves with its output, rejects on failure (ENOENT: none). An
 * aborted `signal` ends the lookup (the monitor stopped).
 */
export type WhoisFunction = (ip: string, timeoutMs: number, signal: AbortSignal) => Promise<string>;

export interface DnsFunctions {
  reverse(ip: string): Promise<string[]>;
  lookup(name: string): Promise<string[]>;
}

export interface MonitorStats {
  backend: BackendName;
  polls: number;
  meanPollMs: number;
  maxPollMs: number;
  lastPollMs: number;
  /** Events reported (onEvent calls). */
  events: number;
  /** Events whose verdict is a violation. */
  violations: number;
  /** Processes in the tree at the last poll. */
  processes: number;
}

export interface Monitor {
  /** Stops polling (after the poll in progress); resolves when stopped. Idempotent. */
  stop(): Promise<void>;
  /** Which process of the tree owns the local TCP endpoint addr:port; null if none. */
  attribute(addr: string, port: number): { pid: number; exe: string | null } | null;
  /** Like attribute(), refreshing through the active backend on a miss (any platform). */
  attributeAsync(addr: string, port: number): Promise<{ pid: number; exe: string | null } | null>;
  /** Pids of the tree at the last poll, the root first. */
  tree(): number[];
  stats(): MonitorStats;
  /** Every event reported so far (the same objects, kept current). */
  events(): MonitorEvent[];
  /** Resolves when the root process has exited and the final poll is done (polling stops). */
  done: Promise<void>;
  readonly backend: BackendName;
}
