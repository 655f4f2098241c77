import type { Statement } from 'better-sqlite3';
import { ACTIONS, TrustRunError, newId } from '../core/index.js';
import type { Db } from './db.js';
import { unwrapDataKey, wipe, wrapDataKey, type MasterKey } from './keys.js';
import { ID_RE, int, str, timeFilters, type Filter, type Reader } from './reads.js';
import { marker, redactText, redactUrl } from './redact/index.js';
import { newDataKey, openValue, sealValue, type DataKey, type SealContext } from './seal.js';
import {
  FINDING_SEVERITIES,
  type FindingInput,
  type FindingQuery,
  type FindingRow,
  type FindingSeverity,
  type Page,
  type ScanInput,
  type ScanQuery,
  type ScanRow,
} from './types.js';

/**
 * Scans and their findings. A scan is not a session: it gets its own data key (wrapped by the
 * master key under the owner name `scan:<id>`), which seals each finding's matched text, source
 * line and endpoint. Clear columns: where (file, line, column), what (kind, patterns, severity,
 * secret flag), the destination's host and port, and the policy's verdict. Reads open the sealed
 * fields and redact them: a secret finding's value is never shown, only its kind.
 */

const SCAN_COLS = `id, root, started_at AS startedAt, ended_at AS endedAt, files, skipped, policy,
  info_count AS info, warning_count AS warning, critical_count AS critical,
  finding_count AS findings`;

const FINDING_COLS = `id, scan_id AS scanId, file, line, col AS "column", kind, patterns, severity,
  secret, host, port, fingerprint, verdict_action AS verdictAction, verdict_rule AS verdictRule,
  verdict_reason AS verdictReason, violation, value, context, endpoint`;

type FindingRecord = Omit<FindingRow, 'value' | 'context' | 'endpoint' | 'patterns'> & {
  patterns: string | null;
  value: Buffer;
  context: Buffer;
  endpoint: Buffer | null;
};

const SEVERITY_SET: ReadonlySet<string> = new Set(FINDING_SEVERITIES);
const ACTION_SET: ReadonlySet<string> = new Set(ACTIONS);
/** Findings get consecutive ids: the low 44 bits of the random part count up from a random start. */
const SEQ_HEX = 12;

export class ScanStore {
  private readonly keys = new Map<string, DataKey>();
  private readonly s: {
    insertScan: Statement;
    insertKey: Statement;
    scanKey: Statement;
    insertFinding: Statement;
    lastFinding: Statement;
    addCount: Statement;
    deleteScan: Statement;
  };

