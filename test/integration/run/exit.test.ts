/**
 * `trustrun run` as a wrapper: exit codes, signals, stdio pass-through, the summary (stderr and
 * --json), the session row, usage errors, and the environment the child gets.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunSummary } from '../../../src/cli/commands/run.js';
import { requireClient } from '../../helpers/clients.js';
import { CLI } from '../../helpers/proc.js';
import { makeWorld, readSummary, trustrunRun, withStore, type World } from './helpers.js';

const API = 'api.example.test';
const BLOCKED = 'blocked.example.test';
let w: World;
let policy: string;

beforeAll(async () => {
  if (!existsSync(resolve('dist/cli/main.js'))) {
    throw new Error('dist/ is missing: run `npx tsc -p tsconfig.build.json` first');
  }
  w = await makeWorld([API, BLOCKED]);
  policy = join(w.dir, 'policy.yaml');
  writeFileSync(
    policy,
    [
      'version: 2',
      'name: run-test',
      'rules:',
      `  - match: ${API}`,
      '    action: allow',
      `  - match: ${BLOCKED}`,
      '    action: block',
      '    reason: not approved',
      'defaults:',
      '  action: block',
      '',
    ].join('\n'),
  );
});
afterAll(async () => {
  await w?.close();
});

const lastLine = (s: string) => s.trimEnd().split('\n').at(-1)!;

describe('exit codes', () => {
  it("passes the child's exit code through and records it on the session", async () => {
    const file = join(w.dir, 'seven.json');
    const r = await trustrunRun(w, ['--json-file', file], ['sh', '-c', 'exit 7']);
    expect(r.code).toBe(7);
    const s = await readSummary(file);
    expect(s).toMatchObject({
      exitCode: 7,
      status: 'completed',
      child: { exitCode: 7, signal: null },
    });
    await withStore(w, (store) =>
      expect(store.getSession(s.session)).toMatchObject({
        kind: 'run',
        command: ['sh', '-c', 'exit 7'],
        status: 'completed',
        exitCode: 7,
        level: 'metadata',
        policy: null,
      }),
    );
  });

  it.skipIf(!requireClient('curl'))(
    'violations and a child that exits 0: exit 1; the summary names the rule',
    async () => {
      const script = `curl -sS -o /dev/null https://${BLOCKED}/x; curl -sS -o /dev/null https://${API}/ok; exit 0`;
      const r = await trustrunRun(w, ['--policy', policy, '--json'], ['sh', '-c', script]);
      expect(r.code).toBe(1);
      expect(w.ups.get(BLOCKED)!.connections).toBe(0);
      const s = JSON.parse(lastLine(r.stdout)) as RunSummary;
      expect(s.exitCode).toBe(1);
      expect(s.child.exitCode).toBe(0);
      expect(s.policy).toBe('run-test');
      expect(s.violations).toEqual([
        expect.objectContaining({
          host: BLOCKED,
          port: 443,
          action: 'block',
          rule: BLOCKED,
          reason: 'not approved',
          enforced: true,
        }),
      ]);
      expect(s.destinations).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ host: BLOCKED, port: 443, via: 'proxy', violation: true }),
          expect.objectContaining({ host: API, port: 443, via: 'proxy', violation: false }),
        ]),
      );
      expect(r.stderr).toMatch(
        /⚠ 1 violation\(s\):\n\s+BLOCK blocked\.example\.test:443: rule "blocked\.example\.test": not approved/,
      );
      await withStore(w, (store) =>
        expect(store.getSession(s.session)).toMatchObject({
          policy: 'run-test', // the policy's name, as history shows it
          exitCode: 0,
          status: 'completed',
        }),
      );

      // With violations, a failing child keeps its own code.
      const three = await trustrunRun(
        w,
        ['--policy', policy],
        ['sh', '-c', `curl -s -o /dev/null https://${BLOCKED}/y; exit 3`],
      );
      expect(three.code).toBe(3);
    },
    60_000,
  );

  it('a child killed by SIGTERM: 143, with the signal in the summary', async () => {
    const file = join(w.dir, 'term.json');
    const r = await trustrunRun(w, ['--json-file', file], ['sh', '-c', 'kill -TERM $$']);
    expect(r.code).toBe(143);
    const s = await readSummary(file);
    expect(s.child).toMatchObject({ exitCode: null, signal: 'SIGTERM' });
    expect(r.stderr).toContain('killed by SIGTERM; trustrun exits 143');
    await withStore(w, (store) => expect(store.getSession(s.session)?.exitCode).toBe(143));
  });

  it('command not found: 127 with one line, and no session; usage errors: 2', async () => {
    const before = await withStore(w, (s) => s.listSessions({ limit: 1000 }).items.length);
    const r = await trustrunRun(w, [], ['no-such-command-xyz', '--flag']);
    expect(r.code).toBe(127);
    expect(r.stderr).toBe('trustrun: command not found: no-such-command-xyz\n');
    const file = join(w.dir, 'not-executable.sh');
    writeFileSync(file, '#!/bin/sh\n', { mode: 0o644 });
    const r2 = await trustrunRun(w, [], [file]);
    expect(r2.code).toBe(126);
    expect(r2.stderr).toMatch(/^trustrun: cannot execute .*not-executable\.sh/);
    expect(await withStore(w, (s) => s.listSessions({ limit: 1000 }).items.length)).toBe(before);

    const none = await trustrunRun(w, [], []);
    expect(none.code).toBe(2);
    expect(none.stderr).toBe(
      'trustrun: no command given: trustrun run [options] -- CMD [ARGS...]\n',
    );
    const bad = await trustrunRun(w, ['--no-such-flag'], ['true']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("unknown option '--no-such-flag'");
    // An address the proxy cannot listen on: a usage error, and no session left behind.
    for (const host of ['999.1.1.1', '10.255.255.254']) {
      const r3 = await trustrunRun(w, ['--host', host], ['true']);
      expect(r3.code, host).toBe(2);
      expect(r3.stderr.split('\n')[0], host).toMatch(
        new RegExp(
          `^trustrun: --host ${host.replace(/\./g, '\\.')} is not an address of this machine \\((ENOTFOUND|EADDRNOTAVAIL|EAI_AGAIN)\\)$`,
        ),
      );
      expect(r3.stderr, host).not.toMatch(/\n\s+at /);
    }
    expect(await withStore(w, (s) => s.listSessions({ limit: 1000 }).items.length)).toBe(before);
  });

  it('--json-file in a directory that does not exist: exit 2 before the command runs', async () => {
    const marker = join(w.dir, 'ran-anyway');
    const r = await trustrunRun(
      w,
      ['--json-file', join(w.dir, 'no-such-dir', 'x.json')],
      ['sh', '-c', `touch ${marker}; exit 5`],
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /^trustrun: --json-file .*no-such-dir\/x\.json: cannot write in .*no-such-dir \(ENOENT\)\n/,
    );
    expect(existsSync(marker)).toBe(false);
  });

  it.skipIf(!existsSync('/dev/full'))(
    '--json-file on a full disk: exit 1, and the summary says so',
    async () => {
      const r = await trustrunRun(w, ['--json-file', '/dev/full'], ['true']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/: true exited 0; trustrun exits 1\n/);
      expect(r.stderr).toMatch(/\ntrustrun: cannot write --json-file \/dev\/full: ENOSPC\n$/);
    },
  );

  it("accepts the earlier tool's --no-tui (trustrun always prints plain lines)", async () => {
    const r = await trustrunRun(w, ['--no-tui'], ['sh', '-c', 'exit 4']);
    expect(r.code).toBe(4);
    expect(r.stderr).not.toContain('unknown option');
  });

  it('the session names the policy by its name, and the address the proxy listened on', async () => {
    const file = join(w.dir, 'named.json');
    const r = await trustrunRun(w, ['--policy', policy, '--json-file', file], ['true']);
    expect(r.code).toBe(0);
    const s = await readSummary(file);
    await withStore(w, (store) => {
      const row = store.getSession(s.session)!;
      expect(row.policy).toBe('run-test');
      expect(row.listen).toMatch(/^127\.0\.0\.1:[1-9]\d*$/);
    });
  });

  it("an unnamed policy is shown by its file's name; a legacy file's notice has the warning prefix", async () => {
    const unnamed = join(w.dir, 'noname.yaml');
    writeFileSync(unnamed, 'version: 2\ndefaults:\n  action: allow\n');
    const r = await trustrunRun(w, ['--policy', unnamed, '--json'], ['true']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('policy noname.yaml, session');
    expect(JSON.parse(lastLine(r.stdout))).toMatchObject({ policy: 'noname.yaml' });
    const legacy = join(w.dir, 'old.yaml');
    writeFileSync(legacy, 'name: old\nrules: []\n');
    const l = await trustrunRun(w, ['--policy', legacy], ['true']);
    expect(l.stderr).toMatch(/^trustrun: warning: .*old\.yaml: legacy policy file/m);
  });

  it("says that the earlier tool's saved overrides for the policy are not applied", async () => {
    const dir = join(w.dataDir, 'overrides');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'run-test.yaml'), 'rules:\n  - match: "*.x.test"\n    action: alert\n');
    try {
      const r = await trustrunRun(w, ['--policy', policy], ['true']);
      expect(r.stderr).toContain(
        `trustrun: warning: ${join(dir, 'run-test.yaml')}: rules saved by the earlier tool's screen are not applied`,
      );
      const none = await trustrunRun(w, [], ['true']);
      expect(none.stderr).not.toContain('overrides');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('shows and records the command line redacted (a token in a URL, curl -u)', async () => {
    const argv = [
      'sh',
      '-c',
      'exit 0',
      'https://h.test/x?access_token=RUNMARK1',
      '-u',
      'me:RUNMARK2',
    ];
    const r = await trustrunRun(w, ['--json'], argv);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).not.toContain('RUNMARK');
    const s = JSON.parse(lastLine(r.stdout)) as RunSummary;
    expect(s.command).toEqual([
      'sh',
      '-c',
      'exit 0',
      'https://h.test/x?access_token=[REDACTED:token]',
      '-u',
      'me:[REDACTED:password]',
    ]);
    await withStore(w, (store) => expect(store.getSession(s.session)!.command).toEqual(s.command));
  });
});

/** Starts `trustrun run` and resolves once the child printed "ready". */
function startRun(argv: string[], flags: string[] = []) {
  const child = spawn(
    process.execPath,
    [CLI, 'run', '--data-dir', w.dataDir, '--json', ...flags, '--', ...argv],
    { env: w.env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const ready = new Promise<void>((done) =>
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (stdout.includes('ready')) done();
    }),
  );
  const exit = new Promise<{ code: number | null; stdout: string; stderr: string }>((done) =>
    child.on('close', (code) => done({ code, stdout, stderr })),
  );
  return { child, ready, exit };
}

