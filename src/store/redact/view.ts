import type { RequestDetail, RequestRow } from '../types.js';
import { redactBody, type RedactedBody } from './body.js';
import { redactHeaders } from './headers.js';
import { secretKeyKind } from './keys.js';
import { marker, type Redaction } from './types.js';
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
 * `user:password` given to an option (curl's `-u`/`--user`, `-U`/`--proxy-user`, also in a
 * cluster such as `-su`): the password is masked, the user kept. Only a value holding a colon
 * is touched, so `python -u train.py` and `git push -u origin` stay as they are.
 */
const CREDENTIAL_OPTION = /^(?:-[A-Za-z]{0,8}[uU]|--user|--proxy-user)$/;
/**
 * The same inside an argument: `--user=u:p`, `-uu:p`, or in a script (`sh -c "curl -u u:p …"`,
 * `-u 'u:pass word'`; a cluster such as `-su` only before a space, so `-Duser.dir=a:b` is not
 * one). The user may be empty (`-u :TOKEN`, as Azure DevOps documents); a quoted
 * value runs to its closing quote, a bare one to white space or shell punctuation.
 */
const CREDENTIAL_IN_TEXT =
  /(^|[\s'"(])(-[uU]|-[A-Za-z]{0,8}[uU][ \t]+|--(?:proxy-)?user[= \t][ \t]*)(?:'([^':]*):([^']+)'|"([^":]*):([^"]+)"|([^\s:'";|&)`]*):([^\s'";|&)`]+))/g;

/** `uid:gid` (docker -u 1000:1000), a marker already there: not a credential. */
const NOT_A_CREDENTIAL = /^\d+:\d+$|\[REDACTED:/;

function maskCredentials(text: string): string {
  return text.replace(
    CREDENTIAL_IN_TEXT,
    (
      whole: string,
      lead: string,
      option: string,
      sqUser?: string,
      sqPass?: string,
      dqUser?: string,
      dqPass?: string,
      user?: string,
      pass?: string,
    ) => {
      const [u, p, q] =
        sqPass !== undefined
          ? [sqUser!, sqPass, "'"]
          : dqPass !== undefined
            ? [dqUser!, dqPass, '"']
            : [user ?? '', pass ?? '', ''];
      if (NOT_A_CREDENTIAL.test(`${u}:${p}`)) return whole;
      return `${lead}${option}${q}${u}:${marker('password')}${q}`;
    },
  );
}

/** URLs inside a command-line argument (`curl https://…`, `sh -c "curl 'https://…' -H …"`). */
const URL_IN_ARG = /[a-z][a-z0-9+.-]*:\/\/[^\s'"<>`]+/gi;

/**
 * A session's command line as every read path shows it: each URL inside an argument is
 * redacted as a URL (`curl 'https://h/x?api_key=…'`), then the whole argument as text
 * (`--password=…`, `Authorization: Bearer …` in a `sh -c` script, PHI patterns).
 */
export function redactCommand(command: readonly string[]): string[] {
  return command.map((arg, i) => {
    // `--password SECRET`: the value of an option named like a secret, given as its own argument.
    const previous = command[i - 1] ?? '';
    const option = /^--?([A-Za-z][\w.-]*)$/.exec(previous);
    const named = option ? secretKeyKind(option[1] as string, 'text') : null;
    if (named !== null && !arg.startsWith('-')) return marker(named);
    // `-u USER:PASSWORD`: the user stays.
    const colon = arg.indexOf(':');
    if (
      CREDENTIAL_OPTION.test(previous) &&
      colon >= 0 &&
      colon < arg.length - 1 &&
      !arg.startsWith('-') &&
      !arg.includes('://') &&
      !NOT_A_CREDENTIAL.test(arg)
    ) {
      return `${arg.slice(0, colon)}:${marker('password')}`;
    }
    const masked = arg.includes(':') ? maskCredentials(arg) : arg;
    const urls = masked.includes('://')
      ? masked.replace(URL_IN_ARG, (u) => redactUrl(u).url)
      : masked;
    // `--password=SECRET`: the dashes are not part of the key.
    const dashes = /^-{1,2}/.exec(urls)?.[0] ?? '';
    return dashes + redactText(urls.slice(dashes.length), 'command').text;
  });
}
