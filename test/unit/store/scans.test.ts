import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { newId } from '../../../src/core/index.js';
import { openStore, type FindingInput, type Store } from '../../../src/store/index.js';
import { TempDirs, dbFiles, expectCode, findMarker } from './helpers.js';

const temp = new TempDirs();
const open: Store[] = [];

async function newStore(dataDir = temp.make()): Promise<Store> {
  const store = await openStore({ dataDir });
  open.push(store);
  return store;
}

afterEach(async () => {
  for (const s of open.splice(0)) await s.close().catch(() => undefined);
  temp.cleanup();
});

const scanInput = (over: Record<string, unknown> = {}) => ({
  root: '/work/project',
  startedAt: 1_700_000_000_000,
  endedAt: 1_700_000_000_250,
  files: 12,
  skipped: 1,
  policy: 'hipaa',
  counts: { info: 1, warning: 2, critical: 1 },
  ...over,
});

function urlFinding(over: Partial<FindingInput> = {}): FindingInput {
  return {
    file: 'app.py',
    line: 3,
    column: 8,
    kind: 'python_url_literal',
    patterns: ['python_url_literal', 'url'],
    severity: 'critical',
    value: 'https://api.openai.com/v1/chat?api_key=abc123secretvalue',
    context: 'url = "https://api.openai.com/v1/chat?api_key=abc123secretvalue"',
    endpoint: 'https://api.openai.com/v1/chat?api_key=abc123secretvalue',
    host: 'API.OpenAI.com',
    port: 443,
    fingerprint: 'f1',
    verdict: { action: 'block', violation: true, rule: '*.openai.com', reason: 'no BAA' },
    ...over,
  };
}

function secretFinding(secret: string, over: Partial<FindingInput> = {}): FindingInput {
  return {
    file: 'settings.env',
    line: 1,
    column: 9,
    kind: 'aws_access_key',
    severity: 'critical',
    secret: true,
    value: secret,
    context: `AWS_KEY=${secret} # prod`,
    ...over,
  };
}

describe('scans', () => {
  it('stores a scan with its counts and reads it back', async () => {
    const store = await newStore();
    const id = store.addScan(scanInput());
    expect(id).toMatch(/^[0-9a-z]{9}[0-9a-f]{12}$/);
    expect(store.getScan(id)).toEqual({
      id,
      root: '/work/project',
      startedAt: 1_700_000_000_000,
      endedAt: 1_700_000_000_250,
      files: 12,
      skipped: 1,
      policy: 'hipaa',
      counts: { info: 1, warning: 2, critical: 1 },
      findings: 0,
    });
    expect(store.getScan(newId())).toBeNull();
  });

  it("keeps the scanner's own id, and refuses a malformed one", async () => {
    const store = await newStore();
    const own = newId(1_700_000_000_000);
    expect(store.addScan(scanInput({ id: own }))).toBe(own);
    expect(() => store.addScan(scanInput({ id: 'scan-1' }))).toThrow(/invalid scan id/);
    expect(() => store.addScan(scanInput({ files: -1 }))).toThrow(/files/);
  });

  it('lists scans newest first, by root and time, with cursor pages', async () => {
    const store = await newStore();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const t = 1_700_000_000_000 + i * 1000;
      ids.push(store.addScan(scanInput({ id: newId(t), startedAt: t, root: i < 3 ? '/a' : '/b' })));
    }
    const first = store.listScans({ limit: 2 });
    expect(first.items.map((s) => s.id)).toEqual([ids[4], ids[3]]);
    const second = store.listScans({ limit: 2, cursor: first.nextCursor });
    expect(second.items.map((s) => s.id)).toEqual([ids[2], ids[1]]);
    const third = store.listScans({ limit: 2, cursor: second.nextCursor });
    expect(third.items.map((s) => s.id)).toEqual([ids[0]]);
    expect(third.nextCursor).toBeNull();
    expect(store.listScans({ root: '/b' }).items.map((s) => s.id)).toEqual([ids[4], ids[3]]);
    expect(
      store
        .listScans({ since: 1_700_000_001_000, until: 1_700_000_003_000 })
        .items.map((s) => s.id),
    ).toEqual([ids[2], ids[1]]);
  });
});

