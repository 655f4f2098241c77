/**
 * Monitor benchmark: the cost of one poll of a 50-process tree, and the fraction of
 * short-lived connections the polling catches at several intervals.
 *
 *   node --import tsx bench/monitor.ts [--json] [--quick]
 *
 * Everything connects to 127.0.0.1 only. Needs python3 (the children are Python processes).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { readdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import {
  ExeCache,
  ProcfsBackend,
  ProcTreeTracker,
  killTree,
  startMonitor,
  type MonitorEvent,
} from '../src/monitor/index.js';
import { describeMachine, type Machine } from './lib/machine.js';

export interface PollCost {
  processes: number;
  /** Open file descriptors of the tree: one readlink each per poll (plus one readdir per process). */
  fds: number;
  sockets: number;
  /** Polls where nothing changed: tree + fds, no socket-table read. */
  steady: Summary;
  /** Polls that read the four socket tables (new sockets, or the periodic state refresh). */
  withTables: Summary;
  /** A live monitor at 100 ms over a few seconds (mix of both kinds). */
  live: { polls: number; meanMs: number; maxMs: number };
}

export interface Summary {
  n: number;
  /** This process's CPU time per poll (user + system), less sensitive to other load. */
  cpuMs: number;
  p50: number;
  mean: number;
  p95: number;
}

export interface CatchCell {
  intervalMs: number;
  lifetimeMs: number;
  connections: number;
  caught: number;
  fraction: number;
  meanPollMs: number;
}

export interface MonitorBenchResult {
  machine: Machine;
  date: string;
  poll: PollCost;
  catchRate: CatchCell[];
  target: { pollMs: number; met: boolean };
  loadAverage: { before: number; after: number };
}

const PYTHON = (() => {
  try {
    return execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], {
      encoding: 'utf8',
    }).trim();
  } catch {
    return 'python3';
  }
})();

const TREE_SCRIPT = `
import os, socket, sys, time
port, kids = int(sys.argv[1]), int(sys.argv[2])
for i in range(kids):
    if os.fork() == 0:
        a = socket.create_connection(('127.0.0.1', port))
        b = socket.create_connection(('127.0.0.1', port))
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.connect(('127.0.0.1', 9))
        time.sleep(600)
        os._exit(0)
time.sleep(600)
`;

const CHURN_SCRIPT = `
import socket, sys, time
port, n, life = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) / 1000
time.sleep(0.3)
for i in range(n):
    s = socket.create_connection(('127.0.0.1', port))
    time.sleep(life)
    s.close()
    time.sleep(0.005)
`;

function summary(xs: number[], cpuMicros: number): Summary {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
  const round = (x: number) => Math.round(x * 1000) / 1000;
  return {
    n: s.length,
    cpuMs: round(cpuMicros / 1000 / (s.length || 1)),
    p50: round(at(0.5)),
    mean: round(s.reduce((a, b) => a + b, 0) / (s.length || 1)),
    p95: round(at(0.95)),
  };
}

async function localServer(): Promise<{ server: Server; port: number; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port, sockets };
}

