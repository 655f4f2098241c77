import { performance } from 'node:perf_hooks';
import { TrustRunError, createLogger, newId, type Logger, type Verdict } from '../core/index.js';
import { auditVerdict } from '../policy/index.js';
import {
  ExeCache,
  ProcfsBackend,
  chooseBackend,
  procfsUsable,
  type SocketBackend,
} from './backends.js';
import { killPids } from './kill.js';
import {
  AddressNames,
  NameResolver,
  WhoisOrgs,
  systemDns,
  systemWhois,
  unmapped,
} from './names.js';
import { ProcTreeTracker, PsTreeTracker, type TreeTracker } from './tree.js';
import type { Monitor, MonitorEvent, MonitorOptions, MonitorStats, OwnedSocket } from './types.js';

interface Conn {
  event: MonitorEvent;
  /** onEvent has been called (the verdict is decided). */
  emitted: boolean;
}

function isUnspecified(addr: string): boolean {
  return addr === '0.0.0.0' || addr === '::' || addr === '';
}

function keyOf(s: OwnedSocket): string {
  return `${s.protocol}|${unmapped(s.localAddr)}|${s.localPort}|${unmapped(s.remoteAddr)}|${s.remotePort}`;
}

function validate(opts: MonitorOptions): void {
  if (!Number.isInteger(opts.rootPid) || opts.rootPid < 1) {
    throw new TrustRunError(
      'TR_USAGE',
      `monitor: pid must be a positive integer, got ${opts.rootPid}`,
    );
  }
  const iv = opts.intervalMs ?? 100;
  if (!Number.isFinite(iv) || iv < 1 || iv > 60_000) {
    throw new TrustRunError('TR_USAGE', `monitor: interval must be 1…60000 ms, got ${iv}`);
  }
}

/**
 * Starts watching the sockets of `rootPid` and its descendants. Throws TR_PROCESS when the
 * process does not exist, TR_CONFIG when the requested backend is unavailable.
 */
