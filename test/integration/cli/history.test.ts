/**
 * `trustrun history` and the storing of `trustrun scan`, as a user runs them: the built program
 * (run `npx tsc -p tsconfig.build.json` first when TRUSTRUN_SKIP_BUILD is set), a data directory
 * in a temporary folder.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openStore } from '../../../src/store/index.js';
import { CLI, run } from '../../helpers/proc.js';
import { blockVerdict, findMarker, requestInput } from '../../unit/store/helpers.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'trustrun-history-'));
  dirs.push(d);
  return d;
}

function trustrun(args: string[], cwd?: string) {
  return run(process.execPath, [CLI, ...args], {
    cwd,
    env: { PATH: process.env.PATH, HOME: cwd ?? tmpdir(), LANG: 'C.UTF-8' },
    timeoutMs: 30_000,
  });
}

/** Two sessions: a finished run with 2 requests and 1 violation, then a running proxy. */
async function recordSessions(dataDir: string) {
  const store = await openStore({ dataDir });
  const done = store.startSession({
    kind: 'run',
    command: ['Rscript', 'analysis.R'],
    policy: 'hipaa',
    level: 'headers',
  });
  await store.addRequest(requestInput(done.id));
  await store.addRequest(requestInput(done.id));
  store.addViolation({
    sessionId: done.id,
    time: Date.now(),
    host: 'api.openai.com',
    port: 443,
    verdict: blockVerdict,
    enforced: true,
  });
  store.endSession(done.id, { status: 'completed', exitCode: 1 });
  await store.flush();
  await new Promise((r) => setTimeout(r, 5)); // a later id
  const proxy = store.startSession({ kind: 'proxy', level: 'metadata' });
  store.endSession(proxy.id, { status: 'interrupted' });
  await store.close();
  return { done: done.id, proxy: proxy.id };
}

