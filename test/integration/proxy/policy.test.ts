import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { parsePolicy } from '../../../src/policy/index.js';
import { parseResolveRule } from '../../../src/proxy/index.js';
import { startProxy, type Harness } from '../../helpers/harness.js';
import { makeLeaf, makeTestCa, type TestCa } from '../../helpers/pki.js';
import { startUpstream, type TestUpstream } from '../../helpers/upstream.js';
import { run } from '../../helpers/proc.js';
import { requireClient } from '../../helpers/clients.js';

const NAMES = [
  'api.allowed.test',
  'blocked.example.test',
  'other.example.test',
  'myorg.openai.azure.com',
  'alerting.example.test',
];
let ca: TestCa;
let dir: string;
const closers: (() => Promise<void>)[] = [];
beforeAll(async () => {
  ca = await makeTestCa();
  dir = mkdtempSync(join(tmpdir(), 'tr-policy-'));
  return () => rmSync(dir, { recursive: true, force: true });
});
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

/** One upstream per name, each counting its own connections, all reached through --resolve. */
async function world(policyText: string, level: 'metadata' | 'headers') {
  const ups = new Map<string, TestUpstream>();
  for (const n of NAMES) ups.set(n, await startUpstream({ leaf: await makeLeaf(ca, [n]) }));
  const policy = await parsePolicy(policyText, join(dir, 'policy.yaml'), { warn: () => undefined });
  const h = await startProxy({
    level,
    policy,
    upstreamCa: [ca.certPem],
    resolve: NAMES.map((n) => parseResolveRule(`${n}:443:127.0.0.1:${ups.get(n)!.port}`)),
  });
  closers.push(async () => {
    await h.close();
    for (const u of ups.values()) await u.close();
  });
  writeFileSync(join(dir, 'proxy-ca.pem'), h.proxyCa.certPem);
  writeFileSync(join(dir, 'upstream-ca.pem'), ca.certPem);
  return { h, ups };
}

async function curl(h: Harness, url: string, level: 'metadata' | 'headers', extra: string[] = []) {
  const cafile = join(dir, level === 'metadata' ? 'upstream-ca.pem' : 'proxy-ca.pem');
  const r = await run('curl', [
    '-sS',
    '--max-time',
    '20',
    '--proxy',
    h.url,
    '--cacert',
    cafile,
    '-o',
    '/dev/null',
    '-w',
    '%{http_code} %{http_connect}',
    ...extra,
    url,
  ]);
  const [code, connectCode] = r.stdout.split(' ');
  return { code, connectCode, stderr: r.stderr };
}

const V2 = `
version: 2
name: test-v2
rules:
  - match: "*.allowed.test"
    action: allow
  - match: blocked.example.test
    action: block
    reason: not approved for PHI
  - match: alerting.example.test
    action: alert
    reason: review this
defaults:
  action: block
`;

describe('enforcement with a version 2 policy (curl)', () => {
  for (const level of ['metadata', 'headers'] as const) {
    it(`${level}: blocked and default-blocked hosts get 403 at CONNECT and their upstream sees no connection`, async () => {
      if (!requireClient('curl')) return;
      const { h, ups } = await world(V2, level);
      expect((await curl(h, 'https://api.allowed.test/ok', level)).code).toBe('200');
      const blocked = await curl(h, 'https://blocked.example.test/x', level);
      expect(blocked.connectCode).toBe('403');
      const dflt = await curl(h, 'https://other.example.test/x', level);
      expect(dflt.connectCode).toBe('403');
      expect((await curl(h, 'https://alerting.example.test/a', level)).code).toBe('200');
      expect(ups.get('api.allowed.test')!.connections).toBe(1);
      expect(ups.get('blocked.example.test')!.connections).toBe(0);
      expect(ups.get('other.example.test')!.connections).toBe(0);
      expect(ups.get('alerting.example.test')!.connections).toBe(1);

      const v = h.recorder.violations;
      expect(v.map((x) => [x.host, x.verdict.action, x.enforced])).toEqual([
        ['blocked.example.test', 'block', true],
        ['other.example.test', 'block', true],
        ['alerting.example.test', 'alert', false],
      ]);
      expect(v[0]!.verdict.reason).toBe('not approved for PHI');
      expect(v[1]!.verdict.ruleIndex).toBeNull();
      const conn = h.recorder.connections.find((c) => c.host === 'blocked.example.test')!;
      expect(conn.outcome).toBe('blocked');
      expect(conn.verdict!.explanation).toMatch(/not approved for PHI/);
    });
  }

  it('the 403 body names the rule and its reason', async () => {
    const { h } = await world(V2, 'headers');
    const out = await new Promise<string>((resolve) => {
      const sock = connect(h.port, '127.0.0.1');
      let text = '';
      sock.on('data', (d) => (text += d.toString()));
      sock.on('close', () => resolve(text));
      sock.write(
        'CONNECT blocked.example.test:443 HTTP/1.1\r\nHost: blocked.example.test:443\r\n\r\n',
      );
    });
    expect(out).toMatch(/^HTTP\/1.1 403/);
    expect(out).toContain('match "blocked.example.test", action block');
    expect(out).toContain('not approved for PHI');
  });
});

