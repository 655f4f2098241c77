import { homedir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { accessSync, chmodSync, constants, mkdirSync, statSync } from 'node:fs';

/**
 * The data directory: --data-dir, else $TRUSTRUN_HOME, else $XDG_DATA_HOME/trustrun,
 * else ~/.local/share/trustrun.
 */
export function resolveDataDir(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (flag) return resolve(flag);
  if (env.TRUSTRUN_HOME) return resolve(env.TRUSTRUN_HOME);
  if (env.XDG_DATA_HOME) return resolve(env.XDG_DATA_HOME, 'trustrun');
  return join(homedir(), '.local', 'share', 'trustrun');
}

/** Layout of the data directory. */
export function dataPaths(dataDir: string) {
  return {
    root: dataDir,
    caDir: join(dataDir, 'ca'),
    caCert: join(dataDir, 'ca', 'ca.pem'),
    caKey: join(dataDir, 'ca', 'ca-key.pem'),
    caBundle: join(dataDir, 'ca', 'bundle.pem'),
    keysDir: join(dataDir, 'keys'),
    shimsDir: join(dataDir, 'shims'),
    database: join(dataDir, 'trustrun.db'),
    apiToken: join(dataDir, 'api-token'),
  };
}
export type DataPaths = ReturnType<typeof dataPaths>;

/**
 * Creates a directory (and parents) owner-only (0700), whatever the umask, and tightens an
 * existing one.
 */
export function ensurePrivateDir(dir: string): void {
  makeDirs(resolve(dir), 0o700);
  const mode = statSync(dir).mode & 0o777;
  if (mode !== 0o700) chmodSync(dir, 0o700);
}

/**
 * mkdir -p, one level at a time. Node 20's `mkdirSync(dir, { recursive: true })` loops for ever
 * when mkdir answers ENOENT under a parent that exists (`/proc/x`); here that ENOENT is thrown.
 */
function makeDirs(dir: string, mode: number): void {
  try {
    mkdirSync(dir, { mode });
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      if (statSync(dir).isDirectory()) return;
      throw err;
    }
    const parent = dirname(dir);
    if (code !== 'ENOENT' || parent === dir) throw err;
  }
  makeDirs(dirname(dir), mode);
  try {
    mkdirSync(dir, { mode });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || !statSync(dir).isDirectory()) throw err;
  }
}

/**
 * Where system programs live when PATH lacks them (a user's PATH often has no sbin): searched
 * after PATH for the tools trustrun runs itself (certutil, update-ca-certificates, ip …).
 */
export const SYSTEM_PROGRAM_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/bin', '/bin'];

/** The first executable file `name` in the folders of `path` (PATH's syntax), or null. */
export function findExecutable(name: string, path: string): string | null {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const file = join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return null;
}
