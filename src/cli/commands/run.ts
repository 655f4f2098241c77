import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import { access, writeFile } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import type { Command } from 'commander';
import {
  addLookupOptions,
  intOption,
  lookupSettings,
  overridesNotice,
  type LookupOptions,
} from '../common.js';
import { formatBytes } from '../format.js';
import { isolationTools, startIsolated, type Isolated } from '../isolate.js';
import { eventLine, monitorRecorder, violationLine } from '../monitor-records.js';
import { everyRow } from '../store.js';
import { runEnvironment } from '../../ca/index.js';
import {
  TrustRunError,
  dataPaths,
  formatError,
  isTrustRunError,
  type Action,
} from '../../core/index.js';
import { killTree, startMonitor, type Monitor, type MonitorEvent } from '../../monitor/index.js';
import type { ProxyDeps } from '../../proxy/index.js';
import type { Store } from '../../store/index.js';
import {
  addProxyOptions,
  isLoopback,
  phiWarning,
  startProxySession,
  type ProxyCommandOptions,
  type ProxySession,
} from './proxy.js';

export interface RunCommandOptions extends ProxyCommandOptions, LookupOptions {
  /** Print the summary as one JSON line on stdout after the child exited. */
  json?: boolean;
  /** Write the summary (JSON) to this file. */
  jsonFile?: string;
  /** Socket monitor poll interval in milliseconds (default 100). */
  interval?: number;
  /** Run the command in a network namespace that can reach only the proxy (Linux). */
  isolate?: boolean;
}

/** One destination of the session, as the summary lists it. */
export interface RunDestination {
  host: string;
  port: number;
  /** `proxy`: the connection went through the proxy; `direct`: seen by the socket monitor. */
  via: 'proxy' | 'direct';
  connections: number;
  requests: number;
  bytesUp: number;
  bytesDown: number;
  violation: boolean;
}

export interface RunViolation {
  host: string;
  port: number;
  method: string | null;
  action: Action;
  rule: string | null;
  reason: string;
  enforced: boolean;
}

export interface RunSummary {
  session: string;
  command: string[];
  /** The policy's name (null: no policy, pure audit). */
  policy: string | null;
  policyFile: string | null;
  level: string;
  proxy: string;
  /** The command ran in a network namespace that could reach only the proxy (--isolate). */
  isolated: boolean;
  dataDir: string;
  status: 'completed' | 'failed' | 'interrupted';
  /** What trustrun exits with. */
  exitCode: number;
  child: { pid: number | null; exitCode: number | null; signal: NodeJS.Signals | null };
  startedAt: string;
  durationMs: number;
  destinations: RunDestination[];
  connections: number;
  requests: number;
  bytesUp: number;
  bytesDown: number;
  violations: RunViolation[];
}

export interface RunResult {
  /** What trustrun exits with: the child's code, 128+signal, or 1 for violations after a 0. */
  exitCode: number;
  /** The child's own exit code (null when a signal ended it or it never started). */
  childExitCode: number | null;
  signal: NodeJS.Signals | null;
  sessionId: string;
  summary: RunSummary;
}

/** What `run` and `learn` differ in. */
export interface RunHooks {
  kind?: 'run' | 'learn';
  /** Where human lines go (default stderr). */
  warn?: (msg: string) => void;
  /** After the proxy started, before the child is spawned. */
  onSessionStarted?(session: ProxySession): void | Promise<void>;
}

class RunInterrupted extends Error {
  constructor(readonly signal: NodeJS.Signals) {
    super(`interrupted by ${signal}`);
  }
}

/** Exit codes for a command that cannot be run, as POSIX shells and env(1) use them. */
export const EXIT_NOT_FOUND = 127;
export const EXIT_NOT_EXECUTABLE = 126;

/** Why a command cannot be started; `exitCode` is 127 (not found) or 126 (not executable). */
export class CommandNotRunnable extends TrustRunError {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super('TR_USAGE', message);
  }
}

/**
 * A command that cannot start: its one line on stderr and its exit status (127 not found, 126
 * not executable), as a shell gives them. Returns whether `err` was one.
 */
