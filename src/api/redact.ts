/**
 * How a stored request leaves the API: its sealed URL, headers and bodies opened server-side and
 * redacted by the store's `redactRequest` (the same view the CLI prints). Nothing raw is returned.
 */
import {
  originOf,
  redactRequest,
  type RedactedBody,
  type Redaction,
  type RequestDetail,
} from '../store/index.js';

export { originOf as origin };

export interface ShownBody {
  text: string | null;
  binary: boolean;
  truncated: boolean;
  note?: string;
}

export interface ShownRequest {
  url: string;
  path: string;
  requestHeaders: [string, string][];
  responseHeaders: [string, string][] | null;
  requestBody: ShownBody | null;
  responseBody: ShownBody | null;
  redactions: Redaction[];
}

function shown(b: RedactedBody | null, truncated: boolean): ShownBody | null {
  if (b === null) return null;
  return {
    text: b.text,
    binary: b.binary,
    truncated,
    ...(b.note !== undefined ? { note: b.note } : {}),
  };
}

export function showRequest(d: RequestDetail): ShownRequest {
  const r = redactRequest(d);
  const origin = originOf(d);
  return {
    url: r.url,
    path: r.url.startsWith(origin) ? r.url.slice(origin.length) : r.url,
    requestHeaders: r.requestHeaders,
    responseHeaders: r.responseHeaders,
    requestBody: shown(r.requestBody, d.requestBodyTruncated),
    responseBody: shown(r.responseBody, d.responseBodyTruncated),
    redactions: r.redactions,
  };
}
