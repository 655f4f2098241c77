import Database from 'better-sqlite3';
import { chmodSync, closeSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { TrustRunError } from '../core/index.js';
import { fileExists } from './files.js';

export type Db = Database.Database;

/** WAL pages after which the writing connection checkpoints by itself (when no Checkpointer runs). */
export const AUTOCHECKPOINT_PAGES = 4000;

/**
 * Opens (creating if needed) the SQLite file owner-only and sets the connection up:
 * WAL, synchronous=NORMAL (a commit survives a crash of the process; the last commits may be
 * lost on power failure), secure_delete=ON (deleted content is zeroed), temp_store=MEMORY (no
 * temporary files), foreign keys on, and a busy timeout for other processes' locks.
 */
/**
 * An SQLite file that has tables but not TrustRun's `schema_migrations` belongs to something
 * else: refused before anything (mode, journal mode, schema) is changed in it.
 */
function refuseForeign(db: Db, path: string): void {
  const tables = (
    db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as {
      name: string;
    }[]
  ).map((t) => t.name);
  if (tables.length === 0 || tables.includes('schema_migrations')) return;
  const shown = tables.slice(0, 3).join(', ') + (tables.length > 3 ? ', …' : '');
  throw new TrustRunError(
    'TR_STORE',
    `${path} is not a TrustRun database (it holds other tables: ${shown}); nothing was changed in it`,
    { hint: 'Use another --data-dir, or move that file away.' },
  );
}

export function openDatabase(path: string, busyTimeoutMs: number): Db {
  // Create the file 0600 before SQLite does; SQLite gives -wal and -shm the database's mode.
  const fd = openSync(path, 'a', 0o600);
  closeSync(fd);
  let db: Db;
  try {
    db = new Database(path, { timeout: busyTimeoutMs });
  } catch (err) {
    throw new TrustRunError('TR_STORE', `cannot open ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  try {
    refuseForeign(db, path);
  } catch (err) {
    db.close();
    if (err instanceof TrustRunError) throw err;
    throw new TrustRunError('TR_STORE', `cannot open ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  try {
    chmodSync(path, 0o600);
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (String(mode).toLowerCase() !== 'wal') {
      throw new Error(`journal_mode is ${String(mode)}, WAL is required`);
    }
    db.pragma('synchronous = NORMAL');
    db.pragma('secure_delete = ON');
    db.pragma('temp_store = MEMORY');
    db.pragma('foreign_keys = ON');
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs))}`);
    // Checkpoint every ~16 MiB of WAL instead of ~4 MiB: a page written by a request's insert
    // and again by its completion is copied into the database once. Inserts append at the right
    // edge of each B-tree, so a 2 MiB page cache holds what they touch (8 MiB measured no
    // faster, and left ~6 MB more in the proxy after load). After a checkpoint the WAL file is
    // cut back to 64 MiB at most.
    db.pragma(`wal_autocheckpoint = ${AUTOCHECKPOINT_PAGES}`);
    db.pragma('cache_size = -2048');
    db.pragma('journal_size_limit = 67108864');
    for (const suffix of ['-wal', '-shm']) {
      if (fileExists(path + suffix)) chmodSync(path + suffix, 0o600);
    }
  } catch (err) {
    db.close();
    throw new TrustRunError('TR_STORE', `cannot set up ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return db;
}

/** Moves the WAL into the database file and truncates it; false when readers kept it from finishing. */
export function checkpoint(db: Db): boolean {
  const rows = db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number; log: number }[];
  const r = rows[0];
  return r !== undefined && r.busy === 0;
}

/** The short form of a SQLite error for messages: its code and text. */
export function describeSqliteError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}

/**
 * Runs the WAL checkpoints of a database on a worker thread with its own connection, so that
 * copying pages into the database file and the fsyncs of a checkpoint (most of a commit's wall
 * time under load) do not block the event loop of the process that writes.
 *
 * Once the worker is ready, the writing connection's automatic checkpoint is turned off
 * (`wal_autocheckpoint=0`) and `nudge()` after a commit asks the worker for a PASSIVE checkpoint
 * (it never blocks a writer or a reader; at most one every `intervalMs`). If the WAL still grows
 * past `maxWalPages` (no checkpoint finished between two commits, so the WAL could not start
 * over) the writing connection checkpoints once itself. If the worker fails, the writing
 * connection goes back to checkpointing itself. The worker's state is read from shared memory,
 * not from messages: a writer that never yields to the event loop still sees it.
 */
/**
 * The worker counts as stalled (and the writer checkpoints itself) after this many commits and
 * this many checkpoint intervals without a finished checkpoint: both, so that a busy writer
 * committing faster than one checkpoint per interval does not take the work back.
 */
const STALLED_NUDGES = 8;
const STALLED_AFTER_INTERVALS = 4;

export class Checkpointer {
  private worker: Worker | null = null;
  private readonly state = new Int32Array(new SharedArrayBuffer(4 * STATE_SLOTS));
  private ready = false;
  private failed = false;
  private stopping: Promise<void> | null = null;
  private lastDone = 0;
  private nudgesSinceDone = 0;
  private lastDoneAt = Date.now();

  constructor(
    private readonly db: Db,
    private readonly path: string,
    private readonly opts: {
      intervalMs: number;
      maxWalPages: number;
      onError: (message: string) => void;
    },
  ) {}

  /** Checkpoints the worker has completed. */
  get checkpoints(): number {
    return Atomics.load(this.state, S_DONE);
  }