export function reportNotRunnable(err: unknown): boolean {
  if (!(err instanceof CommandNotRunnable)) return false;
  process.stderr.write(`trustrun: ${formatError(err)}\n`);
  process.exitCode = err.exitCode;
  return true;
}

/** Finds the program as execvp would (PATH of the child's environment); throws when it cannot run. */
export async function findCommand(name: string, env: NodeJS.ProcessEnv): Promise<string> {
  const candidates = name.includes('/')
    ? [resolve(name)]
    : (env.PATH ?? '/usr/local/bin:/usr/bin:/bin')
        .split(delimiter)
        .map((dir) => join(dir === '' ? '.' : dir, name));
  let notExecutable: string | null = null;
  for (const file of candidates) {
    let isFile: boolean;
    try {
      isFile = statSync(file).isFile();
    } catch {
      continue;
    }
    if (!isFile) {
      notExecutable ??= file;
      continue;
    }
    try {
      await access(file, fsConstants.X_OK);
      return isAbsolute(file) ? file : resolve(file);
    } catch {
      notExecutable ??= file;
    }
  }
  if (notExecutable) {
    throw new CommandNotRunnable(
      `cannot execute ${notExecutable}: permission denied or not a file`,
      EXIT_NOT_EXECUTABLE,
    );
  }
  throw new CommandNotRunnable(`command not found: ${name}`, EXIT_NOT_FOUND);
}

function signalExitCode(signal: NodeJS.Signals): number {
  return 128 + (osConstants.signals[signal] ?? 0);
}

/** Destinations, counts and violations of a session, from the store. */
export function sessionTotals(store: Store, sessionId: string) {
  const connections = [...everyRow((q) => store.listConnections({ ...q, sessionId }))];
  const requests = [...everyRow((q) => store.listRequests({ ...q, sessionId }))];
  const violations = [...everyRow((q) => store.listViolations({ ...q, sessionId }))];
  const byDest = new Map<string, RunDestination>();
  const dest = (host: string, port: number): RunDestination => {
    const key = `${host}:${port}`;
    let d = byDest.get(key);
    if (!d) {
      d = {
        host,
        port,
        via: 'proxy',
        connections: 0,
        requests: 0,
        bytesUp: 0,
        bytesDown: 0,
        violation: false,
      };
      byDest.set(key, d);
    }
    return d;
  };
  for (const c of connections) {
    const d = dest(c.host, c.port);
    d.connections++;
    d.bytesUp += c.bytesUp;
    d.bytesDown += c.bytesDown;
    d.violation ||= c.violation;
  }
  for (const r of requests) {
    const d = dest(r.host, r.port);
    d.requests++;
    d.violation ||= r.violation;
  }
  return {
    destinations: [...byDest.values()],
    connections: connections.length,
    requests: requests.length,
    violations: violations.map((v): RunViolation => ({
      host: v.host,
      port: v.port,
      method: v.method,
      action: v.action,
      rule: v.rule,
      reason: v.reason,
      enforced: v.enforced,
    })),
  };
}

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];

/**
 * The core of `trustrun run`: starts a proxy session on a free loopback port, runs `argv` with
 * the proxy and CA environment (stdio inherited, signals forwarded), and returns the child's
 * outcome and the session summary. The session row is ended with the status and the child's
 * exit status (128+signal when a signal ended it).
 */
