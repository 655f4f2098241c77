import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { existsSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { openStore, type Store } from '../../../src/store/index.js';
import type { RunSummary } from '../../../src/cli/commands/run.js';
import { makeLeaf, makeTestCa, type TestCa } from '../../helpers/pki.js';
import { CLI, run, type RunResult } from '../../helpers/proc.js';
import { startUpstream, type Handler, type TestUpstream } from '../../helpers/upstream.js';

/**
 * A small offline world for `trustrun run` tests: HTTPS upstreams under real-looking names
 * (signed by a test CA the proxy trusts through --upstream-ca, reached through --resolve), a
 * data directory and an empty HOME, all in one temporary folder.
 */
export interface World {
  dir: string;
  home: string;
  dataDir: string;
  upstreamCaFile: string;
  ups: Map<string, TestUpstream>;
  /** --upstream-ca and --resolve flags for every upstream. */
  flags: string[];
  /** A clean environment for trustrun: PATH, HOME, LANG; no proxy or CA variable. */
  env: NodeJS.ProcessEnv;
  close(): Promise<void>;
}

export async function makeWorld(
  names: string[],
  handlers: Record<string, Handler> = {},
): Promise<World> {
  const dir = await mkdtemp(join(tmpdir(), 'trustrun-run-'));
  const ca: TestCa = await makeTestCa('Run Upstream Test CA');
  const upstreamCaFile = join(dir, 'upstream-ca.pem');
  writeFileSync(upstreamCaFile, ca.certPem);
  const ups = new Map<string, TestUpstream>();
  const flags = ['--upstream-ca', upstreamCaFile];
  for (const name of names) {
    const u = await startUpstream({ leaf: await makeLeaf(ca, [name]), handler: handlers[name] });
    ups.set(name, u);
    flags.push('--resolve', `${name}:443:127.0.0.1:${u.port}`);
  }
  const home = join(dir, 'home');
  await import('node:fs/promises').then((fs) => fs.mkdir(home));
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: home,
    LANG: 'C.UTF-8',
    TMPDIR: dir,
  };
  return {
    dir,
    home,
    dataDir: join(dir, 'data'),
    upstreamCaFile,
    ups,
    flags,
    env,
    async close() {
      for (const u of ups.values()) await u.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Runs the built CLI: `trustrun run --data-dir … [flags] -- argv`. */
export function trustrunRun(
  w: World,
  flags: string[],
  argv: string[],
  opts: { input?: string; timeoutMs?: number; cwd?: string } = {},
): Promise<RunResult> {
  return run(
    process.execPath,
    [CLI, 'run', '--data-dir', w.dataDir, ...w.flags, ...flags, '--', ...argv],
    { env: w.env, cwd: opts.cwd ?? w.dir, input: opts.input, timeoutMs: opts.timeoutMs ?? 120_000 },
  );
}

export async function readSummary(file: string): Promise<RunSummary> {
  return JSON.parse(await readFile(file, 'utf8')) as RunSummary;
}

/** Opens the world's store for reading, runs `fn`, closes it. */
export async function withStore<T>(w: World, fn: (s: Store) => T): Promise<T> {
  const store = await openStore({ dataDir: w.dataDir });
  try {
    return fn(store);
  } finally {
    await store.close();
  }
}

/** A plain TCP service on this machine's loopback, which a program reaches without the proxy. */
export interface LocalService {
  port: number;
  /** Connections accepted so far. */
  accepted(): number;
  close(): Promise<void>;
}

/** Starts a LocalService; with `greeting`, each connection gets it and is ended. */
export async function startLocalService(greeting?: string): Promise<LocalService> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server = createServer((s) => {
    accepted++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    if (greeting !== undefined) s.end(greeting);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    accepted: () => accepted,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/**
 * A run test file's world with a LocalService beside it (the built CLI must exist); `close`
 * ends both.
 */
export async function worldWithService(
  names: string[],
  greeting?: string,
): Promise<{ w: World; service: LocalService; close(): Promise<void> }> {
  if (!existsSync(resolve('dist/cli/main.js'))) {
    throw new Error('dist/ is missing: run `npm run build` first');
  }
  const w = await makeWorld(names);
  const service = await startLocalService(greeting);
  return {
    w,
    service,
    async close() {
      await service.close();
      await w.close();
    },
  };
}
