import type { Command } from 'commander';
import type { Page, Store, ViolationRow } from '../../store/index.js';
import {
  addDataDirOption,
  dataDirFrom,
  intOption,
  printJson,
  type CommonOptions,
} from '../common.js';
import { formatTime, oneLine, pageFooter, printable, table } from '../format.js';
import { withStore } from '../store.js';

export interface ViolationsOptions extends CommonOptions {
  session?: string;
  host?: string;
  enforced?: boolean;
  limit: number;
  cursor?: string;
}

/** `trustrun violations`: policy violations, newest first. */
export function listViolations(store: Store, opts: ViolationsOptions): Page<ViolationRow> {
  return store.listViolations({
    sessionId: opts.session,
    host: opts.host,
    enforced: opts.enforced,
    limit: opts.limit,
    cursor: opts.cursor ?? null,
  });
}

export function formatViolations(page: Page<ViolationRow>): string {
  if (page.items.length === 0) return 'no violations match\n';
  const rows = [['TIME', 'SESSION', 'ACTION', 'ENFORCED', 'DESTINATION', 'RULE', 'REASON']];
  for (const v of page.items) {
    rows.push([
      formatTime(v.time),
      v.sessionId,
      v.action,
      v.enforced ? 'yes' : 'no',
      `${v.method ? `${v.method} ` : ''}${v.host}:${v.port}`,
      oneLine(v.rule ?? '(default)'),
      oneLine(v.reason),
    ]);
  }
  return table(rows) + pageFooter(page.nextCursor);
}

export function register(program: Command): void {
  const cmd = program
    .command('violations')
    .summary('list policy violations')
    .description(
      'List policy violations, newest first: alerts (forwarded and recorded) and blocks and kills\n' +
        '(refused). ENFORCED says whether the traffic was stopped.',
    )
    .option('--session <id>', 'only this session')
    .option('--host <glob>', 'only hosts matching this glob')
    .option('--enforced', 'only violations that were enforced (blocked or killed)')
    .option('--limit <n>', 'at most this many (1-1000)', intOption('--limit', 1, 1000), 50)
    .option('--cursor <id>', 'continue after this id (from a previous page)')
    .option('--json', 'print JSON on stdout');
  addDataDirOption(cmd).action(async (opts: ViolationsOptions) => {
    const page = await withStore(dataDirFrom(opts), (s) => listViolations(s, opts));
    if (opts.json) printJson(page);
    else process.stdout.write(printable(formatViolations(page)));
  });
}