export async function runChild(
  opts: RunCommandOptions,
  argv: string[],
  hooks: RunHooks = {},
): Promise<RunResult> {
  if (argv.length === 0 || !argv[0]) {
    throw new TrustRunError(
      'TR_USAGE',
      'no command given: trustrun run [options] -- CMD [ARGS...]',
    );
  }
  const baseEnv = process.env;
  const file = await findCommand(argv[0], baseEnv);
  const tools = opts.isolate ? isolationTools(baseEnv) : null;
  if (tools && opts.host !== undefined && opts.host !== '127.0.0.1') {
    throw new TrustRunError(
      'TR_USAGE',
      `--isolate cannot be combined with --host ${opts.host}: the command's namespace reaches the proxy on 127.0.0.1 only`,
    );
  }
  const warn = hooks.warn ?? ((m: string) => process.stderr.write(`${m}\n`));
  const startedAt = Date.now();
  let child: ChildProcess | null = null;
  /** Isolated: the command's own pid (its parent, `child`, is the namespace's first process). */
  let commandPid: number | null = null;
  // Watches the child's process tree for sockets that bypass the proxy, and attributes each
  // proxied connection to the process that opened it (its source port, in procfs).
  let monitor: Monitor | null = null;
  const identify: ProxyDeps['identify'] = (addr, port) =>
    isLoopback(addr) ? (monitor?.attribute(addr, port) ?? null) : null;

  const session = await startProxySession(
    { ...opts, host: opts.host ?? '127.0.0.1' },
    {
      kind: hooks.kind ?? 'run',
      command: argv,
      warn,
      identify,
      // A kill verdict ends the whole process tree of the child.
      kill: () => {
        const pid = child?.pid;
        if (!pid || child?.exitCode !== null) return null;
        return killTree(pid).length > 0 ? { pid: commandPid ?? pid, exe: file } : null;
      },
    },
  );

  let status: RunSummary['status'] = 'completed';
  let childExit: number | null = null;
  let signal: NodeJS.Signals | null = null;
  let childStatus: number | null = null;
  const handlers = new Map<NodeJS.Signals, () => void>();
  try {
    // Signals are caught from here on: one that arrives before the child exists stops the run
    // before it starts; later ones are forwarded to the child.
    let received = 0;
    let early: NodeJS.Signals | null = null;
    for (const sig of FORWARDED) {
      const h = () => {
        status = 'interrupted';
        received++;
        const pid = child?.pid;
        if (!child || !pid) {
          early ??= sig;
          return;
        }
        if (child.exitCode !== null || child.signalCode !== null) return;
        // Third signal: the child did not stop; end its whole tree.
        if (received >= 3) killTree(pid, 0);
        else {
          try {
            process.kill(pid, sig);
          } catch {
            // already gone
          }
        }
      };
      handlers.set(sig, h);
      process.on(sig, h);
    }
    await hooks.onSessionStarted?.(session);
    const overrides = overridesNotice(
      session.dataDir,
      session.policy ? (session.policy.name ?? '') : null,
    );
    if (overrides) warn(overrides);
    const { env } = await runEnvironment({
      paths: dataPaths(session.dataDir),
      proxyUrl: session.url,
      baseEnv,
      ca: session.ca,
    });
    // Inherited by every descendant: the monitor follows a process that left the tree by a
    // double fork (its parent exited before a poll saw it) by this mark in its environment.
    env.TRUSTRUN_SESSION = session.sessionId;
    if (early) {
      warn(`trustrun: ${early} received before ${argv[0]} started; not starting it`);
      throw new RunInterrupted(early);
    }
    // Isolated: the namespace's first process opens the proxy's port there and hands it over;
    // the command starts once the proxy accepts on it and the monitor watches the tree.
    let isolated: Isolated | null = null;
    if (tools) {
      try {
        isolated = await startIsolated(tools, session.proxy.address.port, file, argv, env);
      } catch (err) {
        // A Ctrl-C during the set-up also reached the namespace's first process.
        if (early) throw new RunInterrupted(early);
        throw err;
      }
      if (early) {
        isolated.child.kill('SIGKILL'); // the command has not started
        isolated.listener.close();
        warn(`trustrun: ${early} received before ${argv[0]} started; not starting it`);
        throw new RunInterrupted(early);
      }
      session.proxy.adopt(isolated.listener);
    }
    const spawned =
      isolated?.child ?? spawn(file, argv.slice(1), { argv0: argv[0], env, stdio: 'inherit' });
    child = spawned;
    const exited = new Promise<{
      code: number | null;
      signal: NodeJS.Signals | null;
      error?: Error;
    }>((done) => {
      spawned.once('error', (error) => done({ code: null, signal: null, error }));
      if (!isolated) {
        spawned.once('exit', (code, sig) => done({ code, signal: sig }));
        return;
      }
      // Isolated, the namespace's first process says how the command ended (or why it could
      // not start it) before it exits; 'close' comes after its last message.
      let ended: { code: number | null; signal: NodeJS.Signals | null; error?: Error } | null =
        null;
      spawned.on(
        'message',
        (m: {
          type?: string;
          message?: string;
          code?: number | string | null;
          signal?: NodeJS.Signals | null;
          pid?: number;
        }) => {
          if (m?.type === 'started' && typeof m.pid === 'number') commandPid = m.pid;
          else if (m?.type === 'ended') {
            ended = { code: (m.code as number | null) ?? null, signal: m.signal ?? null };
          } else if (m?.type === 'spawn-error') {
            const error = Object.assign(new Error(m.message), { code: m.code });
            ended = { code: null, signal: null, error };
          }
        },
      );
      spawned.once('close', (code, sig) => done(ended ?? { code, signal: sig }));
    });
    if (spawned.pid !== undefined) {
      try {
        monitor = watchChild(spawned.pid, session, opts, warn, isolated !== null);
      } catch (err) {
        // A child that is already gone (it exited at once) has nothing left to watch.
        if (!isTrustRunError(err, 'TR_PROCESS')) throw err;
      }
    }
    isolated?.start();
    const end = await exited;
    if (end.error) {
      status = 'failed';
      const code = (end.error as NodeJS.ErrnoException).code;
      childStatus = code === 'ENOENT' ? EXIT_NOT_FOUND : EXIT_NOT_EXECUTABLE;
      warn(`trustrun: cannot run ${argv[0]}: ${end.error.message}`);
    } else if (end.signal) {
      signal = end.signal;
      childStatus = signalExitCode(end.signal);
    } else {
      childExit = end.code ?? 0;
      childStatus = childExit;
    }
  } catch (err) {
    if (err instanceof RunInterrupted) {
      // The child never ran; trustrun reports the signal it got, as if it had been killed by it.
      childStatus = signalExitCode(err.signal);
    } else {
      status = 'failed';
      for (const [sig, h] of handlers) process.removeListener(sig, h);
      if (child?.pid && child.exitCode === null && child.signalCode === null) {
        killTree(child.pid, 0);
      }
      await monitor?.stop().catch(() => undefined);
      await session.stop('failed', null);
      throw err;
    }
  } finally {
    for (const [sig, h] of handlers) process.removeListener(sig, h);
  }

  try {
    const direct = monitor ? await stopMonitor(monitor) : [];
    // Close the listener and whatever the child left open, so every connection's bytes are in.
    await session.proxy.close();
    await session.store.flush();
    const totals = sessionTotals(session.store, session.sessionId);
    const destinations = [...totals.destinations, ...direct];
    const violated = totals.violations.length > 0;
    const exitCode = childStatus === null ? 1 : violated && childStatus === 0 ? 1 : childStatus;
    const summary: RunSummary = {
      session: session.sessionId,
      command: session.command ?? [],
      policy: session.policy?.shownName ?? null,
      policyFile: opts.policy ?? null,
      level: session.level,
      proxy: session.url,
      isolated: tools !== null,
      dataDir: session.dataDir,
      status,
      exitCode,
      // Isolated, the command's own pid (null when it never started), not its parent's.
      child: { pid: tools ? commandPid : (child?.pid ?? null), exitCode: childExit, signal },
      startedAt: new Date(startedAt).toISOString(),
      durationMs: Date.now() - startedAt,
      destinations,
      connections: totals.connections,
      requests: totals.requests,
      bytesUp: destinations.reduce((n, d) => n + d.bytesUp, 0),
      bytesDown: destinations.reduce((n, d) => n + d.bytesDown, 0),
      violations: totals.violations,
    };
    await session.stop(status, childStatus);
    return { exitCode, childExitCode: childExit, signal, sessionId: session.sessionId, summary };
  } catch (err) {
    await session.stop('failed', childStatus).catch(() => undefined);
    throw err;
  }
}

