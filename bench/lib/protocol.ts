/** Messages between the benchmark runner and its load-generator child (types only). */

/** Where the load generator sends requests: straight to the upstream, or through a proxy. */
export type Target =
  | { kind: 'direct'; upstreamPort: number; ca: string }
  | { kind: 'proxy'; proxyUrl: string; ca: string };

export interface LoadJob {
  type: 'load';
  id: number;
  target: Target;
  host: string;
  path: string;
  /** Expected response body length; a different length counts as an error. */
  expectBytes: number;
  concurrency: number;
  warmupMs: number;
  durationMs: number;
}

export interface ProbeJob {
  type: 'probe';
  id: number;
  target: Target;
  /**
   * new-host: one fresh client per host, first request to each (hosts never seen before);
   * new-conn: one fresh client per sample to hosts[0] (already seen);
   * reuse: one client, `count` sequential requests on its kept-alive connection.
   */
  mode: 'new-host' | 'new-conn' | 'reuse';
  hosts: string[];
  count: number;
  path: string;
  expectBytes: number;
}

export interface StreamJob {
  type: 'stream';
  id: number;
  target: Target;
  host: string;
  direction: 'down' | 'up';
  bytes: number;
}

export type Job = LoadJob | ProbeJob | StreamJob;

export interface LoadResult {
  requests: number;
  /** New client connections to the origin (tunnels through a proxy) in the window. */
  connections: number;
  errors: number;
  firstError: string | null;
  elapsedMs: number;
  rps: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface ProbeResult {
  samplesMs: number[];
  errors: number;
  firstError: string | null;
}

export interface StreamResult {
  bytes: number;
  elapsedMs: number;
  mbPerSec: number;
}

/** From the child: the measured window starts or ends now / the job's result / the job failed. */
export type ChildMessage =
  | { type: 'ready' }
  | { type: 'mark'; id: number; phase: 'start' | 'end' }
  | { type: 'result'; id: number; result: LoadResult | ProbeResult | StreamResult }
  | { type: 'error'; id: number; message: string };
