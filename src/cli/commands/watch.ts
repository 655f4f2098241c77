import type { Command } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { TrustRunError, createLogger, type Logger } from '../../core/index.js';
import {
  isAlive,
  processExe,
  startMonitor,
  type BackendName,
  type KillInfo,
  type MonitorEvent,
} from '../../monitor/index.js';
import { loadPolicyInWorker, type CompiledPolicy } from '../../policy/index.js';
import { openStore, type Store } from '../../store/index.js';
import {
  addDataDirOption,
  addLookupOptions,
  dataDirFrom,
  intOption,
  lookupSettings,
  overridesNotice,
  type LookupOptions,
} from '../common.js';
import { eventLine, monitorRecorder, violationLine } from '../monitor-records.js';

export interface WatchCommandOptions extends LookupOptions {
  policy?: string;
  interval?: number;
  dataDir?: string;
  json?: boolean;
  /** false: no reverse DNS (commander's --no-resolve). */
  resolve?: boolean;
  backend?: 'auto' | BackendName;
}

/** Where output goes; tests pass their own. */
export interface WatchIo {
  out: (text: string) => void;
  err: (text: string) => void;
}

export interface WatchResult {
  exitCode: number;
  /** The session the events were recorded in (`trustrun history`). */
  sessionId: string;
  events: MonitorEvent[];
  violations: number;
  killed: boolean;
  /** 'exited': the process ended; 'stopped': Ctrl-C (or the abort signal). */
  status: 'exited' | 'stopped';
}

const processIo = (): WatchIo => ({
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
});

export const WATCH_NOTE =
  'note: a process that is already running cannot be put behind the proxy after the fact: ' +
  'only its direct connections are seen (by polling its sockets), nothing is decrypted, and a ' +
  'connection cannot be refused; a kill verdict terminates the process tree.';

function parsePid(text: string | undefined): number {
  if (text === undefined || !/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 2 ** 31) {
    throw new TrustRunError(
      'TR_USAGE',
      `watch: PID must be a positive whole number, got '${text ?? ''}'`,
    );
  }
  return Number(text);
}

/**
 * The watched process's command line, as the session's `command` (stored redacted): what was
 * watched. Its pid is in `/proc`; elsewhere (or when it cannot be read) `pid N`.
 */
function commandOf(pid: number): string[] {
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    if (args.at(-1) === '') args.pop();
    if (args.length > 0 && args[0] !== '') return args;
  } catch {
    /* not Linux, or gone */
  }
  return ['pid', String(pid)];
}

async function readPolicy(file: string, io: WatchIo): Promise<CompiledPolicy> {
  if (!existsSync(file))
    throw new TrustRunError('TR_USAGE', `watch: policy file not found: ${file}`);
  return loadPolicyInWorker(file, { warn: (msg) => io.err(`trustrun: warning: ${msg}\n`) });
}

/**
 * `trustrun watch PID`: monitors the sockets of an existing process tree until it exits (or
 * `signal` aborts), evaluating each direct connection against the policy. Returns the exit
 * code: 1 when there were violations, else 0.
 */
export async function watchCommand(
  pidText: string | undefined,
  opts: WatchCommandOptions,
  io: WatchIo = processIo(),
  signal?: AbortSignal,
  log: Logger = createLogger(),
): Promise<WatchResult> {
  const pid = parsePid(pidText);
  if (!isAlive(pid)) {
    throw new TrustRunError('TR_USAGE', `watch: no running process with PID ${pid}`);
  }
  const policy = opts.policy ? await readPolicy(opts.policy, io) : null;
  const intervalMs = opts.interval ?? 100;
  const store = await openStore({ dataDir: dataDirFrom(opts) });
  const overrides = overridesNotice(store.dataDir, policy ? (policy.name ?? '') : null);
  if (overrides) io.err(`${overrides}\n`);
  const offError = store.onError((err) =>
    io.err(`trustrun: warning: could not record: ${err.message}\n`),
  );
  const session = store.startSession({
    kind: 'watch',
    command: commandOf(pid),
    policy: policy ? policy.shownName : null,
    level: 'metadata',
  });
  const rec = monitorRecorder(store, session.id, (m) => io.err(`${m}\n`));
  try {
    return await watchSession(
      pid,
      opts,
      io,
      intervalMs,
      policy,
      rec,
      session.id,
      signal,
      log,
      store,
    );
  } catch (err) {
    store.endSession(session.id, { status: 'failed' });
    throw err;
  } finally {
    offError();
    await store.close();
  }
}

