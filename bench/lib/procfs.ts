/**
 * Per-process figures from Linux procfs: CPU time (utime + stime) of a process and its
 * descendants, resident memory now (VmRSS) and at its peak (VmHWM), and resetting that peak.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';

let clockTicks: number | null = null;

/** Clock ticks per second of the utime/stime fields (USER_HZ, nearly always 100). */
export function ticksPerSecond(): number {
  if (clockTicks === null) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

interface StatFields {
  ppid: number;
  /** utime + stime in clock ticks. */
  ticks: number;
}

function readStat(pid: number): StatFields | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); ppid is field 4, utime 14, stime 15.
  return { ppid: Number(rest[1]), ticks: Number(rest[11]) + Number(rest[12]) };
}

/** The process's start time (field 22 of /proc/PID/stat), to tell a reused id apart; null when gone. */
export function startTime(pid: number): string | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/** The process and all its live descendants. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = readStat(Number(name));
    if (!st) continue;
    const list = children.get(st.ppid);
    if (list) list.push(Number(name));
    else children.set(st.ppid, [Number(name)]);
  }
  const out: number[] = [];
  const queue = [root];
  while (queue.length > 0 && out.length < 10_000) {
    const pid = queue.shift() as number;
    out.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return out;
}

/** A process's command line, arguments joined by spaces (null once it has exited). */
export function commandLine(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
  } catch {
    return null;
  }
}

/** CPU seconds (user + system) used so far by the process and its live descendants. */
export function cpuSeconds(pid: number): number {
  let ticks = 0;
  for (const p of processTree(pid)) ticks += readStat(p)?.ticks ?? 0;
  return ticks / ticksPerSecond();
}

export interface MemoryFigures {
  /** Resident set size now, bytes. */
  rss: number;
  /** Peak resident set size since start or the last resetPeak(), bytes. */
  hwm: number;
}

/** VmRSS and VmHWM of one process, or null when it is gone. */
export function memory(pid: number): MemoryFigures | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const kb = (key: string) =>
    Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** Resets VmHWM to the current RSS (needs to own the process or root); false when refused. */
export function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** Samples a process's RSS at a fixed interval and keeps the maximum, to catch peaks. */
export class PeakSampler {
  private max = 0;
  private readonly timer: NodeJS.Timeout;
  private readonly resetOk: boolean;

  constructor(
    private readonly pid: number,
    intervalMs = 50,
  ) {
    this.resetOk = resetPeak(pid);
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  private sample(): void {
    const m = memory(this.pid);
    if (m && m.rss > this.max) this.max = m.rss;
  }

  /** Stops sampling; the peak is the larger of the samples and VmHWM (when it could be reset). */
  stop(): number {
    clearInterval(this.timer);
    this.sample();
    const m = memory(this.pid);
    return Math.max(this.max, this.resetOk && m ? m.hwm : 0);
  }
}

/** The 1-minute load average, from /proc/loadavg. */
export function loadAverage(): number {
  try {
    return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  } catch {
    return NaN;
  }
}
