/**
 * `--profile`: the trustrun configurations and the Node relays (bench/children/tunnel.ts) run
 * under V8's CPU profiler, and after the run each one's event-loop profile is cut to the windows
 * in which a cell was measured and drawn as a flame graph (docs/profiles/ by default,
 * BENCH_PROFILE_DIR to write elsewhere), with an index naming the run, the machine and each
 * graph's busiest frames.
 *
 * The profiler is put in front of the process as it is normally started: the launcher
 * (bin/trustrun.js) `exec`s `node` from PATH with its memory options, so a `node` shim first on
 * PATH adds the profiler's flags and keeps them. With BENCH_TRUSTRUN_NODE_ARGS or
 * BENCH_TRUSTRUN_BIN (node started directly), and for the relays, the flags are added to node's
 * own arguments.
 */
import { chmodSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  foldProfile,
  readProfile,
  renderFlameGraph,
  topSelf,
  type Folded,
  type Window,
} from './flame.js';
import type { Machine } from './machine.js';

/** Sampling interval, µs: 500 keeps the profiler's own cost small and a 4 s cell ~8,000 samples. */
export const PROFILE_INTERVAL_US = 500;

/** The cells drawn, and what they show. */
export const PROFILED = {
  '1k-c32': '1 KiB responses, 32 concurrent',
  '1m-c32': '1 MiB responses, 32 concurrent',
  'new-host': 'first requests to never-seen hosts (one at a time, 30 ms apart)',
} as const;
export type ProfiledCell = keyof typeof PROFILED;

export interface ProfiledStart {
  /** node options that turn the profiler on, writing into `dir`. */
  nodeArgs: string[];
  /** Environment for a process started through the launcher: PATH with the `node` shim first. */
  env: { PATH: string };
}

/** The run the graphs come from, as their subtitles and the index name it. */
export interface RunInfo {
  date: string;
  command: string;
  machine: Machine;
  /** The cell's median req/s under the profiler (null when not measured). */
  rps: (config: string, cell: string) => number | null;
}

export interface GraphInfo {
  file: string;
  config: string;
  cell: ProfiledCell;
  windows: number;
  seconds: number;
  busyShare: number;
  top: { name: string; share: number }[];
}

export class Profiles {
  private readonly windows = new Map<string, Map<ProfiledCell, Window[]>>();
  private readonly started = new Set<string>();

  constructor(private readonly dir: string) {}

  /** How to start configuration `name` under the profiler (its profiles go to its own folder). */
  start(name: string): ProfiledStart {
    this.started.add(name);
    const out = join(this.dir, name);
    const shimDir = join(this.dir, `${name}.bin`);
    mkdirSync(out, { recursive: true });
    mkdirSync(shimDir, { recursive: true });
    const nodeArgs = [
      '--cpu-prof',
      `--cpu-prof-dir=${out}`,
      `--cpu-prof-interval=${PROFILE_INTERVAL_US}`,
    ];
    const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const shim = join(shimDir, 'node');
    writeFileSync(
      shim,
      `#!/bin/sh\nexec ${[process.execPath, ...nodeArgs].map(quote).join(' ')} "$@"\n`,
    );
    chmodSync(shim, 0o755);
    return { nodeArgs, env: { PATH: `${shimDir}:${process.env.PATH ?? ''}` } };
  }

  /**
   * Notes that configuration `name` was measured for `cell` between two monotonic times
   * (ignored for a configuration not started under the profiler).
   */
  mark(name: string, cell: ProfiledCell, w: Window): void {
    if (!this.started.has(name)) return;
    let m = this.windows.get(name);
    if (!m) this.windows.set(name, (m = new Map()));
    const list = m.get(cell) ?? [];
    list.push(w);
    m.set(cell, list);
  }

  /** The event loop's profile of configuration `name` (thread 0), once the process has exited. */
  private mainProfile(name: string): string | null {
    const out = join(this.dir, name);
    let files: string[];
    try {
      files = readdirSync(out);
    } catch {
      return null;
    }
    const main = files.filter((f) => /\.\d+\.0\.\d+\.cpuprofile$/.test(f)).sort();
    return main.length ? join(out, main[main.length - 1]!) : null;
  }

