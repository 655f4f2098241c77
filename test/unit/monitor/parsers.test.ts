import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  lsofArgs,
  parseLsofF,
  parseProcNet,
  parseProcNetFor,
  parsePsTable,
  parseSs,
  parseStat,
  splitEndpoint,
} from '../../../src/monitor/index.js';

const dir = new URL('../../fixtures/monitor/', import.meta.url);
const fixture = (name: string) => readFileSync(new URL(name, dir), 'utf8');
/** Recorded by test/fixtures/monitor/record.mjs: the child's pid, ports and socket inodes. */
const rec = JSON.parse(fixture('expected.json')) as {
  pid: number;
  server4: number;
  server6: number;
  a: number;
  b: number;
  u: number;
  l: number;
  inodes: Record<string, number>;
};
const childInodes = new Set(Object.values(rec.inodes));

/** The child's four sockets, as every backend must report them. */
const expected = [
  {
    protocol: 'tcp',
    localAddr: '127.0.0.1',
    localPort: rec.a,
    remoteAddr: '127.0.0.1',
    remotePort: rec.server4,
    state: 'ESTABLISHED',
  },
  {
    protocol: 'tcp',
    localAddr: '::1',
    localPort: rec.b,
    remoteAddr: '::1',
    remotePort: rec.server6,
    state: 'ESTABLISHED',
  },
  {
    protocol: 'udp',
    localAddr: '127.0.0.1',
    localPort: rec.u,
    remoteAddr: '127.0.0.1',
    remotePort: 9,
    state: 'ESTABLISHED',
  },
];
const byPort = <T extends { localPort: number }>(xs: T[]) =>
  [...xs].sort((x, y) => x.localPort - y.localPort);

describe('recorded /proc/net tables', () => {
  it('finds exactly the child’s sockets by inode, in all four tables', () => {
    const rows = [
      ...parseProcNetFor(fixture('proc-net-tcp.txt'), 'tcp', childInodes),
      ...parseProcNetFor(fixture('proc-net-tcp6.txt'), 'tcp', childInodes),
      ...parseProcNetFor(fixture('proc-net-udp.txt'), 'udp', childInodes),
      ...parseProcNetFor(fixture('proc-net-udp6.txt'), 'udp', childInodes),
    ];
    // Four sockets: two TCP clients, one connected UDP socket, one listener.
    expect(rows).toHaveLength(4);
    const listener = rows.find((r) => r.state === 10)!;
    expect(listener).toMatchObject({ localAddr: '127.0.0.1', localPort: rec.l, remotePort: 0 });
    const connected = rows.filter((r) => r.remotePort !== 0);
    expect(
      byPort(connected).map(({ protocol, localAddr, localPort, remoteAddr, remotePort }) => ({
        protocol,
        localAddr,
        localPort,
        remoteAddr,
        remotePort,
      })),
    ).toEqual(byPort(expected).map(({ state: _s, ...rest }) => rest));
    for (const r of rows) expect(childInodes.has(r.inode)).toBe(true);
  });

  it('filtered parsing agrees with the full parser', () => {
    for (const [file, proto] of [
      ['proc-net-tcp.txt', 'tcp'],
      ['proc-net-tcp6.txt', 'tcp'],
      ['proc-net-udp.txt', 'udp'],
    ] as const) {
      const all = parseProcNet(fixture(file), proto);
      expect(all.length).toBeGreaterThan(0);
      const every = new Set(all.map((r) => r.inode));
      expect(parseProcNetFor(fixture(file), proto, every)).toEqual(all);
      expect(parseProcNetFor(fixture(file), proto, new Set())).toEqual([]);
    }
  });

  it('parses /proc/PID/stat with a command name holding spaces and parentheses', () => {
    const stat =
      '4242 (my (odd) prog) S 4100 4242 4100 0 -1 4194304 120 0 0 0 1 0 0 0 20 0 1 0 987654 12345678 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0';
    expect(parseStat(stat)).toEqual({ state: 'S', ppid: 4100, start: 987654 });
    expect(parseStat('garbage')).toBeNull();
  });
});

