import type { Statement } from 'better-sqlite3';
import { TrustRunError } from '../core/index.js';
import type { Db } from './db.js';
import type {
  BodyField,
  ConnectionQuery,
  ConnectionRow,
  MonitorEventQuery,
  MonitorEventRow,
  Page,
  PageQuery,
  RequestQuery,
  RequestRow,
  SessionDetail,
  SessionRow,
  ViolationQuery,
  ViolationRow,
} from './types.js';

/** Read queries over the clear columns. Statements are prepared once per distinct shape. */

const SESSION_BASE_COLS = `id, kind, command, policy, level, listen, pid, started_at AS startedAt,
  ended_at AS endedAt, status, exit_code AS exitCode, shredded_at AS shreddedAt`;

/** A live count of a session's rows in `table` (served by its (session_id, id) index). */
const live = (table: string) => `(SELECT COUNT(*) FROM ${table} WHERE session_id = sessions.id)`;

/**
 * Sessions with their counts: frozen at the end of a session (endSession), counted live while
 * it runs. COALESCE evaluates the subquery only when the frozen count is NULL.
 */
const SESSION_COLS = `${SESSION_BASE_COLS},
  COALESCE(connection_count, ${live('connections')}) AS connectionCount,
  COALESCE(request_count, ${live('requests')}) AS requestCount,
  COALESCE(violation_count, ${live('violations')}) AS violationCount,
  COALESCE(monitor_event_count, ${live('monitor_events')}) AS monitorEventCount`;

/** Always live: what getSession returns. */
const SESSION_LIVE_COLS = `${SESSION_BASE_COLS},
  ${live('connections')} AS connectionCount, ${live('requests')} AS requestCount,
  ${live('violations')} AS violationCount, ${live('monitor_events')} AS monitorEventCount`;

const CONNECTION_COLS = `id, session_id AS sessionId, started_at AS startedAt, ended_at AS endedAt,
  client_addr AS clientAddr, client_port AS clientPort, pid, exe, host, port, ip, sni, alpn, mode,
  bytes_up AS bytesUp, bytes_down AS bytesDown, outcome, reason, verdict_action AS verdictAction,
  verdict_rule AS verdictRule, violation`;

const REQUEST_COLS = `id, session_id AS sessionId, connection_id AS connectionId,
  started_at AS startedAt, ended_at AS endedAt, method, scheme, host, port, status,
  request_size AS requestSize, response_size AS responseSize, duration_ms AS durationMs,
  ttfb_ms AS ttfbMs, outcome, reason, verdict_action AS verdictAction, verdict_rule AS verdictRule,
  violation, pid, exe, request_body_truncated AS requestBodyTruncated,
  response_body_truncated AS responseBodyTruncated`;

const VIOLATION_COLS = `id, session_id AS sessionId, time, host, port, method, action, rule,
  rule_index AS ruleIndex, reason, explanation, enforced, connection_id AS connectionId,
  request_id AS requestId, monitor_event_id AS monitorEventId`;

const MONITOR_EVENT_COLS = `id, session_id AS sessionId, pid, exe, protocol, local_addr AS localAddr,
  local_port AS localPort, remote_addr AS remoteAddr, remote_port AS remotePort, state,
  first_seen AS firstSeen, last_seen AS lastSeen, hostname, org, verdict_action AS verdictAction,
  verdict_rule AS verdictRule, violation, enforced`;

/** A request's clear columns, its sealed blobs as stored, and whether its session was shredded. */
export interface RequestRecord {
  row: RequestRow;
  sealed: {
    url: Buffer;
    request_headers: Buffer;
    response_headers: Buffer | null;
    request_body: Buffer | null;
    response_body: Buffer | null;
    /** Parts of a body stored in body_parts (0: none, or the request did not complete). */
    request_body_parts: number;
    response_body_parts: number;
  };
  sessionShreddedAt: number | null;
}

export const ID_RE = /^[0-9a-z]{9}[0-9a-f]{12}$/;
export const DEFAULT_LIMIT = 100;
export const MAX_LIMIT = 1000;

export type Filter = [sql: string, value: unknown];

export class Reader {
  private readonly cache = new Map<string, Statement>();

  constructor(private readonly db: Db) {}

  listSessions(q: PageQuery = {}): Page<SessionRow> {
    return this.list('sessions', SESSION_COLS, q, [], toSession);
  }

