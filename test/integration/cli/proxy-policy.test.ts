/**
 * Policy enforcement through `trustrun proxy` as its own process: SIGHUP reload (an invalid new
 * file is rejected and the old policy stays), kill of the client process found in procfs,
 * `trustrun violations`, and malformed policy files refused at start-up with exit 2.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { requireClient } from '../../helpers/clients.js';
import { startCliProxy, type CliProxy } from '../../helpers/cli-proxy.js';
import { makeLeaf, makeTestCa } from '../../helpers/pki.js';
import { CLI, run } from '../../helpers/proc.js';
import { startUpstream, type TestUpstream } from '../../helpers/upstream.js';
import { cleanEnv } from '../../unit/ca/helpers.js';

const HOST = 'records.hospital-research.net';
let dir: string;
let dataDir: string;
let caFile: string;
let upstream: TestUpstream;
const cleanups: (() => Promise<unknown>)[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'trustrun-policy-'));
  dataDir = join(dir, 'data');
  const ca = await makeTestCa();
  caFile = join(dir, 'upstream-ca.pem');
  await writeFile(caFile, ca.certPem);
  upstream = await startUpstream({ leaf: await makeLeaf(ca, [HOST]) });
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await upstream.close();
  await rm(dir, { recursive: true, force: true });
});

async function proxyWith(policyFile: string, level = 'metadata'): Promise<CliProxy> {
  const p = await startCliProxy(
    [
      '--level',
      level,
      '--policy',
      policyFile,
      '--data-dir',
      dataDir,
      '--resolve',
      `${HOST}:443:127.0.0.1:${upstream.port}`,
      '--upstream-ca',
      caFile,
    ],
    cleanEnv(),
  );
  cleanups.push(() => p.stop());
  return p;
}

function curlArgs(p: CliProxy, path = '/'): string[] {
  // %{http_connect}: the proxy's answer to CONNECT; %{http_code}: the upstream's (000: none).
  return [
    '-s',
    '-o',
    '/dev/null',
    '-w',
    '%{http_connect} %{http_code}',
    '--proxy',
    p.url,
    '--cacert',
    caFile,
    `https://${HOST}${path}`,
  ];
}

async function waitFor(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const policy = (action: string) =>
  `version: 2\nname: reload-test\nrules:\n  - match: "*.hospital-research.net"\n    action: ${action}\n    reason: study data host\ndefaults:\n  action: block\n`;

const hasCurl = requireClient('curl');

describe('trustrun proxy --policy', () => {
  it.skipIf(!hasCurl)(
    'reloads the policy on SIGHUP and keeps the old one when the new file is invalid',
    async () => {
      const file = join(dir, 'policy.yaml');
      await writeFile(file, policy('allow'));
      const p = await proxyWith(file);
      // At the metadata level the CONNECT is tunnelled: curl must trust the upstream's own CA.
      expect((await run('curl', curlArgs(p), { env: cleanEnv() })).stdout).toBe('200 200');
      expect(upstream.connections).toBe(1);

      await writeFile(file, policy('block'));
      p.child.kill('SIGHUP');
      await waitFor(() => p.stderr().includes('policy reloaded'), 'the reload message');
      const blocked = await run('curl', curlArgs(p), { env: cleanEnv() });
      expect(blocked.stdout).toBe('403 000');
      expect(upstream.connections).toBe(1);

      await writeFile(file, 'version: 2\nrules:\n  - action: allow\n');
      p.child.kill('SIGHUP');
      await waitFor(() => p.stderr().includes('NOT reloaded'), 'the rejection message');
      expect(p.stderr()).toMatch(
        /policy NOT reloaded, the previous one stays in force: .*policy\.yaml:3:\d+/,
      );
      expect((await run('curl', curlArgs(p), { env: cleanEnv() })).stdout).toBe('403 000');
      expect(upstream.connections).toBe(1);
      expect(await p.stop()).toBe(0);

      const v = await run(process.execPath, [CLI, 'violations', '--json', '--data-dir', dataDir], {
        env: cleanEnv(),
      });
      const page = JSON.parse(v.stdout) as {
        items: { action: string; enforced: boolean; rule: string; host: string }[];
      };
      expect(page.items).toHaveLength(2);
      expect(page.items.every((i) => i.action === 'block' && i.enforced && i.host === HOST)).toBe(
        true,
      );
      expect(page.items[0]!.rule).toBe('*.hospital-research.net');
      const table = await run(process.execPath, [CLI, 'violations', '--data-dir', dataDir], {
        env: cleanEnv(),
      });
      expect(table.stdout.split('\n')[0]).toMatch(
        /^TIME\s+SESSION\s+ACTION\s+ENFORCED\s+DESTINATION\s+RULE\s+REASON$/,
      );
      expect(table.stdout).toContain(`${HOST}:443`);
    },
  );

  it.skipIf(!hasCurl)(
    'kill: terminates the client process that owns the socket, refuses, and records it',
    async () => {
      const file = join(dir, 'policy.yaml');
      await writeFile(file, policy('kill'));
      const p = await proxyWith(file);
      // Left alone, curl would print the 403 and exit 0: ending by SIGTERM is the kill.
      const child = spawn('curl', curlArgs(p), { env: cleanEnv(), stdio: 'ignore' });
      const ended = await new Promise<{ code: number | null; signal: string | null }>((resolve) =>
        child.once('exit', (code, signal) => resolve({ code, signal })),
      );
      expect(ended.signal ?? ended.code).toBe('SIGTERM');
      expect(upstream.connections).toBe(0);
      expect(await p.stop()).toBe(0);
      const v = await run(process.execPath, [CLI, 'violations', '--json', '--data-dir', dataDir], {
        env: cleanEnv(),
      });
      const [kill] = (JSON.parse(v.stdout) as { items: { action: string; enforced: boolean }[] })
        .items;
      expect(kill).toMatchObject({ action: 'kill', enforced: true });
    },
  );

  it("takes the capture level from the policy's capture_level when --level is not given", async () => {
    const file = join(dir, 'level.yaml');
    await writeFile(file, 'version: 2\ncapture_level: full\ndefaults:\n  action: allow\n');
    const p = await startCliProxy(['--policy', file, '--data-dir', dataDir], cleanEnv());
    cleanups.push(() => p.stop());
    expect(p.info.level).toBe('full');
    const q = await startCliProxy(
      ['--policy', file, '--level', 'metadata', '--data-dir', join(dir, 'd2')],
      cleanEnv(),
    );
    cleanups.push(() => q.stop());
    expect(q.info.level).toBe('metadata');
  });

  const malformed: [string, string, RegExp][] = [
    [
      'bad YAML',
      'version: 2\nrules:\n  - match: "a.example\n    action: allow\n',
      /bad\.yaml:\d+:\d+/,
    ],
    [
      'unknown action',
      'version: 2\nrules:\n  - match: a.example\n    action: permit\n',
      /bad\.yaml:4:\d+.*permit/,
    ],
    ['a rule without match', 'version: 2\nrules:\n  - action: allow\n', /bad\.yaml:3:\d+.*match/],
    [
      'a bad CIDR',
      'version: 2\nrules:\n  - match: 10.0.0.0/33\n    action: block\n',
      /bad\.yaml:3:\d+.*10\.0\.0\.0\/33/,
    ],
  ];
  for (const [what, text, message] of malformed) {
    it(`refuses to start with ${what}: exit 2, one line naming file:line:col`, async () => {
      const file = join(dir, 'bad.yaml');
      await writeFile(file, text);
      const r = await run(
        process.execPath,
        [CLI, 'proxy', '--port', '0', '--policy', file, '--data-dir', dataDir],
        {
          env: cleanEnv(),
        },
      );
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split('\n')[0]).toMatch(/^trustrun: /);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    });
  }

  it('refuses an inheritance cycle, naming the chain of files', async () => {
    await writeFile(join(dir, 'a.yaml'), 'version: 2\ninherit: b.yaml\n');
    await writeFile(join(dir, 'b.yaml'), 'version: 2\ninherit: a.yaml\n');
    const r = await run(
      process.execPath,
      [CLI, 'proxy', '--port', '0', '--policy', join(dir, 'a.yaml'), '--data-dir', dataDir],
      {
        env: cleanEnv(),
      },
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/a\.yaml.*b\.yaml.*a\.yaml/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
