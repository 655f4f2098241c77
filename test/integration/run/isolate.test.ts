/**
 * `trustrun run --isolate`: the command runs in a network namespace whose only reachable
 * address is the proxy. Proxied clients work as without it (recorded, attributed); a socket that
 * bypasses the proxy fails instead of reaching its server.
 */
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, statSync, writeFileSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireClient } from '../../helpers/clients.js';
import { CLI, run } from '../../helpers/proc.js';
import {
  readSummary,
  worldWithService,
  trustrunRun,
  withStore,
  type LocalService,
  type World,
} from './helpers.js';

const API = 'api.example.test';
let w: World;
let service: LocalService;
let port: number;
let close = async (): Promise<void> => undefined;

beforeAll(async () => {
  ({ w, service, close } = await worldWithService([API], 'hello\n'));
  port = service.port;
});

afterAll(() => close());

/** python3: a raw socket to the local service (never a proxy); prints what happened. */
function bypass(): string {
  return [
    'import socket',
    'try:',
    `    s = socket.create_connection(('127.0.0.1', ${port}), timeout=5)`,
    "    print('bypass: reached', s.recv(16).decode().strip())",
    'except OSError as e:',
    "    print('bypass: failed', type(e).__name__)",
  ].join('\n');
}

const ready = requireClient('isolation');
const hasCurl = requireClient('curl');
const hasPython = requireClient('python3');

