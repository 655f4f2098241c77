import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isolationTools } from '../../../src/cli/isolate.js';
import { formatError } from '../../../src/core/index.js';

const dir = mkdtempSync(join(tmpdir(), 'trustrun-isolate-tools-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function program(name: string): void {
  writeFileSync(join(dir, name), '#!/bin/sh\n', { mode: 0o755 });
}

describe('isolationTools', () => {
  it('refuses other systems than Linux in one line naming the system', () => {
    expect(() => isolationTools({ PATH: dir }, { platform: 'darwin', systemDirs: [] })).toThrow(
      /--isolate needs Linux network namespaces \(this is darwin\)/,
    );
  });

  it('names the missing program and the package that has it', () => {
    let err: unknown;
    try {
      isolationTools({ PATH: dir }, { platform: 'linux', systemDirs: [] });
    } catch (e) {
      err = e;
    }
    expect(formatError(err)).toMatch(
      /needs unshare, which was not found.*apt-get install util-linux/s,
    );
    program('unshare');
    expect(() => isolationTools({ PATH: dir }, { platform: 'linux', systemDirs: [] })).toThrow(
      /needs ip, which was not found/,
    );
    program('ip');
    expect(() => isolationTools({ PATH: dir }, { platform: 'linux', systemDirs: [] })).toThrow(
      /needs setpriv, which was not found/,
    );
    program('setpriv');
    expect(isolationTools({ PATH: dir }, { platform: 'linux', systemDirs: [] })).toEqual({
      unshare: join(dir, 'unshare'),
      ip: join(dir, 'ip'),
      setpriv: join(dir, 'setpriv'),
    });
  });

  it('says in one line when the namespaces cannot be made, with what to enable', () => {
    const failing = mkdtempSync(join(tmpdir(), 'trustrun-isolate-refused-'));
    try {
      writeFileSync(
        join(failing, 'unshare'),
        '#!/bin/sh\necho "unshare: unshare failed: Operation not permitted" >&2\nexit 1\n',
        { mode: 0o755 },
      );
      let err: unknown;
      try {
        isolationTools({ PATH: `${failing}:${dir}` }, { platform: 'linux', systemDirs: [] });
      } catch (e) {
        err = e;
      }
      expect(formatError(err)).toMatch(
        /^--isolate: cannot make a network namespace: unshare: unshare failed: Operation not permitted\n {2}.*(CAP_SYS_ADMIN|user namespaces)/,
      );
    } finally {
      rmSync(failing, { recursive: true, force: true });
    }
  });

  it('finds ip in the system folders when PATH lacks them (a user PATH without /usr/sbin)', () => {
    const found = isolationTools({ PATH: '' }, { platform: 'linux', systemDirs: [dir] });
    expect(found.ip).toBe(join(dir, 'ip'));
  });
});
