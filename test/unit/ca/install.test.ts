/**
 * `ca install` / `ca uninstall` against a staging root: the real update-ca-certificates runs with
 * its directory options pointed inside the temporary root, so the machine's own store is never
 * touched. The generated bundle gains our CA on install and loses it on uninstall, while the
 * other (decoy) CA stays.
 */
import { spawnSync } from 'node:child_process';
import { chmod, lstat, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  detectTrustSystem,
  installCa,
  installedName,
  loadOrCreateCa,
  uninstallCa,
} from '../../../src/ca/index.js';
import { pemCertificates } from '../../../src/ca/bundle.js';
import { dataPaths, isTrustRunError } from '../../../src/core/index.js';
import { makeTestCa } from '../../helpers/pki.js';
import { requireClient } from '../../helpers/clients.js';
import { CLI, run } from '../../helpers/proc.js';
import { cleanupTemp, tempDir, tempPaths } from './helpers.js';

afterEach(cleanupTemp);

const hasUpdater =
  spawnSync(
    'sh',
    ['-c', 'command -v update-ca-certificates || test -x /usr/sbin/update-ca-certificates'],
    {
      stdio: 'ignore',
    },
  ).status === 0;

/** A staging root that looks like a Debian system with one CA of its own. */
async function debianRoot(): Promise<{ root: string; decoyPem: string }> {
  const root = await tempDir();
  const decoy = await makeTestCa('Decoy System Root');
  await mkdir(join(root, 'etc'), { recursive: true });
  await writeFile(join(root, 'etc/os-release'), 'ID=debian\nVERSION_ID="12"\n');
  await mkdir(join(root, 'usr/share/ca-certificates/mozilla'), { recursive: true });
  await writeFile(join(root, 'usr/share/ca-certificates/mozilla/Decoy.crt'), decoy.certPem);
  await writeFile(join(root, 'etc/ca-certificates.conf'), 'mozilla/Decoy.crt\n');
  return { root, decoyPem: decoy.certPem };
}

async function bundleOf(root: string): Promise<string[]> {
  return pemCertificates(await readFile(join(root, 'etc/ssl/certs/ca-certificates.crt'), 'utf8'));
}