/** Starts the socket monitor on the child's tree: events and violations go to the session. */
function watchChild(
  pid: number,
  session: ProxySession,
  opts: Pick<RunCommandOptions, 'interval'> & LookupOptions,
  warn: (m: string) => void,
  isolated: boolean,
): Monitor {
  const rec = monitorRecorder(session.store, session.sessionId, warn);
  const proxyPort = session.proxy.address.port;
  return startMonitor({
    rootPid: pid,
    // Isolated, the tree's sockets are in its own namespace's tables (its root is in it).
    netPid: isolated ? pid : undefined,
    treeMarker: `TRUSTRUN_SESSION=${session.sessionId}`,
    intervalMs: opts.interval ?? 100,
    ...lookupSettings(opts),
    // The child's connections to the proxy are not direct; they stay known for attribution.
    // Isolated, no loopback address leads out of the namespace: the command's own local
    // services are not destinations.
    ignore: (addr, port) =>
      (isLoopback(addr) && (isolated || port === proxyPort)) ||
      (port === proxyPort && (addr === '0.0.0.0' || addr === '::')),
    // No policy: pure audit (every event recorded, none a violation). The getter follows SIGHUP.
    policy: session.policy
      ? { evaluate: (subject) => session.policy!.evaluate(subject) }
      : undefined,
    onEvent: (e) => {
      rec.event(e);
      if (e.verdict.violation) warn(violationLine(e).trimEnd());
    },
    onUpdate: (e) => rec.update(e),
    onKill: ({ event }) =>
      warn(`trustrun: terminated the process tree: direct connection ${eventLine(event).trim()}`),
  });
}

