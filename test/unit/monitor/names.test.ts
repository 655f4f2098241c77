import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  AddressNames,
  NameResolver,
  WhoisOrgs,
  isLocalAddress,
  isPrivateAddress,
  orgFor,
  systemWhois,
  whoisOrg,
  type WhoisFunction,
} from '../../../src/monitor/index.js';

describe('organisation table', () => {
  it('maps the earlier tool’s ranges (R1)', () => {
    expect(orgFor('13.80.0.1')).toBe('Microsoft Azure');
    expect(orgFor('3.5.1.1')).toBe('Amazon AWS');
    expect(orgFor('34.100.0.1')).toBe('Google Cloud');
    expect(orgFor('104.16.0.1')).toBe('Cloudflare');
    expect(orgFor('17.253.144.10')).toBe('Apple Inc.');
    expect(orgFor('20.33.1.1')).toBe('GitHub/Microsoft');
    expect(orgFor('::ffff:17.1.2.3')).toBe('Apple Inc.');
  });

  it('has no org for other addresses (R2) and range edges are exact', () => {
    expect(orgFor('198.51.100.1')).toBeNull();
    expect(orgFor('13.63.255.255')).toBeNull();
    expect(orgFor('13.64.0.0')).toBe('Microsoft Azure');
    expect(orgFor('13.95.255.255')).toBe('Microsoft Azure');
    expect(orgFor('13.96.0.0')).toBeNull();
    expect(orgFor('2001:db8::1')).toBeNull();
  });

  it('falls back to host-name suffixes, case-insensitive, apex included (R5)', () => {
    expect(orgFor('198.51.100.1', 'ec2-3-5-1-1.us-east-2.compute.amazonaws.com')).toBe(
      'Amazon AWS',
    );
    expect(orgFor('198.51.100.1', 'server-1-2.cloudfront.net')).toBe('Amazon AWS');
    expect(orgFor('198.51.100.1', 'myapp.eastus.AZURE.com')).toBe('Microsoft Azure');
    expect(orgFor('198.51.100.1', 'openai.com')).toBe('OpenAI');
    expect(orgFor('198.51.100.1', 'notopenai.com')).toBeNull();
    // The range wins over the name.
    expect(orgFor('17.0.0.1', 'x.openai.com')).toBe('Apple Inc.');
  });

  it('knows which addresses are never looked up', () => {
    for (const a of ['127.0.0.1', '127.9.9.9', '::1', '::ffff:127.0.0.1', 'fe80::1', '169.254.1.1'])
      expect(isLocalAddress(a)).toBe(true);
    for (const a of ['10.0.0.1', '8.8.8.8', '2001:db8::1']) expect(isLocalAddress(a)).toBe(false);
  });
});

function fakeDns(ptr: Record<string, string[]>, a: Record<string, string[]>, delayMs = 0) {
  const calls = { reverse: 0, lookup: 0 };
  const later = <T>(v: T) => new Promise<T>((r) => setTimeout(() => r(v), delayMs));
  return {
    calls,
    dns: {
      reverse: async (ip: string) => {
        calls.reverse++;
        if (!ptr[ip]) throw Object.assign(new Error('ENOTFOUND'), { code: 'ENOTFOUND' });
        return later(ptr[ip]!);
      },
      lookup: async (name: string) => {
        calls.lookup++;
        return later(a[name] ?? []);
      },
    },
  };
}

describe('reverse DNS', () => {
  it('uses a PTR name only when it resolves back to the address', async () => {
    const f = fakeDns(
      { '203.0.113.5': ['api.example.org.'], '203.0.113.6': ['myorg.openai.azure.com'] },
      { 'api.example.org': ['203.0.113.5'], 'myorg.openai.azure.com': ['198.51.100.77'] },
    );
    const r = new NameResolver(f.dns, 200);
    expect(await r.resolve('203.0.113.5')).toBe('api.example.org');
    // A spoofed PTR (the name belongs to someone else) is not believed.
    expect(await r.resolve('203.0.113.6')).toBeNull();
    expect(await r.resolve('203.0.113.9')).toBeNull();
  });

  it('looks each address up once (R10)', async () => {
    const f = fakeDns({ '203.0.113.5': ['a.example.org'] }, { 'a.example.org': ['203.0.113.5'] });
    const r = new NameResolver(f.dns, 200);
    const both = await Promise.all([r.resolve('203.0.113.5'), r.resolve('203.0.113.5')]);
    await r.resolve('203.0.113.5');
    expect(both).toEqual(['a.example.org', 'a.example.org']);
    expect(f.calls.reverse).toBe(1);
  });

  it('gives up after the timeout instead of waiting', async () => {
    const f = fakeDns({ '203.0.113.5': ['slow.example.org'] }, {}, 5_000);
    const r = new NameResolver(f.dns, 50);
    const t0 = Date.now();
    expect(await r.resolve('203.0.113.5')).toBeNull();
    expect(Date.now() - t0).toBeLessThan(1_000);
  });
});