describe('signals', () => {
  it('SIGINT to trustrun reaches the child, which decides the exit code', async () => {
    const { child, ready, exit } = startRun([
      'sh',
      '-c',
      'trap "echo got-INT; exit 42" INT; echo ready; while :; do sleep 0.1; done',
    ]);
    await ready;
    child.kill('SIGINT'); // trustrun only; the child is not signalled by the test
    const r = await exit;
    expect(r.code).toBe(42);
    expect(r.stdout).toContain('got-INT');
    const s = JSON.parse(lastLine(r.stdout)) as RunSummary;
    expect(s).toMatchObject({ status: 'interrupted', exitCode: 42 });
    await withStore(w, (store) =>
      expect(store.getSession(s.session)).toMatchObject({ status: 'interrupted', exitCode: 42 }),
    );
  });

  it.skipIf(!requireClient('isolation'))(
    'with --isolate, SIGINT to trustrun reaches the command once, through the namespace',
    async () => {
      const { child, ready, exit } = startRun(
        [
          'sh',
          '-c',
          "n=0; trap 'n=$((n+1)); echo got-INT-$n' INT; echo ready; i=0; " +
            'while [ $i -lt 10 ]; do sleep 0.1; i=$((i+1)); done; exit 42',
        ],
        ['--isolate'],
      );
      await ready;
      child.kill('SIGINT'); // trustrun only
      const r = await exit;
      expect(r.code, r.stderr).toBe(42);
      expect(r.stdout).toContain('got-INT-1');
      expect(r.stdout).not.toContain('got-INT-2');
      expect(JSON.parse(lastLine(r.stdout))).toMatchObject({
        status: 'interrupted',
        isolated: true,
        exitCode: 42,
      });
    },
  );

  it('SIGTERM to trustrun is forwarded: the child dies of it, trustrun exits 143', async () => {
    const { child, ready, exit } = startRun(['sh', '-c', 'echo ready; exec sleep 30']);
    await ready;
    child.kill('SIGTERM');
    const r = await exit;
    expect(r.code).toBe(143);
    expect(JSON.parse(lastLine(r.stdout))).toMatchObject({
      status: 'interrupted',
      child: { signal: 'SIGTERM' },
    });
  });
});

