import type { OwnedSocket, Protocol } from './types.js';

/** ss state names → the kernel names used everywhere else. */
const SS_STATES: Record<string, string> = {
  ESTAB: 'ESTABLISHED',
  'SYN-SENT': 'SYN_SENT',
  'SYN-RECV': 'SYN_RECV',
  'FIN-WAIT-1': 'FIN_WAIT1',
  'FIN-WAIT-2': 'FIN_WAIT2',
  'TIME-WAIT': 'TIME_WAIT',
  'CLOSE-WAIT': 'CLOSE_WAIT',
  'LAST-ACK': 'LAST_ACK',
  CLOSING: 'CLOSING',
  LISTEN: 'LISTEN',
  UNCONN: 'CLOSE',
  CLOSED: 'CLOSE',
};

/** Splits ss's `addr:port` (`[v6]:port`, `*:*`, `a.b.c.d%iface:port`) into its parts. */
export function splitEndpoint(text: string): { addr: string; port: number } | null {
  const colon = text.lastIndexOf(':');
  if (colon < 0) return null;
  let addr = text.slice(0, colon);
  const portText = text.slice(colon + 1);
  const port = portText === '*' ? 0 : Number(portText);
  if (!Number.isInteger(port)) return null;
  if (addr.startsWith('[') && addr.endsWith(']')) addr = addr.slice(1, -1);
  const pct = addr.indexOf('%');
  if (pct >= 0) addr = addr.slice(0, pct);
  if (addr === '*') addr = '0.0.0.0';
  if (addr.toLowerCase().startsWith('::ffff:') && addr.includes('.')) addr = addr.slice(7);
  return { addr, port };
}

/**
 * Parses `ss -tunp` / `ss -Htunap` output (with or without the header line): one entry per
 * (socket, owning process). Rows without a `users:` field (another user's socket, seen without
 * privileges) are skipped: they cannot be attributed.
 */
export function parseSs(text: string, exeOf?: (pid: number) => string | null): OwnedSocket[] {
  const out: OwnedSocket[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 6 || f[0] === 'Netid') continue;
    const protocol = f[0] as Protocol;
    if (protocol !== 'tcp' && protocol !== 'udp') continue;
    const local = splitEndpoint(f[4]!);
    const remote = splitEndpoint(f[5]!);
    if (!local || !remote) continue;
    const users = line.slice(line.indexOf('users:(') + 1);
    if (!line.includes('users:(')) continue;
    const state = SS_STATES[f[1]!] ?? f[1]!;
    for (const m of users.matchAll(/\("((?:[^"\\]|\\.)*)",pid=(\d+),fd=(\d+)\)/g)) {
      const pid = Number(m[2]);
      out.push({
        protocol,
        localAddr: local.addr,
        localPort: local.port,
        remoteAddr: remote.addr,
        remotePort: remote.port,
        state,
        pid,
        exe: exeOf ? (exeOf(pid) ?? m[1]!) : m[1]!,
      });
    }
  }
  return out;
}
