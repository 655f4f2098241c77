/**
 * `trustrun proxy` as users run it: its own process, real clients configured only with
 * `eval "$(trustrun ca env)"` plus HTTPS_PROXY, a local HTTPS upstream reached under a
 * real-looking name through --resolve. Then `trustrun requests` shows the redacted log.
 */
import Database from 'better-sqlite3';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireClient } from '../../helpers/clients.js';
import { startCliProxy, type CliProxy } from '../../helpers/cli-proxy.js';
import { makeLeaf, makeTestCa, type TestLeaf } from '../../helpers/pki.js';
import { CLI, run } from '../../helpers/proc.js';
import { startUpstream, type Handler, type TestUpstream } from '../../helpers/upstream.js';
import { cleanEnv } from '../../unit/ca/helpers.js';
import { findMarker } from '../../unit/store/helpers.js';
import { openStore } from '../../../src/store/index.js';

const HOST = 'api.research-data.org';
let dir: string;
let dataDir: string;
let upstream: TestUpstream;
let upstreamCaFile: string;
/** The upstream's certificate for HOST (every upstream here serves it). */
let upstreamLeaf: TestLeaf;
let proxy: CliProxy;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'trustrun-cli-'));
  dataDir = join(dir, 'data');
  const ca = await makeTestCa();
  upstreamCaFile = join(dir, 'upstream-ca.pem');
  await writeFile(upstreamCaFile, ca.certPem);
  upstreamLeaf = await makeLeaf(ca, [HOST]);
  upstream = await startUpstream({ leaf: upstreamLeaf });
  proxy = await startCliProxy(proxyArgs('headers', dataDir, upstream.port), cleanEnv());
});

afterAll(async () => {
  await proxy?.stop();
  await upstream?.close();
  await rm(dir, { recursive: true, force: true });
});

/** `trustrun proxy` arguments: LEVEL, its data directory, HOST resolved to the upstream's port. */
function proxyArgs(level: 'headers' | 'full', data: string, upstreamPort: number): string[] {
  return [
    '--level',
    level,
    '--data-dir',
    data,
    '--resolve',
    `${HOST}:443:127.0.0.1:${upstreamPort}`,
    '--upstream-ca',
    upstreamCaFile,
  ];
}

/**
 * A client runner: `script` in sh after `eval "$(trustrun ca env)"` for `data` and HTTPS_PROXY,
 * nothing else, with HOME at `home`.
 */
function shellClient(data: string, proxyUrl: string, home: string) {
  const setup = `eval "$("${process.execPath}" "${CLI}" ca env --data-dir "${data}")" && export HTTPS_PROXY=${proxyUrl} && `;
  return (script: string) => run('sh', ['-c', setup + script], { env: cleanEnv({ HOME: home }) });
}

/** Runs `script` against the shared headers-level proxy. */
const client = (script: string) => shellClient(dataDir, proxy.url, dir)(script);

async function cli(...args: string[]) {
  const r = await run(process.execPath, [CLI, ...args, '--data-dir', dataDir], { env: cleanEnv() });
  return r;
}

interface ListedRequest {
  id: string;
  method: string;
  host: string;
  status: number | null;
  url: string | null;
}

async function findRecord(path: string): Promise<ListedRequest> {
  const r = await cli('requests', '--json', '--limit', '1000');
  expect(r.code, r.stderr).toBe(0);
  const page = JSON.parse(r.stdout) as { items: ListedRequest[] };
  const hit = page.items.find((i) => i.url !== null && new URL(i.url).pathname === path);
  expect(hit, `no record for ${path} in ${r.stdout}`).toBeDefined();
  return hit!;
}

interface Shown {
  url: string;
  method: string;
  status: number;
  requestHeaders: [string, string][];
  responseHeaders: [string, string][];
  redactions: { kind: string; location: string }[];
}

async function show(id: string): Promise<Shown> {
  const r = await cli('requests', 'show', id, '--json');
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Shown;
}

function headerValue(h: [string, string][], name: string): string | undefined {
  return h.find(([n]) => n.toLowerCase() === name)?.[1];
}

const hasCurl = requireClient('curl');
const hasPython = requireClient('python3');
const hasR = requireClient('rscript');

