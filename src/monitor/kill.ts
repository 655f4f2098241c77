import { isAlive, processTree } from './procfs.js';

/**
 * Terminates a process and its descendants: SIGTERM to each, then SIGKILL to any still alive
 * after `graceMs`. Returns the pids that were signalled. Never signals this process.
 */
export function killTree(pid: number, graceMs = 1000): number[] {
  const pids = processTree(pid).filter((p) => p !== process.pid && p > 1);
  for (const p of pids) {
    try {
      process.kill(p, 'SIGTERM');
    } catch {
      /* already gone */
    }
  }
  if (pids.length) {
    const timer = setTimeout(() => {
      for (const p of pids) {
        if (!isAlive(p)) continue;
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          /* gone meanwhile */
        }
      }
    }, graceMs);
    timer.unref();
  }
  return pids;
}
