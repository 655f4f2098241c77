import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

/** One row of /proc/net/{tcp,tcp6,udp,udp6}. */
export interface SocketEntry {
  protocol: 'tcp' | 'udp';
  localAddr: string;
  localPort: number;
  remoteAddr: string;
  remotePort: number;
  /** Kernel TCP state number (1 = ESTABLISHED, 10 = LISTEN …). */
  state: number;
  inode: number;
}

export const TCP_STATES: Record<number, string> = {
  1: 'ESTABLISHED',
  2: 'SYN_SENT',
  3: 'SYN_RECV',
  4: 'FIN_WAIT1',
  5: 'FIN_WAIT2',
  6: 'TIME_WAIT',
  7: 'CLOSE',
  8: 'CLOSE_WAIT',
  9: 'LAST_ACK',
  10: 'LISTEN',
  11: 'CLOSING',
};

/** Decodes the kernel's hex address: 8 hex digits (IPv4) or 32 (IPv6), in host byte order words. */
export function decodeAddress(hex: string): string {
  if (hex.length === 8) {
    const n = parseInt(hex, 16);
    return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff].join('.');
  }
  const bytes: number[] = [];
  for (let w = 0; w < 4; w++) {
    const word = hex.slice(w * 8, w * 8 + 8);
    for (let b = 3; b >= 0; b--) bytes.push(parseInt(word.slice(b * 2, b * 2 + 2), 16));
  }
  // IPv4-mapped (::ffff:a.b.c.d) is shown as the IPv4 address.
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    return bytes.slice(12).join('.');
  }
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return compressIpv6(groups);
}

function compressIpv6(groups: string[]): string {
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < groups.length;) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best === -1) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/** Parses the text of /proc/net/tcp (or tcp6, udp, udp6). */
export function parseProcNet(text: string, protocol: 'tcp' | 'udp'): SocketEntry[] {
  const out: SocketEntry[] = [];
  const lines = text.split('\n');
  for (let i = 1; i < lines.length; i++) {
    const f = lines[i]!.trim().split(/\s+/);
    if (f.length < 10) continue;
    out.push(rowOf(f, protocol, Number(f[9])));
  }
  return out;
}

/** One row of a socket table, split into its fields (at least 10). */
function rowOf(f: string[], protocol: 'tcp' | 'udp', inode: number): SocketEntry {
  const [la, lp] = f[1]!.split(':') as [string, string];
  const [ra, rp] = f[2]!.split(':') as [string, string];
  return {
    protocol,
    localAddr: decodeAddress(la),
    localPort: parseInt(lp, 16),
    remoteAddr: decodeAddress(ra),
    remotePort: parseInt(rp, 16),
    state: parseInt(f[3]!, 16),
    inode,
  };
}

/** A file's text, or '' when it cannot be read. */
export function readOr(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** Every socket of the machine's (this network namespace's) TCP and UDP tables. */
export function readSocketTable(root = '/proc'): SocketEntry[] {
  return [
    ...parseProcNet(readOr(`${root}/net/tcp`), 'tcp'),
    ...parseProcNet(readOr(`${root}/net/tcp6`), 'tcp'),
    ...parseProcNet(readOr(`${root}/net/udp`), 'udp'),
    ...parseProcNet(readOr(`${root}/net/udp6`), 'udp'),
  ];
}

/** Socket inodes held open by a process (empty when it is gone or not ours to read). */
export function socketInodes(pid: number, root = '/proc'): Set<number> {
  const inodes = new Set<number>();
  let fds: string[];
  try {
    fds = readdirSync(`${root}/${pid}/fd`);
  } catch {
    return inodes;
  }
  for (const fd of fds) {
    let link: string;
    try {
      link = readlinkSync(`${root}/${pid}/fd/${fd}`);
    } catch {
      continue;
    }
    if (link.startsWith('socket:[')) inodes.add(Number(link.slice(8, -1)));
  }
  return inodes;
}

export function processExe(pid: number, root = '/proc'): string | null {
  try {
    return readlinkSync(`${root}/${pid}/exe`);
  } catch {
    return null;
  }
}

/** Parent pid from /proc/PID/stat, or null when the process is gone. */
export function parentPid(pid: number, root = '/proc'): number | null {
  const stat = readOr(`${root}/${pid}/stat`);
  if (!stat) return null;
  // The command name may hold spaces and parentheses: fields start after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(rest[1]);
}

/** All pids on the machine. */
export function allPids(root = '/proc'): number[] {
  const out: number[] = [];
  for (const name of readdirSync(root)) if (/^\d+$/.test(name)) out.push(Number(name));
  return out;
}

