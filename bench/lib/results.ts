/** The shape of a run's results (bench/results/*.json) and the per-cell summaries. */
import type { Machine } from './machine.js';
import type { LoadSample, StreamSample } from './measure.js';
import type { MicroResult } from './micro.js';
import { maxOf, median, medianOrNull, spread, type Spread } from './stats.js';

export const CELLS = {
  '1k-c1': { label: '1 KiB, 1 at a time', path: '/1k', bytes: 1024, concurrency: 1 },
  '1k-c32': { label: '1 KiB, 32 concurrent', path: '/1k', bytes: 1024, concurrency: 32 },
  '1m-c32': { label: '1 MiB, 32 concurrent', path: '/1m', bytes: 1024 * 1024, concurrency: 32 },
} as const;
export type CellName = keyof typeof CELLS;

export interface ConfigInfo {
  name: string;
  label: string;
  available: boolean;
  note: string | null;
  version: string | null;
  idleRss: number | null;
  endRss: number | null;
}

export interface ProbeSamples {
  newHost: number[];
  newConn: number[];
  reuse: number[];
  errors: number;
  firstError: string | null;
}

export interface Settings {
  quick: boolean;
  repetitions: number;
  warmupMs: number;
  durationMs: Record<CellName, number>;
  settleMs: number;
  probes: { newHost: number; newConn: number; reuse: number };
  streamBytes: number;
}

export interface Results {
  format: 1;
  startedAt: string;
  finishedAt: string;
  wallSeconds: number;
  command: string;
  machine: Machine;
  loadAverageAtEnd: number;
  settings: Settings;
  configs: ConfigInfo[];
  cells: Record<CellName, Record<string, LoadSample[]>>;
  probes: Record<string, ProbeSamples>;
  streams: Record<string, { down?: StreamSample; up?: StreamSample; error?: string }>;
  micro: MicroResult[];
  notes: string[];
}

export interface CellSummary {
  rps: Spread;
  p50Ms: number;
  p99Ms: number;
  cpuMsPerReq: number | null;
  upstreamCpuMsPerReq: number;
  peakRss: number | null;
  rssAfter: number | null;
  errors: number;
  requests: number;
  firstError: string | null;
  /** New client connections (tunnels) and upstream TLS connections per 1,000 requests. */
  clientConnsPerK: number;
  upstreamConnsPerK: number | null;
}

export function summarize(samples: LoadSample[] | undefined): CellSummary | null {
  if (!samples || samples.length === 0) return null;
  return {
    rps: spread(samples.map((s) => s.rps)),
    p50Ms: median(samples.map((s) => s.p50Ms)),
    p99Ms: median(samples.map((s) => s.p99Ms)),
    cpuMsPerReq: medianOrNull(samples.map((s) => s.cpuMsPerReq)),
    upstreamCpuMsPerReq: median(samples.map((s) => s.upstreamCpuMsPerReq)),
    peakRss: maxOf(samples.map((s) => s.peakRss)),
    rssAfter: medianOrNull(samples.map((s) => s.rssAfter)),
    errors: samples.reduce((n, s) => n + s.errors, 0),
    requests: samples.reduce((n, s) => n + s.requests, 0),
    firstError: samples.find((s) => s.firstError)?.firstError ?? null,
    clientConnsPerK: median(samples.map((s) => (1000 * s.connections) / Math.max(1, s.requests))),
    upstreamConnsPerK: medianOrNull(
      samples.map((s) =>
        s.upstreamConnections === null
          ? null
          : (1000 * s.upstreamConnections) / Math.max(1, s.requests),
      ),
    ),
  };
}

export const LABELS: Record<string, string> = {
  direct: 'direct (no proxy)',
  tunnel: 'plain Node CONNECT tunnel',
  'tls-relay': 'Node TLS relay (bytes piped)',
  'http-relay': 'Node HTTP relay (nothing recorded)',
  'trustrun-metadata': 'trustrun proxy --level metadata',
  'trustrun-headers': 'trustrun proxy --level headers',
  'trustrun-full': 'trustrun proxy --level full',
  mitmdump: 'mitmdump',
  squid: 'Squid ssl_bump',
};