/** Stops the monitor; its events grouped as the summary's direct destinations. */
async function stopMonitor(monitor: Monitor): Promise<RunDestination[]> {
  await monitor.stop();
  const byDest = new Map<string, RunDestination>();
  const events: MonitorEvent[] = monitor.events();
  for (const e of events) {
    const host = e.hostname ?? e.remoteAddr;
    const key = `${host}:${e.remotePort}`;
    const d = byDest.get(key) ?? {
      host,
      port: e.remotePort,
      via: 'direct' as const,
      connections: 0,
      requests: 0,
      bytesUp: 0,
      bytesDown: 0,
      violation: false,
    };
    d.connections++;
    d.violation ||= e.verdict.violation;
    byDest.set(key, d);
  }
  return [...byDest.values()];
}

/** The human summary printed on stderr at the end of a run. */
export function formatSummary(s: RunSummary): string {
  const lines: string[] = [];
  const childText = s.child.signal
    ? `killed by ${s.child.signal}`
    : s.child.exitCode === null
      ? 'did not run'
      : `exited ${s.child.exitCode}`;
  lines.push(
    `TrustRun session ${s.session}: ${s.command.join(' ')} ${childText}; trustrun exits ${s.exitCode}`,
  );
  lines.push(
    `  policy: ${s.policy ?? (s.policyFile ? s.policyFile : 'none (audit only)')}   level: ${s.level}   data: ${s.dataDir}${s.isolated ? '   network: isolated' : ''}`,
  );
  if (s.destinations.length === 0) lines.push('  destinations: none');
  else {
    lines.push(`  destinations (${s.destinations.length}):`);
    const width = Math.max(...s.destinations.map((d) => `${d.host}:${d.port}`.length));
    for (const d of s.destinations) {
      const name = `${d.host}:${d.port}`.padEnd(width);
      lines.push(
        `    ${name}  via ${d.via}  ${d.connections} conn  ${d.requests} req  ${formatBytes(d.bytesUp)} up  ${formatBytes(d.bytesDown)} down${d.violation ? '  VIOLATION' : ''}`,
      );
    }
  }
  lines.push(
    `  requests: ${s.requests}   connections: ${s.connections}   bytes: ${formatBytes(s.bytesUp)} up, ${formatBytes(s.bytesDown)} down`,
  );
  if (s.violations.length === 0) lines.push('  violations: none');
  else {
    lines.push(`  ⚠ ${s.violations.length} violation(s):`);
    for (const v of s.violations) {
      const rule = v.rule === null ? 'default action' : `rule "${v.rule}"`;
      lines.push(
        `    ${v.action.toUpperCase()}${unenforced(v)} ${v.method ? `${v.method} ` : ''}${v.host}:${v.port}: ${rule}: ${v.reason}`,
      );
    }
  }
  return lines.join('\n') + '\n';
}

