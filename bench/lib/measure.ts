/**
 * Runs jobs on the load-generator child and measures the proxy process around them: CPU time
 * inside the measured window (from the child's start/end marks), peak RSS while it runs, and RSS
 * once the load has stopped.
 */
import type { Spawned } from './children.js';
import type { Config } from './configs.js';
import { monotonicUs, type Window } from './flame.js';
import { PeakSampler, cpuSeconds, memory } from './procfs.js';
import type {
  ChildMessage,
  Job,
  LoadJob,
  LoadResult,
  ProbeResult,
  StreamResult,
} from './protocol.js';

type JobInput<J extends Job> = J extends Job ? Omit<J, 'id' | 'target'> : never;

export class LoadClient {
  private nextId = 1;
  private readonly pending = new Map<
    number,
    {
      resolve: (v: unknown) => void;
      reject: (e: Error) => void;
      onMark?: (phase: 'start' | 'end') => void;
    }
  >();

  private constructor(readonly proc: Spawned) {
    proc.child.on('message', (msg: ChildMessage) => {
      if (msg.type === 'ready') return;
      const p = this.pending.get(msg.id);
      if (!p) return;
      if (msg.type === 'mark') p.onMark?.(msg.phase);
      else {
        this.pending.delete(msg.id);
        if (msg.type === 'result') p.resolve(msg.result);
        else p.reject(new Error(msg.message));
      }
    });
    proc.child.once('exit', (code, signal) => {
      for (const p of this.pending.values())
        p.reject(new Error(`load generator exited (${code ?? signal})`));
      this.pending.clear();
    });
  }

  static async start(proc: Spawned): Promise<LoadClient> {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(
        () => reject(new Error(`load generator not ready; log: ${proc.logTail()}`)),
        30_000,
      );
      proc.child.once('message', () => {
        clearTimeout(t);
        resolve();
      });
      proc.child.once('exit', () =>
        reject(new Error(`load generator exited; log: ${proc.logTail()}`)),
      );
    });
    return new LoadClient(proc);
  }

  run<R>(
    job: JobInput<Job>,
    config: Config,
    timeoutMs: number,
    onMark?: (phase: 'start' | 'end') => void,
  ): Promise<R> {
    const id = this.nextId++;
    return new Promise<R>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`job ${job.type} on ${config.name} took longer than ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as R);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
        onMark,
      });
      this.proc.child.send({ ...job, id, target: config.target } as Job);
    });
  }
}

export interface LoadSample extends LoadResult {
  /** Proxy CPU (user + system, process tree) per request in the measured window, ms. */
  cpuMsPerReq: number | null;
  /** The upstream's CPU per request, ms (the same in every configuration, a check). */
  upstreamCpuMsPerReq: number;
  /** The load generator's CPU per request, ms (it shares the cores with the proxy). */
  loadgenCpuMsPerReq: number;
  peakRss: number | null;
  rssAfter: number | null;
  /** TLS connections the upstream accepted in the window (keep-alive on the proxy's side). */
  upstreamConnections: number | null;
  /** The measured window on the monotonic clock, µs (cuts a CPU profile to it). */
  windowUs?: Window;
}

export interface UpstreamCounters {
  connections: number;
  requests: number;
}

/** Asks the upstream child for its counters over IPC (null when it does not answer). */
export function upstreamCounters(proc: Spawned): Promise<UpstreamCounters | null> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => done(null), 2000);
    const onMessage = (m: unknown) => {
      if (m && typeof m === 'object' && 'connections' in m) done(m as UpstreamCounters);
    };
    const done = (v: UpstreamCounters | null) => {
      clearTimeout(timer);
      proc.child.off('message', onMessage);
      resolve(v);
    };
    proc.child.on('message', onMessage);
    proc.child.send('stats');
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One fixed-time load run with its CPU and memory figures. */
export async function loadCell(
  client: LoadClient,
  config: Config,
  upstream: Spawned,
  job: Omit<LoadJob, 'id' | 'target' | 'type'>,
  settleMs: number,
): Promise<LoadSample> {
  const pid = config.pid;
  const sampler = pid ? new PeakSampler(pid) : null;
  let cpu0 = 0;
  let cpu1 = 0;
  let up0 = 0;
  let up1 = 0;
  let lg0 = 0;
  let lg1 = 0;
  let counters0: Promise<UpstreamCounters | null> = Promise.resolve(null);
  let counters1: Promise<UpstreamCounters | null> = Promise.resolve(null);
  const windowUs: Window = { fromUs: 0, toUs: 0 };
  try {
    const result = await client.run<LoadResult>(
      { type: 'load', ...job },
      config,
      job.warmupMs + job.durationMs + 60_000,
      (phase) => {
        const cpu = pid ? cpuSeconds(pid) : 0;
        const up = cpuSeconds(upstream.pid);
        const lg = cpuSeconds(client.proc.pid);
        if (phase === 'start') {
          windowUs.fromUs = monotonicUs();
          [cpu0, up0, lg0] = [cpu, up, lg];
          counters0 = upstreamCounters(upstream);
        } else {
          windowUs.toUs = monotonicUs();
          [cpu1, up1, lg1] = [cpu, up, lg];
          counters1 = upstreamCounters(upstream);
        }
      },
    );
    const peakRss = sampler ? sampler.stop() : null;
    const [c0, c1] = await Promise.all([counters0, counters1]);
    await sleep(settleMs);
    const perReq = (seconds: number) =>
      result.requests > 0 ? (seconds * 1000) / result.requests : NaN;
    return {
      ...result,
      cpuMsPerReq: pid ? perReq(cpu1 - cpu0) : null,
      upstreamCpuMsPerReq: perReq(up1 - up0),
      loadgenCpuMsPerReq: perReq(lg1 - lg0),
      peakRss,
      rssAfter: pid ? (memory(pid)?.rss ?? null) : null,
      upstreamConnections: c0 && c1 ? c1.connections - c0.connections : null,
      windowUs,
    };
  } finally {
    sampler?.stop();
  }
}

export interface StreamSample extends StreamResult {
  peakRss: number | null;
  cpuSeconds: number | null;
}

/** One large body through the configuration, with the proxy's peak RSS meanwhile. */
export async function streamCell(
  client: LoadClient,
  config: Config,
  direction: 'down' | 'up',
  bytes: number,
): Promise<StreamSample> {
  const pid = config.pid;
  const sampler = pid ? new PeakSampler(pid, 25) : null;
  const cpu0 = pid ? cpuSeconds(pid) : 0;
  try {
    const result = await client.run<StreamResult>(
      { type: 'stream', host: 'api.bench.test', direction, bytes },
      config,
      300_000,
    );
    return {
      ...result,
      peakRss: sampler ? sampler.stop() : null,
      cpuSeconds: pid ? cpuSeconds(pid) - cpu0 : null,
    };
  } finally {
    sampler?.stop();
  }
}

export function probeCell(
  client: LoadClient,
  config: Config,
  mode: 'new-host' | 'new-conn' | 'reuse',
  hosts: string[],
  count: number,
): Promise<ProbeResult> {
  return client.run<ProbeResult>(
    { type: 'probe', mode, hosts, count, path: '/1k', expectBytes: 1024 },
    config,
    120_000,
  );
}