describe('recorded ss output', () => {
  for (const file of ['ss-Htunp.txt', 'ss-tunap.txt']) {
    it(`${file}: the child’s connected sockets with pid and command`, () => {
      const mine = parseSs(fixture(file)).filter((s) => s.pid === rec.pid);
      const connected = mine.filter((s) => s.remotePort !== 0);
      expect(byPort(connected).map(({ pid: _p, exe: _e, ...rest }) => rest)).toEqual(
        byPort(expected),
      );
      for (const s of mine) expect(s.exe).toBe('node');
      if (file === 'ss-tunap.txt') {
        // -a also lists the listener, which the monitor skips as not a connection.
        expect(mine.find((s) => s.state === 'LISTEN')).toMatchObject({ localPort: rec.l });
      }
    });
  }

  it('uses the executable path when one is given', () => {
    const rows = parseSs(fixture('ss-Htunp.txt'), (pid) =>
      pid === rec.pid ? '/usr/bin/node' : null,
    );
    expect(rows.find((r) => r.pid === rec.pid)!.exe).toBe('/usr/bin/node');
  });

  it('splits ss endpoints: brackets, zone ids, wildcards, IPv4-mapped', () => {
    expect(splitEndpoint('[::1]:8080')).toEqual({ addr: '::1', port: 8080 });
    expect(splitEndpoint('10.0.0.2%eth0:68')).toEqual({ addr: '10.0.0.2', port: 68 });
    expect(splitEndpoint('*:*')).toEqual({ addr: '0.0.0.0', port: 0 });
    expect(splitEndpoint('[::ffff:127.0.0.1]:443')).toEqual({ addr: '127.0.0.1', port: 443 });
    expect(splitEndpoint('[fe80::1%lo]:546')).toEqual({ addr: 'fe80::1', port: 546 });
    expect(splitEndpoint('nonsense')).toBeNull();
  });

  it('reads several owners of one socket (inherited across fork)', () => {
    const line =
      'tcp ESTAB 0 0 10.1.2.3:40000 93.184.216.34:443 users:(("curl",pid=10,fd=3),("sh",pid=9,fd=3))';
    expect(parseSs(line).map((s) => [s.pid, s.exe, s.state])).toEqual([
      [10, 'curl', 'ESTABLISHED'],
      [9, 'sh', 'ESTABLISHED'],
    ]);
  });
});

describe('recorded lsof -F output', () => {
  it('the child’s sockets, states and command', () => {
    const rows = parseLsofF(fixture('lsof-F.txt'));
    expect(rows.every((r) => r.pid === rec.pid && r.exe === 'node')).toBe(true);
    const connected = rows.filter((r) => r.remotePort !== 0);
    expect(byPort(connected).map(({ pid: _p, exe: _e, ...rest }) => rest)).toEqual(
      byPort(expected),
    );
    expect(rows.find((r) => r.state === 'LISTEN')).toMatchObject({
      localAddr: '127.0.0.1',
      localPort: rec.l,
      remoteAddr: '0.0.0.0',
      remotePort: 0,
    });
  });

  it('accepts NUL-terminated fields (-F0) and macOS state names', () => {
    const text =
      [
        'p501',
        'cRscript',
        'f7',
        'tIPv4',
        'PTCP',
        'n192.168.1.5:50123->20.1.2.3:443',
        'TST=SYN_SENT',
        'f8',
        'tIPv6',
        'PTCP',
        'n[fe80::1%en0]:5000->[2001:db8::5]:8443',
        'TST=CLOSE_WAIT',
        'f9',
        'tIPv4',
        'PUDP',
        'n*:5353',
      ].join('\0') + '\0';
    expect(parseLsofF(text)).toEqual([
      {
        protocol: 'tcp',
        localAddr: '192.168.1.5',
        localPort: 50123,
        remoteAddr: '20.1.2.3',
        remotePort: 443,
        state: 'SYN_SENT',
        pid: 501,
        exe: 'Rscript',
      },
      {
        protocol: 'tcp',
        localAddr: 'fe80::1',
        localPort: 5000,
        remoteAddr: '2001:db8::5',
        remotePort: 8443,
        state: 'CLOSE_WAIT',
        pid: 501,
        exe: 'Rscript',
      },
      {
        protocol: 'udp',
        localAddr: '0.0.0.0',
        localPort: 5353,
        remoteAddr: '0.0.0.0',
        remotePort: 0,
        state: 'CLOSE',
        pid: 501,
        exe: 'Rscript',
      },
    ]);
  });

  it('asks lsof for the tree’s pids only, in the -F fields the parser reads', () => {
    expect(lsofArgs([3, 4])).toEqual(['-nP', '-w', '-a', '-i', '-p', '3,4', '-F', 'pcfPnTt']);
  });
});

describe('ps table (other systems)', () => {
  it('parses pid and ppid columns', () => {
    const t = parsePsTable('    1     0 Ss\n  200     1 S\n  201   200 Z\n\nbad line\n');
    expect([...t]).toEqual([
      [1, 0],
      [200, 1],
      [201, 200],
    ]);
  });
});
