import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { redactUrl } from '../../../src/store/index.js';
import {
  destinationPattern,
  learnPolicy,
  parsePolicy,
  type ObservedDestination,
} from '../../../src/policy/index.js';

const quiet = { warn: (msg: string) => expect.fail(`unexpected warning: ${msg}`) };

/** Loads the learned YAML as `trustrun` would and checks what it decides for each destination. */
async function decisions(yaml: string, observed: readonly ObservedDestination[]) {
  const policy = await parsePolicy(yaml, 'learned.yaml', quiet);
  expect(policy.format).toBe('v2');
  return observed.map((d) => {
    const host = d.host || d.ip || '';
    return policy.evaluate({ host, port: d.port ?? 443, ip: d.ip ?? null });
  });
}

describe('destination patterns (M1–M6)', () => {
  it.each([
    ['M1', 'api.openai.com', null, '*.openai.com'],
    ['M2', 'us-east.api.openai.com', null, '*.openai.com'],
    ['M3', 'example.com', null, 'example.com'],
    ['M4', null, '10.0.1.50', '10.0.1.50'],
    ['M5', null, '::1', '::1'],
    ['M6', 'api.service.io', '1.2.3.4', '*.service.io'],
  ])('%s: %s / %s → %s', (_id, host, ip, pattern) => {
    expect(destinationPattern(host, ip)).toBe(pattern);
  });

  it('is public-suffix aware (the fix of `*.co.uk`)', () => {
    expect(destinationPattern('foo.bar.co.uk')).toBe('*.bar.co.uk');
    expect(destinationPattern('bar.co.uk')).toBe('bar.co.uk');
    expect(destinationPattern('a.b.c.example.com.au')).toBe('*.example.com.au');
  });

  it('does not widen one tenant of a shared platform to all of them (private suffixes)', () => {
    expect(destinationPattern('mybucket.s3.amazonaws.com')).toBe('mybucket.s3.amazonaws.com');
    expect(destinationPattern('x.y.mybucket.s3.amazonaws.com')).toBe('*.mybucket.s3.amazonaws.com');
    expect(destinationPattern('octo.github.io')).toBe('octo.github.io');
  });

  it('normalises case, a trailing dot, brackets and address forms', () => {
    expect(destinationPattern('API.OpenAI.com.')).toBe('*.openai.com');
    expect(destinationPattern('[2001:DB8::1]')).toBe('2001:db8::1');
    expect(destinationPattern('10.0.0.5')).toBe('10.0.0.5');
    expect(destinationPattern('127.1')).toBe('127.0.0.1');
    expect(destinationPattern('::ffff:10.1.2.3')).toBe('10.1.2.3');
  });

  it('keeps single labels, public suffixes and --exact names as they are', () => {
    expect(destinationPattern('localhost')).toBe('localhost');
    expect(destinationPattern('co.uk')).toBe('co.uk');
    expect(destinationPattern('api.openai.com', null, { exact: true })).toBe('api.openai.com');
  });

  it('gives no pattern without a usable host or address', () => {
    expect(destinationPattern(null, null)).toBeNull();
    expect(destinationPattern('', 'not-an-ip')).toBeNull();
    expect(destinationPattern('bad host!.com')).toBeNull();
  });
});

