import type { Database } from 'better-sqlite3';
import { TrustRunError } from '../core/index.js';
import { redactCommand } from './redact/view.js';

/**
 * Versioned schema migrations, applied in order at open, each once (recorded in
 * `schema_migrations`). Append new ones; never edit one that has shipped.
 *
 * Shape rules that keep later changes cheap: enumerations (kind, status, outcome, mode, action)
 * are plain TEXT checked in code, not CHECK constraints, so new values need no table rewrite;
 * new fields are added with ALTER TABLE ... ADD COLUMN; new record kinds get new tables.
 * Clear columns hold only non-PHI fields; URL path+query, headers and bodies are sealed BLOBs.
 *
 * Indexes are kept few (each one costs every insert): ids are time-ordered, so time ranges are
 * served by the primary key (see reads.ts), lists by session and host by (session_id, id) and
 * (host, id).
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
  /** Rewrites rows after `sql`, in the same transaction (a change SQL alone cannot make). */
  data?: (db: Database) => void;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'initial schema',
    sql: `
CREATE TABLE store_meta (
  name  TEXT PRIMARY KEY,
  value TEXT NOT NULL
);

CREATE TABLE sessions (
  id          TEXT PRIMARY KEY,
  kind        TEXT NOT NULL,
  command     TEXT,              -- JSON array of strings
  policy      TEXT,
  level       TEXT NOT NULL,
  listen      TEXT,
  pid         INTEGER,           -- the TrustRun process that owns the session
  owner_token TEXT,              -- boot id + start time of that process: pid reuse guard
  started_at  INTEGER NOT NULL,
  ended_at    INTEGER,
  status      TEXT NOT NULL,
  exit_code   INTEGER,
  shredded_at INTEGER
);
CREATE INDEX sessions_status ON sessions(status);

CREATE TABLE session_keys (
  session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
  key_id     TEXT NOT NULL,
  wrapped    BLOB NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (session_id, key_id)
);
CREATE UNIQUE INDEX session_keys_key_id ON session_keys(key_id);

CREATE TABLE connections (
  id             TEXT PRIMARY KEY,
  session_id     TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
  started_at     INTEGER NOT NULL,
  ended_at       INTEGER,
  client_addr    TEXT,
  client_port    INTEGER,
  pid            INTEGER,
  exe            TEXT,
  host           TEXT NOT NULL,
  port           INTEGER NOT NULL,
  ip             TEXT,
  sni            TEXT,
  alpn           TEXT,
  mode           TEXT NOT NULL,
  bytes_up       INTEGER NOT NULL DEFAULT 0,
  bytes_down     INTEGER NOT NULL DEFAULT 0,
  outcome        TEXT,
  reason         TEXT,
  verdict_action TEXT,
  verdict_rule   TEXT,
  violation      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX connections_session ON connections(session_id, id);
CREATE INDEX connections_host ON connections(host, id);

CREATE TABLE requests (
  id                      TEXT PRIMARY KEY,
  session_id              TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
  connection_id           TEXT,  -- not a foreign key: a request record never waits on its connection's
  started_at              INTEGER NOT NULL,
  ended_at                INTEGER,
  method                  TEXT NOT NULL,
  scheme                  TEXT NOT NULL,
  host                    TEXT NOT NULL,
  port                    INTEGER NOT NULL,
  status                  INTEGER,
  request_size            INTEGER,
  response_size           INTEGER,
  duration_ms             REAL,
  ttfb_ms                 REAL,
  outcome                 TEXT,
  reason                  TEXT,
  verdict_action          TEXT,
  verdict_rule            TEXT,
  violation               INTEGER NOT NULL DEFAULT 0,
  pid                     INTEGER,
  exe                     TEXT,
  request_body_truncated  INTEGER NOT NULL DEFAULT 0,
  response_body_truncated INTEGER NOT NULL DEFAULT 0,
  url                     BLOB NOT NULL,  -- sealed: path + query
  request_headers         BLOB NOT NULL,  -- sealed header list (headers.ts)
  response_headers        BLOB,           -- sealed
  request_body            BLOB,           -- sealed
  response_body           BLOB            -- sealed
);
CREATE INDEX requests_session ON requests(session_id, id);
CREATE INDEX requests_host ON requests(host, id);

CREATE TABLE violations (
  id            TEXT PRIMARY KEY,
  session_id    TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
  time          INTEGER NOT NULL,
  host          TEXT NOT NULL,
  port          INTEGER NOT NULL,
  method        TEXT,
  action        TEXT NOT NULL,
  rule          TEXT,
  rule_index    INTEGER,
  reason        TEXT NOT NULL,
  explanation   TEXT NOT NULL,
  enforced      INTEGER NOT NULL DEFAULT 0,
  connection_id TEXT,
  request_id    TEXT
);
CREATE INDEX violations_session ON violations(session_id, id);
CREATE INDEX violations_time ON violations(time);
CREATE INDEX violations_host ON violations(host, id);
`,
  },
  {
    version: 2,
    name: 'monitor events, scans and findings, session counts',
    sql: `
-- Sockets of a monitored process tree seen in procfs/lsof (direct connections the proxy did not
-- carry). Remote addresses are destinations, clear like hosts; nothing here is sealed.
CREATE TABLE monitor_events (
  id             TEXT PRIMARY KEY,
  session_id     TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
  pid            INTEGER NOT NULL,
  exe            TEXT,
  protocol       TEXT NOT NULL,
  local_addr     TEXT NOT NULL,
  local_port     INTEGER NOT NULL,
  remote_addr    TEXT NOT NULL,
  remote_port    INTEGER NOT NULL,
  state          TEXT NOT NULL,
  first_seen     INTEGER NOT NULL,
  last_seen      INTEGER NOT NULL,
  hostname       TEXT,
  org            TEXT,
  verdict_action TEXT,
  verdict_rule   TEXT,
  violation      INTEGER NOT NULL DEFAULT 0,
  enforced       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX monitor_events_session ON monitor_events(session_id, id);

ALTER TABLE violations ADD COLUMN monitor_event_id TEXT;

-- Record counts frozen when a session ends (NULL while it runs: counted live then).
ALTER TABLE sessions ADD COLUMN connection_count INTEGER;
ALTER TABLE sessions ADD COLUMN request_count INTEGER;
ALTER TABLE sessions ADD COLUMN violation_count INTEGER;
ALTER TABLE sessions ADD COLUMN monitor_event_count INTEGER;

CREATE TABLE scans (
  id             TEXT PRIMARY KEY,
  root           TEXT NOT NULL,
  started_at     INTEGER NOT NULL,
  ended_at       INTEGER NOT NULL,
  files          INTEGER NOT NULL,
  skipped        INTEGER NOT NULL,
  policy         TEXT,
  info_count     INTEGER NOT NULL DEFAULT 0,
  warning_count  INTEGER NOT NULL DEFAULT 0,
  critical_count INTEGER NOT NULL DEFAULT 0,
  finding_count  INTEGER NOT NULL DEFAULT 0
);

-- One data key per scan, wrapped by the master key: deleting it shreds the scan's secrets.
CREATE TABLE scan_keys (
  scan_id    TEXT PRIMARY KEY REFERENCES scans(id) ON DELETE CASCADE,
  key_id     TEXT NOT NULL UNIQUE,
  wrapped    BLOB NOT NULL,
  created_at INTEGER NOT NULL
);

CREATE TABLE scan_findings (
  id             TEXT PRIMARY KEY,
  scan_id        TEXT NOT NULL REFERENCES scans(id) ON DELETE CASCADE,
  file           TEXT NOT NULL,
  line           INTEGER NOT NULL,
  col            INTEGER NOT NULL,
  kind           TEXT NOT NULL,
  patterns       TEXT,              -- JSON array of pattern names
  severity       TEXT NOT NULL,
  secret         INTEGER NOT NULL DEFAULT 0,
  host           TEXT,
  port           INTEGER,
  fingerprint    TEXT,
  verdict_action TEXT,
  verdict_rule   TEXT,
  verdict_reason TEXT,
  violation      INTEGER NOT NULL DEFAULT 0,
  value          BLOB NOT NULL,     -- sealed: the matched text
  context        BLOB NOT NULL,     -- sealed: the source line
  endpoint       BLOB               -- sealed: the URL/host the finding names
);
CREATE INDEX scan_findings_scan ON scan_findings(scan_id, id);
`,
  },
  {
    version: 3,
    name: 'bodies stored in parts',
    // A long body is written part by part while it streams (Store.addBodyPart), each part
    // sealed on its own; the request row then holds no body and counts the parts. Short bodies,
    // and all rows written before, keep their body in the request row.
    sql: `
ALTER TABLE requests ADD COLUMN request_body_parts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN response_body_parts INTEGER NOT NULL DEFAULT 0;

CREATE TABLE body_parts (
  request_id TEXT NOT NULL REFERENCES requests(id) ON DELETE CASCADE,
  field      TEXT NOT NULL,     -- request_body or response_body
  seq        INTEGER NOT NULL,  -- 0, 1, 2, ... in body order
  data       BLOB NOT NULL      -- sealed
);
CREATE UNIQUE INDEX body_parts_request ON body_parts(request_id, field, seq);
`,
  },
  {
    version: 4,
    name: 'command lines stored redacted',
    // A session's command line is clear (history lists it) and may hold a token or a patient
    // identifier (`curl 'https://h/x?access_token=…'`, `-u user:password`): it is stored as every
    // read path shows it, and the rows written before are redacted in place.
    sql: '',
    data: redactStoredCommands,
  },
  {
    version: 5,
    name: "command lines redacted again: MySQL's -pPASSWORD, secret options in scripts",
    // `mysql -uroot -pSECRET` and `sh -c 'tool --password=SECRET'` were stored as given until
    // then: the rows are redacted again.
    sql: '',
    data: redactStoredCommands,
  },
];

