import type { Statement } from 'better-sqlite3';
import { resolve } from 'node:path';
import {
  CAPTURE_LEVELS,
  OUTCOMES,
  SESSION_KINDS,
  SESSION_STATUSES,
  TrustRunError,
  dataPaths,
  ensurePrivateDir,
  newId,
  silentLogger,
  type Logger,
  type Verdict,
} from '../core/index.js';
import { Checkpointer, checkpoint, describeSqliteError, openDatabase, type Db } from './db.js';
import { decodeHeaders } from './headers.js';
import { loadMasterKey, unwrapDataKey, wipe, wrapDataKey, type MasterKey } from './keys.js';
import { isOwnerAlive, processToken } from './liveness.js';
import { migrate } from './migrations.js';
import { Reader } from './reads.js';
import { redactCommand } from './redact/view.js';
import {
  loadSealing,
  newDataKey,
  openValue,
  sealHeaderList,
  sealValue,
  type DataKey,
  type KeyLookup,
  type SealContext,
} from './seal.js';
import { ScanStore } from './scans.js';
import {
  CONNECTION_MODES,
  MONITOR_PROTOCOLS,
  type BodyField,
  type CapturedBody,
  type ConnectionInput,
  type ConnectionPatch,
  type ConnectionQuery,
  type FindingInput,
  type FindingQuery,
  type MonitorEventInput,
  type MonitorEventPatch,
  type MonitorEventQuery,
  type PageQuery,
  type RequestCompletion,
  type RequestDetail,
  type RequestInput,
  type RequestQuery,
  type ScanInput,
  type ScanQuery,
  type SessionEnd,
  type SessionInput,
  type SessionRow,
  type Store,
  type StoreErrorListener,
  type StoreOptions,
  type StoreStats,
  type ViolationInput,
  type ViolationQuery,
} from './types.js';
import { BatchWriter, closedError } from './writer.js';

const DEFAULT_BATCH_MAX = 256;
/**
 * Bytes of sealed bodies kept queued while commits fail (disk full); beyond, the oldest bodies
 * are dropped and their records kept.
 */
const DEFAULT_MAX_RETAINED_BYTES = 64 * 1024 * 1024;
const OUTCOME_SET: ReadonlySet<string> = new Set(OUTCOMES);
const DEFAULT_BUSY_TIMEOUT_MS = 2000;
/**
 * Checkpoints move to a worker thread once a store has committed this many operations, or
 * queued this many bytes of bodies (a store that only reads, or writes a little, never starts
 * the thread).
 */
const CHECKPOINT_THREAD_AFTER_OPS = 1000;
const CHECKPOINT_THREAD_AFTER_BODY_BYTES = 8 * 1024 * 1024;
/** At most one background checkpoint per this many milliseconds. */
const CHECKPOINT_INTERVAL_MS = 25;
/** WAL pages (4 KiB) after which the writing connection finishes a checkpoint itself (see Checkpointer). */
const MAX_WAL_PAGES = 16_000;
/** Requests kept in memory between addRequest and completeRequest (older ones are looked up). */
const OPEN_REQUESTS_MAX = 100_000;

/**
 * Opens `<dataDir>/trustrun.db` (creating the data directory, keys and schema as needed), marks
 * sessions whose owner process died as `interrupted`, and returns the store.
 */
export async function openStore(opts: StoreOptions): Promise<Store> {
  await loadSealing();
  const dataDir = resolve(opts.dataDir);
  ensurePrivateDir(dataDir);
  const paths = dataPaths(dataDir);
  const logger = opts.logger ?? silentLogger();
  const db = openDatabase(paths.database, opts.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS);
  try {
    migrate(db);
    const readCheck = () =>
      (
        db.prepare("SELECT value FROM store_meta WHERE name = 'master_key_check'").get() as
          { value: string } | undefined
      )?.value;
    let recorded = readCheck();
    const master = await loadMasterKey({
      keysDir: paths.keysDir,
      passphrase: opts.passphrase ?? process.env.TRUSTRUN_PASSPHRASE,
      create: recorded === undefined,
    });
    if (recorded === undefined) {
      db.prepare(
        "INSERT OR IGNORE INTO store_meta (name, value) VALUES ('master_key_check', ?)",
      ).run(master.check);
      recorded = readCheck();
    }
    if (recorded !== master.check) {
      wipe(master.key);
      throw new TrustRunError(
        'TR_KEY',
        `the master key in ${paths.keysDir} does not belong to the database ${paths.database}`,
        { hint: 'Restore the keys/ directory that was made with this database.' },
      );
    }
    const store = new SqliteStore(
      db,
      master,
      dataDir,
      logger,
      opts.batchMax ?? DEFAULT_BATCH_MAX,
      opts.maxRetainedBytes ?? DEFAULT_MAX_RETAINED_BYTES,
      opts.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS,
    );
    store.markInterrupted();
    return store;
  } catch (err) {
    if (db.open) db.close();
    if (err instanceof TrustRunError) throw err;
    throw new TrustRunError(
      'TR_STORE',
      `cannot open the store ${paths.database}: ${describeSqliteError(err)}`,
      { cause: err },
    );
  }
}