describe('trustrun history', () => {
  it('says so, in one friendly line, when nothing was recorded (and creates nothing)', async () => {
    const dataDir = join(tmp(), 'data');
    const r = await trustrun(['history', '--data-dir', dataDir]);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toBe(
      `No sessions recorded in ${dataDir} yet (trustrun run -- CMD or trustrun proxy records one).\n`,
    );
    const json = await trustrun(['history', '--json', '--data-dir', dataDir]);
    expect(json).toMatchObject({ code: 0, stdout: '[]\n' });
    const scans = await trustrun(['history', '--scans', '--data-dir', dataDir]);
    expect(scans.stdout).toMatch(/^No scans stored in .* yet/);
    expect(existsSync(dataDir)).toBe(false);
  });

  it('prints sessions newest first with kind, command, policy, level, status, exit code and counts', async () => {
    const dataDir = join(tmp(), 'data');
    const ids = await recordSessions(dataDir);
    const r = await trustrun(['history', '--data-dir', dataDir]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(
      /^STARTED\s+SESSION\s+KIND\s+STATUS\s+EXIT\s+REQUESTS\s+VIOLATIONS\s+LEVEL\s+POLICY\s+COMMAND$/,
    );
    expect(lines[1]).toMatch(
      new RegExp(
        `^\\S+ \\S+\\s+${ids.proxy}\\s+proxy\\s+interrupted\\s+-\\s+0\\s+0\\s+metadata\\s+-\\s+-$`,
      ),
    );
    expect(lines[2]).toMatch(
      new RegExp(
        `^\\S+ \\S+\\s+${ids.done}\\s+run\\s+completed\\s+1\\s+2\\s+1\\s+headers\\s+hipaa\\s+Rscript analysis\\.R$`,
      ),
    );
  });

  it('--json prints an array of sessions; --limit bounds it', async () => {
    const dataDir = join(tmp(), 'data');
    const ids = await recordSessions(dataDir);
    const r = await trustrun(['history', '--json', '--data-dir', dataDir]);
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.stdout);
    expect(rows.map((s: { id: string }) => s.id)).toEqual([ids.proxy, ids.done]);
    expect(rows[1]).toMatchObject({
      kind: 'run',
      command: ['Rscript', 'analysis.R'],
      policy: 'hipaa',
      level: 'headers',
      status: 'completed',
      exitCode: 1,
      counts: { requests: 2, violations: 1, connections: 0, monitorEvents: 0 },
    });
    const one = await trustrun(['history', '--json', '--limit', '1', '--data-dir', dataDir]);
    expect(JSON.parse(one.stdout).map((s: { id: string }) => s.id)).toEqual([ids.proxy]);
  });

  it('shows command lines redacted, in the table and in --json', async () => {
    const dataDir = join(tmp(), 'data');
    const store = await openStore({ dataDir });
    store.startSession({
      kind: 'run',
      command: ['curl', 'https://x.test/a?access_token=CMDLINEsecret999'],
      level: 'headers',
    });
    await store.close();
    for (const args of [['history'], ['history', '--json']]) {
      const r = await trustrun([...args, '--data-dir', dataDir]);
      expect(r.code).toBe(0);
      expect(r.stdout).not.toContain('CMDLINEsecret');
      expect(r.stdout).toContain('access_token=[REDACTED');
    }
  });

  it.each([['0'], ['abc'], ['1001']])('--limit %s is a usage error (exit 2)', async (limit) => {
    const r = await trustrun(['history', '--limit', limit, '--data-dir', tmp()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^trustrun: .*--limit/);
    expect(r.stdout).toBe('');
  });
});

describe('trustrun scan stores its results', () => {
  function project(secret: string): string {
    const root = join(tmp(), 'project');
    mkdirSync(root);
    writeFileSync(
      join(root, 'app.py'),
      'import requests\nrequests.get("https://api.openai.com/v1/chat")\n',
    );
    writeFileSync(join(root, 'settings.env'), `TOKEN=${secret}\n`);
    return root;
  }

  it('prints the stored scan id; history --scans lists it; the secret is sealed', async () => {
    const dataDir = join(tmp(), 'data');
    const secret = 'ghp_' + 'Zq8'.repeat(12);
    const root = project(secret);
    const r = await trustrun(['scan', root, '--data-dir', dataDir]);
    expect(r.code).toBe(1); // the token is critical
    const id = /Scan stored as (\S+)\n$/.exec(r.stderr)?.[1];
    expect(id).toMatch(/^[0-9a-z]{9}[0-9a-f]{12}$/);

    const h = await trustrun(['history', '--scans', '--json', '--data-dir', dataDir]);
    const scans = JSON.parse(h.stdout);
    expect(scans).toEqual([
      expect.objectContaining({
        id,
        root,
        files: 2,
        findings: 3,
        counts: { info: 1, warning: 1, critical: 1 },
      }),
    ]);
    const table = await trustrun(['history', '--scans', '--data-dir', dataDir]);
    expect(table.stdout).toContain(id!);

    expect(findMarker(dataDir, secret)).toEqual([]);
    const store = await openStore({ dataDir });
    try {
      const findings = store.listFindings({ scanId: id! }).items;
      expect(findings.map((f) => f.kind).sort()).toEqual([
        'github_token',
        'python_network_call',
        'python_url_literal',
      ]);
      const token = findings.find((f) => f.kind === 'github_token')!;
      expect(token).toMatchObject({
        file: 'settings.env',
        line: 1,
        secret: true,
        severity: 'critical',
      });
      expect(token.value).toBe('[REDACTED:github-token]');
      expect(JSON.stringify(findings)).not.toContain(secret);
      const url = findings.find((f) => f.kind === 'python_url_literal')!;
      expect(url).toMatchObject({ host: 'api.openai.com', port: 443, secret: false });
      expect(url.value).toBe('https://api.openai.com/v1/chat');
    } finally {
      await store.close();
    }
  });

  it('the json output carries the stored id, and its outputs are unchanged', async () => {
    const dataDir = join(tmp(), 'data');
    const root = project('not-a-secret');
    const r = await trustrun(['scan', root, '--json', '--data-dir', dataDir]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('Scanned 2 files (0 skipped): 2 findings, 0 critical\n');
    const doc = JSON.parse(r.stdout);
    const h = await trustrun(['history', '--scans', '--json', '--data-dir', dataDir]);
    expect(JSON.parse(h.stdout).map((s: { id: string }) => s.id)).toEqual([doc.id]);
  });

  it('--no-store stores nothing', async () => {
    const dataDir = join(tmp(), 'data');
    const r = await trustrun(['scan', project('x'), '--no-store', '--data-dir', dataDir]);
    expect(r.code).toBe(0);
    expect(r.stderr).not.toContain('Scan stored as');
    const h = await trustrun(['history', '--scans', '--json', '--data-dir', dataDir]);
    expect(h.stdout).toBe('[]\n');
  });
});