describe('stdio, summary and environment', () => {
  it('a reader that goes away (| head -1): exit 128 + SIGPIPE, no stack trace', async () => {
    // A real pipe (a shell's), where writing after the reader left raises SIGPIPE / EPIPE.
    const child = spawn(
      'bash',
      [
        '-c',
        `"$0" "$1" run --data-dir "$2" --json -- yes | head -1 >/dev/null; echo "status \${PIPESTATUS[0]}" >&2`,
        process.execPath,
        CLI,
        w.dataDir,
      ],
      { env: w.env, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    await new Promise((r) => child.on('close', r));
    expect(stderr).toMatch(/\nstatus 141\n$/);
    expect(stderr).not.toMatch(/EPIPE|Error:|    at /);
    expect(stderr).toMatch(/killed by SIGPIPE; trustrun exits 141/);
  });

  it('stdin passes through to the child; --json is the last line of stdout', async () => {
    const r = await trustrunRun(w, ['--json'], ['cat'], { input: 'line one\nno newline at end' });
    expect(r.code).toBe(0);
    expect(r.stdout.startsWith('line one\nno newline at end\n')).toBe(true);
    const s = JSON.parse(lastLine(r.stdout)) as RunSummary;
    expect(s).toMatchObject({ command: ['cat'], exitCode: 0, violations: [], requests: 0 });
  });

  it('--json with a quiet child: stdout is exactly one JSON document', async () => {
    const r = await trustrunRun(w, ['--json'], ['true']);
    const s = JSON.parse(r.stdout) as RunSummary;
    expect(Object.keys(s).sort()).toEqual(
      [
        'bytesDown',
        'bytesUp',
        'child',
        'command',
        'connections',
        'dataDir',
        'destinations',
        'durationMs',
        'exitCode',
        'isolated',
        'level',
        'policy',
        'policyFile',
        'proxy',
        'requests',
        'session',
        'startedAt',
        'status',
        'violations',
      ].sort(),
    );
    expect(s.proxy).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(s.proxy).not.toBe('http://127.0.0.1:8080');
    expect(s.dataDir).toBe(w.dataDir);
  });

  it.skipIf(!requireClient('curl'))('the human summary on stderr', async () => {
    const r = await trustrunRun(
      w,
      ['--level', 'headers'],
      ['curl', '-sS', '-o', '/dev/null', `https://${API}/summary`],
    );
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(
      /^trustrun: running curl .* through http:\/\/127\.0\.0\.1:\d+ \(level headers, no policy, session \w+\)\n/,
    );
    expect(r.stderr).toMatch(
      /destinations \(1\):\n\s+api\.example\.test:443\s+via proxy\s+1 conn\s+1 req\s+\d+(\.\d)? (B|KiB) up\s+\d+(\.\d)? (B|KiB) down\n/,
    );
    expect(r.stderr).toMatch(/requests: 1 {3}connections: 1 {3}bytes: /);
    expect(r.stderr).toContain('violations: none');
  });

  it('the environment the child gets', async () => {
    const names = [
      'HTTP_PROXY',
      'http_proxy',
      'HTTPS_PROXY',
      'https_proxy',
      'ALL_PROXY',
      'all_proxy',
      'NO_PROXY',
      'no_proxy',
      'SSL_CERT_FILE',
      'CURL_CA_BUNDLE',
      'REQUESTS_CA_BUNDLE',
      'GIT_SSL_CAINFO',
      'AWS_CA_BUNDLE',
      'PIP_CERT',
      'DENO_CERT',
      'CARGO_HTTP_CAINFO',
      'NODE_EXTRA_CA_CERTS',
      'NODE_OPTIONS',
      'R_PROFILE',
      'WGETRC',
      'JAVA_TOOL_OPTIONS',
    ];
    const script = `process.stdout.write(JSON.stringify(Object.fromEntries(${JSON.stringify(names)}.map((n) => [n, process.env[n] ?? null]))))`;
    const prior = { ...w.env, NODE_OPTIONS: '--max-old-space-size=200', NO_PROXY: 'example.test' };
    const { run } = await import('../../helpers/proc.js');
    const r = await run(
      process.execPath,
      [CLI, 'run', '--data-dir', w.dataDir, '--json', '--', 'node', '-e', script],
      { env: prior },
    );
    expect(r.code).toBe(0);
    const [envLine, summaryLine] = r.stdout.split('\n');
    const env = JSON.parse(envLine!) as Record<string, string | null>;
    const s = JSON.parse(summaryLine!) as RunSummary;
    for (const n of [
      'HTTP_PROXY',
      'http_proxy',
      'HTTPS_PROXY',
      'https_proxy',
      'ALL_PROXY',
      'all_proxy',
    ]) {
      expect(env[n]).toBe(s.proxy);
    }
    // Nothing bypasses the proxy, loopback included (the user's NO_PROXY is replaced).
    expect(env.NO_PROXY).toBe('');
    expect(env.no_proxy).toBe('');
    const bundle = join(w.dataDir, 'ca', 'bundle.pem');
    for (const n of [
      'SSL_CERT_FILE',
      'CURL_CA_BUNDLE',
      'REQUESTS_CA_BUNDLE',
      'GIT_SSL_CAINFO',
      'AWS_CA_BUNDLE',
      'PIP_CERT',
      'DENO_CERT',
      'CARGO_HTTP_CAINFO',
    ]) {
      expect(env[n]).toBe(bundle);
    }
    expect(env.NODE_EXTRA_CA_CERTS).toBe(join(w.dataDir, 'ca', 'ca.pem'));
    expect(env.NODE_OPTIONS).toBe(
      `--max-old-space-size=200 --require ${resolve('shims/node-preload.cjs')}`,
    );
    const shims = join(w.dataDir, 'shims');
    expect(env.R_PROFILE).toBe(join(shims, 'Rprofile.R'));
    expect(env.WGETRC).toBe(join(shims, 'wgetrc'));
    const port = new URL(s.proxy).port;
    expect(env.JAVA_TOOL_OPTIONS).toBe(
      `-Djavax.net.ssl.trustStore=${join(shims, 'java-truststore.p12')} -Djavax.net.ssl.trustStoreType=PKCS12 ` +
        `-Djavax.net.ssl.trustStorePassword=trustrun -Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort=${port} ` +
        `-Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=${port} -Dhttp.nonProxyHosts=`,
    );
    expect(statSync(shims).mode & 0o777).toBe(0o700);
    for (const f of ['Rprofile.R', 'wgetrc', 'java-truststore.p12']) {
      expect(statSync(join(shims, f)).mode & 0o777).toBe(0o600);
    }
  });
});
