import { oneLine } from '../../core/index.js';
import { describeVerdict } from '../verdict.js';
import type { Finding, ScanResult, SkippedFile } from '../types.js';

/** The line printed before a scan starts. */
export function scanHeader(root: string, policy: string | null): string {
  return `TrustRun scanning ${root} with policy ${policy ?? 'none'}`;
}

const SKIP_WORDS: Record<SkippedFile['reason'], string> = {
  too_large: 'too large',
  unreadable: 'unreadable',
  binary: 'binary',
};

function sizeText(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${bytes} B`;
}

function cut(s: string, n: number): string {
  return s.length > n ? s.slice(0, n - 1) + '…' : s;
}

/**
 * The human report: findings grouped by file (files in path order, findings by line), each
 * with its position, severity, the patterns that matched and the matched text; the policy's
 * verdict under it when the destination is not simply allowed; then the skipped files and
 * the summary.
 */
export function formatText(result: ScanResult): string {
  const lines: string[] = [];
  if (result.findings.length === 0) {
    lines.push('No findings.');
  } else {
    const byFile = new Map<string, Finding[]>();
    for (const f of result.findings) {
      const list = byFile.get(f.file) ?? [];
      list.push(f);
      byFile.set(f.file, list);
    }
    for (const [file, findings] of byFile) {
      // A file's name and its text are the scanned tree's: one line each, whatever they hold.
      lines.push(oneLine(file));
      for (const f of findings) {
        const pos = `${f.line}:${f.column}`.padEnd(8);
        const sev = f.severity.padEnd(9);
        const patterns = f.patterns.join(', ');
        lines.push(`  ${pos}${sev}${patterns.padEnd(34)} ${oneLine(cut(f.text, 80))}`);
        const verdict = describeVerdict(f);
        if (verdict && f.verdict?.action !== 'allow') lines.push(`  ${' '.repeat(17)}${verdict}`);
      }
      lines.push('');
    }
  }
  if (result.skipped.length > 0) {
    const shown = result.skipped.slice(0, 10);
    lines.push('Skipped:');
    for (const s of shown) {
      lines.push(
        `  ${oneLine(s.file)} (${SKIP_WORDS[s.reason]}${s.size === undefined ? '' : `, ${sizeText(s.size)}`})`,
      );
    }
    if (result.skipped.length > shown.length)
      lines.push(`  … and ${result.skipped.length - shown.length} more`);
    lines.push('');
  }
  const c = result.counts;
  lines.push(
    `Scanned ${result.filesScanned} files (${result.filesSkipped} skipped) in ${(result.durationMs / 1000).toFixed(2)}s`,
  );
  lines.push(
    `Total findings: ${result.findings.length} (${c.critical} critical, ${c.warning} warning, ${c.info} info)`,
  );
  if (c.critical > 0) lines.push(`${c.critical} critical finding(s)`);
  return lines.join('\n') + '\n';
}
