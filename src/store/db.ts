import Database from 'better-sqlite3';
import { chmodSync, closeSync, openSync } from 'node:fs';
import { TrustRunError } from '../core/index.js';
import { fileExists } from './files.js';

export type Db = Database.Database;

/**
 * Opens (creating if needed) the SQLite file owner-only and sets the connection up:
 * WAL, synchronous=NORMAL (a commit survives a crash of the process; the last commits may be
 * lost on power failure), secure_delete=ON (deleted content is zeroed), temp_store=MEMORY (no
 * temporary files), foreign keys on, and a busy timeout for other processes' locks.
 */
export function openDatabase(path: string, busyTimeoutMs: number): Db {
  // Create the file 0600 before SQLite does; SQLite gives -wal and -shm the database's mode.
  const fd = openSync(path, 'a', 0o600);
  closeSync(fd);
  chmodSync(path, 0o600);
  let db: Db;
  try {
    db = new Database(path, { timeout: busyTimeoutMs });
  } catch (err) {
    throw new TrustRunError('TR_STORE', `cannot open ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  try {
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
    // and again by its completion is copied into the database once. An 8 MiB page cache keeps
    // the index pages that every insert touches in memory. After a checkpoint the WAL file is
    // cut back to 64 MiB at most.
    db.pragma('wal_autocheckpoint = 4000');
    db.pragma('cache_size = -8192');
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
