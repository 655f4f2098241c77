import { describe, expect, it } from 'vitest';
import { Capture } from '../../../src/proxy/tap.js';

/** Bytes 0..n-1 of a counting pattern. */
function bytes(n: number, from = 0): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (from + i) % 251;
  return b;
}

/** Feeds `body` in chunks of `chunk` bytes; returns the capture's result. */
function feed(c: Capture, body: Buffer, chunk: number) {
  for (let i = 0; i < body.length; i += chunk) c.add(body.subarray(i, i + chunk));
  return c.capture();
}

function capture(limit: number, expected: number | null, partBytes: number) {
  const parts: Buffer[] = [];
  const c = new Capture(
    limit,
    expected,
    (seq, data) => {
      expect(seq).toBe(parts.length);
      parts.push(Buffer.from(data));
    },
    partBytes,
  );
  return { c, parts };
}

describe('Capture with a part writer', () => {
  for (const expected of [null, 10_000] as const) {
    for (const chunk of [1, 7, 100, 333, 4096]) {
      it(`hands out full parts in order and keeps only the rest (length ${expected === null ? 'unknown' : 'known'}, chunks of ${chunk})`, () => {
        const body = bytes(10_000);
        const { c, parts } = capture(1 << 20, expected, 1024);
        const result = feed(c, body, chunk);
        // 9 full parts go out; the 10th (784 bytes) stays: a part is written only when more follows.
        expect(parts.map((p) => p.length)).toEqual(Array(9).fill(1024));
        expect(result.parts).toBe(9);
        expect(result.data.length).toBe(10_000 - 9 * 1024);
        expect(Buffer.concat([...parts, result.data]).equals(body)).toBe(true);
        expect(result.size).toBe(10_000);
        expect(result.truncated).toBe(false);
      });
    }
  }

  it('keeps a body of exactly one part in memory (no part written)', () => {
    const { c, parts } = capture(1 << 20, 1024, 1024);
    const result = feed(c, bytes(1024), 100);
    expect(parts).toHaveLength(0);
    expect(result.parts).toBe(0);
    expect(result.data.equals(bytes(1024))).toBe(true);
  });

  it('stops at the limit across parts and marks the body truncated', () => {
    const { c, parts } = capture(2500, null, 1024);
    const body = bytes(6000);
    const result = feed(c, body, 700);
    expect(parts.map((p) => p.length)).toEqual([1024, 1024]);
    expect(Buffer.concat([...parts, result.data]).equals(body.subarray(0, 2500))).toBe(true);
    expect(result.truncated).toBe(true);
    expect(result.size).toBe(6000);
  });

  it('holds at most one part of a long body (the part buffer is reused)', () => {
    const seen = new Set<ArrayBufferLike>();
    const c = new Capture(1 << 20, 1 << 20, (_seq, data) => seen.add(data.buffer), 4096);
    const body = bytes(1 << 20);
    expect(feed(c, body, 1500).parts).toBe(255);
    // Every part came from the same memory: the capture never grew past one part.
    expect(seen.size).toBe(1);
  });

  it('without a part writer keeps the whole head in memory', () => {
    const c = new Capture(5000, null);
    const body = bytes(8000);
    const r = feed(c, body, 999);
    expect(r.parts).toBe(0);
    expect(r.data.equals(body.subarray(0, 5000))).toBe(true);
    expect(r.truncated).toBe(true);
  });
});
