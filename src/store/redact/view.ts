import type { RequestDetail, RequestRow } from '../types.js';
import { redactBody, type RedactedBody } from './body.js';
import { redactHeaders } from './headers.js';
import type { Redaction } from './types.js';
import { redactText } from './text.js';
import { redactUrl } from './url.js';

/** A request as every read path shows it: clear columns plus its sealed fields, redacted. */
export interface RedactedRequest extends RequestRow {
  url: string;
  requestHeaders: [string, string][];
  responseHeaders: [string, string][] | null;
  requestBody: RedactedBody | null;
  responseBody: RedactedBody | null;
  /** Every redaction applied, across URL, headers and bodies. */
  redactions: Redaction[];
}

function header(headers: readonly [string, string][] | null, name: string): string | undefined {
  return headers?.find(([n]) => n.toLowerCase() === name)?.[1];
}

function body(
  data: Buffer | null,
  headers: readonly [string, string][] | null,
  storeNote: string | undefined,
): RedactedBody | null {
  if (data === null) {
    return storeNote === undefined
      ? null
      : { text: null, applied: [], binary: false, note: storeNote };
  }
  const b = redactBody(data, {
    contentType: header(headers, 'content-type'),
    contentEncoding: header(headers, 'content-encoding'),
  });
  if (storeNote !== undefined)
    b.note = b.note === undefined ? storeNote : `${storeNote}; ${b.note}`;
  return b;
}

/** scheme://host[:port] of a request (the port only when it is not the scheme's default). */
export function originOf(row: Pick<RequestRow, 'scheme' | 'host' | 'port'>): string {
  const defaultPort = row.scheme === 'https' ? 443 : 80;
  const host = row.host.includes(':') ? `[${row.host}]` : row.host;
  return `${row.scheme}://${host}${row.port === defaultPort ? '' : `:${row.port}`}`;
}

/** The absolute URL of a request: stored is the path and query; scheme, host and port are clear. */
export function absoluteUrl(
  row: Pick<RequestRow, 'scheme' | 'host' | 'port'>,
  path: string,
): string {
  return path.startsWith('/') ? originOf(row) + path : path;
}

/**
 * Redacts an opened request for display (CLI, API, UI, HAR). The one place that decides how a
 * stored request is shown, so every reader masks the same things.
 */
export function redactRequest(detail: RequestDetail): RedactedRequest {
  const url = redactUrl(absoluteUrl(detail, detail.url));
  const reqHeaders = redactHeaders(detail.requestHeaders);
  const resHeaders = detail.responseHeaders ? redactHeaders(detail.responseHeaders) : null;
  const requestBody = body(detail.requestBody, detail.requestHeaders, detail.requestBodyNote);
  const responseBody = body(detail.responseBody, detail.responseHeaders, detail.responseBodyNote);
  return {
    ...detail,
    url: url.url,
    requestHeaders: reqHeaders.headers,
    responseHeaders: resHeaders?.headers ?? null,
    requestBody,
    responseBody,
    redactions: [
      ...url.applied.map((r) => ({ ...r, location: `request ${r.location}` })),
      ...reqHeaders.applied.map((r) => ({ ...r, location: `request ${r.location}` })),
      ...(resHeaders?.applied ?? []).map((r) => ({ ...r, location: `response ${r.location}` })),
      ...(requestBody?.applied ?? []).map((r) => ({ ...r, location: `request ${r.location}` })),
      ...(responseBody?.applied ?? []).map((r) => ({ ...r, location: `response ${r.location}` })),
    ],
  };
}

/**
 * A session's command line as every read path shows it: each argument that holds a URL is
 * redacted as a URL (`curl 'https://h/x?api_key=…'`, `--url=https://…`), any other as text
 * (`--password=…`, `TOKEN=…`, PHI patterns).
 */
export function redactCommand(command: readonly string[]): string[] {
  return command.map((arg) => {
    const at = arg.search(/[a-z][a-z0-9+.-]*:\/\//i);
    if (at < 0) return redactText(arg, 'command').text;
    return redactText(arg.slice(0, at), 'command').text + redactUrl(arg.slice(at)).url;
  });
}
