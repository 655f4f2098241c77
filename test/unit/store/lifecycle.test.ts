import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  MIGRATIONS,
  appliedVersions,
  migrate,
  openStore,
  type Store,
} from '../../../src/store/index.js';
import { processToken } from '../../../src/store/liveness.js';
import type { SqliteStore } from '../../../src/store/store.js';
import { TempDirs, expectCode } from './helpers.js';

const temp = new TempDirs();
const open: (Store | Database.Database)[] = [];

afterEach(async () => {
  for (const s of open.splice(0)) {
    if (s instanceof Database) s.close();
    else await s.close().catch(() => undefined);
  }
  temp.cleanup();
});

async function openAt(dataDir: string): Promise<Store> {
  const store = await openStore({ dataDir });
  open.push(store);
  return store;
}

function raw(dataDir: string): Database.Database {
  const db = new Database(join(dataDir, 'trustrun.db'));
  open.push(db);
  return db;
}

describe('schema and migrations', () => {
  it('creates the schema once and reopening applies nothing again', async () => {
    const dataDir = temp.make();
    await (await openAt(dataDir)).close();
    await (await openAt(dataDir)).close();
    const db = raw(dataDir);
    expect(appliedVersions(db)).toEqual(MIGRATIONS.map((m) => m.version));
    expect(migrate(db)).toEqual([]);
    expect(db.prepare('SELECT COUNT(*) AS n FROM schema_migrations').get()).toEqual({
      n: MIGRATIONS.length,
    });
    const tables = (
      db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as {
        name: string;
      }[]
    ).map((t) => t.name);
    expect(tables).toEqual(
      expect.arrayContaining([
        'connections',
        'requests',
        'schema_migrations',
        'session_keys',
        'sessions',
        'store_meta',
        'violations',
      ]),
    );
  });

  it('applies a later migration to an existing database, in order', async () => {
    const dataDir = temp.make();
    await (await openAt(dataDir)).close();
    const db = raw(dataDir);
    const next = [
      ...MIGRATIONS,
      { version: 900, name: 'add a column', sql: 'ALTER TABLE requests ADD COLUMN note TEXT' },
      { version: 901, name: 'add a table', sql: 'CREATE TABLE extra (id TEXT PRIMARY KEY)' },
    ];
    expect(migrate(db, next)).toEqual([900, 901]);
    expect(migrate(db, next)).toEqual([]);
    expect(appliedVersions(db)).toEqual([...MIGRATIONS.map((m) => m.version), 900, 901]);
  });

  it('stores a command line redacted, and redacts the rows of an older database in place', async () => {
    const dataDir = temp.make();
    const store = await openAt(dataDir);
    const secretUrl = 'https://h.test/x?access_token=CMDMARK1tok';
    const s = store.startSession({
      kind: 'run',
      command: ['curl', '-u', 'usr:CMDMARK2pw', secretUrl],
      level: 'headers',
    });
    expect(JSON.stringify(s.command)).not.toMatch(/CMDMARK/);
    await store.close();
    // The same database as version 3 left it: a command stored as given.
    const db = raw(dataDir);
    db.prepare('DELETE FROM schema_migrations WHERE version = 4').run();
    db.prepare(
      `INSERT INTO sessions (id, kind, command, level, started_at, status)
       VALUES ('0mold000000000000000', 'run', ?, 'headers', 1, 'completed')`,
    ).run(JSON.stringify(['Rscript', '-e', `httr::GET('${secretUrl.replace('1tok', '3tok')}')`]));
    db.close();
    open.splice(open.indexOf(db), 1);
    const again = await openAt(dataDir);
    const old = again.getSession('0mold000000000000000')!;
    expect(old.command).toEqual([
      'Rscript',
      '-e',
      "httr::GET('https://h.test/x?access_token=[REDACTED:token]')",
    ]);
    expect(again.getSession(s.id)!.command).toEqual(s.command);
    await again.close();
    for (const file of ['trustrun.db', 'trustrun.db-wal']) {
      const bytes = (() => {
        try {
          return readFileSync(join(dataDir, file));
        } catch {
          return Buffer.alloc(0);
        }
      })();
      expect(bytes.includes('CMDMARK')).toBe(false);
    }
  });

  it('redacts the rows of a version 4 database again (MySQL -pPASSWORD, secret options in scripts)', async () => {
    const dataDir = temp.make();
    await (await openAt(dataDir)).close();
    // Version 4 stored `mysql -pSECRET` as given.
    const db = raw(dataDir);
    db.prepare('DELETE FROM schema_migrations WHERE version = 5').run();
    db.prepare(
      `INSERT INTO sessions (id, kind, command, level, started_at, status)
       VALUES ('0mold000000000000001', 'run', ?, 'headers', 1, 'completed')`,
    ).run(JSON.stringify(['mysql', '-uroot', '-pCMDMARK5pw', 'clinic']));
    db.prepare(
      `INSERT INTO sessions (id, kind, command, level, started_at, status)
       VALUES ('0mold000000000000002', 'run', ?, 'headers', 1, 'completed')`,
    ).run(JSON.stringify(['sh', '-c', 'tool --password="CMDMARK6 pw" x']));
    db.close();
    open.splice(open.indexOf(db), 1);
    const again = await openAt(dataDir);
    expect(again.getSession('0mold000000000000001')!.command).toEqual([
      'mysql',
      '-uroot',
      '-p[REDACTED:password]',
      'clinic',
    ]);
    expect(again.getSession('0mold000000000000002')!.command).toEqual([
      'sh',
      '-c',
      'tool --password=[REDACTED:password] x',
    ]);
    await again.close();
    for (const file of ['trustrun.db', 'trustrun.db-wal']) {
      let bytes = Buffer.alloc(0);
      try {
        bytes = readFileSync(join(dataDir, file));
      } catch {
        // not there
      }
      expect(bytes.includes('CMDMARK')).toBe(false);
    }
  });

  it('refuses a database written by a newer version', async () => {
    const dataDir = temp.make();
    await (await openAt(dataDir)).close();
    raw(dataDir)
      .prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, ?, 0)')
      .run('future');
    const err = await expectCode(() => openAt(dataDir), 'TR_STORE');
    expect(err.message).toMatch(/newer TrustRun \(schema version 999/);
  });

  it('refuses an SQLite file of another program and changes nothing in it', async () => {
    for (const [sql, shown] of [
      ['CREATE TABLE notes(x)', 'notes'],
      ['CREATE TABLE sessions(id TEXT, foo INT)', 'sessions'],
    ] as const) {
      const dataDir = temp.make();
      const file = join(dataDir, 'trustrun.db');
      const foreign = new Database(file);
      foreign.exec(sql);
      foreign.close();
      chmodSync(file, 0o644);
      const before = readFileSync(file);
      const err = await expectCode(() => openAt(dataDir), 'TR_STORE');
      expect(err.message).toMatch(
        new RegExp(
          `trustrun\\.db is not a TrustRun database \\(it holds other tables: ${shown}\\); nothing was changed in it`,
        ),
      );
      expect(readFileSync(file).equals(before)).toBe(true);
      expect(statSync(file).mode & 0o777).toBe(0o644);
      const check = new Database(file, { readonly: true });
      const tables = check.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all();
      check.close();
      expect(tables).toEqual([{ name: shown }]);
    }
  });

  it('says so clearly when another process holds the database locked at open', async () => {
    const dataDir = temp.make();
    await (await openAt(dataDir)).close();
    const other = raw(dataDir);
    other.prepare('BEGIN IMMEDIATE').run();
    const err = await expectCode(() => openStore({ dataDir, busyTimeoutMs: 50 }), 'TR_STORE');
    expect(err.message).toMatch(/cannot open the store .*trustrun\.db: SQLITE_BUSY/);
    other.prepare('ROLLBACK').run();
  });

  it('sets the connection up as documented', async () => {
    const store = (await openAt(temp.make())) as SqliteStore;
    const p = (name: string) => store.db.pragma(name, { simple: true });
    expect(p('journal_mode')).toBe('wal');
    expect(p('synchronous')).toBe(1); // NORMAL
    expect(p('secure_delete')).toBe(1);
    expect(p('temp_store')).toBe(2); // MEMORY
    expect(p('foreign_keys')).toBe(1);
    expect(p('busy_timeout')).toBe(2000);
    expect(p('cache_size')).toBe(-2048);
    expect(p('wal_autocheckpoint')).toBe(4000);
  });
});

