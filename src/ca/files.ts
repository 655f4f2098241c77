import { open, rename, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';

/**
 * Writes a file atomically (temporary file in the same directory, then rename) with exactly
 * `mode`, whatever the umask: the file is created with that mode and chmod-ed again before any
 * byte is written, so a private key is never readable by others, not even for an instant.
 */
export async function writeFileAtomic(
  file: string,
  data: string | Buffer,
  mode: number,
): Promise<void> {
  const tmp = join(dirname(file), `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', mode).catch((err: unknown) => {
    throw Object.assign(err as Error, { path: file, syscall: 'write' });
  });
  try {
    await fh.chmod(mode);
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await rm(tmp, { force: true });
    // A full disk's error has no path of its own: it names the file it was for.
    throw Object.assign(err as Error, { path: file, syscall: 'write' });
  }
  await fh.close();
  try {
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

export async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Permission bits as the four octal digits people type (`0644`). */
export function octalMode(mode: number): string {
  return '0' + (mode & 0o777).toString(8).padStart(3, '0');
}