describe('trustrun run --isolate', () => {
  it.skipIf(!ready || !hasCurl || !hasPython)(
    'proxied clients are recorded as without it; a socket that bypasses the proxy fails',
    async () => {
      // The same script without isolation reaches the service: the check below can fail.
      const before = service.accepted();
      const open = await trustrunRun(w, [], ['python3', '-c', bypass()]);
      expect(open.code, open.stderr).toBe(0);
      expect(open.stdout).toContain('bypass: reached hello');
      expect(service.accepted()).toBe(before + 1);

      const file = join(w.dir, 'isolated.json');
      const script = [
        `curl -sS --fail -o /dev/null -w 'curl %{http_code}\\n' https://${API}/isolated/curl`,
        `python3 -c "import requests; print('requests', requests.get('https://${API}/isolated/requests').status_code)"`,
        `python3 -c "${bypass().replace(/"/g, '\\"')}"`,
      ].join('\n');
      const r = await trustrunRun(
        w,
        ['--isolate', '--level', 'headers', '--json-file', file],
        ['sh', '-c', script],
      );
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('curl 200');
      expect(r.stdout).toContain('requests 200');
      expect(r.stdout).toMatch(/bypass: failed (ConnectionRefusedError|OSError)/);
      expect(service.accepted()).toBe(before + 1);
      expect(r.stderr).toContain('network: isolated');

      const s = await readSummary(file);
      expect(s.isolated).toBe(true);
      const rows = await withStore(
        w,
        (store) => store.listRequests({ sessionId: s.session }).items,
      );
      // Attributed to the processes inside the namespace, found in its own socket tables.
      expect(rows).toHaveLength(2);
      expect(rows.every((x) => x.host === API && x.status === 200 && x.pid! > 0)).toBe(true);
      expect(rows.map((x) => x.exe?.split('/').pop()).sort()).toEqual([
        'curl',
        expect.stringMatching(/^python3/),
      ]);
    },
  );

  it.skipIf(!ready)('returns the command exit status and the signal that ended it', async () => {
    const exit7 = await trustrunRun(w, ['--isolate'], ['sh', '-c', 'exit 7']);
    expect(exit7.code, exit7.stderr).toBe(7);
    const file = join(w.dir, 'signal.json');
    const killed = await trustrunRun(
      w,
      ['--isolate', '--json-file', file],
      ['sh', '-c', 'kill -TERM $$'],
    );
    expect(killed.code, killed.stderr).toBe(143);
    expect((await readSummary(file)).child.signal).toBe('SIGTERM');
  });

  it.skipIf(!ready || !hasCurl)(
    'a kill rule on a proxied request ends the isolated tree',
    async () => {
      const policy = join(w.dir, 'kill.yaml');
      writeFileSync(
        policy,
        `version: 2\nname: kill-api\nrules:\n  - match: ${API}\n    action: kill\n    reason: not allowed\ndefaults:\n  action: allow\n`,
      );
      const started = Date.now();
      const r = await trustrunRun(
        w,
        ['--isolate', '--policy', policy],
        ['sh', '-c', `curl -sS https://${API}/x; sleep 30; echo survived`],
      );
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(r.stdout).not.toContain('survived');
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/KILL/);
    },
  );

  it.skipIf(!ready || !hasPython || process.getuid?.() !== 0 || !hasNsenter())(
    "as root, the command cannot enter trustrun's namespace again (its capabilities are dropped)",
    async () => {
      const before = service.accepted();
      // The command's parent is the namespace's first process; its parent is trustrun.
      const script = [
        "T=$(awk '/^PPid/{print $2}' /proc/$PPID/status)",
        `nsenter --net=/proc/$T/ns/net python3 -c "${bypass().replace(/"/g, '\\"')}" || echo nsenter-refused`,
        'grep CapEff /proc/self/status',
      ].join('\n');
      const r = await trustrunRun(w, ['--isolate'], ['sh', '-c', script]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('nsenter-refused');
      expect(r.stdout).not.toContain('bypass: reached');
      expect(service.accepted()).toBe(before);
      // CAP_SYS_ADMIN (bit 21) is gone.
      const eff = BigInt(`0x${/CapEff:\s*([0-9a-f]+)/.exec(r.stdout)![1]}`);
      expect(eff & (1n << 21n)).toBe(0n);
    },
  );

  it.skipIf(!ready || process.getuid?.() !== 0)(
    'as root: inherited capabilities are dropped too, and a drop that cannot be made stops the run',
    async () => {
      const escape = [
        "T=$(awk '/^PPid/{print $2}' /proc/$PPID/status)",
        'nsenter --net=/proc/$T/ns/net true && echo escaped || echo nsenter-refused',
      ].join('\n');
      // Inheritable capabilities survive a bounding-set drop at a root exec.
      const inherited = await underSetpriv('--inh-caps=+sys_admin,+net_admin,+sys_ptrace', escape);
      expect(inherited.code, inherited.stderr).toBe(0);
      expect(inherited.stdout).toContain('nsenter-refused');
      expect(inherited.stdout).not.toContain('escaped');
      // Without CAP_SETPCAP the bounding set cannot be lowered: the command does not run.
      const stuck = await underSetpriv('--bounding-set=-setpcap', 'echo ran');
      expect(stuck.code).not.toBe(0);
      expect(stuck.stdout).not.toContain('ran');
      expect(stuck.stderr).toMatch(
        /trustrun: --isolate: the capabilities that could leave the namespace could not be dropped/,
      );
    },
  );

  it.skipIf(!ready)(
    'a signal while the namespace is set up: the command does not start and trustrun exits',
    async () => {
      // The namespace's first process is held for 1.5 s before it opens the port.
      const slow = join(w.dir, 'slow.cjs');
      writeFileSync(
        slow,
        "if ((process.argv[1] || '').endsWith('isolated.js')) { const t = Date.now() + 1500; while (Date.now() < t); }\n",
      );
      const child = spawn(
        process.execPath,
        [CLI, 'run', '--isolate', '--data-dir', w.dataDir, '--', 'sh', '-c', 'echo COMMAND-RAN'],
        { env: { ...w.env, NODE_OPTIONS: `--require ${slow}` }, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      const running = new Promise<void>((done) =>
        child.stderr.on('data', (d: Buffer) => {
          stderr += d.toString();
          if (stderr.includes('trustrun: running')) done();
        }),
      );
      await running;
      await new Promise((r) => setTimeout(r, 300));
      child.kill('SIGINT');
      const code = await new Promise<number | null>((done) => {
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          done(-1);
        }, 15_000);
        child.on('close', (c) => {
          clearTimeout(timer);
          done(c);
        });
      });
      expect(code, stderr).toBe(130);
      expect(stdout).not.toContain('COMMAND-RAN');
      expect(stderr).toContain('SIGINT received before sh started; not starting it');
    },
  );

  it.skipIf(!ready || !hasPython)(
    "the command's own loopback services are not destinations: a kill default leaves them alone",
    async () => {
      const policy = join(w.dir, 'strict.yaml');
      writeFileSync(
        policy,
        `version: 2\nname: strict\nrules:\n  - match: ${API}\n    action: allow\ndefaults:\n  action: kill\n`,
      );
      const file = join(w.dir, 'local.json');
      const local = [
        'import socket, threading, time',
        "srv = socket.create_server(('127.0.0.1', 0))",
        'threading.Thread(target=lambda: srv.accept(), daemon=True).start()',
        "c = socket.create_connection(('127.0.0.1', srv.getsockname()[1]))",
        'time.sleep(0.5)',
        "print('survived')",
      ].join('\n');
      const r = await trustrunRun(
        w,
        ['--isolate', '--policy', policy, '--interval', '20', '--json-file', file],
        ['python3', '-c', local],
      );
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('survived');
      const s = await readSummary(file);
      expect(s.violations).toEqual([]);
      expect(s.destinations).toEqual([]);
    },
  );

  it.skipIf(!ready)('a signal Node ignores (SIGPIPE) is reported as the signal', async () => {
    const file = join(w.dir, 'pipe.json');
    const r = await trustrunRun(
      w,
      ['--isolate', '--json-file', file],
      ['sh', '-c', 'kill -PIPE $$'],
    );
    expect(r.code, r.stderr).toBe(141);
    const s = await readSummary(file);
    expect(s.child).toMatchObject({ signal: 'SIGPIPE', exitCode: null });
    expect(r.stderr).toContain('killed by SIGPIPE');
  });

  it('refuses --host other than 127.0.0.1 in one line', async () => {
    const r = await trustrunRun(w, ['--isolate', '--host', '127.0.0.2'], ['true']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toMatch(
      /^trustrun: .*--isolate cannot be combined with --host 127\.0\.0\.2/,
    );
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it.skipIf(!ready || !hasCurl || process.getuid?.() !== 0 || !otherUserCanRun())(
    'as a user other than root: a user namespace, the user keeps its own ids',
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'trustrun-isolate-user-'));
      await chmod(dir, 0o777);
      // The world's folder is 0700: the upstream CA is given from a folder the user can read.
      const ca = join(dir, 'upstream-ca.pem');
      copyFileSync(w.upstreamCaFile, ca);
      const flags = w.flags.map((f) => (f === w.upstreamCaFile ? ca : f));
      try {
        const r = await run(
          'setpriv',
          [
            '--reuid=65534',
            '--regid=65534',
            '--clear-groups',
            process.execPath,
            CLI,
            'run',
            '--isolate',
            '--level',
            'headers',
            '--data-dir',
            join(dir, 'data'),
            ...flags,
            '--',
            'sh',
            '-c',
            `id -u; echo "argv0=$0"; curl -sS --fail -o /dev/null -w 'curl %{http_code}\\n' https://${API}/as-user`,
          ],
          { env: { ...w.env, HOME: dir }, cwd: dir, timeoutMs: 120_000 },
        );
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toMatch(/^65534\nargv0=sh\ncurl 200$/m);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  );
});

/** `trustrun run --isolate -- sh -c SCRIPT`, started by setpriv with `option` (root only). */
function underSetpriv(option: string, script: string) {
  return run(
    'setpriv',
    [
      option,
      process.execPath,
      CLI,
      'run',
      '--isolate',
      '--data-dir',
      w.dataDir,
      '--',
      'sh',
      '-c',
      script,
    ],
    { env: w.env, cwd: w.dir, timeoutMs: 60_000 },
  );
}

function hasNsenter(): boolean {
  return spawnSync('nsenter', ['--version'], { stdio: 'ignore' }).status === 0;
}

/**
 * Whether another user can run the built CLI from this checkout: every folder above it must be
 * searchable by others (a clone inside a 0700 folder from mktemp is not).
 */
function otherUserCanRun(): boolean {
  let dir = resolve(CLI);
  while (dir !== '/') {
    if ((statSync(dir).mode & 0o005) !== 0o005) {
      console.warn(
        `skipping the --isolate test as another user: ${dir} cannot be read by other users`,
      );
      return false;
    }
    dir = resolve(dir, '..');
  }
  return true;
}
