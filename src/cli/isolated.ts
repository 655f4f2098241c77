/**
 * The process that runs the command of `trustrun run --isolate`, inside the command's network
 * namespace (started by unshare(1) and sh(1), which brought the loopback up, with an IPC channel
 * to trustrun). It opens the proxy's port on 127.0.0.1 there and hands that listening socket to
 * trustrun, whose proxy then accepts the command's connections itself (no bytes pass through
 * this process). Once trustrun says so it starts the command, forwards signals to it, tells
 * trustrun how it ended and ends too.
 *
 * Arguments: --port N -- FILE ARGV0 [ARGS...]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { constants } from 'node:os';
import { ESCAPE_CAPS } from './capabilities.js';

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];

/** Exit status when the command could not be started (trustrun is told why). */
const SETUP_FAILED = 125;

/** Tells trustrun `msg` (once it is out), then exits with `status`. */
function report(msg: object, status: number): void {
  process.exitCode = status;
  if (!process.connected) process.exit(status);
  process.send!(msg, () => process.exit(status));
}

/**
 * The escape capabilities this process still has in any set it could hand to the command (a
 * drop can be skipped silently, e.g. without CAP_SETPCAP); empty when none.
 */
function keptCapabilities(): string[] {
  let status: string;
  try {
    status = readFileSync('/proc/self/status', 'utf8');
  } catch {
    return ['(unknown: /proc/self/status cannot be read)'];
  }
  const kept: string[] = [];
  for (const set of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) {
    const hex = new RegExp(`^${set}:\\s*([0-9a-f]+)$`, 'm').exec(status)?.[1];
    if (hex === undefined) continue;
    const value = BigInt(`0x${hex}`);
    if (Object.values(ESCAPE_CAPS).some((bit) => (value >> BigInt(bit)) & 1n)) kept.push(set);
  }
  return kept;
}

function main(): void {
  const argv = process.argv.slice(2);
  const end = argv.indexOf('--');
  const port = Number(argv[argv.indexOf('--port') + 1]);
  const [file, argv0, ...args] = argv.slice(end + 1);
  if (end < 0 || !file || argv0 === undefined || !Number.isInteger(port)) {
    return report(
      { type: 'error', message: 'usage: isolated --port N -- FILE ARGV0 [ARGS...]' },
      SETUP_FAILED,
    );
  }
  // As root, the command must not be able to leave the namespace (setns, moving interfaces,
  // tracing trustrun): if the drop did not take, nothing runs.
  if (process.getuid?.() === 0) {
    const kept = keptCapabilities();
    if (kept.length > 0) {
      return report(
        {
          type: 'error',
          message: `the capabilities that could leave the namespace could not be dropped (still in ${kept.join(', ')}); not running the command`,
        },
        SETUP_FAILED,
      );
    }
  }
  // Signals that come before the command exists are kept for it (a Ctrl-C reaches this
  // process and trustrun alike; trustrun then does not start it).
  let child: ChildProcess | null = null;
  const pending: NodeJS.Signals[] = [];
  // A Ctrl-C reaches this process twice (from the terminal, and forwarded by trustrun) and the
  // command once already: the same signal again within 100 ms is not forwarded again.
  const last = new Map<NodeJS.Signals, number>();
  const forward = (sig: NodeJS.Signals): void => {
    if (!child) {
      pending.push(sig);
      return;
    }
    const now = Date.now();
    if (now - (last.get(sig) ?? -Infinity) < 100) return;
    last.set(sig, now);
    try {
      child.kill(sig);
    } catch {
      // already gone
    }
  };
  for (const sig of FORWARDED) process.on(sig, () => forward(sig));

  const server = createServer();
  server.once('error', (err) =>
    report(
      { type: 'error', message: `cannot listen on 127.0.0.1:${port}: ${err.message}` },
      SETUP_FAILED,
    ),
  );
  server.listen({ host: '127.0.0.1', port, exclusive: true }, () => {
    // trustrun's proxy accepts on this socket from now on; this process keeps no copy of it.
    process.send!({ type: 'listener' }, server, () => server.close());
  });
  process.once('message', (msg: unknown) => {
    if (msg !== 'start') {
      return report({ type: 'error', message: 'unexpected message from trustrun' }, SETUP_FAILED);
    }
    let c: ChildProcess;
    try {
      c = spawn(file, args, { argv0, stdio: 'inherit' });
    } catch (err) {
      // Node throws at once for some exec failures (ETXTBSY …) instead of emitting 'error'.
      return report(
        {
          type: 'spawn-error',
          message: (err as Error).message,
          code: (err as NodeJS.ErrnoException).code,
        },
        SETUP_FAILED,
      );
    }
    child = c;
    c.once('spawn', () => {
      process.send?.({ type: 'started', pid: c.pid });
      for (const sig of pending.splice(0)) forward(sig);
    });
    c.once('error', (err) =>
      report(
        { type: 'spawn-error', message: err.message, code: (err as NodeJS.ErrnoException).code },
        SETUP_FAILED,
      ),
    );
    c.once('exit', (code, signal) => {
      // How the command ended goes to trustrun as a message: this process does not re-raise
      // the signal (Node ignores SIGPIPE and SIGXFSZ, and a SIGSEGV would dump node's core over
      // the command's); its own status is the shell's 128+N.
      const status = signal ? 128 + (constants.signals[signal] ?? 0) : (code ?? 0);
      report({ type: 'ended', code, signal }, status);
    });
  });
}

main();
