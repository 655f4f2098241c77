/**
 * The evaluator's indexes (literal map, suffix map, bucketed globs, per-prefix network maps)
 * must give exactly what a plain first-match walk over the rules gives. The reference below
 * shares no code with the evaluator: a recursive wildcard matcher and node:net's BlockList.
 */
import { BlockList, isIP } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Subject } from '../../../src/core/index.js';
import { parsePolicy } from '../../../src/policy/index.js';

interface Rule {
  match: string;
  ports: number[];
  format: 'v2' | 'legacy';
}

function wildcard(pattern: string, s: string): boolean {
  if (pattern === '') return s === '';
  const [p, ...rest] = pattern;
  const tail = rest.join('');
  if (p === '*') {
    for (let i = 0; i <= s.length; i++) if (wildcard(tail, s.slice(i))) return true;
    return false;
  }
  if (s === '') return false;
  return (p === '?' || p === s[0]) && wildcard(tail, s.slice(1));
}

function refMatches(rule: Rule, s: Subject): boolean {
  if (rule.ports.length > 0 && !rule.ports.includes(s.port)) return false;
  const family = isIP(rule.match.split('/')[0] as string);
  if (family !== 0) {
    const [addr, len] = rule.match.split('/') as [string, string | undefined];
    const type = family === 4 ? 'ipv4' : 'ipv6';
    const list = new BlockList();
    list.addSubnet(addr, len === undefined ? (family === 4 ? 32 : 128) : Number(len), type);
    const candidates = [s.ip ?? ''];
    if (rule.format === 'v2') candidates.push(s.host);
    return candidates.some((a) => isIP(a) === family && list.check(a, type));
  }
  const pattern = rule.match.toLowerCase();
  return (
    (s.host !== '' && wildcard(pattern, s.host.toLowerCase())) ||
    (!!s.ip && wildcard(pattern, s.ip))
  );
}

const label = fc.constantFrom('a', 'b', 'c', 'xy', 'ab');
const hostname = fc.array(label, { minLength: 1, maxLength: 4 }).map((l) => l.join('.'));
const globPart = fc.oneof(label, fc.constant('*'), fc.constant('?'), fc.constant('a?'));
const glob = fc.array(globPart, { minLength: 1, maxLength: 4 }).map((l) => l.join('.'));
const v4 = fc.tuple(fc.constantFrom(10, 11), fc.constantFrom(0, 1), fc.nat(3), fc.nat(3));
const v4text = v4.map((p) => p.join('.'));
const v6text = fc
  .tuple(fc.constantFrom('2001:db8', '2001:db9'), fc.nat(3))
  .map(([a, b]) => `${a}::${b}`);
const network = fc.oneof(
  fc.tuple(v4text, fc.constantFrom(8, 16, 24, 30, 32)).map(([a, l]) => `${a}/${l}`),
  v4text,
  fc.tuple(v6text, fc.constantFrom(16, 32, 64, 127, 128)).map(([a, l]) => `${a}/${l}`),
);
const rule = fc.record({
  match: fc.oneof(
    hostname,
    hostname.map((h) => `*.${h}`),
    glob,
    network,
  ),
  ports: fc.oneof(fc.constant<number[]>([]), fc.subarray([80, 443, 8080], { minLength: 1 })),
  format: fc.constantFrom('v2' as const, 'legacy' as const),
});
const subject = fc.record({
  host: fc.oneof(hostname, v4text, fc.constant('')),
  port: fc.constantFrom(80, 443, 8080),
  ip: fc.oneof(v4text, v6text, fc.constant(null)),
});

async function compile(rules: Rule[]) {
  // Legacy rules come from an inherited legacy file; v2 rules from the top file.
  const body = (rs: Rule[]) =>
    rs
      .map(
        (r) =>
          `  - match: "${r.match}"\n    action: block\n` +
          (r.ports.length ? `    ports: [${r.ports.join(', ')}]\n` : ''),
      )
      .join('');
  const { mkdtemp, writeFile, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = await mkdtemp(join(tmpdir(), 'trustrun-policy-'));
  try {
    // Each rule in its own file keeps the flattened order equal to the generated order.
    const files: string[] = [];
    for (const [i, r] of rules.entries()) {
      const name = `r${i}.yaml`;
      const next = i + 1 < rules.length ? `inherit: [r${i + 1}.yaml]\n` : '';
      const head = r.format === 'v2' ? 'version: 2\n' : '';
      await writeFile(join(dir, name), `${head}${next}rules:\n${body([r])}`);
      files.push(name);
    }
    const top = `version: 2\n${rules.length ? 'inherit: [r0.yaml]\n' : ''}defaults:\n  action: allow\n`;
    return await parsePolicy(top, join(dir, 'top.yaml'), { warn: () => {} });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('indexed evaluation equals a first-match walk', () => {
  it('for random rules and subjects', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(rule, { maxLength: 12 }),
        fc.array(subject, { minLength: 1, maxLength: 10 }),
        async (rules, subjects) => {
          const p = await compile(rules);
          expect(p.rules.map((r) => r.match)).toEqual(rules.map((r) => r.match));
          for (const s of subjects) {
            const expected = rules.findIndex((r) => refMatches(r, s));
            expect(p.evaluate(s).ruleIndex).toBe(expected < 0 ? null : expected);
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});
