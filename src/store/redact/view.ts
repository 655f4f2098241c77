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
 * The same inside an argument: `--user=u:p`, `-uu:p`, or in a script (`sh -c "curl -u u:p …"`;
 * a cluster such as `-su` only before a space, so `-Duser.dir=a:b` is not one; a line
 * continuation may come between). The value is one shell word: quoted pieces (`'u:pass word'`,
 * `alice:"pw"`), backslash escapes and bare characters, up to white space or, in a script, shell
 * punctuation. Its user may be empty (`-u :TOKEN`, as Azure DevOps documents).
 */
const CREDENTIAL_IN_TEXT =
  /(^|[\s'"(])(-[uU]|-[A-Za-z]{0,8}[uU](?:[ \t]|\\\n)+|--(?:proxy-)?user(?:=|(?:[ \t]|\\\n)+))((?:'[^']{0,4096}'|"(?:[^"\\]|\\.){0,4096}"|\\.|[^\s'"\\;|&()`]){1,4096})/g;
/** The same, in an argument that is one word (no shell will split it): all of it is the value. */
const CREDENTIAL_WORD = /^(-[uU]|--(?:proxy-)?user=)(.+)$/s;

/** `uid:gid` (docker -u 1000:1000): not a credential, for the container runtimes only. */
const UID_GID = /^\d+:\d+$/;
const CONTAINER_RUNTIMES = /(?:^|\/)(?:docker|podman|nerdctl)$/;

/**
 * The characters of a shell word or script that are neither escaped (`\x`) nor quote marks,
 * each with the quote it stands in (null outside quotes).
 */
function* shellChars(text: string): Generator<[number, string | null]> {
  let quote: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\\' && quote !== "'") {
      i++;
      continue;
    }
    if (quote === null ? c === "'" || c === '"' : c === quote) {
      quote = quote === null ? c : null;
      continue;
    }
    yield [i, quote];
  }
}

/**
 * A `user:password` word with its password masked: everything after the first colon outside
 * the user (quotes kept balanced), or null when it holds no colon, nothing after it, or a marker.
 */
function maskUserWord(word: string, uidGidAllowed: boolean): string | null {
  if (word.includes('[REDACTED:') || (uidGidAllowed && UID_GID.test(word))) return null;
  for (const [i, quote] of shellChars(word)) if (word[i] === ':') return cut(i, quote);
  return null;
  function cut(at: number, open: string | null): string | null {
    if (at === word.length - 1 || (open !== null && word.slice(at + 1) === open)) return null;
    return `${word.slice(0, at)}:${marker('password')}${open ?? ''}`;
  }
}

function maskCredentials(text: string, uidGidAllowed: boolean): string {
  if (!/\s/.test(text)) {
    const m = CREDENTIAL_WORD.exec(text);
    if (!m) return text;
    const shown = maskUserWord(m[2]!, uidGidAllowed);
    return shown === null ? text : `${m[1]}${shown}`;
  }
  return text.replace(
    CREDENTIAL_IN_TEXT,
    (whole: string, lead: string, option: string, word: string) => {
      const shown = maskUserWord(word, uidGidAllowed);
      return shown === null ? whole : `${lead}${option}${shown}`;
    },
  );
}

/**
 * The MySQL family's clients take a password glued to `-p` (`mysql -uroot -pSECRET`, also at the
 * end of a cluster of flags: `-BNpSECRET`) or given to `--password=` or one of its prefixes
 * (`--pass=`); `-p` alone asks for it. Masked in the arguments that follow such a client (also
 * behind `sudo`, `env`, `docker exec` …), and in a script, in the rest of each command that runs
 * one.
 */
const MYSQL_CLIENTS = /(?:^|\/)(?:mysql|mariadb)[a-z_-]*$/;
/** Short options of those clients that take no value, which may come before `p` in a cluster. */
const MYSQL_FLAGS = 'ABCEGHLNUVXbcfijknoqrstvw';
const MYSQL_PASSWORD_ARG = new RegExp(
  `^(-[${MYSQL_FLAGS}]*p|--pass(?:w(?:o(?:rd?)?)?)?=)(.+)$`,
  's',
);
/** A client's name as a command word in a script (`mysql`, `/usr/bin/mariadb-dump`). */
const MYSQL_IN_TEXT = /(?:^|[\s/])(?:mysql|mariadb)[a-z_-]*(?=\s|$)/;
/** The password options in the rest of such a command; the value is one shell word. */
const MYSQL_PASSWORD_IN_TEXT = new RegExp(
  `(^|\\s)(-[${MYSQL_FLAGS}]*p|--pass(?:w(?:o(?:rd?)?)?)?=)(?:'[^']{0,4096}'|"(?:[^"\\\\]|\\\\.){0,4096}"|\\\\.|[^\\s'"\\\\;|&()\`<>]){1,4096}`,
  'g',
);