describe('query plans', () => {
  it('serves lists by session, host and time from indexes, not table scans', async () => {
    const dataDir = temp.make();
    await (await openAt(dataDir)).close();
    const db = raw(dataDir);
    const plan = (sql: string, ...args: unknown[]) =>
      (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...args) as { detail: string }[])
        .map((r) => r.detail)
        .join('; ');
    const list = 'SELECT * FROM requests WHERE';
    const order = 'ORDER BY id DESC LIMIT 100';
    expect(plan(`${list} session_id = ? ${order}`, 's')).toMatch(
      /USING (COVERING )?INDEX requests_session/,
    );
    expect(plan(`${list} host = ? ${order}`, 'h')).toMatch(/USING (COVERING )?INDEX requests_host/);
    // A time range is bounded by the id (ids start with their creation time).
    expect(plan(`${list} started_at >= ? AND id >= ? ${order}`, 1, '0')).toMatch(
      /SEARCH requests USING (COVERING )?INDEX sqlite_autoindex_requests_1 \(id>\?\)/,
    );
    expect(plan('SELECT * FROM violations WHERE session_id = ? ORDER BY id DESC', 's')).toMatch(
      /USING (COVERING )?INDEX violations_session/,
    );
  });
});

describe('sessions left running', () => {
  function insertRunning(db: Database.Database, id: string, pid: number, token: string | null) {
    db.prepare(
      `INSERT INTO sessions (id, kind, level, pid, owner_token, started_at, status)
       VALUES (?, 'run', 'headers', ?, ?, ?, 'running')`,
    ).run(id, pid, token, 1000);
  }

  it('marks sessions of dead or reused pids interrupted and leaves live ones running', async () => {
    const dataDir = temp.make();
    await (await openAt(dataDir)).close();
    const db = raw(dataDir);
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    insertRunning(db, '0000000000000000000001', dead, 'linux:x:1');
    // This process's pid with another start time: the pid was reused by someone else.
    insertRunning(db, '0000000000000000000002', process.pid, 'linux:other-boot:1');
    insertRunning(db, '0000000000000000000003', process.pid, processToken(process.pid));
    db.prepare(
      `INSERT INTO requests (id, session_id, started_at, ended_at, method, scheme, host, port, url, request_headers)
       VALUES ('0000000000000000000009', '0000000000000000000001', 5000, 7000, 'GET', 'https', 'h', 443, x'00', x'00')`,
    ).run();
    db.close();
    open.pop();

    const store = await openAt(dataDir);
    expect(store.getSession('0000000000000000000001')).toMatchObject({
      status: 'interrupted',
      endedAt: 7000, // the last activity recorded
    });
    expect(store.getSession('0000000000000000000002')).toMatchObject({
      status: 'interrupted',
      endedAt: 1000,
    });
    expect(store.getSession('0000000000000000000003')?.status).toBe('running');
  });
});
