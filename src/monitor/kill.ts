import { isAlive, processTree } from './procfs.js';

/**
 * Terminates the given processes: SIGTERM to each, then SIGKILL to any still alive after
 * `graceMs`. Returns the pids that were signalled. Never signals this process or pid 1.
 */
export function killPids(pids: number[], graceMs = 1000): number[] {
  const targets = pids.filter((p) => p !== process.pid && p > 1);
  const signalled: number[] = [];
  for (const p of targets) {
    try {
      process.kill(p, 'SIGTERM');
      signalled.push(p);
    } catch {
      /* already gone */
    }
  }
  if (signalled.length) {
    const timer = setTimeout(() => {
      for (const p of signalled) {
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
  return signalled;
}

/**
 * Terminates a process and its descendants: SIGTERM to each, then SIGKILL to any still alive
 * after `graceMs`. Returns the pids that were signalled. Never signals this process.
 */
export function killTree(pid: number, graceMs = 1000): number[] {
  return killPids(processTree(pid), graceMs);
}