async function watchSession(
  pid: number,
  opts: WatchCommandOptions,
  io: WatchIo,
  intervalMs: number,
  policy: CompiledPolicy | null,
  rec: ReturnType<typeof monitorRecorder>,
  sessionId: string,
  signal: AbortSignal | undefined,
  log: Logger,
  store: Store,
): Promise<WatchResult> {
  const events: MonitorEvent[] = [];
  let violations = 0;
  let killed = false;
  const onEvent = (e: MonitorEvent) => {
    events.push(e);
    if (e.verdict.violation) violations++;
    rec.event(e);
    if (opts.json) io.out(JSON.stringify({ type: 'connection', ...e }) + '\n');
    else {
      io.err(eventLine(e));
      if (e.verdict.violation) io.err(violationLine(e));
    }
  };
  const onKill = (k: KillInfo) => {
    killed = true;
    if (!opts.json)
      io.err(`  ✖ kill verdict: terminating the process tree (${k.pids.join(' ')})\n`);
  };
  let monitor;
  try {
    monitor = startMonitor(
      {
        rootPid: pid,
        intervalMs,
        backend: opts.backend ?? 'auto',
        policy: policy ?? undefined,
        resolveNames: opts.resolve !== false,
        ...lookupSettings(opts),
        onEvent,
        onUpdate: (e) => rec.update(e),
        onKill,
      },
      log,
    );
  } catch (err) {
    if (err instanceof TrustRunError && err.code === 'TR_PROCESS') {
      throw new TrustRunError('TR_USAGE', `watch: no running process with PID ${pid}`);
    }
    throw err;
  }
  const exe = processExe(pid);
  const policyName = policy ? policy.shownName : 'none (audit only)';
  if (!opts.json) {
    io.err(`TrustRun watching PID ${pid}${exe ? ` (${exe})` : ''} with policy ${policyName}\n`);
    if (policy) io.err(`  Rules: ${policy.rules.length}, Default: ${policy.defaultAction}\n`);
    io.err(`  ${WATCH_NOTE}\n`);
    io.err(`  Polling every ${intervalMs} ms (${monitor.backend}). Press Ctrl+C to stop.\n\n`);
  }
  let status = 'exited' as WatchResult['status'];
  await new Promise<void>((resolve) => {
    void monitor.done.then(resolve);
    if (signal) {
      if (signal.aborted) {
        status = 'stopped';
        resolve();
      }
      signal.addEventListener('abort', () => {
        status = 'stopped';
        resolve();
      });
    }
  });
  if (status === 'stopped' && !opts.json) io.err('Stopping...\n');
  await monitor.stop();
  const exitCode = violations > 0 ? 1 : 0;
  // The session's exit code is the program's, which a watcher cannot know (it is not its child).
  store.endSession(sessionId, {
    status: status === 'exited' ? 'completed' : 'interrupted',
    exitCode: null,
  });
  const st = monitor.stats();
  if (opts.json) {
    io.out(
      JSON.stringify({
        type: 'summary',
        session: sessionId,
        pid,
        policy: policy ? policyName : null,
        status,
        connections: events.length,
        violations,
        killed,
        polls: st.polls,
        meanPollMs: Math.round(st.meanPollMs * 100) / 100,
        exitCode,
      }) + '\n',
    );
  } else {
    io.err(
      `\nWatched PID ${pid} (${status === 'exited' ? 'process exited' : 'stopped'}): ` +
        `${events.length} connection(s), ${violations} violation(s)\n`,
    );
    if (violations > 0) io.err(`⚠ ${violations} violation(s) detected\n`);
    io.err(`Recorded as session ${sessionId}.\n`);
  }
  return { exitCode, sessionId, events, violations, killed, status };
}

export function register(program: Command): void {
  const cmd = program
    .command('watch')
    .summary("watch an already running process tree's direct connections")
    .description(
      'Watch the direct network connections of a running process and its children until it ' +
        'exits (or Ctrl-C), checking each against --policy. A running process cannot be put ' +
        'behind the proxy after the fact: nothing is decrypted and a connection cannot be ' +
        'refused, but a kill verdict terminates the process tree.\n\n' +
        'Exit code: 1 when there were violations, else 0; 2 for a PID that does not exist.',
    )
    .argument('<pid>', 'process id to watch (its children are followed too)')
    .option('--policy <file>', 'policy file (YAML) to check connections against')
    .option(
      '--no-tui',
      "accepted for the earlier tool's scripts: trustrun has no interactive screen and always prints plain lines",
    )
    .option(
      '--interval <ms>',
      'poll interval in milliseconds',
      intOption('--interval', 1, 60_000),
      100,
    )
    .option('--no-resolve', 'do not look up host names (reverse DNS)')
    .option('--json', 'one JSON object per connection on stdout, then a summary object');
  addLookupOptions(cmd);
  addDataDirOption(cmd).action(async (pid: string, opts: WatchCommandOptions) => {
    const ac = new AbortController();
    const abort = () => ac.abort();
    process.once('SIGINT', abort);
    process.once('SIGTERM', abort);
    try {
      const r = await watchCommand(pid, opts, processIo(), ac.signal);
      process.exitCode = r.exitCode;
    } finally {
      process.removeListener('SIGINT', abort);
      process.removeListener('SIGTERM', abort);
    }
  });
}
