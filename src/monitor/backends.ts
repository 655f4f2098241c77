import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { TrustRunError, findExecutable } from '../core/index.js';
import { lsofArgs, parseLsofF } from './lsof.js';
import {
  TCP_STATES,
  decodeAddress,
  parseProcNetFor,
  processExe,
  readOr,
  readTcpTexts,
  socketInodes,
  type SocketEntry,
} from './procfs.js';
import { parseSs } from './ss.js';
import type { BackendName, OwnedSocket } from './types.js';

/** Where the sockets of a set of processes come from. */
export interface SocketBackend {
  readonly name: BackendName;
  /** The sockets (all states) held by `pids`, in the order of `pids`. */
  snapshot(pids: number[]): Promise<OwnedSocket[]>;
}

/** Remembers each pid's executable (read once per pid while it is in the tree). */
export class ExeCache {
  private readonly map = new Map<number, string | null>();
  constructor(private readonly root = '/proc') {}
  get(pid: number): string | null {
    if (this.map.has(pid)) return this.map.get(pid)!;
    const exe = processExe(pid, this.root);
    this.map.set(pid, exe);
    return exe;
  }
  /** Forgets pids no longer in the tree. */
  retain(pids: ReadonlySet<number>): void {
    for (const pid of this.map.keys()) if (!pids.has(pid)) this.map.delete(pid);
  }
}

function sameAddr(a: string, b: string): boolean {
  const n = (x: string) => (x.toLowerCase().startsWith('::ffff:') ? x.slice(7) : x).toLowerCase();
  return n(a) === n(b);
}

/**
 * Linux procfs: each watched pid's /proc/PID/fd is read for socket inodes; the kernel tables
 * (/proc/net/tcp, tcp6, udp, udp6) are read only when they can tell something new, and then
 * only the rows of those inodes are decoded:
 * - an inode not seen before → tcp and tcp6 are read, then udp and udp6 if it is not there;
 * - a TCP socket not yet connected (state CLOSE, no peer) → re-read until it is;
 * - every `refreshEvery` polls → all four, for state changes (ESTABLISHED → CLOSE_WAIT …) and
 *   for sockets that were not in any table when first seen (unix sockets, unbound sockets, a
 *   UDP socket connect()ed after it was first seen).
 * Reading a table is the expensive step (the kernel formats every socket of the machine).
 */
export class ProcfsBackend implements SocketBackend {
  readonly name = 'procfs' as const;
  /** inode → pid from the last snapshot (the deepest pid when several share a socket). */
  private owners = new Map<number, number>();
  /** Last table row of each inet socket of the tree. */
  private rows = new Map<number, SocketEntry>();
  /** Inodes found in no table at the last full read (unix sockets …). */
  private notInet = new Set<number>();
  private sinceFull = Infinity;
  /** Table reads, for the benchmark and the docs: how often the expensive path ran. */
  tableReads = 0;

  constructor(
    readonly exes: ExeCache,
    private readonly root = '/proc',
    private readonly refreshEvery = 10,
    /** Where the socket tables are: the namespace of trustrun (`ROOT/net`) or of one process. */
    private readonly tables = `${root}/net`,
  ) {}

  private readOwners(pids: number[]): Map<number, number> {
    const owners = new Map<number, number>();
    for (const pid of pids)
      for (const inode of socketInodes(pid, this.root)) owners.set(inode, pid);
    return owners;
  }

  private read(file: 'tcp' | 'tcp6' | 'udp' | 'udp6', want: ReadonlySet<number>): SocketEntry[] {
    this.tableReads++;
    return parseProcNetFor(
      readOr(`${this.tables}/${file}`),
      file.startsWith('tcp') ? 'tcp' : 'udp',
      want,
    );
  }

  snapshotSync(pids: number[]): OwnedSocket[] {
    this.owners = this.readOwners(pids);
    const inodes = new Set(this.owners.keys());
    for (const i of this.rows.keys()) if (!inodes.has(i)) this.rows.delete(i);
    for (const i of this.notInet) if (!inodes.has(i)) this.notInet.delete(i);
    this.sinceFull++;
    const unknown = new Set<number>();
    for (const i of inodes) if (!this.rows.has(i) && !this.notInet.has(i)) unknown.add(i);
    let connecting = false;
    for (const r of this.rows.values()) {
      if (r.protocol === 'tcp' && r.remotePort === 0 && r.state !== 10) connecting = true;
    }
    if (inodes.size > 0 && this.sinceFull >= this.refreshEvery) {
      this.rows.clear();
      for (const f of ['tcp', 'tcp6', 'udp', 'udp6'] as const) {
        for (const e of this.read(f, inodes)) this.rows.set(e.inode, e);
      }
      this.notInet = new Set([...inodes].filter((i) => !this.rows.has(i)));
      this.sinceFull = 0;
    } else if (unknown.size > 0 || connecting) {
      const want = new Set([
        ...unknown,
        ...[...this.rows.values()].filter((r) => r.protocol === 'tcp').map((r) => r.inode),
      ]);
      for (const f of ['tcp', 'tcp6'] as const)
        for (const e of this.read(f, want)) this.rows.set(e.inode, e);
      const left = [...unknown].filter((i) => !this.rows.has(i));
      if (left.length > 0) {
        const wantUdp = new Set(left);
        for (const f of ['udp', 'udp6'] as const)
          for (const e of this.read(f, wantUdp)) this.rows.set(e.inode, e);
        // Not in any table yet: looked at again at the next full read.
        for (const i of left) if (!this.rows.has(i)) this.notInet.add(i);
      }
    }
    const order = new Map(pids.map((p, i) => [p, i]));
    const out: OwnedSocket[] = [];
    for (const [inode, e] of this.rows) out.push(this.toOwned(e, this.owners.get(inode)!));
    out.sort((a, b) => order.get(a.pid)! - order.get(b.pid)!);
    return out;
  }