describe('ca install / uninstall (Debian store in a staging root)', () => {
  it('detects the store from the root, and refuses to guess', async () => {
    const { root } = await debianRoot();
    expect(await detectTrustSystem({ root })).toBe('debian');
    const fedora = await tempDir();
    await mkdir(join(fedora, 'etc'));
    await writeFile(join(fedora, 'etc/os-release'), 'ID="rocky"\nID_LIKE="rhel centos fedora"\n');
    expect(await detectTrustSystem({ root: fedora })).toBe('fedora');
    const empty = await tempDir();
    expect(await detectTrustSystem({ root: empty, path: empty })).toBeNull();
    const paths = await tempPaths();
    const ca = await loadOrCreateCa(paths);
    await expect(installCa(ca, { root: empty, path: empty })).rejects.toThrow(
      /cannot tell which system trust store/,
    );
  });

  it.skipIf(!hasUpdater)(
    'install adds the CA to the generated bundle; uninstall removes it',
    async () => {
      const { root, decoyPem } = await debianRoot();
      const paths = await tempPaths();
      const ca = await loadOrCreateCa(paths);
      const ours = pemCertificates(ca.certPem)[0]!;
      const decoy = pemCertificates(decoyPem)[0]!;
      const name = installedName(ca);
      expect(name).toMatch(/^trustrun-[0-9a-f]{16}$/);

      const r = await installCa(ca, { root });
      expect(r.system).toBe('debian');
      expect(r.changed).toBe(true);
      expect(r.target).toBe(join(root, 'usr/local/share/ca-certificates', `${name}.crt`));
      expect(await readFile(r.target, 'utf8')).toBe(ca.certPem);
      expect(((await lstat(r.target)).mode & 0o777).toString(8)).toBe('644');
      expect(r.ran).toHaveLength(1);
      expect(r.ran[0]).toEqual(
        expect.arrayContaining([
          '--localcertsdir',
          join(root, 'usr/local/share/ca-certificates'),
          '--etccertsdir',
          join(root, 'etc/ssl/certs'),
          '--hooksdir',
          join(root, 'etc/ca-certificates/update.d'),
        ]),
      );
      let bundle = await bundleOf(root);
      expect(bundle).toContain(ours);
      expect(bundle).toContain(decoy);
      expect(await readdir(join(root, 'etc/ssl/certs'))).toContain(`${name}.pem`);

      // Twice is harmless.
      const again = await installCa(ca, { root });
      expect(again.changed).toBe(false);
      expect((await bundleOf(root)).filter((c) => c === ours)).toHaveLength(1);

      const u = await uninstallCa(ca, { root });
      expect(u.changed).toBe(true);
      bundle = await bundleOf(root);
      expect(bundle).not.toContain(ours);
      expect(bundle).toContain(decoy);
      expect(await readdir(join(root, 'etc/ssl/certs'))).not.toContain(`${name}.pem`);
      expect((await uninstallCa(ca, { root })).changed).toBe(false);
    },
    60_000,
  );

  it.skipIf(!hasUpdater || !requireClient('certutil'))(
    "adds the CA to the user's NSS store (Chromium, Firefox) with certutil, and removes it",
    async () => {
      const { root } = await debianRoot();
      const ca = await loadOrCreateCa(await tempPaths());
      const home = await tempDir();
      const db = join(home, '.pki', 'nssdb');
      await mkdir(db, { recursive: true });
      const made = spawnSync('certutil', ['-N', '-d', `sql:${db}`, '--empty-password']);
      expect(made.status, String(made.stderr)).toBe(0);
      const listed = () =>
        spawnSync('certutil', ['-L', '-d', `sql:${db}`, '-n', installedName(ca)]).status;
      expect(listed()).not.toBe(0);

      const r = await installCa(ca, { root, home });
      expect(r.notes).toContain(`added to the NSS store ${db}`);
      expect(r.ran.some((argv) => argv.includes('-A') && argv.includes(`sql:${db}`))).toBe(true);
      expect(listed()).toBe(0);
      const trust = spawnSync('certutil', ['-L', '-d', `sql:${db}`], { encoding: 'utf8' }).stdout;
      expect(trust).toMatch(new RegExp(`${installedName(ca)}\\s+C,,`));

      const u = await uninstallCa(ca, { root, home });
      expect(u.notes).toContain(`removed from the NSS store ${db}`);
      expect(listed()).not.toBe(0);
    },
    60_000,
  );

  it.skipIf(!hasUpdater)(
    'the CLI: ca install / uninstall --root --json, and ca export --format p12',
    async () => {
      const { root } = await debianRoot();
      const data = join(await tempDir(), 'data');
      const env = { PATH: process.env.PATH, HOME: root };
      const install = await run(
        process.execPath,
        [CLI, 'ca', 'install', '--root', root, '--data-dir', data, '--json'],
        { env },
      );
      expect(install.stderr).toBe('');
      expect(install.code).toBe(0);
      const r = JSON.parse(install.stdout) as { system: string; changed: boolean; target: string };
      expect(r).toMatchObject({ system: 'debian', changed: true });
      const ca = await loadOrCreateCa(dataPaths(data));
      expect(await bundleOf(root)).toContain(pemCertificates(ca.certPem)[0]);

      const human = await run(
        process.execPath,
        [CLI, 'ca', 'uninstall', '--root', root, '--data-dir', data],
        {
          env,
        },
      );
      expect(human.code).toBe(0);
      expect(human.stderr).toMatch(/^Removed: the CA is not in the debian system store \(/);
      expect(human.stderr).toContain('ran: ');
      expect(await bundleOf(root)).not.toContain(pemCertificates(ca.certPem)[0]);

      const p12 = await run(
        process.execPath,
        [CLI, 'ca', 'export', '--format', 'p12', '-o', join(root, 'ca.p12'), '--data-dir', data],
        { env },
      );
      expect(p12.code).toBe(0);
      expect(p12.stderr).toMatch(/PKCS#12 password: [A-Za-z0-9_-]{16}\n$/);
    },
    60_000,
  );

  // As root the check runs the real code as "nobody", who must be able to read this checkout
  // (a clone inside a private 0700 directory is not readable to it). The path is absolute, as
  // node resolves it: a relative one would be reached through the inherited working directory,
  // without the search permission on its parents that node needs.
  const nobodyCanRead =
    process.getuid?.() !== 0 ||
    spawnSync('setpriv', [
      '--reuid=65534',
      '--regid=65534',
      '--clear-groups',
      'test',
      '-r',
      join(process.cwd(), 'node_modules/tsx/package.json'),
    ]).status === 0;
  if (!nobodyCanRead) {
    console.warn(
      'skipping the no-permission install test: user "nobody" cannot read this checkout ' +
        '(move it out of a 0700 directory to run it)',
    );
  }

  it.skipIf(!hasUpdater || !nobodyCanRead)(
    'without permission: a one-line error naming sudo, and nothing written',
    async () => {
      const { root } = await debianRoot();
      const paths = await tempPaths();
      const ca = await loadOrCreateCa(paths);
      const local = join(root, 'usr/local/share/ca-certificates');
      await mkdir(local, { recursive: true });
      if (process.getuid?.() === 0) {
        // root ignores file modes: run the real CLI code as "nobody" in a child.
        const data = await tempDir();
        await chmod(data, 0o777);
        const script = [
          "import { installCa, loadOrCreateCa } from './src/ca/index.ts';",
          "import { dataPaths, formatError } from './src/core/index.ts';",
          `const ca = await loadOrCreateCa(dataPaths(${JSON.stringify(join(data, 'd'))}));`,
          `try { await installCa(ca, { root: ${JSON.stringify(root)} }); console.log('installed'); }`,
          "catch (e) { console.log(e.code + ' ' + formatError(e)); }",
        ].join('\n');
        await chmod(root, 0o755);
        const r = spawnSync(
          'setpriv',
          [
            '--reuid=65534',
            '--regid=65534',
            '--clear-groups',
            process.execPath,
            '--import',
            'tsx',
            '--input-type=module',
            '-e',
            script,
          ],
          { encoding: 'utf8', cwd: process.cwd(), env: { ...process.env, HOME: data } },
        );
        expect(r.stderr).toBe('');
        expect(r.stdout).toMatch(
          /^TR_USAGE installing the CA in the system trust store needs root: /,
        );
        expect(r.stdout).toContain('(EACCES)');
        expect(r.stdout).toContain(`sudo trustrun ca install --data-dir '${join(data, 'd')}'`);
      } else {
        await chmod(local, 0o555);
        const err = await installCa(ca, { root }).catch((e: unknown) => e);
        expect(isTrustRunError(err, 'TR_USAGE')).toBe(true);
        expect((err as Error).message).toMatch(/needs root/);
        expect((err as { hint: string }).hint).toContain('sudo trustrun ca install');
      }
      expect(await readdir(local)).toEqual([]);
    },
    60_000,
  );
});