export function startMonitor(opts: MonitorOptions, log: Logger = createLogger()): Monitor {
  validate(opts);
  const intervalMs = opts.intervalMs ?? 100;
  const root = opts.procRoot ?? '/proc';
  const exes = new ExeCache(root);
  const backend: SocketBackend = chooseBackend(
    opts.procRoot || opts.netPid ? 'procfs' : (opts.backend ?? 'auto'),
    exes,
    root,
    opts.netPid ? `${root}/${opts.netPid}/net` : undefined,
  );
  const tracker: TreeTracker = procfsUsable(root)
    ? new ProcTreeTracker(opts.rootPid, root, opts.treeMarker)
    : new PsTreeTracker(opts.rootPid);
  tracker.refresh();
  if (tracker.rootExited() || tracker.members().length === 0) {
    throw new TrustRunError('TR_PROCESS', `no process with pid ${opts.rootPid}`);
  }
  const names = new AddressNames(
    opts.resolveNames === false
      ? null
      : new NameResolver(opts.dns ?? systemDns(opts.dnsTimeoutMs ?? 500), opts.dnsTimeoutMs ?? 500),
    opts.whoisLookups === false
      ? null
      : new WhoisOrgs(opts.whois ?? systemWhois(), opts.whoisTimeoutMs ?? 2000),
  );
  const killOnViolation = opts.killOnViolation !== false;

  const conns = new Map<string, Conn>();
  const reported: MonitorEvent[] = [];
  /** local "addr|port" → owner, for every TCP socket of the tree at the last poll. */
  let locals = new Map<string, { pid: number; exe: string | null }>();
  const pending = new Set<Promise<void>>();
  let killed = false;
  let polls = 0;
  let totalMs = 0;
  let maxMs = 0;
  let lastMs = 0;
  let violations = 0;
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;
  let current: Promise<void> | null = null;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));

  const safely = (what: string, fn: () => void) => {
    try {
      fn();
    } catch (err) {
      log.error({ err, code: 'TR_INTERNAL' }, `monitor: ${what} callback failed`);
    }
  };

  const evaluate = (ev: MonitorEvent): Verdict => {
    if (!opts.policy) return auditVerdict();
    try {
      return opts.policy.evaluate({
        host: ev.hostname ?? ev.remoteAddr,
        ip: ev.remoteAddr,
        port: ev.remotePort,
      });
    } catch (err) {
      log.error({ err }, 'monitor: policy evaluation failed; recorded as audit-only');
      return auditVerdict();
    }
  };

  const enforce = (ev: MonitorEvent): void => {
    const action = ev.verdict.action;
    if (action === 'block') {
      ev.enforced = false;
      return;
    }
    if (action !== 'kill') {
      ev.enforced = null;
      return;
    }
    if (!killOnViolation) {
      ev.enforced = false;
      return;
    }
    ev.enforced = true;
    if (killed) return;
    killed = true;
    const pids = opts.procRoot ? [] : killPids(tracker.refresh(), opts.killGraceMs ?? 1000);
    // The commands say so in their own words (onKill); the log line is for --verbose.
    log.info({ pids, rule: ev.verdict.rule }, 'monitor: kill verdict, process tree terminated');
    safely('onKill', () => opts.onKill?.({ event: ev, pids }));
  };

  /** Names, org, verdict, enforcement, then onEvent: once per connection. */
  const decide = async (conn: Conn): Promise<void> => {
    const ev = conn.event;
    const known = await names.quick(unmapped(ev.remoteAddr));
    ev.hostname = known.hostname;
    ev.org = known.org;
    ev.verdict = evaluate(ev);
    enforce(ev);
    conn.emitted = true;
    reported.push(ev);
    if (ev.verdict.violation) violations++;
    safely('onEvent', () => opts.onEvent(ev));
    // whois can take seconds: its answer follows as an update, and is dropped after stop().
    if (ev.org === null) {
      void names.slowOrg(ev.remoteAddr).then((org) => {
        if (org === null || stopped) return;
        ev.org = org;
        safely('onUpdate', () => opts.onUpdate?.(ev, 'org'));
      });
    }
  };

  const ingest = (sockets: OwnedSocket[], pids: number[], now: number): void => {
    const depth = new Map(pids.map((p, i) => [p, i]));
    const nextLocals = new Map<string, { pid: number; exe: string | null }>();
    const seen = new Map<string, OwnedSocket>();
    for (const s of sockets) {
      if (s.protocol === 'tcp') nextLocals.set(`${unmapped(s.localAddr)}|${s.localPort}`, s);
      if (s.remotePort === 0 || isUnspecified(s.remoteAddr) || s.state === 'LISTEN') continue;
      if (opts.ignore?.(unmapped(s.remoteAddr), s.remotePort)) continue;
      const key = keyOf(s);
      const prev = seen.get(key);
      if (!prev || (depth.get(s.pid) ?? 0) >= (depth.get(prev.pid) ?? 0)) seen.set(key, s);
    }
    locals = new Map([...nextLocals].map(([k, s]) => [k, { pid: s.pid, exe: s.exe }]));
    for (const [key, s] of seen) {
      const conn = conns.get(key);
      if (conn) {
        conn.event.lastSeen = now;
        if (conn.event.state !== s.state) {
          conn.event.state = s.state;
          if (conn.emitted) safely('onUpdate', () => opts.onUpdate?.(conn.event, 'state'));
        }
        continue;
      }
      const fresh: Conn = {
        emitted: false,
        event: {
          id: newId(now),
          pid: s.pid,
          exe: s.exe,
          protocol: s.protocol,
          localAddr: unmapped(s.localAddr),
          localPort: s.localPort,
          remoteAddr: unmapped(s.remoteAddr),
          remotePort: s.remotePort,
          state: s.state,
          firstSeen: now,
          lastSeen: now,
          hostname: null,
          org: null,
          verdict: auditVerdict(),
          enforced: null,
        },
      };
      conns.set(key, fresh);
      const p = decide(fresh).catch((err: unknown) => log.error({ err }, 'monitor: decide failed'));
      pending.add(p);
      void p.finally(() => pending.delete(p));
    }
    for (const [key, conn] of conns) {
      if (seen.has(key)) continue;
      conns.delete(key);
      conn.event.state = 'CLOSED';
      if (conn.emitted) safely('onUpdate', () => opts.onUpdate?.(conn.event, 'closed'));
      // Not yet emitted: onEvent will carry state CLOSED.
    }
  };

  const pollOnce = async (): Promise<void> => {
    const t0 = performance.now();
    const now = Date.now();
    const pids = tracker.refresh();
    exes.retain(new Set(pids));
    let sockets: OwnedSocket[] = [];
    try {
      sockets = await backend.snapshot(pids);
    } catch (err) {
      log.warn({ err, backend: backend.name }, 'monitor: socket snapshot failed');
    }
    ingest(sockets, pids, now);
    const ms = performance.now() - t0;
    polls++;
    totalMs += ms;
    lastMs = ms;
    if (ms > maxMs) maxMs = ms;
  };

  const finish = async (): Promise<void> => {
    stopped = true;
    if (timer) clearTimeout(timer);
    timer = null;
    while (pending.size) await Promise.all([...pending]);
    // whois answers after this would find no one to tell; their programs are ended.
    names.stop();
    resolveDone();
  };

  const loop = async (): Promise<void> => {
    if (stopped) return;
    const t0 = performance.now();
    current = pollOnce();
    await current;
    current = null;
    if (tracker.rootExited()) {
      await finish();
      return;
    }
    if (stopped) return;
    timer = setTimeout(() => void loop(), Math.max(0, intervalMs - (performance.now() - t0)));
  };
  void loop();

  const procfs = backend instanceof ProcfsBackend ? backend : null;
  const fromCache = (addr: string, port: number) => {
    const hit = locals.get(`${unmapped(addr)}|${port}`);
    return hit && tracker.members().includes(hit.pid) ? hit : null;
  };

  const monitor: Monitor = {
    backend: backend.name,
    done,
    async stop() {
      if (stopped) return done;
      stopped = true;
      if (timer) clearTimeout(timer);
      if (current) await current;
      await finish();
    },
    attribute(addr, port) {
      const hit = fromCache(addr, port);
      if (hit) return hit;
      if (!procfs) return null;
      return procfs.ownerOf(unmapped(addr), port, () => tracker.refresh());
    },
    async attributeAsync(addr, port) {
      const hit = monitor.attribute(addr, port);
      if (hit || procfs) return hit;
      const pids = tracker.refresh();
      const sockets = await backend.snapshot(pids).catch(() => []);
      const s = sockets.find(
        (x) =>
          x.protocol === 'tcp' && x.localPort === port && unmapped(x.localAddr) === unmapped(addr),
      );
      return s ? { pid: s.pid, exe: s.exe } : null;
    },
    tree: () => [...tracker.members()],
    events: () => [...reported],
    stats(): MonitorStats {
      return {
        backend: backend.name,
        polls,
        meanPollMs: polls ? totalMs / polls : 0,
        maxPollMs: maxMs,
        lastPollMs: lastMs,
        events: reported.length,
        violations,
        processes: tracker.members().length,
      };
    },
  };
  return monitor;
}