  constructor(
    db: Db,
    private readonly master: MasterKey,
    private readonly reader: Reader,
  ) {
    this.s = {
      insertScan: db.prepare(
        `INSERT INTO scans (id, root, started_at, ended_at, files, skipped, policy, info_count,
           warning_count, critical_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      insertKey: db.prepare(
        'INSERT INTO scan_keys (scan_id, key_id, wrapped, created_at) VALUES (?, ?, ?, ?)',
      ),
      scanKey: db.prepare('SELECT key_id AS keyId, wrapped FROM scan_keys WHERE scan_id = ?'),
      insertFinding: db.prepare(
        `INSERT INTO scan_findings (id, scan_id, file, line, col, kind, patterns, severity, secret,
           host, port, fingerprint, verdict_action, verdict_rule, verdict_reason, violation, value,
           context, endpoint)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      lastFinding: db.prepare('SELECT MAX(id) AS id FROM scan_findings WHERE scan_id = ?'),
      addCount: db.prepare('UPDATE scans SET finding_count = finding_count + ? WHERE id = ?'),
      deleteScan: db.prepare('DELETE FROM scans WHERE id = ?'),
    };
  }

  addScan(input: ScanInput, transaction: (what: string, fn: () => void) => void): string {
    const id = input.id ?? newId(input.startedAt);
    if (typeof id !== 'string' || !ID_RE.test(id)) {
      throw internal(`invalid scan id ${JSON.stringify(id)} (use core's newId)`);
    }
    const root = str('root', input.root);
    const counts = input.counts;
    for (const k of FINDING_SEVERITIES) count(`counts.${k}`, counts?.[k]);
    const key = newDataKey();
    const wrapped = wrapDataKey(this.master, owner(id), key);
    try {
      transaction('store the scan', () => {
        this.s.insertScan.run(
          id,
          root,
          time('startedAt', input.startedAt),
          time('endedAt', input.endedAt),
          count('files', input.files),
          count('skipped', input.skipped),
          input.policy ?? null,
          counts.info,
          counts.warning,
          counts.critical,
        );
        this.s.insertKey.run(id, key.keyId, wrapped, Date.now());
      });
    } catch (err) {
      wipe(key.key);
      throw err;
    }
    this.keys.set(id, key);
    return id;
  }

  addFindings(
    scanId: string,
    findings: readonly FindingInput[],
    transaction: (what: string, fn: () => void) => void,
  ): string[] {
    const key = this.key(scanId);
    for (const [i, f] of findings.entries()) checkFinding(f, i);
    const ids: string[] = [];
    transaction('store the findings', () => {
      const last = (this.s.lastFinding.get(scanId) as { id: string | null }).id;
      const next = firstSeq(last);
      for (const f of findings) {
        const id = next.prefix + (next.seq++).toString(16).padStart(SEQ_HEX, '0');
        const v = f.verdict ?? null;
        this.s.insertFinding.run(
          id,
          scanId,
          f.file,
          f.line,
          f.column,
          f.kind,
          f.patterns && f.patterns.length > 0 ? JSON.stringify(f.patterns) : null,
          f.severity,
          f.secret ? 1 : 0,
          f.host == null ? null : f.host.toLowerCase(),
          f.port ?? null,
          f.fingerprint ?? null,
          v?.action ?? null,
          v?.rule ?? null,
          v?.reason ?? null,
          v?.violation ? 1 : 0,
          sealValue(key, ctx(id, 'value'), f.value),
          sealValue(key, ctx(id, 'context'), f.context),
          f.endpoint == null ? null : sealValue(key, ctx(id, 'endpoint'), f.endpoint),
        );
        ids.push(id);
      }
      this.s.addCount.run(findings.length, scanId);
    });
    return ids;
  }

  listScans(q: ScanQuery = {}): Page<ScanRow> {
    const filters: Filter[] = [];
    if (q.root !== undefined) filters.push(['root = ?', str('root', q.root)]);
    filters.push(...timeFilters('started_at', q));
    return this.reader.list('scans', SCAN_COLS, q, filters, toScan);
  }

  getScan(id: string): ScanRow | null {
    const row = this.reader.stmt(`SELECT ${SCAN_COLS} FROM scans WHERE id = ?`).get(id) as
      Record<string, unknown> | undefined;
    return row ? toScan(row) : null;
  }

  /** Findings in the order they were added (order: 'asc') unless asked otherwise; redacted. */
  listFindings(q: FindingQuery): Page<FindingRow> {
    if (q === null || typeof q !== 'object') throw usage('listFindings needs { scanId }');
    const scanId = str('scanId', q.scanId);
    const filters: Filter[] = [['scan_id = ?', scanId]];
    if (q.severity !== undefined) filters.push(['severity = ?', severity(q.severity)]);
    if (q.kind !== undefined) filters.push(['kind = ?', str('kind', q.kind)]);
    if (q.file !== undefined) filters.push(['file = ?', str('file', q.file)]);
    if (q.violation !== undefined) filters.push(['violation = ?', q.violation ? 1 : 0]);
    const page = this.reader.list(
      'scan_findings',
      FINDING_COLS,
      { ...q, order: q.order ?? 'asc' },
      filters,
      (row) => row as unknown as FindingRecord,
    );
    return {
      items: page.items.map((r) => redactFinding(this.open(r))),
      nextCursor: page.nextCursor,
    };
  }

  getFindingRaw(id: string): FindingRow | null {
    const row = this.reader
      .stmt(`SELECT ${FINDING_COLS} FROM scan_findings WHERE id = ?`)
      .get(id) as FindingRecord | undefined;
    return row ? this.open(row) : null;
  }

  deleteScan(id: string, transaction: (what: string, fn: () => void) => void): void {
    let changes = 0;
    transaction('delete the scan', () => {
      changes = this.s.deleteScan.run(id).changes;
    });
    if (changes === 0) throw new TrustRunError('TR_NOT_FOUND', `no scan ${id} in the store`);
    this.forget(id);
  }

  close(): void {
    for (const id of [...this.keys.keys()]) this.forget(id);
  }

  private forget(scanId: string): void {
    const k = this.keys.get(scanId);
    if (k) wipe(k.key);
    this.keys.delete(scanId);
  }

  private key(scanId: string): DataKey {
    const cached = this.keys.get(scanId);
    if (cached) return cached;
    const row = this.s.scanKey.get(scanId) as { keyId: string; wrapped: Buffer } | undefined;
    if (!row) throw new TrustRunError('TR_NOT_FOUND', `no scan ${scanId} in the store`);
    const key = unwrapDataKey(this.master, owner(scanId), row.keyId, row.wrapped);
    this.keys.set(scanId, key);
    return key;
  }

  private open(r: FindingRecord): FindingRow {
    const key = this.key(r.scanId);
    const open = (field: 'value' | 'context' | 'endpoint', blob: Buffer) =>
      openValue(key, ctx(r.id, field), blob).toString('utf8');
    return {
      ...r,
      patterns: r.patterns === null ? [r.kind] : (JSON.parse(r.patterns) as string[]),
      secret: (r.secret as unknown) === 1,
      violation: (r.violation as unknown) === 1,
      value: open('value', r.value),
      context: open('context', r.context),
      endpoint: r.endpoint === null ? null : open('endpoint', r.endpoint),
    };
  }
}

/**
 * What a person may see of a finding: a secret's value becomes `[REDACTED:<kind>]` (in the value
 * and wherever it appears in the context line); URLs lose token-like query values and userinfo;
 * the context line goes through the text redactor (secrets and PHI patterns).
 */
export function redactFinding(f: FindingRow): FindingRow {
  let value = f.value;
  let context = f.context;
  if (f.secret) {
    const m = marker(markerKind(f.kind));
    // (A value too short to be a secret would match ordinary text: the text redactor covers it.)
    if (value.length >= 3) context = context.split(value).join(m);
    value = m;
  } else {
    value = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? redactUrl(value).url : redactText(value).text;
  }
  return {
    ...f,
    value,
    context: redactText(context).text,
    endpoint: f.endpoint === null ? null : redactUrl(f.endpoint).url,
  };
}

function markerKind(kind: string): string {
  const k = kind.toLowerCase().replace(/[^a-z0-9-]+/g, '-');
  return /^[a-z]/.test(k) ? k : 'secret';
}

function owner(scanId: string): string {
  return `scan:${scanId}`;
}

function ctx(recordId: string, field: string): SealContext {
  return { table: 'scan_findings', recordId, field };
}

/** The next id after `last` (or a fresh one): the same time prefix when it is not older. */
function firstSeq(last: string | null): { prefix: string; seq: number } {
  const fresh = newId();
  // 11 random hex digits (44 bits): room to count up without carrying into the time part.
  const start = { prefix: fresh.slice(0, 9), seq: parseInt(fresh.slice(10), 16) };
  if (last === null || last < start.prefix + start.seq.toString(16).padStart(SEQ_HEX, '0')) {
    return start;
  }
  return { prefix: last.slice(0, 9), seq: parseInt(last.slice(9), 16) + 1 };
}

function checkFinding(f: FindingInput, i: number): void {
  const at = `finding ${i}`;
  if (f === null || typeof f !== 'object') throw internal(`${at} is not an object`);
  str(`${at}.file`, f.file);
  int(`${at}.line`, f.line, 0, 2 ** 31 - 1);
  int(`${at}.column`, f.column, 0, 2 ** 31 - 1);
  str(`${at}.kind`, f.kind);
  severity(f.severity);
  if (typeof f.value !== 'string' || typeof f.context !== 'string') {
    throw internal(`${at}: value and context must be text`);
  }
  if (f.port != null) int(`${at}.port`, f.port, 0, 65535);
  if (f.verdict != null && !ACTION_SET.has(f.verdict.action)) {
    throw internal(`${at}: invalid verdict action ${JSON.stringify(f.verdict.action)}`);
  }
}

function severity(v: unknown): FindingSeverity {
  if (typeof v !== 'string' || !SEVERITY_SET.has(v)) {
    throw usage(`severity must be info, warning or critical, got ${JSON.stringify(v)}`);
  }
  return v as FindingSeverity;
}

function count(name: string, v: unknown): number {
  return int(name, v, 0, Number.MAX_SAFE_INTEGER);
}

function time(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw internal(`${name} must be a time in milliseconds since the epoch`);
  }
  return v;
}

function toScan(row: Record<string, unknown>): ScanRow {
  const { info, warning, critical, ...r } = row as unknown as Omit<ScanRow, 'counts'> &
    Record<FindingSeverity, number>;
  return { ...r, counts: { info, warning, critical } };
}

function usage(message: string): TrustRunError {
  return new TrustRunError('TR_USAGE', message);
}

function internal(message: string): TrustRunError {
  return new TrustRunError('TR_INTERNAL', message);
}
