/**
 * Leaf minting per strategy: what a never-seen host costs the proxy before its TLS handshake
 * can start (sign a leaf certificate for the host and build the secure context that serves it).
 *
 *   shipped     LeafMinter as the proxy uses it: one leaf key for the process, contexts that
 *               already hold that key prepared ahead (a new host only loads its certificate),
 *               topped up when the host is done with its context (refillSpares)
 *   no-spares   the same key and certificate, but createSecureContext({ key, cert }) per host
 *   key-ec      a new EC P-256 key pair per host (generated, exported, loaded), then the same
 *   key-rsa     a new RSA 2048 key pair per host (the rejected strategy: the key is the cost)
 *
 * Every strategy signs with the same CA (EC P-256, made by loadOrCreateCa in a temporary data
 * directory) through the same certificate encoder (src/ca/leaf.ts). Two measurements each:
 * **sequential** (one new host at a time, 5 ms apart, so work prepared off the request path
 * has its chance, as between real first requests; the strategies interleaved in rounds) gives
 * per-host latency p50/p99 and CPU per host; **burst** (N new hosts asked for at once) gives
 * hosts/s when new hosts arrive faster than anything can be prepared.
 *
 *   node --import tsx bench/minting.ts [--json] [--quick]
 *
 * Nothing listens or connects; the temporary directory is deleted at the end.
 */
import { createHash, generateKeyPair, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createSecureContext as tlsContext, type SecureContext } from 'node:tls';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { dataPaths } from '../src/core/index.js';
import { LeafMinter, loadOrCreateCa, normalizeHost } from '../src/ca/index.js';
import { caSecrets } from '../src/ca/authority.js';
import { pemEncode } from '../src/ca/der.js';
import { leafTemplate, mintLeaf, processLeafKey, type LeafKey } from '../src/ca/leaf.js';
import { describeMachine, type Machine } from './lib/machine.js';

const genKeyPair = promisify(generateKeyPair);

export type StrategyName = 'shipped' | 'no-spares' | 'key-ec' | 'key-rsa';

export interface StrategyFigures {
  name: StrategyName;
  description: string;
  sequential: {
    hosts: number;
    p50Ms: number;
    p99Ms: number;
    meanMs: number;
    maxMs: number;
    /** This process's CPU (user + system, all threads) per host. */
    cpuMsPerHost: number;
  };
  burst: { hosts: number; seconds: number; hostsPerSec: number };
}

export interface MintingBenchResult {
  machine: Machine;
  date: string;
  caKey: string;
  strategies: StrategyFigures[];
  target: { mintMs: number; measuredP50Ms: number; met: boolean };
  loadAverage: { before: number; after: number };
}

const DESCRIPTIONS: Record<StrategyName, string> = {
  shipped: 'shipped: one leaf key, contexts prepared ahead (LeafMinter)',
  'no-spares': 'one leaf key, createSecureContext per host',
  'key-ec': 'new EC P-256 key pair per host',
  'key-rsa': 'new RSA 2048 key pair per host',
};

type Mint = (host: string) => Promise<SecureContext>;

function leafKeyOf(privateKey: KeyObject, publicKey: KeyObject): LeafKey {
  const spkiDer = publicKey.export({ type: 'spki', format: 'der' });
  return {
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    spkiDer,
    // The key identifier's exact bytes do not matter for the cost; hash the whole SPKI.
    keyId: createHash('sha1').update(spkiDer).digest(),
  };
}

