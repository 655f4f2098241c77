/**
 * The first process inside the network namespace of `trustrun run --isolate` (started by
 * unshare(1), with an IPC channel to trustrun). It brings the namespace's loopback up, opens
 * the proxy's port on 127.0.0.1 there and hands that listening socket to trustrun, whose proxy
 * then accepts the command's connections itself (no bytes pass through this process). Once
 * trustrun says so it starts the command, forwards signals to it, and ends as the command did.
 *
 * Arguments: --ip PATH --port N [--map UID:GID --unshare PATH] -- FILE ARGV0 [ARGS...]
 * With --map (trustrun not run as root: this process is root in a user namespace of its own),
 * the command runs in a nested user namespace that maps the user's own ids back.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { constants } from 'node:os';

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];

/** Exit status when the namespace could not be set up (the command never ran). */
const SETUP_FAILED = 125;

interface Args {
  ip: string;
  port: number;
  map: string | null;
  unshare: string | null;
  file: string;
  argv0: string;
  args: string[];
}

function parse(argv: string[]): Args {
  const end = argv.indexOf('--');
  const flags = argv.slice(0, end);
  const get = (name: string): string | null => {
    const i = flags.indexOf(name);
    return i >= 0 ? (flags[i + 1] ?? null) : null;
  };
  const [file, argv0, ...args] = argv.slice(end + 1);
  const ip = get('--ip');
  const port = Number(get('--port'));
  if (end < 0 || !file || argv0 === undefined || !ip || !Number.isInteger(port)) {
    throw new Error(
      'usage: isolated --ip PATH --port N [--map UID:GID --unshare PATH] -- FILE ARGV0 [ARGS...]',
    );
  }
  return { ip, port, map: get('--map'), unshare: get('--unshare'), file, argv0, args };
}

/** Tells trustrun why (once the message is out), then exits with SETUP_FAILED. */
function fail(message: string, type = 'error', code?: string): void {
  process.exitCode = SETUP_FAILED;
  if (!process.connected) process.exit(SETUP_FAILED);
  process.send!({ type, message, code }, () => process.exit(SETUP_FAILED));
}

function startCommand(a: Args): ChildProcess {
  if (a.map) {
    const [uid, gid] = a.map.split(':');
    return spawn(
      a.unshare!,
      ['--user', `--map-user=${uid}`, `--map-group=${gid}`, '--', a.file, ...a.args],
      { stdio: 'inherit' },
    );
  }
  return spawn(a.file, a.args, { argv0: a.argv0, stdio: 'inherit' });
}

function main(): void {
  let a: Args;
  try {
    a = parse(process.argv.slice(2));
  } catch (err) {
    return fail((err as Error).message);
  }
  const up = spawnSync(a.ip, ['link', 'set', 'lo', 'up'], { encoding: 'utf8' });
  if (up.status !== 0) {
    const why = (up.stderr || up.error?.message || `exit ${up.status}`).trim().split('\n')[0];
    return fail(`cannot bring up the namespace's loopback (${a.ip} link set lo up): ${why}`);
  }
  const server = createServer();
  server.once('error', (err) => fail(`cannot listen on 127.0.0.1:${a.port}: ${err.message}`));
  server.listen({ host: '127.0.0.1', port: a.port, exclusive: true }, () => {
    // trustrun's proxy accepts on this socket from now on; this process keeps no copy of it.
    process.send!({ type: 'listener' }, server, () => server.close());
  });
  process.once('message', (msg: unknown) => {
    if (msg !== 'start') return fail('unexpected message from trustrun');
    const child = startCommand(a);
    // A Ctrl-C reaches this process twice (from the terminal, and forwarded by trustrun) and
    // the command once already: the same signal again within 100 ms is not forwarded again.
    const last = new Map<NodeJS.Signals, number>();
    for (const sig of FORWARDED) {
      process.on(sig, () => {
        const now = Date.now();
        if (now - (last.get(sig) ?? -Infinity) < 100) return;
        last.set(sig, now);
        try {
          child.kill(sig);
        } catch {
          // already gone
        }
      });
    }
    child.once('error', (err) =>
      fail(err.message, 'spawn-error', (err as NodeJS.ErrnoException).code),
    );
    child.once('exit', (code, signal) => {
      process.disconnect?.();
      if (signal) {
        // Ends the same way, so that trustrun reports the signal as for a command run without
        // it; Node ignores SIGPIPE and takes SIGUSR1 for its debugger, so those (and any signal
        // that does not end this process) become the shell's 128+N.
        const status = 128 + (constants.signals[signal] ?? 0);
        if (signal !== 'SIGPIPE' && signal !== 'SIGUSR1') {
          for (const sig of FORWARDED) process.removeAllListeners(sig);
          process.kill(process.pid, signal);
        }
        setTimeout(() => process.exit(status), 500).unref();
        process.exitCode = status;
        return;
      }
      process.exit(code ?? 0);
    });
  });
}

main();