  /**
   * Writes one flame graph per profiled configuration and cell into `outDir`, and README.md
   * indexing them. Returns what was written; a configuration whose profile is missing (the
   * process did not exit cleanly) is reported in `missing`. Writes nothing when no window was
   * marked.
   */
  write(outDir: string, run: RunInfo): { graphs: GraphInfo[]; missing: string[] } {
    // Nothing profiled (no trustrun configuration or relay ran): the index on file stays as it is.
    if (this.windows.size === 0) return { graphs: [], missing: [] };
    mkdirSync(outDir, { recursive: true });
    const graphs: GraphInfo[] = [];
    const missing: string[] = [];
    for (const [name, cells] of this.windows) {
      const file = this.mainProfile(name);
      if (!file) {
        missing.push(name);
        continue;
      }
      const profile = readProfile(file);
      for (const [cell, windows] of cells) {
        const folded = foldProfile(profile, windows);
        const seconds = windows.reduce((s, w) => s + (w.toUs - w.fromUs), 0) / 1e6;
        const info = graphInfo(folded, name, cell, windows.length, seconds);
        const rps = cell === 'new-host' ? null : run.rps(name, cell);
        const svg = renderFlameGraph(folded, {
          title: `${name}: ${PROFILED[cell]}, the event loop`,
          subtitle: [
            `${run.date}, ${run.machine.cores} cores ${run.machine.cpuModel}, Node ${run.machine.node}: ${run.command}`,
            `${windows.length} measured window(s), ${seconds.toFixed(1)} s; the loop busy ${(100 * info.busyShare).toFixed(0)} % of it` +
              (rps !== null ? `; ${rps.toFixed(0)} req/s under the profiler` : '') +
              `; sampled every ${PROFILE_INTERVAL_US} µs`,
          ],
        });
        writeFileSync(join(outDir, info.file), svg);
        graphs.push(info);
      }
    }
    writeFileSync(join(outDir, 'README.md'), renderIndex(graphs, missing, run));
    return { graphs, missing };
  }
}

function graphInfo(
  folded: Folded,
  config: string,
  cell: ProfiledCell,
  windows: number,
  seconds: number,
): GraphInfo {
  const busy = folded.busyUs;
  return {
    file: `${config}-${cell}.svg`,
    config,
    cell,
    windows,
    seconds,
    busyShare: busy + folded.idleUs > 0 ? busy / (busy + folded.idleUs) : 0,
    top: topSelf(folded, 8).map((t) => ({ name: t.name, share: busy > 0 ? t.us / busy : 0 })),
  };
}

function renderIndex(graphs: GraphInfo[], missing: string[], run: Omit<RunInfo, 'rps'>): string {
  const m = run.machine;
  const lines = [
    '# CPU profiles of the proxy under the benchmark load',
    '',
    '_Generated by the benchmark suite; do not edit by hand._',
    '',
    `**Run:** ${run.date}, \`${run.command}\`  `,
    `**Machine:** ${m.cores} cores, ${m.cpuModel}, ${m.memoryGiB} GiB, Node ${m.node}, ${m.os}`,
    '',
    "Each graph is the proxy's event loop (its main thread) during the measured windows of one",
    'cell: the width of a frame is the time spent in it and in what it called, the root is the',
    'busy time (idle time is left out). Frames: orange TrustRun, green libraries (undici,',
    'better-sqlite3, libsodium, WebAssembly), blue Node.js, violet native code without a script',
    '(TLS, socket writes, V8), red the garbage collector. Open an SVG in a browser and hover a frame',
    'for its time. The profiler costs the proxy CPU: read shares, not the req/s.',
    '',
  ];
  for (const g of graphs) {
    lines.push(
      `## ${g.config}: ${PROFILED[g.cell]}`,
      '',
      `[${g.file}](${g.file}): ${g.windows} window(s), ${g.seconds.toFixed(1)} s, the loop busy ${(100 * g.busyShare).toFixed(0)} %.`,
      '',
      '| self time, share of the busy time | frame |',
      '| ---: | --- |',
      ...g.top.map((t) => `| ${(100 * t.share).toFixed(1)} % | \`${t.name}\` |`),
      '',
    );
  }
  if (missing.length)
    lines.push(
      `No profile was written by: ${missing.join(', ')} (the process did not exit cleanly).`,
      '',
    );
  return lines.join('\n');
}
