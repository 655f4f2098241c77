import {
  closeSync,
  fchmodSync,
  fsyncSync,
  linkSync,
  openSync,
  readFileSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { TrustRunError } from '../core/index.js';

/**
 * Writes a new owner-only (0600) file atomically and without replacing an existing one: the
 * data goes to a temporary file first, then is hard-linked into place. Returns false when the
 * file already existed (another process won the race); the caller then reads that one.
 */
export function createPrivateFile(path: string, data: Uint8Array | string): boolean {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  let fd: number;
  try {
    fd = openSync(tmp, 'wx', 0o600);
  } catch (err) {
    throw Object.assign(err as Error, { path, syscall: 'write' });
  }
  try {
    fchmodSync(fd, 0o600); // whatever the umask was
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    // writeSync may write less than asked (a disk filling up): the rest, or its error.
    for (let at = 0; at < bytes.length;) at += writeSync(fd, bytes, at, bytes.length - at);
    fsyncSync(fd);
  } catch (err) {
    // A full disk: no half-written file left behind, and the error names the file it was for.
    closeSync(fd);
    unlinkSync(tmp);
    throw Object.assign(err as Error, { path, syscall: 'write' });
  }
  closeSync(fd);
  try {
    linkSync(tmp, path);
    syncDir(dirname(path));
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    unlinkSync(tmp);
  }
}

/** Reads a key file, refusing one that group or others may read or write. */
export function readPrivateFile(path: string): Buffer {
  const mode = statSync(path).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new TrustRunError(
      'TR_KEY',
      `${path} is accessible by group or others (mode ${mode.toString(8).padStart(4, '0')})`,
      { hint: `Run: chmod 600 ${path}` },
    );
  }
  return readFileSync(path);
}

export function fileExists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

function syncDir(dir: string): void {
  let fd: number | null = null;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Not every platform can fsync a directory; the link itself is already atomic.
  } finally {
    if (fd !== null) closeSync(fd);
  }
}