describe('learnPolicy', () => {
  it('the learner example, fixed: one rule per pattern, ports kept, version 2, defaults block', async () => {
    const observed: ObservedDestination[] = [
      { host: 'api.openai.com', port: 443, count: 3 },
      { host: 'chat.openai.com', port: 443, count: 1 },
      { ip: '9.9.9.9', port: 53, count: 1 },
    ];
    const learned = learnPolicy(observed, { name: 'my-app' });
    expect(learned.rules.map((r) => [r.match, r.ports, r.count])).toEqual([
      ['*.openai.com', [443], 4],
      ['9.9.9.9', [53], 1],
    ]);
    expect(learned.rules[0]!.reason).toBe(
      'Learned: seen 4 time(s) (api.openai.com, chat.openai.com)',
    );
    expect(learned.rules[1]!.reason).toBe('Learned: seen 1 time(s)');
    expect(learned.yaml).toBe(
      [
        'version: 2',
        'name: my-app',
        'description: Auto-learned policy with 2 allowed endpoints',
        'rules:',
        '  - match: "*.openai.com"',
        '    action: allow',
        '    ports: [ 443 ]',
        '    reason: "Learned: seen 4 time(s) (api.openai.com, chat.openai.com)"',
        '  - match: 9.9.9.9',
        '    action: allow',
        '    ports: [ 53 ]',
        '    reason: "Learned: seen 1 time(s)"',
        'defaults:',
        '  action: block',
        '',
      ].join('\n'),
    );
    const [openai, chat, dns] = await decisions(learned.yaml, observed);
    expect([openai?.action, chat?.action, dns?.action]).toEqual(['allow', 'allow', 'allow']);
    const policy = await parsePolicy(learned.yaml, 'learned.yaml', quiet);
    expect(policy.name).toBe('my-app');
    expect(policy.defaultAction).toBe('block');
    expect(policy.evaluate({ host: 'evil.example', port: 443 }).action).toBe('block');
    expect(policy.evaluate({ host: 'api.openai.com', port: 8443 }).action).toBe('block');
    expect(policy.evaluate({ host: 'openai.com', port: 443 }).action).toBe('block');
  });

  it('writes apex and subdomains as two rules, and merges ports of one pattern', async () => {
    const observed: ObservedDestination[] = [
      { host: 'example.com', port: 443 },
      { host: 'www.example.com', port: 80 },
      { host: 'api.example.com', port: 443 },
      { host: 'api.example.com', port: 8443 },
    ];
    const learned = learnPolicy(observed);
    expect(learned.rules.map((r) => [r.match, r.ports])).toEqual([
      ['*.example.com', [80, 443, 8443]],
      ['example.com', [443]],
    ]);
    expect((await decisions(learned.yaml, observed)).map((v) => v.action)).toEqual([
      'allow',
      'allow',
      'allow',
      'allow',
    ]);
  });

  it('orders by count, ties by first sight; an unknown port means any port', () => {
    const learned = learnPolicy([
      { host: 'b.com', port: 443 },
      { host: 'a.com', port: 443 },
      { host: 'c.com', port: 443, count: 5 },
      { host: 'c.com' },
    ]);
    expect(learned.rules.map((r) => [r.match, r.ports, r.count])).toEqual([
      ['c.com', [], 6],
      ['b.com', [443], 1],
      ['a.com', [443], 1],
    ]);
    expect(parse(learned.yaml).rules[0]).toEqual({
      match: 'c.com',
      action: 'allow',
      reason: 'Learned: seen 6 time(s)',
    });
  });

  it('takes a name, description, default action, exact mode and a comment', async () => {
    const learned = learnPolicy([{ host: 'api.openai.com', port: 443 }], {
      name: 'train',
      description: 'from CI',
      defaultAction: 'kill',
      exact: true,
      comment: 'Learned from session abc',
    });
    expect(learned.yaml.startsWith('# Learned from session abc\n')).toBe(true);
    const doc = parse(learned.yaml);
    expect(doc).toMatchObject({
      version: 2,
      name: 'train',
      description: 'from CI',
      rules: [{ match: 'api.openai.com', action: 'allow', ports: [443] }],
      defaults: { action: 'kill' },
    });
  });

  it('reports observations it cannot turn into a rule', () => {
    const learned = learnPolicy([{ port: 443 }, { host: 'ok.example.org', port: 443 }]);
    expect(learned.rules).toHaveLength(1);
    expect(learned.skipped).toEqual([
      { destination: { port: 443 }, reason: 'no host name or address' },
    ]);
  });

  it('an empty observation list gives a policy with no rules that blocks everything', async () => {
    const learned = learnPolicy([]);
    const policy = await parsePolicy(learned.yaml, 'learned.yaml', quiet);
    expect(policy.rules).toEqual([]);
    expect(policy.evaluate({ host: 'x.org', port: 443 }).action).toBe('block');
  });

  it('property: the learned policy loads and allows every observed destination', async () => {
    const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?$/);
    const suffix = fc.constantFrom(
      'com',
      'org',
      'co.uk',
      'io',
      'com.au',
      's3.amazonaws.com',
      'internal',
    );
    const hostName = fc
      .tuple(fc.array(label, { minLength: 1, maxLength: 3 }), suffix)
      .map(([labels, s]) => `${labels.join('.')}.${s}`);
    const ipv4 = fc.ipV4();
    const ipv6 = fc.ipV6();
    const destination: fc.Arbitrary<ObservedDestination> = fc.oneof(
      fc.record({ host: hostName, port: fc.integer({ min: 1, max: 65535 }), count: fc.nat(20) }),
      fc.record({ ip: fc.oneof(ipv4, ipv6), port: fc.integer({ min: 1, max: 65535 }) }),
      fc.record({ host: ipv4, port: fc.integer({ min: 1, max: 65535 }) }),
      fc.record({ host: hostName, ip: ipv4, port: fc.integer({ min: 1, max: 65535 }) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(destination, { minLength: 1, maxLength: 12 }), async (observed) => {
        const learned = learnPolicy(observed);
        expect(learned.skipped).toEqual([]);
        const patterns = learned.rules.map((r) => r.match);
        expect(new Set(patterns).size).toBe(patterns.length); // one rule per pattern
        for (const v of await decisions(learned.yaml, observed)) {
          expect(v.action, v.explanation).toBe('allow');
          expect(v.violation).toBe(false);
        }
      }),
      { numRuns: 150 },
    );
  });
});

