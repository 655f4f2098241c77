/**
 * The phases of a run, in order: start the configurations, the repeated load cells and
 * first-request probes, the large streamed bodies, and the micro-benchmarks.
 */
import type { Spawned } from './children.js';
import * as start from './configs.js';
import type { Config, StartEnv } from './configs.js';
import { monotonicUs } from './flame.js';
import type { LoadClient } from './measure.js';
import { loadCell, probeCell, streamCell } from './measure.js';
import { runMicro, type MicroResult } from './micro.js';
import { commandLine, memory } from './procfs.js';
import { PROFILED, type ProfiledCell } from './profiles.js';
import {
  CELLS,
  LABELS,
  type CellName,
  type ConfigInfo,
  type Results,
  type Settings,
} from './results.js';

export const ORDER = [
  'direct',
  'tunnel',
  'tls-relay',
  'http-relay',
  'trustrun-metadata',
  'trustrun-headers',
  'trustrun-full',
  'mitmdump',
  'squid',
] as const;
/** Configurations that also take the 1 MiB cell (trustrun's target is about the full level). */
const BIG_BODY_CONFIGS = new Set([
  'direct',
  'tunnel',
  'tls-relay',
  'http-relay',
  'trustrun-full',
  'mitmdump',
  'squid',
]);
/** Configurations a large body is streamed through (mitmdump buffers whole bodies). */
const STREAM_CONFIGS = ['direct', 'tunnel', 'trustrun-full'];

