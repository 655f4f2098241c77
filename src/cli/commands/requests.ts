import type { Command } from 'commander';
import { TrustRunError, isTrustRunError } from '../../core/index.js';
import {
  absoluteUrl,
  redactRequest,
  redactUrl,
  type Page,
  type RedactedRequest,
  type RequestQuery,
  type RequestRow,
  type Store,
} from '../../store/index.js';
import {
  addDataDirOption,
  dataDirFrom,
  intOption,
  printJson,
  type CommonOptions,
} from '../common.js';
import {
  clip,
  formatBytes,
  formatMs,
  formatTime,
  oneLine,
  pageFooter,
  printable,
  table,
} from '../format.js';
import { withStore } from '../store.js';

export interface RequestsOptions extends CommonOptions {
  session?: string;
  host?: string;
  method?: string;
  status?: number;
  violations?: boolean;
  limit: number;
  cursor?: string;
}

/** A listed request: its clear columns and its redacted URL (null when it can no longer be opened). */
export type ListedRequest = RequestRow & { url: string | null };

/** `trustrun requests`: the newest requests first, with redacted URLs. */
export function listRequests(store: Store, opts: RequestsOptions): Page<ListedRequest> {
  const q: RequestQuery = {
    sessionId: opts.session,
    host: opts.host,
    method: opts.method?.toUpperCase(),
    status: opts.status,
    limit: opts.limit,
    cursor: opts.cursor ?? null,
  };
  if (opts.violations) q.violation = true;
  const page = store.listRequests(q);
  return {
    nextCursor: page.nextCursor,
    items: page.items.map((row) => ({ ...row, url: openUrl(store, row.id) })),
  };
}

function openUrl(store: Store, id: string): string | null {
  try {
    const d = store.getRequest(id);
    return d ? redactUrl(absoluteUrl(d, d.url)).url : null;
  } catch (err) {
    if (isTrustRunError(err, 'TR_SEAL_OPEN')) return null;
    throw err;
  }
}

/** `trustrun requests show ID`: one request, opened and redacted. */
export function showRequest(store: Store, id: string): RedactedRequest {
  const detail = store.getRequest(id);
  if (!detail) throw new TrustRunError('TR_NOT_FOUND', `no request with id '${id}'`);
  return redactRequest(detail);
}

function pathOf(url: string | null): string {
  if (url === null) return '(sealed value unavailable)';
  try {
    const u = new URL(url);
    return u.pathname + u.search;
  } catch {
    return url;
  }
}

function verdictOf(r: RequestRow): string {
  if (!r.verdictAction) return '-';
  return r.violation ? `${r.verdictAction}!` : r.verdictAction;
}

function processOf(r: RequestRow): string {
  if (r.pid === null) return '-';
  // A program chooses its own file name: one line, whatever it holds.
  const exe = r.exe ? oneLine(r.exe.slice(r.exe.lastIndexOf('/') + 1)) : '?';
  return `${r.pid} ${exe}`;
}

export function formatRequestList(page: Page<ListedRequest>): string {
  if (page.items.length === 0) return 'no requests match\n';
  const rows = [
    ['TIME', 'ID', 'METHOD', 'HOST', 'PATH', 'STATUS', 'SIZE', 'TIME TAKEN', 'VERDICT', 'PROCESS'],
  ];
  for (const r of page.items) {
    rows.push([
      formatTime(r.startedAt),
      r.id,
      r.method,
      r.port === (r.scheme === 'https' ? 443 : 80) ? r.host : `${r.host}:${r.port}`,
      clip(pathOf(r.url), 60),
      r.status === null ? (r.outcome ?? '-') : String(r.status),
      formatBytes(r.responseSize),
      formatMs(r.durationMs),
      verdictOf(r),
      processOf(r),
    ]);
  }
  return table(rows) + pageFooter(page.nextCursor);
}

function headerLines(headers: [string, string][] | null): string {
  if (!headers) return '    (none)\n';
  return headers.map(([n, v]) => `    ${n}: ${v}\n`).join('');
}