describe('learnPolicy: refused requests', () => {
  it('keeps a refused request as a block rule on its path as the policy reads it, taken literally', async () => {
    const learned = learnPolicy([{ host: 'f.test', port: 443 }], {
      refused: [{ host: 'f.test', port: 443, method: 'post', path: '/%41dmin//x*y]' }],
    });
    expect(learned.refusals).toEqual([
      expect.objectContaining({
        match: 'f.test',
        port: 443,
        method: 'POST',
        path: '/Admin//x[*]y[]]',
      }),
    ]);
    const policy = await parsePolicy(learned.yaml, 'learned.yaml', quiet);
    const at = (method: string, path: string) =>
      policy.evaluate({ host: 'f.test', port: 443, method, path }).action;
    expect(at('POST', '/%41dmin//x*y]')).toBe('block');
    expect(at('POST', '/Admin/x*y]')).toBe('block');
    expect(at('POST', '/Admin/xZZy]')).toBe('allow');
    expect(at('GET', '/Admin/x*y]')).toBe('allow');
  });

  it('writes what the path must not show as `*`: the policy never holds it, and still refuses it', async () => {
    const raw = '/patients/219-54-3299/notes;jsessionid=SESS1/x';
    const learned = learnPolicy([{ host: 'f.test', port: 443 }], {
      refused: [{ host: 'f.test', port: 443, method: 'get', path: raw }],
      redactPath: (p) => redactUrl(p).url,
    });
    expect(learned.yaml).not.toMatch(/219-54-3299|SESS1/);
    expect(learned.refusals[0]!.path).toBe('/patients/*/notes;jsessionid=*/x');
    expect(learned.refusals[0]!.reason).not.toMatch(/219-54-3299|SESS1/);
    const policy = await parsePolicy(learned.yaml, 'learned.yaml', quiet);
    expect(policy.evaluate({ host: 'f.test', port: 443, method: 'GET', path: raw }).action).toBe(
      'block',
    );
    expect(
      policy.evaluate({ host: 'f.test', port: 443, method: 'GET', path: '/patients' }).action,
    ).toBe('allow');
  });
});