/** A whois that answers from a table (a missing address: empty output), counting its calls. */
function fakeWhois(answers: Record<string, string | Error>) {
  const calls: string[] = [];
  const whois: WhoisFunction = async (ip) => {
    calls.push(ip);
    const a = answers[ip];
    if (a instanceof Error) throw a;
    return a ?? '';
  };
  return { calls, whois };
}

const timeout = () => Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' });
const missing = () => Object.assign(new Error('spawn whois ENOENT'), { code: 'ENOENT' });

describe("whois (the earlier tool's resolver rows, lookups faked)", () => {
  const names = (ptr: Record<string, string[]>, a: Record<string, string[]>, w: WhoisFunction) =>
    new AddressNames(new NameResolver(fakeDns(ptr, a).dns, 200), new WhoisOrgs(w, 200));

  it('R2: no range, no name, whois empty: no org', async () => {
    const w = fakeWhois({});
    expect(await names({}, {}, w.whois).describe('198.51.100.1')).toEqual({
      hostname: null,
      org: null,
    });
    expect(w.calls).toEqual(['198.51.100.1']);
  });

  it('R3: the PTR name is the hostname (confirmed by its forward lookup)', async () => {
    const w = fakeWhois({});
    const n = names(
      { '198.51.100.3': ['example.com'] },
      { 'example.com': ['198.51.100.3'] },
      w.whois,
    );
    expect((await n.describe('198.51.100.3')).hostname).toBe('example.com');
  });

  it('R4: PTR fails and whois is empty: no hostname, no org', async () => {
    const w = fakeWhois({ '198.51.100.4': '' });
    expect(await names({}, {}, w.whois).describe('198.51.100.4')).toEqual({
      hostname: null,
      org: null,
    });
  });

  it('R6-R8: the last OrgName/org-name, else the first netname', () => {
    expect(whoisOrg('OrgName: Example Corp\n')).toBe('Example Corp');
    expect(whoisOrg('netname: EXAMPLE-NET\norg-name: Example RIPE Org\n')).toBe('Example RIPE Org');
    expect(whoisOrg('netname: SOME-ISP-NET\nnetname: OTHER-NET\n')).toBe('SOME-ISP-NET');
    expect(whoisOrg('')).toBe('');
    expect(whoisOrg('netname: AZURE-NET\r\nOrgName: Microsoft Corporation\r\n')).toBe(
      'Microsoft Corporation',
    );
    expect(whoisOrg('orgname: First\nOrgName:   Last Org  \n')).toBe('Last Org');
  });

  it('R9: whois is asked once per address; a timeout is tried once more, a missing program never again', async () => {
    const ok = fakeWhois({ '198.51.100.9': 'OrgName: Test Org\n' });
    const n = names({}, {}, ok.whois);
    expect((await n.describe('198.51.100.9')).org).toBe('Test Org');
    expect((await n.describe('198.51.100.9')).org).toBe('Test Org');
    expect(ok.calls).toEqual(['198.51.100.9']);

    const slow = fakeWhois({ '198.51.100.10': timeout() });
    expect((await names({}, {}, slow.whois).describe('198.51.100.10')).org).toBeNull();
    expect(slow.calls).toEqual(['198.51.100.10', '198.51.100.10']);

    const none = fakeWhois({ '198.51.100.11': missing(), '198.51.100.12': missing() });
    const m = names({}, {}, none.whois);
    expect((await m.describe('198.51.100.11')).org).toBeNull();
    expect((await m.describe('198.51.100.12')).org).toBeNull();
    expect(none.calls).toEqual(['198.51.100.11']);
  });

  it('R11: a range or a name suffix places the address without whois; otherwise whois names the org', async () => {
    const w = fakeWhois({ '198.51.100.20': 'OrgName: Fallback Org\n' });
    const n = names(
      {
        '13.80.0.1': ['x.example.net'],
        '198.51.100.21': ['myapp.eastus.azure.com'],
        '198.51.100.20': ['unknown.example.com'],
      },
      {
        'x.example.net': ['13.80.0.1'],
        'myapp.eastus.azure.com': ['198.51.100.21'],
        'unknown.example.com': ['198.51.100.20'],
      },
      w.whois,
    );
    expect((await n.describe('13.80.0.1')).org).toBe('Microsoft Azure');
    expect((await n.describe('198.51.100.21')).org).toBe('Microsoft Azure');
    expect(await n.describe('198.51.100.20')).toEqual({
      hostname: 'unknown.example.com',
      org: 'Fallback Org',
    });
    expect(w.calls).toEqual(['198.51.100.20']);
  });

  it('runs at most four whois at once, and stop() ends them and the queue', async () => {
    let running = 0;
    let most = 0;
    const started: string[] = [];
    const whois: WhoisFunction = (ip, _ms, signal) =>
      new Promise((_resolve, reject) => {
        started.push(ip);
        most = Math.max(most, ++running);
        signal.addEventListener('abort', () => {
          running--;
          reject(Object.assign(new Error('aborted'), { name: 'AbortError' }));
        });
      });
    const orgs = new WhoisOrgs(whois, 60_000);
    const all = Array.from({ length: 20 }, (_, i) => orgs.org(`198.51.100.${i + 1}`));
    await new Promise((r) => setTimeout(r, 20));
    expect(started).toHaveLength(4);
    orgs.stop();
    expect(await Promise.all(all)).toEqual(Array(20).fill(''));
    expect(most).toBe(4);
    expect(running).toBe(0);
    // Stopped lookups are not tried again, and nothing queued starts.
    expect(started).toHaveLength(4);
  });

  it("hands a finished lookup's slot to the next in line: a newcomer cannot make it five", async () => {
    let running = 0;
    let most = 0;
    const finish: (() => void)[] = [];
    const whois: WhoisFunction = () =>
      new Promise((resolve) => {
        most = Math.max(most, ++running);
        finish.push(() => {
          running--;
          resolve('');
        });
      });
    const orgs = new WhoisOrgs(whois, 60_000);
    const first = Array.from({ length: 5 }, (_, i) => orgs.org(`198.51.100.${i + 1}`));
    await new Promise((r) => setTimeout(r, 10));
    expect(finish).toHaveLength(4);
    // One finishes, and in the very next microtask a new address comes.
    finish.shift()!();
    queueMicrotask(() => void orgs.org('198.51.100.99'));
    await new Promise((r) => setTimeout(r, 10));
    expect(most).toBe(4);
    while (finish.length) finish.shift()!();
    await Promise.all(first);
  });

  it('the system whois is ended when the lookup is stopped (a command does not wait for it)', async () => {
    const bin = mkdtempSync(join(tmpdir(), 'trustrun-whois-'));
    writeFileSync(join(bin, 'whois'), '#!/bin/sh\nsleep 30\n', { mode: 0o755 });
    const path = process.env.PATH;
    process.env.PATH = `${bin}:${path}`;
    try {
      const orgs = new WhoisOrgs(systemWhois(), 60_000);
      const started = Date.now();
      const answer = orgs.org('198.51.100.1');
      await new Promise((r) => setTimeout(r, 200));
      orgs.stop();
      expect(await answer).toBe('');
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      process.env.PATH = path;
      rmSync(bin, { recursive: true, force: true });
    }
  });

  it('never sends a private, shared or local address to whois', async () => {
    const w = fakeWhois({});
    const n = names({}, {}, w.whois);
    for (const a of [
      '10.1.2.3',
      '172.16.0.1',
      '192.168.1.1',
      '100.64.0.1',
      '127.0.0.1',
      'fd00::1',
      'fe80::1',
      '::1',
    ]) {
      expect(isPrivateAddress(a) || isLocalAddress(a)).toBe(true);
      expect((await n.describe(a)).org).toBeNull();
    }
    expect(w.calls).toEqual([]);
    expect(isPrivateAddress('8.8.8.8')).toBe(false);
  });
});
