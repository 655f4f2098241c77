import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import {
  decodeAddress,
  findSocketOwner,
  isAlive,
  killTree,
  parseProcNet,
  processTree,
} from '../../../src/monitor/index.js';
import { FakeProc } from './fakeproc.js';
import { until } from '../../helpers/wait.js';

describe('procfs parsing', () => {
  it('decodes IPv4, IPv6 and IPv4-mapped addresses as the kernel writes them', () => {
    expect(decodeAddress('0100007F')).toBe('127.0.0.1');
    expect(decodeAddress('0202A8C0')).toBe('192.168.2.2');
    expect(decodeAddress('00000000000000000000000001000000')).toBe('::1');
    expect(decodeAddress('0000000000000000FFFF00000100007F')).toBe('127.0.0.1');
    expect(decodeAddress('B80D0120000000000000000001000000')).toBe('2001:db8::1');
  });

  it('parses a recorded /proc/net/tcp table', () => {
    const text = [
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
      '   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0',
      '   1: 0100007F:D431 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 67890 1 0000000000000000 20 4 30 10 -1',
    ].join('\n');
    expect(parseProcNet(text, 'tcp')).toEqual([
      {
        protocol: 'tcp',
        localAddr: '127.0.0.1',
        localPort: 8080,
        remoteAddr: '0.0.0.0',
        remotePort: 0,
        state: 10,
        inode: 12345,
      },
      {
        protocol: 'tcp',
        localAddr: '127.0.0.1',
        localPort: 54321,
        remoteAddr: '127.0.0.1',
        remotePort: 8080,
        state: 1,
        inode: 67890,
      },
    ]);
  });
});

describe('socket owner (recorded procfs)', () => {
  let dir = '';
  // 127.0.0.1:54321 (D431) seen three times: an earlier connection to port 8080 (1F90) in
  // TIME_WAIT (06), owned by no process (inode 0), and two live ones, to 8080 and to 9090 (2382),
  // owned by different processes.
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'trustrun-proc-'));
    const proc = new FakeProc(dir);
    proc.proc(100, 1);
    proc.proc(200, 1);
    proc.fd(100, 3, 1111);
    proc.fd(200, 3, 2222);
    proc.table('tcp', [
      ['0100007F:D431', '0100007F:1F90', '06', 0],
      ['0100007F:D431', '0100007F:2382', '01', 1111],
      ['0100007F:D431', '0100007F:1F90', '01', 2222],
    ]);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('skips rows no process owns (TIME_WAIT) and takes the row of the given peer port', () => {
    const find = (peerPort?: number) =>
      findSocketOwner('127.0.0.1', 54321, { root: dir, peerPort })?.pid;
    expect(find(8080)).toBe(200);
    expect(find(9090)).toBe(100);
    expect(find(7070)).toBeUndefined();
    // Without the peer port, any owned row of that local port: never the TIME_WAIT one.
    expect([100, 200]).toContain(find());
  });
});

describe('socket owner and process tree (live procfs)', () => {
  let server: Server;
  const children: ChildProcess[] = [];
  afterEach(async () => {
    for (const c of children) c.kill('SIGKILL');
    children.length = 0;
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  });

  it('finds the process behind a client socket from its source port', async () => {
    const accepted = new Promise<Socket>((resolve) => {
      server = createServer((s) => resolve(s));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const child = spawn(process.execPath, [
      '-e',
      `require('net').connect(${port}, '127.0.0.1'); setInterval(() => {}, 1000)`,
    ]);
    children.push(child);
    const sock = await accepted;
    const owner = findSocketOwner(sock.remoteAddress!, sock.remotePort!, {
      peerPort: sock.localPort!,
    });
    expect(owner).toEqual({ pid: child.pid, exe: process.execPath });
    expect(findSocketOwner('127.0.0.1', 1)).toBeNull();
    sock.destroy();
  });

  it('kills a whole process tree, grandchildren included', async () => {
    server = createServer();
    const child = spawn('sh', ['-c', 'sleep 30 & sleep 30 & wait']);
    children.push(child);
    await until(() => processTree(child.pid!).length === 3, 'sh and its two sleeps');
    const tree = processTree(child.pid!);
    expect(tree.length).toBe(3);
    const exited = new Promise((r) => child.once('exit', r));
    expect(killTree(child.pid!, 200).sort()).toEqual([...tree].sort());
    await exited;
    await new Promise((r) => setTimeout(r, 300));
    for (const pid of tree) expect(isAlive(pid)).toBe(false);
  });
});