describe('trustrun proxy --level headers with real clients (ca env + HTTPS_PROXY only)', () => {
  it('prints how to use it and warns about PHI at start-up', () => {
    expect(proxy.info.level).toBe('headers');
    expect(proxy.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(proxy.stderr()).toContain(`HTTPS_PROXY=${proxy.url}`);
    expect(proxy.stderr()).toContain('may contain PHI');
    expect(proxy.stderr()).toContain(join(dataDir, 'ca'));
  });

  it.skipIf(!hasCurl)('curl', async () => {
    const before = upstream.requests.length;
    const r = await client(
      `curl -sS --fail -H 'Authorization: Bearer curl-secret-7731' 'https://${HOST}/v1/studies?access_token=tok-curl-99&site=3'`,
    );
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, method: 'GET' });
    expect(upstream.requests.length).toBe(before + 1);
    expect(upstream.requests.at(-1)!.headers.authorization).toBe('Bearer curl-secret-7731');

    const rec = await findRecord('/v1/studies');
    expect(rec).toMatchObject({ method: 'GET', host: HOST, status: 200 });
    const shown = await show(rec.id);
    expect(shown.url).toContain('site=3');
    expect(shown.url).not.toContain('tok-curl-99');
    expect(headerValue(shown.requestHeaders, 'authorization')).toBe(
      'Bearer [REDACTED:authorization]',
    );
    expect(headerValue(shown.requestHeaders, 'user-agent')).toMatch(/^curl\//);
    expect(headerValue(shown.responseHeaders, 'set-cookie')).toMatch(/REDACTED/);
    expect(headerValue(shown.responseHeaders, 'x-upstream')).toBe('yes');
    expect(JSON.stringify(shown)).not.toContain('curl-secret-7731');
  });

  it.skipIf(!hasPython)('python3 requests', async () => {
    const py = `import requests; r = requests.get('https://${HOST}/py/items', headers={'X-Api-Key': 'py-key-5521'}); print(r.status_code)`;
    const r = await client(`python3 -c "${py}"`);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('200');
    const shown = await show((await findRecord('/py/items')).id);
    expect(headerValue(shown.requestHeaders, 'x-api-key')).toMatch(/^\[REDACTED:/);
    expect(headerValue(shown.requestHeaders, 'user-agent')).toMatch(/python-requests/);
    expect(JSON.stringify(shown)).not.toContain('py-key-5521');
  });

  it.skipIf(!hasR)('Rscript with httr', async () => {
    const script = join(dir, 'analysis.R');
    await writeFile(
      script,
      `library(httr)\nr <- GET("https://${HOST}/r/items", add_headers(Authorization = "Bearer r-secret-4410"))\ncat(status_code(r), "\\n")\n`,
    );
    const r = await client(`Rscript "${script}"`);
    expect(r.stdout.trim(), r.stderr).toBe('200');
    const shown = await show((await findRecord('/r/items')).id);
    expect(shown.method).toBe('GET');
    expect(headerValue(shown.requestHeaders, 'authorization')).toBe(
      'Bearer [REDACTED:authorization]',
    );
    expect(headerValue(shown.requestHeaders, 'user-agent')).toMatch(/httr/);
  });

  it.skipIf(!hasCurl)(
    'lists requests as a table, and says so when a request id does not exist',
    async () => {
      const made = await client(`curl -sS --fail -o /dev/null 'https://${HOST}/v1/table'`);
      expect(made.stderr).toBe('');
      await findRecord('/v1/table');
      const r = await cli('requests', '--host', '*.research-data.org');
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.split('\n')[0]).toMatch(/^TIME\s+ID\s+METHOD\s+HOST\s+PATH\s+STATUS/);
      expect(r.stdout).toContain(HOST);
      const none = await cli('requests', '--host', 'nothing.example');
      expect(none.stdout).toBe('no requests match\n');
      const missing = await cli('requests', 'show', 'zzzzzzzzz000000000000');
      expect(missing.code).toBe(2);
      expect(missing.stderr.trim()).toBe("trustrun: no request with id 'zzzzzzzzz000000000000'");
    },
  );
});