async function closeServer(srv: { server: Server; sockets: Set<Socket> }): Promise<void> {
  for (const s of srv.sockets) s.destroy();
  await new Promise<void>((r) => srv.server.close(() => r()));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function pollCost(quick: boolean): Promise<PollCost> {
  const srv = await localServer();
  const root: ChildProcess = spawn(PYTHON, ['-c', TREE_SCRIPT, String(srv.port), '49'], {
    stdio: 'ignore',
  });
  try {
    const deadline = Date.now() + 20_000;
    while (srv.sockets.size < 98 && Date.now() < deadline) await sleep(50);
    const tracker = new ProcTreeTracker(root.pid!);
    const backend = new ProcfsBackend(new ExeCache(), '/proc', 1_000_000);
    const n = quick ? 50 : 300;
    const steady: number[] = [];
    const withTables: number[] = [];
    let sockets = 0;
    let processes = 0;
    // First poll reads the tables; the following ones are steady until something changes.
    let cpu0 = process.cpuUsage();
    let steadyCpu = 0;
    for (let i = 0; i < n; i++) {
      if (i === 1) cpu0 = process.cpuUsage();
      const t0 = performance.now();
      const pids = tracker.refresh();
      const s = backend.snapshotSync(pids);
      const ms = performance.now() - t0;
      if (i > 0) steady.push(ms);
      processes = pids.length;
      sockets = s.length;
    }
    const fds = tracker.members().reduce((n, pid) => n + readdirSync(`/proc/${pid}/fd`).length, 0);
    const c1 = process.cpuUsage(cpu0);
    steadyCpu = c1.user + c1.system;
    cpu0 = process.cpuUsage();
    for (let i = 0; i < (quick ? 10 : 50); i++) {
      const fresh = new ProcfsBackend(new ExeCache(), '/proc', 1_000_000);
      const t0 = performance.now();
      fresh.snapshotSync(tracker.refresh());
      withTables.push(performance.now() - t0);
    }
    const c2 = process.cpuUsage(cpu0);
    const m = startMonitor({
      rootPid: root.pid!,
      intervalMs: 100,
      onEvent: () => {},
      resolveNames: false,
    });
    await sleep(quick ? 1000 : 3000);
    const st = m.stats();
    await m.stop();
    return {
      processes,
      fds,
      sockets,
      steady: summary(steady, steadyCpu),
      withTables: summary(withTables, c2.user + c2.system),
      live: {
        polls: st.polls,
        meanMs: Math.round(st.meanPollMs * 1000) / 1000,
        maxMs: Math.round(st.maxPollMs * 1000) / 1000,
      },
    };
  } finally {
    killTree(root.pid!, 200);
    await sleep(300);
    await closeServer(srv);
  }
}

async function catchRate(intervalMs: number, lifetimeMs: number, n: number): Promise<CatchCell> {
  const srv = await localServer();
  const child = spawn(
    PYTHON,
    ['-c', CHURN_SCRIPT, String(srv.port), String(n), String(lifetimeMs)],
    {
      stdio: 'ignore',
    },
  );
  const caught = new Set<number>();
  const m = startMonitor({
    rootPid: child.pid!,
    intervalMs,
    resolveNames: false,
    onEvent: (e: MonitorEvent) => {
      if (e.remotePort === srv.port) caught.add(e.localPort);
    },
  });
  await m.done;
  const st = m.stats();
  await closeServer(srv);
  return {
    intervalMs,
    lifetimeMs,
    connections: n,
    caught: caught.size,
    fraction: Math.round((caught.size / n) * 1000) / 1000,
    meanPollMs: Math.round(st.meanPollMs * 100) / 100,
  };
}

export async function runMonitorBench(opts: { quick?: boolean } = {}): Promise<MonitorBenchResult> {
  const before = loadavg()[0]!;
  const poll = await pollCost(!!opts.quick);
  const cells: CatchCell[] = [];
  const lifetimes = opts.quick ? [20, 100] : [5, 20, 50, 100];
  for (const lifetimeMs of lifetimes) {
    for (const intervalMs of [10, 50, 100, 250]) {
      const n = Math.max(10, Math.min(40, Math.round(3000 / (lifetimeMs + 5))));
      cells.push(await catchRate(intervalMs, lifetimeMs, opts.quick ? Math.min(n, 15) : n));
    }
  }
  return {
    machine: describeMachine(),
    date: new Date().toISOString(),
    poll,
    catchRate: cells,
    target: { pollMs: 5, met: poll.steady.p50 < 5 },
    loadAverage: { before, after: loadavg()[0]! },
  };
}

function report(r: MonitorBenchResult): string {
  const lines = [
    `monitor benchmark — ${r.date}`,
    `machine: ${r.machine.cpuModel}, ${r.machine.cores} cores, ${r.machine.os}, kernel ${r.machine.kernel}, node ${r.machine.node}`,
    `load average: ${r.loadAverage.before.toFixed(2)} → ${r.loadAverage.after.toFixed(2)}`,
    '',
    `one poll of a ${r.poll.processes}-process tree holding ${r.poll.sockets} inet sockets (${r.poll.fds} fds):`,
    `  steady (no new socket): CPU ${r.poll.steady.cpuMs} ms; wall p50 ${r.poll.steady.p50} ms, mean ${r.poll.steady.mean} ms, p95 ${r.poll.steady.p95} ms (n=${r.poll.steady.n})`,
    `  reading the socket tables: CPU ${r.poll.withTables.cpuMs} ms; wall p50 ${r.poll.withTables.p50} ms, mean ${r.poll.withTables.mean} ms, p95 ${r.poll.withTables.p95} ms (n=${r.poll.withTables.n})`,
    `  live monitor at 100 ms: ${r.poll.live.polls} polls, mean ${r.poll.live.meanMs} ms, max ${r.poll.live.maxMs} ms`,
    `  target < ${r.target.pollMs} ms (steady p50): ${r.target.met ? 'met' : 'NOT met'}`,
    '',
    'short-lived connections caught (lifetime × interval):',
    '  lifetime  interval  caught        mean poll',
    ...r.catchRate.map(
      (c) =>
        `  ${String(c.lifetimeMs).padStart(5)} ms  ${String(c.intervalMs).padStart(5)} ms  ${String(c.caught).padStart(3)}/${String(c.connections).padEnd(3)} ${(c.fraction * 100).toFixed(0).padStart(4)}%  ${c.meanPollMs} ms`,
    ),
  ];
  return lines.join('\n') + '\n';
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = process.argv.slice(2);
  const r = await runMonitorBench({ quick: args.includes('--quick') });
  process.stdout.write(args.includes('--json') ? JSON.stringify(r, null, 2) + '\n' : report(r));
}