  /** True while checkpoints run on the worker (false before it is ready and after a failure). */
  get running(): boolean {
    if (this.ready || this.failed || this.stopping || !this.worker) return this.ready;
    if (Atomics.load(this.state, S_ERROR) !== 0) {
      this.fallBack('the checkpoint thread could not open the database');
    } else if (Atomics.load(this.state, S_READY) === 1 && this.db.open) {
      this.db.pragma('wal_autocheckpoint = 0');
      this.ready = true;
    }
    return this.ready;
  }

  start(): void {
    if (this.worker || this.stopping || this.failed) return;
    const worker = new Worker(CHECKPOINT_WORKER, {
      eval: true,
      execArgv: [],
      workerData: {
        driver: DRIVER,
        path: this.path,
        intervalMs: this.opts.intervalMs,
        state: this.state,
      },
      stdout: false,
      stderr: false,
    });
    worker.unref();
    this.worker = worker;
    worker.on('error', (err) => this.fallBack(`the checkpoint thread failed: ${err.message}`));
    worker.on('exit', () => {
      if (this.worker === worker && !this.stopping) this.fallBack('the checkpoint thread exited');
    });
  }

  /** After a commit: asks for a checkpoint (coalesced in the worker). */
  nudge(): void {
    if (!this.running || !this.worker) return;
    if (Atomics.load(this.state, S_ERROR) !== 0) {
      this.fallBack('a checkpoint on the checkpoint thread failed');
      return;
    }
    // A worker that finishes no checkpoint (starved of CPU, or slower than the writer) does not
    // let the WAL grow without bound: after STALLED_NUDGES commits and STALLED_AFTER_INTERVALS
    // intervals without one, the writing connection checkpoints itself, whatever the worker
    // last reported.
    const done = Atomics.load(this.state, S_DONE);
    if (done !== this.lastDone) {
      this.lastDone = done;
      this.lastDoneAt = Date.now();
      this.nudgesSinceDone = 0;
    } else {
      this.nudgesSinceDone++;
    }
    const stalled =
      this.nudgesSinceDone >= STALLED_NUDGES &&
      Date.now() - this.lastDoneAt >= STALLED_AFTER_INTERVALS * this.opts.intervalMs;
    if (stalled || Atomics.load(this.state, S_LOG) >= this.opts.maxWalPages) {
      if (stalled) {
        this.nudgesSinceDone = 0;
        this.lastDoneAt = Date.now();
      }
      // The WAL starts over only when a transaction begins with every frame copied, which a
      // busy writer rarely sees: one checkpoint here, between commits, copies the few frames
      // the worker has not, and the next commit starts the WAL over. Busy (the worker is
      // checkpointing right now): tried again after the next commit.
      try {
        const r = this.db.pragma('wal_checkpoint(PASSIVE)') as { busy: number }[];
        if (r[0]?.busy === 0) Atomics.store(this.state, S_LOG, 0);
      } catch {
        // Reported by the next commit if the database is unusable.
      }
    }
    // One message per checkpoint the worker has yet to start, not one per commit.
    if (Atomics.compareExchange(this.state, S_WANTED, 0, 1) === 0) {
      this.worker.postMessage('checkpoint');
    }
  }

  /** Stops the worker (after its current checkpoint) and closes its connection. */
  stop(): Promise<void> {
    this.stopping ??= this.stopWorker();
    return this.stopping;
  }

  private async stopWorker(): Promise<void> {
    const worker = this.worker;
    this.ready = false;
    if (!worker) return;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    worker.postMessage('close');
    const timer = setTimeout(() => void worker.terminate(), 5000);
    await exited;
    clearTimeout(timer);
    this.worker = null;
  }

  private fallBack(message: string): void {
    const worker = this.worker;
    this.worker = null;
    this.ready = false;
    this.failed = true;
    if (worker) void worker.terminate();
    if (this.db.open) {
      try {
        this.db.pragma(`wal_autocheckpoint = ${AUTOCHECKPOINT_PAGES}`);
      } catch {
        // The database is unusable; commits report it.
      }
    }
    this.opts.onError(message);
  }
}

// Slots of the shared state: ready flag, error flag, checkpoints done, WAL frames as the last
// checkpoint found them, a checkpoint asked for and not started yet.
const S_READY = 0;
const S_ERROR = 1;
const S_DONE = 2;
const S_LOG = 3;
const S_WANTED = 4;
const STATE_SLOTS = 5;

const DRIVER = createRequire(import.meta.url).resolve('better-sqlite3');

/** The worker (CommonJS, evaluated): one connection, PASSIVE checkpoints on request. */
const CHECKPOINT_WORKER = `(() => {
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const state = workerData.state;
let db;
try {
  db = new Database(workerData.path, { fileMustExist: true, timeout: 0 });
} catch (err) {
  Atomics.store(state, ${S_ERROR}, 1);
  parentPort.close();
  return;
}
let last = 0;
let timer = null;
function run() {
  timer = null;
  Atomics.store(state, ${S_WANTED}, 0);
  try {
    const r = db.pragma('wal_checkpoint(PASSIVE)')[0];
    Atomics.store(state, ${S_LOG}, r.log);
    Atomics.add(state, ${S_DONE}, 1);
  } catch (err) {
    Atomics.store(state, ${S_ERROR}, 1);
  }
  last = Date.now();
}
parentPort.on('message', (m) => {
  if (m === 'close') {
    if (timer) clearTimeout(timer);
    timer = null;
    db.close();
    parentPort.close();
    return;
  }
  if (timer) return;
  timer = setTimeout(run, Math.max(0, last + workerData.intervalMs - Date.now()));
});
Atomics.store(state, ${S_READY}, 1);
})();
`;
