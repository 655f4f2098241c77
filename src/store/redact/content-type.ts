/** Media type parsing and the text-or-binary decision. */

export interface MediaType {
  /** `application/json`, lower case, without parameters; '' when absent. */
  type: string;
  charset?: string;
  boundary?: string;
}

const PARAM = /;\s*([A-Za-z0-9!#$%&'*+.^_`|~-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))/g;

export function parseMediaType(header: string | undefined): MediaType {
  if (!header) return { type: '' };
  const semi = header.indexOf(';');
  const type = (semi < 0 ? header : header.slice(0, semi)).trim().toLowerCase();
  const out: MediaType = { type };
  if (semi < 0) return out;
  for (const m of header.slice(semi).matchAll(PARAM)) {
    const name = (m[1] ?? '').toLowerCase();
    const value = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : (m[3] ?? '');
    if (name === 'charset') out.charset = value.toLowerCase();
    else if (name === 'boundary') out.boundary = value;
  }
  return out;
}

export type BodyFormat = 'json' | 'ndjson' | 'form' | 'multipart' | 'text' | 'binary' | 'unknown';

const TEXT_TYPES = new Set([
  'application/javascript',
  'application/ecmascript',
  'application/xml',
  'application/graphql',
  'application/sql',
  'application/yaml',
  'application/x-yaml',
  'application/toml',
  'application/csv',
  'application/x-sh',
  'application/soap+xml',
  'application/xhtml+xml',
  'application/hl7-v2',
  'application/edi-x12',
  'application/x-hl7',
  'message/http',
]);

const BINARY_PREFIXES = ['image/', 'audio/', 'video/', 'font/', 'model/'];
const BINARY_TYPES = new Set([
  'application/octet-stream',
  'application/pdf',
  'application/zip',
  'application/gzip',
  'application/x-gzip',
  'application/x-tar',
  'application/x-7z-compressed',
  'application/vnd.rar',
  'application/wasm',
  'application/protobuf',
  'application/x-protobuf',
  'application/vnd.google.protobuf',
  'application/grpc',
  'application/grpc+proto',
  'application/msgpack',
  'application/x-msgpack',
  'application/cbor',
  'application/dicom',
  'application/vnd.apache.parquet',
  'application/x-parquet',
  'application/vnd.apache.arrow.stream',
  'application/vnd.apache.arrow.file',
]);

const NDJSON_TYPES = new Set([
  'application/x-ndjson',
  'application/ndjson',
  'application/jsonl',
  'application/x-jsonlines',
  'application/jsonlines',
  'application/json-seq',
]);

/** What the Content-Type says the body is; 'unknown' when it does not say. */
export function formatOf(mt: MediaType): BodyFormat {
  const t = mt.type;
  if (t === '') return 'unknown';
  if (NDJSON_TYPES.has(t)) return 'ndjson';
  if (t === 'application/json' || t === 'text/json' || t.endsWith('+json')) return 'json';
  if (t === 'application/x-www-form-urlencoded') return 'form';
  if (t.startsWith('multipart/')) return 'multipart';
  if (t.startsWith('text/') || TEXT_TYPES.has(t) || t.endsWith('+xml')) return 'text';
  if (BINARY_TYPES.has(t) || BINARY_PREFIXES.some((p) => t.startsWith(p))) return 'binary';
  if (t.startsWith('application/vnd.') && (t.includes('json') || t.includes('xml'))) return 'text';
  return 'unknown';
}

const SNIFF_BYTES = 8192;

/**
 * Sniffs bytes of unknown type: text when the first 8 KiB are valid UTF-8 (a character cut at
 * the sample's end is allowed) without NUL bytes and with few control characters.
 */
export function looksLikeText(bytes: Buffer): boolean {
  const sample = bytes.subarray(0, SNIFF_BYTES);
  let control = 0;
  for (const b of sample) {
    if (b === 0) return false;
    if (b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d && b !== 0x0c && b !== 0x1b) control++;
  }
  if (control > sample.length / 20) return false;
  try {
    const cutAtEnd = bytes.length > SNIFF_BYTES;
    new TextDecoder('utf-8', { fatal: true }).decode(sample, { stream: cutAtEnd });
    return true;
  } catch {
    return false;
  }
}

/** Decodes text in its declared charset (UTF-8 when none or unknown), never throwing. */
export function decodeText(
  bytes: Buffer,
  charset: string | undefined,
): { text: string; note?: string } {
  if (charset && charset !== 'utf-8' && charset !== 'utf8') {
    try {
      return { text: new TextDecoder(charset).decode(bytes) };
    } catch {
      return {
        text: new TextDecoder('utf-8').decode(bytes),
        note: `charset ${charset} is not supported; decoded as UTF-8`,
      };
    }
  }
  return { text: new TextDecoder('utf-8').decode(bytes) };
}
