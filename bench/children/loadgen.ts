/**
 * The load generator (a child process of the benchmark runner, so it does not share an event
 * loop with the upstream). It receives jobs over IPC and answers with results; see
 * bench/lib/protocol.ts. Clients are undici: an Agent for direct runs, a ProxyAgent (CONNECT,
 * keep-alive, the proxy's CA in requestTls) through proxies. BENCH_UNDICI names undici's entry
 * file, because this file runs from a temporary directory.
 */
import { subscribe } from 'node:diagnostics_channel';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { Readable } from 'node:stream';
import type * as UndiciModule from 'undici';
import type { Dispatcher } from 'undici';
import type {
  ChildMessage,
  Job,
  LoadJob,
  LoadResult,
  ProbeJob,
  ProbeResult,
  StreamJob,
  StreamResult,
  Target,
} from '../lib/protocol.js';

type Undici = typeof UndiciModule;
const undici = (await import(pathToFileURL(process.env.BENCH_UNDICI ?? 'undici').href)) as Undici;
const TIMEOUTS = { headersTimeout: 30_000, bodyTimeout: 30_000, connectTimeout: 10_000 };

/** TLS connections the client opened to origins (through a proxy: tunnels), for keep-alive checks. */
let originConnections = 0;
subscribe('undici:client:connected', (message) => {
  const { connectParams } = message as { connectParams?: { protocol?: string; hostname?: string } };
  if (connectParams?.protocol === 'https:' && connectParams.hostname?.endsWith('.bench.test'))
    originConnections++;
});

function send(msg: ChildMessage): void {
  process.send?.(msg);
}

/**
 * A fresh client (own connections, own TLS session cache) for the target, with at most
 * `connections` connections per origin (like a load generator's fixed connection count), so
 * that any new connection during a measured window means one was closed.
 */
function dispatcher(target: Target, connections: number): Dispatcher {
  if (target.kind === 'proxy') {
    return new undici.ProxyAgent({
      uri: target.proxyUrl,
      connections,
      requestTls: { ca: target.ca },
      headersTimeout: TIMEOUTS.headersTimeout,
      bodyTimeout: TIMEOUTS.bodyTimeout,
    });
  }
  // Direct: dial the upstream's loopback port, keeping the name for SNI and verification.
  const base = undici.buildConnector({ ca: target.ca, timeout: TIMEOUTS.connectTimeout });
  return new undici.Agent({
    connections,
    headersTimeout: TIMEOUTS.headersTimeout,
    bodyTimeout: TIMEOUTS.bodyTimeout,
    connect: (opts, cb) =>
      base(
        {
          ...opts,
          servername: opts.servername || opts.hostname,
          hostname: '127.0.0.1',
          port: String(target.upstreamPort),
        },
        cb,
      ),
  });
}

