import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isTrustRunError } from '../../../src/core/index.js';
import { PRESETS, loadPolicy, parsePolicy } from '../../../src/policy/index.js';

let dir: string;
const warnings: string[] = [];
const opts = { warn: (m: string) => warnings.push(m) };

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'trustrun-policy-'));
  warnings.length = 0;
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function write(name: string, text: string): Promise<string> {
  const file = join(dir, name);
  await mkdir(join(file, '..'), { recursive: true });
  await writeFile(file, text);
  return file;
}

async function rejection(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (err) {
    if (isTrustRunError(err)) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error('expected the load to fail');
}

// ORIGINAL.md §9 fixtures, as the earlier tool's users wrote them.
const SIMPLE = `name: simple-test
rules:
  - match: "*.allowed.com"
    action: alert
  - match: "*.blocked.com"
    action: block
`;
const TEST_POLICY = `name: test-hipaa
inherit:
  - preset:azure
rules:
  - match: "*.openai.com"
    action: block
    reason: Direct OpenAI API bypasses the BAA
  - match: "*.example.com"
    action: alert
  - match: 10.0.0.0/8
    action: alert
  - match: "*.suspicious.io"
    action: kill
defaults:
  action: alert
`;

describe('acceptance cases L1-L12', () => {
  it('L1: a legacy file loads with its name and rules in order', async () => {
    const p = await loadPolicy(await write('simple_policy.yaml', SIMPLE), opts);
    expect(p.name).toBe('simple-test');
    expect(p.format).toBe('legacy');
    expect(p.rules.map((r) => r.action)).toEqual(['alert', 'block']);
  });

  it('L2: own rules first, then the inherited preset', async () => {
    const file = await write('test_policy.yaml', TEST_POLICY);
    const p = await loadPolicy(file, opts);
    expect(p.rules[0]).toMatchObject({ match: '*.openai.com', action: 'block', source: file });
    expect(p.rules.slice(4).some((r) => r.match.includes('azure'))).toBe(true);
    expect(p.rules).toHaveLength(4 + 13);
    expect(p.rules[4]).toMatchObject({ index: 4, source: 'preset:azure', action: 'allow' });
  });

  it('L3: from a string', async () => {
    const p = await parsePolicy(
      'name: inline-test\nrules:\n  - match: "*.x.com"\n    action: alert\ndefaults:\n  action: block\n',
      'inline.yaml',
      opts,
    );
    expect(p.rules).toHaveLength(1);
    expect(p.defaultAction).toBe('block');
  });

  it('L4: preset:azure gives its 13 rules in the documented order', async () => {
    const p = await parsePolicy('inherit: [preset:azure]\n', 'a.yaml', opts);
    expect(p.rules).toHaveLength(13);
    expect(p.rules.some((r) => /azure|windows/.test(r.match))).toBe(true);
    expect(p.rules.map((r) => r.match)).toEqual(PRESETS.azure?.rules.map((r) => r.match));
    expect(p.rules[0]).toMatchObject({
      match: '*.openai.azure.com',
      reason: 'Azure OpenAI Service (BAA-covered)',
    });
    expect(p.rules.every((r) => r.action === 'allow')).toBe(true);
  });

  it('L5: preset:aws gives 13 rules; azure and aws together 26', async () => {
    const aws = await parsePolicy('inherit: [preset:aws]\n', 'a.yaml', opts);
    expect(aws.rules).toHaveLength(13);
    expect(aws.rules.some((r) => r.match.includes('amazonaws'))).toBe(true);
    expect(aws.rules[0]).toMatchObject({
      match: '*.bedrock.*.amazonaws.com',
      reason: 'AWS Bedrock (BAA-eligible)',
    });
    expect(aws.rules.at(-1)?.match).toBe('*.amazonaws.com');
    const both = await parsePolicy('inherit: [preset:azure, preset:aws]\n', 'b.yaml', opts);
    expect(both.rules).toHaveLength(26);
  });

  it('L6: an own rule comes before the preset', async () => {
    const p = await parsePolicy(
      'inherit: [preset:azure]\nrules:\n  - match: "*.my-rule.com"\n',
      'a.yaml',
      opts,
    );
    expect(p.rules[0]?.match).toBe('*.my-rule.com');
  });

  it('L7: a real cycle is an error naming the chain of files', async () => {
    const a = await write('a.yaml', 'name: a\ninherit: [b.yaml]\n');
    await write('b.yaml', 'name: b\ninherit:\n  - a.yaml\n');
    const err = await rejection(loadPolicy(a, opts));
    expect(err.code).toBe('TR_POLICY_CYCLE');
    expect(err.message).toContain('Circular');
    expect(err.message).toBe(
      `${join(dir, 'b.yaml')}:3:5: Circular policy inheritance: ${a} -> ${join(dir, 'b.yaml')} -> ${a} (inherit[0])`,
    );
  });

  it('L8: a document that is not a mapping', async () => {
    const err = await rejection(parsePolicy('"just a string"\n', 'p.yaml', opts));
    expect(err.code).toBe('TR_POLICY_INVALID');
    expect(err.message).toContain('mapping');
    expect(err.message.startsWith('p.yaml:1:1: ')).toBe(true);
  });

  it('L9: ports as a list, a single number or numeric text', async () => {
    const p = await parsePolicy(
      [
        'rules:',
        '  - match: a.com',
        '    ports: [443, 8443]',
        '  - match: b.com',
        '    ports: 443',
        '  - match: c.com',
        '    ports: ["443"]',
        '  - match: d.com',
      ].join('\n'),
      'p.yaml',
      opts,
    );
    expect(p.rules.map((r) => r.ports)).toEqual([[443, 8443], [443], [443], []]);
  });

  it('L10: inherit as a single string', async () => {
    const p = await parsePolicy('inherit: preset:azure\n', 'p.yaml', opts);
    expect(p.files).toEqual(['p.yaml', 'preset:azure']);
    expect(p.rules).toHaveLength(13);
  });

  it('L12: defaults come from the top file, not from the preset', async () => {
    const p = await parsePolicy(
      'inherit: [preset:azure]\ndefaults: {action: block}\n',
      'p.yaml',
      opts,
    );
    expect(p.defaultAction).toBe('block');
    const q = await parsePolicy('version: 2\ninherit: [preset:azure]\n', 'q.yaml');
    expect(q.defaultAction).toBe('alert');
  });
});

describe('fixes over the earlier tool', () => {
  it('L11: the same preset twice is loaded once', async () => {
    const p = await parsePolicy('inherit: [preset:azure, preset:azure]\n', 'p.yaml', opts);
    expect(p.rules).toHaveLength(13);
    expect(p.files).toEqual(['p.yaml', 'preset:azure']);
  });

  it('a policy named like a preset may inherit it', async () => {
    const p = await parsePolicy('name: azure-baa\ninherit: [preset:azure]\n', 'p.yaml', opts);
    expect(p.rules).toHaveLength(13);
  });

  it('a diamond is flattened with each file once, at its first place', async () => {
    await write(
      'b.yaml',
      'version: 2\ninherit: [d.yaml]\nrules:\n  - {match: b.com, action: allow}\n',
    );
    await write(
      'c.yaml',
      'version: 2\ninherit: [d.yaml]\nrules:\n  - {match: c.com, action: allow}\n',
    );
    await write(
      'd.yaml',
      'version: 2\ninherit: [preset:aws]\nrules:\n  - {match: d.com, action: allow}\n',
    );
    const a = await write(
      'a.yaml',
      'version: 2\ninherit: [b.yaml, c.yaml, ./d.yaml, preset:aws]\nrules:\n  - {match: a.com, action: allow}\n',
    );
    const p = await loadPolicy(a);
    expect(p.rules.slice(0, 3).map((r) => r.match)).toEqual(['a.com', 'b.com', 'd.com']);
    expect(p.rules[16]?.match).toBe('c.com');
    expect(p.rules).toHaveLength(17);
    expect(p.files.map((f) => f.replace(dir, '<dir>'))).toEqual([
      '<dir>/a.yaml',
      '<dir>/b.yaml',
      '<dir>/d.yaml',
      'preset:aws',
      '<dir>/c.yaml',
    ]);
    expect(p.rules.map((r) => r.index)).toEqual([...Array(17).keys()]);
  });

  it('relative inherit paths resolve against the including file, at every level', async () => {
    await write(
      'shared/base.yaml',
      'version: 2\ninherit: [more/extra.yaml]\nrules:\n  - {match: base.org, action: allow}\n',
    );
    await write(
      'shared/more/extra.yaml',
      'version: 2\nrules:\n  - {match: extra.org, action: block}\n',
    );
    const top = await write(
      'team/project/policy.yaml',
      'version: 2\ninherit: [../../shared/base.yaml]\n',
    );
    const p = await loadPolicy(top);
    expect(p.rules.map((r) => [r.match, r.source])).toEqual([
      ['base.org', join(dir, 'team/project/../../shared/base.yaml')],
      ['extra.org', join(dir, 'team/project/../../shared/more/extra.yaml')],
    ]);
  });

  it('a file reached through a symlink and by its own name is one file', async () => {
    await write('real/base.yaml', 'version: 2\nrules:\n  - {match: base.org, action: allow}\n');
    await symlink(join(dir, 'real'), join(dir, 'alias'));
    const top = await write('top.yaml', 'version: 2\ninherit: [real/base.yaml, alias/base.yaml]\n');
    const p = await loadPolicy(top);
    expect(p.rules).toHaveLength(1);
  });

  it('a file that inherits itself is a cycle', async () => {
    const a = await write('self.yaml', 'version: 2\ninherit: [./self.yaml]\n');
    const err = await rejection(loadPolicy(a));
    expect(err.code).toBe('TR_POLICY_CYCLE');
    expect(err.message).toBe(
      `${a}:2:11: Circular policy inheritance: ${a} -> ${join(dir, 'self.yaml')} (inherit[0])`,
    );
  });

  it('a longer cycle behind a diamond is still found', async () => {
    await write('b.yaml', 'version: 2\ninherit: [d.yaml]\n');
    await write('c.yaml', 'version: 2\ninherit: [d.yaml]\n');
    await write('d.yaml', 'version: 2\ninherit: [e.yaml]\n');
    await write('e.yaml', 'version: 2\ninherit: [c.yaml]\n');
    const a = await write('a.yaml', 'version: 2\ninherit: [b.yaml, c.yaml]\n');
    const err = await rejection(loadPolicy(a));
    expect(err.code).toBe('TR_POLICY_CYCLE');
    expect(err.message.replaceAll(dir + '/', '')).toBe(
      'c.yaml:2:11: Circular policy inheritance: d.yaml -> e.yaml -> c.yaml -> d.yaml (inherit[0])',
    );
  });

  it('empty rules: and defaults: mean none', async () => {
    for (const head of ['', 'version: 2\n']) {
      const p = await parsePolicy(`${head}name: empty\nrules:\ndefaults:\n`, 'p.yaml', opts);
      expect(p.rules).toEqual([]);
      expect(p.defaultAction).toBe('alert');
    }
  });

  it('capture_level is read from the top file only', async () => {
    await write('base.yaml', 'version: 2\ncapture_level: full\n');
    const top = await write(
      'top.yaml',
      'version: 2\ncapture_level: headers\ninherit: [base.yaml]\n',
    );
    expect((await loadPolicy(top)).captureLevel).toBe('headers');
    const bare = await write('bare.yaml', 'version: 2\ninherit: [base.yaml]\n');
    expect((await loadPolicy(bare)).captureLevel).toBeNull();
  });
});

describe('legacy notice', () => {
  it('is given once per load, naming every legacy file', async () => {
    await write('old1.yaml', 'rules:\n  - match: a.com\n');
    await write('old2.yaml', 'rules:\n  - match: b.com\n');
    const top = await write('top.yaml', 'version: 2\ninherit: [old1.yaml, old2.yaml]\n');
    await loadPolicy(top, opts);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(
      `${join(dir, 'old1.yaml')}, ${join(dir, 'old2.yaml')}: legacy policy file`,
    );
    expect(warnings[0]).toContain('a matched alert rule allows without a violation');
    expect(warnings[0]).not.toContain('\n');
  });

  it('is not given for version 2 files and presets', async () => {
    await parsePolicy('version: 2\ninherit: [preset:azure, preset:aws]\n', 'p.yaml', opts);
    expect(warnings).toEqual([]);
  });

  it('rules of a legacy file keep their meaning inside a version 2 policy', async () => {
    await write('old.yaml', 'rules:\n  - match: "*.old.com"\n    action: alert\n');
    const top = await write(
      'top.yaml',
      'version: 2\ninherit: [old.yaml]\nrules:\n  - {match: "*.new.com", action: alert}\n',
    );
    const p = await loadPolicy(top, opts);
    expect(p.evaluate({ host: 'a.new.com', port: 443 }).violation).toBe(true);
    expect(p.evaluate({ host: 'a.old.com', port: 443 })).toMatchObject({
      action: 'alert',
      violation: false,
      ruleIndex: 1,
    });
  });
});

describe('reading files', () => {
  it('a missing policy file is a one-line error', async () => {
    const err = await rejection(loadPolicy(join(dir, 'nope.yaml')));
    expect(err).toEqual({
      code: 'TR_POLICY_INVALID',
      message: `${join(dir, 'nope.yaml')}: cannot read policy file: no such file`,
    });
  });

  it('a missing inherited file names the inherit entry', async () => {
    const top = await write('top.yaml', 'version: 2\ninherit:\n  - preset:aws\n  - gone.yaml\n');
    const err = await rejection(loadPolicy(top));
    expect(err.message).toBe(
      `${top}:4:5: cannot read inherited policy "gone.yaml": no such file (${join(dir, 'gone.yaml')}) (inherit[1])`,
    );
  });

  it('an unknown preset names the available ones', async () => {
    const err = await rejection(parsePolicy('version: 2\ninherit: preset:gcp\n', 'p.yaml'));
    expect(err.message).toBe(
      'p.yaml:2:10: unknown preset "preset:gcp"; available: preset:azure, preset:aws (inherit)',
    );
  });

  it('the compiled policy is read-only', async () => {
    const p = await parsePolicy(
      'version: 2\nrules:\n  - {match: a.com, action: allow}\n',
      'p.yaml',
    );
    expect(Object.isFrozen(p.rules)).toBe(true);
    expect(Object.isFrozen(p.rules[0])).toBe(true);
  });
});
