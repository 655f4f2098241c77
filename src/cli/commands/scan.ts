import type { Command } from 'commander';
import { existsSync, statSync } from 'node:fs';
import { TrustRunError, VERSION, formatError } from '../../core/index.js';
import { loadPolicy } from '../../policy/index.js';
import {
  RULES,
  formatText,
  scanDirectory,
  scanHeader,
  toSarif,
  type PolicyAdapter,
  type ScanProgress,
  type ScanResult,
} from '../../scan/index.js';
import { openStore, type FindingInput, type Store } from '../../store/index.js';
import { addDataDirOption, collect, dataDirFrom } from '../common.js';
import { printable } from '../format.js';

export const SCAN_FORMATS = ['text', 'json', 'sarif'] as const;
export type ScanFormat = (typeof SCAN_FORMATS)[number];

export interface ScanCommandOptions {
  policy?: string;
  format?: string;
  exclude?: string[];
  json?: boolean;
  /** Store the scan and its findings in the data directory (`--no-store` sets false). */
  store?: boolean;
  dataDir?: string;
}

/** Where output goes; tests pass their own. `progress` is set when stderr is a terminal. */
export interface ScanIo {
  out: (text: string) => void;
  err: (text: string) => void;
  progress: boolean;
}

const processIo = (): ScanIo => ({
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
  progress: process.stderr.isTTY === true,
});

export interface ScanCommandResult {
  result: ScanResult;
  format: ScanFormat;
  /** 1 when any finding is critical, else 0. */
  exitCode: number;
  /** The stored scan's id (the result's own id), or null when not stored. */
  storedId: string | null;
}

function chooseFormat(opts: ScanCommandOptions): ScanFormat {
  const format = opts.format ?? (opts.json ? 'json' : 'text');
  if (!(SCAN_FORMATS as readonly string[]).includes(format)) {
    throw new TrustRunError(
      'TR_USAGE',
      `scan: unknown --format '${format}' (use text, json or sarif)`,
    );
  }
  if (opts.json && format !== 'json') {
    throw new TrustRunError('TR_USAGE', `scan: --json conflicts with --format ${format}`);
  }
  return format as ScanFormat;
}

async function policyAdapter(file: string, io: ScanIo): Promise<PolicyAdapter> {
  if (!existsSync(file))
    throw new TrustRunError('TR_USAGE', `scan: policy file not found: ${file}`);
  const policy = await loadPolicy(file, { warn: (msg) => io.err(`trustrun: warning: ${msg}\n`) });
  return { name: policy.shownName, evaluate: (subject) => policy.evaluate(subject) };
}

/** A progress line on stderr, redrawn at most ten times a second, erased at the end. */
function progressLine(io: ScanIo): { update: (p: ScanProgress) => void; clear: () => void } {
  if (!io.progress) return { update: () => {}, clear: () => {} };
  let last = 0;
  let shown = false;
  return {
    update(p) {
      const now = Date.now();
      if (now - last < 100) return;
      last = now;
      shown = true;
      const file = p.file.length > 50 ? '…' + p.file.slice(-49) : p.file;
      io.err(`\r\x1b[K${p.filesScanned} files, ${p.findings} findings  ${printable(file)}`);
    },
    clear() {
      if (shown) io.err('\r\x1b[K');
    },
  };
}

/**
 * `trustrun scan DIR`: scans the tree and writes the report (text on stderr; json and sarif
 * on stdout). With `store: true` (the command line's default; `--no-store` turns it off) the
 * scan and its findings are stored in the data directory. Returns the exit code: 1 when any
 * finding is critical, else 0.
 */
