/**
 * `trustrun proxy --api-port N`: the API and web UI beside a running proxy, on the same store;
 * the proxy refuses to proxy to the API's port, also when it was chosen with `--api-port 0`.
 */
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireClient } from '../../helpers/clients.js';
import { startCliProxy, type CliProxy } from '../../helpers/cli-proxy.js';
import { run } from '../../helpers/proc.js';
import { cleanEnv } from '../../unit/ca/helpers.js';

let dir: string;
let proxy: CliProxy;
let apiPort: number;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'trustrun-proxy-api-'));
  proxy = await startCliProxy(['--data-dir', join(dir, 'data'), '--api-port', '0'], cleanEnv());
  const info = proxy.info as CliProxy['info'] & { api: { url: string } };
  apiPort = Number(new URL(info.api.url).port);
});

afterAll(async () => {
  await proxy?.stop();
  await rm(dir, { recursive: true, force: true });
});

const hasCurl = requireClient('curl');

describe('trustrun proxy --api-port', () => {
  it('serves the API on 127.0.0.1 with the data directory token, showing the running session', async () => {
    const info = proxy.info as CliProxy['info'] & { api: { url: string; oneTimeUrl: string } };
    expect(info.api.url).toBe(`http://127.0.0.1:${apiPort}`);
    expect(info.api.oneTimeUrl).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:${apiPort}/`));
    expect(proxy.stderr()).toContain(info.api.oneTimeUrl);
    const token = readFileSync(join(dir, 'data', 'api-token'), 'utf8').trim();
    const res = await fetch(`${info.api.url}/api/sessions/${info.session}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ id: info.session, kind: 'proxy', status: 'running' });
    const anonymous = await fetch(`${info.api.url}/api/sessions`);
    expect(anonymous.status).toBe(401);
  });

  it.skipIf(!hasCurl)('refuses to proxy a request to the API port (loop guard)', async () => {
    const r = await run(
      'curl',
      [
        '-s',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code}',
        '--proxy',
        proxy.url,
        `http://127.0.0.1:${apiPort}/api/sessions`,
      ],
      { env: cleanEnv() },
    );
    expect(r.stdout).toBe('403');
  });

  it('exits 2 with one line when the API port is taken', async () => {
    const r = await run(
      process.execPath,
      [
        join(import.meta.dirname, '../../../bin/trustrun.js'),
        'proxy',
        '--port',
        '0',
        '--data-dir',
        join(dir, 'd2'),
        '--api-port',
        String(apiPort),
      ],
      { env: cleanEnv() },
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`port ${apiPort} .*already in use`));
    expect(r.stderr).toContain('--api-port 0 for any free port');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('a proxy port in use: exit 2, and no session is left in the history', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as AddressInfo).port;
    const cli = join(import.meta.dirname, '../../../bin/trustrun.js');
    const dataDir = join(dir, 'd3');
    try {
      const r = await run(
        process.execPath,
        [cli, 'proxy', '--port', String(port), '--data-dir', dataDir],
        { env: cleanEnv() },
      );
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`port ${port} on 127\\.0\\.0\\.1 is already in use`));
    } finally {
      taken.close();
    }
    const h = await run(process.execPath, [cli, 'history', '--json', '--data-dir', dataDir], {
      env: cleanEnv(),
    });
    expect(JSON.parse(h.stdout)).toEqual([]);
  });
});
