/**
 * `trustrun policy check|test`: the plain functions in-process, and the real program
 * (bin/trustrun.js over dist/, built by the global setup) for exit codes and output streams.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isTrustRunError } from '../../../src/core/index.js';
import {
  formatCheck,
  formatTest,
  parseTarget,
  policyCheck,
  policyTest,
} from '../../../src/cli/commands/policy.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const BIN = join(ROOT, 'bin', 'trustrun.js');

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'trustrun-policy-cli-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const GOOD = `version: 2
name: hipaa-azure-only
inherit: [preset:azure]
capture_level: headers
rules:
  - match: "*.openai.com"
    action: block
    reason: Direct OpenAI API bypasses the BAA
  - match: 10.0.0.0/8
    ports: [5432]
    action: allow
  - match: myorg.openai.azure.com
    methods: [POST]
    paths: ["/openai/deployments/*"]
    action: allow
  - match: "*.openai.azure.com"
    action: block
defaults:
  action: block
`;
const BAD = 'version: 2\nrules:\n  - match: a.com\n    action: allow\n  - action: block\n';

async function file(name: string, text: string): Promise<string> {
  const f = join(dir, name);
  await writeFile(f, text);
  return f;
}

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: dir, env: { ...process.env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

describe('policy check (in-process)', () => {
  it('returns the flattened rules with their sources', async () => {
    const f = await file('p.yaml', GOOD);
    const r = await policyCheck(f);
    expect(r).toMatchObject({
      valid: true,
      name: 'hipaa-azure-only',
      format: 'v2',
      captureLevel: 'headers',
      defaultAction: 'block',
      hasRequestRules: true,
      files: [f, 'preset:azure'],
    });
    expect(r.rules).toHaveLength(17);
    expect(r.rules[0]).toMatchObject({ index: 0, match: '*.openai.com', source: f, line: 6 });
    expect(r.rules[4]).toMatchObject({ source: 'preset:azure', match: '*.openai.azure.com' });
    const text = formatCheck('p.yaml', r);
    expect(text.split('\n')[0]).toBe(
      'p.yaml: valid version 2 policy "hipaa-azure-only": 17 rules from 2 files, default block, capture level headers',
    );
    expect(text).toMatch(
      /^ {2}3 +allow +myorg\.openai\.azure\.com +POST \/openai\/deployments\/\* +.*p\.yaml:12$/m,
    );
  });

  it('notes that request rules need decryption when the capture level is metadata', async () => {
    const f = await file('p.yaml', GOOD.replace('capture_level: headers\n', ''));
    expect(formatCheck('p.yaml', await policyCheck(f))).toContain('need the request decrypted');
  });

  it('passes the legacy notice to its output', async () => {
    const err: string[] = [];
    await policyCheck(await file('old.yaml', 'rules:\n  - match: a.com\n'), {
      err: (t) => err.push(t),
    });
    expect(err.join('')).toMatch(/^trustrun: warning: .*old\.yaml: legacy policy file/);
  });
});

describe('policy test (in-process)', () => {
  it('gives the CONNECT verdict for a destination', async () => {
    const f = await file('p.yaml', GOOD);
    const r = await policyTest(f, 'api.openai.com', undefined, undefined);
    expect(r.connect).toMatchObject({ action: 'block', ruleIndex: 0 });
    expect(r.request).toBeNull();
    expect(formatTest(r)).toBe(
      'api.openai.com:443: block (violation)\n' +
        '  rule 1 (match "*.openai.com", action block): Direct OpenAI API bypasses the BAA\n',
    );
  });

  it('checks --ip against network rules', async () => {
    const f = await file('p.yaml', GOOD);
    const r = await policyTest(f, 'db.internal:5432', undefined, undefined, { ip: '10.2.3.4' });
    expect(r.connect).toMatchObject({ action: 'allow', ruleIndex: 1 });
    const without = await policyTest(f, 'db.internal:5432', undefined, undefined);
    expect(without.connect).toMatchObject({ action: 'block', ruleIndex: null });
  });

  it('says when the decision waits for the request, and decides the request', async () => {
    const f = await file('p.yaml', GOOD);
    const host = 'myorg.openai.azure.com';
    const connect = await policyTest(f, host, undefined, undefined);
    expect(connect.connect).toBe('per-request');
    expect(formatTest(connect)).toContain('decided per request');
    const post = await policyTest(f, host, 'post', '/openai/deployments/gpt/chat');
    expect(post.request).toMatchObject({ action: 'allow', ruleIndex: 2 });
    expect(post.subject.method).toBe('POST');
    const get = await policyTest(f, host, 'GET', '/openai/deployments/gpt/chat');
    expect(get.request).toMatchObject({ action: 'block', ruleIndex: 3 });
  });

  it.each([
    ['api.x.com', { host: 'api.x.com', port: 443 }],
    ['api.x.com:8443', { host: 'api.x.com', port: 8443 }],
    ['[2001:db8::1]:80', { host: '2001:db8::1', port: 80 }],
    ['[::1]', { host: '::1', port: 443 }],
    ['2001:db8::1', { host: '2001:db8::1', port: 443 }],
  ])('parses the target %s', (target, expected) => {
    expect(parseTarget(target)).toEqual(expected);
  });

  it.each([
    ['x.com:0', 'bad port'],
    ['x.com:99999', 'bad port'],
    ['x.com:https', 'bad port'],
    [':443', 'bad target'],
  ])('rejects the target %s', (target, message) => {
    let caught: unknown;
    try {
      parseTarget(target);
    } catch (err) {
      caught = err;
    }
    expect(isTrustRunError(caught, 'TR_USAGE')).toBe(true);
    expect((caught as Error).message).toContain(message);
  });

  it('rejects METHOD without PATH and a bad --ip as usage errors', async () => {
    const f = await file('p.yaml', GOOD);
    await expect(policyTest(f, 'a.com', 'GET', undefined)).rejects.toMatchObject({
      code: 'TR_USAGE',
    });
    await expect(
      policyTest(f, 'a.com', undefined, undefined, { ip: '10.0.0.300' }),
    ).rejects.toMatchObject({ code: 'TR_USAGE' });
  });
});

describe('trustrun policy (the real program)', () => {
  it('check: exit 0, the summary on stderr', async () => {
    const f = await file('p.yaml', GOOD);
    const r = await run(['policy', 'check', f]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`${f}: valid version 2 policy "hipaa-azure-only": 17 rules`);
  });

  it('check --json: the result on stdout', async () => {
    const f = await file('p.yaml', GOOD);
    const r = await run(['policy', 'check', f, '--json']);
    expect(r.code).toBe(0);
    const json = JSON.parse(r.stdout) as { valid: boolean; rules: unknown[]; files: string[] };
    expect(json.valid).toBe(true);
    expect(json.rules).toHaveLength(17);
    expect(json.files).toEqual([f, 'preset:azure']);
  });

  it('check: an invalid file exits 2 with one line and no stack trace', async () => {
    const f = await file('bad.yaml', BAD);
    const r = await run(['policy', 'check', f]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      `trustrun: ${f}:5:5: rule 2 has no "match" (a host glob, IP address or CIDR) (rules[1].match)\n`,
    );
  });

  it('check: a cycle and a missing file exit 2 with one line', async () => {
    await file('b.yaml', 'version: 2\ninherit: [a.yaml]\n');
    const a = await file('a.yaml', 'version: 2\ninherit: [b.yaml]\n');
    const cycle = await run(['policy', 'check', a]);
    expect(cycle.code).toBe(2);
    expect(cycle.stderr).toMatch(/^trustrun: .*b\.yaml:2:11: Circular policy inheritance: .*\n$/);
    const missing = await run(['policy', 'check', 'nope.yaml']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe('trustrun: nope.yaml: cannot read policy file: no such file\n');
  });

  it('test: the verdict and its explanation; --json on stdout', async () => {
    const f = await file('p.yaml', GOOD);
    const r = await run(['policy', 'test', f, 'api.openai.com']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('api.openai.com:443: block (violation)');
    expect(r.stderr).toContain('Direct OpenAI API bypasses the BAA');
    const j = await run([
      'policy',
      'test',
      f,
      'myorg.openai.azure.com',
      'POST',
      '/openai/deployments/x',
      '--ip',
      '20.1.2.3',
      '--json',
    ]);
    expect(j.code).toBe(0);
    expect(JSON.parse(j.stdout)).toMatchObject({
      subject: { host: 'myorg.openai.azure.com', port: 443, ip: '20.1.2.3', method: 'POST' },
      connect: 'per-request',
      request: { action: 'allow', ruleIndex: 2, violation: false },
    });
  });

  it('test: a bad port is a usage error (exit 2)', async () => {
    const f = await file('p.yaml', GOOD);
    const r = await run(['policy', 'test', f, 'api.openai.com:70000']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("trustrun: bad port in 'api.openai.com:70000': expected 1-65535\n");
  });
});