interface Statements {
  insertSession: Statement;
  insertKey: Statement;
  endSession: Statement;
  insertConnection: Statement;
  updateConnection: Statement;
  insertRequest: Statement;
  insertBodyPart: Statement;
  completeRequest: Statement;
  completeRequestNoBodies: Statement;
  insertViolation: Statement;
  insertMonitorEvent: Statement;
  updateMonitorEvent: Statement;
  requestInfo: Statement;
  sessionKey: Statement;
  keyById: Statement;
}

export class SqliteStore implements Store {
  readonly keySource: 'file' | 'passphrase';
  private readonly writer: BatchWriter;
  private readonly checkpointer: Checkpointer;
  private readonly reader: Reader;
  private readonly scans: ScanStore;
  private readonly s: Statements;
  private readonly listeners = new Set<StoreErrorListener>();
  /** sessionId -> data key used to seal new values. */
  private readonly writeKeys = new Map<string, DataKey>();
  /** keyId -> data key (and its session) used to open values. */
  private readonly readKeys = new Map<string, DataKey & { sessionId: string }>();
  private readonly openRequests = new Map<string, { sessionId: string; startedAt: number }>();
  private readonly ownerToken: string | null;
  private closed = false;
  /** Bytes of bodies queued so far (starts the checkpoint thread early at the full level). */
  private bodyBytes = 0;

