/** The real `bin/trustrun.js` (built dist/), as a user runs it. */
import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LeafMinter, loadOrCreateCa } from '../../../src/ca/index.js';
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

const BIN = resolve('bin/trustrun.js');
const servers: HttpsTestServer[] = [];

beforeAll(() => {
  if (!existsSync(resolve('dist/cli/main.js'))) {
    throw new Error('dist/ is missing: run `npx tsc -p tsconfig.build.json` first');
  }
});

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  await cleanupTemp();
});

const trustrun = (args: string[]) => run(process.execPath, [BIN, ...args], { env: cleanEnv() });

describe('trustrun ca', () => {
  it.skipIf(!requireClient('curl'))(
    'eval "$(trustrun ca env)" in bash makes curl trust the CA',
    async () => {
      const paths = await tempPaths();
      const ca = await loadOrCreateCa(paths);
      const server = await startHttps(await LeafMinter.create(ca));
      servers.push(server);
      const curl = `curl -sS --fail --resolve api.example.test:${server.port}:127.0.0.1 https://api.example.test:${server.port}/eval`;
      const script = `eval "$("${process.execPath}" "${BIN}" ca env --data-dir "${paths.root}")" && ${curl}`;
      const r = await run('bash', ['-c', script], { env: cleanEnv() });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`hello from api.example.test:${server.port}`);

      const without = await run('bash', ['-c', curl], { env: cleanEnv() });
      expect(without.code).toBe(60);
    },
  );

  it('init creates the CA and prints its path and fingerprint; --json on stdout', async () => {
    const paths = await tempPaths();
    const r = await trustrun(['ca', 'init', '--data-dir', paths.root]);
    expect(r.code).toBe(0);
    const fp = new X509Certificate(await readFile(paths.caCert)).fingerprint256;
    expect(r.stderr).toContain(`Created the CA: ${paths.caCert}`);
    expect(r.stderr).toContain(fp);
    expect(r.stdout).toBe('');
    const j = await trustrun(['ca', 'init', '--json', '--data-dir', paths.root]);
    expect(JSON.parse(j.stdout)).toMatchObject({
      created: false,
      certPath: paths.caCert,
      fingerprint256: fp,
    });
  });

  it('path prints the certificate path on stdout', async () => {
    const paths = await tempPaths();
    const r = await trustrun(['ca', 'path', '--data-dir', paths.root]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(paths.caCert + '\n');
    expect(r.stderr).toContain("run 'trustrun ca init'");
  });

  it('export writes PEM to stdout and DER to a file', async () => {
    const paths = await tempPaths();
    const pem = await trustrun(['ca', 'export', '--data-dir', paths.root]);
    expect(pem.code).toBe(0);
    expect(pem.stdout).toBe(await readFile(paths.caCert, 'utf8'));
    const out = join(await tempDir(), 'ca.der');
    const der = await trustrun([
      'ca',
      'export',
      '--format',
      'der',
      '-o',
      out,
      '--data-dir',
      paths.root,
    ]);
    expect(der.code).toBe(0);
    expect(new X509Certificate(await readFile(out)).fingerprint256).toBe(
      new X509Certificate(await readFile(paths.caCert)).fingerprint256,
    );
  });

  it('usage errors exit 2 with a one-line message', async () => {
    const paths = await tempPaths();
    const shell = await trustrun(['ca', 'env', '--shell', 'zsh', '--data-dir', paths.root]);
    expect(shell.code).toBe(2);
    expect(shell.stderr).toContain("argument 'zsh' is invalid");
    const proxy = await trustrun([
      'ca',
      'env',
      '--proxy',
      'localhost:8080',
      '--data-dir',
      paths.root,
    ]);
    expect(proxy.code).toBe(2);
    expect(proxy.stderr).toBe(
      "trustrun: proxy URL 'localhost:8080' must be http://HOST:PORT\n  use http://127.0.0.1:PORT\n",
    );
    const format = await trustrun(['ca', 'export', '--format', 'p7b', '--data-dir', paths.root]);
    expect(format.code).toBe(2);
    // A path that does not fit: one line naming it, exit 2, no "Error:" dump.
    const out = join(paths.root, 'no-such-dir', 'ca.pem');
    const missing = await trustrun(['ca', 'export', '-o', out, '--data-dir', paths.root]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe(
      `trustrun: cannot open ${out}: ENOENT (no such file or directory)\n`,
    );
    const file = join(paths.root, 'a-file');
    await mkdir(paths.root, { recursive: true });
    await writeFile(file, 'x');
    const inTheWay = await trustrun(['ca', 'init', '--data-dir', file]);
    expect(inTheWay.code).toBe(2);
    expect(inTheWay.stderr).toMatch(
      /^trustrun: cannot \w+ .*a-file.*: (ENOTDIR|EEXIST) \([a-z ]+\)\n$/,
    );
  });

  it('refuses a CA key readable by others, naming the file and the fix', async () => {
    const paths = await tempPaths();
    await trustrun(['ca', 'init', '--data-dir', paths.root]);
    await chmod(paths.caKey, 0o644);
    const r = await trustrun(['ca', 'env', '--data-dir', paths.root]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      `trustrun: CA key ${paths.caKey} is readable by others (mode 0644)\n  chmod 600 ${paths.caKey}\n`,
    );
  });
});
