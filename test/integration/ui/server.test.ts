/** `trustrun server` as a user runs it: the built CLI, a real socket on 127.0.0.1. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startApiServer } from '../../../src/api/index.js';
import { openStore } from '../../../src/store/index.js';
import { CLI, run } from '../../helpers/proc.js';

const closers: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

function tempDir() {
  const dir = mkdtempSync(join(tmpdir(), 'tr-server-'));
  closers.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface StartInfo {
  url: string;
  oneTimeUrl: string;
  tokenFile: string;
  dataDir: string;
}

function startCli(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ child: ChildProcess; json: StartInfo; stderr: () => string }> {
  const child = spawn(process.execPath, [CLI, 'server', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
  closers.push(
    () =>
      new Promise<void>((r) => {
        if (child.exitCode !== null || child.signalCode !== null) return r();
        child.once('close', () => r());
        child.kill('SIGKILL');
      }),
  );
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no start-up output; stderr: ${err}`)), 20_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      try {
        const json = JSON.parse(out) as StartInfo;
        clearTimeout(timer);
        resolve({ child, json, stderr: () => err });
      } catch {
        // not complete yet
      }
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited ${code}: ${err}`));
    });
  });
}

describe('trustrun server', () => {
  it('serves on 127.0.0.1, prints {url, oneTimeUrl} with --json, makes a 0600 token, stops on SIGTERM', async () => {
    const dir = tempDir();
    const { child, json, stderr } = await startCli(['--port', '0', '--data-dir', dir, '--json']);
    expect(json.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(json.oneTimeUrl).toMatch(new RegExp(`^${json.url}/auth\\?token=[A-Za-z0-9_-]{43}$`));
    await expect.poll(stderr).toContain(json.oneTimeUrl);
    const tokenFile = join(dir, 'api-token');
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    const token = readFileSync(tokenFile, 'utf8').trim();

    expect((await fetch(`${json.url}/api/sessions`)).status).toBe(401);
    const ok = await fetch(`${json.url}/api/sessions`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ items: [], nextCursor: null });
    // The one-time link works once, over a real socket.
    const ex = await fetch(json.oneTimeUrl, { redirect: 'manual' });
    expect(ex.status).toBe(303);
    const cookie = ex.headers.get('set-cookie')!.split(';')[0]!;
    expect((await fetch(`${json.url}/api/sessions`, { headers: { cookie } })).status).toBe(200);
    expect((await fetch(json.oneTimeUrl, { redirect: 'manual' })).status).toBe(401);

    const code = await new Promise<number | null>((r) => {
      child.once('close', r);
      child.kill('SIGTERM');
    });
    expect(code).toBe(0);
  });

  it('takes its port from TRUSTRUN_WEB_PORT when --port is not given; a bad value is a usage error', async () => {
    const dir = tempDir();
    const probe: Server = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const env = { ...process.env, TRUSTRUN_WEB_PORT: String(port) };
    const { json } = await startCli(['--data-dir', dir, '--json'], env);
    expect(json.url).toBe(`http://127.0.0.1:${port}`);
    const bad = await run(process.execPath, [CLI, 'server', '--data-dir', dir], {
      env: { ...process.env, TRUSTRUN_WEB_PORT: 'eighty' },
    });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('trustrun: TRUSTRUN_WEB_PORT=eighty: not a port (0-65535)\n');
  });

  it('exits 2 with a one-line message when the port is taken', async () => {
    const dir = tempDir();
    const blocker: Server = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    closers.push(() => new Promise<void>((r) => blocker.close(() => r())));
    const port = (blocker.address() as { port: number }).port;
    const r = await run(process.execPath, [
      CLI,
      'server',
      '--port',
      String(port),
      '--data-dir',
      dir,
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`port ${port} on 127\\.0\\.0\\.1 is already in use`));
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('startApiServer listens on loopback only', async () => {
    const dir = tempDir();
    const store = await openStore({ dataDir: dir });
    closers.push(() => store.close());
    for (const host of ['0.0.0.0', '192.168.1.10', 'localhost']) {
      await expect(startApiServer({ store, dataDir: dir, port: 0, host })).rejects.toThrow(
        /loopback only/,
      );
    }
    const api = await startApiServer({ store, dataDir: dir, port: 0 });
    closers.push(() => api.close());
    expect(api.url).toBe(`http://127.0.0.1:${api.port}`);
    // A request naming another Host over the real socket is refused.
    const token = readFileSync(join(dir, 'api-token'), 'utf8').trim();
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(
        `${api.url}/api/sessions`,
        { headers: { authorization: `Bearer ${token}`, host: 'rebind.example:80' } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(403);
  });
});
