import type { Statement } from 'better-sqlite3';
import { TrustRunError } from '../core/index.js';
import { describeSqliteError, type Db } from './db.js';

/**
 * The batching writer. Operations are queued and committed together in one transaction per
 * batch: when the event loop next turns (setImmediate) after an operation that someone waits for
 * or that holds a body, within DEFER_MS after one that neither (`scheduleDeferred`), or at once
 * when `batchMax` are waiting.
 * An operation with a waiter (a request record: audit before forward) resolves only after the
 * transaction holding it has committed, so concurrent requests share one commit (group commit).
 *
 * When a commit fails (disk full, database locked or closed): waiters are rejected with
 * TR_STORE_UNAVAILABLE at once (the proxy then refuses the request); the other operations are
 * kept, in order, and tried again with the next batch or after a short back-off, up to
 * `maxRetained` of them holding up to `maxRetainedBytes` of payload (bodies), so that a full disk
 * at the full level cannot grow the process without bound. Past the byte bound the oldest
 * payloads go first (a body part is dropped, a completion loses its bodies but keeps the rest);
 * past the count bound the oldest operations. `healthy` is false until a commit succeeds.
 */
export interface WriteOp {
  stmt: Statement;
  args: unknown[];
  /** What the operation writes, for error messages (never data). */
  what: string;
  waiter?: Waiter;
  /** Bytes of payload it holds (sealed bodies), counted against `maxRetainedBytes`. */
  bytes?: number;
  /**
   * For an operation with `bytes`: makes the same write without its payload, used only when the
   * payload must go to stay within `maxRetainedBytes` (absent: the operation is all payload,
   * dropped whole).
   */
  lighter?: () => WriteOp;
  /** The writer's own probe (see WriterOptions.probe): never kept after a failure. */
  probe?: true;
}

/** Settles the promise of an operation that a caller awaits (made once per operation, no closures). */
export interface Waiter {
  /** Passed to resolve. */
  value: string;
  resolve: (value: string) => void;
  reject: (err: Error) => void;
  /** Called with `value` when the operation is rejected. */
  onReject?: (value: string) => void;
}

function rejectWaiter(w: Waiter | undefined, err: Error): void {
  if (!w) return;
  w.onReject?.(w.value);
  w.reject(err);
}

export interface WriterOptions {
  batchMax: number;
  /** Most operations kept for a retry while commits fail (the oldest are dropped first). */
  maxRetained: number;
  /** Most payload bytes kept for a retry while commits fail (the oldest are dropped first). */
  maxRetainedBytes: number;
  onError: (err: TrustRunError) => void;
  /** Called after each successful commit (e.g. to schedule a checkpoint). */
  afterCommit?: () => void;
  /**
   * A small write (one argument: the time) that tells whether the store can be written again
   * after a failed commit left nothing queued to retry with. Without it, a store that failed
   * stays unhealthy until the next write someone makes.
   */
  probe?: Statement;
  /** The connection's busy timeout, ms: a retry while unhealthy does not wait for a lock. */
  busyTimeoutMs?: number;
}

export interface WriterStats {
  commits: number;
  failedCommits: number;
  committedOps: number;
  droppedOps: number;
}

const RETRY_MIN_MS = 50;
/** Most milliseconds a light operation nobody waits for stays queued before its commit. */
const DEFER_MS = 20;
const RETRY_MAX_MS = 2000;

export class BatchWriter {
  healthy = true;
  closed = false;
  readonly stats: WriterStats = { commits: 0, failedCommits: 0, committedOps: 0, droppedOps: 0 };
  private queue: WriteOp[] = [];
  private immediate: NodeJS.Immediate | null = null;
  /** A commit of light operations that nobody waits for (see `enqueue`). */
  private deferred: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private backoffMs = 0;
  private draining = false;
  private readonly begin: Statement;
  private readonly commitStmt: Statement;
  private readonly rollback: Statement;

  constructor(
    private readonly db: Db,
    private readonly opts: WriterOptions,
  ) {
    this.begin = db.prepare('BEGIN IMMEDIATE');
    this.commitStmt = db.prepare('COMMIT');
    this.rollback = db.prepare('ROLLBACK');
  }

  get pending(): number {
    return this.queue.length;
  }

  enqueue(op: WriteOp): void {
    if (this.closed) throw closedError();
    this.queue.push(op);
    if (this.queue.length >= this.opts.batchMax) this.drain();
    else if (op.waiter || op.bytes) this.schedule();
    else this.scheduleDeferred();
  }

