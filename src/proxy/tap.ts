import { Transform, type TransformCallback } from 'node:stream';

/**
 * Keeps the head of a body for the record: at most `limit` bytes, copied out of the chunks (a
 * chunk may be a slice of a larger buffer that must not be retained). When the body's length is
 * known up front the kept bytes go into one buffer of the right size (one copy, no concat).
 */
export class Capture {
  size = 0;
  truncated = false;
  private kept: Buffer[] = [];
  private keptBytes = 0;
  private single: Buffer | null = null;

  constructor(
    private readonly limit: number,
    expected: number | null = null,
  ) {
    this.expect(expected);
  }

  /** Announces the body's length (from Content-Length), before the first chunk. */
  expect(expected: number | null): void {
    if (this.size > 0 || expected === null || expected <= 0) return;
    this.single = Buffer.allocUnsafe(Math.min(expected, this.limit));
  }

  add(chunk: Buffer): void {
    this.size += chunk.length;
    if (this.keptBytes >= this.limit) {
      if (chunk.length > 0) this.truncated = true;
      return;
    }
    const room = this.limit - this.keptBytes;
    const part = chunk.length <= room ? chunk : chunk.subarray(0, room);
    if (part.length < chunk.length) this.truncated = true;
    const single = this.single;
    if (single !== null && this.keptBytes + part.length <= single.length) {
      part.copy(single, this.keptBytes);
    } else {
      if (single !== null) {
        // More than announced: fall back to a list of copies.
        this.kept.push(single.subarray(0, this.keptBytes));
        this.single = null;
      }
      this.kept.push(Buffer.from(part));
    }
    this.keptBytes += part.length;
  }

  /** The captured head of the body, for the record. */
  capture(): { data: Buffer; truncated: boolean; size: number } {
    const data =
      this.single !== null
        ? this.single.subarray(0, this.keptBytes)
        : this.kept.length === 1
          ? this.kept[0]!
          : Buffer.concat(this.kept, this.keptBytes);
    return { data, truncated: this.truncated, size: this.size };
  }
}

/**
 * Counts the bytes of a body stream and keeps at most `limit` of them for the record, passing
 * every chunk through untouched. Nothing beyond the limit is ever buffered.
 */
export class BodyTap extends Transform {
  private readonly head: Capture;

  constructor(limit: number, expected: number | null = null) {
    super();
    this.head = new Capture(limit, expected);
  }

  get size(): number {
    return this.head.size;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.head.add(chunk);
    done(null, chunk);
  }

  /** The captured head of the body, for the record. */
  capture(): { data: Buffer; truncated: boolean; size: number } {
    return this.head.capture();
  }
}

/** Counts bytes without keeping any (headers level). */
export class ByteCounter extends Transform {
  size = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.size += chunk.length;
    done(null, chunk);
  }
}
