import { Transform, type TransformCallback } from 'node:stream';

/** A captured body: at most `limit` bytes; `parts` of them already handed to the part writer. */
export interface CapturedBody {
  data: Buffer;
  truncated: boolean;
  size: number;
  parts: number;
}

/** Receives one full part of a long body; the buffer is reused after the call returns. */
export type PartWriter = (seq: number, data: Buffer) => void;

/**
 * Bytes of a body held in memory before they go to the part writer. A request in flight holds
 * at most this much of each body, whatever --max-body is.
 */
const BODY_PART_BYTES = 256 * 1024;

/**
 * Keeps the head of a body for the record: at most `limit` bytes, copied out of the chunks (a
 * chunk may be a slice of a larger buffer that must not be retained).
 *
 * With a part writer, the bytes go into one buffer of `partBytes`; when it is full and more
 * bytes come, it is handed to the writer (which seals and queues it) and filled again, so a
 * long body never sits whole in memory. A body that fits one part stays in memory and is
 * recorded with the request as before. Without a part writer the kept bytes are gathered in
 * memory (one buffer sized from Content-Length when the length is known: one copy, no concat):
 * the same path, with a part as large as the limit, which is never handed over.
 */
export class Capture {
  size = 0;
  truncated = false;
  /** Parts handed to the writer. */
  private parts = 0;
  private kept: Buffer[] = [];
  /** Bytes kept in `kept`/`single` (not counting parts already written). */
  private keptBytes = 0;
  private single: Buffer | null = null;
  /** Bytes of one part: `limit` without a writer (the one part is never full with more to come). */
  private readonly partBytes: number;

  constructor(
    private readonly limit: number,
    expected: number | null = null,
    private readonly writePart: PartWriter | null = null,
    partBytes = BODY_PART_BYTES,
  ) {
    this.partBytes = writePart === null ? limit : partBytes;
    this.expect(expected);
  }

  /** Bytes kept in all, parts included (never above `limit`). */
  private get total(): number {
    return this.parts * this.partBytes + this.keptBytes;
  }

  /** Announces the body's length (from Content-Length), before the first chunk. */
  expect(expected: number | null): void {
    if (this.size > 0 || expected === null || expected <= 0) return;
    this.single = Buffer.allocUnsafe(Math.min(expected, this.limit, this.partBytes));
  }

  add(chunk: Buffer): void {
    this.size += chunk.length;
    if (this.total >= this.limit) {
      if (chunk.length > 0) this.truncated = true;
      return;
    }
    const room = this.limit - this.total;
    let part = chunk.length <= room ? chunk : chunk.subarray(0, room);
    if (part.length < chunk.length) this.truncated = true;
    while (part.length > 0) {
      if (this.keptBytes === this.partBytes) this.flushPart();
      const n = Math.min(part.length, this.partBytes - this.keptBytes);
      this.keep(n === part.length ? part : part.subarray(0, n));
      part = part.subarray(n);
    }
  }

  /** The captured body (or its last part), for the record. */
  capture(): CapturedBody {
    const data =
      this.single !== null
        ? this.single.subarray(0, this.keptBytes)
        : this.kept.length === 1
          ? this.kept[0]!
          : Buffer.concat(this.kept, this.keptBytes);
    return { data, truncated: this.truncated, size: this.size, parts: this.parts };
  }

  private keep(part: Buffer): void {
    const single = this.single;
    if (single !== null && this.keptBytes + part.length <= single.length) {
      part.copy(single, this.keptBytes);
    } else {
      if (single !== null) {
        // More than announced (or than one part's first buffer): fall back to a list of copies.
        if (this.keptBytes > 0) this.kept.push(single.subarray(0, this.keptBytes));
        this.single = null;
      }
      this.kept.push(Buffer.from(part));
    }
    this.keptBytes += part.length;
  }

  /** Hands the full part to the writer and starts the next one in the same memory. */
  private flushPart(): void {
    const data = this.capture().data;
    this.writePart!(this.parts, data);
    this.parts++;
    if (this.single === null) this.single = data; // a full part: the next one's buffer
    this.kept = [];
    this.keptBytes = 0;
  }
}

/**
 * Counts the bytes of a body stream and keeps at most `limit` of them for the record, passing
 * every chunk through untouched. Nothing beyond the limit is ever buffered.
 */
export class BodyTap extends Transform {
  private readonly head: Capture;

  constructor(
    limit: number,
    expected: number | null,
    writePart: PartWriter | null,
    private readonly relayed: (bytes: number) => void,
  ) {
    super();
    this.head = new Capture(limit, expected, writePart);
  }

  get size(): number {
    return this.head.size;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.relayed(chunk.length);
    this.head.add(chunk);
    done(null, chunk);
  }

  /** The captured head of the body, for the record. */
  capture(): CapturedBody {
    return this.head.capture();
  }
}

/** Counts bytes without keeping any (headers level). */
export class ByteCounter extends Transform {
  size = 0;
  constructor(private readonly relayed: (bytes: number) => void) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.size += chunk.length;
    this.relayed(chunk.length);
    done(null, chunk);
  }
}
