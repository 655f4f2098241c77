import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  foldProfile,
  frameLabel,
  readProfile,
  renderFlameGraph,
  topSelf,
  type CpuProfile,
} from '../../../bench/lib/flame.js';

const frame = (functionName: string, url = '', lineNumber = -1) => ({
  functionName,
  url,
  lineNumber,
});

// (root) ─┬─ (idle)
//         ├─ handleExchange (dist/proxy) ─┬─ commit (dist/store)      node 5
//         │                               ├─ commit (the same frame)  node 7, merged with 5
//         │                               └─ setKey (node:)
//         └─ (garbage collector)
const PROFILE: CpuProfile = {
  nodes: [
    { id: 1, callFrame: frame('(root)'), children: [2, 3, 4] },
    { id: 2, callFrame: frame('(idle)') },
    {
      id: 3,
      callFrame: frame('handleExchange', 'file:///opt/trustrun/dist/proxy/exchange.js', 83),
      children: [5, 6, 7],
    },
    { id: 4, callFrame: frame('(garbage collector)') },
    { id: 5, callFrame: frame('commit', 'file:///opt/trustrun/dist/store/writer.js', 115) },
    { id: 6, callFrame: frame('setKey', 'node:internal/tls/secure-context', 88) },
    { id: 7, callFrame: frame('commit', 'file:///opt/trustrun/dist/store/writer.js', 115) },
  ],
  startTime: 1000,
  endTime: 1800,
  // Sample times: 1010, 1110, 1210, 1310, 1410, 1510, 1610, 1710; each stands for 100 µs.
  samples: [3, 5, 7, 2, 4, 6, 3, 5],
  timeDeltas: [10, 100, 100, 100, 100, 100, 100, 100],
};

describe('foldProfile', () => {
  it('adds up the busy samples into a call tree and counts idle apart', () => {
    const f = foldProfile(PROFILE, [{ fromUs: 0, toUs: 10_000 }]);
    expect(f.busyUs).toBe(700);
    expect(f.idleUs).toBe(100);
    expect(f.root.totalUs).toBe(700);
    const handle = f.root.children.get('handleExchange dist/proxy/exchange.js:84')!;
    expect(handle).toMatchObject({ kind: 'trustrun', totalUs: 600, selfUs: 200 });
    // two profile nodes with the same frame under the same caller are one frame
    expect(handle.children.get('commit dist/store/writer.js:116')).toMatchObject({
      totalUs: 300,
      selfUs: 300,
    });
    expect(handle.children.get('setKey node:internal/tls/secure-context:89')?.kind).toBe('node');
    expect(f.root.children.get('(garbage collector)')).toMatchObject({ kind: 'gc', totalUs: 100 });
    expect(f.root.children.has('(idle)')).toBe(false);
  });

  it('keeps only the samples inside the windows', () => {
    const one = foldProfile(PROFILE, [{ fromUs: 1100, toUs: 1300 }]);
    expect(one.busyUs).toBe(200);
    expect(one.root.children.size).toBe(1);
    const two = foldProfile(PROFILE, [
      { fromUs: 1000, toUs: 1050 },
      { fromUs: 1500, toUs: 1620 },
    ]);
    expect(two.busyUs).toBe(300);
    expect(two.root.children.get('handleExchange dist/proxy/exchange.js:84')!.selfUs).toBe(200);
    expect(foldProfile(PROFILE, [{ fromUs: 5000, toUs: 6000 }]).busyUs).toBe(0);
  });

  it('ranks frames by self time summed over every place they occur', () => {
    const top = topSelf(foldProfile(PROFILE, [{ fromUs: 0, toUs: 10_000 }]), 2);
    expect(top).toEqual([
      { name: 'commit dist/store/writer.js:116', us: 300 },
      { name: 'handleExchange dist/proxy/exchange.js:84', us: 200 },
    ]);
  });
});

describe('frameLabel', () => {
  it('shortens the file to what tells it apart', () => {
    expect(frameLabel(frame('run', 'file:///w/node_modules/undici/lib/core/request.js', 9))).toBe(
      'run undici/lib/core/request.js:10',
    );
    expect(frameLabel(frame('', 'file:///w/dist/ca/minter.js', 0))).toBe(
      '(anonymous) dist/ca/minter.js:1',
    );
    expect(frameLabel(frame('writev'))).toBe('writev');
  });

  it("counts the proxy's own gc() calls as garbage collection", () => {
    const p: CpuProfile = structuredClone(PROFILE);
    p.nodes[5]!.callFrame = frame('gc');
    const f = foldProfile(p, [{ fromUs: 0, toUs: 10_000 }]);
    const handle = f.root.children.get('handleExchange dist/proxy/exchange.js:84')!;
    expect(handle.children.get('gc')?.kind).toBe('gc');
    expect(handle.children.get('commit dist/store/writer.js:116')?.kind).toBe('trustrun');
  });
});

describe('renderFlameGraph', () => {
  it('draws each frame as wide as its time, with its time in the tooltip', () => {
    const f = foldProfile(PROFILE, [{ fromUs: 0, toUs: 10_000 }]);
    const svg = renderFlameGraph(f, { title: 'a <test> & more', subtitle: ['line'], width: 720 });
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('a &lt;test&gt; &amp; more');
    const rects = [...svg.matchAll(/<g><title>([^<]*)<\/title><rect [^>]*width="([\d.]+)"/g)];
    // all, handleExchange, commit, setKey, (garbage collector)
    expect(rects).toHaveLength(5);
    const width = (prefix: string) => Number(rects.find((r) => r[1]!.startsWith(prefix))![2]);
    expect(width('handleExchange') / width('all')).toBeCloseTo(6 / 7, 3);
    expect(width('commit') / width('all')).toBeCloseTo(3 / 7, 3);
    expect(svg).toContain('commit dist/store/writer.js:116: 0.3 ms, 42.9 % (self 0.3 ms, 42.9 %)');
  });

  it('escapes names that are not XML', () => {
    const p: CpuProfile = structuredClone(PROFILE);
    p.nodes[2]!.callFrame.functionName = '<lambda>&"';
    const svg = renderFlameGraph(foldProfile(p, [{ fromUs: 0, toUs: 10_000 }]), {
      title: 't',
      subtitle: [],
    });
    expect(svg).toContain('&lt;lambda&gt;&amp;&quot;');
    expect(svg).not.toContain('<lambda>');
  });
});

describe('readProfile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'trustrun-flame-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads a profile and names the file when it is not one', () => {
    const good = join(dir, 'good.cpuprofile');
    writeFileSync(good, JSON.stringify(PROFILE));
    expect(readProfile(good).samples).toHaveLength(8);
    const broken = join(dir, 'broken.cpuprofile');
    writeFileSync(broken, '{"nodes": [');
    expect(() => readProfile(broken)).toThrow(/broken\.cpuprofile: not a JSON CPU profile/);
    const other = join(dir, 'other.cpuprofile');
    writeFileSync(other, JSON.stringify({ nodes: [], samples: [1], timeDeltas: [] }));
    expect(() => readProfile(other)).toThrow(/other\.cpuprofile: not a V8 CPU profile/);
  });
});
