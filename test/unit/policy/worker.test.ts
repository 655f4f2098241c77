import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isTrustRunError, type TrustRunError } from '../../../src/core/index.js';
import * as source from '../../../src/policy/index.js';

// The worker runs from the built code only (the global set-up builds dist/ first): these tests
// load dist/policy/index.js, the module the CLI runs, and compare it with the sources' loader.
const DIST_POLICY = pathToFileURL(resolve('dist/policy/index.js')).href;
type PolicyModule = typeof source;
let built: PolicyModule;
let dir: string;

beforeAll(async () => {
  built = (await import(DIST_POLICY)) as PolicyModule;
  dir = await mkdtemp(join(tmpdir(), 'trustrun-policy-worker-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function write(name: string, text: string): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, text);
  return file;
}

/** What `p` rejects with, or null when it resolves. */
const rejection = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => null,
    (e: unknown) => e,
  );

async function failure(p: Promise<unknown>): Promise<TrustRunError> {
  const err = await rejection(p);
  // The built module has its own TrustRunError class; code and message are what callers read.
  if (!(err instanceof Error) || !('code' in err))
    throw new Error(`expected a failure, got ${String(err)}`);
  return err as TrustRunError;
}

describe('loadPolicyInWorker (built code)', () => {
  it('gives the same policy and warnings as loadPolicy: inherit, presets, legacy files', async () => {
    await write('base.yaml', 'rules:\n  - match: "*.legacy.example"\n    action: alert\n');
    const top = await write(
      'top.yaml',
      [
        'version: 2',
        'name: worker-test',
        'capture_level: headers',
        'inherit: [base.yaml, "preset:azure"]',
        'rules:',
        '  - match: "api.example.com"',
        '    action: allow',
        '    ports: [443, 8443]',
        '    methods: [GET]',
        '    paths: ["/v1/*"]',
        '  - match: 10.0.0.0/8',
        '    action: kill',
        'defaults:',
        '  action: block',
        '',
      ].join('\n'),
    );
    const inThread: string[] = [];
    const inWorker: string[] = [];
    const a = await source.loadPolicy(top, { warn: (m) => inThread.push(m) });
    const b = await built.loadPolicyInWorker(top, { warn: (m) => inWorker.push(m) });
    expect(b.rules.length).toBeGreaterThan(3);
    expect(b.rules).toEqual(a.rules);
    expect([b.name, b.format, b.captureLevel, b.defaultAction, b.hasRequestRules]).toEqual([
      a.name,
      a.format,
      a.captureLevel,
      a.defaultAction,
      a.hasRequestRules,
    ]);
    expect(b.files).toEqual(a.files);
    expect(inThread).toHaveLength(1);
    expect(inWorker).toEqual(inThread);
    // The evaluator is compiled on this side and works.
    const subject = { host: 'api.example.com', port: 443, method: 'GET', path: '/v1/x' };
    expect(b.evaluate(subject)).toEqual(a.evaluate(subject));
    expect(b.evaluate({ host: 'other.example.net', port: 443 }).action).toBe('block');
  });

  it('fails with the same code and one-line message as loadPolicy', async () => {
    const cases = [
      await write('syntax.yaml', 'version: 2\nrules: [\n'),
      await write('schema.yaml', 'version: 2\nrules:\n  - match: "*.x.com"\n    action: allw\n'),
      await write('cycle-a.yaml', 'version: 2\ninherit: [cycle-b.yaml]\nrules: []\n'),
      await write('cycle-b.yaml', 'version: 2\ninherit: [cycle-a.yaml]\nrules: []\n'),
      join(dir, 'missing.yaml'),
    ];
    for (const file of cases) {
      const expected = await failure(source.loadPolicy(file));
      expect(isTrustRunError(expected)).toBe(true);
      const got = await failure(built.loadPolicyInWorker(file));
      expect({ code: got.code, message: got.message, hint: got.hint }).toEqual({
        code: expected.code,
        message: expected.message,
        hint: expected.hint,
      });
    }
  });

  it('keeps the YAML parser out of the calling thread (loadPolicy loads it)', async () => {
    const file = await write(
      'plain.yaml',
      'version: 2\nrules:\n  - match: a.com\n    action: allow\n',
    );
    // yaml is a CommonJS package: once loaded into a thread it is in that thread's require.cache.
    const script = await write(
      'probe.mjs',
      `import { createRequire } from 'node:module';
const [fn, file] = process.argv.slice(2);
const m = await import(${JSON.stringify(DIST_POLICY)});
const cache = createRequire(import.meta.url).cache;
const yamlLoaded = () => Object.keys(cache).some((k) => k.includes('/node_modules/yaml/'));
const afterImport = yamlLoaded();
const p = await m[fn](file);
console.log(JSON.stringify({ afterImport, afterLoad: yamlLoaded(), rules: p.rules.length }));
`,
    );
    const probe = (fn: 'loadPolicy' | 'loadPolicyInWorker'): unknown =>
      JSON.parse(execFileSync(process.execPath, [script, fn, file], { encoding: 'utf8' }));
    expect(probe('loadPolicyInWorker')).toEqual({ afterImport: false, afterLoad: false, rules: 1 });
    expect(probe('loadPolicy')).toEqual({ afterImport: false, afterLoad: true, rules: 1 });
  });

  it('without a warn callback prints the legacy notice itself; a throwing warn fails the load', async () => {
    const legacy = await write('legacy.yaml', 'rules:\n  - match: "*.x.com"\n    action: alert\n');
    const script = await write(
      'warn.mjs',
      `const m = await import(${JSON.stringify(DIST_POLICY)});
const p = await m.loadPolicyInWorker(process.argv[2]);
console.log(p.format);
`,
    );
    const r = spawnSync(process.execPath, [script, legacy], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe('legacy');
    expect(r.stderr).toMatch(/^trustrun: warning: .*legacy\.yaml: legacy policy file/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);

    const thrown = await rejection(
      built.loadPolicyInWorker(legacy, {
        warn: () => {
          throw new Error('warn broke');
        },
      }),
    );
    expect((thrown as Error | null)?.message).toBe('warn broke');
  });
});