/** The pid and every descendant of it, from one pass over /proc. */
export function processTree(rootPid: number, root = '/proc'): number[] {
  const children = new Map<number, number[]>();
  for (const pid of allPids(root)) {
    const ppid = parentPid(pid, root);
    if (ppid === null) continue;
    let list = children.get(ppid);
    if (!list) children.set(ppid, (list = []));
    list.push(pid);
  }
  const out: number[] = [];
  const stack = [rootPid];
  const seen = new Set<number>();
  while (stack.length) {
    const pid = stack.pop()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    out.push(pid);
    for (const c of children.get(pid) ?? []) stack.push(c);
  }
  return out;
}

function sameAddr(a: string, b: string): boolean {
  return a.replace(/^::ffff:/, '') === b.replace(/^::ffff:/, '');
}

/**
 * Finds the process that owns the TCP socket whose local end is addr:port (the client end of a
 * connection to the proxy). `peerPort` is the other end's port (the proxy's side of that
 * connection): the same local address and port can appear more than once in the socket table
 * (an earlier connection in TIME_WAIT, which no process owns, or a live one to another
 * destination), so with it only the right row is taken (0 or absent: any). Rows no process
 * owns are skipped.
 * `candidates` limits the search (e.g. a monitored process tree); without it every process is
 * searched.
 */
export function findSocketOwner(
  addr: string,
  port: number,
  opts: { candidates?: number[]; root?: string; exclude?: number[]; peerPort?: number } = {},
): { pid: number; exe: string | null } | null {
  const root = opts.root ?? '/proc';
  const inodes = new Set(
    readSocketTable(root)
      .filter(
        (e) =>
          e.protocol === 'tcp' &&
          e.inode !== 0 &&
          e.localPort === port &&
          sameAddr(e.localAddr, addr) &&
          (!opts.peerPort || e.remotePort === opts.peerPort),
      )
      .map((e) => e.inode),
  );
  if (inodes.size === 0) return null;
  const exclude = new Set(opts.exclude ?? [process.pid]);
  for (const pid of opts.candidates ?? allPids(root)) {
    if (exclude.has(pid)) continue;
    for (const inode of socketInodes(pid, root)) {
      if (inodes.has(inode)) return { pid, exe: processExe(pid, root) };
    }
  }
  return null;
}

/** true while the process exists and is not a zombie (exited, waiting to be reaped). */
export function isAlive(pid: number, root = '/proc'): boolean {
  const stat = readOr(`${root}/${pid}/stat`);
  if (!stat) return false;
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
}

/** The fields of /proc/PID/stat the monitor needs. */
export interface ProcStat {
  ppid: number;
  /** One-letter state (R, S, D, Z, T …). */
  state: string;
  /** Start time in clock ticks since boot: with the pid, it identifies a process across reuse. */
  start: number;
}

/** Parses the text of /proc/PID/stat (the command name may hold spaces and parentheses). */
export function parseStat(text: string): ProcStat | null {
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  const f = text.slice(close + 2).split(' ');
  // After the name: state(0) ppid(1) … starttime is field 22 of the line, index 19 here.
  if (f.length < 20) return null;
  return { state: f[0]!, ppid: Number(f[1]), start: Number(f[19]) };
}

export function readStat(pid: number, root = '/proc'): ProcStat | null {
  const text = readOr(`${root}/${pid}/stat`);
  return text ? parseStat(text) : null;
}

/**
 * Like parseProcNet, but keeps only the rows whose inode is in `inodes` (the sockets of the
 * watched processes) and decodes nothing else: the poll reads whole tables, most rows are not
 * ours, and skipping them early keeps a poll cheap on busy machines.
 */
export function parseProcNetFor(
  text: string,
  protocol: 'tcp' | 'udp',
  inodes: ReadonlySet<number>,
  out: SocketEntry[] = [],
): SocketEntry[] {
  let pos = text.indexOf('\n') + 1;
  while (pos > 0 && pos < text.length) {
    const end = text.indexOf('\n', pos);
    const line = text.slice(pos, end < 0 ? text.length : end);
    pos = end < 0 ? text.length : end + 1;
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const inode = Number(f[9]);
    if (!inodes.has(inode)) continue;
    out.push(rowOf(f, protocol, inode));
  }
  return out;
}

/**
 * The kernel's TCP socket tables (IPv4, IPv6) in directory `tables` (/proc/net, or
 * /proc/PID/net for another network namespace), one string each (missing files read as '').
 */
export function readTcpTexts(tables = '/proc/net'): string[] {
  return [readOr(`${tables}/tcp`), readOr(`${tables}/tcp6`)];
}
