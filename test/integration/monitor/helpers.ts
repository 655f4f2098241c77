import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isAlive } from '../../../src/monitor/index.js';

/** A local TCP server that keeps every accepted socket (by the client's port). */
export interface LocalServer {
  port: number;
  accepted: Map<number, Socket>;
  /** Resolves with the accepted socket once `n` connections arrived. */
  waitFor(n: number, timeoutMs?: number): Promise<Socket[]>;
  close(): Promise<void>;
}

export async function localServer(): Promise<LocalServer> {
  const accepted = new Map<number, Socket>();
  const waiters: Array<() => void> = [];
  const server: Server = createServer((s) => {
    s.on('error', () => {});
    accepted.set(s.remotePort!, s);
    for (const w of waiters.splice(0)) w();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    accepted,
    async waitFor(n, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (accepted.size < n) {
        if (Date.now() > deadline) throw new Error(`only ${accepted.size} of ${n} connections`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 100);
        });
      }
      return [...accepted.values()];
    },
    async close() {
      for (const s of accepted.values()) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** Children started by a test; killed (with their trees) in afterEach. */
export class Kids {
  private readonly list: ChildProcess[] = [];
  add(c: ChildProcess): ChildProcess {
    this.list.push(c);
    return c;
  }
  node(script: string): ChildProcess {
    return this.add(spawn(process.execPath, ['-e', script], { stdio: 'ignore' }));
  }
  sh(script: string): ChildProcess {
    return this.add(spawn('sh', ['-c', script], { stdio: 'ignore' }));
  }
  killAll(): void {
    for (const c of this.list) if (c.pid && isAlive(c.pid)) c.kill('SIGKILL');
    this.list.length = 0;
  }
}

/** Node code: wait `delayMs`, connect to 127.0.0.1:port, hold `holdMs`, exit. */
export function connectScript(port: number, delayMs = 300, holdMs = 800): string {
  return `setTimeout(() => { const s = require('net').connect(${port}, '127.0.0.1');
    s.on('error', () => {}); setTimeout(() => process.exit(0), ${holdMs}); }, ${delayMs});`;
}

export function exited(c: ChildProcess): Promise<void> {
  return new Promise((r) =>
    c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', () => r()),
  );
}

export const PYTHON: string | null = (() => {
  const r = spawnSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
})();

/** A temp dir holding a version-2 policy file; removed by the returned cleanup. */
export function policyFile(yaml: string): { file: string; dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'trustrun-mon-'));
  const file = join(dir, 'policy.yaml');
  writeFileSync(file, yaml);
  return { file, dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