export async function scanCommand(
  dir: string | undefined,
  opts: ScanCommandOptions,
  io: ScanIo = processIo(),
): Promise<ScanCommandResult> {
  if (dir === undefined || dir === '') {
    throw new TrustRunError('TR_USAGE', 'scan: missing directory (usage: trustrun scan DIR)');
  }
  const format = chooseFormat(opts);
  if (!existsSync(dir)) throw new TrustRunError('TR_USAGE', `scan: no such directory: ${dir}`);
  // Checked before the report's header, so a usage error stays one line.
  if (!statSync(dir).isDirectory()) {
    throw new TrustRunError('TR_USAGE', `scan: not a directory: ${dir}`);
  }
  const policy = opts.policy ? await policyAdapter(opts.policy, io) : null;
  if (format === 'text') io.err(printable(scanHeader(dir, policy?.name ?? null)) + '\n\n');
  const progress = progressLine(io);
  let result: ScanResult;
  try {
    result = await scanDirectory(dir, {
      exclude: opts.exclude ?? [],
      policy,
      onProgress: progress.update,
    });
  } finally {
    progress.clear();
  }
  // What a scanned file holds reaches the terminal as visible escapes (see printable).
  if (format === 'text') io.err(printable(formatText(result)));
  else {
    const doc = format === 'json' ? result : toSarif(result, VERSION);
    io.out(JSON.stringify(doc, null, 2) + '\n');
    const c = result.counts;
    io.err(
      `Scanned ${result.filesScanned} files (${result.filesSkipped} skipped): ` +
        `${result.findings.length} findings, ${c.critical} critical\n`,
    );
  }
  // Stored after the report; json and sarif already carry the id (`id`, `properties.scanId`).
  const storedId = opts.store === true ? await storeScan(result, dataDirFrom(opts), io) : null;
  if (storedId !== null && format === 'text') io.err(`Scan stored as ${storedId}\n`);
  return { result, format, exitCode: result.counts.critical > 0 ? 1 : 0, storedId };
}

/** A finding as the store keeps it: matched text, context and endpoint are sealed there. */
export function findingRecord(f: ScanResult['findings'][number]): FindingInput {
  return {
    file: f.file,
    line: f.line,
    column: f.column,
    kind: f.kind,
    patterns: f.patterns,
    severity: f.severity,
    secret: f.patterns.some((p) => RULES[p].secret),
    value: f.text,
    context: f.context,
    endpoint: f.endpoint,
    host: f.destination?.host ?? null,
    port: f.destination && f.destination.port > 0 ? f.destination.port : null,
    fingerprint: f.fingerprint,
    verdict: f.verdict && {
      action: f.verdict.action,
      violation: f.verdict.violation,
      rule: f.verdict.rule,
      reason: f.verdict.reason,
    },
  };
}

/**
 * Stores the scan under the result's own id (shown in the json and sarif output). A store that
 * cannot be opened or written is a warning: the report and the exit code do not depend on it.
 */
async function storeScan(result: ScanResult, dataDir: string, io: ScanIo): Promise<string | null> {
  let store: Store | null = null;
  try {
    store = await openStore({ dataDir });
    const startedAt = Date.parse(result.startedAt);
    const id = store.addScan({
      id: result.id,
      root: result.root,
      startedAt,
      endedAt: startedAt + Math.round(result.durationMs),
      files: result.filesScanned,
      skipped: result.filesSkipped,
      policy: result.policy,
      counts: result.counts,
    });
    store.addFindings(id, result.findings.map(findingRecord));
    return id;
  } catch (err) {
    io.err(`trustrun: warning: the scan was not stored: ${formatError(err)}\n`);
    return null;
  } finally {
    await store?.close().catch(() => undefined);
  }
}

export function register(program: Command): void {
  const cmd = program
    .command('scan')
    .description(
      'find endpoints, network calls and secrets in a source tree (exit 1 on critical findings)',
    )
    .argument('[dir]', 'directory to scan')
    .option(
      '-p, --policy <file>',
      'policy file: destinations it blocks or kills become critical findings',
    )
    .option('--format <format>', 'output format: text (stderr), json or sarif (stdout)')
    .option(
      '-e, --exclude <glob>',
      'leave out files/directories matching the glob (repeatable)',
      collect,
      [],
    )
    .option('--json', 'same as --format json')
    .option('--no-store', 'do not store the scan and its findings in the data directory');
  addDataDirOption(cmd).action(async (dir: string | undefined, opts: ScanCommandOptions) => {
    const { exitCode } = await scanCommand(dir, opts);
    process.exitCode = exitCode;
  });
}
