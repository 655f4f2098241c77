import { chmodSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { compileExcludes, scanDirectory, walk, type WalkEntry } from '../../../src/scan/index.js';
import { cleanupTmp, tmp, writeTree } from './helpers.js';

afterEach(cleanupTmp);

function files(entries: Iterable<WalkEntry>): string[] {
  return [...entries].filter((e) => e.kind === 'file').map((e) => (e.kind === 'file' ? e.rel : ''));
}

describe('--exclude globs', () => {
  it.each([
    // pattern, path, isDir, excluded
    ['skip.py', 'skip.py', false, true],
    ['skip.py', 'src/skip.py', false, true], // a bare name matches at any depth
    ['skip.py', 'skip.pyc', false, false],
    ['*.min.js', 'web/app.min.js', false, true],
    ['*.min.js', 'web/app.js', false, false],
    ['fixtures', 'test/fixtures', true, true],
    ['fixtures/', 'test/fixtures', false, false], // trailing '/' = directories only
    ['fixtures/', 'test/fixtures', true, true],
    ['src/vendor/**', 'src/vendor/lib/x.js', false, true],
    ['src/vendor/**', 'lib/src/vendor/x.js', false, false], // a path pattern is anchored
    ['/docs/*.md', 'docs/a.md', false, true],
    ['./docs/*.md', 'docs/sub/a.md', false, false], // '*' stays inside one segment
    ['**/generated/*.py', 'generated/a.py', false, true],
    ['**/generated/*.py', 'a/b/generated/c.py', false, true],
    ['test_?.py', 'test_1.py', false, true],
    ['test_?.py', 'test_10.py', false, false],
    ['[!a]*.R', 'b.R', false, true],
    ['[!a]*.R', 'a.R', false, false],
    ['*.{js,ts}', 'x/y.ts', false, true],
    ['*.{js,ts}', 'x/y.py', false, false],
    ['a\\*b', 'a*b', false, true],
    ['a\\*b', 'axb', false, false],
  ])('%s vs %s (dir: %s) → %s', (pattern, path, isDir, excluded) => {
    expect(compileExcludes([pattern]).excludes(path, isDir)).toBe(excluded);
  });

  it('an excluded directory is not entered', async () => {
    const root = tmp();
    writeTree(root, {
      'src/vendor/lib.py': 'u = "https://vendor.partner.org"\n',
      'src/main.py': 'u = "https://main.partner.org"\n',
    });
    const r = await scanDirectory(root, { exclude: ['src/vendor/**'] });
    expect(r.findings.map((f) => f.file)).toEqual(['src/main.py']);
    expect(files(walk(root, { exclude: ['vendor'] }))).toEqual(['src/main.py']);
  });
});

describe('walk', () => {
  it('skips the directories and extensions of the earlier tool, extensions in any case', () => {
    const root = tmp();
    const tree: Record<string, string> = {
      'keep.py': '',
      'x.egg-info/PKG-INFO': '',
      'app.env': '',
    };
    const skipDirs = [
      '.git',
      '.hg',
      '.svn',
      'node_modules',
      '__pycache__',
      '.mypy_cache',
      '.pytest_cache',
    ];
    skipDirs.push('.ruff_cache', '.venv', 'venv', '.env', 'env', 'dist', 'build', '.tox', '.eggs');
    for (const d of skipDirs) tree[`${d}/f.py`] = '';
    tree['sub/node_modules/f.js'] = '';
    tree['env.d/f.py'] = '';
    for (const ext of ['png', 'PNG', 'Jpg', 'pyc', 'SO', 'zip', 'sqlite3', 'DB'])
      tree[`img.${ext}`] = '';
    writeTree(root, tree);
    expect(files(walk(root)).sort()).toEqual(['app.env', 'env.d/f.py', 'keep.py']);
  });

  it('scans a .env file (only the directory of that name is skipped)', () => {
    const root = tmp();
    writeTree(root, { '.env': 'OPENAI_API_KEY=x\n' });
    expect(files(walk(root))).toEqual(['.env']);
  });

  it('counts oversized and binary files as skipped, and reports their size', async () => {
    const root = tmp();
    writeTree(root, {
      'big.py': 'x = "https://big.partner.org"\n' + '#'.repeat(1_048_577),
      'blob.txt': Buffer.concat([Buffer.from('https://blob.partner.org '), Buffer.from([0, 1, 2])]),
      'ok.py': 'x = 1\n',
    });
    const r = await scanDirectory(root);
    expect(r.filesScanned).toBe(1);
    expect(r.filesSkipped).toBe(2);
    expect(r.skipped.map((s) => [s.file, s.reason])).toEqual([
      ['big.py', 'too_large'],
      ['blob.txt', 'binary'],
    ]);
    expect(r.skipped[0]?.size).toBeGreaterThan(1_048_576);
    expect(r.findings).toEqual([]);
    const r2 = await scanDirectory(root, { maxFileSize: 2_000_000 });
    expect(r2.findings.map((f) => f.file)).toEqual(['big.py']);
  });

  it('reads a symlinked file but does not follow a symlinked directory', () => {
    const root = tmp();
    const outside = tmp();
    writeTree(outside, { 'secret.py': 'x = 1\n' });
    writeTree(root, { 'real.py': 'x = 1\n' });
    symlinkSync(outside, join(root, 'linked-dir'));
    symlinkSync(join(root, 'real.py'), join(root, 'alias.py'));
    expect(files(walk(root))).toEqual(['alias.py', 'real.py']);
  });

  // root reads every directory whatever its mode, so this runs only as another user.
  it.skipIf(process.getuid?.() === 0)('reports an unreadable directory as skipped', () => {
    const root = tmp();
    writeTree(root, { 'locked/a.py': '' });
    chmodSync(join(root, 'locked'), 0);
    try {
      expect([...walk(root)].map((e) => [e.kind, e.kind === 'skipped' ? e.file : ''])).toEqual([
        ['skipped', 'locked'],
      ]);
    } finally {
      chmodSync(join(root, 'locked'), 0o700);
    }
  });

  it('strips a UTF-8 byte order mark so columns match the editor', async () => {
    const root = tmp();
    writeFileSync(join(root, 'a.txt'), '\ufeffu = "https://api.partner.org"\n');
    const r = await scanDirectory(root);
    expect(r.findings.map((f) => [f.line, f.column])).toEqual([[1, 6]]);
  });

  it('rejects a missing directory and a file given as the directory', async () => {
    const root = tmp();
    writeTree(root, { 'f.py': '' });
    await expect(scanDirectory(join(root, 'nope'))).rejects.toMatchObject({ code: 'TR_NOT_FOUND' });
    await expect(scanDirectory(join(root, 'f.py'))).rejects.toMatchObject({ code: 'TR_USAGE' });
  });
});
