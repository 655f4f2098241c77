import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { dataPaths } from '../../core/index.js';
import { openStore, type ScanRow, type SessionRow } from '../../store/index.js';
import { addDataDirOption, dataDirFrom, intOption, type CommonOptions } from '../common.js';
import { clip, formatTime, oneLine, printable, table } from '../format.js';

export interface HistoryOptions extends CommonOptions {
  /** At most this many rows, newest first (default 20). */
  limit?: number;
  /** List stored scans instead of sessions. */
  scans?: boolean;
}

export interface HistoryIo {
  out: (text: string) => void;
}

const processIo = (): HistoryIo => ({ out: (text) => process.stdout.write(text) });

export const DEFAULT_HISTORY_LIMIT = 20;

/** The newest sessions (or scans), from the data directory's store; [] when it has none. */
export async function readHistory(
  opts: HistoryOptions,
): Promise<{ dataDir: string; sessions: SessionRow[]; scans: ScanRow[] }> {
  const dataDir = dataDirFrom(opts);
  if (!existsSync(dataPaths(dataDir).database)) return { dataDir, sessions: [], scans: [] };
  const store = await openStore({ dataDir });
  try {
    const limit = opts.limit ?? DEFAULT_HISTORY_LIMIT;
    return opts.scans
      ? { dataDir, sessions: [], scans: store.listScans({ limit }).items }
      : { dataDir, sessions: store.listSessions({ limit }).items, scans: [] };
  } finally {
    await store.close();
  }
}

/**
 * `trustrun history`: the table is the command's output, so it goes to stdout (like `ls`);
 * `--json` prints the rows as one JSON array.
 */
export async function historyCommand(
  opts: HistoryOptions,
  io: HistoryIo = processIo(),
): Promise<void> {
  const read = await readHistory(opts);
  // Command lines are stored redacted (the store does it), like every URL the log holds.
  const { dataDir, scans, sessions } = read;
  if (opts.json) {
    io.out(JSON.stringify(opts.scans ? scans : sessions, null, 2) + '\n');
    return;
  }
  if (opts.scans) {
    io.out(
      scans.length === 0
        ? `No scans stored in ${dataDir} yet (trustrun scan DIR stores one).\n`
        : printable(formatScans(scans)) + '\n',
    );
    return;
  }
  io.out(
    sessions.length === 0
      ? `No sessions recorded in ${dataDir} yet (trustrun run -- CMD or trustrun proxy records one).\n`
      : printable(formatSessions(sessions)) + '\n',
  );
}

export function formatSessions(sessions: readonly SessionRow[]): string {
  const rows = sessions.map((s) => [
    formatTime(s.startedAt),
    s.id,
    s.kind,
    s.status,
    s.exitCode === null ? '-' : String(s.exitCode),
    String(s.counts.requests),
    String(s.counts.violations),
    s.level,
    oneLine(s.policy ?? '-'),
    s.command === null ? '-' : clip(oneLine(s.command.join(' ')), 60),
  ]);
  return table([
    [
      'STARTED',
      'SESSION',
      'KIND',
      'STATUS',
      'EXIT',
      'REQUESTS',
      'VIOLATIONS',
      'LEVEL',
      'POLICY',
      'COMMAND',
    ],
    ...rows,
  ]);
}

export function formatScans(scans: readonly ScanRow[]): string {
  const rows = scans.map((s) => [
    formatTime(s.startedAt),
    s.id,
    String(s.files),
    String(s.findings),
    String(s.counts.critical),
    oneLine(s.policy ?? '-'),
    oneLine(s.root),
  ]);
  return table([['STARTED', 'SCAN', 'FILES', 'FINDINGS', 'CRITICAL', 'POLICY', 'ROOT'], ...rows]);
}

export function register(program: Command): void {
  const cmd = program
    .command('history')
    .description('list recorded sessions, newest first (--scans: stored scans)')
    .option('--json', 'print the rows as a JSON array on stdout')
    .option('--limit <n>', 'at most N rows', intOption('--limit', 1, 1000), DEFAULT_HISTORY_LIMIT)
    .option('--scans', 'list stored scans instead of sessions');
  addDataDirOption(cmd).action(async (opts: HistoryOptions) => {
    await historyCommand(opts);
  });
}
