/**
 * Real client programs trust a server whose certificate comes from LeafMinter, using nothing but
 * the variables of caEnvironment — and fail without them (so the variables are what made it
 * work). Names are reached offline: curl with --resolve, the others through "localhost".
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LeafMinter, caEnvironment, loadOrCreateCa } from '../../../src/ca/index.js';
import type { DataPaths } from '../../../src/core/index.js';
import { requireClient } from '../../helpers/clients.js';
import {
  cleanEnv,
  cleanupTemp,
  run,
  startHttps,
  tempDir,
  tempPaths,
  type HttpsTestServer,
} from '../../unit/ca/helpers.js';

let paths: DataPaths;
let server: HttpsTestServer;
let vars: Record<string, string>;
let home: string;

beforeAll(async () => {
  paths = await tempPaths();
  home = await tempDir();
  const ca = await loadOrCreateCa(paths);
  const minter = await LeafMinter.create(ca);
  server = await startHttps(minter, { defaultHost: '127.0.0.1' });
  vars = await caEnvironment({ paths, env: { HOME: home } });
});

afterAll(async () => {
  await server?.close();
  await cleanupTemp();
});

const hasCurl = requireClient('curl');
const hasPython = requireClient('python3');
const hasR = requireClient('rscript');
const hasWget = requireClient('wget');
const hasGit = requireClient('git');

describe('clients trust the CA through caEnvironment alone', () => {
  it.skipIf(!hasCurl)(
    'curl (SSL_CERT_FILE / CURL_CA_BUNDLE), a made-up name via --resolve',
    async () => {
      const url = `https://api.example.test:${server.port}/curl`;
      const args = ['-sS', '--fail', '--resolve', `api.example.test:${server.port}:127.0.0.1`, url];
      const ok = await run('curl', args, { env: cleanEnv(vars) });
      expect(ok.stderr).toBe('');
      expect(ok.stdout).toBe(
        `hello from api.example.test:${server.port} ua=curl/${ok.stdout.split('curl/')[1]}`,
      );
      expect(server.requests.at(-1)).toMatchObject({
        url: '/curl',
        servername: 'api.example.test',
      });

      const without = await run('curl', args, { env: cleanEnv() });
      expect(without.code).toBe(60); // peer certificate cannot be authenticated
    },
  );

  it.skipIf(!hasCurl)(
    'curl with SSL_CERT_FILE only, and reaching an IP literal (IP SAN)',
    async () => {
      const env = cleanEnv({ SSL_CERT_FILE: vars.SSL_CERT_FILE as string });
      const r = await run('curl', ['-sS', '--fail', `https://127.0.0.1:${server.port}/ip`], {
        env,
      });
      expect(r.stderr).toBe('');
      expect(r.stdout).toContain(`hello from 127.0.0.1:${server.port}`);
    },
  );

  it.skipIf(!hasPython)('python requests (REQUESTS_CA_BUNDLE)', async () => {
    const script =
      'import sys, requests\nr = requests.get(sys.argv[1], timeout=20)\nprint(r.status_code, r.text, end="")';
    const url = `https://localhost:${server.port}/python`;
    const ok = await run('python3', ['-c', script, url], { env: cleanEnv(vars) });
    expect(ok.stderr).toBe('');
    expect(ok.stdout).toMatch(
      new RegExp(`^200 hello from localhost:${server.port} ua=python-requests/`),
    );

    const without = await run('python3', ['-c', script, url], { env: cleanEnv() });
    expect(without.code).not.toBe(0);
    expect(without.stderr).toContain('CERTIFICATE_VERIFY_FAILED');
  });

  const rScript = (url: string) => [
    '-e',
    [
      `u <- "${url}"`,
      'r <- httr::GET(paste0(u, "/httr1")); cat("httr:", httr::status_code(r), "\\n")',
      'r <- httr::GET(paste0(u, "/httr2")); cat("httr again:", httr::status_code(r), "\\n")',
      'x <- curl::curl_fetch_memory(paste0(u, "/curl")); cat("curl:", x$status_code, "\\n")',
    ].join('\n'),
  ];

  it.skipIf(!hasR)('R httr and curl::curl_fetch_memory (R_PROFILE shim)', async () => {
    const url = `https://localhost:${server.port}`;
    const ok = await run('Rscript', rScript(url), { env: cleanEnv(vars) });
    expect(ok.stdout).toBe('httr: 200 \nhttr again: 200 \ncurl: 200 \n');
    expect(server.requests.map((r) => r.url)).toEqual(
      expect.arrayContaining(['/httr1', '/httr2', '/curl']),
    );

    const without = await run('Rscript', rScript(url), { env: cleanEnv() });
    expect(without.code).not.toBe(0);
    expect(without.stderr).toMatch(/SSL certificate problem|certificate/i);
  });

  it.skipIf(!hasR)(
    'R with curl < 5.2.0 needs the shim: the CA variables alone are not enough',
    async () => {
      const version = await run('Rscript', ['-e', 'cat(as.character(packageVersion("curl")))'], {
        env: cleanEnv(),
      });
      const older = version.stdout.trim().localeCompare('5.2.0', undefined, { numeric: true }) < 0;
      const { R_PROFILE: _shim, ...rest } = vars;
      const noShim = await run('Rscript', rScript(`https://localhost:${server.port}`), {
        env: cleanEnv(rest),
      });
      if (older) expect(noShim.code).not.toBe(0);
      else expect(noShim.code).toBe(0);
      // `Rscript --vanilla` skips the site profile, hence the shim (documented).
      const vanilla = await run(
        'Rscript',
        ['--vanilla', ...rScript(`https://localhost:${server.port}`)],
        {
          env: cleanEnv(vars),
        },
      );
      if (older) expect(vanilla.code).not.toBe(0);
    },
  );

  it.skipIf(!hasR)('the R shim still runs the site profile it replaces', async () => {
    const plain = await run('Rscript', ['-e', 'cat(getOption("repos")[["CRAN"]])'], {
      env: cleanEnv(),
    });
    const shimmed = await run('Rscript', ['-e', 'cat(getOption("repos")[["CRAN"]])'], {
      env: cleanEnv(vars),
    });
    expect(shimmed.stdout).toBe(plain.stdout);

    // An R_PROFILE set before `ca env` is chained instead of the default site profile.
    const dir = await tempDir();
    const prior = join(dir, 'site.R');
    await writeFile(prior, 'options(trustrun.site.marker = "chained")\n');
    const chained = await caEnvironment({ paths, env: { R_PROFILE: prior, HOME: home } });
    const r = await run(
      'Rscript',
      [
        '-e',
        'cat(getOption("trustrun.site.marker"), httr::status_code(httr::GET(commandArgs(TRUE)[1])))',
        `https://localhost:${server.port}/chained`,
      ],
      { env: cleanEnv(chained) },
    );
    await caEnvironment({ paths, env: { HOME: home } }); // back to the plain shim
    expect(r.stdout).toBe('chained 200');
  });

  it.skipIf(!hasWget)('wget (generated WGETRC, with ~/.wgetrc folded in)', async () => {
    const wgetHome = await tempDir();
    await writeFile(join(wgetHome, '.wgetrc'), 'user_agent = folded-from-home\n');
    const own = await caEnvironment({ paths, env: { HOME: wgetHome } });
    const url = `https://localhost:${server.port}/wget`;
    const ok = await run('wget', ['-q', '-O', '-', url], {
      env: cleanEnv({ ...own, HOME: wgetHome }),
    });
    expect(ok.stdout).toBe(`hello from localhost:${server.port} ua=folded-from-home\n`);

    const without = await run('wget', ['-q', '-O', '-', url], {
      env: cleanEnv({ HOME: wgetHome }),
    });
    expect(without.code).toBe(5); // SSL verification failure
  });

  it.skipIf(!hasGit)('git (GIT_SSL_CAINFO) gets past TLS to the HTTP exchange', async () => {
    const url = `https://localhost:${server.port}/repo.git`;
    const env = { GIT_TERMINAL_PROMPT: '0', HOME: home, GIT_CONFIG_NOSYSTEM: '1' };
    const before = server.requests.length;
    const ok = await run('git', ['ls-remote', url], { env: cleanEnv({ ...vars, ...env }) });
    // The test server is not a git server: git fails after a verified TLS exchange.
    expect(ok.stderr).toContain('not valid: is this a git repository?');
    expect(server.requests.slice(before).map((r) => r.url)).toContain(
      '/repo.git/info/refs?service=git-upload-pack',
    );

    const without = await run('git', ['ls-remote', url], { env: cleanEnv(env) });
    expect(without.stderr).toMatch(/certificate verification failed|SSL certificate problem/);
  });

  it('node fetch (NODE_EXTRA_CA_CERTS)', async () => {
    const script = `fetch(process.argv[1]).then((r) => r.text()).then((t) => process.stdout.write(t), (e) => { console.error(e.cause?.code ?? e); process.exit(3); })`;
    const url = `https://localhost:${server.port}/node`;
    const ok = await run(process.execPath, ['-e', script, url], { env: cleanEnv(vars) });
    expect(ok.stdout).toBe(`hello from localhost:${server.port} ua=node\n`);
    const without = await run(process.execPath, ['-e', script, url], { env: cleanEnv() });
    expect(without.code).toBe(3);
    expect(without.stderr).toContain('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  });
});
