/**
 * `trustrun run --isolate`: the command runs in a network namespace of its own whose only
 * reachable address is the proxy's port on 127.0.0.1. See isolated.ts for the process that
 * sets the namespace up, and docs/run.md for what a user sees.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import type { Server } from 'node:net';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TrustRunError } from '../core/index.js';

/** The programs isolation needs, found on PATH or in the system directories. */
export interface IsolationTools {
  unshare: string;
  ip: string;
}

const SYSTEM_DIRS = ['/usr/sbin', '/sbin', '/usr/bin', '/bin'];

function findProgram(name: string, env: NodeJS.ProcessEnv, system: string[]): string | null {
  const dirs = [...(env.PATH ?? '').split(delimiter).filter((d) => d !== ''), ...system];
  for (const dir of dirs) {
    const file = join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // next
    }
  }
  return null;
}

/**
 * Checks that isolation can work here; throws one clear line when it cannot. `where` replaces
 * the platform and the system directories searched after PATH (tests).
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
  const system = where.systemDirs ?? SYSTEM_DIRS;
  const unshare = findProgram('unshare', env, system);
  if (!unshare) {
    throw new TrustRunError('TR_CONFIG', '--isolate needs unshare, which was not found', {
      hint: 'install it: apt-get install util-linux',
    });
  }
  const ip = findProgram('ip', env, system);
  if (!ip) {
    throw new TrustRunError('TR_CONFIG', '--isolate needs ip, which was not found', {
      hint: 'install it: apt-get install iproute2',
    });
  }
  return { unshare, ip };
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

const NAMESPACE_HINT =
  'as a user other than root this needs unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1; on Ubuntu also kernel.apparmor_restrict_unprivileged_userns=0)';

/**
 * Enters a new network namespace (and, when not root, a user namespace) and opens `port` on
 * 127.0.0.1 there; resolves once that socket reached this process. The command (`file`,
 * `argv`) starts only when start() is called.
 */
export function startIsolated(
  tools: IsolationTools,
  port: number,
  file: string,
  argv: string[],
  env: NodeJS.ProcessEnv,
): Promise<Isolated> {
  const root = process.getuid?.() === 0;
  const script = fileURLToPath(new URL('./isolated.js', import.meta.url));
  const map = root
    ? []
    : ['--map', `${process.getuid!()}:${process.getgid!()}`, '--unshare', tools.unshare];
  const child = spawn(
    tools.unshare,
    [
      ...(root ? ['--net'] : ['--user', '--map-root-user', '--net']),
      '--',
      process.execPath,
      script,
      '--ip',
      tools.ip,
      '--port',
      String(port),
      ...map,
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
      failed(
        `could not set up the network namespace (${tools.unshare} ${signal ? `killed by ${signal}` : `exited ${code}`}; its message, if any, is above)`,
        NAMESPACE_HINT,
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
