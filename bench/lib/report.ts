/** docs/benchmarks.md and the terminal summary, from a run's results. */
import { median } from './stats.js';
import {
  CELLS,
  LABELS,
  summarize,
  type CellName,
  type CellSummary,
  type Results,
} from './results.js';
import type { StrategyFigures } from '../minting.js';
import type { CatchCell, PollCost } from '../monitor.js';

const num = (n: number | null | undefined, digits = 0) =>
  n == null || !Number.isFinite(n)
    ? '–'
    : n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const ms = (n: number | null | undefined) =>
  n == null || !Number.isFinite(n) ? '–' : n < 10 ? num(n, 2) : num(n, 1);
const cpu = (n: number | null | undefined) => (n == null || !Number.isFinite(n) ? '–' : num(n, 3));
const mb = (b: number | null | undefined) =>
  b == null || !Number.isFinite(b) ? '–' : num(b / 1e6, 0);
const ratio = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0
    ? '–'
    : `${(a / b).toFixed(2)}×`;

function table(head: string[], rows: string[][], align: ('l' | 'r')[] = []): string {
  const sep = head.map((_, i) => ((align[i] ?? (i === 0 ? 'l' : 'r')) === 'r' ? '---:' : '---'));
  return [head, sep, ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
}

export type Summaries = Record<CellName, Record<string, CellSummary>>;

export function summaries(r: Results): Summaries {
  const out = {} as Summaries;
  for (const cell of Object.keys(CELLS) as CellName[]) {
    out[cell] = {};
    for (const [name, samples] of Object.entries(r.cells[cell] ?? {})) {
      const s = summarize(samples);
      if (s) out[cell][name] = s;
    }
  }
  return out;
}

const label = (name: string) => LABELS[name] ?? name;
const measured = (r: Results) => r.configs.filter((c) => c.available).map((c) => c.name);

function throughputTable(r: Results, s: Summaries, cell: CellName): string {
  const cells = s[cell];
  const rps = (n: string) => cells[n]?.rps.median;
  const refs = ['direct', 'tunnel', 'mitmdump', 'squid'].filter((n) => cells[n]);
  const withMem = cell !== '1k-c1';
  const head = [
    'configuration',
    'req/s (median)',
    'min–max',
    ...refs.map((n) => `vs ${n === 'squid' ? 'Squid' : n}`),
    'p50 ms',
    'p99 ms',
    'proxy CPU ms/req',
    ...(withMem ? ['RSS idle MB', 'RSS peak MB', 'RSS after MB'] : []),
    'new conns / 1k req (client, upstream)',
  ];
  const rows = measured(r)
    .filter((n) => cells[n])
    .map((n) => {
      const c = cells[n] as CellSummary;
      const info = r.configs.find((x) => x.name === n);
      return [
        label(n),
        num(c.rps.median),
        `${num(c.rps.min)}–${num(c.rps.max)}`,
        ...refs.map((ref) => ratio(rps(n), rps(ref))),
        ms(c.p50Ms),
        ms(c.p99Ms),
        cpu(c.cpuMsPerReq),
        ...(withMem ? [mb(info?.idleRss), mb(c.peakRss), mb(c.rssAfter)] : []),
        `${num(c.clientConnsPerK, 1)}, ${num(c.upstreamConnsPerK, 1)}`,
      ];
    });
  const errs = measured(r)
    .filter((n) => cells[n]?.errors)
    .map(
      (n) =>
        `- ${label(n)}: ${cells[n]!.errors} failed request(s) in measured windows (first: ${cells[n]!.firstError}).`,
    );
  return [table(head, rows), ...(errs.length ? ['', ...errs] : [])].join('\n');
}

function firstRequestTable(r: Results): string {
  const direct = r.probes.direct;
  const d = direct ? median(direct.newHost) : NaN;
  const rows = measured(r)
    .filter((n) => r.probes[n])
    .map((n) => {
      const p = r.probes[n]!;
      const nh = median(p.newHost);
      return [
        label(n),
        ms(nh),
        n === 'direct' || !Number.isFinite(d) ? '–' : `${nh - d >= 0 ? '+' : ''}${ms(nh - d)}`,
        ms(median(p.newConn)),
        ms(median(p.reuse)),
        String(p.newHost.length),
        p.errors ? `${p.errors} (${p.firstError})` : '0',
      ];
    });
  return table(
    [
      'configuration',
      'new host ms',
      'vs direct ms',
      'same host, new connection ms',
      'reused connection ms',
      'new-host samples',
      'errors',
    ],
    rows,
  );
}

function streamTable(r: Results): string {
  const size = `${(r.settings.streamBytes / 2 ** 20).toFixed(0)} MiB`;
  const rows: string[][] = [];
  for (const [name, e] of Object.entries(r.streams)) {
    if (e.error) rows.push([label(name), '–', '–', '–', '–', `failed: ${e.error}`]);
    for (const dir of ['down', 'up'] as const) {
      const x = e[dir];
      if (!x) continue;
      rows.push([
        label(name),
        dir === 'down' ? `${size} response` : `${size} request body`,
        num(x.mbPerSec),
        mb(x.peakRss),
        x.cpuSeconds == null ? '–' : num(x.cpuSeconds, 1),
        '',
      ]);
    }
  }
  return table(
    ['configuration', 'body', 'MiB/s', 'proxy peak RSS MB', 'proxy CPU s', 'note'],
    rows,
  );
}

interface Target {
  text: string;
  measured: string;
  verdict: 'met' | 'missed' | 'not measured';
  margin: string;
}

function pct(a: number, b: number): string {
  const p = (a / b - 1) * 100;
  return `${p >= 0 ? '+' : ''}${p.toFixed(0)}%`;
}

export function targets(r: Results, s: Summaries): Target[] {
  const out: Target[] = [];
  const h = s['1k-c32']['trustrun-headers'];
  const sq = s['1k-c32'].squid;
  const mi = s['1k-c32'].mitmdump;
  const none = (text: string, why: string): Target => ({
    text,
    measured: why,
    verdict: 'not measured',
    margin: '–',
  });
  const atLeast = (
    text: string,
    got: number,
    want: number,
    unit: string,
    fmt = (n: number) => num(n),
  ): Target => ({
    text,
    measured: `${fmt(got)} ${unit} vs ${fmt(want)} ${unit}`,
    verdict: got >= want ? 'met' : 'missed',
    margin: pct(got, want),
  });
  const below = (
    text: string,
    got: number,
    limit: number,
    unit: string,
    fmt = (n: number) => num(n),
  ): Target => ({
    text,
    measured: `${fmt(got)} ${unit} (limit ${fmt(limit)})`,
    verdict: got < limit ? 'met' : 'missed',
    margin: got < limit ? `${fmt(limit - got)} ${unit} under` : `${fmt(got - limit)} ${unit} over`,
  });

  let t = 'headers: req/s at or above Squid ssl_bump (1 KiB, 32 concurrent, same run)';
  out.push(
    h && sq
      ? atLeast(t, h.rps.median, sq.rps.median, 'req/s')
      : none(t, h ? 'Squid not run' : 'trustrun headers not run'),
  );
  t = 'headers: at least 4× mitmdump req/s';
  out.push(
    h && mi
      ? atLeast(t, h.rps.median, 4 * mi.rps.median, 'req/s')
      : none(t, h ? 'mitmdump not run' : 'trustrun headers not run'),
  );

  const pd = r.probes.direct;
  const ph = r.probes['trustrun-headers'];
  t = 'headers: first request to a never-seen host within 3 ms of direct';
  if (pd && ph && ph.newHost.length && pd.newHost.length) {
    const extra = median(ph.newHost) - median(pd.newHost);
    out.push({
      text: t,
      measured: `${ms(median(ph.newHost))} ms vs direct ${ms(median(pd.newHost))} ms (+${ms(extra)} ms)`,
      verdict: extra <= 3 ? 'met' : 'missed',
      margin: extra <= 3 ? `${ms(3 - extra)} ms to spare` : `${ms(extra - 3)} ms over`,
    });
    const nc = median(ph.newConn);
    out.push({
      text: 'headers: per-host cost (new host − same host on a new connection; includes minting, < 2 ms wanted for minting alone)',
      measured: `${ms(median(ph.newHost) - nc)} ms`,
      verdict: median(ph.newHost) - nc < 2 ? 'met' : 'missed',
      margin: 'upper bound for minting: it also holds the first upstream connection to that host',
    });
  } else out.push(none(t, 'direct or trustrun headers not run'));

  const f = s['1m-c32']['trustrun-full'];
  const sqm = s['1m-c32'].squid;
  t = 'full, 1 MiB bodies, 32 concurrent: req/s at or above Squid';
  out.push(
    f && sqm
      ? atLeast(t, f.rps.median, sqm.rps.median, 'req/s')
      : none(t, f ? 'Squid not run' : 'trustrun full not run'),
  );
  t = 'full, 1 MiB bodies, 32 concurrent: peak RSS under 150 MB';
  out.push(
    f && f.peakRss !== null
      ? below(t, f.peakRss / 1e6, 150, 'MB')
      : none(t, 'trustrun full not run'),
  );

  const st = r.streams['trustrun-full'];
  const sizeMiB = r.settings.streamBytes / 2 ** 20;
  t = `full: a ${sizeMiB >= 1024 ? `${sizeMiB / 1024} GiB` : `${sizeMiB} MiB`} body streams through with RSS under 200 MB`;
  const peaks = [st?.down?.peakRss, st?.up?.peakRss].filter(
    (x): x is number => typeof x === 'number',
  );
  out.push(
    peaks.length
      ? below(t, Math.max(...peaks) / 1e6, 200, 'MB')
      : none(t, st?.error ?? 'trustrun full not run'),
  );

  t = 'headers: RSS after load under 100 MB (1 KiB, 32 concurrent)';
  out.push(
    h && h.rssAfter !== null
      ? below(t, h.rssAfter / 1e6, 100, 'MB')
      : none(t, 'trustrun headers not run'),
  );

  t = 'store: at least 25,000 sealed request records per second';
  const store = r.micro.find((m) => m.name === 'store');
  const rps = store?.ok ? Number(store.data.recordsPerSec) : NaN;
  out.push(
    Number.isFinite(rps)
      ? atLeast(t, rps, 25_000, 'records/s')
      : none(t, store && !store.ok ? store.reason : 'bench/store.ts not run'),
  );

  t = "minting: a new host's leaf under 2 ms (shipped strategy, p50 of one host at a time)";
  const mint = microData(r, 'minting');
  const shipped = mint.data
    ? (mint.data.strategies as StrategyFigures[] | undefined)?.find((x) => x.name === 'shipped')
    : undefined;
  out.push(
    shipped
      ? {
          ...below(t, shipped.sequential.p50Ms, 2, 'ms', (n) => ms(n)),
          measured: `${ms(shipped.sequential.p50Ms)} ms (p99 ${ms(shipped.sequential.p99Ms)} ms, ${cpu(shipped.sequential.cpuMsPerHost)} ms CPU per host; limit 2)`,
        }
      : none(t, mint.why),
  );

  t = 'monitor: one poll of a 50-process tree under 5 ms (steady poll, wall p50)';
  const mon = microData(r, 'monitor');
  const poll = mon.data?.poll as PollCost | undefined;
  out.push(
    poll
      ? {
          ...below(t, poll.steady.p50, 5, 'ms', (n) => ms(n)),
          measured: `${ms(poll.steady.p50)} ms wall p50, ${ms(poll.steady.cpuMs)} ms CPU (steady poll, ${poll.processes} processes, ${poll.sockets} sockets; limit 5)`,
        }
      : none(t, mon.why),
  );
  return out;
}

/** A micro-benchmark's JSON, or why there is none. */
function microData(r: Results, name: string): { data?: Record<string, unknown>; why: string } {
  const m = r.micro.find((x) => x.name === name);
  if (!m) return { why: `bench/${name}.ts not run` };
  if (!m.ok) return { why: m.reason };
  return { data: m.data, why: '' };
}

function mintingLines(cmd: string, d: Record<string, unknown>): string[] {
  const list = d.strategies as StrategyFigures[];
  const rows = list.map((x) => [
    x.description,
    num(x.sequential.hosts),
    ms(x.sequential.p50Ms),
    ms(x.sequential.p99Ms),
    cpu(x.sequential.cpuMsPerHost),
    num(x.burst.hostsPerSec),
  ]);
  return [
    `- **minting** (\`${cmd}\`): what a never-seen host costs before its handshake (sign a leaf ` +
      `with the ${String(d.caKey ?? '')} CA, build the context that serves it). Latency: one new host at a time, ` +
      `5 ms apart, strategies interleaved; CPU: the process's (all threads) per host, including work done between ` +
      `hosts (the shipped strategy prepares its next contexts there); burst: ${list.map((x) => x.burst.hosts).join('/')} ` +
      `new hosts asked for at once.`,
    '',
    indent(table(['strategy', 'hosts', 'p50 ms', 'p99 ms', 'CPU ms/host', 'burst hosts/s'], rows)),
    '',
  ];
}

function monitorLines(cmd: string, d: Record<string, unknown>): string[] {
  const p = d.poll as PollCost;
  const cells = (d.catchRate ?? []) as CatchCell[];
  const intervals = [...new Set(cells.map((c) => c.intervalMs))].sort((a, b) => a - b);
  const lifetimes = [...new Set(cells.map((c) => c.lifetimeMs))].sort((a, b) => a - b);
  const rows = lifetimes.map((life) => [
    `${life} ms`,
    ...intervals.map((iv) => {
      const c = cells.find((x) => x.lifetimeMs === life && x.intervalMs === iv);
      return c ? `${Math.round(c.fraction * 100)}% (${c.caught}/${c.connections})` : '–';
    }),
  ]);
  const lines = [
    `- **monitor** (\`${cmd}\`): one poll of a ${p.processes}-process tree holding ${p.sockets} inet sockets ` +
      `(${p.fds} fds): steady (nothing new) ${ms(p.steady.cpuMs)} ms CPU, wall p50 ${ms(p.steady.p50)} ms, ` +
      `p95 ${ms(p.steady.p95)} ms (n=${p.steady.n}); reading the socket tables ${ms(p.withTables.cpuMs)} ms CPU, ` +
      `wall p50 ${ms(p.withTables.p50)} ms, p95 ${ms(p.withTables.p95)} ms (n=${p.withTables.n}); a live monitor at 100 ms: ` +
      `${p.live.polls} polls, mean ${ms(p.live.meanMs)} ms, max ${ms(p.live.maxMs)} ms.`,
  ];
  if (rows.length) {
    lines.push(
      '',
      '  Short-lived connections caught (a child opens connections one after the other to a local ' +
        'server, each held for the lifetime, 5 ms apart; caught/opened at each poll interval):',
      '',
      indent(table(['connection lifetime', ...intervals.map((iv) => `${iv} ms interval`)], rows)),
      '',
    );
  }
  return lines;
}

const indent = (text: string) =>
  text
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');

function microSection(r: Results): string {
  if (r.micro.length === 0) return 'Not run in this run.';
  const lines: string[] = [];
  for (const m of r.micro) {
    const cmd = `node --import tsx bench/${m.name}.ts --json${m.args.length ? ` ${m.args.join(' ')}` : ''}`;
    if (!m.ok) {
      lines.push(`- **${m.name}** (\`${cmd}\`): skipped — ${m.reason}`);
      continue;
    }
    const d = m.data as Record<string, unknown>;
    if (m.name === 'policy' && Array.isArray(d.figures)) {
      const figs = (
        d.figures as { case: string; evalsPerSecond: number; microsecondsPerEval: number }[]
      )
        .map((f) => `${f.case}: ${num(f.evalsPerSecond)}/s (${f.microsecondsPerEval} µs)`)
        .join('; ');
      lines.push(
        `- **policy** (\`${cmd}\`): ${d.rules} rules compiled in ${num(Number(d.compileMs), 0)} ms; evaluations ${figs}.`,
      );
    } else if (m.name === 'store' && 'recordsPerSec' in d) {
      lines.push(
        `- **store** (\`${cmd}\`): ${num(Number(d.recordsPerSec))} sealed records/s (${num(Number(d.recordsPerCpuSec))} per CPU-second), ` +
          `${num(Number(d.fullRecordsPerSec))} full-level records/s, body sealing ${num(Number(d.bodySealMBps))} MB/s, opening ${num(Number(d.bodyOpenMBps))} MB/s.`,
      );
    } else if (m.name === 'scan' && typeof d.warm === 'object' && d.warm) {
      const w = d.warm as Record<string, number>;
      const c = (d.cold ?? {}) as Record<string, number>;
      lines.push(
        `- **scan** (\`${cmd}\`): ${num(Number(d.files))} files (${d.megabytes} MB); warm ${num(w.filesPerSecond)} files/s (${w.mbPerSecond} MB/s), ` +
          `cold ${num(c.filesPerSecond)} files/s.`,
      );
    } else if (m.name === 'minting' && Array.isArray(d.strategies)) {
      lines.push(...mintingLines(cmd, d));
    } else if (m.name === 'monitor' && typeof d.poll === 'object' && d.poll) {
      lines.push(...monitorLines(cmd, d));
    } else {
      lines.push(`- **${m.name}** (\`${cmd}\`): \`${JSON.stringify(d).slice(0, 300)}\``);
    }
  }
  return lines.join('\n').trimEnd();
}

/**
 * The proxy's CPU per request taken apart in one cell, against the Node floors measured in the
 * same run: TLS alone (tls-relay), Node's HTTP stack on both sides (http-relay − tls-relay) and
 * trustrun's own work (policy, records, sealing, store: trustrun − http-relay), beside Squid's.
 */
function layersTable(r: Results, s: Summaries, cell: CellName, level: string): string {
  const c = s[cell];
  const cpuOf = (n: string) => c[n]?.cpuMsPerReq ?? NaN;
  const [tlsR, httpR, tr, squid] = ['tls-relay', 'http-relay', level, 'squid'].map(cpuOf) as [
    number,
    number,
    number,
    number,
  ];
  const missing = ['tls-relay', 'http-relay', level].filter((n) => !Number.isFinite(cpuOf(n)));
  if (missing.length) return `Not measured in this run (${missing.map(label).join(', ')} not run).`;
  const rows: string[][] = [
    ['TLS terminated on both sides, bytes piped (Node TLS relay)', cpu(tlsR), cpu(tlsR)],
    [
      '+ HTTP parsed on both sides: `node:http` and undici (Node HTTP relay)',
      cpu(httpR - tlsR),
      cpu(httpR),
    ],
    [
      `+ trustrun's own work: policy, records, sealing, store (${label(level)})`,
      cpu(tr - httpR),
      cpu(tr),
    ],
  ];
  if (Number.isFinite(squid)) rows.push([label('squid'), '', cpu(squid)]);
  const lines = [table(['layer', 'proxy CPU ms/req', 'cumulative'], rows)];
  if (Number.isFinite(squid)) {
    const room = squid - httpR;
    const left =
      room > 0
        ? `Node's HTTP relay leaves ${cpu(room)} ms for trustrun's own work here`
        : `Node's HTTP relay alone already uses ${cpu(-room)} ms more than Squid here, leaving nothing for trustrun's own work`;
    // Per record, the store's own floor matters where a request is a record and little else.
    const store = cell === '1k-c32' ? microData(r, 'store').data : undefined;
    const storeNote = store
      ? `, and the store alone takes ${cpu(1000 / Number(store.recordsPerCpuSec))} ms of CPU per sealed record at its fastest (the store micro-benchmark, records written back to back)`
      : '';
    lines.push(
      '',
      `To serve Squid's rate on these shared cores the proxy may use no more CPU per request than Squid (the load generator and the upstream cost the same behind either). ${left}; that work measured ${cpu(tr - httpR)} ms${storeNote}.`,
    );
  }
  return lines.join('\n');
}

function loadgenCpu(r: Results): number {
  return median((r.cells['1k-c32'].direct ?? []).map((x) => x.loadgenCpuMsPerReq));
}

/**
 * Renders docs/benchmarks.md. `notes` (bench/notes.md: hand-written findings, kept in the
 * repository) is appended as it is, after the generated sections, so it survives reruns.
 */
export function renderMarkdown(r: Results, svgFile: string, notes = ''): string {
  const s = summaries(r);
  const m = r.machine;
  const st = r.settings;
  const skipped = r.configs.filter((c) => c.note !== null);
  const versions = r.configs
    .filter((c) => c.available && c.version)
    .map((c) => `${label(c.name)}: ${c.version}`);
  const tgt = targets(r, s);
  return `# Benchmarks

This page is generated by \`npm run bench\` (bench/run.ts); do not edit it by hand. The raw figures of
this run are in \`bench/results/\` (not committed). Re-run the suite after a change to the proxy and
compare.

- **Date:** ${r.startedAt.replace('T', ' ').replace(/\.\d+Z$/, ' UTC')} (${r.wallSeconds} s)
- **Machine:** ${m.cores} cores, ${m.cpuModel}, ${m.memoryGiB} GiB RAM, ${m.os} (Linux ${m.kernel}), Node ${m.node}
- **Load average** (1 min) at start ${m.loadAverageAtStart}, at end ${r.loadAverageAtEnd}: ${
    m.loadAverageAtStart > m.cores / 2
      ? 'other work was running on this machine; absolute figures are noisy, ratios within the run less so.'
      : 'the machine was otherwise quiet.'
  }
- **Command:** \`${r.command}\`${st.quick ? ' (quick run: one repetition, short windows)' : ''}
- **Versions:** ${versions.join('; ') || '–'}

## Method

One local HTTPS upstream (Node \`https\`, keep-alive, a test CA made at run time) serves 1 KiB and
1 MiB responses as \`api.bench.test\` (and \`*.bench.test\`); every configuration reaches it under that
name (trustrun with \`--resolve '*.bench.test:443:127.0.0.1:PORT'\`, the plain tunnel and the Node relays with the same
mapping, mitmdump through a \`server_connect\` addon, Squid through a hosts file and 127.0.0.2:443).
The load generator is a separate process using undici (\`Agent\` direct, \`ProxyAgent\` with the
proxy's CA through proxies, keep-alive). The upstream, the load generator and the proxy share the
${m.cores} cores. Each proxy runs as its own process: trustrun as
\`bin/trustrun.js proxy --policy FILE --port 0 --level LEVEL --data-dir TMP --upstream-ca FILE --resolve … --json\`
(run as a program, as the installed \`trustrun\` command is, so that its launcher's memory settings
apply; recording and sealing on, its own temporary data directory). The policy is a clinical-style
file of 24 rules (\`BENCH_POLICY\` in \`bench/lib/configs.ts\`: an inherited preset, blocks, address
rules, method and path rules, \`defaults: block\`) whose rules for the benchmark's hosts come after
ten others, so every CONNECT and every request is evaluated against it.

Each cell runs ${(st.warmupMs / 1000).toFixed(1)} s of warm-up, then a fixed window
(${st.durationMs['1k-c1'] / 1000} s at concurrency 1, ${st.durationMs['1k-c32'] / 1000} s at 32), ${st.repetitions} repetition(s) with the configuration
order rotated each time; the table shows the median and the min–max of req/s, and the median of the
per-repetition p50/p99 latencies. **Proxy CPU per request** is the proxy process tree's user+system
time (from \`/proc/PID/stat\`) in the measured window divided by the requests completed — the figure
that depends least on the shared cores. **RSS** (1 MB = 10⁶ bytes): idle after start-up and one test request, peak during
the load (VmHWM reset before each cell, plus 50 ms sampling of VmRSS), and ${(st.settleMs / 1000).toFixed(1)} s after the load
stopped (median over repetitions). **New connections per 1,000 requests**: the client keeps a
fixed pool of as many connections as the concurrency, so a new client connection (tunnel) in the
window means the proxy closed one; the upstream count is the TLS connections the upstream accepted
(the proxy's own upstream pool). For scale: in the direct 1 KiB × 32 cell the upstream used
${cpu(s['1k-c32'].direct?.upstreamCpuMsPerReq)} ms and the load generator ${cpu(loadgenCpu(r))} ms of CPU per request.

![req/s and p99 latency per configuration](${svgFile})

## 1 KiB responses, 32 concurrent

${throughputTable(r, s, '1k-c32')}

## 1 KiB responses, one request at a time

${throughputTable(r, s, '1k-c1')}

## First request latency

A fresh client per sample (own connections, no TLS session to resume). *New host*: the first
request to a name the proxy has never seen (\`n1-1.bench.test\`, …, all mapped to the same upstream):
for an intercepting proxy this includes minting a leaf certificate and its first upstream
connection. *Same host, new connection*: \`api.bench.test\`, already seen. *Reused connection*: a
request on a kept-alive connection. Medians.

${firstRequestTable(r)}

## 1 MiB responses, 32 concurrent

${throughputTable(r, s, '1m-c32')}

## One large body streamed through

${streamTable(r)}

## Where the proxy's CPU goes, layer by layer

Proxy CPU per request (medians) of trustrun and of two Node programs measured in the same run
that terminate the client's TLS the same way and record nothing (\`bench/children/tunnel.ts\`):
one pipes the decrypted bytes to its own TLS connection to the upstream, the other parses each
request with \`node:http\` and forwards it with undici's dispatch API, the stack trustrun's proxy is
built on.

**1 KiB responses, 32 concurrent** (trustrun at \`headers\`):

${layersTable(r, s, '1k-c32', 'trustrun-headers')}

**1 MiB responses, 32 concurrent** (trustrun at \`full\`):

${layersTable(r, s, '1m-c32', 'trustrun-full')}

## Targets (DESIGN.md, "Performance targets")

${table(
  ['target', 'measured', 'verdict', 'margin'],
  tgt.map((x) => [
    x.text,
    x.measured,
    x.verdict === 'met' ? '**met**' : x.verdict === 'missed' ? '**missed**' : 'not measured',
    x.margin,
  ]),
)}

Where the proxy's time goes in the cells behind these targets: the layers measured in this run
(the section before this one), and flame graphs of its event loop under the same load in
[profiles/](profiles/README.md) (made by \`npm run bench -- --profile\`; the profiler's cost keeps
those runs off this page). Why each missed target is missed, with the measurements behind it: the
notes at the end of this page, newest pass last.

## Micro-benchmarks

${microSection(r)}
${
  skipped.length || r.notes.length
    ? `\n## Notes\n\n${[...skipped.map((c) => `- ${label(c.name)}: ${c.note}`), ...r.notes.map((n) => `- ${n}`)].join('\n')}\n`
    : ''
}
## Reading these numbers

- Squid's CA here is RSA 2048 (its certificate generator signs with it); trustrun's CA and leaf keys
  are EC P-256; mitmproxy makes its own RSA CA. The client's handshake cost differs accordingly.
- mitmdump buffers whole bodies by default; it runs with \`flow_detail=0\` and stores no flows.
  trustrun records (and seals) every request at every level.
- Squid's CPU time includes its certificate-generator helpers (the process tree); its RSS is the
  main process only.

## Running it

\`\`\`sh
apt-get install mitmproxy squid-openssl   # optional: the reference proxies (skipped with a note when missing)
npm run bench                             # builds dist/, about 10 minutes, rewrites this page
npm run bench -- --quick                  # about 3 minutes: 1 repetition, short windows, smaller bodies; JSON only
npm run bench -- --profile --only http-relay,trustrun-headers,trustrun-full --no-micro
                                          # about 4 minutes: flame graphs into docs/profiles/; this page untouched
\`\`\`

Options: \`--quick\`, \`--docs\` / \`--no-docs\` (rewrite this page and \`docs/benchmarks.svg\`; default on
unless \`--quick\`), \`--no-build\`, \`--no-micro\`, \`--only direct,tunnel,trustrun-headers\` (configurations:
direct, tunnel, tls-relay, http-relay, trustrun-metadata, trustrun-headers, trustrun-full, mitmdump,
squid), \`--reps N\`,
\`--from-results FILE\` (measure nothing: render this page from an earlier run's JSON; with
\`--no-docs\` to stdout), \`--profile\` (the trustrun configurations and the two Node relays run under V8's CPU profiler,
sampling every 500 µs, started through their launcher as usual; after the run each one's event-loop
profile is cut to the measured windows of the 1 KiB × 32 and 1 MiB × 32 cells and of the never-seen
hosts, 60 a repetition instead of 15, and drawn as \`docs/profiles/<configuration>-<cell>.svg\` with an
index, \`docs/profiles/README.md\`, listing each graph's busiest frames; \`BENCH_PROFILE_DIR=DIR\` writes
them elsewhere; \`BENCH_KEEP_TMP=1\` keeps the run's temporary directory with the raw profiles; its figures go to a \`-profiled\` JSON file, never to this page or \`latest.json\`).
\`BENCH_TRUSTRUN_BIN=FILE\` runs another trustrun entry point instead of
\`bin/trustrun.js\`; \`BENCH_TRUSTRUN_NODE_ARGS='--opt …'\` starts trustrun as \`node --opt … FILE\`,
with these options instead of the launcher's (either variable bypasses the launcher, and with it
its memory settings and \`--expose-gc\`, without which the proxy's collection of relayed body
chunks does nothing). The sections after this one come from \`bench/notes.md\` (hand-written, committed) and are
appended as they are on every run. Results go to
\`bench/results/\` (one JSON file per run, plus \`latest.json\`). Linux only (procfs). Squid needs root: its
upstream listener is 127.0.0.2:443 and its helpers run as the \`proxy\` user. All traffic stays on
127.0.0.1 and 127.0.0.2; certificates and keys are made in a temporary directory and deleted, and
every child process is stopped at the end, also after a failure or Ctrl-C.
${notesSection(notes)}`;
}

/** bench/notes.md without its leading HTML comments, after one blank line; '' when empty. */
function notesSection(notes: string): string {
  const text = notes.replace(/^\s*(<!--[\s\S]*?-->\s*)*/, '').trimEnd();
  return text ? `\n${text}\n` : '';
}

/** A compact plain-text summary for the terminal. */
export function renderSummary(r: Results): string {
  const s = summaries(r);
  const lines = [
    'configuration              1KiB×32 req/s  p99 ms  cpu ms/req  new-host ms  1MiB×32 req/s',
  ];
  for (const name of measured(r)) {
    const a = s['1k-c32'][name];
    const b = s['1m-c32'][name];
    const p = r.probes[name];
    lines.push(
      `${name.padEnd(26)} ${num(a?.rps.median).padStart(13)} ${ms(a?.p99Ms).padStart(7)} ${cpu(a?.cpuMsPerReq).padStart(11)} ${ms(p ? median(p.newHost) : NaN).padStart(12)} ${num(b?.rps.median).padStart(14)}`,
    );
  }
  lines.push('', 'targets:');
  for (const t of targets(r, s))
    lines.push(`  [${t.verdict}] ${t.text}: ${t.measured} (${t.margin})`);
  return lines.join('\n');
}