/**
 * A script cut into its commands: at `;`, `&`, `|`, `(`, `)`, `` ` `` and line breaks outside
 * quotes (the pieces, separators included, join back into the script).
 */
function shellCommands(script: string): string[] {
  const out: string[] = [];
  let start = 0;
  for (const [i, quote] of shellChars(script)) {
    if (quote === null && ';&|()`\n'.includes(script[i]!)) {
      out.push(script.slice(start, i + 1));
      start = i + 1;
    }
  }
  out.push(script.slice(start));
  return out;
}

/** A script with the MySQL passwords given after each client's name masked. */
function maskMysqlScript(script: string): string {
  if (!/mysql|mariadb/.test(script)) return script;
  return shellCommands(script)
    .map((command) => {
      const at = MYSQL_IN_TEXT.exec(command);
      if (!at) return command;
      const from = at.index + at[0].length;
      return (
        command.slice(0, from) +
        command
          .slice(from)
          .replace(
            MYSQL_PASSWORD_IN_TEXT,
            (_w, lead: string, option: string) => `${lead}${option}${marker('password')}`,
          )
      );
    })
    .join('');
}

/** `--password=VALUE` as one argument: all of VALUE is the secret, spaces included. */
const SECRET_OPTION_ARG = /^(--?([A-Za-z][\w.-]{0,63})=)(.+)$/s;
/**
 * `--password=VALUE`, `--token VALUE` in a script: VALUE is one shell word (quoted pieces,
 * escapes, bare characters); after a space it is not another option.
 */
const SECRET_OPTION_IN_TEXT =
  /(^|\s)(--?[A-Za-z][\w.-]{0,63})(=|[ \t]+)((?:'[^']{0,4096}'|"(?:[^"\\]|\\.){0,4096}"|\\.|[^\s'"\\;|&()`<>]){1,4096})/g;

function maskSecretOptions(script: string): string {
  return script.replace(
    SECRET_OPTION_IN_TEXT,
    (whole: string, lead: string, option: string, sep: string, value: string) => {
      const kind = secretKeyKind(option.replace(/^-+/, ''), 'text');
      if (kind === null || (sep !== '=' && value.startsWith('-'))) return whole;
      return `${lead}${option}${sep}${marker(kind)}`;
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
  const runtime = CONTAINER_RUNTIMES.test(command[0] ?? '');
  // Arguments from this index on follow a MySQL client (`mysql …`, `sudo -u app mysql …`).
  const mysqlFrom = command.findIndex((a) => MYSQL_CLIENTS.test(a)) + 1 || Infinity;
  return command.map((original, i) => {
    const mysql = i >= mysqlFrom;
    if (mysql) {
      const m = MYSQL_PASSWORD_ARG.exec(original);
      if (m) return `${m[1]}${marker('password')}`;
    }
    if (original.startsWith('-')) {
      const m = SECRET_OPTION_ARG.exec(original);
      const kind = m ? secretKeyKind(m[2]!, 'text') : null;
      if (kind !== null) return `${m![1]}${marker(kind)}`;
    }
    const arg = /\s/.test(original) ? maskSecretOptions(maskMysqlScript(original)) : original;
    // `--password SECRET`: the value of an option named like a secret, given as its own argument
    // (not after a client's `-pSECRET`, whose value is already in it).
    const previous = command[i - 1] ?? '';
    const option =
      i - 1 >= mysqlFrom && MYSQL_PASSWORD_ARG.test(previous)
        ? null
        : /^--?([A-Za-z][\w.-]*)$/.exec(previous);
    const named = option ? secretKeyKind(option[1] as string, 'text') : null;
    if (named !== null && !arg.startsWith('-')) return marker(named);
    // `-u USER:PASSWORD`: the user stays.
    if (CREDENTIAL_OPTION.test(previous) && !arg.startsWith('-') && !arg.includes('://')) {
      const shown = maskUserWord(arg, runtime);
      if (shown !== null) return shown;
    }
    const masked = arg.includes(':') ? maskCredentials(arg, runtime) : arg;
    const urls = masked.includes('://')
      ? masked.replace(URL_IN_ARG, (u) => redactUrl(u).url)
      : masked;
    // `--password=SECRET`: the dashes are not part of the key.
    const dashes = /^-{1,2}/.exec(urls)?.[0] ?? '';
    return dashes + redactText(urls.slice(dashes.length), 'command').text;
  });
}