  getSession(id: string): SessionDetail | null {
    const row = this.stmt(`SELECT ${SESSION_LIVE_COLS} FROM sessions WHERE id = ?`).get(id) as
      Record<string, unknown> | undefined;
    return row ? toSession(row) : null;
  }

  listConnections(q: ConnectionQuery = {}): Page<ConnectionRow> {
    const filters: Filter[] = [];
    if (q.sessionId !== undefined) filters.push(['session_id = ?', str('sessionId', q.sessionId)]);
    if (q.host !== undefined) filters.push(hostFilter(q.host));
    if (q.violation !== undefined) filters.push(['violation = ?', q.violation ? 1 : 0]);
    filters.push(...timeFilters('started_at', q));
    return this.list('connections', CONNECTION_COLS, q, filters, toConnection);
  }

  listRequests(q: RequestQuery = {}): Page<RequestRow> {
    const filters: Filter[] = [];
    if (q.sessionId !== undefined) filters.push(['session_id = ?', str('sessionId', q.sessionId)]);
    if (q.host !== undefined) filters.push(hostFilter(q.host));
    if (q.method !== undefined) filters.push(['method = ?', str('method', q.method).toUpperCase()]);
    if (q.status !== undefined) filters.push(['status = ?', int('status', q.status, 0, 999)]);
    if (q.violation !== undefined) filters.push(['violation = ?', q.violation ? 1 : 0]);
    filters.push(...timeFilters('started_at', q));
    return this.list('requests', REQUEST_COLS, q, filters, toRequest);
  }

  listViolations(q: ViolationQuery = {}): Page<ViolationRow> {
    const filters: Filter[] = [];
    if (q.sessionId !== undefined) filters.push(['session_id = ?', str('sessionId', q.sessionId)]);
    if (q.host !== undefined) filters.push(hostFilter(q.host));
    if (q.enforced !== undefined) filters.push(['enforced = ?', q.enforced ? 1 : 0]);
    filters.push(...timeFilters('time', q));
    return this.list('violations', VIOLATION_COLS, q, filters, toViolation);
  }

  listMonitorEvents(q: MonitorEventQuery = {}): Page<MonitorEventRow> {
    const filters: Filter[] = [];
    if (q.sessionId !== undefined) filters.push(['session_id = ?', str('sessionId', q.sessionId)]);
    if (q.pid !== undefined) filters.push(['pid = ?', int('pid', q.pid, 0, 2 ** 31 - 1)]);
    filters.push(...timeFilters('first_seen', q));
    return this.list('monitor_events', MONITOR_EVENT_COLS, q, filters, toMonitorEvent);
  }

  /** The request with its sealed blobs (not opened), or null. */
  getRequestRecord(id: string): RequestRecord | null {
    const row = this.stmt(`SELECT ${REQUEST_COLS} FROM requests WHERE id = ?`).get(id) as
      Record<string, unknown> | undefined;
    if (!row) return null;
    const sealed = this.stmt(
      `SELECT url, request_headers, response_headers, request_body, response_body,
         request_body_parts, response_body_parts
       FROM requests WHERE id = ?`,
    ).get(id) as RequestRecord['sealed'];
    const session = this.stmt('SELECT shredded_at AS shreddedAt FROM sessions WHERE id = ?').get(
      row.sessionId,
    ) as { shreddedAt: number | null } | undefined;
    return { row: toRequest(row), sealed, sessionShreddedAt: session?.shreddedAt ?? null };
  }

  /** The stored parts of a request's body, in order (sealed, not opened). */
  bodyParts(requestId: string, field: BodyField): { seq: number; data: Buffer }[] {
    return this.stmt(
      'SELECT seq, data FROM body_parts WHERE request_id = ? AND field = ? ORDER BY seq',
    ).all(requestId, field) as { seq: number; data: Buffer }[];
  }