describe('enforcement with a legacy policy (presets + block + alert)', () => {
  const LEGACY = `
name: legacy-hipaa
inherit: [preset:azure]
rules:
  - match: blocked.example.test
    action: block
    reason: legacy block
  - match: "*.allowed.test"
    action: alert
    reason: legacy alert means allowed
defaults:
  action: block
`;
  it('preset and alert-rule hosts get 200; blocked and unmatched hosts get 403 and no connection', async () => {
    if (!requireClient('curl')) return;
    const { h, ups } = await world(LEGACY, 'headers');
    expect(
      (await curl(h, 'https://myorg.openai.azure.com/openai/deployments/x', 'headers')).code,
    ).toBe('200');
    expect((await curl(h, 'https://api.allowed.test/ok', 'headers')).code).toBe('200');
    expect((await curl(h, 'https://blocked.example.test/x', 'headers')).connectCode).toBe('403');
    expect((await curl(h, 'https://other.example.test/x', 'headers')).connectCode).toBe('403');
    expect(ups.get('myorg.openai.azure.com')!.requests).toHaveLength(1);
    expect(ups.get('blocked.example.test')!.connections).toBe(0);
    expect(ups.get('other.example.test')!.connections).toBe(0);
    // Legacy meaning: a matched alert rule allows without a violation.
    expect(h.recorder.violations.map((x) => x.host)).toEqual([
      'blocked.example.test',
      'other.example.test',
    ]);
  });
});

describe('method and path rules at the headers level', () => {
  const RULES = `
version: 2
name: paths
rules:
  - match: myorg.openai.azure.com
    methods: [POST]
    paths: ["/openai/deployments/*"]
    action: allow
  - match: myorg.openai.azure.com
    paths: ["/admin/*"]
    action: block
    reason: no admin calls
  - match: myorg.openai.azure.com
    action: alert
defaults:
  action: block
`;
  it('blocks one path and allows another on the same host; the blocked request never reaches the upstream', async () => {
    if (!requireClient('curl')) return;
    const { h, ups } = await world(RULES, 'headers');
    const up = ups.get('myorg.openai.azure.com')!;
    expect(
      (
        await curl(h, 'https://myorg.openai.azure.com/openai/deployments/gpt/chat', 'headers', [
          '-d',
          '{}',
        ])
      ).code,
    ).toBe('200');
    expect((await curl(h, 'https://myorg.openai.azure.com/admin/keys', 'headers')).code).toBe(
      '403',
    );
    expect((await curl(h, 'https://myorg.openai.azure.com/other', 'headers')).code).toBe('200');
    expect(up.requests.map((r) => `${r.method} ${r.url}`)).toEqual([
      'POST /openai/deployments/gpt/chat',
      'GET /other',
    ]);
    await h.recorder.until(
      () => h.recorder.requests.length === 3 && h.recorder.requests.every((r) => r.outcome),
    );
    expect(h.recorder.requests.map((r) => [r.url, r.outcome, r.verdict?.action])).toEqual([
      ['/openai/deployments/gpt/chat', 'ok', 'allow'],
      ['/admin/keys', 'blocked', 'block'],
      ['/other', 'ok', 'alert'],
    ]);
    expect(
      h.recorder.violations.map((v) => [
        v.method,
        v.verdict.action,
        v.enforced,
        v.requestId !== null,
      ]),
    ).toEqual([
      ['GET', 'block', true, true],
      ['GET', 'alert', false, true],
    ]);
  });
});

describe('CIDR rules', () => {
  it('are checked against the address the proxy connects to (after --resolve)', async () => {
    if (!requireClient('curl')) return;
    const text = `
version: 2
rules:
  - match: 127.0.0.0/8
    action: block
    reason: loopback range
defaults:
  action: allow
`;
    const { h, ups } = await world(text, 'metadata');
    expect((await curl(h, 'https://api.allowed.test/x', 'metadata')).connectCode).toBe('403');
    expect(ups.get('api.allowed.test')!.connections).toBe(0);
    expect(h.recorder.violations[0]!.verdict.rule).toBe('127.0.0.0/8');
  });
});

describe('kill', () => {
  it('refuses and says when the process could not be found', async () => {
    if (!requireClient('curl')) return;
    const text = `
version: 2
rules:
  - match: blocked.example.test
    action: kill
    reason: exfiltration
`;
    const { h } = await world(text, 'metadata');
    expect((await curl(h, 'https://blocked.example.test/x', 'metadata')).connectCode).toBe('403');
    const c = h.recorder.connections[0]!;
    expect(c.outcome).toBe('killed');
    expect(c.reason).toMatch(/kill not possible/);
  });
});
