import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { readStat } from './procfs.js';

/** Follows one process and every descendant of it, including children born after the start. */
export interface TreeTracker {
  /** Re-reads the process table; returns the live members, the root first. */
  refresh(): number[];
  /** Members as of the last refresh. */
  members(): number[];
  /** true once the root has exited (gone, or a zombie waiting to be reaped). */
  rootExited(): boolean;
}

interface Known {
  ppid: number;
  start: number;
}

/**
 * Linux: /proc/PID/stat gives each process's parent. The parent of every pid is read once and
 * cached (a pid seen again is not re-read); the root's stat is re-read on every refresh (exit,
 * zombie, reuse by start time). A member stays a member when its parent
 * exits and it is re-parented (to init or a subreaper): the tree is what the root started.
 *
 * A process whose parent exited before the poll that would have seen it (a double fork: `( cmd
 * & )`, a daemon) is first read with init or a subreaper as its parent, and nothing links it to
 * the tree any more. With `marker` (`NAME=VALUE`, set in the root's environment by whoever
 * started it), each process first seen outside the tree, started after the root, has its
 * environment read once: one that inherited the marker is a member.
 */
export class ProcTreeTracker implements TreeTracker {
  private readonly known = new Map<number, Known>();
  /** pid → start time of each member. */
  private readonly tree = new Map<number, number>();
  private order: number[] = [];
  private rootGone = false;

  private readonly marker: Buffer | null;
  private readonly rootStart: number;

  constructor(
    private readonly rootPid: number,
    private readonly root = '/proc',
    marker?: string,
  ) {
    const st = readStat(rootPid, root);
    if (st) this.tree.set(rootPid, st.start);
    else this.rootGone = true;
    this.rootStart = st?.start ?? 0;
    // Entries in /proc/PID/environ end with NUL; one is put in front too, so that the marker
    // only matches a whole entry.
    this.marker = marker ? Buffer.from(`\0${marker}\0`) : null;
  }

  /** Whether `pid`'s environment holds the marker (unreadable: no). */
  private marked(pid: number): boolean {
    try {
      const env = readFileSync(`${this.root}/${pid}/environ`);
      // The first entry has no NUL before it; the others are found with theirs.
      const first = this.marker!.subarray(1);
      return env.subarray(0, first.length).equals(first) || env.includes(this.marker!);
    } catch {
      return false;
    }
  }

  refresh(): number[] {
    let names: string[];
    try {
      names = readdirSync(this.root);
    } catch {
      names = [];
    }
    const present = new Set<number>();
    const fresh: number[] = [];
    for (const name of names) {
      const c = name.charCodeAt(0);
      if (c < 48 || c > 57) continue;
      const pid = Number(name);
      present.add(pid);
      if (!this.known.has(pid)) {
        const st = readStat(pid, this.root);
        if (st) {
          this.known.set(pid, { ppid: st.ppid, start: st.start });
          fresh.push(pid);
        }
      }
    }
    for (const pid of this.known.keys()) if (!present.has(pid)) this.known.delete(pid);
    // Members: gone from /proc = exited. Only the root's stat is re-read (zombie, reuse): a pid
    // reused by an unrelated process between two polls would need the pid space to wrap
    // within one interval.
    for (const pid of this.tree.keys()) {
      if (pid === this.rootPid) continue;
      if (!present.has(pid)) this.tree.delete(pid);
    }
    if (!this.rootGone) {
      const st = present.has(this.rootPid) ? readStat(this.rootPid, this.root) : null;
      if (!st || st.start !== this.tree.get(this.rootPid) || st.state === 'Z') this.rootGone = true;
      if (!st || st.start !== this.tree.get(this.rootPid)) this.tree.delete(this.rootPid);
      else this.known.set(this.rootPid, { ppid: st.ppid, start: st.start });
    } else {
      if (!present.has(this.rootPid)) this.tree.delete(this.rootPid);
    }
    // New descendants: any known process whose parent is a member (repeat for grandchildren).
    const children = new Map<number, number[]>();
    for (const [pid, k] of this.known) {
      let list = children.get(k.ppid);
      if (!list) children.set(k.ppid, (list = []));
      list.push(pid);
    }
    const order: number[] = [];
    const queue = [...this.tree.keys()].filter(
      (p) => !this.tree.has(this.known.get(p)?.ppid ?? -1),
    );
    // Roots of the walk: members whose parent is not a member (the root, re-parented orphans).
    const seen = new Set<number>();
    while (queue.length) {
      const pid = queue.shift()!;
      if (seen.has(pid)) continue;
      seen.add(pid);
      order.push(pid);
      const k = this.known.get(pid);
      if (k && !this.tree.has(pid)) this.tree.set(pid, k.start);
      for (const c of children.get(pid) ?? []) queue.push(c);
    }
    // Processes that left the tree before it saw them (their parent exited): marked ones join,
    // with their own descendants at the next walk.
    if (this.marker) {
      let joined = false;
      for (const pid of fresh) {
        const k = this.known.get(pid)!;
        if (this.tree.has(pid) || k.start < this.rootStart || !this.marked(pid)) continue;
        this.tree.set(pid, k.start);
        joined = true;
      }
      if (joined) return this.refresh();
    }
    this.order = order;
    return order;
  }

  members(): number[] {
    return this.order;
  }

  rootExited(): boolean {
    return this.rootGone;
  }
}

/** Parses `ps -A -o pid=,ppid=` output into pid → ppid. */
export function parsePsTable(text: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s+(\d+)/.exec(line);
    if (m) out.set(Number(m[1]), Number(m[2]));
  }
  return out;
}

/**
 * Other systems (macOS): the process table from `ps -A -o pid=,ppid=` on every refresh. Costs a
 * process spawn; used only when /proc is not there.
 */
export class PsTreeTracker implements TreeTracker {
  private readonly tree = new Set<number>();
  private order: number[] = [];
  private rootGone = false;

  constructor(
    private readonly rootPid: number,
    private readonly ps: () => string = () =>
      execFileSync('ps', ['-A', '-o', 'pid=,ppid=,stat='], { encoding: 'utf8', timeout: 5000 }),
  ) {
    this.tree.add(rootPid);
  }

  refresh(): number[] {
    let text: string;
    try {
      text = this.ps();
    } catch {
      text = '';
    }
    const parents = parsePsTable(text);
    const zombies = new Set<number>();
    for (const line of text.split('\n')) {
      const m = /^\s*(\d+)\s+\d+\s+(\S+)/.exec(line);
      if (m && m[2]!.startsWith('Z')) zombies.add(Number(m[1]));
    }
    for (const pid of [...this.tree]) if (!parents.has(pid)) this.tree.delete(pid);
    if (!this.tree.has(this.rootPid) || zombies.has(this.rootPid)) this.rootGone = true;
    const children = new Map<number, number[]>();
    for (const [pid, ppid] of parents) {
      let list = children.get(ppid);
      if (!list) children.set(ppid, (list = []));
      list.push(pid);
    }
    const queue = [...this.tree].filter((p) => !this.tree.has(parents.get(p) ?? -1));
    const order: number[] = [];
    const seen = new Set<number>();
    while (queue.length) {
      const pid = queue.shift()!;
      if (seen.has(pid)) continue;
      seen.add(pid);
      order.push(pid);
      this.tree.add(pid);
      for (const c of children.get(pid) ?? []) queue.push(c);
    }
    this.order = order;
    return order;
  }

  members(): number[] {
    return this.order;
  }

  rootExited(): boolean {
    return this.rootGone;
  }
}