export const log = (msg: string) => process.stderr.write(`${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const mb = (b: number | null | undefined) =>
  b == null ? '-' : `${(b / 1e6).toFixed(0)} MB`;

export interface RunContext {
  env: StartEnv;
  client: LoadClient;
  upstream: Spawned;
  settings: Settings;
  /** Names of the first-request probe hosts, one list per repetition. */
  probeHosts: string[][];
}

/** Starts every selected configuration; one that cannot start is reported, not fatal. */
export async function startConfigs(
  ctx: RunContext,
  only: string[] | null,
): Promise<{ configs: Config[]; infos: ConfigInfo[] }> {
  const { env, client } = ctx;
  const trustrunProblem = start.trustrunAvailable();
  const starters: Record<(typeof ORDER)[number], () => Promise<Config> | Config> = {
    direct: () => start.direct(env),
    tunnel: () => start.tunnel(env),
    'tls-relay': () => start.tunnel(env, 'tls'),
    'http-relay': () => start.tunnel(env, 'http'),
    'trustrun-metadata': () => start.trustrun(env, 'metadata'),
    'trustrun-headers': () => start.trustrun(env, 'headers'),
    'trustrun-full': () => start.trustrun(env, 'full'),
    mitmdump: () => start.mitmdump(env),
    squid: () => start.squid(env),
  };
  const infos: ConfigInfo[] = [];
  const configs: Config[] = [];
  for (const name of ORDER) {
    const info: ConfigInfo = {
      name,
      label: LABELS[name] ?? name,
      available: false,
      note: null,
      version: null,
      idleRss: null,
      endRss: null,
    };
    infos.push(info);
    if (only && !only.includes(name)) {
      info.note = 'not selected (--only)';
      continue;
    }
    if (name.startsWith('trustrun-') && trustrunProblem) {
      info.note = trustrunProblem;
      log(`- ${name}: skipped, ${trustrunProblem}`);
      continue;
    }
    let config: Config | null = null;
    try {
      config = await starters[name]();
      info.version = config.version;
      // A first request proves the path works (and is not part of any measurement).
      const check = await probeCell(client, config, 'reuse', ['api.bench.test'], 1);
      if (check.errors > 0 || check.samplesMs.length === 0) {
        throw new Error(`a test request failed: ${check.firstError}`);
      }
      await sleep(500);
      info.idleRss = config.pid ? (memory(config.pid)?.rss ?? null) : null;
      info.available = true;
      configs.push(config);
      log(`- ${name}: ready${config.pid ? ` (pid ${config.pid}, RSS ${mb(info.idleRss)})` : ''}`);
      // What runs under the profiler, as the kernel has it (after the launcher's exec).
      if (env.profiles && config.pid) log(`  profiled: ${commandLine(config.pid) ?? '?'}`);
    } catch (err) {
      info.note = `could not run: ${(err as Error).message}`.slice(0, 600);
      log(`- ${name}: skipped, ${info.note}`);
      await config?.stop();
    }
  }
  return { configs, infos };
}

/** False (and noted once) when a proxy process has died during the run. */
function stillRunning(config: Config, infos: ConfigInfo[]): boolean {
  if (config.pid === null || memory(config.pid) !== null) return true;
  const info = infos.find((i) => i.name === config.name);
  if (info && !info.note?.startsWith('exited')) {
    info.note = 'exited during the run; later cells have no figures for it';
    log(`- ${config.name}: ${info.note}`);
  }
  return false;
}

/** The load cells and first-request probes, repeated, the order rotated each time. */
export async function runRepetitions(
  ctx: RunContext,
  configs: Config[],
  infos: ConfigInfo[],
): Promise<Pick<Results, 'cells' | 'probes'>> {
  const { client, upstream, settings } = ctx;
  const reps = settings.repetitions;
  const cells = { '1k-c1': {}, '1k-c32': {}, '1m-c32': {} } as Results['cells'];
  const probes: Results['probes'] = {};
  for (const c of configs) {
    probes[c.name] = { newHost: [], newConn: [], reuse: [], errors: 0, firstError: null };
  }
  for (let rep = 0; rep < reps; rep++) {
    // Rotating the order spreads drifting background load evenly over the configurations.
    const order = configs.map((_, i) => configs[(i + rep) % configs.length] as Config);
    for (const cell of Object.keys(CELLS) as CellName[]) {
      const spec = CELLS[cell];
      for (const config of order) {
        if (cell === '1m-c32' && !BIG_BODY_CONFIGS.has(config.name)) continue;
        if (!stillRunning(config, infos)) continue;
        const sample = await loadCell(
          client,
          config,
          upstream,
          {
            host: 'api.bench.test',
            path: spec.path,
            expectBytes: spec.bytes,
            concurrency: spec.concurrency,
            warmupMs: settings.warmupMs,
            durationMs: settings.durationMs[cell],
          },
          settings.settleMs,
        );
        (cells[cell][config.name] ??= []).push(sample);
        if (sample.windowUs && cell in PROFILED)
          ctx.env.profiles?.mark(config.name, cell as ProfiledCell, sample.windowUs);
        log(
          `rep ${rep + 1}/${reps} ${cell.padEnd(6)} ${config.name.padEnd(17)} ${sample.rps.toFixed(0).padStart(6)} req/s` +
            `  p50 ${sample.p50Ms.toFixed(2)} p99 ${sample.p99Ms.toFixed(2)} ms` +
            (sample.cpuMsPerReq !== null
              ? `  cpu ${sample.cpuMsPerReq.toFixed(3)} ms/req  peak ${mb(sample.peakRss)}`
              : '') +
            `  new conns ${sample.connections}/${sample.upstreamConnections ?? '?'}` +
            (sample.errors ? `  ERRORS ${sample.errors}: ${sample.firstError}` : ''),
        );
      }
    }
    for (const config of order) {
      if (!stillRunning(config, infos)) continue;
      const p = probes[config.name]!;
      const hosts = ctx.probeHosts[rep]!;
      const api = ['api.bench.test'];
      const t0 = monotonicUs();
      const newHost = await probeCell(client, config, 'new-host', hosts, hosts.length);
      ctx.env.profiles?.mark(config.name, 'new-host', { fromUs: t0, toUs: monotonicUs() });
      const newConn = await probeCell(client, config, 'new-conn', api, settings.probes.newConn);
      const reuse = await probeCell(client, config, 'reuse', api, settings.probes.reuse);
      p.newHost.push(...newHost.samplesMs);
      p.newConn.push(...newConn.samplesMs);
      p.reuse.push(...reuse.samplesMs);
      p.errors += newHost.errors + newConn.errors + reuse.errors;
      p.firstError ??= newHost.firstError ?? newConn.firstError ?? reuse.firstError;
    }
    log(`rep ${rep + 1}/${reps} first-request probes done`);
  }
  return { cells, probes };
}

/** One large body each way through the streaming configurations. */
export async function runStreams(
  ctx: RunContext,
  configs: Config[],
  infos: ConfigInfo[],
): Promise<Results['streams']> {
  const streams: Results['streams'] = {};
  const size = ctx.settings.streamBytes;
  for (const name of STREAM_CONFIGS) {
    const config = configs.find((c) => c.name === name);
    if (!config || !stillRunning(config, infos)) continue;
    const entry: Results['streams'][string] = {};
    streams[name] = entry;
    try {
      for (const direction of ['down', 'up'] as const) {
        const s = await streamCell(ctx.client, config, direction, size);
        entry[direction] = s;
        log(
          `stream ${(size / 2 ** 20).toFixed(0)} MiB ${direction.padEnd(4)} ${name.padEnd(17)} ` +
            `${s.mbPerSec.toFixed(0)} MiB/s  peak ${mb(s.peakRss)}`,
        );
        await sleep(ctx.settings.settleMs);
      }
    } catch (err) {
      entry.error = (err as Error).message;
      log(`stream through ${name} failed: ${entry.error}`);
    }
  }
  return streams;
}

/** The micro-benchmarks in bench/ (run after the proxies have stopped). */
export async function runMicros(quick: boolean): Promise<MicroResult[]> {
  const microArgs: Record<string, string[]> = {
    policy: [],
    store: quick ? ['--records', '10000'] : [],
    scan: ['--files', quick ? '1000' : '4000'],
    minting: quick ? ['--quick'] : [],
    // The full catch-rate grid (4 lifetimes × 4 intervals) takes about 50 s; --quick keeps two
    // lifetimes, 15 connections per cell and fewer polls (about 17 s).
    monitor: quick ? ['--quick'] : [],
  };
  const out: MicroResult[] = [];
  for (const [name, args] of Object.entries(microArgs)) {
    log(`micro-benchmark bench/${name}.ts ${args.join(' ')}…`);
    const r = await runMicro(name, args, 240_000);
    if (!r.ok) log(`  skipped: ${r.reason}`);
    out.push(r);
  }
  return out;
}
