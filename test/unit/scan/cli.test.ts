/**
 * `trustrun scan` as a user runs it: the built program (bin/trustrun.js → dist/), its exit
 * codes and where its output goes. The global setup builds dist/ first (or run
 * `npx tsc -p tsconfig.build.json` when TRUSTRUN_SKIP_BUILD is set).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { scanCommand, type ScanIo } from '../../../src/cli/commands/scan.js';
import { cleanupTmp, tmp, writeTree } from './helpers.js';

afterEach(cleanupTmp);

const BIN = join(import.meta.dirname, '../../../bin/trustrun.js');

function trustrun(args: string[], cwd: string) {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function project(files: Record<string, string> = {}): string {
  const root = tmp();
  writeTree(root, {
    'app.py': 'import requests\nrequests.get("https://api.openai.com/v1/chat")\n',
    ...files,
  });
  return root;
}

const BLOCK_OPENAI =
  'version: 2\nname: no-openai\nrules:\n  - match: "*.openai.com"\n    action: block\n    reason: no BAA\n';

describe('trustrun scan (the built program)', () => {
  it('exits 0 without critical findings and writes the report on stderr', () => {
    const root = project();
    const r = trustrun(['scan', '.'], root);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^TrustRun scanning \. with policy none\n\napp\.py\n/);
    expect(r.stderr).toContain('python_url_literal, url');
    expect(r.stderr).toContain('Total findings: 2 (0 critical, 1 warning, 1 info)');
  });

  it('shows control characters from scanned files and their names as visible escapes', () => {
    const root = project({
      'a\x1b[2Kb.py': 'requests.get("https://api.openai.com/x")  # \x1b]0;T\x07\n',
    });
    const r = trustrun(['scan', '.'], root);
    expect(r.stderr).toContain('a\\x1b[2Kb.py');
    expect(r.stderr).not.toMatch(/\x1b/);
  });

  it('a file name with line breaks cannot forge a line of the report', () => {
    const root = project({
      'a.py\n\nTotal findings: 0 (0 critical, 0 warning, 0 info)\n.py':
        'requests.get("https://api.openai.com/x")\n',
    });
    const r = trustrun(['scan', '.'], root);
    expect(r.stderr.match(/^Total findings: /gm)).toHaveLength(1);
    expect(r.stderr).toContain('a.py\\x0a\\x0aTotal findings: 0');
  });

  it('exits 1 when a finding is critical (a secret)', () => {
    const root = project({ 'settings.env': 'AWS_KEY=AKIAIOSFODNN7EXAMPLE\n' });
    const r = trustrun(['scan', root], root);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('1 critical finding(s)');
    expect(r.stderr).not.toContain('AKIAIOSFODNN7EXAMPLE');
  });

  it('exits 1 when --policy blocks a destination, and names the rule', () => {
    const root = project({ 'policy.yaml': BLOCK_OPENAI });
    const r = trustrun(['scan', '.', '--policy', 'policy.yaml'], root);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('TrustRun scanning . with policy no-openai');
    expect(r.stderr).toContain('blocked by rule `*.openai.com` (#1) in policy no-openai: no BAA');
  });

  it('takes --policy (or -p) before the command too, as the earlier tool did', () => {
    const root = project({ 'policy.yaml': BLOCK_OPENAI });
    for (const flag of ['--policy', '-p']) {
      const r = trustrun([flag, 'policy.yaml', 'scan', '.', '--no-store'], root);
      expect(r.code, flag).toBe(1);
      expect(r.stderr, flag).toContain('TrustRun scanning . with policy no-openai');
    }
    const missing = trustrun(['--policy', 'nope.yaml', 'scan', '.'], root);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe('trustrun: --policy nope.yaml: no such file\n');
  });

  it.each([
    [['scan'], 'trustrun: scan: missing directory (usage: trustrun scan DIR)\n'],
    [['scan', 'does-not-exist'], 'trustrun: scan: no such directory: does-not-exist\n'],
    [['scan', 'app.py'], 'trustrun: scan: not a directory: app.py\n'],
    [
      ['scan', '.', '--format', 'xml'],
      "trustrun: scan: unknown --format 'xml' (use text, json or sarif)\n",
    ],
    [
      ['scan', '.', '--json', '--format', 'sarif'],
      'trustrun: scan: --json conflicts with --format sarif\n',
    ],
    [
      ['scan', '.', '--policy', 'missing.yaml'],
      'trustrun: scan: policy file not found: missing.yaml\n',
    ],
  ])('usage error %j exits 2 with one line', (args, message) => {
    const r = trustrun(args, project());
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(message);
    expect(r.stdout).toBe('');
  });

  it('exits 2 for an invalid policy file, naming it', () => {
    const root = project({ 'bad.yaml': 'version: 2\nrules:\n  - action: block\n' });
    const r = trustrun(['scan', '.', '--policy', 'bad.yaml'], root);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^trustrun: .*bad\.yaml/);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('--format json (and --json) print the scan on stdout', () => {
    const root = project();
    for (const args of [['--format', 'json'], ['--json']]) {
      const r = trustrun(['scan', '.', ...args], root);
      expect(r.code).toBe(0);
      const doc = JSON.parse(r.stdout);
      expect(doc).toMatchObject({
        root,
        policy: null,
        filesScanned: 1,
        counts: { critical: 0, warning: 1, info: 1 },
      });
      expect(doc.findings.map((f: { kind: string }) => f.kind)).toEqual([
        'python_network_call',
        'python_url_literal',
      ]);
      expect(r.stderr).toBe('Scanned 1 files (0 skipped): 2 findings, 0 critical\n');
    }
  });

  it('--format sarif prints a SARIF log on stdout; the exit code still follows severity', () => {
    const root = project({ 'policy.yaml': BLOCK_OPENAI });
    const r = trustrun(
      ['scan', '.', '--format', 'sarif', '-p', 'policy.yaml', '-e', 'policy.yaml'],
      root,
    );
    expect(r.code).toBe(1);
    const log = JSON.parse(r.stdout);
    expect(log.version).toBe('2.1.0');
    expect(
      log.runs[0].results.map((x: { ruleId: string; level: string }) => [x.ruleId, x.level]),
    ).toEqual([
      ['python_network_call', 'note'],
      ['python_url_literal', 'error'],
    ]);
  });

  it('--exclude takes globs and can be repeated', () => {
    const root = project({
      'vendor/lib/x.py': 'u = "https://vendor.partner.org"\n',
      'web/app.min.js': "fetch('https://min.partner.org')\n",
      'web/app.js': "fetch('https://app.partner.org')\n",
    });
    const r = trustrun(['scan', '.', '--json', '--exclude', 'vendor/**', '-e', '*.min.js'], root);
    const files = new Set(JSON.parse(r.stdout).findings.map((f: { file: string }) => f.file));
    expect(files).toEqual(new Set(['app.py', 'web/app.js']));
  });
});

describe('scanCommand', () => {
  function captureIo(progress: boolean): ScanIo & { outText: string; errText: string } {
    const io = {
      outText: '',
      errText: '',
      progress,
      out: (t: string) => {
        io.outText += t;
      },
      err: (t: string) => {
        io.errText += t;
      },
    };
    return io;
  }

  it('draws a progress line on a terminal and erases it', async () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 400; i++)
      files[`f${i}.py`] = `u = "https://host${i}.partner.org"\n`.repeat(50);
    const root = project(files);
    const io = captureIo(true);
    const { exitCode, result } = await scanCommand(root, {}, io);
    expect(exitCode).toBe(0);
    expect(result.filesScanned).toBe(401);
    expect(io.errText).toMatch(/\r\x1b\[K\d+ files, \d+ findings {2}\S+\.py/);
    // The last progress line is erased before the report is written.
    const erase = io.errText.indexOf('\r\x1b[K', io.errText.lastIndexOf('findings  '));
    expect(erase).toBeGreaterThan(-1);
    expect(erase).toBeLessThan(io.errText.indexOf('Scanned 401 files'));
  });

  it('draws no progress line when stderr is not a terminal', async () => {
    const io = captureIo(false);
    await scanCommand(project(), {}, io);
    expect(io.errText).not.toContain('\x1b');
  });
});
