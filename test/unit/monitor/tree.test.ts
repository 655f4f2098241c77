import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ExeCache, ProcTreeTracker, ProcfsBackend } from '../../../src/monitor/index.js';
import { FakeProc } from './fakeproc.js';

let dir: string;
let proc: FakeProc;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'trustrun-proc-'));
  proc = new FakeProc(dir);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('process tree tracker (fake /proc)', () => {
  it('follows new children and grandchildren, not unrelated processes', () => {
    proc.proc(1, 0);
    proc.proc(100, 1);
    proc.proc(200, 1);
    const t = new ProcTreeTracker(100, dir);
    expect(t.refresh()).toEqual([100]);
    proc.proc(101, 100);
    proc.proc(102, 101);
    proc.proc(201, 200);
    expect(t.refresh()).toEqual([100, 101, 102]);
    expect(t.rootExited()).toBe(false);
  });

  it('keeps a re-parented orphan, drops exited members', () => {
    proc.proc(1, 0);
    proc.proc(100, 1);
    proc.proc(101, 100);
    proc.proc(102, 101);
    const t = new ProcTreeTracker(100, dir);
    expect(t.refresh()).toEqual([100, 101, 102]);
    proc.exit(101);
    proc.exit(102);
    proc.proc(102, 1); // same pid, now a child of init: still ours (we saw it born in the tree)
    proc.proc(103, 102); // and its new child too
    expect(t.refresh().sort()).toEqual([100, 102, 103]);
  });

  it("takes in a process that left the tree before a poll saw it, by the root's mark in its environment", () => {
    const mark = 'TRUSTRUN_SESSION=abc';
    proc.proc(1, 0);
    proc.proc(90, 1, { start: 5, env: ['HOME=/h', mark] }); // older than the root: not ours
    proc.proc(100, 1, { env: ['HOME=/h', mark] });
    const t = new ProcTreeTracker(100, dir, mark);
    expect(t.refresh()).toEqual([100]);
    // 101 forked 102 and exited between two polls: 102 is init's child now.
    proc.proc(102, 1, { env: ['A=1', mark, 'B=2'] });
    proc.proc(103, 102, { env: [mark] });
    proc.proc(104, 1, { env: ['TRUSTRUN_SESSION=abcd'] }); // another session
    proc.proc(105, 1, { env: [`X${mark}`] }); // not a whole entry
    proc.proc(106, 1); // environment unreadable
    expect(t.refresh().sort()).toEqual([100, 102, 103]);
    // Without the mark, nothing links 102 to the tree.
    const u = new ProcTreeTracker(100, dir);
    expect(u.refresh()).toEqual([100]);
  });

  it('notices the root exiting, as a zombie or gone, and a reused root pid', () => {
    proc.proc(1, 0);
    proc.proc(100, 1);
    const t = new ProcTreeTracker(100, dir);
    t.refresh();
    proc.proc(100, 1, { state: 'Z' });
    t.refresh();
    expect(t.rootExited()).toBe(true);

    proc.proc(300, 1, { start: 5 });
    const u = new ProcTreeTracker(300, dir);
    u.refresh();
    proc.exit(300);
    proc.proc(300, 1, { start: 99 }); // another process got the pid
    expect(u.refresh()).toEqual([]);
    expect(u.rootExited()).toBe(true);
  });

  it('reports a missing root at once', () => {
    const t = new ProcTreeTracker(4242, dir);
    t.refresh();
    expect(t.rootExited()).toBe(true);
  });
});

