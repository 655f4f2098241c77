import { describe, expect, it } from 'vitest';
import { NameResolver, isLocalAddress, orgFor } from '../../../src/monitor/index.js';

describe('organisation table', () => {
  it('maps the earlier tool’s ranges (R1)', () => {
    expect(orgFor('13.80.0.1')).toBe('Microsoft Azure');
    expect(orgFor('3.5.1.1')).toBe('Amazon AWS');
    expect(orgFor('34.100.0.1')).toBe('Google Cloud');
    expect(orgFor('104.16.0.1')).toBe('Cloudflare');
    expect(orgFor('17.253.144.10')).toBe('Apple Inc.');
    expect(orgFor('20.33.1.1')).toBe('GitHub/Microsoft');
    expect(orgFor('::ffff:17.1.2.3')).toBe('Apple Inc.');
  });

  it('has no org for other addresses (R2) and range edges are exact', () => {
    expect(orgFor('198.51.100.1')).toBeNull();
    expect(orgFor('13.63.255.255')).toBeNull();
    expect(orgFor('13.64.0.0')).toBe('Microsoft Azure');
    expect(orgFor('13.95.255.255')).toBe('Microsoft Azure');
    expect(orgFor('13.96.0.0')).toBeNull();
    expect(orgFor('2001:db8::1')).toBeNull();
  });

  it('falls back to host-name suffixes, case-insensitive, apex included (R5)', () => {
    expect(orgFor('198.51.100.1', 'ec2-3-5-1-1.us-east-2.compute.amazonaws.com')).toBe(
      'Amazon AWS',
    );
    expect(orgFor('198.51.100.1', 'server-1-2.cloudfront.net')).toBe('Amazon AWS');
    expect(orgFor('198.51.100.1', 'myapp.eastus.AZURE.com')).toBe('Microsoft Azure');
    expect(orgFor('198.51.100.1', 'openai.com')).toBe('OpenAI');
    expect(orgFor('198.51.100.1', 'notopenai.com')).toBeNull();
    // The range wins over the name.
    expect(orgFor('17.0.0.1', 'x.openai.com')).toBe('Apple Inc.');
  });

  it('knows which addresses are never looked up', () => {
    for (const a of ['127.0.0.1', '127.9.9.9', '::1', '::ffff:127.0.0.1', 'fe80::1', '169.254.1.1'])
      expect(isLocalAddress(a)).toBe(true);
    for (const a of ['10.0.0.1', '8.8.8.8', '2001:db8::1']) expect(isLocalAddress(a)).toBe(false);
  });
});

function fakeDns(ptr: Record<string, string[]>, a: Record<string, string[]>, delayMs = 0) {
  const calls = { reverse: 0, lookup: 0 };
  const later = <T>(v: T) => new Promise<T>((r) => setTimeout(() => r(v), delayMs));
  return {
    calls,
    dns: {
      reverse: async (ip: string) => {
        calls.reverse++;
        if (!ptr[ip]) throw Object.assign(new Error('ENOTFOUND'), { code: 'ENOTFOUND' });
        return later(ptr[ip]!);
      },
      lookup: async (name: string) => {
        calls.lookup++;
        return later(a[name] ?? []);
      },
    },
  };
}

describe('reverse DNS', () => {
  it('uses a PTR name only when it resolves back to the address', async () => {
    const f = fakeDns(
      { '203.0.113.5': ['api.example.org.'], '203.0.113.6': ['myorg.openai.azure.com'] },
      { 'api.example.org': ['203.0.113.5'], 'myorg.openai.azure.com': ['198.51.100.77'] },
    );
    const r = new NameResolver(f.dns, 200);
    expect(await r.resolve('203.0.113.5')).toBe('api.example.org');
    // A spoofed PTR (the name belongs to someone else) is not believed.
    expect(await r.resolve('203.0.113.6')).toBeNull();
    expect(await r.resolve('203.0.113.9')).toBeNull();
  });

  it('looks each address up once (R10)', async () => {
    const f = fakeDns({ '203.0.113.5': ['a.example.org'] }, { 'a.example.org': ['203.0.113.5'] });
    const r = new NameResolver(f.dns, 200);
    const both = await Promise.all([r.resolve('203.0.113.5'), r.resolve('203.0.113.5')]);
    await r.resolve('203.0.113.5');
    expect(both).toEqual(['a.example.org', 'a.example.org']);
    expect(f.calls.reverse).toBe(1);
  });

  it('gives up after the timeout instead of waiting', async () => {
    const f = fakeDns({ '203.0.113.5': ['slow.example.org'] }, {}, 5_000);
    const r = new NameResolver(f.dns, 50);
    const t0 = Date.now();
    expect(await r.resolve('203.0.113.5')).toBeNull();
    expect(Date.now() - t0).toBeLessThan(1_000);
  });
});
