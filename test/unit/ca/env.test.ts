import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  BUNDLE_VARIABLES,
  PROXY_VARIABLES,
  caEnvironment,
  formatEnv,
  loadOrCreateCa,
} from '../../../src/ca/index.js';
import { TEMPLATE_DIR } from '../../../src/ca/shims.js';
import { cleanupTemp, tempDir, tempPaths } from './helpers.js';

afterEach(cleanupTemp);

const mode = async (p: string) => (await stat(p)).mode & 0o777;

describe('caEnvironment', () => {
  it('points every runtime at the right file and creates what they need', async () => {
    const paths = await tempPaths();
    const home = await tempDir();
    const vars = await caEnvironment({ paths, env: { HOME: home } });
    const expected: Record<string, string> = {};
    for (const name of BUNDLE_VARIABLES) expected[name] = paths.caBundle;
    expected.NODE_EXTRA_CA_CERTS = paths.caCert;
    expected.R_PROFILE = join(paths.shimsDir, 'Rprofile.R');
    expected.WGETRC = join(paths.shimsDir, 'wgetrc');
    expect(vars).toEqual(expected);
    for (const name of [
      'SSL_CERT_FILE',
      'CURL_CA_BUNDLE',
      'REQUESTS_CA_BUNDLE',
      'GIT_SSL_CAINFO',
      'AWS_CA_BUNDLE',
      'PIP_CERT',
      'CARGO_HTTP_CAINFO',
      'DENO_CERT',
      'PERL_LWP_SSL_CA_FILE',
    ]) {
      expect(vars[name], name).toBe(paths.caBundle);
    }
    for (const file of new Set(Object.values(vars))) expect(existsSync(file), file).toBe(true);
    // NODE_EXTRA_CA_CERTS adds to Node's roots: it gets our CA alone.
    const ca = await loadOrCreateCa(paths);
    expect(await readFile(vars.NODE_EXTRA_CA_CERTS as string, 'utf8')).toBe(ca.certPem);
  });

  it('adds the proxy variables in both cases, with an empty NO_PROXY by default', async () => {
    const paths = await tempPaths();
    const vars = await caEnvironment({ paths, proxyUrl: 'http://127.0.0.1:8080', env: {} });
    for (const name of PROXY_VARIABLES) expect(vars[name], name).toBe('http://127.0.0.1:8080');
    expect(PROXY_VARIABLES).toEqual(
      expect.arrayContaining([
        'HTTPS_PROXY',
        'https_proxy',
        'HTTP_PROXY',
        'http_proxy',
        'ALL_PROXY',
        'all_proxy',
      ]),
    );
    expect(vars.NO_PROXY).toBe('');
    expect(vars.no_proxy).toBe('');
    const bypass = await caEnvironment({
      paths,
      proxyUrl: 'http://127.0.0.1:8080',
      noProxy: 'intranet.example,10.0.0.0/8',
      env: {},
    });
    expect(bypass.NO_PROXY).toBe('intranet.example,10.0.0.0/8');
    expect(bypass.no_proxy).toBe('intranet.example,10.0.0.0/8');
    const none = await caEnvironment({ paths, env: {} });
    for (const name of [...PROXY_VARIABLES, 'NO_PROXY', 'no_proxy'])
      expect(none).not.toHaveProperty(name);
  });

  it('rejects a proxy URL that is not http://HOST:PORT', async () => {
    const paths = await tempPaths();
    for (const bad of [
      '127.0.0.1:8080',
      'localhost:8080',
      'socks5://127.0.0.1:1080',
      'http://127.0.0.1:8080/path',
      'not a url',
    ]) {
      await expect(caEnvironment({ paths, proxyUrl: bad, env: {} }), bad).rejects.toMatchObject({
        code: 'TR_USAGE',
      });
    }
    expect(existsSync(paths.caCert)).toBe(false);
  });

  it('writes the shims owner-only even under umask 000', async () => {
    const paths = await tempPaths();
    const old = process.umask(0);
    let vars: Record<string, string>;
    try {
      vars = await caEnvironment({ paths, env: {} });
    } finally {
      process.umask(old);
    }
    expect(await mode(paths.shimsDir)).toBe(0o700);
    expect(await mode(vars.R_PROFILE as string)).toBe(0o600);
    expect(await mode(vars.WGETRC as string)).toBe(0o600);
    expect(await mode(paths.caKey)).toBe(0o600);
  });

  it('renders the shims from the templates shipped in shims/', async () => {
    expect(existsSync(join(TEMPLATE_DIR, 'Rprofile.R'))).toBe(true);
    expect(existsSync(join(TEMPLATE_DIR, 'wgetrc'))).toBe(true);
    const paths = await tempPaths();
    const vars = await caEnvironment({ paths, env: {} });
    const r = await readFile(vars.R_PROFILE as string, 'utf8');
    expect(r).toContain(`bundle <- "${paths.caBundle}"`);
    expect(r).toContain('site <- ""');
    expect(r).toContain('setHook(packageEvent("curl", "onLoad")');
    expect(r).not.toMatch(/@@[A-Z_]+@@/);
    const w = await readFile(vars.WGETRC as string, 'utf8');
    expect(w.trimEnd().split('\n').at(-1)).toBe(`ca_certificate = ${paths.caBundle}`);
    expect(w).not.toMatch(/@@[A-Z_]+@@/);
  });

  it('folds ~/.wgetrc into the generated wgetrc, or the WGETRC already set', async () => {
    const paths = await tempPaths();
    const home = await tempDir();
    await writeFile(join(home, '.wgetrc'), 'user_agent = from-home\ntries = 3\n');
    let vars = await caEnvironment({ paths, env: { HOME: home } });
    let w = await readFile(vars.WGETRC as string, 'utf8');
    expect(w).toContain('user_agent = from-home\ntries = 3\n');
    expect(w.trimEnd().split('\n').at(-1)).toBe(`ca_certificate = ${paths.caBundle}`);

    const custom = join(home, 'custom.wgetrc');
    await writeFile(custom, 'user_agent = from-custom\n');
    vars = await caEnvironment({ paths, env: { HOME: home, WGETRC: custom } });
    w = await readFile(vars.WGETRC as string, 'utf8');
    expect(w).toContain('user_agent = from-custom');
    expect(w).not.toContain('from-home');

    // Run again from a shell where our WGETRC is already set: no nesting, ~/.wgetrc again.
    vars = await caEnvironment({ paths, env: { HOME: home, WGETRC: vars.WGETRC } });
    w = await readFile(vars.WGETRC as string, 'utf8');
    expect(w.match(/ca_certificate =/g)).toHaveLength(1);
    expect(w).toContain('user_agent = from-home');
  });

  it('chains an R_PROFILE already set, but never itself', async () => {
    const paths = await tempPaths();
    const dir = await tempDir();
    const prior = join(dir, 'my "site" profile.R');
    await writeFile(prior, 'options(x = 1)\n');
    let vars = await caEnvironment({ paths, env: { R_PROFILE: prior } });
    let r = await readFile(vars.R_PROFILE as string, 'utf8');
    expect(r).toContain(`site <- "${prior.replace(/"/g, '\\"')}"`);
    vars = await caEnvironment({ paths, env: { R_PROFILE: vars.R_PROFILE } });
    r = await readFile(vars.R_PROFILE as string, 'utf8');
    expect(r).toContain('site <- ""');
  });
});