async function strategies(
  dataDir: string,
): Promise<{ caKey: string; make: Record<StrategyName, () => Promise<Mint>> }> {
  const ca = await loadOrCreateCa(dataPaths(dataDir));
  const secrets = caSecrets(ca);
  const k = secrets.key;
  const caKey =
    k.asymmetricKeyType === 'ec'
      ? `EC ${k.asymmetricKeyDetails?.namedCurve ?? ''}`.trim()
      : `${String(k.asymmetricKeyType).toUpperCase()} ${k.asymmetricKeyDetails?.modulusLength ?? ''}`.trim();
  const shared = await processLeafKey();
  const sharedTemplate = leafTemplate(secrets, shared);
  const perHostKey = (make: () => Promise<{ privateKey: KeyObject; publicKey: KeyObject }>) =>
    (async () => async (host: string) => {
      const pair = await make();
      const key = leafKeyOf(pair.privateKey, pair.publicKey);
      const leaf = await mintLeaf(leafTemplate(secrets, key), normalizeHost(host));
      return tlsContext({
        key: key.keyPem,
        cert: pemEncode('CERTIFICATE', leaf.certDer),
        minVersion: 'TLSv1.2',
      });
    }) satisfies () => Promise<Mint>;
  const make: Record<StrategyName, () => Promise<Mint>> = {
    // A new LeafMinter per batch: its cache must not answer for hosts of an earlier batch.
    // The proxy calls refillSpares() once a tunnel's exchange is over (the spares are not topped
    // up in front of the handshake); here a host's use of its context ends once it is returned,
    // so the call comes on the next turn of the loop, after the host's time was taken.
    shipped: async () => {
      const minter = await LeafMinter.create(ca, { maxEntries: 100_000 });
      return async (host) => {
        const ctx = await minter.getSecureContext(host);
        setImmediate(() => minter.refillSpares());
        return ctx;
      };
    },
    'no-spares': async () => async (host) => {
      const leaf = await mintLeaf(sharedTemplate, normalizeHost(host));
      return tlsContext({
        key: shared.keyPem,
        cert: pemEncode('CERTIFICATE', leaf.certDer),
        minVersion: 'TLSv1.2',
      });
    },
    'key-ec': perHostKey(() => genKeyPair('ec', { namedCurve: 'prime256v1' })),
    'key-rsa': perHostKey(() => genKeyPair('rsa', { modulusLength: 2048 })),
  };
  return { caKey, make };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round3 = (x: number) => Math.round(x * 1000) / 1000;

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

let hostSerial = 0;
const newHost = (s: string) => `h${++hostSerial}.${s}.mint.bench.test`;

/** Checks that a context really serves a certificate (guards against measuring a no-op). */
function check(ctx: SecureContext): void {
  const native = ctx.context as { getCertificate?: () => Buffer | null };
  if (typeof native.getCertificate === 'function' && !native.getCertificate()) {
    throw new Error('a minted context holds no certificate');
  }
}

async function sequentialBatch(
  mint: Mint,
  name: string,
  n: number,
  into: number[],
): Promise<number> {
  // The pauses between hosts stay in the CPU figure: work done there (spares refilled off the
  // request path) is the strategy's too.
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    const host = newHost(name);
    const t0 = performance.now();
    const ctx = await mint(host);
    into.push(performance.now() - t0);
    check(ctx);
    await sleep(5);
  }
  const used = process.cpuUsage(cpu0);
  return used.user + used.system;
}

async function burst(mint: Mint, name: string, n: number): Promise<{ seconds: number }> {
  const t0 = performance.now();
  const ctxs = await Promise.all(Array.from({ length: n }, () => mint(newHost(name))));
  const seconds = (performance.now() - t0) / 1000;
  ctxs.forEach(check);
  return { seconds };
}

