/**
 * `trustrun learn`, as a user runs it (the built program; run `npx tsc -p tsconfig.build.json`
 * first when TRUSTRUN_SKIP_BUILD is set): from a stored session, and from a run of curl through
 * the proxy against a local HTTPS upstream under a real-looking name.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parsePolicy } from '../../../src/policy/index.js';
import { openStore, type Store } from '../../../src/store/index.js';
import { requireClient } from '../../helpers/clients.js';
import { CLI, run } from '../../helpers/proc.js';
import { nextMillisecond } from '../../helpers/wait.js';
import { blockVerdict, requestInput } from '../../unit/store/helpers.js';
import { makeWorld, type World } from '../run/helpers.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'trustrun-learn-'));
  dirs.push(d);
  return d;
}

function trustrun(args: string[], env: NodeJS.ProcessEnv = {}, cwd?: string) {
  return run(process.execPath, [CLI, ...args], {
    cwd,
    env: { PATH: process.env.PATH, HOME: tmpdir(), LANG: 'C.UTF-8', ...env },
    timeoutMs: 120_000,
  });
}

const quiet = { warn: () => {} };

/** A connection to host:443 from a local client, recorded in session `sessionId`. */
function addConnection(
  store: Store,
  sessionId: string,
  host: string,
  ip: string | null,
  mode: 'tunnel' | 'intercept',
): string {
  return store.addConnection({
    sessionId,
    startedAt: Date.now(),
    clientAddr: '127.0.0.1',
    clientPort: 40000,
    host,
    port: 443,
    ip,
    mode,
  });
}

/**
 * A finished session: connections to api.openai.com (x2), chat.openai.com and a refused
 * evil.example.net; a plain request with no connection record; direct sockets to a database and
 * to the session's own proxy listener.
 */
async function recordSession(dataDir: string): Promise<string> {
  const store = await openStore({ dataDir });
  const s = store.startSession({ kind: 'run', level: 'metadata', listen: '127.0.0.1:39999' });
  const conn = (host: string, ip: string | null = null) =>
    addConnection(store, s.id, host, ip, 'tunnel');
  // A tick apart: records made in the same millisecond have no defined order.
  conn('api.openai.com', '104.18.1.1');
  await nextMillisecond();
  conn('api.openai.com', '104.18.1.1');
  await nextMillisecond();
  conn('chat.openai.com');
  await nextMillisecond();
  const evil = conn('evil.example.net');
  await nextMillisecond();
  store.updateConnection(evil, { verdict: blockVerdict, outcome: 'blocked' });
  await store.addRequest(
    requestInput(s.id, { host: 'plain.example.org', port: 80, scheme: 'http' }),
  );
  const event = (remoteAddr: string, remotePort: number, hostname: string | null = null) =>
    store.addMonitorEvent({
      sessionId: s.id,
      pid: 4242,
      protocol: 'tcp',
      localAddr: '127.0.0.1',
      localPort: 41000,
      remoteAddr,
      remotePort,
      state: 'ESTABLISHED',
      firstSeen: Date.now(),
      lastSeen: Date.now(),
      hostname,
    });
  await nextMillisecond();
  event('10.1.2.3', 5432);
  event('127.0.0.1', 39999); // the program talking to the proxy: not a destination
  store.endSession(s.id, { status: 'completed', exitCode: 0 });
  await store.close();
  return s.id;
}

