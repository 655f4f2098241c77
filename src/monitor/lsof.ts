import type { OwnedSocket } from './types.js';
import { splitEndpoint } from './ss.js';

/** lsof's TCP state names → kernel names (macOS and Linux lsof mostly agree already). */
const LSOF_STATES: Record<string, string> = {
  ESTABLISHED: 'ESTABLISHED',
  SYN_SENT: 'SYN_SENT',
  SYN_RECEIVED: 'SYN_RECV',
  SYN_RECV: 'SYN_RECV',
  FIN_WAIT_1: 'FIN_WAIT1',
  FIN_WAIT1: 'FIN_WAIT1',
  FIN_WAIT_2: 'FIN_WAIT2',
  FIN_WAIT2: 'FIN_WAIT2',
  TIME_WAIT: 'TIME_WAIT',
  CLOSE_WAIT: 'CLOSE_WAIT',
  LAST_ACK: 'LAST_ACK',
  CLOSING: 'CLOSING',
  LISTEN: 'LISTEN',
  CLOSED: 'CLOSE',
};

/** The arguments of the lsof call the backend makes for `pids`. */
export function lsofArgs(pids: number[]): string[] {
  return ['-nP', '-w', '-a', '-i', '-p', pids.join(','), '-F', 'pcfPnTt'];
}

/**
 * Parses `lsof -F pcfPnTt` output (newline-terminated fields; `-F0` NUL-terminated output is
 * accepted too). A `p` line starts a process, `f` a file; `n` is `local->remote` or just
 * `local` for listeners and unconnected UDP (those get remote 0.0.0.0:0).
 */
export function parseLsofF(text: string, exeOf?: (pid: number) => string | null): OwnedSocket[] {
  const out: OwnedSocket[] = [];
  let pid = 0;
  let command: string | null = null;
  let file: Partial<OwnedSocket> & { name?: string } = {};
  const flush = () => {
    if (pid && file.name && (file.protocol === 'tcp' || file.protocol === 'udp')) {
      const [l, r] = file.name.split('->') as [string, string | undefined];
      const local = splitEndpoint(l);
      const remote = r ? splitEndpoint(r) : { addr: '0.0.0.0', port: 0 };
      if (local && remote) {
        out.push({
          protocol: file.protocol,
          localAddr: local.addr,
          localPort: local.port,
          remoteAddr: remote.addr,
          remotePort: remote.port,
          state: file.state ?? (r ? 'ESTABLISHED' : 'CLOSE'),
          pid,
          exe: exeOf ? (exeOf(pid) ?? command) : command,
        });
      }
    }
    file = {};
  };
  for (const raw of text.split(/[\n\0]/)) {
    if (!raw) continue;
    const tag = raw[0];
    const value = raw.slice(1);
    switch (tag) {
      case 'p':
        flush();
        pid = Number(value);
        command = null;
        break;
      case 'c':
        command = value;
        break;
      case 'f':
        flush();
        break;
      case 'P':
        file.protocol = value.toLowerCase() as OwnedSocket['protocol'];
        break;
      case 'n':
        file.name = value;
        break;
      case 'T':
        if (value.startsWith('ST=')) file.state = LSOF_STATES[value.slice(3)] ?? value.slice(3);
        break;
      default:
        break;
    }
  }
  flush();
  return out;
}
