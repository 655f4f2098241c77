/**
 * Store ingest benchmark: sealed request records per second (insert + completion with typical
 * headers, through the batching writer, as the proxy writes them) and body sealing throughput.
 *
 *   npx tsx bench/store.ts [--json] [--records N] [--concurrency N]
 *
 * Prints a short report, or with --json one JSON document, on stdout.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  loadSealing,
  newDataKey,
  openStore,
  openValue,
  sealValue,
  type HeaderList,
} from '../src/store/index.js';

export interface StoreBenchResult {
  records: number;
  concurrency: number;
  /** Sealed records (insert + completion) committed per second of wall time. */
  recordsPerSec: number;
  /** The same per second of this process's CPU time, all threads (less sensitive to other load). */
  recordsPerCpuSec: number;
  commits: number;
  /** Request rows alone (addRequest, no completion) committed per second. */
  insertsPerSec: number;
  /** Full-level records with a 16 KiB request and a 64 KiB response body, per second. */
  fullRecordsPerSec: number;
  bodySealMBps: number;
  bodyOpenMBps: number;
  target: { recordsPerSec: number; met: boolean };
  loadAverage: { before: number; after: number };
  node: string;
}

const REQUEST_HEADERS: HeaderList = [
  ['host', 'myorg.openai.azure.com'],
  ['user-agent', 'python-requests/2.31.0'],
  ['accept', 'application/json'],
  ['accept-encoding', 'gzip, deflate'],
  ['connection', 'keep-alive'],
  ['content-type', 'application/json'],
  ['content-length', '734'],
  ['api-key', '3f9a0c1e5b7d4a2e8c6b1f0d9e7a5c3b'],
  ['x-request-id', '0f8fad5b-d9cb-469f-a165-70867728950e'],
  ['traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'],
];

const RESPONSE_HEADERS: HeaderList = [
  ['content-type', 'application/json'],
  ['content-length', '1532'],
  ['date', 'Wed, 25 Nov 2026 21:45:36 GMT'],
  ['server', 'nginx'],
  ['cache-control', 'no-store'],
  ['x-request-id', '0f8fad5b-d9cb-469f-a165-70867728950e'],
  ['x-ms-region', 'East US'],
  ['strict-transport-security', 'max-age=31536000; includeSubDomains'],
  ['apim-request-id', 'b2d4f6a8-1c3e-4a5b-9d7f-2e4c6a8b0d1f'],
];

const URL_PATH = '/openai/deployments/gpt-4o/chat/completions?api-version=2024-02-01';

async function ingest(
  records: number,
  concurrency: number,
  bodies: { request: Buffer; response: Buffer } | null,
  complete = true,
) {
  const dataDir = mkdtempSync(join(tmpdir(), 'trustrun-bench-store-'));
  try {
    const store = await openStore({ dataDir });
    const session = store.startSession({ kind: 'proxy', level: bodies ? 'full' : 'headers' });
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (let done = 0; done < records; done += concurrency) {
      const n = Math.min(concurrency, records - done);
      const started = Date.now();
      const ids = await Promise.all(
        Array.from({ length: n }, () =>
          store.addRequest({
            sessionId: session.id,
            connectionId: null,
            startedAt: started,
            method: 'POST',
            scheme: 'https',
            host: 'myorg.openai.azure.com',
            port: 443,
            url: URL_PATH,
            requestHeaders: REQUEST_HEADERS,
            verdict: null,
          }),
        ),
      );
      for (const id of complete ? ids : []) {
        store.completeRequest(id, {
          endedAt: Date.now(),
          status: 200,
          responseHeaders: RESPONSE_HEADERS,
          requestBody: bodies
            ? { data: bodies.request, truncated: false, size: bodies.request.length }
            : null,
          responseBody: bodies
            ? { data: bodies.response, truncated: false, size: bodies.response.length }
            : null,
          requestSize: 734,
          responseSize: 1532,
          ttfbMs: 41,
          outcome: 'ok',
        });
      }
    }
    await store.flush();
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const commits = store.stats.commits;
    await store.close();
    return {
      perSec: records / seconds,
      perCpuSec: records / ((cpu.user + cpu.system) / 1e6),
      commits,
    };
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

function bodyThroughput(): { seal: number; open: number } {
  const key = newDataKey();
  const body = Buffer.alloc(1 << 20, 0x5a);
  const rounds = 100;
  const ctx = (i: number) => ({
    table: 'requests',
    recordId: `0mwwnva45${i.toString(16).padStart(12, '0')}`,
    field: 'response_body',
  });
  const sealed: Buffer[] = [];
  let t = performance.now();
  for (let i = 0; i < rounds; i++) sealed.push(sealValue(key, ctx(i), body));
  const seal = rounds / ((performance.now() - t) / 1000);
  t = performance.now();
  for (let i = 0; i < rounds; i++) openValue(key, ctx(i), sealed[i]!);
  const open = rounds / ((performance.now() - t) / 1000);
  return { seal, open };
}

export async function runStoreBench(
  opts: { records?: number; concurrency?: number } = {},
): Promise<StoreBenchResult> {
  const records = opts.records ?? 50_000;
  const concurrency = opts.concurrency ?? 256;
  await loadSealing();
  const before = loadavg()[0]!;
  await ingest(2_000, concurrency, null); // warm-up
  const headers = await ingest(records, concurrency, null);
  const inserts = await ingest(records, concurrency, null, false);
  const full = await ingest(Math.max(1000, Math.floor(records / 20)), concurrency, {
    request: Buffer.alloc(16 * 1024, 0x71),
    response: Buffer.alloc(64 * 1024, 0x72),
  });
  const body = bodyThroughput();
  const target = 25_000;
  return {
    records,
    concurrency,
    recordsPerSec: Math.round(headers.perSec),
    recordsPerCpuSec: Math.round(headers.perCpuSec),
    commits: headers.commits,
    insertsPerSec: Math.round(inserts.perSec),
    fullRecordsPerSec: Math.round(full.perSec),
    bodySealMBps: Math.round(body.seal),
    bodyOpenMBps: Math.round(body.open),
    target: { recordsPerSec: target, met: headers.perSec >= target },
    loadAverage: { before: round2(before), after: round2(loadavg()[0]!) },
    node: process.version,
  };
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

function argValue(args: string[], name: string): number | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = Number(args[i + 1]);
  if (!Number.isInteger(v) || v < 1) {
    process.stderr.write(`${name} needs a whole number\n`);
    process.exit(2);
  }
  return v;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const r = await runStoreBench({
    records: argValue(args, '--records'),
    concurrency: argValue(args, '--concurrency'),
  });
  if (args.includes('--json')) {
    process.stdout.write(JSON.stringify(r, null, 2) + '\n');
    return;
  }
  const line = (s: string) => process.stdout.write(s + '\n');
  line(`store ingest (${r.records} records, ${r.concurrency} concurrent, ${r.commits} commits)`);
  line(
    `  sealed records/s       ${r.recordsPerSec}  (target ${r.target.recordsPerSec}: ${r.target.met ? 'met' : 'NOT met'})`,
  );
  line(`  records per CPU-second ${r.recordsPerCpuSec}`);
  line(`  request inserts/s      ${r.insertsPerSec}  (addRequest alone, no completion)`);
  line(`  full records/s         ${r.fullRecordsPerSec}  (16 KiB + 64 KiB bodies)`);
  line(`  body seal              ${r.bodySealMBps} MB/s  (1 MiB values)`);
  line(`  body open              ${r.bodyOpenMBps} MB/s`);
  line(`  load average           ${r.loadAverage.before} -> ${r.loadAverage.after} (2 cores)`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
