import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { TrustRunError, newId } from '../core/index.js';
import { scanSource } from './source.js';
import { walk } from './walk.js';
import type { Finding, PolicyAdapter, ScanResult, SkippedFile } from './types.js';

export interface ScanProgress {
  filesScanned: number;
  filesSkipped: number;
  findings: number;
  /** The file being read, relative to the root. */
  file: string;
}

export interface ScanOptions {
  /** Glob patterns of files and directories to leave out (see glob.ts). */
  exclude?: readonly string[];
  /** Larger files are not read and count as skipped (default 1 MiB). */
  maxFileSize?: number;
  /** Checks every finding's destination; null or absent: no policy. */
  policy?: PolicyAdapter | null;
  onProgress?: (p: ScanProgress) => void;
}

/** A file holding a NUL byte in its first 8000 bytes is binary (as git decides). */
function isBinary(buf: Buffer): boolean {
  return buf.subarray(0, 8000).includes(0);
}

/**
 * Scans a directory tree: every file that is not skipped (by directory, extension,
 * `--exclude`, size, or because it is binary or unreadable) is read as UTF-8 and analysed.
 * Findings are ordered by file path, then position.
 */
export async function scanDirectory(dir: string, options: ScanOptions = {}): Promise<ScanResult> {
  const root = resolve(dir);
  let isDir = false;
  try {
    isDir = statSync(root).isDirectory();
  } catch {
    throw new TrustRunError('TR_NOT_FOUND', `scan: no such directory: ${dir}`);
  }
  if (!isDir) throw new TrustRunError('TR_USAGE', `scan: not a directory: ${dir}`);

  const started = Date.now();
  const t0 = performance.now();
  const findings: Finding[] = [];
  const skipped: SkippedFile[] = [];
  let filesScanned = 0;
  let bytesScanned = 0;
  for (const entry of walk(root, options)) {
    if (entry.kind === 'skipped') {
      skipped.push({
        file: entry.file,
        reason: entry.reason,
        ...(entry.size === undefined ? {} : { size: entry.size }),
      });
      continue;
    }
    options.onProgress?.({
      filesScanned,
      filesSkipped: skipped.length,
      findings: findings.length,
      file: entry.rel,
    });
    let buf: Buffer;
    try {
      buf = readFileSync(entry.abs);
    } catch {
      skipped.push({ file: entry.rel, reason: 'unreadable' });
      continue;
    }
    if (isBinary(buf)) {
      skipped.push({ file: entry.rel, reason: 'binary', size: buf.length });
      continue;
    }
    filesScanned++;
    bytesScanned += buf.length;
    findings.push(
      ...(await scanSource(buf.toString('utf8'), entry.rel, {
        file: entry.rel,
        policy: options.policy ?? null,
      })),
    );
  }
  findings.sort((a, b) =>
    a.file < b.file ? -1 : a.file > b.file ? 1 : a.line - b.line || a.column - b.column,
  );
  const counts = { critical: 0, warning: 0, info: 0 };
  for (const f of findings) counts[f.severity]++;
  return {
    id: newId(started),
    root,
    startedAt: new Date(started).toISOString(),
    durationMs: Math.round((performance.now() - t0) * 10) / 10,
    policy: options.policy?.name ?? null,
    filesScanned,
    filesSkipped: skipped.length,
    bytesScanned,
    skipped,
    findings,
    counts,
  };
}
