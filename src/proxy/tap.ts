import { Transform, type TransformCallback } from 'node:stream';

/**
 * Counts the bytes of a body stream and keeps at most `limit` of them for the record, passing
 * every chunk through untouched. Nothing beyond the limit is ever buffered.
 */
export class BodyTap extends Transform {
  size = 0;
  truncated = false;
  private readonly kept: Buffer[] = [];
  private keptBytes = 0;

  constructor(private readonly limit: number) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.size += chunk.length;
    if (this.keptBytes < this.limit) {
      const room = this.limit - this.keptBytes;
      const part = chunk.length <= room ? chunk : chunk.subarray(0, room);
      // Copy: the chunk's memory may be a slice of a larger pooled buffer.
      this.kept.push(Buffer.from(part));
      this.keptBytes += part.length;
      if (part.length < chunk.length) this.truncated = true;
    } else if (chunk.length > 0) {
      this.truncated = true;
    }
    done(null, chunk);
  }

  /** The captured head of the body, for the record. */
  capture(): { data: Buffer; truncated: boolean; size: number } {
    return {
      data: Buffer.concat(this.kept, this.keptBytes),
      truncated: this.truncated,
      size: this.size,
    };
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
