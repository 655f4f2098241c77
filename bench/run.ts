/**
 * The proxy benchmark suite: one run measures, side by side on this machine, a direct
 * connection, a plain Node CONNECT tunnel, `trustrun proxy` at each capture level and, when
 * installed, mitmdump and Squid with ssl_bump; then runs the micro-benchmarks in bench/ and
 * writes bench/results/*.json, docs/benchmarks.md and docs/benchmarks.svg.
 *
 *   npm run bench                 full run (3 repetitions, about 10 minutes)
 *   npm run bench -- --quick      short run (1 repetition, short durations; docs not rewritten)
 *   npm run bench -- --from-results bench/results/latest.json [--no-docs]
 *                                 no measuring: render the page from a results file (to
 *                                 docs/benchmarks.md and .svg, or with --no-docs to stdout)
 *   npm run bench -- --profile --only http-relay,trustrun-headers,trustrun-full --no-micro
 *                                 the trustrun configurations and the Node relays under the
 *                                 CPU profiler: flame graphs of each cell's measured windows
 *                                 in docs/profiles/ (BENCH_PROFILE_DIR=DIR: there);
 *                                 docs/benchmarks.* untouched
 *
 * Options: --quick, --docs / --no-docs (write docs/benchmarks.*; default: on unless --quick),
 * --no-build (use dist/ as it is), --no-micro, --only NAME,NAME (configurations to run),
 * --reps N, --from-results FILE, --profile. BENCH_TRUSTRUN_BIN=FILE runs another trustrun entry point than
 * bin/trustrun.js; BENCH_TRUSTRUN_NODE_ARGS='--opt …' runs `node --opt … FILE` instead of the
 * launcher (whose memory settings then do not apply). BENCH_RESULTS_DIR=DIR writes the results
 * there instead of bench/results/ (the suite's own test does). BENCH_KEEP_TMP=1 keeps the run's
 * temporary directory (logs, raw CPU profiles, and its throwaway certificates and keys).
 * bench/notes.md (hand-written findings) is appended to the page as it is.
 * Everything listens on and connects to 127.0.0.1/127.0.0.2 only.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { createRequire } from 'node:module';
import { makeUpstreamPki } from './lib/certs.js';
import {
  BENCH_DIR,
  ROOT,
  buildChild,
  spawnChild,
  spawnUpstream,
  stopAll,
  undiciEntry,
} from './lib/children.js';
import type { StartEnv } from './lib/configs.js';
import { describeMachine } from './lib/machine.js';
import { LoadClient } from './lib/measure.js';
import type { MicroResult } from './lib/micro.js';
import {
  ORDER,
  log,
  runMicros,
  runRepetitions,
  runStreams,
  startConfigs,
  type RunContext,
} from './lib/phases.js';
import { loadAverage, memory } from './lib/procfs.js';
import { renderMarkdown, renderSummary } from './lib/report.js';
import { Profiles } from './lib/profiles.js';
import { summarize, type CellName, type Results, type Settings } from './lib/results.js';
import { renderSvg } from './lib/svg.js';

const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(name);
const value = (name: string) => {
  const i = argv.indexOf(name);
  return i === -1 ? undefined : argv[i + 1];
};
const known = new Set([
  '--quick',
  '--docs',
  '--no-docs',
  '--no-build',
  '--no-micro',
  '--only',
  '--reps',
  '--from-results',
  '--profile',
  '--help',
]);
for (const [i, a] of argv.entries()) {
  if (a.startsWith('--') && !known.has(a)) {
    process.stderr.write(`bench: unknown option ${a} (see the header of bench/run.ts)\n`);
    process.exit(2);
  }
  if ((a === '--only' || a === '--reps' || a === '--from-results') && argv[i + 1] === undefined) {
    process.stderr.write(`bench: ${a} needs a value\n`);
    process.exit(2);
  }
}
if (flag('--help')) {
  process.stderr.write(
    'usage: npm run bench -- [--quick] [--docs|--no-docs] [--no-build] [--no-micro] [--only a,b] [--reps N]\n' +
      '       npm run bench -- --profile [--quick] [--no-build] [--no-micro] [--only a,b] [--reps N]\n' +
      '       npm run bench -- --from-results FILE [--no-docs]\n',
  );
  process.exit(0);
}

const QUICK = flag('--quick');
const PROFILE = flag('--profile');
if (PROFILE && (flag('--docs') || flag('--from-results'))) {
  process.stderr.write(
    `bench: --profile cannot go with ${flag('--docs') ? '--docs' : '--from-results'}: a profiled run's figures include the profiler's cost and do not go on the page\n`,
  );
  process.exit(2);
}
const WRITE_DOCS = flag('--docs') || (!QUICK && !PROFILE && !flag('--no-docs'));
const ONLY =
  value('--only')
    ?.split(',')
    .map((s) => s.trim()) ?? null;
const unknownConfig = ONLY?.find((n) => !(ORDER as readonly string[]).includes(n));
if (unknownConfig !== undefined) {
  process.stderr.write(`bench: --only ${unknownConfig}: not one of ${ORDER.join(', ')}\n`);
  process.exit(2);
}
const REPS = Number(value('--reps') ?? (QUICK ? 1 : 3));
if (!Number.isInteger(REPS) || REPS < 1 || REPS > 10) {
  process.stderr.write(`bench: --reps ${value('--reps')} is not a whole number from 1 to 10\n`);
  process.exit(2);
}

const settings: Settings = {
  quick: QUICK,
  repetitions: REPS,
  warmupMs: QUICK ? 400 : 1000,
  durationMs: QUICK
    ? { '1k-c1': 1500, '1k-c32': 1500, '1m-c32': 1500 }
    : { '1k-c1': 3000, '1k-c32': 4000, '1m-c32': 4000 },
  settleMs: QUICK ? 300 : 700,
  // A profiled run takes more never-seen hosts: each is a few milliseconds of the proxy's time.
  probes: QUICK
    ? { newHost: PROFILE ? 10 : 3, newConn: 3, reuse: 10 }
    : { newHost: PROFILE ? 60 : 15, newConn: 15, reuse: 20 },
  streamBytes: QUICK ? 256 * 1024 * 1024 : 1024 * 1024 * 1024,
};

let tmp: string | null = null;
let cleaning = false;

async function cleanup(): Promise<void> {
  if (cleaning) return;
  cleaning = true;
  await stopAll();
  if (tmp && process.env.BENCH_KEEP_TMP) log(`kept ${tmp} (BENCH_KEEP_TMP): delete it when done`);
  else if (tmp) rmSync(tmp, { recursive: true, force: true });
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    log(`\nbench: ${sig}, stopping child processes…`);
    void cleanup().finally(() => process.exit(130));
  });
}

function build(notes: string[]): void {
  if (flag('--no-build')) return;
  log('building dist/ (tsc -p tsconfig.build.json)…');
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  try {
    execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], {
      cwd: ROOT,
      stdio: 'pipe',
      timeout: 300_000,
    });
  } catch (err) {
    const out = String((err as { stdout?: Buffer }).stdout ?? '')
      .trim()
      .split('\n');
    notes.push(
      `The build reported ${out.length} line(s) of errors (dist/ was emitted anyway); first: ${out[0] ?? ''}`,
    );
    log(`  build reported errors (continuing with what was emitted): ${out[0] ?? ''}`);
  }
}

/** Hand-written findings appended to the page (bench/notes.md, committed). */
function readNotes(): string {
  const file = join(BENCH_DIR, 'notes.md');
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
}

