import { X509Certificate } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { caEnv, caExport, caInit, caPath } from '../../../src/cli/commands/ca.js';
import { exportCa, loadOrCreateCa } from '../../../src/ca/index.js';
import { cleanupTemp, tempDir, tempPaths } from './helpers.js';

afterEach(cleanupTemp);

describe('trustrun ca (command functions)', () => {
  it('init creates the CA once and describes it', async () => {
    const paths = await tempPaths();
    const first = await caInit({ dataDir: paths.root });
    expect(first.created).toBe(true);
    expect(first.certPath).toBe(paths.caCert);
    expect(first.fingerprint256).toBe(
      new X509Certificate(await readFile(paths.caCert)).fingerprint256,
    );
    const second = await caInit({ dataDir: paths.root });
    expect(second.created).toBe(false);
    expect(second.fingerprint256).toBe(first.fingerprint256);
  });

  it('path reports the certificate path without creating anything', async () => {
    const paths = await tempPaths();
    expect(caPath({ dataDir: paths.root })).toEqual({ path: paths.caCert, exists: false });
    await expect(stat(paths.root)).rejects.toMatchObject({ code: 'ENOENT' });
    await caInit({ dataDir: paths.root });
    expect(caPath({ dataDir: paths.root })).toEqual({ path: paths.caCert, exists: true });
  });

  it('env prints export lines for the chosen shell, with the proxy when asked', async () => {
    const paths = await tempPaths();
    const sh = await caEnv({ dataDir: paths.root });
    expect(sh).toContain(`export SSL_CERT_FILE='${paths.caBundle}'\n`);
    expect(sh).toContain(`export NODE_EXTRA_CA_CERTS='${paths.caCert}'\n`);
    expect(sh).not.toContain('HTTPS_PROXY');
    const fish = await caEnv({
      dataDir: paths.root,
      shell: 'fish',
      proxy: 'http://127.0.0.1:8080',
      bypass: 'a.example',
    });
    expect(fish).toContain("set -gx HTTPS_PROXY 'http://127.0.0.1:8080'\n");
    expect(fish).toContain("set -gx no_proxy 'a.example'\n");
    await expect(caEnv({ dataDir: paths.root, shell: 'zsh' as 'sh' })).rejects.toMatchObject({
      code: 'TR_USAGE',
    });
  });

  it('export gives PEM or DER and writes a file when asked', async () => {
    const paths = await tempPaths();
    const ca = await loadOrCreateCa(paths);
    expect((await caExport({ dataDir: paths.root })).toString()).toBe(ca.certPem);
    const der = await caExport({ dataDir: paths.root, format: 'der' });
    expect(der.equals(ca.certDer)).toBe(true);
    expect(new X509Certificate(der).fingerprint256).toBe(ca.fingerprint256);
    const out = join(await tempDir(), 'ca.der');
    await caExport({ dataDir: paths.root, format: 'der', output: out });
    expect((await readFile(out)).equals(ca.certDer)).toBe(true);
    expect(exportCa(ca, 'pem').toString()).not.toContain('PRIVATE');
    expect(() => exportCa(ca, 'p12' as 'pem')).toThrow(/unknown export format/);
  });
});