describe('procfs backend (fake /proc)', () => {
  const L = '0100007F:D431'; // 127.0.0.1:54321
  const R = '0100007F:1F90'; // 127.0.0.1:8080

  it('reads the socket tables only when something new appears, then periodically', () => {
    proc.proc(100, 1);
    proc.fd(100, 3, 555);
    proc.table('tcp', [[L, R, '01', 555]]);
    const b = new ProcfsBackend(new ExeCache(dir), dir, 5);
    const first = b.snapshotSync([100]);
    expect(first).toEqual([
      {
        protocol: 'tcp',
        localAddr: '127.0.0.1',
        localPort: 54321,
        remoteAddr: '127.0.0.1',
        remotePort: 8080,
        state: 'ESTABLISHED',
        pid: 100,
        exe: null,
      },
    ]);
    const readsAfterFirst = b.tableReads;
    expect(readsAfterFirst).toBeGreaterThan(0);
    // Nothing new: no table read, same answer.
    expect(b.snapshotSync([100])).toEqual(first);
    expect(b.tableReads).toBe(readsAfterFirst);
    // A state change shows at the periodic refresh.
    proc.table('tcp', [[L, R, '08', 555]]);
    for (let i = 0; i < 5; i++) b.snapshotSync([100]);
    expect(b.tableReads).toBeGreaterThan(readsAfterFirst);
    expect(b.snapshotSync([100])[0]!.state).toBe('CLOSE_WAIT');
  });

  it('a new inode triggers a read; a closed fd drops the socket without one', () => {
    proc.proc(100, 1);
    const b = new ProcfsBackend(new ExeCache(dir), dir, 1000);
    expect(b.snapshotSync([100])).toEqual([]);
    proc.fd(100, 4, 777);
    proc.table('udp', [['0100007F:E984', '0100007F:0009', '01', 777]]);
    const r = b.tableReads;
    const s = b.snapshotSync([100]);
    expect(b.tableReads).toBeGreaterThan(r);
    expect(s).toMatchObject([{ protocol: 'udp', remotePort: 9, state: 'ESTABLISHED' }]);
    proc.closeFd(100, 4);
    const r2 = b.tableReads;
    expect(b.snapshotSync([100])).toEqual([]);
    expect(b.tableReads).toBe(r2);
  });

  it('re-reads while a TCP socket is still connecting', () => {
    proc.proc(100, 1);
    proc.fd(100, 3, 900);
    proc.table('tcp', [[L, '00000000:0000', '07', 900]]);
    const b = new ProcfsBackend(new ExeCache(dir), dir, 1000);
    expect(b.snapshotSync([100])[0]).toMatchObject({ remotePort: 0, state: 'CLOSE' });
    proc.table('tcp', [[L, R, '02', 900]]);
    expect(b.snapshotSync([100])[0]).toMatchObject({ remotePort: 8080, state: 'SYN_SENT' });
  });

  it('attributes a local endpoint to the pid holding the socket, refreshing on a miss', () => {
    proc.proc(100, 1);
    proc.proc(101, 100);
    const b = new ProcfsBackend(new ExeCache(dir), dir, 1000);
    b.snapshotSync([100, 101]);
    proc.fd(101, 5, 4242);
    proc.table('tcp', [
      [R, '00000000:0000', '0A', 1],
      [L, R, '01', 4242],
    ]);
    expect(b.ownerOf('127.0.0.1', 54321, () => [100, 101])).toEqual({ pid: 101, exe: null });
    expect(b.ownerOf('::ffff:127.0.0.1', 54321, () => [100, 101])).toEqual({ pid: 101, exe: null });
    expect(b.ownerOf('127.0.0.2', 54321, () => [100, 101])).toBeNull();
    expect(b.ownerOf('127.0.0.1', 54322, () => [100, 101])).toBeNull();
    // A socket held by a process outside the tree is not attributed.
    proc.proc(200, 1);
    proc.fd(200, 3, 5151);
    proc.table('tcp', [['0100007F:C350', R, '01', 5151]]); // 127.0.0.1:50000
    expect(b.ownerOf('127.0.0.1', 50000, () => [100, 101])).toBeNull();
    expect(b.ownerOf('127.0.0.1', 50000, () => [100, 101, 200])).toEqual({ pid: 200, exe: null });
  });
});