/** Every session's command line redacted in place, as the store writes it now. */
function redactStoredCommands(db: Database): void {
  const rows = db.prepare('SELECT id, command FROM sessions WHERE command IS NOT NULL').all() as {
    id: string;
    command: string;
  }[];
  const update = db.prepare('UPDATE sessions SET command = ? WHERE id = ?');
  for (const row of rows) {
    let command: unknown;
    try {
      command = JSON.parse(row.command);
    } catch {
      command = null;
    }
    const shown =
      Array.isArray(command) && command.every((a) => typeof a === 'string')
        ? JSON.stringify(redactCommand(command as string[]))
        : null;
    if (shown !== row.command) update.run(shown, row.id);
  }
}

/** Applies the migrations not yet recorded; returns the versions applied now. */
export function migrate(db: Database, migrations: readonly Migration[] = MIGRATIONS): number[] {
  for (let i = 1; i < migrations.length; i++) {
    if (migrations[i]!.version <= migrations[i - 1]!.version) {
      throw new TrustRunError('TR_INTERNAL', 'migrations must have increasing versions');
    }
  }
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at INTEGER NOT NULL
  )`);
  const applied: number[] = [];
  const run = db.transaction(() => {
    const done = new Set(
      (db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]).map(
        (r) => r.version,
      ),
    );
    const latest = migrations.at(-1)?.version ?? 0;
    const newest = Math.max(0, ...done);
    if (newest > latest) {
      throw new TrustRunError(
        'TR_STORE',
        `the database was written by a newer TrustRun (schema version ${newest}, this one knows up to ${latest})`,
        { hint: 'Upgrade TrustRun, or use another --data-dir.' },
      );
    }
    const record = db.prepare(
      'INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)',
    );
    for (const m of migrations) {
      if (done.has(m.version)) continue;
      if (m.sql) db.exec(m.sql);
      m.data?.(db);
      record.run(m.version, m.name, Date.now());
      applied.push(m.version);
    }
  });
  run.immediate();
  return applied;
}

/** The versions recorded as applied, in order. */
export function appliedVersions(db: Database): number[] {
  return (
    db.prepare('SELECT version FROM schema_migrations ORDER BY version').all() as {
      version: number;
    }[]
  ).map((r) => r.version);
}
