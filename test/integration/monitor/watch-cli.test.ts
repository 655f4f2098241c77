import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore } from '../../../src/store/index.js';
import { isTrustRunError, silentLogger } from '../../../src/core/index.js';
import { watchCommand } from '../../../src/cli/commands/watch.js';
import { isAlive } from '../../../src/monitor/index.js';
import { CLI, run } from '../../helpers/proc.js';
import {
  Kids,
  connectScript,
  exited,
  localServer,
  policyFile,
  sleep,
  type LocalServer,
} from './helpers.js';

// CLI tests run bin/trustrun.js on dist/: build it first (npx tsc -p tsconfig.build.json).
const kids = new Kids();
let dataDir: string;
beforeEach(() => {
  dataDir = mkdtempSync(join(tmpdir(), 'trustrun-watch-'));
  cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
});
const servers: LocalServer[] = [];
const cleanups: Array<() => void> = [];
afterEach(async () => {
  kids.killAll();
  for (const s of servers.splice(0)) await s.close();
  for (const c of cleanups.splice(0)) c();
});

async function server(): Promise<LocalServer> {
  const s = await localServer();
  servers.push(s);
  return s;
}

function watchCli(args: string[]) {
  return run(process.execPath, [CLI, 'watch', '--data-dir', dataDir, ...args], {
    timeoutMs: 30_000,
  });
}

describe('trustrun watch (CLI)', () => {
  it('a PID that does not exist exits 2 with one clear line', async () => {
    const r = await watchCli(['99999999']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('trustrun: watch: no running process with PID 99999999');
    const bad = await watchCli(['12x']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/PID must be a positive whole number, got '12x'/);
    expect(bad.stderr).not.toMatch(/\bat \S+:\d+/); // no stack trace
  });

  it('prints each new destination and ends when the process exits (exit 0)', async () => {
    const srv = await server();
    // The child connects when told (on stdin), so a slow CLI start cannot miss it.
    const child = kids.add(
      spawn(
        process.execPath,
        ['-e', `process.stdin.once('data', () => { ${connectScript(srv.port, 0, 800)} });`],
        { stdio: ['pipe', 'ignore', 'ignore'] },
      ),
    );
    const cli = spawn(
      process.execPath,
      [CLI, 'watch', '--data-dir', dataDir, '--interval', '20', String(child.pid)],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    let stdout = '';
    let told = false;
    child.stdin!.on('error', () => {}); // the child may be gone by the time a write lands
    cli.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    cli.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (!told && stderr.includes('Press Ctrl+C')) {
        told = true;
        child.stdin!.write('go\n');
      }
    });
    const code = await new Promise<number | null>((r) => cli.once('close', (c) => r(c)));
    expect(stderr).toContain(`TrustRun watching PID ${child.pid}`);
    expect(stderr).toMatch(/cannot be put behind the proxy after the fact/);
    expect(stderr).toMatch(
      new RegExp(`node\\[${child.pid}\\] → 127\\.0\\.0\\.1:${srv.port} \\(tcp\\)`),
    );
    expect(stderr).toMatch(/process exited\): 1 connection\(s\), 0 violation\(s\)/);
    expect(code).toBe(0);
    expect(stdout).toBe('');
    await exited(child);
    expect(child.exitCode).toBe(0);
    // The session says what was watched; its exit code is the program's, which watch cannot know.
    const store = await openStore({ dataDir });
    try {
      const [session] = store.listSessions({ limit: 1 }).items;
      expect(session).toMatchObject({ kind: 'watch', status: 'completed', exitCode: null });
      expect(session!.command![0]).toBe(process.execPath);
      expect(session!.command).toContain('-e');
    } finally {
      await store.close();
    }
  });

  it('--json: one object per connection, then a summary; a kill rule kills and exits 1', async () => {
    const srv = await server();
    const p = policyFile(
      `version: 2\nname: strict\nrules:\n  - match: 127.0.0.0/8\n    ports: [${srv.port}]\n    action: kill\n    reason: not allowed here\n`,
    );
    cleanups.push(p.cleanup);
    const child = kids.node(connectScript(srv.port, 3_000, 20_000));
    const r = await watchCli(['--json', '--policy', p.file, '--interval', '20', String(child.pid)]);
    expect(r.code).toBe(1);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({
      type: 'connection',
      pid: child.pid,
      remoteAddr: '127.0.0.1',
      remotePort: srv.port,
      enforced: true,
      verdict: { action: 'kill', violation: true, reason: 'not allowed here' },
    });
    expect(lines[1]).toMatchObject({
      type: 'summary',
      pid: child.pid,
      policy: 'strict',
      status: 'exited',
      connections: 1,
      violations: 1,
      killed: true,
      exitCode: 1,
    });
    await sleep(200);
    expect(isAlive(child.pid!)).toBe(false);
    // Recorded: the session, the monitor event and the violation pointing at it.
    const store = await openStore({ dataDir });
    try {
      const session = store.getSession(lines[1]!.session as string)!;
      expect(session).toMatchObject({ kind: 'watch', policy: 'strict', status: 'completed' });
      const events = store.listMonitorEvents({ sessionId: session.id }).items;
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({
        pid: child.pid,
        remoteAddr: '127.0.0.1',
        remotePort: srv.port,
        verdictAction: 'kill',
        violation: true,
        enforced: true,
      });
      const violations = store.listViolations({ sessionId: session.id }).items;
      expect(violations).toHaveLength(1);
      expect(violations[0]).toMatchObject({ monitorEventId: events[0]!.id, enforced: true });
    } finally {
      await store.close();
    }
  });

  it('Ctrl-C (the abort signal) stops watching a process that goes on', async () => {
    const child = kids.add(spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)']));
    const out: string[] = [];
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 400);
    const r = await watchCommand(
      String(child.pid),
      { interval: 50, dataDir },
      { out: (t) => out.push(t), err: (t) => out.push(t) },
      ac.signal,
      silentLogger(),
    );
    expect(r).toMatchObject({ exitCode: 0, status: 'stopped', violations: 0, killed: false });
    expect(out.join('')).toMatch(/Stopping\.\.\./);
    expect(isAlive(child.pid!)).toBe(true);
  });

  it('takes --dns-timeout, --whois-timeout and --no-whois; a bad timeout is one line, exit 2', async () => {
    const help = await run(process.execPath, [CLI, 'watch', '--help']);
    expect(help.stdout).toMatch(/--dns-timeout <ms>/);
    expect(help.stdout).toMatch(/--whois-timeout <ms>/);
    expect(help.stdout).toMatch(/--no-whois/);
    const bad = await run(process.execPath, [
      CLI,
      'watch',
      '--whois-timeout',
      'soon',
      '--data-dir',
      dataDir,
      String(process.pid),
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^trustrun: .*--whois-timeout.*\n$/);
  });

  it('a missing policy file is a usage error naming the file', async () => {
    const err = await watchCommand(String(process.pid), {
      policy: '/nonexistent/p.yaml',
      dataDir,
    }).catch((e: unknown) => e);
    expect(isTrustRunError(err, 'TR_USAGE')).toBe(true);
    expect((err as Error).message).toBe('watch: policy file not found: /nonexistent/p.yaml');
  });
});
