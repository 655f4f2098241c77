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
