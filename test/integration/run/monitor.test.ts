/**
 * `trustrun run` with the socket monitor: proxied requests attributed to the process that made
 * them, and connections that bypass the proxy caught, recorded, evaluated and (for kill) ended.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireClient } from '../../helpers/clients.js';
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
  ({ w, service, close } = await worldWithService([API]));
  port = service.port;
});

afterAll(() => close());

function policyFile(name: string, action: string): string {
  const file = join(w.dir, `${name}.yaml`);
  writeFileSync(
    file,
    `version: 2\nname: ${name}\nrules:\n  - match: 127.0.0.0/8\n    ports: [${port}]\n    action: ${action}\n    reason: database port, not through the proxy\ndefaults:\n  action: allow\n`,
  );
  return file;
}

/** python3 that connects straight to the local service (no proxy) and holds it for a while. */
function direct(holdSeconds: number): string[] {
  return [
    'python3',
    '-c',
    `import socket, time\ns = socket.create_connection(('127.0.0.1', ${port}))\ntime.sleep(${holdSeconds})\ns.close()\n`,
  ];
}

const hasCurl = requireClient('curl');
const hasPython = requireClient('python3');

describe('trustrun run: the socket monitor', () => {
  it.skipIf(!hasCurl)('attributes each proxied request to the process that sent it', async () => {
    const file = join(w.dir, 'attr.json');
    const r = await trustrunRun(
      w,
      ['--level', 'headers', '--json-file', file],
      ['curl', '-sS', '--fail', `https://${API}/attributed`],
    );
    expect(r.code, r.stderr).toBe(0);
    const s = await readSummary(file);
    expect(s.child.pid).toBeGreaterThan(0);
    const rows = await withStore(w, (store) => store.listRequests({ sessionId: s.session }).items);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ host: API, pid: s.child.pid });
    expect(rows[0]!.exe).toMatch(/\/curl$/);
    const conns = await withStore(
      w,
      (store) => store.listConnections({ sessionId: s.session }).items,
    );
    expect(conns[0]).toMatchObject({ pid: s.child.pid });
  });

  it.skipIf(!hasPython)(
    'records a direct connection as an event and an alert violation; exit 1 after a clean exit',
    async () => {
      const file = join(w.dir, 'alert.json');
      const r = await trustrunRun(
        w,
        ['--policy', policyFile('alert-direct', 'alert'), '--interval', '20', '--json-file', file],
        direct(0.5),
      );
      const s = await readSummary(file);
      expect(s.child).toMatchObject({ exitCode: 0 });
      expect(r.code, r.stderr).toBe(1);
      expect(s.destinations).toContainEqual(
        expect.objectContaining({ host: '127.0.0.1', port, via: 'direct', violation: true }),
      );
      expect(s.violations).toEqual([
        expect.objectContaining({ host: '127.0.0.1', port, action: 'alert', enforced: false }),
      ]);
      expect(r.stderr).toMatch(/VIOLATION ALERT 127\.0\.0\.1:\d+/);
      const events = await withStore(
        w,
        (store) => store.listMonitorEvents({ sessionId: s.session }).items,
      );
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({
        pid: s.child.pid,
        protocol: 'tcp',
        remoteAddr: '127.0.0.1',
        remotePort: port,
      });
      expect(events[0]!.exe).toMatch(/python3/);
    },
  );

  it.skipIf(!hasPython)(
    'under a default-block policy a direct connection is a violation that cannot be enforced: exit 1',
    async () => {
      const policy = join(w.dir, 'default-block.yaml');
      writeFileSync(policy, 'version: 2\nname: default-block\ndefaults:\n  action: block\n');
      const file = join(w.dir, 'block.json');
      const r = await trustrunRun(
        w,
        ['--policy', policy, '--interval', '20', '--json-file', file],
        direct(0.5),
      );
      const s = await readSummary(file);
      expect(s.child).toMatchObject({ exitCode: 0, signal: null });
      expect(r.code).toBe(1);
      expect(s.violations).toEqual([
        expect.objectContaining({
          host: '127.0.0.1',
          port,
          action: 'block',
          rule: null,
          enforced: false,
        }),
      ]);
      expect(r.stderr).toMatch(/not enforceable on a direct connection/);
      // The summary does not call a block "allowed" (that marks an alert).
      expect(r.stderr).toMatch(
        /\n\s+BLOCK \(not enforced: a direct connection\) 127\.0\.0\.1:\d+: /,
      );
      expect(r.stderr).not.toMatch(/BLOCK \(allowed\)/);
    },
  );

  it.skipIf(!hasPython)(
    'a kill rule ends the process tree that made a direct connection',
    async () => {
      const file = join(w.dir, 'kill.json');
      // A shell whose python child connects; left alone the whole thing would take 30 s.
      const r = await trustrunRun(
        w,
        ['--policy', policyFile('kill-direct', 'kill'), '--interval', '20', '--json-file', file],
        [
          'sh',
          '-c',
          `${direct(30)
            .map((a) => `'${a.replace(/'/g, `'\\''`)}'`)
            .join(' ')}; echo survived`,
        ],
      );
      const s = await readSummary(file);
      expect(r.stdout).not.toContain('survived');
      expect(r.code).toBe(128 + 15);
      expect(s.child.signal).toBe('SIGTERM');
      expect(s.violations).toEqual([
        expect.objectContaining({ host: '127.0.0.1', port, action: 'kill', enforced: true }),
      ]);
      expect(r.stderr).toMatch(/terminated the process tree/);
      // Said once, in words: no JSON log line among the human ones.
      expect(r.stderr).not.toMatch(/^\{"level"/m);
      // Gone within a second of being seen: the last poll that saw the socket open.
      const [ev] = await withStore(
        w,
        (store) => store.listMonitorEvents({ sessionId: s.session }).items,
      );
      expect(ev!.lastSeen - ev!.firstSeen).toBeLessThan(1000);
    },
  );

  it.skipIf(!hasPython)(
    'follows a process that left the tree by a double fork, and a kill rule ends it',
    async () => {
      const file = join(w.dir, 'daemon.json');
      const quoted = direct(3)
        .map((a) => `'${a.replace(/'/g, `'\\''`)}'`)
        .join(' ');
      // The outer subshell exits at once: the inner one (and its python) is re-parented to
      // init before a poll (every 500 ms) can see its parent, and connects a second later.
      const r = await trustrunRun(
        w,
        ['--policy', policyFile('kill-daemon', 'kill'), '--interval', '500', '--json-file', file],
        ['sh', '-c', `sleep 0.2; ( (sleep 1; ${quoted}; echo daemon survived) & ); sleep 6`],
      );
      const s = await readSummary(file);
      expect(r.stdout).not.toContain('daemon survived');
      expect(s.violations).toEqual([
        expect.objectContaining({ host: '127.0.0.1', port, action: 'kill', enforced: true }),
      ]);
      expect(r.code).toBe(128 + 15);
    },
  );
});
