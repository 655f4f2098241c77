import { getHeapStatistics } from 'node:v8';

/** V8's `gc` function, present when node runs with --expose-gc (the launcher's flags). */
export type Collect = (options: { type: 'minor' | 'major' }) => void;

/** Body bytes relayed between two looks at external memory. */
const STEP_BYTES = 1024 * 1024;
/**
 * External memory allowed to grow past its level after the last collection before the next.
 * 8 MiB rather than 16: 8 MB less peak RSS at the full level with 1 MiB bodies for no CPU cost
 * that stands out from the noise (docs/benchmarks.md, seventh pass).
 */
export const ROOM_BYTES = 8 * 1024 * 1024;

/**
 * Gives back the memory of relayed body chunks sooner than V8 would by itself.
 *
 * Node hands a body over in buffers of at most 16 KiB (one per TLS record read), allocated
 * outside V8's heap; each is dead once relayed, captured and written. With little JavaScript
 * allocated per byte, the young generation fills slowly, so V8 frees them mostly when external
 * memory has grown by 64 MB since its last full collection, and glibc keeps that much heap
 * mapped afterwards. Every `STEP_BYTES` of body this reads V8's external-memory figure (about
 * 1 µs) and, once it is `ROOM_BYTES` above its level after the last collection, runs a
 * young-generation collection (2–4 ms each under the benchmark's load), which frees the dead
 * chunks. docs/benchmarks.md has the measurements (peak RSS at the full level, CPU).
 *
 * V8 accounts the memory a collection freed only later (at a following allocation), so the
 * level after a collection is the one read at the next step, not right after it.
 *
 * Without a collector (node started without --expose-gc, e.g. the proxy run in-process by a
 * library or a test), `note` does nothing.
 */
export class Reclaimer {
  /** Collections run so far. */
  collections = 0;
  private flowed = 0;
  private floor: number;

  constructor(
    private readonly collect: Collect | null,
    private readonly external: () => number = externalMemory,
    private readonly stepBytes = STEP_BYTES,
    private readonly roomBytes = ROOM_BYTES,
  ) {
    this.floor = collect === null ? 0 : external();
  }

  /** `bytes` of a body were relayed. */
  readonly note = (bytes: number): void => {
    if (this.collect === null) return;
    this.flowed += bytes;
    if (this.flowed < this.stepBytes) return;
    this.flowed = 0;
    const now = this.external();
    if (now < this.floor + this.roomBytes) {
      if (now < this.floor) this.floor = now;
      return;
    }
    this.collect({ type: 'minor' });
    this.collections++;
    this.floor = Number.POSITIVE_INFINITY; // the next reading is the level after it
  };
}

function externalMemory(): number {
  return (getHeapStatistics() as { external_memory: number }).external_memory;
}

/** The collector node exposes with --expose-gc, or null. */
export function exposedCollector(): Collect | null {
  const gc = (globalThis as { gc?: unknown }).gc;
  return typeof gc === 'function' ? (gc as Collect) : null;
}