  /** Commits everything queued; returns the error of the first failed commit, if any. */
  drain(): TrustRunError | null {
    if (this.draining) return null; // re-entered from a callback: the running loop goes on
    if (this.immediate) {
      clearImmediate(this.immediate);
      this.immediate = null;
    }
    if (this.deferred) {
      clearTimeout(this.deferred);
      this.deferred = null;
    }
    this.draining = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.opts.batchMax);
        const err = this.commit(batch);
        if (err) return err;
      }
      return null;
    } finally {
      this.draining = false;
    }
  }

  /** Stops timers; returns the operations that could not be written (rejecting their waiters). */
  stop(reason: TrustRunError): number {
    this.closed = true;
    if (this.immediate) clearImmediate(this.immediate);
    if (this.deferred) clearTimeout(this.deferred);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.immediate = null;
    this.deferred = null;
    this.retryTimer = null;
    const lost = this.queue.length;
    for (const op of this.queue) rejectWaiter(op.waiter, reason);
    this.queue = [];
    return lost;
  }

  /**
   * Light operations nobody waits for (completions without bodies, connection records,
   * violations) are committed with the next operation that is waited for or holds a body, or
   * after DEFER_MS at most: a proxy under load then commits once per request instead of twice
   * (a commit costs ~0.1 ms of CPU whatever it holds).
   */
  private scheduleDeferred(): void {
    if (this.immediate || this.deferred || this.draining) return;
    this.deferred = setTimeout(() => {
      this.deferred = null;
      this.drain();
    }, DEFER_MS);
  }

  private schedule(): void {
    if (this.immediate || this.draining) return;
    this.immediate = setImmediate(() => {
      this.immediate = null;
      this.drain();
    });
  }

  private commit(batch: WriteOp[]): TrustRunError | null {
    const refused: [WriteOp, unknown][] = [];
    // While unhealthy (a lock held elsewhere, a full disk), an attempt fails at once instead of
    // holding the event loop for the busy timeout each time it is retried.
    const impatient = !this.healthy && this.opts.busyTimeoutMs !== undefined && this.db.open;
    if (impatient) this.db.pragma('busy_timeout = 0');
    try {
      this.begin.run();
      for (const op of batch) {
        try {
          // Spread, not an array: better-sqlite3 then binds from the call's own arguments
          // instead of reading the array element by element (~0.7 µs less per statement).
          op.stmt.run(...op.args);
        } catch (err) {
          if (!isRowError(err)) throw err;
          refused.push([op, err]); // SQLite undid this statement only; the batch goes on
        }
      }
      this.commitStmt.run();
    } catch (err) {
      if (this.db.open && this.db.inTransaction) {
        try {
          this.rollback.run();
        } catch {
          // The connection is unusable; the failure below says why.
        }
      }
      return this.fail(batch, err);
    } finally {
      if (impatient && this.db.open) this.db.pragma(`busy_timeout = ${this.opts.busyTimeoutMs}`);
    }
    this.stats.commits++;
    this.stats.committedOps += batch.length - refused.length;
    this.healthy = true;
    this.backoffMs = 0;
    this.opts.afterCommit?.();
    const refusedOps = new Set(refused.map(([op]) => op));
    for (const op of batch) {
      if (op.waiter && !refusedOps.has(op)) op.waiter.resolve(op.waiter.value);
    }
    for (const [op, cause] of refused) {
      this.stats.droppedOps++;
      const err = new TrustRunError(
        'TR_STORE',
        `the store refused ${op.what}: ${describeSqliteError(cause)}`,
        { cause },
      );
      rejectWaiter(op.waiter, err);
      this.opts.onError(err);
    }
    return null;
  }

  /**
   * `queue` with its payload bytes within maxRetainedBytes: the oldest payloads go first (an
   * operation becomes its `lighter` form, or is dropped); `shed` counts them.
   */
  private shedPayloads(queue: WriteOp[]): { kept: WriteOp[]; shed: number } {
    let over = -this.opts.maxRetainedBytes;
    for (const op of queue) over += op.bytes ?? 0;
    const kept: WriteOp[] = [];
    let shed = 0;
    for (const op of queue) {
      if (over <= 0 || !op.bytes) {
        kept.push(op);
        continue;
      }
      over -= op.bytes;
      shed++;
      if (op.lighter) kept.push(op.lighter());
      else this.stats.droppedOps++;
    }
    return { kept, shed };
  }

  private fail(batch: WriteOp[], cause: unknown): TrustRunError {
    this.healthy = false;
    this.stats.failedCommits++;
    const err = new TrustRunError(
      'TR_STORE_UNAVAILABLE',
      `the store cannot be written: ${this.db.open ? describeSqliteError(cause) : 'the database is closed'}`,
      { cause, hint: 'Check free disk space and that no other program holds the database locked.' },
    );
    // Fail fast: every waiting request is refused now, not after the back-off.
    const keep: WriteOp[] = [];
    for (const op of [...batch, ...this.queue]) {
      if (op.waiter) rejectWaiter(op.waiter, err);
      else if (!op.probe) keep.push(op);
    }
    const over = Math.max(0, keep.length - this.opts.maxRetained);
    if (over > 0) {
      keep.splice(0, over);
      this.stats.droppedOps += over;
    }
    const { kept, shed } = this.shedPayloads(keep);
    this.queue = kept;
    this.opts.onError(
      over + shed > 0
        ? new TrustRunError(
            'TR_STORE_UNAVAILABLE',
            `${err.message}; ${[
              over > 0 ? `${over} queued records were dropped` : '',
              shed > 0 ? `${shed} queued bodies or body parts were dropped` : '',
            ]
              .filter(Boolean)
              .join(', ')}`,
            {
              cause,
            },
          )
        : err,
    );
    // Tried again after a back-off: the operations kept, or (nothing kept) the probe, so that
    // a store that comes back is known to be back even when every request is being refused.
    if ((this.queue.length > 0 || this.opts.probe) && this.db.open && !this.retryTimer) {
      this.backoffMs = Math.min(RETRY_MAX_MS, Math.max(RETRY_MIN_MS, this.backoffMs * 2));
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        if (this.closed) return;
        if (this.queue.length === 0 && this.opts.probe) {
          this.queue.push({
            stmt: this.opts.probe,
            args: [Date.now()],
            what: 'a write probe',
            probe: true,
          });
        }
        this.drain();
      }, this.backoffMs);
      this.retryTimer.unref();
    }
    return err;
  }
}

/** Errors that concern one row (the batch can go on without it), not the database. */
function isRowError(err: unknown): boolean {
  if (err instanceof TypeError || err instanceof RangeError) return true; // binding
  const code = (err as { code?: unknown }).code;
  return (
    typeof code === 'string' &&
    (code.startsWith('SQLITE_CONSTRAINT') || code === 'SQLITE_TOOBIG' || code === 'SQLITE_MISMATCH')
  );
}

export function closedError(): TrustRunError {
  return new TrustRunError('TR_STORE_UNAVAILABLE', 'the store is closed');
}
