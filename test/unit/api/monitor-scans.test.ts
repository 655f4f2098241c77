import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { assertNoSecrets, makeFixture, type Fixture } from './fixture.js';

let f: Fixture;
beforeEach(async () => {
  f = await makeFixture(0);
});
afterEach(async () => {
  await f.close();
});

const SECRET = 'sk-live-SecretMarker0123456789abcdef';

async function json(path: string) {
  const res = await f.call(path);
  const text = await res.text();
  expect(res.status, `${path}: ${text.slice(0, 200)}`).toBe(200);
  assertNoSecrets(text);
  expect(text).not.toContain(SECRET);
  return JSON.parse(text) as {
    items: Record<string, unknown>[];
    nextCursor: string | null;
  } & Record<string, unknown>;
}

describe('monitor events', () => {
  it('lists sockets seen outside the proxy, filtered by session, pid, host and verdict', async () => {
    const now = Date.now();
    const base = {
      sessionId: f.sessionId,
      exe: '/usr/bin/python3',
      protocol: 'tcp' as const,
      localAddr: '10.0.0.2',
      localPort: 40000,
      remotePort: 5432,
      state: 'ESTABLISHED',
      firstSeen: now,
      lastSeen: now,
    };
    f.store.addMonitorEvent({ ...base, pid: 100, remoteAddr: '10.1.2.3', hostname: 'db.internal' });
    f.store.addMonitorEvent({
      ...base,
      pid: 200,
      remoteAddr: '203.0.113.9',
      hostname: null,
      verdict: {
        action: 'kill',
        violation: true,
        ruleIndex: null,
        rule: null,
        reason: 'default',
        explanation: 'No rule matched: the default action kill applies.',
        policy: 'p',
      },
      enforced: true,
    });
    await f.store.flush();
    expect((await json('/api/monitor-events')).items).toHaveLength(2);
    expect((await json('/api/monitor-events?pid=100')).items.map((e) => e.hostname)).toEqual([
      'db.internal',
    ]);
    expect((await json('/api/monitor-events?host=*.internal')).items.map((e) => e.pid)).toEqual([
      100,
    ]);
    expect((await json('/api/monitor-events?host=203.0.113.*')).items.map((e) => e.pid)).toEqual([
      200,
    ]);
    expect((await json('/api/monitor-events?verdict=kill')).items.map((e) => e.pid)).toEqual([200]);
    expect((await json('/api/monitor-events?violation=false')).items.map((e) => e.pid)).toEqual([
      100,
    ]);
    expect((await json(`/api/monitor-events?session=${f.otherSessionId}`)).items).toHaveLength(0);
    expect((await f.call('/api/monitor-events?pid=-1')).status).toBe(400);
  });
});

describe('scans and findings', () => {
  it('lists scans, one scan, and its findings redacted', async () => {
    const now = Date.now();
    const scanId = f.store.addScan({
      root: '/work/project',
      startedAt: now - 50,
      endedAt: now,
      files: 3,
      skipped: 0,
      policy: null,
      counts: { info: 0, warning: 1, critical: 1 },
    });
    f.store.addFindings(scanId, [
      {
        file: 'app.py',
        line: 3,
        column: 10,
        kind: 'openai-key',
        severity: 'critical',
        secret: true,
        value: SECRET,
        context: `client = OpenAI(api_key="${SECRET}")`,
      },
      {
        file: 'app.py',
        line: 9,
        column: 5,
        kind: 'url',
        severity: 'warning',
        value: 'https://api.example.org/v1',
        context: 'requests.get("https://api.example.org/v1")',
        endpoint: 'https://api.example.org/v1',
        host: 'api.example.org',
        port: 443,
      },
    ]);
    await f.store.flush();
    const scans = await json('/api/scans');
    expect(scans.items.map((s) => s.id)).toEqual([scanId]);
    expect(await json(`/api/scans/${scanId}`)).toMatchObject({
      root: '/work/project',
      findings: 2,
    });
    const all = await json(`/api/scans/${scanId}/findings`);
    expect(all.items.map((x) => x.kind).sort()).toEqual(['openai-key', 'url']);
    const crit = await json(`/api/scans/${scanId}/findings?severity=critical`);
    expect(crit.items).toHaveLength(1);
    expect(crit.items[0]!.secret).toBe(true);
    expect((await json('/api/scans?root=/elsewhere')).items).toHaveLength(0);
    expect((await f.call(`/api/scans/${'0'.repeat(9)}${'d'.repeat(12)}`)).status).toBe(404);
    expect((await f.call(`/api/scans/${'0'.repeat(9)}${'d'.repeat(12)}/findings`)).status).toBe(
      404,
    );
    expect((await f.call(`/api/scans/${scanId}/findings?severity=high`)).status).toBe(400);
  });
});
