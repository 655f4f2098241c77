/**
 * `trustrun requests show`: what a hostile client or upstream put in a recorded body reaches the
 * terminal as visible escapes, never as control sequences.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { oneLine, printable } from '../../../src/cli/format.js';
import { openStore } from '../../../src/store/index.js';
import { CLI, run } from '../../helpers/proc.js';
import { requestInput } from '../../unit/store/helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'trustrun-show-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('printable', () => {
  it('shows control characters, C1 controls and bidi overrides as escapes; keeps lines and tabs', () => {
    expect(printable('a\x1b]0;T\x07b\x1b[2K\r\n\tc\x7f\x9b\u202eok\u00e9')).toBe(
      'a\\x1b]0;T\\x07b\\x1b[2K\\x0d\n\tc\\x7f\\x9b\\u202eoké',
    );
  });
});

describe('oneLine', () => {
  it('also escapes line breaks and tabs, for one field of a report', () => {
    expect(oneLine('a\nb\tc\r\u2028d\x1b')).toBe('a\\x0ab\\x09c\\x0d\\u2028d\\x1b');
  });
});

describe('trustrun requests', () => {
  it('a process name with a line break cannot forge a row of the list', async () => {
    const dataDir = join(dir, 'forge');
    const store = await openStore({ dataDir });
    const s = store.startSession({ kind: 'proxy', level: 'headers' });
    await store.addRequest(
      requestInput(s.id, {
        pid: 4242,
        exe: '/tmp/ok\n2026-11-27 15:00:00  r2  GET  harmless.example',
      }),
    );
    store.endSession(s.id, { status: 'completed', exitCode: 0 });
    await store.close();
    const r = await run(process.execPath, [CLI, 'requests', '--data-dir', dataDir], {
      env: { PATH: process.env.PATH, HOME: dir },
      timeoutMs: 60_000,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('4242 ok\\x0a2026-11-27');
    expect(r.stdout).not.toMatch(/^2026-11-27 15:00:00 {2}r2/m);
  });
});

describe('trustrun requests show', () => {
  it('prints a body with terminal escape sequences as visible text', async () => {
    const dataDir = join(dir, 'data');
    const store = await openStore({ dataDir });
    const s = store.startSession({ kind: 'proxy', level: 'full' });
    const id = await store.addRequest(requestInput(s.id, { method: 'GET', url: '/esc' }));
    const body = Buffer.from('before\x1b]0;PWNED-TITLE\x07\x1b[31mred\x1b[2K after\u202e');
    store.completeRequest(id, {
      endedAt: Date.now(),
      status: 200,
      responseHeaders: [['content-type', 'text/plain']],
      responseBody: { data: body, size: body.length, truncated: false },
      outcome: 'ok',
    });
    store.endSession(s.id, { status: 'completed', exitCode: 0 });
    await store.close();
    const r = await run(process.execPath, [CLI, 'requests', 'show', id, '--data-dir', dataDir], {
      env: { PATH: process.env.PATH, HOME: dir },
      timeoutMs: 60_000,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('before\\x1b]0;PWNED-TITLE\\x07\\x1b[31mred\\x1b[2K after\\u202e');
    expect(r.stdout).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f\u202e]/);
  });
});
