import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseResolveRule } from '../../../src/proxy/index.js';
import { startProxy, type Harness } from '../../helpers/harness.js';
import { makeLeaf, makeTestCa, type TestCa } from '../../helpers/pki.js';
import { startUpstream } from '../../helpers/upstream.js';
import { run } from '../../helpers/proc.js';
import { requireClient } from '../../helpers/clients.js';

let upstreamCa: TestCa;
let dir: string;
const closers: (() => Promise<void>)[] = [];

beforeAll(async () => {
  upstreamCa = await makeTestCa();
  dir = mkdtempSync(join(tmpdir(), 'tr-proxy-'));
  writeFileSync(join(dir, 'upstream-ca.pem'), upstreamCa.certPem);
  return () => rmSync(dir, { recursive: true, force: true });
});

afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

async function setup(level: 'metadata' | 'headers' | 'full', name = 'api.example.test') {
  const upstream = await startUpstream({ leaf: await makeLeaf(upstreamCa, [name]) });
  const h = await startProxy({
    level,
    upstreamCa: [upstreamCa.certPem],
    resolve: [parseResolveRule(`${name}:443:127.0.0.1:${upstream.port}`)],
  });
  closers.push(
    () => upstream.close(),
    () => h.close(),
  );
  writeFileSync(join(dir, 'proxy-ca.pem'), h.proxyCa.certPem);
  return { upstream, h };
}

function curl(h: Harness, url: string, extra: string[] = [], ca = join(dir, 'proxy-ca.pem')) {
  return run('curl', [
    '-sS',
    '--max-time',
    '20',
    '--proxy',
    h.url,
    '--cacert',
    ca,
    '-w',
    '\n%{http_code}',
    ...extra,
    url,
  ]);
}

describe('headers level with curl', () => {
  it('forwards a request under a real-looking name and records method, path and headers', async () => {
    if (!requireClient('curl')) return;
    const { upstream, h } = await setup('headers');
    const r = await curl(h, 'https://api.example.test/v1/items?id=7', [
      '-H',
      'Authorization: Bearer secret-token-123',
    ]);
    expect(r.stderr).toBe('');
    const [body, code] = r.stdout.split('\n');
    expect(code).toBe('200');
    expect(JSON.parse(body!)).toMatchObject({ ok: true, method: 'GET', url: '/v1/items?id=7' });
    expect(upstream.requests).toHaveLength(1);
    expect(upstream.requests[0]!.headers.authorization).toBe('Bearer secret-token-123');
    await h.recorder.until(() => h.recorder.requests[0]?.outcome !== undefined);
    const rec = h.recorder.requests[0]!;
    expect(rec).toMatchObject({
      method: 'GET',
      scheme: 'https',
      host: 'api.example.test',
      port: 443,
      url: '/v1/items?id=7',
      status: 200,
      outcome: 'ok',
    });
    expect(rec.requestHeaders).toContainEqual(['Authorization', 'Bearer secret-token-123']);
    expect(rec.responseHeaders).toContainEqual(['x-upstream', 'yes']);
    expect(h.recorder.connections[0]).toMatchObject({
      host: 'api.example.test',
      port: 443,
      mode: 'intercept',
      ip: '127.0.0.1',
      sni: 'api.example.test',
    });
  });

  it('answers 502 and forwards nothing when the upstream certificate cannot be verified', async () => {
    if (!requireClient('curl')) return;
    const cases: [string, () => Promise<Awaited<ReturnType<typeof makeLeaf>>>, RegExp][] = [
      ['self-signed', () => makeLeaf(null, ['bad.example.test']), /SELF_SIGNED|self.signed/i],
      [
        'expired',
        () =>
          makeLeaf(upstreamCa, ['bad.example.test'], {
            notBefore: new Date(Date.now() - 10 * 86400_000),
            notAfter: new Date(Date.now() - 86400_000),
          }),
        /EXPIRED|expired/i,
      ],
      [
        'wrong host',
        () => makeLeaf(upstreamCa, ['other.example.test']),
        /ALTNAME|does not match|Hostname/i,
      ],
      [
        'unknown CA',
        async () => makeLeaf(await makeTestCa('Stranger CA'), ['bad.example.test']),
        /UNABLE_TO_VERIFY|unable to verify|issuer/i,
      ],
    ];
    for (const [label, leaf, reason] of cases) {
      const upstream = await startUpstream({ leaf: await leaf() });
      const h = await startProxy({
        level: 'headers',
        upstreamCa: [upstreamCa.certPem],
        resolve: [parseResolveRule(`bad.example.test:443:127.0.0.1:${upstream.port}`)],
      });
      writeFileSync(join(dir, 'proxy-ca.pem'), h.proxyCa.certPem);
      try {
        const r = await curl(h, 'https://bad.example.test/secret', ['-d', 'payload=1']);
        expect(r.stdout.split('\n').pop(), label).toBe('502');
        expect(r.stdout, label).toMatch(reason);
        expect(upstream.requests, label).toHaveLength(0);
        await h.recorder.until(() => h.recorder.requests[0]?.outcome !== undefined);
        expect(h.recorder.requests[0]!.outcome, label).toBe('upstream_tls');
        expect(h.recorder.requests[0]!.reason, label).toMatch(reason);
      } finally {
        await h.close();
        await upstream.close();
      }
    }
  });

  it('refuses a request whose Host names another host than the CONNECT target, never dialing it', async () => {
    if (!requireClient('curl')) return;
    const a = await startUpstream({ leaf: await makeLeaf(upstreamCa, ['a.example.test']) });
    const b = await startUpstream({ leaf: await makeLeaf(upstreamCa, ['b.example.test']) });
    const h = await startProxy({
      level: 'headers',
      upstreamCa: [upstreamCa.certPem],
      resolve: [
        parseResolveRule(`a.example.test:443:127.0.0.1:${a.port}`),
        parseResolveRule(`b.example.test:443:127.0.0.1:${b.port}`),
      ],
    });
    closers.push(
      () => a.close(),
      () => b.close(),
      () => h.close(),
    );
    writeFileSync(join(dir, 'proxy-ca.pem'), h.proxyCa.certPem);
    const r = await curl(h, 'https://a.example.test/x', ['-H', 'Host: b.example.test']);
    expect(r.stdout.split('\n').pop()).toBe('400');
    expect(a.requests).toHaveLength(0);
    expect(b.connections).toBe(0);
    await h.recorder.until(() => h.recorder.requests[0]?.outcome !== undefined);
    expect(h.recorder.requests[0]).toMatchObject({
      outcome: 'identity_mismatch',
      host: 'a.example.test',
    });
  });
});

describe('metadata level', () => {
  it('tunnels for a client that does not trust the proxy CA and records SNI and ALPN', async () => {
    if (!requireClient('curl')) return;
    const { upstream, h } = await setup('metadata');
    const r = await curl(h, 'https://api.example.test/hello', [], join(dir, 'upstream-ca.pem'));
    expect(r.stdout.split('\n').pop()).toBe('200');
    expect(upstream.requests[0]!.url).toBe('/hello');
    await h.recorder.until(() => h.recorder.connections[0]?.endedAt !== undefined);
    const c = h.recorder.connections[0]!;
    expect(c).toMatchObject({
      mode: 'tunnel',
      host: 'api.example.test',
      sni: 'api.example.test',
      outcome: 'ok',
    });
    expect(c.alpn).toContain('http/1.1');
    expect(c.bytesUp).toBeGreaterThan(100);
    expect(c.bytesDown).toBeGreaterThan(100);
    expect(h.recorder.requests).toHaveLength(0);
  });
});
