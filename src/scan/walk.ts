import { readdirSync, statSync, type Dirent } from 'node:fs';
import { extname, join } from 'node:path';
import { compileExcludes } from './glob.js';
import type { SkippedFile } from './types.js';

/** Directories never entered (as before), plus any name ending in `.egg-info`. */
export const SKIP_DIRS: ReadonlySet<string> = new Set([
  '.git',
  '.hg',
  '.svn',
  'node_modules',
  '__pycache__',
  '.mypy_cache',
  '.pytest_cache',
  '.ruff_cache',
  '.venv',
  'venv',
  '.env',
  'env',
  'dist',
  'build',
  '.tox',
  '.eggs',
]);

/** File extensions never read; compared without regard to case (`.PNG` is skipped too). */
export const SKIP_EXTENSIONS: ReadonlySet<string> = new Set([
  '.pyc',
  '.pyo',
  '.so',
  '.dylib',
  '.dll',
  '.exe',
  '.bin',
  '.dat',
  '.png',
  '.jpg',
  '.jpeg',
  '.gif',
  '.ico',
  '.svg',
  '.pdf',
  '.doc',
  '.docx',
  '.zip',
  '.tar',
  '.gz',
  '.bz2',
  '.whl',
  '.egg',
  '.db',
  '.sqlite',
  '.sqlite3',
]);

/** Files larger than this are not read; they are counted as skipped. */
export const MAX_FILE_SIZE = 1_048_576;

export interface WalkOptions {
  exclude?: readonly string[];
  maxFileSize?: number;
}

export type WalkEntry =
  { kind: 'file'; abs: string; rel: string; size: number } | ({ kind: 'skipped' } & SkippedFile);

/**
 * Lists the files to scan under `root`, depth first in name order. Symlinked directories are
 * not followed; a symlinked file is read when it points at a regular file.
 */
export function* walk(root: string, options: WalkOptions = {}): Generator<WalkEntry> {
  const excluder = compileExcludes(options.exclude ?? []);
  const maxSize = options.maxFileSize ?? MAX_FILE_SIZE;
  const stack: string[] = [''];
  while (stack.length > 0) {
    const relDir = stack.pop() as string;
    let entries: Dirent[];
    try {
      entries = readdirSync(join(root, relDir), { withFileTypes: true });
    } catch {
      if (relDir !== '') yield { kind: 'skipped', file: relDir, reason: 'unreadable' };
      continue;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const subdirs: string[] = [];
    for (const entry of entries) {
      const rel = relDir === '' ? entry.name : `${relDir}/${entry.name}`;
      if (entry.isDirectory()) {
        if (SKIP_DIRS.has(entry.name) || entry.name.endsWith('.egg-info')) continue;
        if (excluder.excludes(rel, true)) continue;
        subdirs.push(rel);
        continue;
      }
      if (!entry.isFile() && !entry.isSymbolicLink()) continue;
      if (SKIP_EXTENSIONS.has(extname(entry.name).toLowerCase())) continue;
      if (excluder.excludes(rel, false)) continue;
      const abs = join(root, rel);
      let size: number;
      try {
        const st = statSync(abs);
        if (!st.isFile()) continue; // a symlink to a directory or a device
        size = st.size;
      } catch {
        yield { kind: 'skipped', file: rel, reason: 'unreadable' };
        continue;
      }
      if (size > maxSize) {
        yield { kind: 'skipped', file: rel, reason: 'too_large', size };
        continue;
      }
      yield { kind: 'file', abs, rel, size };
    }
    // Reverse so that popping visits subdirectories in name order.
    for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i] as string);
  }
}
