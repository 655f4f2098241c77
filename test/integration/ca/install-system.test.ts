/**
 * `trustrun ca install` into this machine's real trust store (Debian: update-ca-certificates),
 * then curl and R httr trust a server with a TrustRun certificate without any CA variable, and
 * `ca uninstall` takes that trust away again. Changes the system store, so it runs only as root
 * (CI runs as root); it always uninstalls at the end.
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LeafMinter, loadOrCreateCa } from '../../../src/ca/index.js';
import type { DataPaths } from '../../../src/core/index.js';
import { requireClient } from '../../helpers/clients.js';
import { CLI } from '../../helpers/proc.js';
import {
  cleanEnv,
  cleanupTemp,
  run,
  startHttps,
  tempPaths,
  type HttpsTestServer,
} from '../../unit/ca/helpers.js';

const isRoot = process.getuid?.() === 0;
const debian = existsSync('/usr/sbin/update-ca-certificates');
const canRun = isRoot && debian;
if (!canRun) {
  console.warn(
    'skipping the system trust store test: it needs root and Debian/Ubuntu update-ca-certificates ' +
      '(apt-get install ca-certificates); CI runs it as root',
  );
}

let paths: DataPaths;
let server: HttpsTestServer;
let installed = false;

function cli(...args: string[]) {
  return run(process.execPath, [CLI, 'ca', ...args, '--data-dir', paths.root], {
    env: cleanEnv(),
  });
}

beforeAll(async () => {
  if (!canRun) return;
  paths = await tempPaths();
  const ca = await loadOrCreateCa(paths);
  server = await startHttps(await LeafMinter.create(ca));
});

afterAll(async () => {
  if (installed) await cli('uninstall');
  await server?.close();
  await cleanupTemp();
});

const curl = (url: string) => run('curl', ['-sS', '--fail', url], { env: cleanEnv() });
const hasCurl = requireClient('curl');
const hasR = requireClient('rscript');

describe.skipIf(!canRun)('ca install / uninstall on this machine (Debian)', () => {
  it.skipIf(!hasCurl || !hasR)(
    'curl and R httr trust the CA after install, and not after uninstall',
    async () => {
      const url = `https://127.0.0.1:${server.port}/system-trust`;
      expect((await curl(url)).code).toBe(60); // not trusted yet

      const inst = await cli('install', '--json');
      installed = inst.code === 0;
      expect(inst.code, inst.stderr).toBe(0);

      const ok = await curl(url);
      expect(ok.stderr).toBe('');
      expect(ok.stdout).toContain(`hello from 127.0.0.1:${server.port}`);
      const r = await run(
        'Rscript',
        ['-e', `r <- httr::GET("${url}"); cat(httr::status_code(r))`],
        { env: cleanEnv(), timeoutMs: 120_000 },
      );
      expect(r.stdout, r.stderr).toBe('200');

      const un = await cli('uninstall', '--json');
      expect(un.code, un.stderr).toBe(0);
      installed = false;
      expect((await curl(url)).code).toBe(60);
    },
    180_000,
  );
});
