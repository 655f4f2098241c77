/**
 * Run by decode.test.ts in a fresh process, so that each zip bomb's peak memory is measured
 * from its own baseline: builds a 1 GiB bomb, redacts it, prints what happened as JSON.
 * Usage: node --import tsx bomb-child.ts gzip-zeros|br-zeros|gzip-text CAP
 */
import { once } from 'node:events';
import zlib from 'node:zlib';
import { redactBody } from '../../../src/store/redact/index.js';

const MiB = 1024 * 1024;
const BOMB_TEXT = 'patient SSN 123-45-6789 mail jo@example.org token=abc123\n';

/** 1 GiB of `chunk` repeated, as concatenated gzip members (valid gzip, small on the wire). */
function gzipBomb(chunk: Buffer): Buffer {
  const member = zlib.gzipSync(chunk, { level: 9 });
  return Buffer.concat(
    Array.from({ length: Math.round((1024 * MiB) / chunk.length) }, () => member),
  );
}

/** 1 GiB of zeros as one brotli stream, compressed without holding the 1 GiB in memory. */
async function brotliBomb(): Promise<Buffer> {
  const enc = zlib.createBrotliCompress({ params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 1 } });
  const parts: Buffer[] = [];
  enc.on('data', (d: Buffer) => parts.push(d));
  const zeros = Buffer.alloc(MiB);
  for (let i = 0; i < 1024; i++) {
    if (!enc.write(zeros)) await once(enc, 'drain');
  }
  enc.end();
  await once(enc, 'end');
  return Buffer.concat(parts);
}

function textChunk(): Buffer {
  const line = Buffer.from(BOMB_TEXT);
  return Buffer.concat(Array.from({ length: Math.floor(MiB / line.length) }, () => line));
}

const [kind = '', capArg = ''] = process.argv.slice(2);
const cap = Number(capArg);
let body: Buffer;
let opts: { contentType?: string; contentEncoding: string };
if (kind === 'gzip-zeros') {
  body = gzipBomb(Buffer.alloc(MiB));
  opts = { contentType: 'text/plain', contentEncoding: 'gzip' };
} else if (kind === 'br-zeros') {
  body = await brotliBomb();
  opts = { contentEncoding: 'br' };
} else if (kind === 'gzip-text') {
  body = gzipBomb(textChunk());
  opts = { contentType: 'text/plain', contentEncoding: 'gzip' };
} else {
  throw new Error(`unknown bomb ${kind}`);
}
const rssBefore = process.resourceUsage().maxRSS;
const started = performance.now();
const r = redactBody(body, { ...opts, maxDecodedBytes: cap });
const ms = performance.now() - started;
const peakGrowthMiB = (process.resourceUsage().maxRSS - rssBefore) / 1024;
process.stdout.write(
  JSON.stringify({
    wireBytes: body.length,
    ms,
    peakGrowthMiB,
    textLength: r.text?.length ?? null,
    binary: r.binary,
    note: r.note,
    leaked: r.text?.includes('123-45-6789') ?? false,
    ssnCount: r.applied.find((a) => a.kind === 'ssn')?.count ?? 0,
  }),
);
