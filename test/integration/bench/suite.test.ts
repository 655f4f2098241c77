import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderMarkdown, summaries, targets } from '../../../bench/lib/report.js';
import type { Results } from '../../../bench/lib/results.js';
import { renderSvg } from '../../../bench/lib/svg.js';
import { run, type RunResult } from '../../helpers/proc.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const CONFIGS = ['direct', 'tunnel', 'tls-relay', 'http-relay', 'trustrun-headers'];

let dir: string;
let bench: RunResult;
let results: Results;

/** `npm run bench -- ARGS` with the suite's own entry point, on the dist/ the set-up built. */
function runBench(args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  return run(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--no-build', ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    timeoutMs: 170_000,
  });
}

// One short run of the suite itself (`--quick`: one repetition, 1.5 s cells), on the dist/ that
// the test set-up built, with the results written to a temporary directory.
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'trustrun-bench-'));
  bench = await runBench(['--quick', '--no-micro', '--only', CONFIGS.join(',')], {
    BENCH_RESULTS_DIR: dir,
  });
  const file = readdirSync(dir).find((f) => f.startsWith('bench-') && f.endsWith('-quick.json'));
  if (file) results = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Results;
}, 180_000);

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('npm run bench -- --quick', () => {
  it('measures each configuration it was asked for, without errors', () => {
    expect(bench.code, bench.stderr.slice(-2000)).toBe(0);
    expect(results.format).toBe(1);
    // the others are listed as not run, with the reason
    expect(results.configs.filter((c) => c.available).map((c) => c.name)).toEqual(CONFIGS);
    for (const c of results.configs.filter((c) => !c.available)) expect(c.note).toBeTruthy();
    for (const name of CONFIGS) {
      for (const cell of ['1k-c1', '1k-c32'] as const) {
        const [sample] = results.cells[cell][name]!;
        expect(sample!.errors, `${cell} ${name}: ${sample!.firstError}`).toBe(0);
        expect(sample!.rps, `${cell} ${name}`).toBeGreaterThan(0);
        expect(sample!.p99Ms).toBeGreaterThanOrEqual(sample!.p50Ms);
      }
      const probes = results.probes[name]!;
      expect(probes.errors, `${name}: ${probes.firstError}`).toBe(0);
      expect(probes.newHost).toHaveLength(3);
      expect(probes.newConn).toHaveLength(3);
    }
    // a proxy's CPU and memory come from /proc; direct has no proxy to measure
    const headers = results.cells['1k-c32']['trustrun-headers']![0]!;
    expect(headers.cpuMsPerReq).toBeGreaterThan(0);
    expect(headers.peakRss).toBeGreaterThan(10 * 1024 * 1024);
    expect(results.cells['1k-c32'].direct![0]!.cpuMsPerReq).toBeNull();
    // 1 MiB bodies and the streamed body go through the configurations that take them
    expect(Object.keys(results.cells['1m-c32']).sort()).toEqual([
      'direct',
      'http-relay',
      'tls-relay',
      'tunnel',
    ]);
    expect(results.streams.tunnel?.down?.bytes).toBe(results.settings.streamBytes);
  });

  it('renders the page: machine, command, ratios against direct and the targets', () => {
    const page = renderMarkdown(results, 'benchmarks.svg');
    expect(page).toContain(`**Machine:** ${results.machine.cores} cores`);
    expect(page).toContain('npm run bench -- --quick');
    const direct = page.split('\n').find((l) => l.startsWith('| direct (no proxy) |'));
    expect(direct).toContain('| 1.00× |');
    expect(page).toMatch(
      /\| headers: req\/s at or above Squid ssl_bump[^\n]*\| Squid not run \| not measured \|/,
    );
    // trustrun's CPU per request taken apart against the Node relays of the same run
    const layers = page.split('## Where the proxy')[1]!.split('## Targets')[0]!;
    const cpuOf = (n: string) => summaries(results)['1k-c32'][n]!.cpuMsPerReq!;
    const own = cpuOf('trustrun-headers') - cpuOf('http-relay');
    expect(layers).toContain(
      `| + trustrun's own work: policy, records, sealing, store (trustrun proxy --level headers) | ${own.toFixed(3)} | ${cpuOf('trustrun-headers').toFixed(3)} |`,
    );
    expect(layers).toContain('Not measured in this run (trustrun proxy --level full not run).');
    const svg = renderSvg(results);
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('trustrun proxy --level headers');
  });

  it('judges a target against the reference measured in the same run', () => {
    const headers = results.cells['1k-c32']['trustrun-headers']!;
    const verdict = (squidRps: number) => {
      const r: Results = structuredClone(results);
      r.cells['1k-c32'].squid = headers.map((s) => ({ ...s, rps: squidRps }));
      return targets(r, summaries(r))[0]!;
    };
    expect(verdict(headers[0]!.rps * 2)).toMatchObject({ verdict: 'missed', margin: '-50%' });
    expect(verdict(headers[0]!.rps / 2).verdict).toBe('met');
  });
  it("says how much room Node's HTTP relay leaves for trustrun's own work at Squid's cost", () => {
    const relay = summaries(results)['1k-c32']['http-relay']!.cpuMsPerReq!;
    const own = summaries(results)['1k-c32']['trustrun-headers']!.cpuMsPerReq! - relay;
    const sentence = (squidCpu: number) => {
      const r: Results = structuredClone(results);
      r.cells['1k-c32'].squid = r.cells['1k-c32']['http-relay']!.map((x) => ({
        ...x,
        cpuMsPerReq: squidCpu,
      }));
      r.configs.find((c) => c.name === 'squid')!.available = true;
      const page = renderMarkdown(r, 'benchmarks.svg');
      return page.split('\n').find((l) => l.startsWith("To serve Squid's rate"))!;
    };
    expect(sentence(relay + 0.01)).toContain(
      `Node's HTTP relay leaves 0.010 ms for trustrun's own work here; that work measured ${own.toFixed(3)} ms`,
    );
    expect(sentence(relay - 0.02)).toContain(
      "Node's HTTP relay alone already uses 0.020 ms more than Squid here, leaving nothing",
    );
  });
});

