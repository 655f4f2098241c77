import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { CLI } from './proc.js';

/** `trustrun proxy` running as its own process, as a user starts it. */
export interface CliProxy {
  child: ChildProcess;
  /** The start-up JSON (`--json`). */
  info: { listen: string; level: string; session: string; dataDir: string; ca: string };
  url: string;
  /** Everything written on stderr so far. */
  stderr(): string;
  /** Sends a signal and waits for the process to end; resolves with its exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export function startCliProxy(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<CliProxy> {
  const child = spawn(process.execPath, [CLI, 'proxy', '--port', '0', '--json', ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  return new Promise((resolve, reject) => {
    let json = '';
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      json += line + '\n';
      if (line !== '}') return;
      lines.close();
      const info = JSON.parse(json) as CliProxy['info'];
      // The human start-up lines follow the JSON on stderr; wait for the last of them.
      const ready = () => err.includes('use it with:');
      const wait = (): Promise<void> =>
        ready() ? Promise.resolve() : new Promise((r) => setTimeout(r, 10)).then(wait);
      void wait().then(() =>
        resolve({
          child,
          info,
          url: info.listen,
          stderr: () => err,
          async stop(signal = 'SIGINT') {
            if (child.exitCode === null && child.signalCode === null) child.kill(signal);
            return exited;
          },
        }),
      );
    });
    void exited.then((code) => reject(new Error(`trustrun proxy exited with ${code}: ${err}`)));
  });
}
