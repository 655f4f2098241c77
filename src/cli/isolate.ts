/**
 * `trustrun run --isolate`: the command runs in a network namespace of its own whose only
 * reachable address is the proxy's port on 127.0.0.1. See isolated.ts for the process that
 * sets the namespace up, and docs/run.md for what a user sees.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import type { Server } from 'node:net';
import { delimiter } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SYSTEM_PROGRAM_DIRS, TrustRunError, findExecutable } from '../core/index.js';
import { ESCAPE_CAPS } from './capabilities.js';

/** The programs isolation needs, found on PATH or in the system directories. */
export interface IsolationTools {
  unshare: string;
  ip: string;
  /** Drops the capabilities that could leave the namespace (trustrun run as root). */
  setpriv: string;
}

const isRoot = (): boolean => process.getuid?.() === 0;

/** unshare's options for the namespaces: a user namespace too when not root. */
function namespaceArgs(root: boolean): string[] {
  return root ? ['--net'] : ['--user', '--map-root-user', '--net'];
}

function namespaceHint(root: boolean): string {
  return root
    ? 'creating a network namespace needs CAP_SYS_ADMIN (a container must be given it), or run without --isolate'
    : 'as a user other than root this needs unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1; on Ubuntu also kernel.apparmor_restrict_unprivileged_userns=0), or run without --isolate';
}

/**
 * Checks that isolation can work here (the programs it needs, and that the namespaces can be
 * made); throws one clear line when it cannot. `where` replaces the platform and the system
 * directories searched after PATH (tests).
 */
export function isolationTools(
  env: NodeJS.ProcessEnv,
  where: { platform?: NodeJS.Platform; systemDirs?: string[] } = {},
): IsolationTools {
  const platform = where.platform ?? process.platform;
  if (platform !== 'linux') {
    throw new TrustRunError(
      'TR_USAGE',
      `--isolate needs Linux network namespaces (this is ${platform}); without it, sockets that bypass the proxy are still found by the monitor`,
    );
  }
  const search = [env.PATH ?? '', ...(where.systemDirs ?? SYSTEM_PROGRAM_DIRS)].join(delimiter);
  const need = (name: string, pkg: string): string => {
    const found = findExecutable(name, search);
    if (!found) {
      throw new TrustRunError('TR_CONFIG', `--isolate needs ${name}, which was not found`, {
        hint: `install it: apt-get install ${pkg}`,
      });
    }
    return found;
  };
  const tools = {
    unshare: need('unshare', 'util-linux'),
    ip: need('ip', 'iproute2'),
    setpriv: need('setpriv', 'util-linux'),
  };
  const root = isRoot();
  const probe = spawnSync(tools.unshare, [...namespaceArgs(root), '--', 'true'], {
    encoding: 'utf8',
    timeout: 10_000,
  });
  if (probe.status !== 0) {
    const why = (probe.stderr || probe.error?.message || `exit ${probe.status}`)
      .trim()
      .split('\n')[0];
    throw new TrustRunError('TR_CONFIG', `--isolate: cannot make a network namespace: ${why}`, {
      hint: namespaceHint(root),
    });
  }
  return tools;
}

/** The command started in its namespace, with the listening socket it can reach. */
export interface Isolated {
  /** The first process in the namespace (the command's parent); its pid is the tree's root. */
  child: ChildProcess;
  /** Listening on 127.0.0.1:port inside the namespace; to be accepted by the proxy. */
  listener: Server;
  /** Starts the command (call once the proxy accepts on `listener`). */
  start(): void;
}

/** Run by sh inside the namespace: the loopback up, then the rest of its arguments. */
const LOOPBACK_UP = 'ip=$1; shift; "$ip" link set lo up || exit 125; exec "$@"';

/**
 * Enters a new network namespace (and, when not root, a user namespace) and opens `port` on
 * 127.0.0.1 there; resolves once that socket reached this process. The command (`file`,
 * `argv`) starts only when start() is called. As root, the command runs without ESCAPE_CAPS;
 * otherwise in a nested user namespace that maps the user's own ids back.
 */
export function startIsolated(
  tools: IsolationTools,
  port: number,
  file: string,
  argv: string[],
  env: NodeJS.ProcessEnv,
): Promise<Isolated> {
  const root = isRoot();
  const script = fileURLToPath(new URL('./isolated.js', import.meta.url));
  const confine = root
    ? [
        tools.setpriv,
        // Root's program gets its bounding set and its inheritable set at exec: both go, and
        // the ambient set too (isolated.js checks that the drop took).
        `--bounding-set=${Object.keys(ESCAPE_CAPS)
          .map((c) => `-${c}`)
          .join(',')}`,
        '--inh-caps=-all',
        '--ambient-caps=-all',
        '--',
      ]
    : [
        tools.unshare,
        '--user',
        `--map-user=${process.getuid!()}`,
        `--map-group=${process.getgid!()}`,
        '--',
      ];
  const child = spawn(
    tools.unshare,
    [
      ...namespaceArgs(root),
      '--',
      '/bin/sh',
      '-c',
      LOOPBACK_UP,
      'trustrun-isolate',
      tools.ip,
      ...confine,
      process.execPath,
      script,
      '--port',
      String(port),
      '--',
      file,
      argv[0]!,
      ...argv.slice(1),
    ],
    { env, stdio: ['inherit', 'inherit', 'inherit', 'ipc'] },
  );
  return new Promise<Isolated>((resolve, reject) => {
    const failed = (message: string, hint?: string): void => {
      child.removeAllListeners('message');
      reject(new TrustRunError('TR_CONFIG', `--isolate: ${message}`, hint ? { hint } : {}));
    };
    child.once('error', (err) => failed(`cannot run ${tools.unshare}: ${err.message}`));
    child.once('exit', (code, signal) =>
      code === 125
        ? failed("could not bring up the namespace's loopback (ip's message is above)")
        : failed(
            `could not set up the network namespace (${signal ? `killed by ${signal}` : `exit ${code}`}; its message, if any, is above)`,
            namespaceHint(root),
          ),
    );
    child.once('message', (msg: { type?: string; message?: string }, handle: unknown) => {
      if (msg?.type === 'listener' && handle) {
        child.removeAllListeners('exit');
        child.removeAllListeners('error');
        resolve({
          child,
          listener: handle as Server,
          start: () => void (child.connected && child.send('start')),
        });
      } else failed(String(msg?.message ?? 'the namespace could not be set up'));
    });
  });
}
