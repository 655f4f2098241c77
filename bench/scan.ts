/**
 * Scanner throughput: generates a tree of 10,000 source files (Python 30%, JavaScript 20%,
 * TypeScript 20%, R 10%, YAML 10%, Markdown 10%; 0.3–8 KiB each) in a temp directory, scans
 * it twice (the first run includes loading the parsers) and reports files/s and MB/s, by
 * wall clock and by the CPU time the scan used (the figure that depends least on what else
 * the machine is doing). About 40% of the code blocks talk to the network (URLs, calls,
 * endpoint arguments, comments with URLs, a few secrets); the rest is plain computation.
 *
 *   npx tsx bench/scan.ts [--json] [--files N]
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { scanDirectory, type ScanResult } from '../src/scan/index.js';

const args = process.argv.slice(2);
const asJson = args.includes('--json');
const filesArg = args.indexOf('--files');
const FILES = filesArg === -1 ? 10_000 : Number(args[filesArg + 1]);

/** Deterministic pseudo-random numbers (mulberry32), so every run scans the same tree. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const rand = rng(42);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
const HOSTS = [
  'api.partner.org',
  'data.research-api.org',
  'hospital-east.openai.azure.com',
  'cdn.vendor.net',
];
const lines = (...xs: string[]) => xs.join('\n') + '\n';

/** Code blocks that talk to the network, per extension. */
const NETWORK: Record<string, (i: number) => string> = {
  py: (i) =>
    lines(
      'import requests',
      `# helper ${i}: see https://${pick(HOSTS)}/docs`,
      `BASE = "https://${pick(HOSTS)}/v${i % 3}"`,
      `def fetch_${i}(item, retries=3):`,
      '    for attempt in range(retries):',
      '        resp = requests.get(f"{BASE}/items/{item}", timeout=10)',
      '        if resp.ok:',
      '            return resp.json()',
    ),
  js: (i) =>
    lines(
      "const axios = require('axios');",
      `// client ${i}: https://${pick(HOSTS)}/guide`,
      `const BASE_${i} = 'https://${pick(HOSTS)}/api';`,
      `async function load${i}(id) {`,
      `  const { data } = await axios.get(\`\${BASE_${i}}/records/\${id}\`, { timeout: 5000 });`,
      '  return data.items.filter((x) => x.active);',
      '}',
    ),
  ts: (i) =>
    lines(
      "import OpenAI from 'openai';",
      `export const client${i} = new OpenAI({ baseURL: 'https://${pick(HOSTS)}/v1' });`,
      `export async function list${i}(page: number): Promise<unknown> {`,
      `  const res = await fetch(\`https://${pick(HOSTS)}/items?page=\${page}\`);`,
      '  return res.json();',
      '}',
    ),
  R: (i) =>
    lines(
      'library(httr)',
      `# analysis ${i}; source https://${pick(HOSTS)}/extract`,
      `fetch_${i} <- function(id) {`,
      `  resp <- GET(paste0("https://${pick(HOSTS)}/extract/", id))`,
      '  content(resp)',
      '}',
    ),
  yaml: (i) =>
    lines(
      `service_${i}:`,
      `  endpoint: https://${pick(HOSTS)}/hooks`,
      i % 50 === 0 ? '  aws_access_key_id: AKIAIOSFODNN7EXAMPLE' : '  region: eu-west-1',
    ),
  md: (i) =>
    lines(`# Notes ${i}`, '', `The service at https://${pick(HOSTS)}/status reports health.`),
};

