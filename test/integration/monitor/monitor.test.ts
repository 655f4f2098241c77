import { spawn } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { isTrustRunError, silentLogger } from '../../../src/core/index.js';
import {
  isAlive,
  onPath,
  startMonitor,
  type KillInfo,
  type Monitor,
  type MonitorEvent,
  type UpdateReason,
} from '../../../src/monitor/index.js';
import { loadPolicy } from '../../../src/policy/index.js';
import {
  Kids,
  PYTHON,
  connectScript,
  exited,
  localServer,
  policyFile,
  sleep,
  type LocalServer,
} from './helpers.js';
import { until } from '../../helpers/wait.js';

const kids = new Kids();
const servers: LocalServer[] = [];
const monitors: Monitor[] = [];
const cleanups: Array<() => void> = [];

afterEach(async () => {
  for (const m of monitors.splice(0)) await m.stop();
  kids.killAll();
  for (const s of servers.splice(0)) await s.close();
  for (const c of cleanups.splice(0)) c();
});

async function server(): Promise<LocalServer> {
  const s = await localServer();
  servers.push(s);
  return s;
}

function watch(rootPid: number, extra: Partial<Parameters<typeof startMonitor>[0]> = {}) {
  const events: MonitorEvent[] = [];
  const updates: Array<[MonitorEvent, UpdateReason]> = [];
  const kills: KillInfo[] = [];
  const m = startMonitor(
    {
      rootPid,
      intervalMs: 20,
      resolveNames: false,
      onEvent: (e) => events.push({ ...e }),
      onUpdate: (e, r) => updates.push([{ ...e }, r]),
      onKill: (k) => kills.push(k),
      ...extra,
    },
    silentLogger(),
  );
  monitors.push(m);
  return { m, events, updates, kills };
}

async function policy(yaml: string) {
  const p = policyFile(yaml);
  cleanups.push(p.cleanup);
  return loadPolicy(p.file, { warn: () => {} });
}