function writeDocs(results: Results): void {
  writeFileSync(join(ROOT, 'docs', 'benchmarks.svg'), renderSvg(results));
  writeFileSync(
    join(ROOT, 'docs', 'benchmarks.md'),
    renderMarkdown(results, 'benchmarks.svg', readNotes()),
  );
  log('wrote docs/benchmarks.md and docs/benchmarks.svg');
}

/** --profile: the flame graphs and their index, from the profiles the stopped processes wrote. */
function writeProfiles(profiles: Profiles, results: Results): void {
  const outDir = process.env.BENCH_PROFILE_DIR ?? join(ROOT, 'docs', 'profiles');
  const { graphs, missing } = profiles.write(outDir, {
    date: results.startedAt.replace('T', ' ').replace(/\.\d+Z$/, ' UTC'),
    command: results.command,
    machine: results.machine,
    rps: (config, cell) => summarize(results.cells[cell as CellName]?.[config])?.rps.median ?? null,
  });
  for (const g of graphs) log(`wrote ${relative(process.cwd(), join(outDir, g.file))}`);
  if (!graphs.length && !missing.length)
    log('--profile: no trustrun configuration or Node relay ran, so nothing was profiled');
  if (missing.length) {
    log(`no CPU profile from ${missing.join(', ')} (the process did not exit cleanly)`);
    process.exitCode = 1;
  }
}

