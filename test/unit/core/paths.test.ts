import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ensurePrivateDir } from '../../../src/core/paths.js';

describe('ensurePrivateDir', () => {
  it('creates missing parents owner-only, and tightens an existing directory', () => {
    const base = mkdtempSync(join(tmpdir(), 'trustrun-paths-'));
    try {
      const deep = join(base, 'a', 'b', 'c');
      const old = process.umask(0);
      try {
        ensurePrivateDir(deep);
      } finally {
        process.umask(old);
      }
      for (const d of [join(base, 'a'), join(base, 'a', 'b'), deep]) {
        expect(statSync(d).mode & 0o777).toBe(0o700);
      }
      ensurePrivateDir(deep);
      const file = join(base, 'file');
      writeFileSync(file, '');
      expect(() => ensurePrivateDir(file)).toThrow(expect.objectContaining({ code: 'EEXIST' }));
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });

  it.skipIf(!existsSync('/proc/self'))(
    'fails at once where mkdir says ENOENT under a parent that exists (/proc), instead of looping',
    () => {
      const started = Date.now();
      expect(() => ensurePrivateDir('/proc/trustrun-nope/x')).toThrow(
        expect.objectContaining({ code: 'ENOENT' }),
      );
      expect(Date.now() - started).toBeLessThan(1000);
    },
  );
});

describe('errors that name a file', () => {
  it('a full disk names the file being written, in one line, exit 1', async () => {
    const { exitCodeFor, formatError } = await import('../../../src/core/index.js');
    const err = Object.assign(new Error('ENOSPC: no space left on device, write'), {
      code: 'ENOSPC',
      path: '/data/ca/ca-key.pem',
      syscall: 'write',
    });
    expect(formatError(err)).toBe(
      'cannot write /data/ca/ca-key.pem: ENOSPC (no space left on the device)',
    );
    expect(exitCodeFor(err)).toBe(1);
  });

  it.skipIf(process.getuid?.() !== 0 || !existsSync('/proc/self'))(
    'writing the CA or a key file on a full disk leaves no file behind and names the file',
    async (ctx) => {
      const { execFileSync } = await import('node:child_process');
      const { writeFileAtomic } = await import('../../../src/ca/files.js');
      const mnt = mkdtempSync(join(tmpdir(), 'trustrun-full-'));
      try {
        execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16k', 'tmpfs', mnt], { stdio: 'ignore' });
      } catch {
        rmSync(mnt, { recursive: true, force: true });
        process.stderr.write('skipped: this machine does not let root mount a tmpfs here\n');
        ctx.skip();
        return;
      }
      try {
        writeFileSync(join(mnt, 'fill'), Buffer.alloc(12 * 1024));
        await expect(
          writeFileAtomic(join(mnt, 'ca-key.pem'), Buffer.alloc(64 * 1024), 0o600),
        ).rejects.toMatchObject({ code: 'ENOSPC', path: join(mnt, 'ca-key.pem') });
        const { readdirSync } = await import('node:fs');
        expect(readdirSync(mnt)).toEqual(['fill']);
        // The key files' writer: a short write is not taken for the whole file.
        const { createPrivateFile } = await import('../../../src/store/files.js');
        expect(() => createPrivateFile(join(mnt, 'master.key'), Buffer.alloc(20_000))).toThrow(
          expect.objectContaining({ code: 'ENOSPC', path: join(mnt, 'master.key') }),
        );
        expect(readdirSync(mnt)).toEqual(['fill']);
        // A CA whose key fits and whose certificate does not: no half CA is left.
        const { loadOrCreateCa } = await import('../../../src/ca/index.js');
        const { dataPaths } = await import('../../../src/core/index.js');
        const paths = dataPaths(join(mnt, 'data'));
        await expect(loadOrCreateCa(paths)).rejects.toMatchObject({ code: 'ENOSPC' });
        expect(readdirSync(paths.caDir)).toEqual([]);
      } finally {
        execFileSync('umount', [mnt]);
        rmSync(mnt, { recursive: true, force: true });
      }
    },
  );
});
