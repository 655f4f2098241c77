import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/core/index.js';
import {
  startMonitor,
  type DnsFunctions,
  type KillInfo,
  type Monitor,
  type MonitorEvent,
  type MonitorOptions,
  type UpdateReason,
} from '../../../src/monitor/index.js';
import { loadPolicy } from '../../../src/policy/index.js';
import { writeFileSync } from 'node:fs';
import { FakeProc } from './fakeproc.js';
import { until } from '../../helpers/wait.js';

// The monitor end to end over a fake /proc: remote addresses that are not loopback (which the
// tests may not connect to) and a fake resolver.
const LOCAL = '0202000A:C350'; // 10.0.2.2:50000
const API = '057100CB:01BB'; // 203.0.113.5:443
const AZ = '0100500D:01BB'; // 13.80.0.1:443

let dir: string;
let proc: FakeProc;
const monitors: Monitor[] = [];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'trustrun-mon-'));
  proc = new FakeProc(join(dir, 'proc'));
  proc.proc(1, 0);
  proc.proc(100, 1);
});
afterEach(async () => {
  for (const m of monitors.splice(0)) await m.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function policy(yaml: string) {
  const file = join(dir, 'p.yaml');
  writeFileSync(file, yaml);
  return loadPolicy(file, { warn: () => {} });
}

function dns(answers: Record<string, string>, delayMs = 0): DnsFunctions & { asked: string[] } {
  const asked: string[] = [];
  const wait = () => new Promise((r) => setTimeout(r, delayMs));
  return {
    asked,
    reverse: async (ip) => {
      asked.push(ip);
      await wait();
      if (!answers[ip]) throw new Error('ENOTFOUND');
      return [answers[ip]!];
    },
    lookup: async (name) => Object.keys(answers).filter((ip) => answers[ip] === name),
  };
}

function start(extra: Partial<MonitorOptions> = {}) {
  const events: MonitorEvent[] = [];
  const updates: Array<[MonitorEvent, UpdateReason]> = [];
  const kills: KillInfo[] = [];
  const m = startMonitor(
    {
      rootPid: 100,
      intervalMs: 10,
      procRoot: proc.root,
      onEvent: (e) => events.push({ ...e }),
      onUpdate: (e, r) => updates.push([{ ...e }, r]),
      onKill: (k) => kills.push(k),
      // No test asks a real whois server; the test that needs whois brings its own.
      whoisLookups: false,
      ...extra,
    },
    silentLogger(),
  );
  monitors.push(m);
  return { m, events, updates, kills };
}

describe('monitor over a fake /proc', () => {
  it('reports first, then adds the organisation whois found as an update', async () => {
    proc.fd(100, 3, 11);
    proc.table('tcp', [[LOCAL, API, '01', 11]]);
    const asked: string[] = [];
    let answer: (text: string) => void = () => {};
    const w = start({
      dns: dns({}),
      whoisLookups: true,
      whois: (ip) => {
        asked.push(ip);
        return new Promise((r) => (answer = r));
      },
    });
    await until(() => w.events.length === 1);
    // Reported (and decided) without waiting for whois.
    expect(w.events[0]).toMatchObject({ remoteAddr: '203.0.113.5', org: null });
    await until(() => asked.length === 1);
    answer('NetName: EXAMPLE-NET\nOrgName: Example Corp\n');
    await until(() => w.updates.some(([, r]) => r === 'org'));
    const [e] = w.updates.find(([, r]) => r === 'org')!;
    expect(e).toMatchObject({ remoteAddr: '203.0.113.5', org: 'Example Corp' });
    expect(asked).toEqual(['203.0.113.5']);
  });

  it('decides with the confirmed hostname: a hostname allow rule beats a kill default', async () => {
    const pol = await policy(
      'version: 2\nname: names\nrules:\n  - match: "*.example.org"\n    action: allow\ndefaults:\n  action: kill\n',
    );
    proc.fd(100, 3, 11);
    proc.table('tcp', [[LOCAL, API, '01', 11]]);
    const d = dns({ '203.0.113.5': 'api.example.org' });
    const w = start({ policy: pol, dns: d });
    await until(() => w.events.length === 1);
    expect(w.events[0]).toMatchObject({
      pid: 100,
      remoteAddr: '203.0.113.5',
      remotePort: 443,
      localAddr: '10.0.2.2',
      hostname: 'api.example.org',
      enforced: null,
    });
    expect(w.events[0]!.verdict).toMatchObject({ action: 'allow', rule: '*.example.org' });
    expect(w.kills).toEqual([]);
    expect(d.asked).toEqual(['203.0.113.5']);
  });

  it('without a confirmed name the IP decides, and a kill verdict kills (once)', async () => {
    const pol = await policy(
      'version: 2\nname: names\nrules:\n  - match: "*.example.org"\n    action: allow\ndefaults:\n  action: kill\n',
    );
    proc.fd(100, 3, 11);
    proc.fd(100, 4, 12);
    proc.table('tcp', [
      [LOCAL, API, '01', 11],
      ['0202000A:C351', AZ, '01', 12],
    ]);
    // The PTR name claims example.org, but example.org does not resolve back to the address.
    const d: DnsFunctions = {
      reverse: async () => ['api.example.org'],
      lookup: async () => ['192.0.2.1'],
    };
    const w = start({ policy: pol, dns: d });
    await until(() => w.events.length === 2);
    for (const e of w.events) {
      expect(e.hostname).toBeNull();
      expect(e.verdict).toMatchObject({ action: 'kill', violation: true, rule: null });
      expect(e.enforced).toBe(true);
    }
    expect(w.events.find((e) => e.remoteAddr === '13.80.0.1')!.org).toBe('Microsoft Azure');
    expect(w.kills).toHaveLength(1);
    expect(w.m.stats().violations).toBe(2);
  });

  it('a slow resolver does not hold the poll', async () => {
    proc.fd(100, 3, 11);
    proc.table('tcp', [[LOCAL, API, '01', 11]]);
    // Five polls take ~50 ms; the lookup is given 1.5 s (stop() waits for it to give up).
    const w = start({ dns: dns({ '203.0.113.5': 'api.example.org' }, 10_000), dnsTimeoutMs: 1500 });
    await until(() => w.m.stats().polls >= 5);
    expect(w.events).toEqual([]); // the name is still pending; polling went on meanwhile
  });

  it('the verdict waits at most the DNS timeout', async () => {
    proc.fd(100, 3, 11);
    proc.table('tcp', [[LOCAL, API, '01', 11]]);
    const w = start({ dns: dns({ '203.0.113.5': 'api.example.org' }, 10_000), dnsTimeoutMs: 150 });
    const t0 = Date.now();
    await until(() => w.events.length === 1);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(w.events[0]!.hostname).toBeNull();
  });

  it('one event per connection; state changes and the close are updates', async () => {
    proc.fd(100, 3, 11);
    proc.table('tcp', [[LOCAL, API, '01', 11]]);
    const w = start({ resolveNames: false });
    await until(() => w.events.length === 1);
    await until(() => w.m.stats().polls >= 3);
    proc.table('tcp', [[LOCAL, API, '08', 11]]); // CLOSE_WAIT, seen at the periodic refresh
    await until(() => w.updates.length === 1);
    expect(w.updates[0]![1]).toBe('state');
    expect(w.updates[0]![0].state).toBe('CLOSE_WAIT');
    proc.closeFd(100, 3);
    await until(() => w.updates.length === 2);
    expect(w.updates[1]![1]).toBe('closed');
    expect(w.updates[1]![0].lastSeen).toBeGreaterThanOrEqual(w.events[0]!.firstSeen);
    expect(w.events).toHaveLength(1);
    // The same 4-tuple opened again (a new socket) is a new connection.
    proc.fd(100, 3, 13);
    proc.table('tcp', [[LOCAL, API, '01', 13]]);
    await until(() => w.events.length === 2);
    expect(w.events[1]!.id).not.toBe(w.events[0]!.id);
  });

  it('skips listeners, unconnected sockets and ignored destinations', async () => {
    proc.fd(100, 3, 11);
    proc.fd(100, 4, 12);
    proc.fd(100, 5, 13);
    proc.fd(100, 6, 14);
    proc.table('tcp', [
      ['0100007F:1F90', '00000000:0000', '0A', 11], // listener
      [LOCAL, API, '01', 12],
      ['0202000A:C352', AZ, '01', 13],
    ]);
    proc.table('udp', [['00000000:14E9', '00000000:0000', '07', 14]]); // unconnected UDP
    const w = start({
      resolveNames: false,
      ignore: (addr, port) => addr === '13.80.0.1' && port === 443,
    });
    await until(() => w.m.stats().polls >= 5);
    expect(w.events.map((e) => e.remoteAddr)).toEqual(['203.0.113.5']);
    // Ignored, but attributable.
    expect(w.m.attribute('10.0.2.2', 50002)).toEqual({ pid: 100, exe: null });
  });

  it('a new child is followed; done resolves when the root exits', async () => {
    const w = start({ resolveNames: false });
    await until(() => w.m.stats().polls >= 2);
    proc.proc(101, 100);
    proc.fd(101, 7, 21);
    proc.table('tcp', [[LOCAL, API, '02', 21]]);
    await until(() => w.events.length === 1);
    expect(w.events[0]).toMatchObject({ pid: 101, state: 'SYN_SENT' });
    expect(w.m.tree()).toEqual([100, 101]);
    proc.proc(100, 1, { state: 'Z' });
    await w.m.done;
    expect(w.m.stats().processes).toBeGreaterThan(0);
  });
});