/** --from-results FILE: the page from an earlier run's results, nothing measured. */
function fromResults(file: string): void {
  let results: Results;
  try {
    results = JSON.parse(readFileSync(file, 'utf8')) as Results;
  } catch (err) {
    process.stderr.write(`bench: --from-results ${file}: ${(err as Error).message}\n`);
    process.exit(2);
  }
  if (results.format !== 1 || !results.cells || !Array.isArray(results.micro)) {
    process.stderr.write(`bench: --from-results ${file}: not a bench results file (format 1)\n`);
    process.exit(2);
  }
  if (flag('--no-docs'))
    process.stdout.write(renderMarkdown(results, 'benchmarks.svg', readNotes()));
  else writeDocs(results);
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const startedAt = new Date().toISOString();
  const notes: string[] = [];
  const machine = describeMachine();
  log(
    `TrustRun benchmarks${QUICK ? ' (quick)' : ''}: ${machine.cores} cores, ${machine.cpuModel}, Node ${machine.node}, load ${machine.loadAverageAtStart}`,
  );
  build(notes);

  tmp = mkdtempSync(join(tmpdir(), 'trustrun-bench-'));
  const pki = makeUpstreamPki(tmp);
  const childDir = join(tmp, 'children');
  const scripts = {
    upstream: buildChild('upstream', childDir),
    tunnel: buildChild('tunnel', childDir),
    loadgen: buildChild('loadgen', childDir),
  };

  const probeHosts = Array.from({ length: REPS }, (_, r) =>
    Array.from({ length: settings.probes.newHost }, (_, i) => `n${r + 1}-${i + 1}.bench.test`),
  );
  const hostNames = ['api.bench.test', ...probeHosts.flat()];

  // The upstream: 127.0.0.1 on any port, and 127.0.0.2:443 for Squid (which cannot remap ports).
  const wantSquid = !ONLY || ONLY.includes('squid');
  const upstream = spawnUpstream(scripts.upstream, tmp, pki, [
    { host: '127.0.0.1', port: 0 },
    ...(wantSquid ? [{ host: '127.0.0.2', port: 443 }] : []),
  ]);
  const up = await upstream.firstJson<{ ports: (number | null)[]; errors: string[] }>(15_000);
  if (!up.ports[0]) throw new Error(`the upstream could not listen: ${up.errors.join('; ')}`);
  const profiles = PROFILE ? new Profiles(join(tmp, 'profiles')) : undefined;
  if (PROFILE)
    notes.push(
      "Profiled run (--profile): the trustrun configurations and the Node relays ran under V8's CPU profiler, which costs them CPU; these figures are not comparable with an unprofiled run's.",
    );
  const env: StartEnv = {
    tmp,
    pki,
    upstreamPort: up.ports[0],
    squidUpstream: up.ports[1] === 443,
    hostNames,
    tunnelScript: scripts.tunnel,
    profiles,
  };
  log(`upstream on 127.0.0.1:${env.upstreamPort}${env.squidUpstream ? ' and 127.0.0.2:443' : ''}`);

  const loadProc = spawnChild(process.execPath, [scripts.loadgen], join(tmp, 'loadgen.log'), {
    ipc: true,
    env: {
      ...process.env,
      NODE_OPTIONS: '',
      BENCH_UNDICI: undiciEntry(),
    },
  });
  const client = await LoadClient.start(loadProc);
  const ctx: RunContext = { env, client, upstream, settings, probeHosts };

  const { configs, infos } = await startConfigs(ctx, ONLY);
  const { cells, probes } = await runRepetitions(ctx, configs, infos);
  const streams = await runStreams(ctx, configs, infos);
  for (const info of infos) {
    const config = configs.find((c) => c.name === info.name);
    if (config?.pid) info.endRss = memory(config.pid)?.rss ?? null;
  }
  for (const config of configs) await config.stop();
  await stopAll();

  let micro: MicroResult[] = [];
  if (flag('--no-micro')) notes.push('Micro-benchmarks not run (--no-micro).');
  else micro = await runMicros(QUICK);

  const results: Results = {
    format: 1,
    startedAt,
    finishedAt: new Date().toISOString(),
    wallSeconds: Math.round((Date.now() - t0) / 1000),
    command:
      (process.env.BENCH_TRUSTRUN_BIN
        ? `BENCH_TRUSTRUN_BIN=${process.env.BENCH_TRUSTRUN_BIN} `
        : '') +
      (process.env.BENCH_TRUSTRUN_NODE_ARGS
        ? `BENCH_TRUSTRUN_NODE_ARGS='${process.env.BENCH_TRUSTRUN_NODE_ARGS}' `
        : '') +
      `npm run bench${argv.length ? ` -- ${argv.join(' ')}` : ''}`,
    machine,
    loadAverageAtEnd: loadAverage(),
    settings,
    configs: infos,
    cells,
    probes,
    streams,
    micro,
    notes,
  };

  const resultsDir = process.env.BENCH_RESULTS_DIR ?? join(BENCH_DIR, 'results');
  mkdirSync(resultsDir, { recursive: true });
  const stamp = startedAt.replace(/[:.]/g, '-');
  const file = join(
    resultsDir,
    `bench-${stamp}${QUICK ? '-quick' : ''}${PROFILE ? '-profiled' : ''}.json`,
  );
  const json = `${JSON.stringify(results, null, 2)}\n`;
  writeFileSync(file, json);
  // latest.json is what the page is rendered from: never a profiled run.
  if (!PROFILE) writeFileSync(join(resultsDir, 'latest.json'), json);
  log(`\nresults: ${relative(process.cwd(), file)}`);
  if (WRITE_DOCS) writeDocs(results);
  if (profiles) writeProfiles(profiles, results);
  log(`\n${renderSummary(results)}`);
  log(`done in ${results.wallSeconds} s`);
}

const FROM = value('--from-results');
try {
  if (FROM) fromResults(FROM);
  else await main();
} catch (err) {
  log(`bench failed: ${(err as Error).stack ?? String(err)}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