export async function runMintingBench(opts: { quick?: boolean } = {}): Promise<MintingBenchResult> {
  const before = loadavg()[0]!;
  const dir = mkdtempSync(join(tmpdir(), 'trustrun-bench-mint-'));
  try {
    const { caKey, make } = await strategies(dir);
    const names = Object.keys(make) as StrategyName[];
    const rounds = 3;
    const perRound: Record<StrategyName, number> = opts.quick
      ? { shipped: 30, 'no-spares': 30, 'key-ec': 20, 'key-rsa': 4 }
      : { shipped: 100, 'no-spares': 100, 'key-ec': 60, 'key-rsa': 10 };
    const burstHosts: Record<StrategyName, number> = opts.quick
      ? { shipped: 60, 'no-spares': 60, 'key-ec': 40, 'key-rsa': 8 }
      : { shipped: 200, 'no-spares': 200, 'key-ec': 150, 'key-rsa': 30 };

    // Warm-up: a few hosts each, so lazy initialisation is not counted.
    for (const name of names) await sequentialBatch(await make[name](), name, 3, []);

    const samples = Object.fromEntries(names.map((n) => [n, [] as number[]])) as Record<
      StrategyName,
      number[]
    >;
    const cpuMicros = Object.fromEntries(names.map((n) => [n, 0])) as Record<StrategyName, number>;
    for (let r = 0; r < rounds; r++) {
      // Rotate the order each round, as the proxy suite does with its configurations.
      for (const name of [...names.slice(r % names.length), ...names.slice(0, r % names.length)]) {
        const mint = await make[name]();
        await sleep(20); // a fresh LeafMinter prepares its spares at creation
        cpuMicros[name] += await sequentialBatch(mint, name, perRound[name], samples[name]);
      }
    }
    const bursts = {} as Record<StrategyName, { seconds: number }>;
    for (const name of names) {
      const mint = await make[name]();
      bursts[name] = await burst(mint, name, burstHosts[name]);
    }

    const figures: StrategyFigures[] = names.map((name) => {
      const s = [...samples[name]].sort((a, b) => a - b);
      return {
        name,
        description: DESCRIPTIONS[name],
        sequential: {
          hosts: s.length,
          p50Ms: round3(quantile(s, 0.5)),
          p99Ms: round3(quantile(s, 0.99)),
          meanMs: round3(s.reduce((a, b) => a + b, 0) / s.length),
          maxMs: round3(s[s.length - 1]!),
          cpuMsPerHost: round3(cpuMicros[name] / 1000 / s.length),
        },
        burst: {
          hosts: burstHosts[name],
          seconds: round3(bursts[name].seconds),
          hostsPerSec: Math.round(burstHosts[name] / bursts[name].seconds),
        },
      };
    });
    const shipped = figures.find((f) => f.name === 'shipped')!;
    return {
      machine: describeMachine(),
      date: new Date().toISOString(),
      caKey,
      strategies: figures,
      target: {
        mintMs: 2,
        measuredP50Ms: shipped.sequential.p50Ms,
        met: shipped.sequential.p50Ms < 2,
      },
      loadAverage: { before, after: loadavg()[0]! },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function report(r: MintingBenchResult): string {
  const lines = [
    `leaf minting per strategy — ${r.date}`,
    `machine: ${r.machine.cpuModel}, ${r.machine.cores} cores, node ${r.machine.node}; CA ${r.caKey}`,
    `load average: ${r.loadAverage.before.toFixed(2)} → ${r.loadAverage.after.toFixed(2)}`,
    '',
    'strategy                                                   hosts  p50 ms  p99 ms  CPU ms/host  burst hosts/s',
    ...r.strategies.map(
      (s) =>
        `${s.description.padEnd(58)} ${String(s.sequential.hosts).padStart(5)} ${s.sequential.p50Ms.toFixed(2).padStart(7)} ${s.sequential.p99Ms.toFixed(2).padStart(7)} ${s.sequential.cpuMsPerHost.toFixed(2).padStart(12)} ${String(s.burst.hostsPerSec).padStart(14)}`,
    ),
    '',
    `target: minting under ${r.target.mintMs} ms (shipped, p50): ${r.target.measuredP50Ms} ms, ${r.target.met ? 'met' : 'NOT met'}`,
  ];
  return lines.join('\n') + '\n';
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = process.argv.slice(2);
  const r = await runMintingBench({ quick: args.includes('--quick') });
  process.stdout.write(args.includes('--json') ? JSON.stringify(r, null, 2) + '\n' : report(r));
}