describe('formatEnv', () => {
  const tricky = {
    PLAIN: '/data/ca/bundle.pem',
    QUOTE: 'it\'s "quoted"',
    EXPAND: '$HOME `id` $(id) \\ * ? ~',
    LINES: 'one\ntwo',
    EMPTY: '',
  };

  const installed = (sh: string) => spawnSync(sh, ['-c', 'true']).status === 0;
  for (const sh of ['sh', 'bash', 'dash']) {
    it.skipIf(!installed(sh))(`round-trips any value through ${sh}`, () => {
      const script =
        formatEnv(tricky, 'sh') +
        Object.keys(tricky)
          .map((k) => `printf '%s\\0' "$${k}"`)
          .join('\n');
      const r = spawnSync(sh, ['-c', script], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.stdout.split('\0').slice(0, -1)).toEqual(Object.values(tricky));
    });
  }

  it('works with eval "$(...)" in bash, as `trustrun ca env` is used', () => {
    const lines = formatEnv(tricky, 'sh');
    const r = spawnSync('bash', ['-c', 'eval "$LINES_IN"; printf "%s" "$QUOTE|$EXPAND"'], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH, LINES_IN: lines },
    });
    expect(r.stdout).toBe(`${tricky.QUOTE}|${tricky.EXPAND}`);
  });

  it('quotes for fish and PowerShell', () => {
    expect(formatEnv({ A: "it's \\ here" }, 'fish')).toBe("set -gx A 'it\\'s \\\\ here'\n");
    expect(formatEnv({ A: "it's $x" }, 'powershell')).toBe("$env:A = 'it''s $x'\n");
    expect(formatEnv({ A: 'typographic \u2019 quote' }, 'powershell')).toBe(
      "$env:A = 'typographic \u2019\u2019 quote'\n",
    );
    expect(formatEnv({ A: 'x', B: 'y' }, 'sh')).toBe("export A='x'\nexport B='y'\n");
    expect(formatEnv({}, 'sh')).toBe('');
  });

  it('rejects names a shell would misread', () => {
    expect(() => formatEnv({ 'A;rm -rf /': 'x' }, 'sh')).toThrow(
      /invalid environment variable name/,
    );
    expect(() => formatEnv({ '1A': 'x' }, 'fish')).toThrow(/invalid environment variable name/);
  });
});
