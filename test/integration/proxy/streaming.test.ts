import { afterEach, describe, expect, it } from 'vitest';
import type { ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { ProxyAgent, request } from 'undici';
import { parseResolveRule } from '../../../src/proxy/index.js';
import { startProxy } from '../../helpers/harness.js';
import { makeLeaf, makeTestCa } from '../../helpers/pki.js';
import { startUpstream } from '../../helpers/upstream.js';

const MiB = 1024 * 1024;
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

/** A stream of `total` bytes made of a repeating pattern, produced lazily. */
function pattern(total: number): Readable {
  const chunk = Buffer.alloc(64 * 1024, 'abcdefghijklmnopqrstuvwxyz');
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= total) return void this.push(null);
      const n = Math.min(chunk.length, total - sent);
      sent += n;
      this.push(n === chunk.length ? chunk : chunk.subarray(0, n));
    },
  });
}

/** Upstream options: answer every request with `total` bytes of the pattern. */
function servesPattern(total: number) {
  return {
    keepBody: false,
    handler: (_req: unknown, res: ServerResponse) => {
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'content-length': String(total),
      });
      pattern(total).pipe(res);
    },
  };
}

/**
 * An upstream serving `host` (with `handler`, or the helper's echo) behind a proxy started with
 * `proxy`, and a client agent for it; all closed after the test.
 */
async function proxied(
  host: string,
  proxy: Omit<Parameters<typeof startProxy>[0], 'upstreamCa' | 'resolve'>,
  upstreamOpts: Omit<NonNullable<Parameters<typeof startUpstream>[0]>, 'leaf'> = {},
) {
  const ca = await makeTestCa();
  const upstream = await startUpstream({ leaf: await makeLeaf(ca, [host]), ...upstreamOpts });
  const h = await startProxy({
    ...proxy,
    upstreamCa: [ca.certPem],
    resolve: [parseResolveRule(`${host}:443:127.0.0.1:${upstream.port}`)],
  });
  const agent = new ProxyAgent({ uri: h.url, requestTls: { ca: h.proxyCa.certPem } });
  closers.push(
    () => upstream.close(),
    () => h.close(),
    () => agent.close(),
  );
  return { upstream, h, agent };
}

/** POSTs `size` bytes of the pattern through `agent`; returns the status and bytes received. */
async function upload(agent: ProxyAgent, url: string, size: number) {
  const r = await request(url, {
    dispatcher: agent,
    method: 'POST',
    body: pattern(size),
    headers: { 'content-length': String(size) },
  });
  let received = 0;
  for await (const c of r.body) received += (c as Buffer).length;
  return { status: r.statusCode, received };
}

describe('full level streaming', () => {
  it('streams 200 MiB each way with bounded memory and records the truncated head', async () => {
    const size = 200 * MiB;
    const { upstream, h, agent } = await proxied(
      'big.example.test',
      { level: 'full', maxBody: MiB },
      servesPattern(size),
    );

    global.gc?.();
    const before = process.memoryUsage().rss;
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    try {
      const r = await upload(agent, 'https://big.example.test/upload', size);
      expect(r.status).toBe(200);
      expect(r.received).toBe(size);
    } finally {
      clearInterval(sampler);
    }
    expect(upstream.requests[0]!.bodyBytes).toBe(size);
    // Client, upstream and proxy share this process: all of them together stay bounded.
    expect(peak - before).toBeLessThan(150 * MiB);

    await h.recorder.until(() => h.recorder.requests[0]?.outcome !== undefined);
    const rec = h.recorder.requests[0]!;
    expect(rec.outcome).toBe('ok');
    expect(rec.requestSize).toBe(size);
    expect(rec.responseSize).toBe(size);
    for (const body of [rec.requestBody!, rec.responseBody!]) {
      expect(body.truncated).toBe(true);
      expect(body.size).toBe(size);
      expect(body.data.length).toBe(MiB);
      expect(body.data.subarray(0, 26).toString()).toBe('abcdefghijklmnopqrstuvwxyz');
    }
  }, 120_000);

  it.each(['headers', 'full'] as const)(
    'tells the reclaimer of every body byte it relays, both ways (%s level)',
    async (level) => {
      const up = 300 * 1024 + 7;
      const down = MiB + 5;
      let relayed = 0;
      let calls = 0;
      const relayedTo = (bytes: number) => {
        relayed += bytes;
        calls++;
      };
      const { upstream, agent } = await proxied(
        'count.example.test',
        { level, relayed: relayedTo },
        servesPattern(down),
      );
      const r = await upload(agent, 'https://count.example.test/up', up);
      expect(r.status).toBe(200);
      expect(r.received).toBe(down);
      expect(upstream.requests[0]!.bodyBytes).toBe(up);
      expect(relayed).toBe(up + down);
      expect(calls).toBeGreaterThan(2); // chunk by chunk, not once per body
    },
  );

  it('keeps a body below the cap whole and unmarked', async () => {
    const { upstream, h, agent } = await proxied('small.example.test', {
      level: 'full',
      maxBody: 1000,
    });
    const r = await request('https://small.example.test/x', {
      dispatcher: agent,
      method: 'PUT',
      body: 'x'.repeat(1000),
    });
    await r.body.text();
    const r2 = await request('https://small.example.test/y', {
      dispatcher: agent,
      method: 'PUT',
      body: 'y'.repeat(1001),
    });
    await r2.body.text();
    await h.recorder.until(
      () => h.recorder.requests.length === 2 && h.recorder.requests.every((x) => x.outcome),
    );
    const [a, b] = h.recorder.requests;
    expect(a!.requestBody).toMatchObject({ truncated: false, size: 1000 });
    expect(a!.requestBody!.data.length).toBe(1000);
    expect(b!.requestBody).toMatchObject({ truncated: true, size: 1001 });
    expect(b!.requestBody!.data.length).toBe(1000);
    expect(upstream.requests[1]!.bodyBytes).toBe(1001);
  });
});