/** Code blocks without any endpoint, per extension. */
const PLAIN: Record<string, (i: number) => string> = {
  py: (i) =>
    lines(
      `def summarize_${i}(rows, key="value"):`,
      '    # mean and spread of one column',
      '    values = [float(r[key]) for r in rows if r.get(key) is not None]',
      '    if not values:',
      '        return None',
      '    mean = sum(values) / len(values)',
      '    var = sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1)',
      '    return {"n": len(values), "mean": mean, "sd": var ** 0.5}',
    ),
  js: (i) =>
    lines(
      `function groupBy${i}(items, key) {`,
      '  // collect items by the value of key',
      '  const out = new Map();',
      '  for (const item of items) out.set(item[key], [...(out.get(item[key]) ?? []), item]);',
      '  return out;',
      '}',
    ),
  ts: (i) =>
    lines(
      `export function clamp${i}(value: number, min = 0, max = 1): number {`,
      '  if (Number.isNaN(value)) throw new Error(`not a number: ${value}`);',
      '  return Math.min(max, Math.max(min, value));',
      '}',
      `export type Row${i} = { id: string; score: number; tags: readonly string[] };`,
    ),
  R: (i) =>
    lines(
      `summarise_${i} <- function(df, col) {`,
      '  x <- df[[col]]',
      '  data.frame(n = sum(!is.na(x)), mean = mean(x, na.rm = TRUE), sd = sd(x, na.rm = TRUE))',
      '}',
    ),
  yaml: (i) => lines(`job_${i}:`, '  retries: 3', '  memory: 4Gi', '  schedule: "0 3 * * *"'),
  md: (i) => lines(`## Step ${i}`, '', 'Run the pipeline, then check the summary table.'),
};

const MIX: Array<[string, number]> = [
  ['py', 0.3],
  ['js', 0.2],
  ['ts', 0.2],
  ['R', 0.1],
  ['yaml', 0.1],
  ['md', 0.1],
];

function generate(root: string): { files: number; bytes: number } {
  let bytes = 0;
  let n = 0;
  for (const [ext, share] of MIX) {
    const count = Math.round(FILES * share);
    const network = NETWORK[ext] as (i: number) => string;
    const plain = PLAIN[ext] as (i: number) => string;
    for (let i = 0; i < count && n < FILES; i++, n++) {
      const dir = join(root, `pkg${n % 100}`, ext);
      mkdirSync(dir, { recursive: true });
      // 1–24 blocks, 40% of them with endpoints.
      const blocks = Array.from({ length: 1 + Math.floor(rand() * 24) }, (_, k) =>
        rand() < 0.4 ? network(i * 32 + k) : plain(i * 32 + k),
      );
      const body = blocks.join('\n');
      writeFileSync(join(dir, `m${i}.${ext}`), body);
      bytes += Buffer.byteLength(body);
    }
  }
  return { files: n, bytes };
}

const round2 = (x: number) => Math.round(x * 100) / 100;

async function measure(root: string) {
  const cpu0 = process.cpuUsage();
  const r: ScanResult = await scanDirectory(root);
  const cpu = process.cpuUsage(cpu0);
  const wall = r.durationMs / 1000;
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const mb = r.bytesScanned / 1e6;
  return {
    wallSeconds: round2(wall),
    cpuSeconds: round2(cpuSeconds),
    filesPerSecond: Math.round(r.filesScanned / wall),
    mbPerSecond: round2(mb / wall),
    filesPerCpuSecond: Math.round(r.filesScanned / cpuSeconds),
    mbPerCpuSecond: round2(mb / cpuSeconds),
    findings: r.findings.length,
  };
}

const root = mkdtempSync(join(tmpdir(), 'trustrun-bench-scan-'));
try {
  const tree = generate(root);
  const cold = await measure(root);
  const warm = await measure(root);
  const report = {
    benchmark: 'scan',
    node: process.version,
    cpus: cpus().length,
    loadAverage: round2(loadavg()[0] ?? 0),
    files: tree.files,
    megabytes: round2(tree.bytes / 1e6),
    cold,
    warm,
  };
  if (asJson) {
    process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  } else {
    console.log(
      `scan: ${report.files} files, ${report.megabytes} MB ` +
        `(${report.cpus} cpus, load ${report.loadAverage}, node ${report.node})`,
    );
    for (const run of ['cold', 'warm'] as const) {
      const x = report[run];
      console.log(
        `  ${run}: wall ${x.wallSeconds} s = ${x.filesPerSecond} files/s, ${x.mbPerSecond} MB/s; ` +
          `cpu ${x.cpuSeconds} s = ${x.filesPerCpuSecond} files/cpu-s, ${x.mbPerCpuSecond} MB/cpu-s; ` +
          `${x.findings} findings`,
      );
    }
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}
