/**
 * Content-Encoding decoding with an expansion cap (zip-bomb guard). Decoding stops once the
 * output would pass the cap: memory stays near the cap and the time near that of decoding it.
 * Truncated input (bodies captured up to --max-body) decodes as far as it goes.
 */
import zlib from 'node:zlib';

export const DEFAULT_MAX_DECODED_BYTES = 8 * 1024 * 1024;

export interface Decoded {
  /** The decoded bytes (at most the cap), or null when the body could not be decoded. */
  bytes: Buffer | null;
  /** True when the decoded body was longer than the cap and was cut there. */
  capped: boolean;
  notes: string[];
}

type SyncDecoder = (input: Buffer, options: zlib.ZlibOptions & zlib.BrotliOptions) => Buffer;

const { Z_SYNC_FLUSH, BROTLI_OPERATION_FLUSH } = zlib.constants;

const gunzip: SyncDecoder = (b, o) => zlib.gunzipSync(b, { ...o, finishFlush: Z_SYNC_FLUSH });
const inflate: SyncDecoder = (b, o) => zlib.inflateSync(b, { ...o, finishFlush: Z_SYNC_FLUSH });
const inflateRaw: SyncDecoder = (b, o) =>
  zlib.inflateRawSync(b, { ...o, finishFlush: Z_SYNC_FLUSH });
const unbrotli: SyncDecoder = (b, o) =>
  zlib.brotliDecompressSync(b, { ...o, finishFlush: BROTLI_OPERATION_FLUSH });

function tooLarge(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === 'ERR_BUFFER_TOO_LARGE';
}

/**
 * Decodes with `maxOutputLength` = cap. When the output passes the cap, finds the longest input
 * prefix whose output fits (a prefix of a stream decodes to a prefix of its output) by bisection:
 * about log2(input length) attempts, each stopped by zlib as soon as it passes the cap.
 */
function decodeCapped(
  decode: SyncDecoder,
  input: Buffer,
  cap: number,
): { out: Buffer; capped: boolean } {
  try {
    return { out: decode(input, { maxOutputLength: cap }), capped: false };
  } catch (err) {
    if (!tooLarge(err)) throw err;
  }
  let lo = 0;
  let hi = input.length - 1;
  let best: Buffer = Buffer.alloc(0);
  while (lo <= hi) {
    const mid = lo + Math.floor((hi - lo) / 2);
    try {
      best = decode(input.subarray(0, mid), { maxOutputLength: cap });
      lo = mid + 1;
    } catch (err) {
      if (!tooLarge(err)) throw err;
      hi = mid - 1;
    }
  }
  return { out: best, capped: true };
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function decodeOne(coding: string, input: Buffer, cap: number, notes: string[]) {
  switch (coding) {
    case 'gzip':
    case 'x-gzip':
      if (input.length >= 2 && (input[0] !== 0x1f || input[1] !== 0x8b)) {
        notes.push(`Content-Encoding says ${coding} but the body is not gzip data; shown as is`);
        return { out: input, capped: false };
      }
      return decodeCapped(gunzip, input, cap);
    case 'deflate':
      try {
        return decodeCapped(inflate, input, cap);
      } catch {
        return decodeCapped(inflateRaw, input, cap);
      }
    case 'br':
      return decodeCapped(unbrotli, input, cap);
    default:
      return null;
  }
}

/** Splits `gzip, br` into codings in the order they must be undone (last applied first). */
function codings(contentEncoding: string | undefined): string[] {
  if (!contentEncoding) return [];
  return contentEncoding
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== '' && c !== 'identity')
    .reverse();
}

export function decodeBody(
  body: Buffer,
  contentEncoding: string | undefined,
  cap: number,
): Decoded {
  const notes: string[] = [];
  let bytes = body;
  let capped = false;
  for (const coding of codings(contentEncoding)) {
    let result: { out: Buffer; capped: boolean } | null;
    try {
      result = decodeOne(coding, bytes, cap, notes);
    } catch (err) {
      notes.push(`could not decode ${coding} content: ${message(err)}; body not shown`);
      return { bytes: null, capped, notes };
    }
    if (result === null) {
      notes.push(`Content-Encoding ${coding} is not supported; body not shown`);
      return { bytes: null, capped, notes };
    }
    bytes = result.out;
    capped ||= result.capped;
  }
  if (bytes.length > cap) {
    bytes = bytes.subarray(0, cap);
    capped = true;
  }
  if (capped)
    notes.push(
      `body is larger than ${cap} bytes decoded; only the first ${bytes.length} bytes are shown`,
    );
  return { bytes, capped, notes };
}
