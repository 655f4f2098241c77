import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { DEFAULT_MAX_DECODED_BYTES, redactBody } from '../../../src/store/redact/index.js';

const TEXT = 'patient SSN 123-45-6789 mail jo@example.org token=abc123\n';
const MiB = 1024 * 1024;

describe('redactBody: Content-Encoding', () => {
  const plain = Buffer.from(TEXT.repeat(50));
  const expected =
    'patient SSN [REDACTED:ssn] mail [REDACTED:email] token=[REDACTED:token]\n'.repeat(50);
  const encoded: [string, Buffer][] = [
    ['gzip', zlib.gzipSync(plain)],
    ['x-gzip', zlib.gzipSync(plain)],
    ['deflate', zlib.deflateSync(plain)],
    ['br', zlib.brotliCompressSync(plain)],
    ['GZIP', zlib.gzipSync(plain)],
    ['identity', plain],
    ['gzip, br', zlib.brotliCompressSync(zlib.gzipSync(plain))],
    ['br,gzip', zlib.gzipSync(zlib.brotliCompressSync(plain))],
  ];
  for (const [encoding, body] of encoded) {
    it(`decodes ${encoding}`, () => {
      const r = redactBody(body, { contentType: 'text/plain', contentEncoding: encoding });
      expect(r.text).toBe(expected);
      expect(r.note).toBeUndefined();
      expect(r.applied).toEqual([
        { kind: 'token', location: 'body', count: 50 },
        { kind: 'ssn', location: 'body', count: 50 },
        { kind: 'email', location: 'body', count: 50 },
      ]);
    });
  }

  it('decodes raw deflate sent as deflate', () => {
    const r = redactBody(zlib.deflateRawSync(plain), {
      contentType: 'text/plain',
      contentEncoding: 'deflate',
    });
    expect(r.text).toBe(expected);
  });

  it('decodes a gzipped JSON body and walks it', () => {
    const body = zlib.gzipSync(JSON.stringify({ access_token: 'secret-1', n: 1 }));
    const r = redactBody(body, { contentType: 'application/json', contentEncoding: 'gzip' });
    expect(JSON.parse(r.text ?? '')).toEqual({ access_token: '[REDACTED:token]', n: 1 });
  });

  it('decodes as much as there is of a truncated body (captured up to --max-body)', () => {
    for (const [encoding, full] of [
      ['gzip', zlib.gzipSync(plain)],
      ['br', zlib.brotliCompressSync(plain)],
      ['deflate', zlib.deflateSync(plain)],
    ] as const) {
      const r = redactBody(full.subarray(0, Math.floor(full.length * 0.9)), {
        contentType: 'text/plain',
        contentEncoding: encoding,
      });
      expect(r.text, encoding).not.toBeNull();
      expect(r.text, encoding).not.toContain('123-45-6789');
      expect(r.text?.length ?? 0, encoding).toBeGreaterThan(0);
    }
  });

  it('shows a body labelled gzip that is not gzip data as is, with a note', () => {
    const r = redactBody(Buffer.from(TEXT), { contentType: 'text/plain', contentEncoding: 'gzip' });
    expect(r.text).toBe(
      'patient SSN [REDACTED:ssn] mail [REDACTED:email] token=[REDACTED:token]\n',
    );
    expect(r.note).toMatch(/not gzip data/);
  });

  it('does not show a body it cannot decode', () => {
    const corrupt = Buffer.concat([
      zlib.gzipSync(plain).subarray(0, 10),
      Buffer.from('garbage!garbage!'),
    ]);
    const r = redactBody(corrupt, { contentType: 'text/plain', contentEncoding: 'gzip' });
    expect(r.text).toBeNull();
    expect(r.binary).toBe(true);
    expect(r.note).toMatch(/could not decode gzip/);
    const br = redactBody(Buffer.from('definitely not brotli'), {
      contentType: 'text/plain',
      contentEncoding: 'br',
    });
    expect(br.text).toBeNull();
    expect(br.note).toMatch(/could not decode br/);
  });

  it('does not show a body in an unsupported encoding', () => {
    const r = redactBody(Buffer.from(TEXT), { contentType: 'text/plain', contentEncoding: 'zstd' });
    expect(r).toEqual({
      text: null,
      applied: [],
      binary: true,
      note: 'Content-Encoding zstd is not supported; body not shown',
    });
  });

  it('uses an 8 MiB cap by default', () => {
    expect(DEFAULT_MAX_DECODED_BYTES).toBe(8 * MiB);
  });
});

interface BombResult {
  wireBytes: number;
  ms: number;
  peakGrowthMiB: number;
  textLength: number | null;
  binary: boolean;
  note?: string;
  leaked: boolean;
  ssnCount: number;
}

/** Builds and redacts a 1 GiB bomb in a fresh process, so its peak memory has its own baseline. */
function runBomb(kind: string, cap: number): BombResult {
  const child = fileURLToPath(new URL('./bomb-child.ts', import.meta.url));
  const r = spawnSync(process.execPath, ['--import', 'tsx', child, kind, String(cap)], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (r.status !== 0) throw new Error(`bomb child failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as BombResult;
}

describe('redactBody: zip bombs (1 GiB decoded size)', () => {
  function expectBounded(r: BombResult, cap: number): void {
    expect(r.wireBytes).toBeLessThan(8 * MiB);
    // Decoding the whole GiB takes seconds and raises the peak by 1 GiB or more.
    expect(r.ms).toBeLessThan(3000);
    expect(r.peakGrowthMiB).toBeLessThan(200);
    expect(r.note).toMatch(new RegExp(`larger than ${cap} bytes decoded`));
  }

  it('stops a gzip of zeros at the default cap', () => {
    const r = runBomb('gzip-zeros', DEFAULT_MAX_DECODED_BYTES);
    expectBounded(r, DEFAULT_MAX_DECODED_BYTES);
    expect(r.textLength).toBeLessThanOrEqual(DEFAULT_MAX_DECODED_BYTES);
    expect(r.textLength).toBeGreaterThan(DEFAULT_MAX_DECODED_BYTES - 64 * 1024);
  });

  it('stops one brotli stream of zeros at a smaller cap', () => {
    const cap = 2 * MiB;
    const r = runBomb('br-zeros', cap);
    expectBounded(r, cap);
    // Zeros sniff as binary: nothing is shown, and the note says the body was capped.
    expect(r.binary).toBe(true);
    expect(r.textLength).toBeNull();
  });

  it('redacts the part of a text bomb that fits under the cap', () => {
    const r = runBomb('gzip-text', MiB);
    expectBounded(r, MiB);
    expect(r.leaked).toBe(false);
    expect(r.ssnCount).toBeGreaterThan(10_000);
  });
});
