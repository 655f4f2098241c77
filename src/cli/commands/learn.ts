import { Option, type Command } from 'commander';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { TrustRunError, dataPaths } from '../../core/index.js';
import {
  learnPolicy,
  parsePolicy,
  type LearnDefaultAction,
  type LearnedPolicy,
  type ObservedDestination,
  type RefusedDestination,
} from '../../policy/index.js';
import {
  openStore,
  redactUrl,
  type RequestRow,
  type SessionRow,
  type Store,
} from '../../store/index.js';
import { dataDirFrom } from '../common.js';
import { everyRow } from '../store.js';
import { addProxyOptions, type ProxyCommandOptions } from './proxy.js';
import { reportNotRunnable, runChild } from './run.js';

export interface LearnCommandOptions extends Partial<ProxyCommandOptions> {
  session?: string;
  output?: string;
  name?: string;
  defaultAction?: LearnDefaultAction;
  exact?: boolean;
}

export interface LearnIo {
  out: (text: string) => void;
  err: (text: string) => void;
}

const processIo = (): LearnIo => ({
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
});

/** What a session shows of its destinations, and what was left out. */
export interface SessionObservations {
  session: SessionRow;
  observed: ObservedDestination[];
  /** Records counted, by kind. */
  counts: { connections: number; requests: number; monitorEvents: number };
  /** Destinations the session's policy refused (block, kill): never learned as allowed. */
  refused: string[];
  /** The same, one entry per refused connection, request (with its method and path) or socket. */
  refusedDetail: RefusedDestination[];
}

const REFUSED = new Set(['block', 'kill']);

/** host:port (or address:port) of a destination, as the summary lines name it. */
const nameOf = (d: ObservedDestination): string => `${d.host || d.ip}:${d.port}`;

/**
 * The destinations of a stored session: each proxied connection, each request that had no
 * connection record, and each socket the monitor saw (except those to the session's own proxy
 * listener). Destinations the session's policy refused are left out and listed.
 */
export function observeSession(store: Store, sessionId: string): SessionObservations {
  const session = store.getSession(sessionId);
  if (!session) {
    throw new TrustRunError('TR_NOT_FOUND', `learn: no session ${sessionId} in ${store.dataDir}`, {
      hint: 'List the recorded sessions with `trustrun history`.',
    });
  }
  const observed: ObservedDestination[] = [];
  const refused = new Set<string>();
  const refusedDetail: RefusedDestination[] = [];
  const counts = { connections: 0, requests: 0, monitorEvents: 0 };
  const take = (d: ObservedDestination, action: string | null, request?: RequestRow) => {
    if (action === null || !REFUSED.has(action)) {
      observed.push(d);
      return;
    }
    refused.add(nameOf(d));
    // A request whose URL cannot be opened (a shredded session) counts as refusing its whole
    // destination: nothing is allowed that might cover it.
    let url: string | undefined;
    try {
      url = request ? store.getRequest(request.id)?.url : undefined;
    } catch {
      url = undefined;
    }
    refusedDetail.push(
      url === undefined ? d : { ...d, method: request!.method, path: url.split('?')[0] || '/' },
    );
  };
  const connections = new Set<string>();
  for (const c of everyRow((q) => store.listConnections({ ...q, sessionId }))) {
    counts.connections++;
    connections.add(c.id);
    take({ host: c.host, port: c.port, ip: c.ip }, c.verdictAction);
  }
  for (const r of everyRow((q) => store.listRequests({ ...q, sessionId }))) {
    if (r.connectionId !== null && connections.has(r.connectionId)) {
      // Refused by a methods/paths rule inside a connection that was let through.
      if (r.verdictAction !== null && REFUSED.has(r.verdictAction)) {
        take({ host: r.host, port: r.port }, r.verdictAction, r);
      }
      continue;
    }
    counts.requests++;
    take({ host: r.host, port: r.port }, r.verdictAction, r);
  }
  const listener = session.listen?.toLowerCase() ?? null;
  for (const e of everyRow((q) => store.listMonitorEvents({ ...q, sessionId }))) {
    const remote = e.remoteAddr.includes(':')
      ? `[${e.remoteAddr}]:${e.remotePort}`
      : `${e.remoteAddr}:${e.remotePort}`;
    if (listener !== null && remote === listener) continue; // the program talking to our proxy
    counts.monitorEvents++;
    take({ host: e.hostname, ip: e.remoteAddr, port: e.remotePort }, e.verdictAction);
  }
  // A destination refused as a whole (a connection or socket, not one request) and also let
  // through (the policy was reloaded during the session): the refusal wins.
  const whole = new Set(refusedDetail.filter((r) => r.method === undefined).map(nameOf));
  const kept = observed.filter((d) => !whole.has(nameOf(d)));
  return { session, observed: kept, counts, refused: [...refused], refusedDetail };
}

