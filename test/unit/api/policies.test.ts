import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeFixture, type Fixture } from './fixture.js';

let f: Fixture;
beforeEach(async () => {
  f = await makeFixture(0);
});
afterEach(async () => {
  await f.close();
});

const GOOD = `version: 2
name: only-example
rules:
  - match: "*.example.org"
    action: allow
defaults:
  action: block
`;
const BAD = GOOD.replace('action: allow', 'action: permit');

function mkdirP(dir: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

function send(path: string, method: string, body: unknown) {
  return f.call(path, {
    method,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

describe('policies', () => {
  it('validates text and reports errors with line and column', async () => {
    const ok = await send('/api/policies/validate', 'POST', { yaml: GOOD });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({
      valid: true,
      errors: [],
      summary: { name: 'only-example', format: 'v2', rules: 1, defaultAction: 'block' },
    });
    const bad = await send('/api/policies/validate', 'POST', { yaml: BAD });
    expect(bad.status).toBe(200);
    const v = (await bad.json()) as {
      valid: boolean;
      errors: { line: number; col: number; message: string }[];
    };
    expect(v.valid).toBe(false);
    expect(v.errors[0]).toMatchObject({ line: 5, col: 13 });
    expect(v.errors[0]!.message).toMatch(/unknown action "permit"/);
    const syntax = (await (
      await send('/api/policies/validate', 'POST', { yaml: 'rules: [\n' })
    ).json()) as {
      errors: { line: number; message: string }[];
    };
    expect(syntax.errors[0]!.message).toMatch(/YAML syntax error/);
    const legacy = (await (
      await send('/api/policies/validate', 'POST', {
        yaml: 'rules:\n  - match: a.org\n    action: alert\ndefaults:\n  action: block\n',
      })
    ).json()) as { valid: boolean; warnings: string[] };
    expect(legacy.valid).toBe(true);
    expect(legacy.warnings[0]).toMatch(/legacy policy file/);
  });

  it('answers 400 with issues for a body of the wrong shape', async () => {
    for (const body of [{}, { yaml: 3 }, { yaml: GOOD, extra: 1 }, { yaml: GOOD, name: '../x' }]) {
      const res = await send('/api/policies/validate', 'POST', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      const e = (await res.json()) as { error: { issues: { path: string }[] } };
      expect(e.error.issues[0]!.path).toMatch(/^body/);
    }
  });

  it('refuses to save an invalid policy (400, line given, nothing written)', async () => {
    const res = await send('/api/policies/strict', 'PUT', { yaml: BAD });
    expect(res.status).toBe(400);
    const e = (await res.json()) as {
      error: { code: string; issues: { line: number; col: number }[] };
    };
    expect(e.error.code).toBe('TR_POLICY_INVALID');
    expect(e.error.issues[0]).toMatchObject({ line: 5, col: 13 });
    expect(existsSync(join(f.dir, 'policies', 'strict.yaml'))).toBe(false);
  });

  it('saves to <dataDir>/policies/NAME.yaml (0600), lists, reads, replaces and deletes', async () => {
    expect(await (await f.call('/api/policies')).json()).toEqual({
      dir: join(f.dir, 'policies'),
      items: [],
    });
    const saved = await send('/api/policies/strict', 'PUT', { yaml: GOOD });
    expect(saved.status).toBe(200);
    const file = join(f.dir, 'policies', 'strict.yaml');
    expect(readFileSync(file, 'utf8')).toBe(GOOD);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(f.dir, 'policies')).mode & 0o777).toBe(0o700);

    const list = (await (await f.call('/api/policies')).json()) as {
      items: { name: string; file: string }[];
    };
    expect(list.items).toEqual([expect.objectContaining({ name: 'strict', file })]);
    const one = (await (await f.call('/api/policies/strict')).json()) as {
      yaml: string;
      validation: { valid: boolean };
    };
    expect(one.yaml).toBe(GOOD);
    expect(one.validation.valid).toBe(true);

    const next = GOOD.replace('only-example', 'renamed');
    expect((await send('/api/policies/strict', 'PUT', { yaml: next })).status).toBe(200);
    expect(readFileSync(file, 'utf8')).toBe(next);

    const del = await f.call('/api/policies/strict', { method: 'DELETE' });
    expect(del.status).toBe(200);
    expect(existsSync(file)).toBe(false);
    expect((await f.call('/api/policies/strict')).status).toBe(404);
    expect((await f.call('/api/policies/strict', { method: 'DELETE' })).status).toBe(404);
  });

  it('reads no file outside the policies directory through inherit (validate and save)', async () => {
    // A real key made now (no key is kept in the repository); its base64 body must never show.
    const secret = join(f.dir, 'secret.pem');
    const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' })
      .privateKey.export({ type: 'pkcs8', format: 'pem' })
      .toString();
    writeFileSync(secret, pem);
    const body = pem.split('\n')[1]!;
    const leaked = (text: string) => text.includes(body) || /PRIVATE KEY|root:/.test(text);
    symlinkSync(secret, join(mkdirP(join(f.dir, 'policies')), 'link.yaml'));
    for (const ref of ['../secret.pem', secret, 'link.yaml', '/etc/passwd']) {
      const yaml = `version: 2\ninherit: [${JSON.stringify(ref)}]\n`;
      const res = await send('/api/policies/validate', 'POST', { yaml });
      const text = await res.text();
      expect(leaked(text), ref).toBe(false);
      const v = JSON.parse(text) as { valid: boolean; errors: { message: string }[] };
      expect(v.valid, ref).toBe(false);
      expect(v.errors[0]!.message, ref).toMatch(
        /is outside .*policies: a policy saved here may inherit presets and other saved policies only/,
      );
      const put = await send('/api/policies/leak', 'PUT', { yaml });
      expect(put.status, ref).toBe(400);
      expect(leaked(await put.text()), ref).toBe(false);
    }
    // Presets and other saved policies still work.
    expect((await send('/api/policies/base', 'PUT', { yaml: GOOD })).status).toBe(200);
    const ok = await send('/api/policies/validate', 'POST', {
      yaml: 'version: 2\ninherit: [base.yaml, "preset:aws"]\n',
    });
    expect(await ok.json()).toMatchObject({ valid: true });
  });

  it('refuses names that could leave the policies directory', async () => {
    for (const name of ['..', '.hidden', 'a%2Fb', 'x'.repeat(65)]) {
      const res = await send(`/api/policies/${name}`, 'PUT', { yaml: GOOD });
      expect([400, 404], name).toContain(res.status);
    }
    expect(existsSync(join(f.dir, 'policies'))).toBe(false);
  });
});