function bodyText(b: RedactedRequest['requestBody'], truncated: boolean): string {
  if (b === null) return '    (not recorded)\n';
  let text = b.binary ? '(binary)' : (b.text ?? '');
  if (!b.binary && text) {
    try {
      text = JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      /* not JSON: shown as it is */
    }
  }
  const notes = [b.note, truncated ? 'truncated at the capture limit' : undefined].filter(Boolean);
  return (
    text
      .split('\n')
      .map((l) => `    ${l}\n`)
      .join('') + (notes.length ? `    [${notes.join('; ')}]\n` : '')
  );
}

export function formatRequestDetail(r: RedactedRequest): string {
  const lines = [
    `request ${r.id} (session ${r.sessionId})`,
    `  ${r.method} ${r.url}`,
    `  started   ${formatTime(r.startedAt)}   took ${formatMs(r.durationMs)}   first byte ${formatMs(r.ttfbMs)}`,
    `  status    ${r.status ?? '-'}   outcome ${r.outcome ?? '-'}${r.reason ? ` (${r.reason})` : ''}`,
    `  sizes     sent ${formatBytes(r.requestSize)}, received ${formatBytes(r.responseSize)}`,
    `  process   ${processOf(r)}`,
    `  verdict   ${r.verdictAction ?? 'none (no policy)'}${r.verdictRule ? ` by rule '${r.verdictRule}'` : ''}${r.violation ? ' — a violation' : ''}`,
  ];
  let out = lines.join('\n') + '\n';
  out += '  request headers:\n' + headerLines(r.requestHeaders);
  out += '  response headers:\n' + headerLines(r.responseHeaders);
  if (r.requestBody || r.responseBody) {
    out += '  request body:\n' + bodyText(r.requestBody, r.requestBodyTruncated);
    out += '  response body:\n' + bodyText(r.responseBody, r.responseBodyTruncated);
  }
  if (r.redactions.length) {
    out += '  redacted:\n';
    for (const x of r.redactions)
      out += `    ${x.kind} at ${x.location}${x.count > 1 ? ` ×${x.count}` : ''}\n`;
  }
  return out;
}

export function register(program: Command): void {
  const cmd = program
    .command('requests')
    .summary('list recorded requests (redacted)')
    .description(
      'List recorded requests, newest first, with URLs redacted. Filter by session, host glob\n' +
        '(`*` crosses dots), method, status or violations. `requests show ID` prints one request\n' +
        'with its redacted headers and bodies.',
    )
    .option('--session <id>', 'only this session')
    .option('--host <glob>', 'only hosts matching this glob, e.g. "*.openai.com"')
    .option('--method <method>', 'only this HTTP method')
    .option('--status <code>', 'only this response status', intOption('--status', 100, 599))
    .option('--violations', 'only requests that were policy violations')
    .option('--limit <n>', 'at most this many (1-1000)', intOption('--limit', 1, 1000), 50)
    .option('--cursor <id>', 'continue after this id (from a previous page)')
    .option('--json', 'print JSON on stdout');
  addDataDirOption(cmd).action(async (opts: RequestsOptions) => {
    const page = await withStore(dataDirFrom(opts), (s) => listRequests(s, opts));
    if (opts.json) printJson(page);
    else process.stdout.write(printable(formatRequestList(page)));
  });

  const show = cmd
    .command('show')
    .argument('<id>', 'request id (from `trustrun requests`)')
    .summary('show one request, redacted')
    .option('--json', 'print JSON on stdout');
  addDataDirOption(show).action(async (id: string, opts: CommonOptions, c: Command) => {
    const parent = c.parent?.opts<CommonOptions>() ?? {};
    const dataDir = dataDirFrom({ dataDir: opts.dataDir ?? parent.dataDir });
    const r = await withStore(dataDir, (s) => showRequest(s, id));
    if (opts.json || parent.json) printJson(r);
    else process.stdout.write(printable(formatRequestDetail(r)));
  });
}
