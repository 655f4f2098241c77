import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/**
 * Is the process that owns a `running` session still there? A pid alone is not enough (pids
 * are reused), so a session also stores an owner token: on Linux the boot id and the process
 * start time from /proc/<pid>/stat; elsewhere the start time `ps` reports.
 */

let bootIdCache: string | null | undefined;

function bootId(): string | null {
  if (bootIdCache === undefined) {
    try {
      bootIdCache = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      bootIdCache = null;
    }
  }
  return bootIdCache;
}

interface ProcStat {
  state: string;
  startTime: string;
}

function readProcStat(pid: number): ProcStat | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "pid (comm) ": state is field 3, starttime field 22.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const state = rest[0];
    const startTime = rest[19];
    if (state === undefined || startTime === undefined) return null;
    return { state, startTime };
  } catch {
    return null;
  }
}

/** A token that names one process for its whole life, or null when it cannot be read. */
export function processToken(pid: number): string | null {
  if (process.platform === 'linux') {
    const stat = readProcStat(pid);
    return stat ? `linux:${bootId() ?? '-'}:${stat.startTime}` : null;
  }
  try {
    const out = execFileSync('ps', ['-o', 'lstart=', '-p', String(pid)], {
      encoding: 'utf8',
      timeout: 2000,
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    return out ? `ps:${out}` : null;
  } catch {
    return null;
  }
}

/**
 * True when `pid` is alive and is the same process as when `token` was taken. When the pid
 * exists but its identity cannot be read, it counts as alive (a live session is never marked
 * interrupted by mistake).
 */
export function isOwnerAlive(pid: number | null, token: string | null): boolean {
  if (pid === null || !Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    // EPERM: it exists but belongs to someone else.
  }
  if (process.platform === 'linux') {
    const stat = readProcStat(pid);
    // Unreadable: gone between the two checks, unless /proc cannot be read at all.
    if (stat === null) return readProcStat(process.pid) === null;
    if (stat.state === 'Z' || stat.state === 'X') return false; // dead, not yet reaped
  }
  if (token === null) return true;
  const now = processToken(pid);
  return now === null ? true : now === token;
}
