/** HAR 1.2 export of a session, built from redacted request details only. */
import { isTrustRunError } from '../core/index.js';
import type { RequestRow, Store } from '../store/index.js';
import { origin, showRequest, type ShownBody } from './redact.js';

/** The most requests one export holds. */
export const HAR_MAX_ENTRIES = 10_000;

interface NameValue {
  name: string;
  value: string;
}

const pairs = (h: readonly [string, string][] | null): NameValue[] =>
  (h ?? []).map(([name, value]) => ({ name, value }));

function mime(h: readonly [string, string][] | null): string {
  return h?.find(([n]) => n.toLowerCase() === 'content-type')?.[1] ?? '';
}

function query(path: string): NameValue[] {
  const q = path.indexOf('?');
  if (q < 0) return [];
  const out: NameValue[] = [];
  for (const part of path.slice(q + 1).split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    out.push(
      eq < 0 ? { name: part, value: '' } : { name: part.slice(0, eq), value: part.slice(eq + 1) },
    );
  }
  return out;
}

function content(b: ShownBody | null, size: number | null, type: string) {
  return {
    size: size ?? -1,
    mimeType: type,
    ...(b?.text !== null && b?.text !== undefined ? { text: b.text } : {}),
    ...(b?.binary ? { comment: 'binary body not shown' } : {}),
  };
}

function entry(store: Store, row: RequestRow) {
  const base = {
    startedDateTime: new Date(row.startedAt).toISOString(),
    time: row.durationMs ?? 0,
    cache: {},
    timings: {
      send: 0,
      wait: row.ttfbMs ?? row.durationMs ?? 0,
      receive: Math.max(0, (row.durationMs ?? 0) - (row.ttfbMs ?? row.durationMs ?? 0)),
    },
    _trustrun: {
      id: row.id,
      verdict: row.verdictAction,
      rule: row.verdictRule,
      violation: row.violation,
      outcome: row.outcome,
      reason: row.reason,
      pid: row.pid,
      exe: row.exe,
    },
  };
  const response0 = {
    status: row.status ?? 0,
    statusText: '',
    httpVersion: 'HTTP/1.1',
    cookies: [],
    redirectURL: '',
    headersSize: -1,
    bodySize: row.responseSize ?? -1,
  };
  let detail;
  try {
    detail = store.getRequest(row.id);
  } catch (err) {
    if (!isTrustRunError(err, 'TR_SEAL_OPEN')) throw err;
    detail = null;
  }
  if (!detail) {
    return {
      ...base,
      comment: 'URL, headers and bodies cannot be opened (the session was shredded)',
      request: {
        method: row.method,
        url: `${origin(row)}/`,
        httpVersion: 'HTTP/1.1',
        cookies: [],
        headers: [],
        queryString: [],
        headersSize: -1,
        bodySize: row.requestSize ?? -1,
      },
      response: { ...response0, headers: [], content: { size: -1, mimeType: '' } },
    };
  }
  const s = showRequest(detail);
  return {
    ...base,
    _trustrun: { ...base._trustrun, redactions: s.redactions },
    request: {
      method: row.method,
      url: s.url,
      httpVersion: 'HTTP/1.1',
      cookies: [],
      headers: pairs(s.requestHeaders),
      queryString: query(s.path),
      headersSize: -1,
      bodySize: row.requestSize ?? -1,
      ...(s.requestBody?.text != null
        ? { postData: { mimeType: mime(s.requestHeaders), text: s.requestBody.text } }
        : {}),
    },
    response: {
      ...response0,
      headers: pairs(s.responseHeaders),
      content: content(s.responseBody, row.responseSize, mime(s.responseHeaders)),
    },
  };
}

export function sessionHar(store: Store, sessionId: string, version: string) {
  const entries = [];
  let cursor: string | null = null;
  let truncated = false;
  do {
    const page = store.listRequests({ sessionId, order: 'asc', limit: 500, cursor });
    for (const row of page.items) {
      if (entries.length >= HAR_MAX_ENTRIES) {
        truncated = true;
        break;
      }
      entries.push(entry(store, row));
    }
    cursor = truncated ? null : page.nextCursor;
  } while (cursor !== null);
  return {
    log: {
      version: '1.2',
      creator: { name: 'TrustRun', version },
      comment:
        `session ${sessionId}; URLs, headers and bodies are redacted` +
        (truncated ? `; only the first ${HAR_MAX_ENTRIES} requests` : ''),
      pages: [],
      entries,
    },
  };
}