  constructor(
    /** The connection; for maintenance and tests, not for callers of the Store interface. */
    readonly db: Db,
    private readonly master: MasterKey,
    readonly dataDir: string,
    private readonly logger: Logger,
    batchMax: number,
    maxRetainedBytes: number,
    busyTimeoutMs: number = DEFAULT_BUSY_TIMEOUT_MS,
  ) {
    if (!Number.isInteger(batchMax) || batchMax < 1) {
      throw new TrustRunError('TR_CONFIG', `batchMax must be a whole number of at least 1`);
    }
    if (!Number.isInteger(maxRetainedBytes) || maxRetainedBytes < 0) {
      throw new TrustRunError('TR_CONFIG', `maxRetainedBytes must be a whole number of bytes`);
    }
    this.keySource = master.source;
    this.ownerToken = processToken(process.pid);
    this.checkpointer = new Checkpointer(db, db.name, {
      intervalMs: CHECKPOINT_INTERVAL_MS,
      maxWalPages: MAX_WAL_PAGES,
      onError: (message) =>
        this.logger.warn(`${message}; checkpoints go back to the writing connection`),
    });
    this.writer = new BatchWriter(db, {
      batchMax,
      probe: db.prepare(
        "INSERT OR REPLACE INTO store_meta (name, value) VALUES ('write_probe', ?)",
      ),
      busyTimeoutMs,
      maxRetained: 100_000,
      maxRetainedBytes,
      onError: (err) => this.emitError(err),
      afterCommit: () => {
        if (this.checkpointer.running) this.checkpointer.nudge();
        else if (
          (this.writer.stats.committedOps >= CHECKPOINT_THREAD_AFTER_OPS ||
            this.bodyBytes >= CHECKPOINT_THREAD_AFTER_BODY_BYTES) &&
          !this.closed
        ) {
          this.checkpointer.start();
        }
      },
    });
    this.reader = new Reader(db);
    this.scans = new ScanStore(db, master, this.reader);
    this.s = {
      insertSession: db.prepare(
        `INSERT INTO sessions (id, kind, command, policy, level, listen, pid, owner_token, started_at, status)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'running')`,
      ),
      insertKey: db.prepare(
        'INSERT INTO session_keys (session_id, key_id, wrapped, created_at) VALUES (?, ?, ?, ?)',
      ),
      // The counts are frozen here, once, so that listing sessions does not count their rows.
      endSession: db.prepare(
        `UPDATE sessions SET status = ?, exit_code = ?, ended_at = ?, ${freezeCounts('?')}
         WHERE id = ?`,
      ),
      insertConnection: db.prepare(
        `INSERT INTO connections (id, session_id, started_at, client_addr, client_port, pid, exe,
           host, port, ip, sni, alpn, mode)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      updateConnection: db.prepare(
        `UPDATE connections SET
           ip = COALESCE(?, ip), sni = COALESCE(?, sni), alpn = COALESCE(?, alpn),
           bytes_up = COALESCE(?, bytes_up), bytes_down = COALESCE(?, bytes_down),
           ended_at = COALESCE(?, ended_at), outcome = COALESCE(?, outcome),
           reason = COALESCE(?, reason),
           verdict_action = CASE WHEN ? THEN ? ELSE verdict_action END,
           verdict_rule = CASE WHEN ? THEN ? ELSE verdict_rule END,
           violation = CASE WHEN ? THEN ? ELSE violation END
         WHERE id = ?`,
      ),
      insertRequest: db.prepare(
        `INSERT INTO requests (id, session_id, connection_id, started_at, method, scheme, host, port,
           verdict_action, verdict_rule, violation, pid, exe, url, request_headers)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      insertBodyPart: db.prepare(
        'INSERT INTO body_parts (request_id, field, seq, data) VALUES (?, ?, ?, ?)',
      ),
      completeRequest: db.prepare(
        `UPDATE requests SET
           ended_at = ?, status = COALESCE(?, status),
           response_headers = COALESCE(?, response_headers),
           request_body = COALESCE(?, request_body), response_body = COALESCE(?, response_body),
           request_body_parts = COALESCE(?, request_body_parts),
           response_body_parts = COALESCE(?, response_body_parts),
           request_body_truncated = COALESCE(?, request_body_truncated),
           response_body_truncated = COALESCE(?, response_body_truncated),
           request_size = COALESCE(?, request_size), response_size = COALESCE(?, response_size),
           duration_ms = COALESCE(?, duration_ms), ttfb_ms = COALESCE(?, ttfb_ms),
           outcome = ?, reason = COALESCE(?, reason)
         WHERE id = ?`,
      ),
      // The same update without the body columns (COALESCE(NULL, x) keeps x): three fewer
      // parameters to bind for every completion at the headers level.
      completeRequestNoBodies: db.prepare(
        `UPDATE requests SET
           ended_at = ?, status = COALESCE(?, status),
           response_headers = COALESCE(?, response_headers),
           request_size = COALESCE(?, request_size), response_size = COALESCE(?, response_size),
           duration_ms = COALESCE(?, duration_ms), ttfb_ms = COALESCE(?, ttfb_ms),
           outcome = ?, reason = COALESCE(?, reason)
         WHERE id = ?`,
      ),
      insertViolation: db.prepare(
        `INSERT INTO violations (id, session_id, time, host, port, method, action, rule, rule_index,
           reason, explanation, enforced, connection_id, request_id, monitor_event_id)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      insertMonitorEvent: db.prepare(
        `INSERT INTO monitor_events (id, session_id, pid, exe, protocol, local_addr, local_port,
           remote_addr, remote_port, state, first_seen, last_seen, hostname, org, verdict_action,
           verdict_rule, violation, enforced)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      updateMonitorEvent: db.prepare(
        `UPDATE monitor_events SET
           last_seen = COALESCE(?, last_seen), state = COALESCE(?, state),
           hostname = CASE WHEN ? THEN ? ELSE hostname END,
           org = CASE WHEN ? THEN ? ELSE org END,
           verdict_action = CASE WHEN ? THEN ? ELSE verdict_action END,
           verdict_rule = CASE WHEN ? THEN ? ELSE verdict_rule END,
           violation = CASE WHEN ? THEN ? ELSE violation END,
           enforced = COALESCE(?, enforced)
         WHERE id = ?`,
      ),
      requestInfo: db.prepare(
        'SELECT session_id AS sessionId, started_at AS startedAt FROM requests WHERE id = ?',
      ),
      sessionKey: db.prepare(
        `SELECT key_id AS keyId, wrapped FROM session_keys WHERE session_id = ?
         ORDER BY created_at DESC, key_id LIMIT 1`,
      ),
      keyById: db.prepare(
        'SELECT session_id AS sessionId, wrapped FROM session_keys WHERE key_id = ?',
      ),
    };
  }

  get healthy(): boolean {
    return this.writer.healthy;
  }

  get stats(): StoreStats {
    return { ...this.writer.stats, pending: this.writer.pending };
  }

  onError(listener: StoreErrorListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  // ---- sessions ------------------------------------------------------------------------------

  startSession(input: SessionInput): SessionRow {
    this.assertOpen();
    oneOf('session kind', input.kind, SESSION_KINDS);
    oneOf('capture level', input.level, CAPTURE_LEVELS);
    const id = newId();
    const startedAt = Date.now();
    const dataKey = newDataKey();
    const wrapped = wrapDataKey(this.master, id, dataKey);
    // Stored (and returned) as every read path shows it: see migration 4.
    const command = input.command ? redactCommand(input.command) : null;
    try {
      this.transaction('start a session', () => {
        this.s.insertSession.run(
          id,
          input.kind,
          command === null ? null : JSON.stringify(command),
          input.policy ?? null,
          input.level,
          input.listen ?? null,
          process.pid,
          this.ownerToken,
          startedAt,
        );
        this.s.insertKey.run(id, dataKey.keyId, wrapped, startedAt);
      });
    } catch (err) {
      wipe(dataKey.key);
      throw err;
    }
    this.writeKeys.set(id, dataKey);
    this.readKeys.set(dataKey.keyId, { ...dataKey, sessionId: id });
    return {
      id,
      kind: input.kind,
      command,
      policy: input.policy ?? null,
      level: input.level,
      listen: input.listen ?? null,
      pid: process.pid,
      startedAt,
      endedAt: null,
      status: 'running',
      exitCode: null,
      shreddedAt: null,
      counts: { connections: 0, requests: 0, violations: 0, monitorEvents: 0 },
    };
  }

  endSession(id: string, end: SessionEnd): void {
    oneOf('session status', end.status, SESSION_STATUSES);
    this.writer.enqueue({
      stmt: this.s.endSession,
      // The id five times: four counts and the WHERE clause.
      args: [end.status, end.exitCode ?? null, Date.now(), id, id, id, id, id],
      what: `the end of session ${id}`,
    });
  }

  /** Sessions left `running` by a process that is gone become `interrupted`. */
  markInterrupted(): number {
    const running = this.db
      .prepare("SELECT id, pid, owner_token AS token FROM sessions WHERE status = 'running'")
      .all() as { id: string; pid: number | null; token: string | null }[];
    const mark = this.db.prepare(
      `UPDATE sessions SET status = 'interrupted', ended_at = COALESCE((
         SELECT MAX(t) FROM (
           SELECT MAX(COALESCE(ended_at, started_at)) AS t FROM connections WHERE session_id = @id
           UNION ALL SELECT MAX(COALESCE(ended_at, started_at)) FROM requests WHERE session_id = @id
           UNION ALL SELECT MAX(time) FROM violations WHERE session_id = @id
           UNION ALL SELECT MAX(last_seen) FROM monitor_events WHERE session_id = @id)), started_at),
         ${freezeCounts('@id')}
       WHERE id = @id AND status = 'running'`,
    );
    let n = 0;
    for (const s of running) {
      if (isOwnerAlive(s.pid, s.token)) continue;
      n += mark.run({ id: s.id }).changes;
      this.logger.warn({ session: s.id, pid: s.pid }, 'session owner is gone; marked interrupted');
    }
    return n;
  }

  // ---- records -------------------------------------------------------------------------------

  addConnection(c: ConnectionInput): string {
    oneOf('connection mode', c.mode, CONNECTION_MODES);
    const id = newId();
    this.writer.enqueue({
      stmt: this.s.insertConnection,
      args: [
        id,
        c.sessionId,
        c.startedAt,
        c.clientAddr,
        c.clientPort,
        c.pid ?? null,
        c.exe ?? null,
        normHost(c.host),
        c.port,
        c.ip ?? null,
        c.sni ?? null,
        c.alpn ?? null,
        c.mode,
      ],
      what: `connection ${id}`,
    });
    return id;
  }

  updateConnection(id: string, patch: ConnectionPatch): void {
    if (patch.outcome != null) oneOf('outcome', patch.outcome, OUTCOMES);
    const hasVerdict = patch.verdict !== undefined ? 1 : 0;
    const v = patch.verdict ?? null;
    this.writer.enqueue({
      stmt: this.s.updateConnection,
      args: [
        patch.ip ?? null,
        patch.sni ?? null,
        patch.alpn ?? null,
        patch.bytesUp ?? null,
        patch.bytesDown ?? null,
        patch.endedAt ?? null,
        patch.outcome ?? null,
        patch.reason ?? null,
        hasVerdict,
        v?.action ?? null,
        hasVerdict,
        v?.rule ?? null,
        hasVerdict,
        v?.violation ? 1 : 0,
        id,
      ],
      what: `an update of connection ${id}`,
    });
  }

  addRequest(r: RequestInput): Promise<string> {
    try {
      this.assertOpen();
      const key = this.writeKey(r.sessionId);
      const id = newId();
      const url = sealValue(key, ctx(id, 'url'), r.url);
      const headers = sealHeaderList(key, ctx(id, 'request_headers'), r.requestHeaders);
      const v: Verdict | null = r.verdict;
      const args = [
        id,
        r.sessionId,
        r.connectionId,
        r.startedAt,
        r.method.toUpperCase(),
        r.scheme,
        normHost(r.host),
        r.port,
        v?.action ?? null,
        v?.rule ?? null,
        v?.violation ? 1 : 0,
        r.pid ?? null,
        r.exe ?? null,
        url,
        headers,
      ];
      this.rememberRequest(id, r.sessionId, r.startedAt);
      const stmt = this.s.insertRequest;
      return new Promise<string>((resolve, reject) => {
        this.writer.enqueue({
          stmt,
          args,
          what: `request ${id}`,
          waiter: { value: id, resolve, reject, onReject: this.forgetRequest },
        });
      });
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  completeRequest(id: string, done: RequestCompletion): void {
    this.assertOpen();
    if (!OUTCOME_SET.has(done.outcome)) oneOf('outcome', done.outcome, OUTCOMES);
    const { info, key } = this.requestKey(id);
    this.openRequests.delete(id);
    const rh = done.responseHeaders ?? null;
    const rq = done.requestBody ?? null;
    const rs = done.responseBody ?? null;
    const sealedHeaders = rh === null ? null : sealHeaderList(key, ctx(id, 'response_headers'), rh);
    const durationMs = done.durationMs ?? Math.max(0, done.endedAt - info.startedAt);
    if (rq === null && rs === null) {
      this.writer.enqueue({
        stmt: this.s.completeRequestNoBodies,
        args: [
          done.endedAt,
          done.status ?? null,
          sealedHeaders,
          done.requestSize ?? null,
          done.responseSize ?? null,
          durationMs,
          done.ttfbMs ?? null,
          done.outcome,
          done.reason ?? null,
          id,
        ],
        what: `the completion of request ${id}`,
      });
      return;
    }
    // A body that streamed in parts gets its last part here; the row then holds no body.
    const rqParts = rq === null ? 0 : this.lastPart(key, id, 'request_body', rq);
    const rsParts = rs === null ? 0 : this.lastPart(key, id, 'response_body', rs);
    const rqSealed =
      rq === null || rqParts > 0 ? null : sealValue(key, ctx(id, 'request_body'), rq.data);
    const rsSealed =
      rs === null || rsParts > 0 ? null : sealValue(key, ctx(id, 'response_body'), rs.data);
    const inline = (rqSealed?.length ?? 0) + (rsSealed?.length ?? 0);
    this.bodyBytes += inline;
    // The columns request_body, response_body and their parts counts; everything else as given.
    const args = (bodies: [Buffer | null, Buffer | null, number | null, number | null]) => [
      done.endedAt,
      done.status ?? null,
      sealedHeaders,
      ...bodies,
      rq === null ? null : rq.truncated ? 1 : 0,
      rs === null ? null : rs.truncated ? 1 : 0,
      done.requestSize ?? rq?.size ?? null,
      done.responseSize ?? rs?.size ?? null,
      durationMs,
      done.ttfbMs ?? null,
      done.outcome,
      done.reason ?? null,
      id,
    ];
    const stmt = this.s.completeRequest;
    const what = `the completion of request ${id}`;
    const rqCount = rqParts > 0 ? rqParts : null;
    const rsCount = rsParts > 0 ? rsParts : null;
    this.writer.enqueue({
      stmt,
      args: args([rqSealed, rsSealed, rqCount, rsCount]),
      what,
      bytes: inline,
      // Should a full disk force the queue to shed this body, the completion is kept without
      // it, its parts count set to BODY_NOT_STORED so that reads say so.
      lighter:
        inline > 0
          ? () => ({
              stmt,
              what,
              args: args([
                null,
                null,
                rqSealed !== null ? BODY_NOT_STORED : rqCount,
                rsSealed !== null ? BODY_NOT_STORED : rsCount,
              ]),
            })
          : undefined,
    });
  }

  addBodyPart(requestId: string, field: BodyField, seq: number, data: Buffer): void {
    this.assertOpen();
    oneOf('body field', field, BODY_FIELDS);
    if (!Number.isInteger(seq) || seq < 0) {
      throw new TrustRunError('TR_INTERNAL', `invalid body part number: ${String(seq)}`);
    }
    this.writePart(this.requestKey(requestId).key, requestId, field, seq, data);
  }

  /**
   * For a body whose first `body.parts` parts are written: writes `body.data` as the next part
   * (when there is any) and returns the number of parts in all; 0 when the body has no parts.
   */
  private lastPart(key: DataKey, id: string, field: BodyField, body: CapturedBody): number {
    const parts = body.parts ?? 0;
    if (parts === 0) return 0;
    // The proxy hands a part over only when more bytes follow it: the last one comes here.
    this.writePart(key, id, field, parts, body.data, true);
    return parts + 1;
  }

  private writePart(
    key: DataKey,
    id: string,
    field: BodyField,
    seq: number,
    data: Buffer,
    last = false,
  ): void {
    this.bodyBytes += data.length;
    const sealed = sealValue(key, partCtx(id, field, seq, last), data);
    this.writer.enqueue({
      stmt: this.s.insertBodyPart,
      bytes: sealed.length,
      args: [id, field, seq, sealed],
      what: `part ${seq} of the ${field.replace('_', ' ')} of request ${id}`,
    });
  }

  addViolation(v: ViolationInput): string {
    const id = newId();
    const verdict = v.verdict;
    this.writer.enqueue({
      stmt: this.s.insertViolation,
      args: [
        id,
        v.sessionId,
        v.time,
        normHost(v.host),
        v.port,
        v.method == null ? null : v.method.toUpperCase(),
        verdict.action,
        verdict.rule,
        verdict.ruleIndex,
        verdict.reason,
        verdict.explanation,
        v.enforced ? 1 : 0,
        v.connectionId ?? null,
        v.requestId ?? null,
        v.monitorEventId ?? null,
      ],
      what: `violation ${id}`,
    });
    return id;
  }

  addMonitorEvent(e: MonitorEventInput): string {
    oneOf('monitor protocol', e.protocol, MONITOR_PROTOCOLS);
    const id = newId();
    const v = e.verdict ?? null;
    this.writer.enqueue({
      stmt: this.s.insertMonitorEvent,
      args: [
        id,
        e.sessionId,
        e.pid,
        e.exe ?? null,
        e.protocol,
        e.localAddr,
        e.localPort,
        e.remoteAddr.toLowerCase(),
        e.remotePort,
        e.state,
        e.firstSeen,
        e.lastSeen,
        e.hostname == null ? null : normHost(e.hostname),
        e.org ?? null,
        v?.action ?? null,
        v?.rule ?? null,
        v?.violation ? 1 : 0,
        e.enforced ? 1 : 0,
      ],
      what: `monitor event ${id}`,
    });
    return id;
  }

  updateMonitorEvent(id: string, patch: MonitorEventPatch): void {
    const has = (k: keyof MonitorEventPatch) => (patch[k] !== undefined ? 1 : 0);
    const v = patch.verdict ?? null;
    this.writer.enqueue({
      stmt: this.s.updateMonitorEvent,
      args: [
        patch.lastSeen ?? null,
        patch.state ?? null,
        has('hostname'),
        patch.hostname == null ? null : normHost(patch.hostname),
        has('org'),
        patch.org ?? null,
        has('verdict'),
        v?.action ?? null,
        has('verdict'),
        v?.rule ?? null,
        has('verdict'),
        v?.violation ? 1 : 0,
        patch.enforced === undefined ? null : patch.enforced ? 1 : 0,
        id,
      ],
      what: `an update of monitor event ${id}`,
    });
  }

  // ---- scans ---------------------------------------------------------------------------------

  addScan(input: ScanInput): string {
    this.assertOpen();
    return this.scans.addScan(input, this.transactionFn);
  }

  addFindings(scanId: string, findings: readonly FindingInput[]): string[] {
    this.assertOpen();
    return this.scans.addFindings(scanId, findings, this.transactionFn);
  }

  listScans(q?: ScanQuery) {
    this.assertOpen();
    return this.scans.listScans(q);
  }

  getScan(id: string) {
    this.assertOpen();
    return this.scans.getScan(id);
  }

  listFindings(q: FindingQuery) {
    this.assertOpen();
    return this.scans.listFindings(q);
  }

  getFindingRaw(id: string) {
    this.assertOpen();
    return this.scans.getFindingRaw(id);
  }

  async purgeScan(id: string): Promise<void> {
    this.assertOpen();
    this.scans.deleteScan(id, this.transactionFn);
    this.checkpointAfterDelete();
  }

  async flush(): Promise<void> {
    this.assertOpen();
    const err = this.writer.drain();
    if (err) throw err;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    const err = this.writer.drain();
    const lost = this.writer.stop(closedError());
    this.closed = true;
    await this.checkpointer.stop();
    try {
      if (this.db.open) checkpoint(this.db);
    } catch (e) {
      this.logger.warn({ err: messageOf(e) }, 'checkpoint at close failed');
    }
    this.scans.close();
    for (const k of this.writeKeys.values()) wipe(k.key);
    for (const k of this.readKeys.values()) wipe(k.key);
    this.writeKeys.clear();
    this.readKeys.clear();
    wipe(this.master.key);
    if (this.db.open) this.db.close();
    if (err || lost > 0) {
      throw new TrustRunError(
        'TR_STORE_UNAVAILABLE',
        `the store closed with ${lost} queued records unwritten${err ? `: ${err.message}` : ''}`,
        { cause: err ?? undefined },
      );
    }
  }

  // ---- reads ---------------------------------------------------------------------------------

  listSessions(q?: PageQuery) {
    this.assertOpen();
    return this.reader.listSessions(q);
  }

  getSession(id: string) {
    this.assertOpen();
    return this.reader.getSession(id);
  }

  listConnections(q?: ConnectionQuery) {
    this.assertOpen();
    return this.reader.listConnections(q);
  }

  listRequests(q?: RequestQuery) {
    this.assertOpen();
    return this.reader.listRequests(q);
  }

  listViolations(q?: ViolationQuery) {
    this.assertOpen();
    return this.reader.listViolations(q);
  }

  listMonitorEvents(q?: MonitorEventQuery) {
    this.assertOpen();
    return this.reader.listMonitorEvents(q);
  }

  getRequest(id: string): RequestDetail | null {
    this.assertOpen();
    const rec = this.reader.getRequestRecord(id);
    if (!rec) return null;
    if (rec.sessionShreddedAt !== null) {
      throw new TrustRunError(
        'TR_SEAL_OPEN',
        `request ${id} belongs to session ${rec.row.sessionId}, which was shredded on ${new Date(
          rec.sessionShreddedAt,
        ).toISOString()}: its URL, headers and bodies can no longer be opened`,
      );
    }
    const open = (field: 'url' | 'request_headers' | 'response_headers' | BodyField) => {
      const blob = rec.sealed[field];
      return blob === null ? null : openValue(this.lookupKey, ctx(id, field), blob);
    };
    const body = (field: BodyField) =>
      rec.sealed[field] !== null
        ? { data: open(field) }
        : this.openParts(id, field, rec.sealed[`${field}_parts`]);
    const requestBody = body('request_body');
    const responseBody = body('response_body');
    const url = open('url');
    const requestHeaders = open('request_headers');
    const responseHeaders = open('response_headers');
    return {
      ...rec.row,
      url: url === null ? '' : url.toString('utf8'),
      requestHeaders: requestHeaders === null ? [] : decodeHeaders(requestHeaders.toString('utf8')),
      responseHeaders:
        responseHeaders === null ? null : decodeHeaders(responseHeaders.toString('utf8')),
      requestBody: requestBody.data,
      responseBody: responseBody.data,
      ...(requestBody.note !== undefined ? { requestBodyNote: requestBody.note } : {}),
      ...(responseBody.note !== undefined ? { responseBodyNote: responseBody.note } : {}),
    };
  }

  /**
   * A body stored in parts, opened and joined, with a note when it is not all there; null when
   * it has none. The last part of a completed body is sealed as the last (partCtx), so a body
   * cut short after it was stored does not open as if whole. Parts missing (dropped while the
   * store could not be written, or removed since) give the intact head and a note saying how
   * many are stored; a request that never completed (the proxy stopped mid-body) shows the parts
   * written before it stopped. A part that does not open refuses the request (TR_SEAL_OPEN).
   */
  private openParts(
    id: string,
    field: BodyField,
    expected: number,
  ): { data: Buffer | null; note?: string } {
    if (expected === BODY_NOT_STORED) {
      return { data: null, note: 'not stored: dropped while the store could not be written' };
    }
    const rows = this.reader.bodyParts(id, field);
    if (rows.length === 0 && expected === 0) return { data: null };
    if (expected > 0 && rows.some((r) => r.seq >= expected)) {
      throw new TrustRunError(
        'TR_SEAL_OPEN',
        `the ${field.replace('_', ' ')} of request ${id} has more parts stored than it was written with`,
      );
    }
    let intact = 0;
    while (intact < rows.length && rows[intact]!.seq === intact) intact++;
    const opened = rows
      .slice(0, intact)
      .map((r) =>
        openValue(this.lookupKey, partCtx(id, field, r.seq, r.seq === expected - 1), r.data),
      );
    const data = intact > 0 ? Buffer.concat(opened) : null;
    if (expected === 0) {
      const gap = rows.length > intact ? ` (and ${rows.length - intact} after a gap)` : '';
      return {
        data,
        note: `the request did not complete: ${intact} part(s) of its body were stored${gap}`,
      };
    }
    if (intact < expected) {
      return {
        data,
        note: `incomplete: the first ${intact} of ${expected} parts are stored (${rows.length} in all)`,
      };
    }
    return { data };
  }

  // ---- shredding and retention ---------------------------------------------------------------

  async shredSession(id: string): Promise<void> {
    await this.flush();
    this.requireSession(id);
    this.transaction('shred the session', () => {
      this.db.prepare('DELETE FROM session_keys WHERE session_id = ?').run(id);
      this.db
        .prepare('UPDATE sessions SET shredded_at = COALESCE(shredded_at, ?) WHERE id = ?')
        .run(Date.now(), id);
    });
    this.forgetKeys(id);
    this.checkpointAfterDelete();
  }

  async purgeSession(id: string): Promise<void> {
    await this.flush();
    const s = this.requireSession(id);
    if (s.status === 'running') {
      throw new TrustRunError('TR_USAGE', `session ${id} is still running; end it before purging`);
    }
    this.transaction('purge the session', () => {
      this.db.prepare('DELETE FROM sessions WHERE id = ?').run(id);
    });
    this.forgetKeys(id);
    this.checkpointAfterDelete();
  }

  async purgeSessions(q: { endedBefore: number }): Promise<number> {
    if (typeof q.endedBefore !== 'number' || !Number.isFinite(q.endedBefore)) {
      throw new TrustRunError(
        'TR_USAGE',
        'endedBefore must be a time in milliseconds since the epoch',
      );
    }
    await this.flush();
    const ids = (
      this.db
        .prepare(
          `SELECT id FROM sessions WHERE status != 'running' AND COALESCE(ended_at, started_at) < ?`,
        )
        .all(q.endedBefore) as { id: string }[]
    ).map((r) => r.id);
    if (ids.length === 0) return 0;
    const del = this.db.prepare('DELETE FROM sessions WHERE id = ?');
    this.transaction('purge sessions', () => {
      for (const id of ids) del.run(id);
    });
    for (const id of ids) this.forgetKeys(id);
    this.checkpointAfterDelete();
    return ids.length;
  }

  // ---- internals -----------------------------------------------------------------------------

  private readonly lookupKey: KeyLookup = (keyId) => {
    const cached = this.readKeys.get(keyId);
    if (cached) return cached;
    const row = this.s.keyById.get(keyId) as { sessionId: string; wrapped: Buffer } | undefined;
    if (!row) return { missing: `its data key ${keyId} does not exist (shredded or never stored)` };
    const key = unwrapDataKey(this.master, row.sessionId, keyId, row.wrapped);
    const entry = { ...key, sessionId: row.sessionId };
    this.readKeys.set(keyId, entry);
    return entry;
  };

  private writeKey(sessionId: string): DataKey {
    const cached = this.writeKeys.get(sessionId);
    if (cached) return cached;
    const row = this.s.sessionKey.get(sessionId) as { keyId: string; wrapped: Buffer } | undefined;
    if (!row) {
      const s = this.reader.getSession(sessionId);
      if (!s) throw new TrustRunError('TR_NOT_FOUND', `no session ${sessionId} in the store`);
      throw new TrustRunError(
        'TR_KEY',
        `session ${sessionId} was shredded; nothing more can be recorded in it`,
      );
    }
    const key = unwrapDataKey(this.master, sessionId, row.keyId, row.wrapped);
    this.writeKeys.set(sessionId, key);
    return key;
  }

  /** A request's session and start (kept since addRequest, else read) and its data key. */
  private requestKey(id: string): {
    info: { sessionId: string; startedAt: number };
    key: DataKey;
  } {
    const info = this.openRequests.get(id) ?? this.requestInfo(id);
    return { info, key: this.writeKey(info.sessionId) };
  }

  private requestInfo(id: string): { sessionId: string; startedAt: number } {
    const row = this.s.requestInfo.get(id) as { sessionId: string; startedAt: number } | undefined;
    if (!row) throw new TrustRunError('TR_NOT_FOUND', `no request ${id} in the store`);
    return row;
  }

  private readonly forgetRequest = (id: string): void => {
    this.openRequests.delete(id);
  };

  private rememberRequest(id: string, sessionId: string, startedAt: number): void {
    if (this.openRequests.size >= OPEN_REQUESTS_MAX) {
      const oldest = this.openRequests.keys().next();
      if (!oldest.done) this.openRequests.delete(oldest.value);
    }
    this.openRequests.set(id, { sessionId, startedAt });
  }

  private requireSession(id: string): SessionRow {
    const s = this.reader.getSession(id);
    if (!s) throw new TrustRunError('TR_NOT_FOUND', `no session ${id} in the store`);
    return s;
  }

  private forgetKeys(sessionId: string): void {
    const w = this.writeKeys.get(sessionId);
    if (w) {
      wipe(w.key);
      this.writeKeys.delete(sessionId);
    }
    for (const [keyId, k] of this.readKeys) {
      if (k.sessionId === sessionId) {
        wipe(k.key);
        this.readKeys.delete(keyId);
      }
    }
  }

  /** After a delete: move the WAL (which still holds the old pages) into the file and truncate it. */
  private checkpointAfterDelete(): void {
    if (!checkpoint(this.db)) {
      this.logger.warn(
        'another connection is reading the database: the deleted values stay in the database file and its WAL until the next full checkpoint',
      );
    }
  }

  private readonly transactionFn = (what: string, fn: () => void): void =>
    this.transaction(what, fn);

  /** A direct (unbatched) write transaction; failures become TR_STORE_UNAVAILABLE. */
  private transaction(what: string, fn: () => void): void {
    this.assertOpen();
    try {
      this.db.transaction(fn).immediate();
    } catch (err) {
      throw new TrustRunError(
        'TR_STORE_UNAVAILABLE',
        `cannot ${what}: ${this.db.open ? describeSqliteError(err) : 'the database is closed'}`,
        { cause: err },
      );
    }
  }

  private assertOpen(): void {
    if (this.closed) throw closedError();
  }

  private emitError(err: TrustRunError): void {
    this.logger.warn({ code: err.code }, err.message);
    for (const listener of this.listeners) {
      try {
        listener(err);
      } catch (e) {
        this.logger.error({ err: messageOf(e) }, 'store error listener threw');
      }
    }
  }
}

/** SET clause freezing a session's record counts; `id` is the SQL parameter holding its id. */
function freezeCounts(id: string): string {
  return `connection_count = (SELECT COUNT(*) FROM connections WHERE session_id = ${id}),
    request_count = (SELECT COUNT(*) FROM requests WHERE session_id = ${id}),
    violation_count = (SELECT COUNT(*) FROM violations WHERE session_id = ${id}),
    monitor_event_count = (SELECT COUNT(*) FROM monitor_events WHERE session_id = ${id})`;
}

function ctx(recordId: string, field: string): SealContext {
  return { table: 'requests', recordId, field };
}

/**
 * A body part's context: its own table, the part number bound to the request id, and for the
 * last part of a completed body a mark saying so (a body cut short does not open as whole).
 */
function partCtx(requestId: string, field: BodyField, seq: number, last = false): SealContext {
  return { table: 'body_parts', recordId: `${requestId}.${seq}${last ? '.last' : ''}`, field };
}

const BODY_FIELDS: readonly BodyField[] = ['request_body', 'response_body'];

/** A parts count meaning: the body was captured but dropped before it could be stored. */
const BODY_NOT_STORED = -1;

function normHost(host: string): string {
  return host.toLowerCase();
}

function oneOf<T extends string>(what: string, value: unknown, allowed: readonly T[]): void {
  if (!(allowed as readonly unknown[]).includes(value)) {
    throw new TrustRunError('TR_INTERNAL', `invalid ${what}: ${JSON.stringify(value)}`);
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