describe('findings', () => {
  it('stores findings in order, pages through them and filters', async () => {
    const store = await newStore();
    const scan = store.addScan(scanInput());
    const batch1 = Array.from({ length: 5 }, (_, i) =>
      urlFinding({ line: i + 1, severity: i % 2 ? 'warning' : 'critical', file: `f${i}.py` }),
    );
    const ids1 = store.addFindings(scan, batch1);
    const ids2 = store.addFindings(scan, [urlFinding({ line: 99, severity: 'info', kind: 'url' })]);
    const all = [...ids1, ...ids2];
    expect(new Set(all).size).toBe(6);
    expect([...all].sort()).toEqual(all); // ids follow the order of addition, across calls
    expect(store.getScan(scan)?.findings).toBe(6);

    const seen: number[] = [];
    let cursor: string | null = null;
    do {
      const page = store.listFindings({ scanId: scan, limit: 4, cursor });
      seen.push(...page.items.map((f) => f.line));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual([1, 2, 3, 4, 5, 99]);
    expect(store.listFindings({ scanId: scan, order: 'desc', limit: 1 }).items[0]?.line).toBe(99);
    expect(
      store.listFindings({ scanId: scan, severity: 'warning' }).items.map((f) => f.line),
    ).toEqual([2, 4]);
    expect(store.listFindings({ scanId: scan, kind: 'url' }).items.map((f) => f.line)).toEqual([
      99,
    ]);
    expect(store.listFindings({ scanId: scan, file: 'f2.py' }).items.map((f) => f.line)).toEqual([
      3,
    ]);
    expect(store.listFindings({ scanId: scan, violation: true }).items).toHaveLength(6);
    expect(() => store.listFindings({ scanId: scan, severity: 'high' as 'info' })).toThrow(
      /severity must be/,
    );
  });

  it('keeps the clear columns and returns value, context and endpoint redacted', async () => {
    const store = await newStore();
    const scan = store.addScan(scanInput());
    const [id] = store.addFindings(scan, [urlFinding()]);
    const [f] = store.listFindings({ scanId: scan }).items;
    expect(f).toMatchObject({
      id,
      scanId: scan,
      file: 'app.py',
      line: 3,
      column: 8,
      kind: 'python_url_literal',
      patterns: ['python_url_literal', 'url'],
      severity: 'critical',
      secret: false,
      host: 'api.openai.com',
      port: 443,
      fingerprint: 'f1',
      verdictAction: 'block',
      verdictRule: '*.openai.com',
      verdictReason: 'no BAA',
      violation: true,
    });
    for (const text of [f!.value, f!.context, f!.endpoint!]) {
      expect(text).toContain('api.openai.com');
      expect(text).not.toContain('abc123secretvalue');
      expect(text).toContain('[REDACTED:');
    }
    // The raw read opens the same fields unredacted.
    expect(store.getFindingRaw(id!)?.value).toBe(urlFinding().value);
  });

  it("never shows a secret finding's value, in the value or in its context line", async () => {
    const store = await newStore();
    const scan = store.addScan(scanInput());
    const secret = `AKIA${randomBytes(8).toString('hex').toUpperCase()}`;
    store.addFindings(scan, [secretFinding(secret)]);
    const [f] = store.listFindings({ scanId: scan }).items;
    expect(f?.value).toBe('[REDACTED:aws-access-key]');
    expect(f?.context).toBe('AWS_KEY=[REDACTED:aws-access-key] # prod');
    expect(f?.secret).toBe(true);
    expect(JSON.stringify(store.listFindings({ scanId: scan }))).not.toContain(secret);
  });

  it('a marker in a secret finding never reaches the .db or -wal files (sealed)', async () => {
    const dataDir = temp.make();
    const store = await newStore(dataDir);
    const marker = `TRMARK-${randomBytes(12).toString('hex')}`;
    const scan = store.addScan(scanInput());
    const findings = Array.from({ length: 40 }, (_, i) =>
      secretFinding(marker, { line: i + 1, endpoint: `https://x.example/${marker}` }),
    );
    store.addFindings(scan, findings);
    expect(store.getFindingRaw(store.listFindings({ scanId: scan }).items[0]!.id)?.value).toBe(
      marker,
    ); // it was stored...
    expect(dbFiles(dataDir)).toContain(join(dataDir, 'trustrun.db-wal'));
    expect(findMarker(dataDir, marker)).toEqual([]); // ...but only sealed
    await store.close();
    expect(findMarker(dataDir, marker)).toEqual([]);
  });

  it('binds each sealed field to its finding: a swapped value does not open', async () => {
    const dataDir = temp.make();
    const store = await newStore(dataDir);
    const scan = store.addScan(scanInput());
    const [a, b] = store.addFindings(scan, [urlFinding(), urlFinding({ line: 9 })]);
    await store.close();
    const db = new Database(join(dataDir, 'trustrun.db'));
    const va = db.prepare('SELECT value FROM scan_findings WHERE id = ?').get(a) as {
      value: Buffer;
    };
    db.prepare('UPDATE scan_findings SET value = ? WHERE id = ?').run(va.value, b);
    db.close();
    const again = await newStore(dataDir);
    await expectCode(() => again.getFindingRaw(b!), 'TR_SEAL_OPEN');
    expect(again.getFindingRaw(a!)?.line).toBe(3);
  });

  it('refuses findings of an unknown scan and malformed findings', async () => {
    const store = await newStore();
    await expectCode(() => store.addFindings(newId(), [urlFinding()]), 'TR_NOT_FOUND');
    const scan = store.addScan(scanInput());
    expect(() => store.addFindings(scan, [urlFinding({ severity: 'bad' as 'info' })])).toThrow(
      /severity/,
    );
    expect(() => store.addFindings(scan, [urlFinding({ line: -1 })])).toThrow(/line/);
    expect(store.getScan(scan)?.findings).toBe(0); // nothing of a refused batch was stored
  });

  it('purges a scan with its findings and key', async () => {
    const dataDir = temp.make();
    const store = await newStore(dataDir);
    const marker = `TRMARK-${randomBytes(12).toString('hex')}`;
    const keep = store.addScan(scanInput());
    store.addFindings(keep, [urlFinding()]);
    const gone = store.addScan(scanInput());
    store.addFindings(gone, [secretFinding(marker)]);
    await store.purgeScan(gone);
    expect(store.getScan(gone)).toBeNull();
    expect(store.listFindings({ scanId: gone }).items).toEqual([]);
    expect(store.listScans().items.map((s) => s.id)).toEqual([keep]);
    await expectCode(() => store.purgeScan(gone), 'TR_NOT_FOUND');
    await store.close();
    const db = new Database(join(dataDir, 'trustrun.db'), { readonly: true });
    try {
      expect(db.prepare('SELECT COUNT(*) AS n FROM scan_keys').get()).toEqual({ n: 1 });
      expect(db.prepare('SELECT COUNT(*) AS n FROM scan_findings').get()).toEqual({ n: 1 });
    } finally {
      db.close();
    }
  });
});