async function get(d: Dispatcher, host: string, path: string, expect: number): Promise<void> {
  const res = await d.request({ origin: `https://${host}`, path, method: 'GET' });
  const n = (await res.body.arrayBuffer()).byteLength;
  if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
  if (n !== expect) throw new Error(`body ${n} bytes, expected ${expect}`);
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

async function load(job: LoadJob): Promise<LoadResult> {
  const d = dispatcher(job.target, job.concurrency);
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | null = null;
  let measuring = false;
  let running = true;
  const worker = async (): Promise<void> => {
    while (running) {
      const t0 = performance.now();
      try {
        await get(d, job.host, job.path, job.expectBytes);
        if (measuring && running) latencies.push(performance.now() - t0);
      } catch (err) {
        if (measuring) errors++;
        firstError ??= String((err as Error).message ?? err);
        // Do not spin on a failing target.
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  };
  const workers = Array.from({ length: job.concurrency }, () => worker());
  await new Promise((r) => setTimeout(r, job.warmupMs));
  send({ type: 'mark', id: job.id, phase: 'start' });
  measuring = true;
  const connections0 = originConnections;
  const start = performance.now();
  await new Promise((r) => setTimeout(r, job.durationMs));
  running = false;
  const elapsedMs = performance.now() - start;
  const connections = originConnections - connections0;
  send({ type: 'mark', id: job.id, phase: 'end' });
  const stopped = Promise.all(workers);
  await Promise.race([stopped, new Promise((r) => setTimeout(r, 35_000))]);
  await d.destroy().catch(() => undefined);
  const sorted = Float64Array.from(latencies).sort();
  return {
    requests: latencies.length,
    connections,
    errors,
    firstError,
    elapsedMs,
    rps: latencies.length / (elapsedMs / 1000),
    p50Ms: percentile(sorted, 50),
    p90Ms: percentile(sorted, 90),
    p99Ms: percentile(sorted, 99),
    maxMs: sorted.length > 0 ? (sorted[sorted.length - 1] as number) : NaN,
  };
}

async function probe(job: ProbeJob): Promise<ProbeResult> {
  const samplesMs: number[] = [];
  let errors = 0;
  let firstError: string | null = null;
  const timed = async (d: Dispatcher, host: string): Promise<void> => {
    const t0 = performance.now();
    try {
      await get(d, host, job.path, job.expectBytes);
      samplesMs.push(performance.now() - t0);
    } catch (err) {
      errors++;
      firstError ??= String((err as Error).message ?? err);
    }
  };
  if (job.mode === 'reuse') {
    const d = dispatcher(job.target, 1);
    await get(d, job.hosts[0] as string, job.path, job.expectBytes).catch(() => undefined);
    for (let i = 0; i < job.count; i++) await timed(d, job.hosts[0] as string);
    await d.destroy().catch(() => undefined);
  } else {
    const hosts =
      job.mode === 'new-host' ? job.hosts : Array<string>(job.count).fill(job.hosts[0] as string);
    for (const host of hosts) {
      const d = dispatcher(job.target, 1);
      await timed(d, host);
      await d.destroy().catch(() => undefined);
      await new Promise((r) => setTimeout(r, 30));
    }
  }
  return { samplesMs, errors, firstError };
}

async function streamOne(job: StreamJob): Promise<StreamResult> {
  const d = dispatcher(job.target, 1);
  const chunk = Buffer.alloc(64 * 1024, 'u');
  const t0 = performance.now();
  let bytes = 0;
  try {
    if (job.direction === 'down') {
      const res = await undici.request(`https://${job.host}/stream?bytes=${job.bytes}`, {
        dispatcher: d,
      });
      for await (const c of res.body) bytes += (c as Buffer).length;
      if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
    } else {
      const total = job.bytes;
      async function* body(): AsyncGenerator<Buffer> {
        for (let left = total; left > 0; left -= chunk.length) {
          yield left >= chunk.length ? chunk : chunk.subarray(0, left);
        }
      }
      const res = await undici.request(`https://${job.host}/sink`, {
        dispatcher: d,
        method: 'POST',
        headers: { 'content-length': String(total), 'content-type': 'application/octet-stream' },
        body: Readable.from(body()),
      });
      const answer = (await res.body.json()) as { bytes: number };
      if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
      bytes = answer.bytes;
    }
  } finally {
    await d.destroy().catch(() => undefined);
  }
  if (bytes !== job.bytes) throw new Error(`moved ${bytes} bytes, expected ${job.bytes}`);
  const elapsedMs = performance.now() - t0;
  return { bytes, elapsedMs, mbPerSec: bytes / 1048576 / (elapsedMs / 1000) };
}

process.on('message', (job: Job) => {
  const run = job.type === 'load' ? load(job) : job.type === 'probe' ? probe(job) : streamOne(job);
  run.then(
    (result) => send({ type: 'result', id: job.id, result }),
    (err: unknown) =>
      send({ type: 'error', id: job.id, message: String((err as Error)?.message ?? err) }),
  );
});
process.on('disconnect', () => process.exit(0));
send({ type: 'ready' });