/** Learns a policy from a session, and checks that it loads and allows what was observed. */
export async function learnFromSession(
  store: Store,
  sessionId: string,
  opts: Pick<LearnCommandOptions, 'name' | 'defaultAction' | 'exact'> = {},
): Promise<{ learned: LearnedPolicy; seen: SessionObservations }> {
  const seen = observeSession(store, sessionId);
  const learned = learnPolicy(seen.observed, {
    redactPath: (path) => redactUrl(path).url,
    name: opts.name,
    defaultAction: opts.defaultAction,
    exact: opts.exact,
    refused: seen.refusedDetail,
    comment: `Learned by trustrun learn from ${seen.session.kind} session ${sessionId} on ${new Date().toISOString()}`,
  });
  const policy = await parsePolicy(learned.yaml, 'learned policy', { warn: () => {} });
  for (const d of seen.observed) {
    const v = policy.evaluate({ host: d.host || d.ip || '', port: d.port ?? 0, ip: d.ip ?? null });
    if (v.action !== 'allow' && learned.skipped.every((s) => s.destination !== d)) {
      throw new TrustRunError(
        'TR_INTERNAL',
        `the learned policy does not allow ${d.host || d.ip}:${d.port}: ${v.explanation}`,
      );
    }
  }
  for (const r of seen.refusedDetail) {
    const v = policy.evaluate({
      host: r.host || r.ip || '',
      port: r.port ?? 0,
      ip: r.ip ?? null,
      ...(r.method !== undefined ? { method: r.method, path: r.path } : {}),
    });
    if (v.action === 'allow') {
      const what = `${r.host || r.ip}:${r.port}${r.method !== undefined ? ` ${r.method} ${r.path}` : ''}`;
      throw new TrustRunError(
        'TR_INTERNAL',
        `the learned policy allows ${what}, which the session's policy refused`,
      );
    }
  }
  return { learned, seen };
}

/** Prints the summary lines and writes (or prints) the policy. */
async function emit(
  learned: LearnedPolicy,
  seen: SessionObservations,
  opts: LearnCommandOptions,
  io: LearnIo,
): Promise<void> {
  const c = seen.counts;
  io.err(
    `Learning from session ${seen.session.id}: ${c.connections} connections, ` +
      `${c.requests} requests without a connection record, ${c.monitorEvents} direct sockets\n`,
  );
  // A destination also reached (a request refused by a methods/paths rule inside an allowed
  // connection) is learned, with that request kept as a block rule.
  const reached = new Set(seen.observed.map(nameOf));
  const leftOut = seen.refused.filter((name) => !reached.has(name));
  if (leftOut.length > 0) {
    io.err(
      `Left out ${leftOut.length} destination(s) the session's policy refused: ${leftOut.join(', ')}\n`,
    );
  }
  if (learned.refusals.length > 0) {
    io.err(
      `Kept ${learned.refusals.length} refused request(s) as block rules: ` +
        `${learned.refusals.map((r) => `${r.method} ${r.match}${r.path}`).join(', ')}\n`,
    );
  }
  for (const s of learned.skipped) {
    io.err(`Skipped an observation: ${s.reason}\n`);
  }
  if (learned.rules.length === 0) {
    io.err('No endpoints observed.\n');
    return;
  }
  io.err(`Generated policy: ${learned.rules.length} endpoints\n`);
  if (opts.output) {
    try {
      await writeFile(opts.output, learned.yaml);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      throw new TrustRunError('TR_USAGE', `learn: cannot write ${opts.output}: ${code}`);
    }
    io.err(`Policy written to ${opts.output}\n`);
  } else {
    io.out(learned.yaml);
  }
}

/** `trustrun learn --session ID`: a policy from a stored session. */
export async function learnSessionCommand(
  sessionId: string,
  opts: LearnCommandOptions,
  io: LearnIo = processIo(),
): Promise<LearnedPolicy> {
  const dataDir = dataDirFrom(opts);
  if (!existsSync(dataPaths(dataDir).database)) {
    throw new TrustRunError('TR_NOT_FOUND', `learn: no session ${sessionId} in ${dataDir}`, {
      hint: 'Nothing has been recorded in this data directory yet.',
    });
  }
  const store = await openStore({ dataDir });
  try {
    const { learned, seen } = await learnFromSession(store, sessionId, opts);
    await emit(learned, seen, opts, io);
    return learned;
  } finally {
    await store.close();
  }
}

