import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProxyAgent } from 'undici';
import { openStore } from '../../../src/store/index.js';
import { makeLeaf, makeTestCa } from '../../helpers/pki.js';
import { CLI } from '../../helpers/proc.js';
import { startUpstream, type TestUpstream } from '../../helpers/upstream.js';

/**
 * Audit before forward, end to end: a real `trustrun proxy` process under concurrent load is
 * killed with SIGKILL; every request the (counting) upstream received must then have its record
 * in the store, found by its unique path and marker header.
 */
const HOST = 'api.audit.test';
const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function readJson(
  child: ChildProcess,
  timeoutMs: number,
): Promise<{ listen: string; ca?: string }> {
  return new Promise((resolve, reject) => {
    let buf = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`no JSON from the proxy: ${err}`)), timeoutMs);
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const onData = (d: Buffer) => {
      buf += d.toString();
      try {
        const v = JSON.parse(buf) as { listen: string; ca?: string };
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        resolve(v);
      } catch {
        // not complete yet
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the proxy exited (${code ?? signal}) before it listened: ${err}`));
    });
  });
}

describe('audit before forward', () => {
  it('after kill -9 under load, every request the upstream saw has its record', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tr-audit-kill-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const ca = await makeTestCa();
    writeFileSync(join(dir, 'upstream-ca.pem'), ca.certPem);
    const upstream: TestUpstream = await startUpstream({ leaf: await makeLeaf(ca, [HOST]) });
    cleanups.push(() => upstream.close());
    const dataDir = join(dir, 'data');

    const proxy = spawn(
      process.execPath,
      [
        CLI,
        'proxy',
        '--level',
        'headers',
        '--port',
        '0',
        '--json',
        '--data-dir',
        dataDir,
        '--resolve',
        `${HOST}:443:127.0.0.1:${upstream.port}`,
        '--upstream-ca',
        join(dir, 'upstream-ca.pem'),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TRUSTRUN_HOME: dataDir } },
    );
    cleanups.push(() => {
      if (proxy.exitCode === null && proxy.signalCode === null) proxy.kill('SIGKILL');
    });
    const info = await readJson(proxy, 30_000);
    const proxyCa = readFileSync(info.ca ?? join(dataDir, 'ca', 'ca.pem'), 'utf8');

    // Concurrent load: 16 clients, each request with its own path and marker header.
    const agent = new ProxyAgent({
      uri: info.listen,
      connections: 16,
      requestTls: { ca: proxyCa },
    });
    cleanups.push(() => agent.destroy());
    let next = 0;
    let ok = 0;
    let failed = 0;
    let stop = false;
    const worker = async () => {
      while (!stop) {
        const n = next++;
        try {
          const res = await agent.request({
            origin: `https://${HOST}`,
            path: `/r/${n}`,
            method: 'GET',
            headers: { 'x-audit-marker': `m-${n}` },
          });
          await res.body.arrayBuffer();
          if (res.statusCode === 200) ok++;
          else failed++;
        } catch {
          failed++;
          if (proxy.signalCode !== null) return;
        }
      }
    };
    const workers = Array.from({ length: 16 }, worker);

    // Kill mid-load: after a few hundred requests have completed, while others are in flight.
    const deadline = Date.now() + 20_000;
    while (ok < 300 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(ok).toBeGreaterThanOrEqual(300);
    proxy.kill('SIGKILL');
    await new Promise<void>((r) =>
      proxy.signalCode !== null ? r() : proxy.once('exit', () => r()),
    );
    stop = true;
    await Promise.all(workers);
    // Let the upstream finish reading whatever reached it before the kill.
    await new Promise((r) => setTimeout(r, 300));
    expect(failed).toBeGreaterThan(0); // the kill really happened while requests were in flight

    const seen = upstream.requests.filter((r) => r.url.startsWith('/r/'));
    expect(seen.length).toBeGreaterThanOrEqual(ok);

    const store = await openStore({ dataDir });
    cleanups.push(() => store.close());
    const sessions = store.listSessions({ limit: 10 }).items;
    expect(sessions).toHaveLength(1);
    expect(sessions[0]!.status).toBe('interrupted');
    const recorded = new Map<string, string | undefined>();
    let cursor: string | null = null;
    do {
      const page = store.listRequests({ sessionId: sessions[0]!.id, limit: 1000, cursor });
      for (const row of page.items) {
        const detail = store.getRequest(row.id)!;
        const marker = detail.requestHeaders.find(([k]) => k.toLowerCase() === 'x-audit-marker');
        recorded.set(detail.url, marker?.[1]);
      }
      cursor = page.nextCursor;
    } while (cursor);

    const missing = seen.filter((r) => recorded.get(r.url) !== r.headers['x-audit-marker']);
    expect(missing.map((r) => r.url)).toEqual([]);
    // Every recorded request was forwarded or still in flight: never more records than sent.
    expect(recorded.size).toBeLessThanOrEqual(next);
    expect(recorded.size).toBeGreaterThanOrEqual(seen.length);
  }, 60_000);
});
