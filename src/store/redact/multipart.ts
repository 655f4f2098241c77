/**
 * multipart/form-data (and other multipart bodies): each part is shown with its headers; a part
 * whose field name is secret or PHI is masked whole, a text part is redacted by its own type, a
 * binary part is replaced by a placeholder.
 */
import { parseMediaType, looksLikeText, decodeText, formatOf } from './content-type.js';
import { phiKeyKind, secretKeyKind } from './keys.js';
import { redactTextInto } from './text.js';
import { Applied, locationPart, marker } from './types.js';

const NAME_PARAM = /;\s*name\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))/i;
const CONTENT_TYPE_LINE = /^content-type\s*:\s*(.*)$/im;

/** How one part's body is shown; provided by body.ts so JSON parts get the JSON walk. */
export type PartRedactor = (
  bytes: Buffer,
  contentType: string | undefined,
  applied: Applied,
  location: string,
) => string;

function headerEnd(part: Buffer): { end: number; gap: number } {
  const crlf = part.indexOf('\r\n\r\n');
  if (crlf >= 0) return { end: crlf, gap: 4 };
  const lf = part.indexOf('\n\n');
  return lf >= 0 ? { end: lf, gap: 2 } : { end: -1, gap: 0 };
}

function redactPart(part: Buffer, applied: Applied, redactBytes: PartRedactor): string {
  const { end, gap } = headerEnd(part);
  if (end < 0) return redactTextInto(part.toString('utf8'), applied, 'body:part');
  const rawHeaders = part.subarray(0, end).toString('utf8');
  const body = part.subarray(end + gap);
  const nameMatch = NAME_PARAM.exec(rawHeaders);
  const name = nameMatch ? (nameMatch[1] ?? nameMatch[2] ?? '') : '';
  const location = `body:part:${locationPart(redactTextInto(name, new Applied(), 'x'))}`;
  const headers = redactTextInto(rawHeaders, applied, location);
  const sep = gap === 4 ? '\r\n\r\n' : '\n\n';
  // The part body ends with the line break that precedes the next delimiter.
  const trail = body.subarray(body.length - 2).toString('latin1') === '\r\n' ? '\r\n' : '';
  const content = body.subarray(0, body.length - trail.length);
  const kind = name === '' ? null : (secretKeyKind(name, 'url') ?? phiKeyKind(name));
  if (kind !== null && content.length > 0) {
    applied.add(kind, location);
    return `${headers}${sep}${marker(kind)}${trail}`;
  }
  const partType = CONTENT_TYPE_LINE.exec(rawHeaders)?.[1]?.trim();
  const format = formatOf(parseMediaType(partType));
  if (format === 'binary' || (format === 'unknown' && !looksLikeText(content))) {
    return `${headers}${sep}[binary part: ${content.length} bytes]${trail}`;
  }
  return `${headers}${sep}${redactBytes(content, partType, applied, location)}${trail}`;
}

/** Redacts a multipart body; null when no boundary is found (the caller treats it as text). */
export function redactMultipart(
  bytes: Buffer,
  boundary: string | undefined,
  applied: Applied,
  redactBytes: PartRedactor,
): string | null {
  if (!boundary) return null;
  const delimiter = Buffer.from(`--${boundary}`, 'latin1');
  const first = bytes.indexOf(delimiter);
  if (first < 0) return null;
  const pieces: string[] = [
    redactTextInto(decodeText(bytes.subarray(0, first), undefined).text, applied, 'body'),
  ];
  let at = first;
  while (at >= 0) {
    const start = at + delimiter.length;
    const next = bytes.indexOf(delimiter, start);
    const chunk = bytes.subarray(start, next < 0 ? bytes.length : next);
    pieces.push(`--${boundary}`);
    if (chunk.subarray(0, 2).toString('latin1') === '--') {
      pieces.push(redactTextInto(chunk.toString('utf8'), applied, 'body'));
      break;
    }
    const lead = chunk.subarray(0, 2).toString('latin1') === '\r\n' ? 2 : chunk[0] === 0x0a ? 1 : 0;
    pieces.push(chunk.subarray(0, lead).toString('latin1'));
    pieces.push(redactPart(chunk.subarray(lead), applied, redactBytes));
    at = next;
  }
  return pieces.join('');
}