  snapshot(pids: number[]): Promise<OwnedSocket[]> {
    return Promise.resolve(this.snapshotSync(pids));
  }

  private toOwned(e: SocketEntry, pid: number): OwnedSocket {
    const connected = e.remotePort !== 0;
    const state =
      e.protocol === 'udp'
        ? connected
          ? 'ESTABLISHED'
          : 'CLOSE'
        : (TCP_STATES[e.state] ?? 'UNKNOWN');
    return {
      protocol: e.protocol,
      localAddr: e.localAddr,
      localPort: e.localPort,
      remoteAddr: e.remoteAddr,
      remotePort: e.remotePort,
      state,
      pid,
      exe: this.exes.get(pid),
    };
  }

  /**
   * The owner of the local TCP endpoint addr:port among `pids`: the socket's inode from the
   * kernel table, then the inode → pid map of the last snapshot, re-reading the pids' fds on a
   * miss (a connection younger than the last poll).
   */
  ownerOf(
    addr: string,
    port: number,
    pids: () => number[],
  ): { pid: number; exe: string | null } | null {
    const suffix = ':' + port.toString(16).toUpperCase().padStart(4, '0');
    const inodes: number[] = [];
    for (const text of readTcpTexts(this.tables)) {
      if (!text.includes(suffix + ' ')) continue;
      for (const line of text.split('\n')) {
        const f = line.trim().split(/\s+/);
        // Only the local_address column (field 1) counts.
        if (f.length < 10 || !f[1]!.endsWith(suffix)) continue;
        const inode = Number(f[9]);
        if (inode && sameAddr(decodeAddress(f[1]!.split(':')[0]!), addr)) inodes.push(inode);
      }
    }
    if (inodes.length === 0) return null;
    let pid = firstOwned(inodes, this.owners);
    if (pid === undefined) {
      const fresh = this.readOwners(pids());
      for (const [i, p] of fresh) this.owners.set(i, p);
      pid = firstOwned(inodes, fresh);
    }
    return pid === undefined ? null : { pid, exe: this.exes.get(pid) };
  }
}

function firstOwned(inodes: number[], owners: Map<number, number>): number | undefined {
  for (const i of inodes) {
    const pid = owners.get(i);
    if (pid !== undefined) return pid;
  }
  return undefined;
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: 5000, maxBuffer: 64 << 20 }, (err, out) => {
      // lsof exits 1 when it finds nothing: its (empty) output is still the answer.
      if (err && !(typeof err.code === 'number' && out !== undefined)) reject(err);
      else resolve(out ?? '');
    });
  });
}

/** `ss -Htunp`: the whole table (ss cannot filter by pid), filtered to the tree here. */
export class SsBackend implements SocketBackend {
  readonly name = 'ss' as const;
  constructor(private readonly exes: ExeCache | null) {}
  async snapshot(pids: number[]): Promise<OwnedSocket[]> {
    const text = await run('ss', ['-Htunp']);
    const order = new Map(pids.map((p, i) => [p, i]));
    return parseSs(text, this.exes ? (pid) => this.exes!.get(pid) : undefined)
      .filter((s) => order.has(s.pid))
      .sort((a, b) => order.get(a.pid)! - order.get(b.pid)!);
  }
}

/** `lsof -nP -a -i -p PIDS -F pcfPnTt` (macOS, or Linux without procfs). */
export class LsofBackend implements SocketBackend {
  readonly name = 'lsof' as const;
  constructor(private readonly exes: ExeCache | null) {}
  async snapshot(pids: number[]): Promise<OwnedSocket[]> {
    if (pids.length === 0) return [];
    const text = await run('lsof', lsofArgs(pids));
    const order = new Map(pids.map((p, i) => [p, i]));
    return parseLsofF(text, this.exes ? (pid) => this.exes!.get(pid) : undefined)
      .filter((s) => order.has(s.pid))
      .sort((a, b) => order.get(a.pid)! - order.get(b.pid)!);
  }
}

/** true when `cmd` is an executable file on PATH. */
export function onPath(cmd: string, path = process.env.PATH ?? ''): boolean {
  return findExecutable(cmd, path) !== null;
}

export function procfsUsable(root = '/proc'): boolean {
  try {
    readFileSync(`${root}/net/tcp`, 'utf8');
    readFileSync(`${root}/self/stat`, 'utf8');
    return true;
  } catch {
    return false;
  }
}

/** The backend for `choice`: 'auto' picks procfs, then ss, then lsof. */
export function chooseBackend(
  choice: 'auto' | BackendName,
  exes: ExeCache,
  root = '/proc',
  tables?: string,
): ProcfsBackend | SsBackend | LsofBackend {
  const proc = procfsUsable(root);
  const avail: Record<BackendName, boolean> = {
    procfs: proc,
    ss: proc && onPath('ss'),
    lsof: onPath('lsof'),
  };
  const pick =
    choice === 'auto' ? (['procfs', 'ss', 'lsof'] as const).find((b) => avail[b]) : choice;
  if (!pick || !avail[pick]) {
    throw new TrustRunError(
      'TR_CONFIG',
      pick
        ? `monitor backend '${pick}' is not available on this system`
        : 'no monitor backend available: need /proc, ss or lsof',
      { hint: 'Linux has /proc; on macOS lsof is part of the base system.' },
    );
  }
  if (pick === 'procfs') return new ProcfsBackend(exes, root, undefined, tables);
  if (pick === 'ss') return new SsBackend(exes);
  return new LsofBackend(proc ? exes : null);
}