describe('trustrun learn --session', () => {
  it('prints a version 2 policy on stdout that allows what the session reached', async () => {
    const dataDir = join(tmp(), 'data');
    const id = await recordSession(dataDir);
    const r = await trustrun([
      'learn',
      '--session',
      id,
      '--data-dir',
      dataDir,
      '--name',
      'analysis',
    ]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(
      `Learning from session ${id}: 4 connections, 1 requests without a connection record, 1 direct sockets`,
    );
    expect(r.stderr).toContain(
      "Left out 1 destination(s) the session's policy refused: evil.example.net:443",
    );
    expect(r.stderr).toContain('Generated policy: 3 endpoints');
    const policy = await parsePolicy(r.stdout, 'learned.yaml', quiet);
    expect(policy).toMatchObject({ name: 'analysis', format: 'v2', defaultAction: 'block' });
    expect(policy.rules.map((x) => [x.match, x.action, x.ports, x.reason])).toEqual([
      ['*.openai.com', 'allow', [443], 'Learned: seen 3 time(s) (api.openai.com, chat.openai.com)'],
      ['*.example.org', 'allow', [80], 'Learned: seen 1 time(s) (plain.example.org)'],
      ['10.1.2.3', 'allow', [5432], 'Learned: seen 1 time(s)'],
    ]);
    expect(r.stdout).toMatch(new RegExp(`^# Learned by trustrun learn from run session ${id} on `));
    expect(policy.evaluate({ host: 'evil.example.net', port: 443 }).action).toBe('block');
    expect(policy.evaluate({ host: '127.0.0.1', port: 39999, ip: '127.0.0.1' }).action).toBe(
      'block',
    );
  });

  it('never turns a refusal into an allow: no pattern covers a refused name, refused requests stay blocked', async () => {
    const dataDir = join(tmp(), 'data');
    const store = await openStore({ dataDir });
    const s = store.startSession({ kind: 'run', level: 'headers', listen: '127.0.0.1:39999' });
    const conn = (host: string) => addConnection(store, s.id, host, null, 'intercept');
    conn('api.alpha.org');
    await nextMillisecond();
    const chat = conn('chat.alpha.org');
    store.updateConnection(chat, { verdict: blockVerdict, outcome: 'blocked' });
    await nextMillisecond();
    // A connection let through, decided per request: one request allowed, one refused by a
    // methods/paths rule.
    const files = conn('files.beta.org');
    const req = (method: string, url: string, verdict: typeof blockVerdict | null) =>
      store.addRequest(
        requestInput(s.id, { connectionId: files, host: 'files.beta.org', method, url, verdict }),
      );
    await req('GET', '/list?page=2', null);
    await nextMillisecond();
    await req('POST', '/upload?to=x', blockVerdict);
    store.endSession(s.id, { status: 'completed', exitCode: 0 });
    await store.close();

    const r = await trustrun(['learn', '--session', s.id, '--data-dir', dataDir]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(
      "Left out 1 destination(s) the session's policy refused: chat.alpha.org:443\n",
    );
    expect(r.stderr).toContain(
      'Kept 1 refused request(s) as block rules: POST files.beta.org/upload\n',
    );
    const policy = await parsePolicy(r.stdout, 'learned.yaml', quiet);
    expect(policy.rules.map((x) => [x.match, x.action, x.methods, x.paths])).toEqual([
      ['files.beta.org', 'block', ['POST'], ['/upload']],
      ['api.alpha.org', 'allow', [], []],
      ['*.beta.org', 'allow', [], []],
    ]);
    const at = (host: string, method?: string, path?: string) =>
      policy.evaluate({ host, port: 443, ...(method ? { method, path } : {}) }).action;
    expect(at('chat.alpha.org')).toBe('block');
    expect(at('api.alpha.org')).toBe('allow');
    expect(at('files.beta.org', 'POST', '/upload')).toBe('block');
    expect(at('files.beta.org', 'GET', '/list')).toBe('allow');
  });

  it('-o writes the file and prints nothing on stdout', async () => {
    const dir = tmp();
    const dataDir = join(dir, 'data');
    const id = await recordSession(dataDir);
    const out = join(dir, 'policy.yaml');
    const r = await trustrun([
      'learn',
      '--session',
      id,
      '-o',
      out,
      '--data-dir',
      dataDir,
      '--exact',
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`Policy written to ${out}`);
    const policy = await parsePolicy(readFileSync(out, 'utf8'), out, quiet);
    expect(policy.rules.map((x) => x.match)).toEqual([
      'api.openai.com',
      'chat.openai.com',
      'plain.example.org',
      '10.1.2.3',
    ]);
  });

  it('a session that does not exist exits 2 with a clear message', async () => {
    const dataDir = join(tmp(), 'data');
    await recordSession(dataDir);
    const r = await trustrun([
      'learn',
      '--session',
      '0mwwwzzzz000000000000',
      '--data-dir',
      dataDir,
    ]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      `trustrun: learn: no session 0mwwwzzzz000000000000 in ${dataDir}\n` +
        '  List the recorded sessions with `trustrun history`.\n',
    );
    const empty = join(tmp(), 'none');
    const e = await trustrun(['learn', '--session', 'abc', '--data-dir', empty]);
    expect(e.code).toBe(2);
    expect(e.stderr).toMatch(/^trustrun: learn: no session abc in /);
    expect(existsSync(empty)).toBe(false);
  });

  it.each([
    [['learn'], /^trustrun: learn: nothing to learn from/],
    [
      ['learn', '--session', 'x', '--', 'true'],
      /^trustrun: learn: give either --session ID or -- CMD, not both/,
    ],
    [['learn', '--session', 'x', '--default-action', 'allow'], /default-action/],
  ])('usage error %j exits 2', async (args, message) => {
    const r = await trustrun([...args, '--data-dir', tmp()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).toBe('');
  });
});

describe('trustrun learn -- CMD', () => {
  const API = 'api.learn-example.test';
  let w: World;

  beforeAll(async () => {
    if (!existsSync(resolve('dist/cli/main.js'))) {
      throw new Error('dist/ is missing: run `npx tsc -p tsconfig.build.json` first');
    }
    w = await makeWorld([API]);
  });
  afterAll(async () => {
    await w?.close();
  });

  it.skipIf(!requireClient('curl'))(
    'runs curl through the proxy and learns its destination',
    async () => {
      const out = join(w.dir, 'learned.yaml');
      const r = await trustrun(
        [
          'learn',
          '--data-dir',
          w.dataDir,
          ...w.flags,
          '--level',
          'headers',
          '-o',
          out,
          '--',
          'curl',
          '-sS',
          '--fail',
          `https://${API}/v1/x`,
        ],
        w.env,
        w.dir,
      );
      expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({
        code: 0,
        stderr: '',
      });
      expect(w.ups.get(API)!.requests.map((q) => q.url)).toContain('/v1/x');
      expect(r.stderr).toContain(`Policy written to ${out}`);
      const policy = await parsePolicy(readFileSync(out, 'utf8'), out, quiet);
      expect(policy.rules.map((x) => [x.match, x.ports])).toEqual([
        ['*.learn-example.test', [443]],
      ]);
      expect(policy.evaluate({ host: API, port: 443 }).action).toBe('allow');
      expect(policy.evaluate({ host: 'other.test', port: 443 }).action).toBe('block');

      const h = await trustrun(['history', '--json', '--data-dir', w.dataDir], w.env);
      const [session] = JSON.parse(h.stdout);
      expect(session).toMatchObject({
        kind: 'learn',
        command: ['curl', '-sS', '--fail', `https://${API}/v1/x`],
        status: 'completed',
        exitCode: 0,
      });
      expect(session.counts.connections).toBeGreaterThanOrEqual(1);
    },
  );

  it.skipIf(!requireClient('curl'))(
    '--policy before learn is enforced during the run, as after it (the earlier tool ignored it)',
    async () => {
      const policyFile = join(w.dir, 'block-all.yaml');
      writeFileSync(policyFile, 'version: 2\nname: block-all\ndefaults:\n  action: block\n');
      const seen = w.ups.get(API)!.requests.length;
      const r = await trustrun(
        [
          '--policy',
          policyFile,
          'learn',
          '--data-dir',
          w.dataDir,
          ...w.flags,
          '--level',
          'headers',
          '--',
          'sh',
          '-c',
          // The command itself succeeds: trustrun's 1 is the violation.
          `curl -s -o /dev/null https://${API}/blocked; exit 0`,
        ],
        w.env,
        w.dir,
      );
      expect(r.code, r.stderr).toBe(1);
      expect(w.ups.get(API)!.requests.length).toBe(seen);
      expect(r.stderr).toContain("Left out 1 destination(s) the session's policy refused");
      expect(r.stdout).not.toContain('action: allow');
    },
  );

  it("`learn PID` (the earlier tool's form) is a usage error that says what to do instead", async () => {
    const r = await trustrun(['learn', '3278', '--data-dir', w.dataDir], w.env, w.dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^trustrun: learn: a process id .*trustrun watch 3278.*--session/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('a command that cannot start: 127 with one line, as run', async () => {
    const r = await trustrun(
      ['learn', '--data-dir', w.dataDir, '--', 'no-such-command-xyz'],
      w.env,
      w.dir,
    );
    expect(r.code).toBe(127);
    expect(r.stderr).toBe('trustrun: command not found: no-such-command-xyz\n');
  });

  it.skipIf(!requireClient('curl'))(
    "warns with the command's own exit status, not trustrun's (an alert makes trustrun's 1)",
    async () => {
      const policyFile = join(w.dir, 'alert.yaml');
      writeFileSync(policyFile, 'version: 2\nname: al\ndefaults:\n  action: alert\n');
      const args = (cmd: string[]) => [
        'learn',
        '--data-dir',
        w.dataDir,
        ...w.flags,
        '--level',
        'headers',
        '--policy',
        policyFile,
        '--',
        ...cmd,
      ];
      const ok = await trustrun(args(['curl', '-sS', '--fail', `https://${API}/ok`]), w.env, w.dir);
      expect(ok.code, ok.stderr).toBe(1); // the alert: a violation after a clean exit
      expect(ok.stderr).not.toContain('warning: the command');
      const failed = await trustrun(args(['sh', '-c', 'exit 3']), w.env, w.dir);
      expect(failed.code).toBe(3);
      expect(failed.stderr).toContain('warning: the command exited 3;');
    },
  );
});