/**
 * `trustrun learn -- CMD`: runs the command through the proxy (audit session of kind `learn`),
 * then learns from that session. Returns the command's exit status (as `trustrun run` does).
 */
export async function learnRunCommand(
  argv: string[],
  opts: LearnCommandOptions,
  io: LearnIo = processIo(),
): Promise<number> {
  const runOpts = {
    port: 0,
    host: '127.0.0.1',
    maxBody: 1024 * 1024,
    upstreamCa: [],
    resolve: [],
    onStoreError: 'fail' as const,
    ...withoutUndefined(opts),
  };
  const result = await runChild(runOpts, argv, {
    kind: 'learn',
    warn: (m) => io.err(`${m}\n`),
    onSessionStarted: (s) =>
      io.err(
        `trustrun: learning from ${(s.command ?? []).join(' ')} through ${s.url} (session ${s.sessionId})\n`,
      ),
  });
  // The command's own status: trustrun's (result.exitCode) is also non-zero for a violation.
  if (result.childExitCode !== 0) {
    const how =
      result.childExitCode !== null
        ? `exited ${result.childExitCode}`
        : result.signal !== null
          ? `was ended by ${result.signal}`
          : `could not be started (exit ${result.exitCode})`;
    io.err(
      `trustrun: warning: the command ${how}; the policy covers only what it reached before\n`,
    );
  }
  await learnSessionCommand(result.sessionId, opts, io);
  return result.exitCode;
}

function withoutUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export function register(program: Command): void {
  const cmd = program
    .command('learn')
    .summary('derive a least-privilege policy from what a program reached')
    .description(
      'Derive a version 2 policy (one allow rule per destination pattern, ports kept,\n' +
        'defaults: block) from a recorded session, or from a run of a command:\n' +
        '  trustrun learn --session 0mwx1a2b3c4d5e6f7a8b9c -o policy.yaml\n' +
        '  trustrun learn -o policy.yaml -- python train.py\n' +
        'Without -o the policy is printed on stdout.',
    )
    .argument('[command...]', 'the command to run and learn from (put it after --)')
    .option('--session <id>', 'learn from this recorded session (see `trustrun history`)')
    .option('-o, --output <file>', 'write the policy to FILE instead of stdout')
    .option('--name <name>', 'the policy name', 'learned-policy')
    .addOption(
      new Option('--default-action <action>', 'what happens to any other destination')
        .choices(['alert', 'block', 'kill'])
        .default('block'),
    )
    .option('--exact', 'keep host names as seen instead of generalising to *.domain')
    .passThroughOptions();
  addProxyOptions(cmd).action(async (command: string[], opts: LearnCommandOptions) => {
    if (opts.session !== undefined && command.length > 0) {
      throw new TrustRunError('TR_USAGE', 'learn: give either --session ID or -- CMD, not both');
    }
    if (opts.session !== undefined) {
      await learnSessionCommand(opts.session, opts);
      return;
    }
    if (command.length === 0) {
      throw new TrustRunError(
        'TR_USAGE',
        'learn: nothing to learn from (usage: trustrun learn --session ID, or trustrun learn -- CMD [ARGS...])',
      );
    }
    // The earlier tool's `learn PID` watched a running process; a command named by digits alone
    // is that, not a program.
    if (/^\d+$/.test(command[0]!)) {
      throw new TrustRunError(
        'TR_USAGE',
        `learn: a process id (${command[0]}) is not a command: watch the process with \`trustrun watch ${command[0]}\`, then learn from that session with \`trustrun learn --session ID\` (or run the program with \`trustrun learn -- CMD\`)`,
      );
    }
    try {
      process.exitCode = await learnRunCommand(command, opts);
    } catch (err) {
      // As run: a command that cannot start is 127 (not found) or 126 (not executable).
      if (reportNotRunnable(err)) return;
      throw err;
    }
  });
  // Like run: a free port unless told otherwise.
  const port = cmd.options.find((o) => o.long === '--port');
  if (port) port.defaultValue = 0;
  cmd.setOptionValueWithSource('port', 0, 'default');
}
