/**
 * runEnvironment and the Node preload, driven directly against a proxy on loopback: NODE_OPTIONS
 * keeps what the user had and quotes a preload path with spaces (Node must still load it), a
 * user's NODE_EXTRA_CA_CERTS is merged with ours, NO_PROXY is honoured, and a refused CONNECT
 * is an error the program sees.
 */
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NODE_PRELOAD, runEnvironment, withNodePreload } from '../../../src/ca/index.js';
import { dataPaths, type DataPaths } from '../../../src/core/index.js';
import { parseResolveRule } from '../../../src/proxy/index.js';
import { startProxy, type Harness } from '../../helpers/harness.js';
import { makeLeaf, makeTestCa } from '../../helpers/pki.js';
import { run } from '../../helpers/proc.js';
import { startUpstream, type TestUpstream } from '../../helpers/upstream.js';

const NAME = 'api.example.test';
let dir: string;
let paths: DataPaths;
let up: TestUpstream;
let proxy: Harness;
let upstreamCaFile: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'trustrun-preload-'));
  paths = dataPaths(join(dir, 'data'));
  const ca = await makeTestCa();
  up = await startUpstream({ leaf: await makeLeaf(ca, [NAME, '127.0.0.1']) });
  upstreamCaFile = join(dir, 'upstream-ca.pem');
  await writeFile(upstreamCaFile, ca.certPem);
  // Metadata level: the proxy only tunnels, so the client verifies the upstream itself.
  proxy = await startProxy({
    level: 'metadata',
    resolve: [parseResolveRule(`${NAME}:443:127.0.0.1:${up.port}`)],
  });
});
afterEach(async () => {
  await proxy.close();
  await up.close();
  await rm(dir, { recursive: true, force: true });
});

const FETCH_AND_GET = (url: string) => `
const https = require('https');
(async () => {
  const r = await fetch('${url}/fetch');
  console.log('fetch', r.status);
  await new Promise((ok, fail) => https.get('${url}/get', (res) => { res.resume(); res.on('end', () => { console.log('get', res.statusCode); ok(); }); }).on('error', fail));
  console.log('opts', process.env.NODE_OPTIONS);
})().catch((e) => { console.log('error', e.cause ? e.cause.message : e.message); process.exitCode = 3; });
`;

describe('runEnvironment + node preload', () => {
  it('a preload path with spaces, appended to NODE_OPTIONS; the user CA file is merged with ours', async () => {
    const spaced = join(dir, 'has space', 'and "quote"');
    await mkdir(spaced, { recursive: true });
    const preload = join(spaced, 'node-preload.cjs');
    // A link: Node resolves it to the real file, whose directory finds TrustRun's undici.
    await symlink(NODE_PRELOAD, preload);
    const { env, vars } = await runEnvironment({
      paths,
      proxyUrl: proxy.url,
      preload,
      baseEnv: {
        PATH: process.env.PATH,
        HOME: dir,
        NODE_OPTIONS: '--max-old-space-size=200',
        NODE_EXTRA_CA_CERTS: upstreamCaFile,
      },
    });
    expect(vars.NODE_OPTIONS).toBe(
      `--max-old-space-size=200 --require "${preload.replace(/"/g, '\\"')}"`,
    );
    expect(vars.NODE_EXTRA_CA_CERTS).toBe(join(paths.shimsDir, 'node-extra-ca.pem'));
    const r = await run(process.execPath, ['-e', FETCH_AND_GET(`https://${NAME}`)], { env });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(`fetch 200\nget 200\nopts ${vars.NODE_OPTIONS}\n`);
    expect(up.requests.map((q) => q.url)).toEqual(['/fetch', '/get']);
    // Both went through the proxy as CONNECT api.example.test:443 (the name resolves nowhere else).
    expect(proxy.recorder.connections.map((c) => `${c.host}:${c.port}`)).toEqual([
      `${NAME}:443`,
      `${NAME}:443`,
    ]);
    // Loading it twice (nested runs) does not stack.
    expect(withNodePreload(vars.NODE_OPTIONS, preload)).toBe(vars.NODE_OPTIONS);
  });

  it('NO_PROXY is honoured by fetch and https alike', async () => {
    const { env } = await runEnvironment({
      paths,
      proxyUrl: proxy.url,
      noProxy: '127.0.0.1',
      baseEnv: { PATH: process.env.PATH, HOME: dir, NODE_EXTRA_CA_CERTS: upstreamCaFile },
    });
    const r = await run(process.execPath, ['-e', FETCH_AND_GET(`https://127.0.0.1:${up.port}`)], {
      env,
    });
    expect(r.stdout).toContain('fetch 200\nget 200\n');
    expect(up.requests).toHaveLength(2);
    expect(proxy.recorder.connections).toHaveLength(0);
  });

  it('without the preload Node 20 ignores the proxy; a refused CONNECT is an error', async () => {
    const { env } = await runEnvironment({
      paths,
      proxyUrl: proxy.url,
      baseEnv: { PATH: process.env.PATH, HOME: dir, NODE_EXTRA_CA_CERTS: upstreamCaFile },
    });
    const bare = await run(process.execPath, ['-e', FETCH_AND_GET(`https://${NAME}`)], {
      env: { ...env, NODE_OPTIONS: '' },
    });
    expect(bare.stdout).toMatch(/^error .*(ENOTFOUND|EAI_AGAIN|getaddrinfo)/);
    expect(proxy.recorder.connections).toHaveLength(0);

    // Port 9 has no --resolve rule and nothing listens there: the proxy answers 502.
    const refused = await run(
      process.execPath,
      [
        '-e',
        `require('https').get('https://127.0.0.1:9/', () => {}).on('error', (e) => console.log(e.code, e.message))`,
      ],
      { env },
    );
    expect(refused.stdout).toMatch(
      /^ERR_TRUSTRUN_PROXY_REFUSED proxy 127\.0\.0\.1:\d+ refused CONNECT 127\.0\.0\.1:9: 5\d\d/,
    );
  });
});