/**
 * `trustrun proxy --level full` with its own temporary folder (`own`, data directory `own`/data)
 * and its own upstream for HOST; `client(script)` runs `script` in sh pointed at it (`eval
 * "$(trustrun ca env)"` plus HTTPS_PROXY); `close()` stops both and removes the folder.
 */
async function fullProxy(prefix: string, handler?: Handler) {
  const own = await mkdtemp(join(tmpdir(), prefix));
  const up = await startUpstream({ leaf: upstreamLeaf, handler });
  const data = join(own, 'data');
  const p = await startCliProxy(proxyArgs('full', data, up.port), cleanEnv());
  return {
    own,
    up,
    p,
    data,
    client: shellClient(data, p.url, own),
    close: async () => {
      await p.stop();
      await up.close();
      await rm(own, { recursive: true, force: true });
    },
  };
}

describe('trustrun proxy --level full keeps a marker out of every file', () => {
  it.skipIf(!hasCurl)(
    'marker in URL, header and body: recorded, but nowhere in the data directory',
    async () => {
      const marker = `TRM-${Date.now().toString(36)}-z9q4w`;
      const { up, p, data, client, close } = await fullProxy('trustrun-marker-');
      try {
        const r = await client(
          `curl -sS --fail -H 'X-Study: ${marker}' --data '{"note":"${marker}"}' -H 'content-type: application/json' 'https://${HOST}/up/${marker}?q=${marker}'`,
        );
        expect(r.stderr).toBe('');
        expect(up.requests.at(-1)!.body.toString()).toContain(marker);
        expect(await p.stop('SIGINT')).toBe(0);
        // It was recorded (readable through the store)…
        const list = await run(process.execPath, [CLI, 'requests', '--json', '--data-dir', data], {
          env: cleanEnv(),
        });
        expect(list.stdout).toContain(`/up/${marker}`);
        // …and yet no file in the data directory holds it in any encoding.
        expect(findMarker(data, marker)).toEqual([]);
      } finally {
        await close();
      }
    },
  );
});

describe('trustrun proxy --level full records a long body in parts', () => {
  it.skipIf(!hasCurl)(
    'a 600 KiB upload echoed back: both bodies read back whole from the store, sealed in parts',
    async () => {
      const { own, p, data, client, close } = await fullProxy(
        'trustrun-parts-',
        (_req, res, body) => {
          res.writeHead(200, { 'content-type': 'application/octet-stream' });
          res.end(body);
        },
      );
      try {
        // Every 8-byte word names its offset: a part out of place would show.
        const body = Buffer.alloc(600 * 1024);
        for (let i = 0; i < body.length; i += 8) body.write(i.toString(36).padStart(8, '.'), i);
        const bodyFile = join(own, 'body.bin');
        await writeFile(bodyFile, body);
        const out = join(own, 'echo.bin');
        const r = await client(
          `curl -sS --fail --data-binary @'${bodyFile}' -o '${out}' 'https://${HOST}/upload'`,
        );
        expect(r.stderr).toBe('');
        expect((await readFile(out)).equals(body)).toBe(true);
        expect(await p.stop('SIGINT')).toBe(0);

        const store = await openStore({ dataDir: data });
        try {
          const [row] = store.listRequests().items;
          const rec = store.getRequest(row!.id)!;
          expect(rec.requestBody!.equals(body)).toBe(true);
          expect(rec.responseBody!.equals(body)).toBe(true);
          expect(rec.requestBodyTruncated).toBe(false);
        } finally {
          await store.close();
        }
        const db = new Database(join(data, 'trustrun.db'), { readonly: true });
        try {
          // 600 KiB in 256 KiB parts: three parts per body, none of it in the request row.
          expect(
            db.prepare('SELECT field, COUNT(*) AS n FROM body_parts GROUP BY field').all(),
          ).toEqual([
            { field: 'request_body', n: 3 },
            { field: 'response_body', n: 3 },
          ]);
          expect(db.prepare('SELECT request_body, response_body FROM requests').all()).toEqual([
            { request_body: null, response_body: null },
          ]);
        } finally {
          db.close();
        }
      } finally {
        await close();
      }
    },
  );
});