describe('monitor with real processes (procfs)', () => {
  it('reports a direct connection once, with pid, exe and both ends, then its close', async () => {
    const srv = await server();
    const child = kids.node(connectScript(srv.port, 300, 600));
    const w = watch(child.pid!);
    const [sock] = await srv.waitFor(1);
    await w.m.done;
    expect(w.events).toHaveLength(1);
    const e = w.events[0]!;
    expect(e).toMatchObject({
      pid: child.pid,
      exe: realpathSync(process.execPath),
      protocol: 'tcp',
      localAddr: '127.0.0.1',
      localPort: sock!.remotePort,
      remoteAddr: '127.0.0.1',
      remotePort: srv.port,
      hostname: null,
      org: null,
      enforced: null,
    });
    expect(e.verdict).toMatchObject({ action: 'allow', violation: false, policy: null });
    const closed = w.updates.filter(([, r]) => r === 'closed');
    expect(closed).toHaveLength(1);
    expect(closed[0]![0].state).toBe('CLOSED');
    // It was held ~600 ms and polled every 20 ms: several sightings.
    expect(closed[0]![0].lastSeen - e.firstSeen).toBeGreaterThan(200);
    const st = w.m.stats();
    expect(st.events).toBe(1);
    expect(st.polls).toBeGreaterThan(5);
    expect(st.backend).toBe('procfs');
  });

  it.skipIf(!PYTHON)('catches a grandchild forked after the start (python3 os.fork)', async () => {
    const srv = await server();
    const script = [
      'import os, socket, time',
      'time.sleep(0.3)',
      'if os.fork() == 0:',
      '    if os.fork() == 0:',
      `        s = socket.create_connection(("127.0.0.1", ${srv.port}))`,
      '        print(os.getpid(), flush=True)',
      '        time.sleep(0.8)',
      '        os._exit(0)',
      '    os.wait()',
      '    os._exit(0)',
      'os.wait()',
    ].join('\n');
    const root = kids.add(spawn(PYTHON!, ['-c', script], { stdio: ['ignore', 'pipe', 'ignore'] }));
    const grandchild = new Promise<number>((r) =>
      root.stdout!.once('data', (d: Buffer) => r(Number(d.toString().trim()))),
    );
    const w = watch(root.pid!);
    await w.m.done;
    const gpid = await grandchild;
    expect(gpid).not.toBe(root.pid);
    expect(w.events.map((e) => [e.pid, e.remotePort])).toEqual([[gpid, srv.port]]);
    expect(w.events[0]!.exe).toBe(realpathSync(PYTHON!));
  });

  it('a kill verdict from a CIDR rule terminates the whole tree', async () => {
    const srv = await server();
    const pol = await policy(
      `version: 2\nname: no-local\nrules:\n  - match: 127.0.0.0/8\n    ports: [${srv.port}]\n    action: kill\n    reason: local exfiltration\ndefaults:\n  action: allow\n`,
    );
    // sh → (node that connects after 1 s and would stay 30 s) + (sleep 30): three processes,
    // all in the tree long before the connection that gets them killed.
    const root = kids.sh(
      `${process.execPath} -e "${connectScript(srv.port, 1000, 30_000).replace(/"/g, '\\"')}" & sleep 30 & wait`,
    );
    const w = watch(root.pid!, { policy: pol, killGraceMs: 300 });
    await until(() => w.m.tree().length === 3, 'three processes in the tree', 900);
    const tree = w.m.tree();
    await Promise.race([exited(root), sleep(10_000)]);
    await w.m.done;
    expect(w.events).toHaveLength(1);
    const e = w.events[0]!;
    expect(e.verdict).toMatchObject({
      action: 'kill',
      violation: true,
      rule: '127.0.0.0/8',
      reason: 'local exfiltration',
      policy: 'no-local',
    });
    expect(e.enforced).toBe(true);
    expect(w.kills).toHaveLength(1);
    expect([...w.kills[0]!.pids].sort()).toEqual([...tree].sort());
    await sleep(400);
    for (const pid of tree) expect(isAlive(pid)).toBe(false);
    expect(w.m.stats().violations).toBe(1);
  });

  it('a block verdict on a direct connection is recorded as not enforced; nothing is killed', async () => {
    const srv = await server();
    const pol = await policy(
      `version: 2\nname: b\nrules:\n  - match: 127.0.0.1\n    action: block\ndefaults:\n  action: allow\n`,
    );
    const child = kids.node(connectScript(srv.port, 200, 1_000));
    const w = watch(child.pid!, { policy: pol });
    await srv.waitFor(1);
    await sleep(300);
    expect(isAlive(child.pid!)).toBe(true);
    await w.m.done;
    await exited(child);
    expect(child.exitCode).toBe(0);
    expect(w.events[0]!.verdict).toMatchObject({ action: 'block', violation: true });
    expect(w.events[0]!.enforced).toBe(false);
    expect(w.kills).toEqual([]);
  });

  it('killOnViolation: false records a kill verdict without killing', async () => {
    const srv = await server();
    const pol = await policy(`version: 2\nname: k\nrules: []\ndefaults:\n  action: kill\n`);
    const child = kids.node(connectScript(srv.port, 200, 700));
    const w = watch(child.pid!, { policy: pol, killOnViolation: false });
    await w.m.done;
    await exited(child);
    expect(child.exitCode).toBe(0);
    expect(w.events[0]!.verdict.action).toBe('kill');
    expect(w.events[0]!.enforced).toBe(false);
    expect(w.kills).toEqual([]);
  });

  it('attribute() finds the child owning a client socket, even before a poll saw it', async () => {
    const srv = await server();
    const root = kids.sh(
      `sleep 0.3; ${process.execPath} -e "${connectScript(srv.port, 0, 5_000).replace(/"/g, '\\"')}"`,
    );
    // A poll interval far longer than the test: attribution must refresh on its own.
    const w = watch(root.pid!, { intervalMs: 60_000 });
    const [sock] = await srv.waitFor(1);
    const owner = w.m.attribute(sock!.remoteAddress!, sock!.remotePort!);
    expect(owner).not.toBeNull();
    expect(owner!.pid).not.toBe(root.pid);
    expect(owner!.exe).toBe(realpathSync(process.execPath));
    expect(w.m.tree()).toContain(owner!.pid);
    expect(await w.m.attributeAsync(sock!.remoteAddress!, sock!.remotePort!)).toEqual(owner);
    // The server's own end, and an endpoint nobody holds, are not the tree's.
    expect(w.m.attribute('127.0.0.1', srv.port)).toBeNull();
    expect(w.m.attribute('127.0.0.1', 1)).toBeNull();
  });

  it('ignore() hides connections to the proxy but attribute() still knows them', async () => {
    const proxy = await server();
    const direct = await server();
    const child = kids.node(
      `const net = require('net'); setTimeout(() => { net.connect(${proxy.port}, '127.0.0.1').on('error', () => {});
       net.connect(${direct.port}, '127.0.0.1').on('error', () => {}); }, 200);
       setTimeout(() => process.exit(0), 1500);`,
    );
    const w = watch(child.pid!, {
      ignore: (addr, port) => addr === '127.0.0.1' && port === proxy.port,
    });
    const [viaProxy] = await proxy.waitFor(1);
    await direct.waitFor(1);
    await sleep(200);
    expect(w.m.attribute('127.0.0.1', viaProxy!.remotePort!)).toMatchObject({ pid: child.pid });
    await w.m.done;
    expect(w.events.map((e) => e.remotePort)).toEqual([direct.port]);
  });

  it('refuses a pid that does not exist, and a bad interval', () => {
    const call = (rootPid: number, intervalMs?: number) => () =>
      startMonitor({ rootPid, intervalMs, onEvent: () => {} }, silentLogger());
    expect(call(99_999_999)).toThrow(/no process with pid 99999999/);
    try {
      call(99_999_999)();
    } catch (err) {
      expect(isTrustRunError(err, 'TR_PROCESS')).toBe(true);
    }
    expect(call(process.pid, 0)).toThrow(/interval/);
  });

  it('stop() ends monitoring of a live process and resolves done', async () => {
    const child = kids.node('setTimeout(() => {}, 30000)');
    const w = watch(child.pid!);
    await sleep(100);
    await w.m.stop();
    await w.m.done;
    const polls = w.m.stats().polls;
    await sleep(100);
    expect(w.m.stats().polls).toBe(polls);
    expect(isAlive(child.pid!)).toBe(true);
  });

  it('does not look loopback addresses up: the IP decides', async () => {
    // (The hostname path is tested over a fake /proc in test/unit/monitor/monitor.test.ts:
    // these tests may only connect to loopback.)
    const srv = await server();
    const pol = await policy(
      `version: 2\nname: h\nrules:\n  - match: "*.example.org"\n    action: allow\ndefaults:\n  action: alert\n`,
    );
    const child = kids.node(connectScript(srv.port, 200, 400));
    let asked = 0;
    const w = watch(child.pid!, {
      policy: pol,
      resolveNames: true,
      dns: {
        reverse: async () => {
          asked++;
          return ['api.example.org'];
        },
        lookup: async () => ['127.0.0.1'],
      },
    });
    await w.m.done;
    expect(asked).toBe(0);
    expect(w.events[0]!.hostname).toBeNull();
    expect(w.events[0]!.verdict).toMatchObject({ action: 'alert', violation: true });
  });
});

describe.each(['ss', 'lsof'] as const)('monitor with the %s backend', (backend) => {
  it.skipIf(!onPath(backend))('reports the direct connection of a child', async () => {
    const srv = await server();
    const child = kids.node(connectScript(srv.port, 300, 1_000));
    const w = watch(child.pid!, { backend, intervalMs: 50 });
    expect(w.m.backend).toBe(backend);
    const [sock] = await srv.waitFor(1);
    await w.m.done;
    expect(w.events).toHaveLength(1);
    expect(w.events[0]).toMatchObject({
      pid: child.pid,
      exe: realpathSync(process.execPath),
      localPort: sock!.remotePort,
      remoteAddr: '127.0.0.1',
      remotePort: srv.port,
      state: 'ESTABLISHED',
    });
  });
});