  /** One page of `table` ordered by id, after `filters` (also used by scans.ts). */
  list<T extends { id: string }>(
    table: string,
    cols: string,
    q: PageQuery,
    filters: Filter[],
    map: (row: Record<string, unknown>) => T,
  ): Page<T> {
    const limit = q.limit === undefined ? DEFAULT_LIMIT : int('limit', q.limit, 1, MAX_LIMIT);
    const desc = (q.order ?? 'desc') === 'desc';
    if (q.order !== undefined && q.order !== 'asc' && q.order !== 'desc') {
      throw usage(`order must be 'asc' or 'desc', got ${JSON.stringify(q.order)}`);
    }
    const all = [...filters];
    if (q.cursor !== undefined && q.cursor !== null) {
      if (typeof q.cursor !== 'string' || !ID_RE.test(q.cursor)) {
        throw usage(`invalid cursor ${JSON.stringify(q.cursor)}`);
      }
      all.push([desc ? 'id < ?' : 'id > ?', q.cursor]);
    }
    const where = all.length ? `WHERE ${all.map(([sql]) => sql).join(' AND ')}` : '';
    const sql = `SELECT ${cols} FROM ${table} ${where} ORDER BY id ${desc ? 'DESC' : 'ASC'} LIMIT ?`;
    const rows = this.stmt(sql).all(...all.map(([, v]) => v), limit + 1) as Record<
      string,
      unknown
    >[];
    const more = rows.length > limit;
    const items = (more ? rows.slice(0, limit) : rows).map(map);
    return { items, nextCursor: more ? (items.at(-1)?.id ?? null) : null };
  }

  stmt(sql: string): Statement {
    let s = this.cache.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.cache.set(sql, s);
    }
    return s;
  }
}

/** Host filter: case-insensitive; `*` matches any characters, dots included. */
export function hostFilter(pattern: string): Filter {
  const p = str('host', pattern).trim().toLowerCase();
  if (!p.includes('*')) return ['host = ?', p];
  return ['host GLOB ?', p.replace(/[[\]?]/g, (c) => `[${c}]`)];
}

/**
 * Ids start with their creation time (core's newId), which is never earlier than the record's
 * start time: `since` also bounds the id, so the primary key index serves time ranges. A minute
 * of slack covers a clock stepped back between the two readings.
 */
const ID_TIME_SLACK_MS = 60_000;

export function idLowerBound(since: number): string {
  return Math.max(0, Math.floor(since - ID_TIME_SLACK_MS))
    .toString(36)
    .padStart(9, '0');
}

export function timeFilters(column: string, q: { since?: number; until?: number }): Filter[] {
  const out: Filter[] = [];
  if (q.since !== undefined) {
    out.push([`${column} >= ?`, time('since', q.since)]);
    out.push(['id >= ?', idLowerBound(q.since)]);
  }
  if (q.until !== undefined) out.push([`${column} < ?`, time('until', q.until)]);
  return out;
}

function usage(message: string): TrustRunError {
  return new TrustRunError('TR_USAGE', message);
}

export function str(name: string, v: unknown): string {
  if (typeof v !== 'string' || v.length === 0) throw usage(`${name} must be a non-empty string`);
  return v;
}

export function int(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw usage(`${name} must be a whole number from ${min} to ${max}, got ${String(v)}`);
  }
  return v;
}

function time(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw usage(`${name} must be a time in milliseconds since the epoch, got ${String(v)}`);
  }
  return v;
}

function flags(row: Record<string, unknown>) {
  return {
    violation: row.violation === 1,
    requestBodyTruncated: row.requestBodyTruncated === 1,
    responseBodyTruncated: row.responseBodyTruncated === 1,
  };
}

function toSession(row: Record<string, unknown>): SessionRow {
  const { connectionCount, requestCount, violationCount, monitorEventCount, ...r } =
    row as unknown as Omit<SessionRow, 'counts' | 'command'> & {
      command: string | null;
      connectionCount: number;
      requestCount: number;
      violationCount: number;
      monitorEventCount: number;
    };
  return {
    ...r,
    command: r.command === null ? null : (JSON.parse(r.command) as string[]),
    counts: {
      connections: connectionCount,
      requests: requestCount,
      violations: violationCount,
      monitorEvents: monitorEventCount,
    },
  };
}

function toMonitorEvent(row: Record<string, unknown>): MonitorEventRow {
  return {
    ...(row as unknown as MonitorEventRow),
    violation: row.violation === 1,
    enforced: row.enforced === 1,
  };
}

function toConnection(row: Record<string, unknown>): ConnectionRow {
  return { ...(row as unknown as ConnectionRow), violation: row.violation === 1 };
}

function toRequest(row: Record<string, unknown>): RequestRow {
  return { ...(row as unknown as RequestRow), ...flags(row) };
}

function toViolation(row: Record<string, unknown>): ViolationRow {
  return { ...(row as unknown as ViolationRow), enforced: row.enforced === 1 };
}