export function register(program: Command): void {
  const cmd = program
    .command('run')
    .summary('run a command with all its HTTP(S) traffic going through TrustRun')
    .description(
      [
        'Run a command with its HTTP(S) traffic going through the proxy (on a free',
        'loopback port), checked against --policy and recorded:',
        '  trustrun run --policy hipaa.yaml -- Rscript analysis.R',
        "Exit code: the command's; 128+N when signal N ended it; 1 when there were",
        'violations and the command exited 0; 127 / 126 when the command is not',
        'found / not executable; 2 for usage errors. A summary goes to stderr at the',
        'end (--json: also as one JSON line, the last one on stdout).',
      ].join('\n'),
    )
    .argument('[command...]', 'the command and its arguments (put them after --)')
    .passThroughOptions();
  addProxyOptions(cmd)
    .option('--json', 'after the command exited, print the summary as one JSON line on stdout')
    .option('--json-file <file>', 'write the summary as JSON to FILE')
    .option(
      '--no-tui',
      "accepted for the earlier tool's scripts: trustrun has no interactive screen and always prints plain lines",
    )
    .option(
      '--isolate',
      'run the command in a network namespace that can reach only the proxy (Linux): connections that bypass it fail instead of being seen',
    )
    .option(
      '--interval <ms>',
      "how often the command's sockets are polled for connections that bypass the proxy",
      intOption('--interval', 1, 60_000),
      100,
    );
  addLookupOptions(cmd).action(async (command: string[], opts: RunCommandOptions) => {
    if (opts.jsonFile !== undefined) checkWritable(opts.jsonFile);
    let result: RunResult;
    try {
      result = await runChild(opts, command, {
        onSessionStarted: (s) => {
          const warning = phiWarning(s.level);
          process.stderr.write(
            `trustrun: running ${(s.command ?? []).join(' ')} through ${s.url} (level ${s.level}, ` +
              `${s.policy ? `policy ${s.policy.shownName}` : 'no policy'}, session ${s.sessionId})\n`,
          );
          if (warning) process.stderr.write(`${warning}\n`);
        },
      });
    } catch (err) {
      if (reportNotRunnable(err)) return;
      throw err;
    }
    let failure: string | null = null;
    if (opts.jsonFile) {
      try {
        await writeFile(opts.jsonFile, JSON.stringify(result.summary, null, 2) + '\n', {
          mode: 0o600,
        });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? String(err);
        failure = `trustrun: cannot write --json-file ${opts.jsonFile}: ${code}\n`;
      }
    }
    // A summary that could not be written fails the run, unless the command's own status
    // already does: the summary says which.
    const summary =
      failure !== null && result.exitCode === 0
        ? { ...result.summary, exitCode: 1 }
        : result.summary;
    process.stderr.write(formatSummary(summary));
    if (failure !== null) process.stderr.write(failure);
    // After the child's own output: a line break first, so the summary is always the whole
    // last line, even after output that did not end with one.
    if (opts.json) process.stdout.write('\n' + JSON.stringify(summary) + '\n');
    process.exitCode = summary.exitCode;
  });
  // run picks a free port unless told otherwise.
  const port = cmd.options.find((o) => o.long === '--port');
  if (port) port.defaultValue = 0;
  cmd.setOptionValueWithSource('port', 0, 'default');
}

/**
 * What the summary adds after a violation's action when nothing was refused: an `alert` is
 * allowed by design; a `block` on a direct socket is seen, not stopped (docs/monitor.md).
 */
function unenforced(v: { action: string; enforced: boolean }): string {
  if (v.enforced) return '';
  return v.action === 'alert' ? ' (allowed)' : ' (not enforced: a direct connection)';
}

/** `--json-file FILE` is checked before the command runs: its directory must exist and be writable. */
function checkWritable(file: string): void {
  const dir = dirname(resolve(file));
  try {
    accessSync(dir, fsConstants.W_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new TrustRunError('TR_USAGE', `--json-file ${file}: cannot write in ${dir} (${code})`);
  }
}