describe('npm run bench -- --profile', () => {
  let pdir: string;
  let profiled: RunResult;

  // The headers proxy under the CPU profiler through its launcher, as `npm run bench` starts it.
  beforeAll(async () => {
    pdir = mkdtempSync(join(tmpdir(), 'trustrun-bench-profile-'));
    profiled = await runBench(
      ['--profile', '--quick', '--no-micro', '--only', 'trustrun-headers'],
      {
        BENCH_RESULTS_DIR: join(pdir, 'results'),
        BENCH_PROFILE_DIR: join(pdir, 'profiles'),
      },
    );
  }, 180_000);

  afterAll(() => {
    rmSync(pdir, { recursive: true, force: true });
  });

  it("draws the proxy's event loop during each measured cell, and leaves the page alone", () => {
    expect(profiled.code, profiled.stderr.slice(-2000)).toBe(0);
    const graphs = readdirSync(join(pdir, 'profiles')).sort();
    expect(graphs).toEqual([
      'README.md',
      'trustrun-headers-1k-c32.svg',
      'trustrun-headers-new-host.svg',
    ]);
    const load = readFileSync(join(pdir, 'profiles', 'trustrun-headers-1k-c32.svg'), 'utf8');
    // the proxy's own request path and its store, seen from inside the process
    expect(load).toMatch(/<title>handleExchange dist\/proxy\/exchange\.js:\d+: [\d.]+ ms/);
    expect(load).toMatch(/<title>commit dist\/store\/writer\.js:\d+: [\d.]+ ms/);
    // started through the launcher, whose memory flags are kept next to the profiler's
    expect(profiled.stderr).toMatch(
      /profiled: \S*node --cpu-prof .*--max-semi-space-size=2 --expose-gc \S*bin\/trustrun\.js proxy/,
    );
    const hosts = readFileSync(join(pdir, 'profiles', 'trustrun-headers-new-host.svg'), 'utf8');
    expect(hosts).toMatch(/<title>[^<]*dist\/ca\/minter\.js:\d+: [\d.]+ ms/);
    const index = readFileSync(join(pdir, 'profiles', 'README.md'), 'utf8');
    expect(index).toMatch(/`npm run bench -- [^`]*--profile --quick[^`]*`/);
    expect(index).toMatch(/\| [\d.]+ % \| `commit dist\/store\/writer\.js:\d+` \|/);
    // a profiled run's figures never become the page's
    const results = readdirSync(join(pdir, 'results'));
    expect(results).toHaveLength(1);
    expect(results[0]).toMatch(/^bench-.*-quick-profiled\.json$/);
  });

  it('refuses to put profiled figures on the page', async () => {
    const r = await runBench(['--profile', '--docs']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--profile cannot go with --docs');
  });
});
