/**
 * Body redaction: decode Content-Encoding (capped), decide text or binary, then redact by format
 * (JSON walk, NDJSON per line, form fields, multipart parts, or the text patterns).
 */
import {
  decodeText,
  formatOf,
  looksLikeText,
  parseMediaType,
  type BodyFormat,
} from './content-type.js';
import { DEFAULT_MAX_DECODED_BYTES, decodeBody } from './decode.js';
import { JsonRedactor, JsonTooDeep, type Json } from './json.js';
import { redactLenientJson } from './lenient.js';
import { redactMultipart } from './multipart.js';
import { redactTextInto } from './text.js';
import { redactParamsInto } from './url.js';
import { Applied, type Redaction } from './types.js';

export interface RedactBodyOptions {
  contentType?: string;
  contentEncoding?: string;
  /** Decoding stops here (zip-bomb guard); also the most text that is redacted. Default 8 MiB. */
  maxDecodedBytes?: number;
}

export interface RedactedBody {
  /** The redacted body for display, or null when it is binary or could not be decoded. */
  text: string | null;
  applied: Redaction[];
  binary: boolean;
  /** Anything a reader should know: capped, not decodable, not valid JSON, … */
  note?: string;
}

const LOOKS_LIKE_JSON = /^\s*[[{]/;

function tryParse(text: string): { ok: true; value: Json } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text) as Json };
  } catch {
    return { ok: false };
  }
}

/** Walks and pretty-prints; null when the value is too deep to walk (then it is redacted as text). */
function redactJsonValue(
  value: Json,
  applied: Applied,
  location: string,
  indent: number,
): string | null {
  const local = new Applied();
  try {
    const out = new JsonRedactor(local, location).walk(value);
    const text = JSON.stringify(out, null, indent);
    applied.addAll(local.list());
    return text;
  } catch (err) {
    if (err instanceof JsonTooDeep || err instanceof RangeError) return null;
    throw err;
  }
}

function redactNdjson(text: string, applied: Applied): string {
  return text
    .split('\n')
    .map((line) => {
      if (line.trim() === '') return line;
      const parsed = tryParse(line);
      const shown = parsed.ok
        ? redactJsonValue(parsed.value, applied, 'body:', 0)
        : LOOKS_LIKE_JSON.test(line)
          ? redactLenientJson(line, applied, 'body')
          : null;
      return shown ?? redactTextInto(line, applied, 'body');
    })
    .join('\n');
}

/**
 * `sniffJson`: the type does not say (or says text/plain), so a body that parses as JSON is
 * walked as JSON, which finds more (PHI keys, FHIR) than the text patterns alone.
 */
function redactAsFormat(
  text: string,
  format: BodyFormat,
  applied: Applied,
  location: string,
  notes: string[],
  sniffJson = false,
): string {
  if (format === 'form') return redactParamsInto(text, applied, `${location}:form:`);
  if (format === 'ndjson') return redactNdjson(text, applied);
  if (format === 'json' && text.trim() === '') return text;
  if (format === 'json' || (sniffJson && LOOKS_LIKE_JSON.test(text))) {
    const parsed = tryParse(text);
    if (parsed.ok) {
      const shown = redactJsonValue(parsed.value, applied, `${location}:`, 2);
      if (shown !== null) return shown;
    } else {
      const shown = redactLenientJson(text, applied, location);
      if (shown !== null) {
        if (format === 'json') {
          notes.push(
            'not valid JSON (possibly truncated); redacted by its structure as far as it could be read',
          );
        }
        return shown;
      }
    }
    notes.push('JSON nested too deeply to walk; redacted as text');
  }
  return redactTextInto(text, applied, location);
}

/** Redacts one part of a multipart body by its own Content-Type. */
function partRedactor(notes: string[]) {
  return (bytes: Buffer, contentType: string | undefined, applied: Applied, location: string) => {
    const mt = parseMediaType(contentType);
    const { text } = decodeText(bytes, mt.charset);
    const format = formatOf(mt);
    const sniff = format === 'unknown' || mt.type === 'text/plain';
    return redactAsFormat(
      text,
      format === 'multipart' ? 'text' : format,
      applied,
      location,
      notes,
      sniff,
    );
  };
}

/**
 * Decodes (gzip, deflate, br; stopping at maxDecodedBytes), decides text or binary, and masks
 * secrets and PHI for display. The stored body is never changed.
 */
export function redactBody(body: Buffer, opts: RedactBodyOptions = {}): RedactedBody {
  const cap = Math.max(1, Math.floor(opts.maxDecodedBytes ?? DEFAULT_MAX_DECODED_BYTES));
  const decoded = decodeBody(body, opts.contentEncoding, cap);
  const notes = decoded.notes;
  const note = () => (notes.length > 0 ? { note: notes.join('; ') } : {});
  if (decoded.bytes === null) return { text: null, applied: [], binary: true, ...note() };
  const bytes = decoded.bytes;
  const mt = parseMediaType(opts.contentType);
  let format = formatOf(mt);
  const sniffJson = format === 'unknown' || mt.type === 'text/plain';
  if (format === 'unknown') format = looksLikeText(bytes) ? 'text' : 'binary';
  if (format === 'binary') return { text: null, applied: [], binary: true, ...note() };

  const applied = new Applied();
  if (format === 'multipart') {
    const shown = redactMultipart(bytes, mt.boundary, applied, partRedactor(notes));
    if (shown !== null) return { text: shown, applied: applied.list(), binary: false, ...note() };
    format = 'text';
  }
  const { text, note: charsetNote } = decodeText(bytes, mt.charset);
  if (charsetNote) notes.push(charsetNote);
  const shown = redactAsFormat(text, format, applied, 'body', notes, sniffJson);
  return { text: shown, applied: applied.list(), binary: false, ...note() };
}
