import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ROOM_BYTES, Reclaimer, exposedCollector } from '../../../src/proxy/reclaim.js';

const MiB = 1024 * 1024;

/**
 * A collector and an external-memory reading the test moves by hand. As with V8, what a
 * collection frees shows in the reading only after more allocation (`grow`), not right after it.
 */
function fake(start = 100 * MiB, frees = true) {
  const state = { external: start, reads: 0, collections: [] as string[], pending: false };
  return {
    state,
    collect: (o: { type: 'minor' | 'major' }) => {
      state.collections.push(o.type);
      state.pending = frees;
    },
    read: () => {
      state.reads++;
      return state.external;
    },
    /** More body allocated: a pending collection's frees are accounted, then `by` is added. */
    grow(by: number) {
      if (state.pending) state.external = start;
      state.pending = false;
      state.external += by;
    },
  };
}

/** `mib` steps of one MiB of body, each growing external memory by one MiB first. */
function flow(f: ReturnType<typeof fake>, r: Reclaimer, mib: number): void {
  for (let i = 0; i < mib; i++) {
    f.grow(MiB);
    r.note(MiB);
  }
}

describe('Reclaimer', () => {
  it('looks at external memory once per step of body bytes, not per chunk', () => {
    const f = fake();
    const r = new Reclaimer(f.collect, f.read, MiB, 16 * MiB);
    const readsAtStart = f.state.reads;
    for (let i = 0; i < 63; i++) r.note(16 * 1024); // 1 MiB less one chunk
    expect(f.state.reads).toBe(readsAtStart);
    r.note(16 * 1024);
    expect(f.state.reads).toBe(readsAtStart + 1);
  });

  it('collects the young generation once external memory has grown by its room, then starts over', () => {
    const f = fake();
    const r = new Reclaimer(f.collect, f.read, MiB, 16 * MiB);
    flow(f, r, 15);
    expect(f.state.collections).toEqual([]);
    flow(f, r, 1); // 16 MiB over the level at start
    expect(f.state.collections).toEqual(['minor']);
    expect(r.collections).toBe(1);
    // The level read a step after the collection (its frees accounted) is the new floor:
    // another 16 MiB from there before the next one.
    flow(f, r, 16);
    expect(r.collections).toBe(1);
    flow(f, r, 1);
    expect(r.collections).toBe(2);
  });

  it('by default looks every MiB and collects once external memory is 8 MiB up', () => {
    expect(ROOM_BYTES).toBe(8 * MiB);
    const f = fake();
    const r = new Reclaimer(f.collect, f.read);
    flow(f, r, 7);
    expect(f.state.reads).toBe(8); // one at construction, one per MiB
    expect(r.collections).toBe(0);
    flow(f, r, 1);
    expect(r.collections).toBe(1);
  });

  it('after a collection that freed nothing, waits for another room of growth', () => {
    const f = fake(100 * MiB, false);
    const r = new Reclaimer(f.collect, f.read, MiB, 16 * MiB);
    flow(f, r, 16);
    expect(r.collections).toBe(1);
    flow(f, r, 15);
    expect(r.collections).toBe(1); // not one per step while the level stays up
    flow(f, r, 2);
    expect(r.collections).toBe(2);
  });

  it('follows external memory down when something else freed it', () => {
    const f = fake();
    const r = new Reclaimer(f.collect, f.read, MiB, 16 * MiB);
    f.state.external -= 50 * MiB; // a full collection of V8's own
    r.note(MiB);
    f.state.external += 20 * MiB; // 20 MiB over the new, lower floor
    r.note(MiB);
    expect(r.collections).toBe(1);
  });

  it('does nothing, and reads nothing, without a collector', () => {
    const f = fake();
    const r = new Reclaimer(null, f.read, MiB, 16 * MiB);
    flow(f, r, 100);
    expect(f.state.reads).toBe(0);
    expect(r.collections).toBe(0);
  });

  it('finds the collector only when node exposes one', () => {
    const had = (globalThis as { gc?: unknown }).gc;
    try {
      delete (globalThis as { gc?: unknown }).gc;
      expect(exposedCollector()).toBeNull();
      const gc = () => undefined;
      (globalThis as { gc?: unknown }).gc = gc;
      expect(exposedCollector()).toBe(gc);
    } finally {
      if (had === undefined) delete (globalThis as { gc?: unknown }).gc;
      else (globalThis as { gc?: unknown }).gc = had;
    }
  });

  /**
   * With V8's real collector, in a node started as the launcher starts the proxy: 256 MiB of
   * dead 16 KiB buffers (as Node's TLS layer hands a body over) pile up until V8 collects by
   * itself (a young collection or its 64 MB external-memory trigger: 40–64 MiB here) without
   * the reclaimer, and stay within a few of its rooms with it (a 4 MiB room here, so that the
   * two cases are far apart whatever else runs on the machine).
   */
  it("keeps dead body chunks well below V8's own trigger, with V8 collecting for real", async () => {
    const script = `
      const { Reclaimer, exposedCollector } = await import(${JSON.stringify(
        pathToFileURL(resolve('dist/proxy/reclaim.js')).href,
      )});
      const { getHeapStatistics } = await import('node:v8');
      const ext = () => getHeapStatistics().external_memory;
      const r = new Reclaimer(
        process.env.RECLAIM === 'on' ? exposedCollector() : null,
        undefined,
        256 * 1024,
        4 * 1048576,
      );
      const start = ext();
      let max = 0;
      for (let mib = 0; mib < 256; mib++) {
        for (let i = 0; i < 64; i++) {
          const chunk = Buffer.allocUnsafeSlow(16 * 1024);
          chunk[0] = i;
          r.note(chunk.length);
        }
        max = Math.max(max, ext() - start);
        await new Promise((resolve) => setImmediate(resolve));
      }
      console.log(JSON.stringify({ maxMiB: max / 1048576, collections: r.collections }));
    `;
    const run = async (mode: 'on' | 'off') => {
      const { stdout } = await promisify(execFile)(
        process.execPath,
        ['--max-semi-space-size=2', '--expose-gc', '--input-type=module', '-e', script],
        { timeout: 60_000, env: { ...process.env, RECLAIM: mode, NODE_OPTIONS: '' } },
      );
      return JSON.parse(stdout) as { maxMiB: number; collections: number };
    };
    const on = await run('on');
    const off = await run('off');
    expect(off.collections).toBe(0);
    expect(on.collections).toBeGreaterThan(10);
    expect(on.maxMiB).toBeLessThan(20);
    expect(off.maxMiB).toBeGreaterThan(2 * on.maxMiB);
  }, 90_000);
});
