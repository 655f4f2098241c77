/**
 * Child processes of a benchmark run: the bench's own child programs are transpiled from
 * bench/children/*.ts to plain JavaScript in the run's temporary directory (so the processes
 * being measured carry no TypeScript loader), every spawned process is registered, and
 * stopAll() ends each of them by its id — also on failure and on Ctrl-C.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdirSync, openSync, closeSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import type { UpstreamPki } from './certs.js';
import { processTree, startTime } from './procfs.js';

export const BENCH_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const ROOT = resolve(BENCH_DIR, '..');

const running = new Set<ChildProcess>();

/**
 * undici's entry file in this checkout, for the child programs that load it (BENCH_UNDICI): they
 * run from the temporary directory, outside the project's node_modules.
 */
export function undiciEntry(): string {
  return createRequire(join(ROOT, 'package.json')).resolve('undici');
}

/**
 * The local HTTPS upstream (bench/children/upstream.ts, built to `script`) serving `pki`'s
 * certificate on each listener, its log in `dir`. It prints {"ports": [...]} when listening.
 */
export function spawnUpstream(
  script: string,
  dir: string,
  pki: UpstreamPki,
  listen: { host: string; port: number }[],
): Spawned {
  return spawnChild(process.execPath, [script], join(dir, 'upstream.log'), {
    ipc: true,
    env: {
      ...process.env,
      NODE_OPTIONS: '',
      BENCH_UPSTREAM: JSON.stringify({ cert: pki.certFile, key: pki.keyFile, listen }),
    },
  });
}

/** Transpiles bench/children/NAME.ts to DIR/NAME.mjs and returns its path. */
export function buildChild(name: string, outDir: string): string {
  const source = readFileSync(join(BENCH_DIR, 'children', `${name}.ts`), 'utf8');
  const out = ts.transpileModule(source, {
    compilerOptions: {
      module: ts.ModuleKind.ESNext,
      target: ts.ScriptTarget.ES2022,
      verbatimModuleSyntax: true,
    },
    fileName: `${name}.ts`,
  });
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, `${name}.mjs`);
  writeFileSync(file, out.outputText);
  return file;
}

export interface Spawned {
  child: ChildProcess;
  pid: number;
  logFile: string;
  /** Resolves with the first JSON document printed on stdout (bounded by timeoutMs). */
  firstJson<T>(timeoutMs: number): Promise<T>;
  /** The tail of the process's stderr log, for error messages. */
  logTail(): string;
  stop(graceMs?: number): Promise<void>;
}

/** Spawns a registered child with stdout piped and stderr written to logFile. */
export function spawnChild(
  command: string,
  args: string[],
  logFile: string,
  options: SpawnOptions & { ipc?: boolean } = {},
): Spawned {
  const fd = openSync(logFile, 'a');
  const { ipc, ...rest } = options;
  const child = spawn(command, args, {
    ...rest,
    stdio: ipc ? ['ignore', 'pipe', fd, 'ipc'] : ['ignore', 'pipe', fd],
  });
  closeSync(fd);
  if (child.pid === undefined) throw new Error(`cannot start ${command}`);
  running.add(child);
  child.once('exit', () => running.delete(child));
  // stdout is read as a sequence of JSON documents (one line or pretty-printed over several);
  // other lines are ignored. The first document is what firstJson() returns.
  let buffered = '';
  let doc = '';
  const docs: unknown[] = [];
  const listeners: (() => void)[] = [];
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (text: string) => {
    if (docs.length > 0 || buffered.length > 65_536) return; // keep draining, stop keeping
    buffered += text;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) !== -1) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (doc === '' && !line.trimStart().startsWith('{')) continue;
      doc += `${line}\n`;
      try {
        docs.push(JSON.parse(doc));
        doc = '';
        for (const l of listeners.splice(0)) l();
      } catch {
        if (doc.length > 65_536) doc = '';
      }
    }
  });
  const logTail = (): string => {
    try {
      return readFileSync(logFile, 'utf8').slice(-1500).trim();
    } catch {
      return '';
    }
  };
  return {
    child,
    pid: child.pid,
    logFile,
    logTail,
    firstJson<T>(timeoutMs: number): Promise<T> {
      return new Promise<T>((resolvePromise, reject) => {
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`${command} printed no JSON within ${timeoutMs} ms; log: ${logTail()}`));
        }, timeoutMs);
        const onExit = (code: number | null, signal: string | null) => {
          cleanup();
          reject(
            new Error(
              `${command} exited (${code ?? signal}) before it was ready; log: ${logTail()}`,
            ),
          );
        };
        const onDoc = () => {
          cleanup();
          resolvePromise(docs[0] as T);
        };
        const cleanup = () => {
          clearTimeout(timer);
          child.off('exit', onExit);
          const i = listeners.indexOf(onDoc);
          if (i !== -1) listeners.splice(i, 1);
        };
        if (docs.length > 0) {
          onDoc();
          return;
        }
        child.once('exit', onExit);
        listeners.push(onDoc);
      });
    },
    stop: (graceMs = 5000) => stopChild(child, graceMs),
  };
}

/** Signals a process only if it is still the one we saw (same start time), never a reused id. */
function killIfSame(pid: number, started: string | null, signal: NodeJS.Signals): void {
  if (started === null || startTime(pid) !== started) return;
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** Resolves after ms, or earlier when `until` settles; the timer never outlives the wait. */
async function wait(ms: number, until?: Promise<unknown>): Promise<'done' | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ms)));
  try {
    return await Promise.race(until ? [until.then(() => 'done' as const), t] : [t]);
  } finally {
    clearTimeout(timer);
  }
}

/** Sends SIGTERM, then SIGKILL to the process and its descendants after graceMs. */
export async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const tree = processTree(child.pid).map((pid) => ({ pid, started: startTime(pid) }));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  if ((await wait(graceMs, exited)) === 'timeout') {
    for (const p of tree) killIfSame(p.pid, p.started, 'SIGKILL');
    await wait(2000, exited);
  }
  // Helpers the process may have left behind (e.g. Squid's certificate generators).
  await wait(200);
  for (const p of tree.slice(1)) killIfSame(p.pid, p.started, 'SIGKILL');
}

/** Registers a child spawned elsewhere so that stopAll() ends it too. */
export function track(child: ChildProcess): void {
  if (child.exitCode !== null || child.signalCode !== null) return;
  running.add(child);
  child.once('exit', () => running.delete(child));
}

/** Ends every child still running (used in finally blocks and signal handlers). */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((c) => stopChild(c, 3000)));
}

/** Resolves when something accepts TCP connections on host:port (bounded by timeoutMs). */
export async function waitForPort(
  host: string,
  port: number,
  timeoutMs: number,
  alive: () => boolean,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!alive()) throw new Error(`the process exited before listening on ${host}:${port}`);
    const ok = await new Promise<boolean>((r) => {
      const s = connect(port, host);
      s.once('connect', () => {
        s.destroy();
        r(true);
      });
      s.once('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listens on ${host}:${port} after ${timeoutMs} ms`);
}

/** A free TCP port on 127.0.0.1 (for programs that cannot listen on port 0 and report it). */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolvePromise, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolvePromise(port));
    });
  });
}
