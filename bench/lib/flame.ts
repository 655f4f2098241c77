/**
 * Flame graphs from V8 CPU profiles (`node --cpu-prof`), cut to the windows in which a cell was
 * measured: which code the proxy's event loop ran, and for how long, while under that load.
 *
 * A profile is a call tree (`nodes`) and a list of samples, each the id of the node running at
 * that moment, with the microseconds since the sample before (`timeDeltas`). A sample stands for
 * the time until the next one. Its timestamp is on the monotonic clock that
 * `process.hrtime.bigint()` reads, so windows taken by the suite's process cut the proxy's
 * profile directly. `(idle)` samples (the loop waiting in epoll) are counted apart and left out
 * of the graph: its width is the loop's busy time.
 */
import { readFileSync } from 'node:fs';
import { esc } from './svg.js';

export interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber?: number;
}

export interface CpuProfile {
  nodes: { id: number; callFrame: CallFrame; children?: number[] }[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Where a frame's code comes from (its colour in the graph). */
export type FrameKind = 'trustrun' | 'library' | 'node' | 'native' | 'gc';

export interface Frame {
  name: string;
  kind: FrameKind;
  /** Time in this frame and the frames it called, µs. */
  totalUs: number;
  /** Time in this frame itself, µs. */
  selfUs: number;
  children: Map<string, Frame>;
}

export interface Window {
  fromUs: number;
  toUs: number;
}

export interface Folded {
  root: Frame;
  /** Time the thread ran code in the windows, µs (the root's width). */
  busyUs: number;
  /** Time the thread waited for events in the windows, µs. */
  idleUs: number;
}

/** Reads and checks a `.cpuprofile` file; the error names the file and what is wrong. */
export function readProfile(file: string): CpuProfile {
  let p: unknown;
  try {
    p = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: not a JSON CPU profile (${(err as Error).message})`);
  }
  const q = p as Partial<CpuProfile>;
  if (
    !Array.isArray(q.nodes) ||
    !Array.isArray(q.samples) ||
    !Array.isArray(q.timeDeltas) ||
    typeof q.startTime !== 'number' ||
    q.samples.length !== q.timeDeltas.length
  ) {
    throw new Error(`${file}: not a V8 CPU profile (nodes, samples, timeDeltas, startTime)`);
  }
  return q as CpuProfile;
}

/** Monotonic time in µs, on the clock CPU profiles use. */
export function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

function kindOf(f: CallFrame): FrameKind {
  // V8's own collections, and `gc()` called by the proxy (its Reclaimer, node --expose-gc).
  if (f.functionName === '(garbage collector)' || (f.functionName === 'gc' && !f.url)) return 'gc';
  if (f.url.startsWith('node:')) return 'node';
  if (f.url.includes('/node_modules/') || f.url.startsWith('wasm://')) return 'library';
  if (f.url.includes('/dist/')) return 'trustrun';
  return 'native';
}

/** `name file:line`, the file shortened to what tells it apart. */
export function frameLabel(f: CallFrame): string {
  const name = f.functionName || '(anonymous)';
  if (!f.url) return name;
  let file = f.url.replace(/^file:\/\//, '');
  const nm = file.lastIndexOf('/node_modules/');
  if (nm !== -1) file = file.slice(nm + '/node_modules/'.length);
  else if (file.includes('/dist/')) file = file.slice(file.lastIndexOf('/dist/') + 1);
  return `${name} ${file}:${f.lineNumber + 1}`;
}

function newFrame(name: string, kind: FrameKind): Frame {
  return { name, kind, totalUs: 0, selfUs: 0, children: new Map() };
}

/**
 * Adds up the samples that fall inside any of `windows` into one call tree. Nodes of the
 * profile with the same label under the same parent are merged.
 */
export function foldProfile(p: CpuProfile, windows: Window[]): Folded {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const root = newFrame('all', 'native');
  const stacks = new Map<number, CallFrame[]>();
  const stackOf = (id: number): CallFrame[] => {
    let s = stacks.get(id);
    if (s) return s;
    s = [];
    for (let c: number | undefined = id; c !== undefined; c = parent.get(c)) {
      const n = byId.get(c);
      if (n && n.callFrame.functionName !== '(root)') s.push(n.callFrame);
    }
    s.reverse();
    stacks.set(id, s);
    return s;
  };
  const inside = (t: number) => windows.some((w) => t >= w.fromUs && t < w.toUs);
  let busyUs = 0;
  let idleUs = 0;
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    // A sample stands for the time until the next one (the last: as long as the one before).
    const d = p.timeDeltas[i + 1] ?? p.timeDeltas[i] ?? 0;
    if (d <= 0 || !inside(t)) continue;
    const stack = stackOf(p.samples[i] as number);
    if (stack.length === 1 && stack[0]!.functionName === '(idle)') {
      idleUs += d;
      continue;
    }
    busyUs += d;
    let f = root;
    f.totalUs += d;
    for (const cf of stack) {
      const label = frameLabel(cf);
      let child = f.children.get(label);
      if (!child) {
        child = newFrame(label, kindOf(cf));
        f.children.set(label, child);
      }
      child.totalUs += d;
      f = child;
    }
    f.selfUs += d;
  }
  return { root, busyUs, idleUs };
}

/** The frames with the most self time, summed over every place they occur. */
export function topSelf(folded: Folded, n: number): { name: string; us: number }[] {
  const self = new Map<string, number>();
  const walk = (f: Frame) => {
    if (f.selfUs > 0) self.set(f.name, (self.get(f.name) ?? 0) + f.selfUs);
    for (const c of f.children.values()) walk(c);
  };
  walk(folded.root);
  return [...self]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([name, us]) => ({ name, us }));
}

const HUES: Record<FrameKind, [number, number]> = {
  trustrun: [20, 38], // orange: the proxy's own code
  library: [95, 140], // green: undici, better-sqlite3, libsodium, WebAssembly
  node: [195, 225], // blue: Node's JavaScript
  native: [265, 290], // violet: native code without a script (TLS, writes, V8)
  gc: [0, 8], // red: the garbage collector
};

function colour(f: Frame): string {
  let h = 0;
  for (let i = 0; i < f.name.length; i++) h = (h * 31 + f.name.charCodeAt(i)) >>> 0;
  const [lo, hi] = HUES[f.kind];
  return `hsl(${lo + (h % (hi - lo + 1))},70%,${62 + (h % 13)}%)`;
}

export interface FlameOptions {
  title: string;
  /** Lines under the title (what was measured, how). */
  subtitle: string[];
  width?: number;
}

/**
 * An SVG flame graph: the root at the bottom, each frame as wide as its total time, its callers
 * below it; siblings ordered by width, widest first. Frames narrower than a fifth of a pixel are
 * left out. Hovering a frame shows its name, time and share.
 */
export function renderFlameGraph(folded: Folded, opts: FlameOptions): string {
  const width = opts.width ?? 1200;
  const rowH = 16;
  const pad = 10;
  const head = 24 + 16 * opts.subtitle.length + 26;
  const total = folded.root.totalUs;
  const scale = total > 0 ? (width - 2 * pad) / total : 0;
  let depth = 0;
  const rects: { f: Frame; x: number; w: number; level: number }[] = [];
  const place = (f: Frame, x: number, level: number) => {
    const w = f.totalUs * scale;
    if (w < 0.2) return;
    rects.push({ f, x, w, level });
    depth = Math.max(depth, level);
    let cx = x;
    for (const c of [...f.children.values()].sort((a, b) => b.totalUs - a.totalUs)) {
      place(c, cx, level + 1);
      cx += c.totalUs * scale;
    }
  };
  place(folded.root, pad, 0);
  const height = head + (depth + 1) * rowH + pad;
  const ms = (us: number) => (us / 1000).toFixed(1);
  const pct = (us: number) => (total > 0 ? ((100 * us) / total).toFixed(1) : '0.0');
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="monospace" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="#fdfdfd"/>`,
    `<text x="${pad}" y="20" font-size="15" font-family="sans-serif">${esc(opts.title)}</text>`,
  ];
  opts.subtitle.forEach((line, i) =>
    out.push(
      `<text x="${pad}" y="${38 + 16 * i}" font-family="sans-serif" fill="#444">${esc(line)}</text>`,
    ),
  );
  const legendY = 38 + 16 * opts.subtitle.length + 4;
  let lx = pad;
  for (const [kind, text] of [
    ['trustrun', 'TrustRun'],
    ['library', 'libraries (undici, SQLite, libsodium, wasm)'],
    ['node', 'Node.js'],
    ['native', 'native (TLS, writes, V8)'],
    ['gc', 'garbage collector'],
  ] as const) {
    out.push(
      `<rect x="${lx}" y="${legendY - 9}" width="10" height="10" fill="hsl(${HUES[kind][0]},70%,65%)"/>`,
      `<text x="${lx + 14}" y="${legendY}" font-family="sans-serif" fill="#444">${esc(text)}</text>`,
    );
    lx += 22 + text.length * 6.2;
  }
  const base = head + depth * rowH;
  for (const { f, x, w, level } of rects) {
    const y = base - level * rowH;
    const label = f === folded.root ? `all (${ms(total)} ms busy)` : f.name;
    const tip = `${label}: ${ms(f.totalUs)} ms, ${pct(f.totalUs)} % (self ${ms(f.selfUs)} ms, ${pct(f.selfUs)} %)`;
    out.push(
      `<g><title>${esc(tip)}</title><rect x="${x.toFixed(2)}" y="${y}" width="${w.toFixed(2)}" height="${rowH - 1}" fill="${f === folded.root ? '#ddd' : colour(f)}"/>`,
    );
    const chars = Math.floor((w - 4) / 6.6);
    if (chars >= 3) {
      const text = label.length > chars ? `${label.slice(0, chars - 1)}…` : label;
      out.push(`<text x="${(x + 2).toFixed(2)}" y="${y + 11}">${esc(text)}</text>`);
    }
    out.push('</g>');
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
