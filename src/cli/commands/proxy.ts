import { readFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import {
  CAPTURE_LEVELS,
  TrustRunError,
  createLogger,
  dataPaths,
  formatError,
  type CaptureLevel,
  type Logger,
} from '../../core/index.js';
import { LeafMinter, loadOrCreateCa, type CertificateAuthority } from '../../ca/index.js';
import { loadPolicyInWorker, type CompiledPolicy } from '../../policy/index.js';
import type { ApiServer } from '../../api/index.js';
import { findSocketOwner, killTree } from '../../monitor/index.js';
import { openStore, type Store } from '../../store/index.js';
import {
  DEFAULT_LIMITS,
  InterceptingProxy,
  parseResolveRule,
  type ProxyDeps,
} from '../../proxy/index.js';
import { addDataDirOption, collect, dataDirFrom, intOption, printJson } from '../common.js';

export interface ProxyCommandOptions {
  port: number;
  host: string;
  level?: CaptureLevel;
  policy?: string;
  maxBody: number;
  upstreamCa: string[];
  resolve: string[];
  dataDir?: string;
  json?: boolean;
  onStoreError: 'fail' | 'pass';
  apiPort?: number;
}

/** A running proxy session: what `trustrun proxy` and `trustrun run` start. */
export interface ProxySession {
  proxy: InterceptingProxy;
  store: Store;
  sessionId: string;
  /** The command line as the session row holds it: redacted by the store (null: none). */
  command: string[] | null;
  level: CaptureLevel;
  policy: CompiledPolicy | null;
  url: string;
  dataDir: string;
  caPath: string;
  ca: CertificateAuthority;
  /** Re-reads the policy file; keeps the old policy when the new one is invalid. */
  reloadPolicy(): Promise<{ ok: boolean; message: string }>;
  stop(status?: 'completed' | 'failed' | 'interrupted', exitCode?: number | null): Promise<void>;
}

/** Parses and checks the proxy flags shared by `proxy`, `run` and `learn`. */
export function addProxyOptions(cmd: Command): Command {
  return addDataDirOption(
    cmd
      .option(
        '--port <port>',
        'port to listen on (0 = any free port)',
        intOption('--port', 0, 65535),
        8080,
      )
      .option('--host <addr>', 'address to listen on', '127.0.0.1')
      .addOption(
        new Option(
          '--level <level>',
          'capture level: metadata (no decryption), headers, full (bodies)',
        ).choices(CAPTURE_LEVELS),
      )
      .option('--policy <file>', 'policy file (YAML) to enforce')
      .option(
        '--max-body <bytes>',
        'most bytes of each body recorded at the full level',
        intOption('--max-body', 0, 1024 * 1024 * 1024),
        1024 * 1024,
      )
      .option(
        '--upstream-ca <file>',
        'extra CA (PEM) trusted for upstream servers; repeatable',
        collect,
        [],
      )
      .option(
        '--resolve <host:port:addr[:port]>',
        'connect to ADDR (and PORT) for HOST:PORT; HOST may be *.domain; repeatable',
        collect,
        [],
      )
      .addOption(
        new Option(
          '--on-store-error <mode>',
          'when records cannot be written: fail (refuse traffic) or pass',
        )
          .choices(['fail', 'pass'])
          .default('fail'),
      ),
  );
}

function readCaFile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new TrustRunError(
      'TR_USAGE',
      `--upstream-ca ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    );
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) {
    throw new TrustRunError('TR_USAGE', `--upstream-ca ${file}: no PEM certificate in the file`);
  }
  return text;
}

/** Starts a proxy session: store, CA, policy, proxy. Used by `proxy`, `run` and tests. */
export async function startProxySession(
  opts: ProxyCommandOptions,
  extra: {
    kind?: 'proxy' | 'run' | 'learn';
    command?: string[] | null;
    logger?: Logger;
    identify?: ProxyDeps['identify'];
    kill?: ProxyDeps['kill'];
    warn?: (msg: string) => void;
  } = {},
): Promise<ProxySession> {
  const warn = extra.warn ?? ((m: string) => process.stderr.write(`${m}\n`));
  // The policy loader's notices (a legacy file) carry the prefix the other commands print.
  const policyWarn = (m: string) => warn(`trustrun: warning: ${m}`);
  const resolve = opts.resolve.map(parseResolveRule);
  const upstreamCa = opts.upstreamCa.map(readCaFile);
  const policy = opts.policy ? await loadPolicyInWorker(opts.policy, { warn: policyWarn }) : null;
  const level: CaptureLevel = opts.level ?? policy?.captureLevel ?? 'metadata';
  const dataDir = dataDirFrom(opts);
  const paths = dataPaths(dataDir);
  const logger = extra.logger ?? createLogger();
  const ca = await loadOrCreateCa(paths);
  const minter = level === 'metadata' ? null : await LeafMinter.create(ca);
  const store = await openStore({ dataDir, logger });
  let proxy: InterceptingProxy | undefined;
  let session;
  // The session is recorded once the listener is bound (a port in use leaves no session behind,
  // and the session names the real address); no connection is accepted before then.
  const deps: ProxyDeps = {
    recorder: store,
    sessionId: '',
    contexts: minter,
    policy,
    logger,
    identify: extra.identify,
    kill: extra.kill ?? killSocketOwner,
  };
  try {
    proxy = new InterceptingProxy(
      {
        host: opts.host,
        port: opts.port,
        level,
        maxBody: opts.maxBody,
        upstreamCa,
        resolve,
        onStoreError: opts.onStoreError,
        guardPorts: opts.apiPort ? [opts.apiPort] : [],
        limits: DEFAULT_LIMITS,
      },
      deps,
    );
    const bound = await proxy.listen();
    session = store.startSession({
      kind: extra.kind ?? 'proxy',
      command: extra.command ?? null,
      policy: policy?.shownName ?? null,
      level,
      listen:
        bound.family === 'IPv6'
          ? `[${bound.address}]:${bound.port}`
          : `${bound.address}:${bound.port}`,
    });
    deps.sessionId = session.id;
  } catch (err) {
    // Listening already (the session could not be recorded): stop, or trustrun would hang.
    await proxy?.close().catch(() => undefined);
    await store.close();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') {
      throw new TrustRunError('TR_USAGE', `port ${opts.port} on ${opts.host} is already in use`, {
        hint: 'pick another with --port, or --port 0 for any free port',
      });
    }
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
      throw new TrustRunError(
        'TR_USAGE',
        `--host ${opts.host} is not an address of this machine (${code})`,
        { hint: 'use 127.0.0.1 (the default), ::1, or 0.0.0.0 for every interface' },
      );
    }
    throw err;
  }
  const addr = proxy.address;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const sessionId = session.id;
  let current = policy;
  let stopped = false;
  return {
    proxy,
    store,
    sessionId,
    command: session.command,
    level,
    get policy() {
      return current;
    },
    url: `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${addr.port}`,
    dataDir,
    caPath: paths.caCert,
    ca,
    async reloadPolicy() {
      if (!opts.policy) return { ok: false, message: 'no --policy file to reload' };
      try {
        const next = await loadPolicyInWorker(opts.policy, { warn: policyWarn });
        current = next;
        proxy.setPolicy(next);
        return {
          ok: true,
          message: `policy reloaded from ${opts.policy} (${next.rules.length} rules)`,
        };
      } catch (err) {
        return {
          ok: false,
          message: `policy NOT reloaded, the previous one stays in force: ${formatError(err)}`,
        };
      }
    },
    async stop(status = 'completed', exitCode = null) {
      if (stopped) return;
      stopped = true;
      await proxy.close();
      store.endSession(sessionId, { status, exitCode });
      await store.close();
    },
  } satisfies ProxySession as ProxySession;
}

/**
 * The standalone proxy's kill: finds the process that owns the client socket (only loopback
 * clients can be local processes) from procfs and terminates its process tree.
 */
export function killSocketOwner(
  client: { pid: number; exe: string | null } | null,
  _verdict: unknown,
  from: { addr: string; port: number; proxyPort: number },
): { pid: number; exe: string | null } | null {
  const owner =
    client ??
    (isLoopback(from.addr)
      ? findSocketOwner(from.addr, from.port, { peerPort: from.proxyPort })
      : null);
  if (!owner || owner.pid === process.pid || owner.pid <= 1) return null;
  return killTree(owner.pid).length > 0 ? owner : null;
}

/** Whether an address is this machine's loopback (IPv4, IPv6, or IPv4-mapped). */
export function isLoopback(addr: string): boolean {
  return addr.startsWith('127.') || addr === '::1' || addr.startsWith('::ffff:127.');
}

export function phiWarning(level: CaptureLevel): string | null {
  if (level === 'metadata') return null;
  return (
    `WARNING: capture level '${level}' decrypts traffic and records ${level === 'full' ? 'headers and bodies' : 'URLs and headers'}, ` +
    'which may contain PHI. Records are encrypted at rest; handle the data directory accordingly.'
  );
}

export function register(program: Command): void {
  const cmd = program
    .command('proxy')
    .summary('run the intercepting proxy on its own')
    .description(
      'Run the intercepting proxy on its own, for programs you point at it by hand:\n' +
        '  trustrun proxy --level headers\n' +
        '  eval "$(trustrun ca env)"; HTTPS_PROXY=http://127.0.0.1:8080 Rscript analysis.R\n' +
        'Every connection is checked against --policy (if given) and recorded in the data directory.\n' +
        'Ctrl-C ends the session; SIGHUP reloads the policy file.',
    );
  addProxyOptions(cmd)
    .option('--json', 'print the start-up details as JSON on stdout')
    .option(
      '--api-port <port>',
      'also serve the web UI and API on 127.0.0.1:PORT, 0 = any free port (the proxy refuses to proxy to it)',
      intOption('--api-port', 0, 65535),
    )
    .action(async (opts: ProxyCommandOptions) => {
      const s = await startProxySession(opts);
      let api: ApiServer | null = null;
      if (opts.apiPort !== undefined) {
        try {
          // Loaded only when asked for: the API and UI code stays out of a plain proxy's memory.
          const { startApiServer } = await import('../../api/index.js');
          api = await startApiServer({
            store: s.store,
            dataDir: s.dataDir,
            port: opts.apiPort,
            portFlag: '--api-port',
          });
          // Known only now with --api-port 0 (before the proxy is announced to any client).
          s.proxy.guardPort(api.port);
        } catch (err) {
          await s.stop('failed');
          throw err;
        }
      }
      const info = {
        listen: s.url,
        level: s.level,
        session: s.sessionId,
        dataDir: s.dataDir,
        ca: s.caPath,
        policy: s.policy?.shownName ?? null,
        env: `HTTPS_PROXY=${s.url}`,
        api: api ? { url: api.url, oneTimeUrl: api.oneTimeUrl } : null,
      };
      const warning = phiWarning(s.level);
      if (opts.json) printJson({ ...info, warning });
      const err = process.stderr;
      err.write(
        `TrustRun proxy listening on ${s.url} (level ${s.level}, session ${s.sessionId})\n`,
      );
      err.write(`  data directory: ${s.dataDir}\n  CA certificate: ${s.caPath}\n`);
      if (opts.policy)
        err.write(`  policy: ${opts.policy}${s.policy ? ` (${s.policy.shownName})` : ''}\n`);
      err.write(
        `  use it with:   eval "$(trustrun ca env --data-dir '${s.dataDir}')"; export HTTPS_PROXY=${s.url} https_proxy=${s.url}\n`,
      );
      if (api) err.write(`  web UI:        ${api.oneTimeUrl} (one-time link)\n`);
      if (warning) err.write(`${warning}\n`);
      if (opts.host !== '127.0.0.1' && opts.host !== '::1' && opts.host !== 'localhost') {
        err.write(`WARNING: listening on ${opts.host}: other machines may use this proxy.\n`);
      }
      await new Promise<void>((resolve) => {
        const end = () => resolve();
        process.once('SIGINT', end);
        process.once('SIGTERM', end);
        process.on('SIGHUP', () => {
          void s.reloadPolicy().then((r) => err.write(`${r.message}\n`));
        });
      });
      err.write('stopping…\n');
      await api?.close();
      await s.stop('completed');
      err.write(`session ${s.sessionId} saved\n`);
    });
}
