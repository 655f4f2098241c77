import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A fake /proc: stat files, fd symlinks and socket tables, written by the test. */
export class FakeProc {
  constructor(readonly root: string) {
    mkdirSync(join(root, 'net'), { recursive: true });
    for (const t of ['tcp', 'tcp6', 'udp', 'udp6']) this.table(t, []);
    mkdirSync(join(root, 'self'), { recursive: true });
    writeFileSync(join(root, 'self', 'stat'), '1 (self) S 0\n');
  }
  proc(
    pid: number,
    ppid: number,
    opts: { state?: string; start?: number; env?: string[] } = {},
  ): void {
    mkdirSync(join(this.root, String(pid), 'fd'), { recursive: true });
    if (opts.env) {
      writeFileSync(
        join(this.root, String(pid), 'environ'),
        opts.env.map((e) => `${e}\0`).join(''),
      );
    }
    const fields = [opts.state ?? 'S', ppid, ...Array(17).fill(0), opts.start ?? pid * 10, 0];
    writeFileSync(join(this.root, String(pid), 'stat'), `${pid} (p ${pid}) ${fields.join(' ')}\n`);
  }
  exit(pid: number): void {
    rmSync(join(this.root, String(pid)), { recursive: true, force: true });
  }
  fd(pid: number, fd: number, inode: number): void {
    symlinkSync(`socket:[${inode}]`, join(this.root, String(pid), 'fd', String(fd)));
  }
  closeFd(pid: number, fd: number): void {
    rmSync(join(this.root, String(pid), 'fd', String(fd)));
  }
  /** rows: [local hex, remote hex, state hex, inode] */
  table(name: string, rows: Array<[string, string, string, number]>): void {
    const head =
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';
    const body = rows
      .map(
        ([l, r, st, inode], i) =>
          `   ${i}: ${l} ${r} ${st} 00000000:00000000 00:00000000 00000000  1000        0 ${inode} 1 0000000000000000 20 4 30 10 -1\n`,
      )
      .join('');
    writeFileSync(join(this.root, 'net', name), head + body);
  }
}
