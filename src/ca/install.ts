import { execFile } from 'node:child_process';
import { access, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { SYSTEM_PROGRAM_DIRS, TrustRunError, findExecutable } from '../core/index.js';
import type { CertificateAuthority } from './authority.js';
import { caAlias } from './java.js';

/**
 * Trusting the CA in the operating system's store (and so in curl, git, Python's ssl, R, Java
 * built from the system store, Chromium on macOS...). Needs root. `root` prefixes every system
 * path: it is for packaging and tests, which must not touch the real store.
 */
export type TrustSystem = 'debian' | 'fedora' | 'macos';
export const TRUST_SYSTEMS: readonly TrustSystem[] = ['debian', 'fedora', 'macos'];

export interface InstallOptions {
  /** Prefix for every system path (a staging root); commands get matching directory options. */
  root?: string;
  /** Which store to use; detected from the (root's) os-release and the tools present when absent. */
  system?: TrustSystem;
  /** Runs a program; defaults to execFile. */
  exec?: Exec;
  /** Where to look for tools (default $PATH). */
  path?: string;
  /** Home directory for the NSS hints (default $HOME). */
  home?: string;
}

export type Exec = (
  file: string,
  args: string[],
) => Promise<{ code: number; stdout: string; stderr: string }>;

export interface TrustChange {
  system: TrustSystem;
  /** The certificate file written or removed, or the keychain used (macOS). */
  target: string;
  /** Whether anything changed (false: already installed / not installed). */
  changed: boolean;
  /** Commands that ran, as argv. */
  ran: string[][];
  /** Things the user may still do (Firefox/NSS, a command skipped in a staging root). */
  notes: string[];
}

const DEBIAN = {
  localCertsDir: '/usr/local/share/ca-certificates',
  certsConf: '/etc/ca-certificates.conf',
  certsDir: '/usr/share/ca-certificates',
  etcCertsDir: '/etc/ssl/certs',
  hooksDir: '/etc/ca-certificates/update.d',
};
const FEDORA_ANCHORS = '/etc/pki/ca-trust/source/anchors';
const MAC_KEYCHAIN = '/Library/Keychains/System.keychain';

const defaultExec: Exec = (file, args) =>
  new Promise((done) => {
    execFile(
      file,
      args,
      { timeout: 120_000, maxBuffer: 8 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 127) : 0;
        done({
          code,
          stdout: String(stdout),
          stderr: String(stderr || (err && !stderr ? err.message : '')),
        });
      },
    );
  });

function prefixed(root: string | undefined, p: string): string {
  return root ? join(root, p) : p;
}

/** The file name the CA gets in a system store: trustrun-<16 hex digits of its SHA-256>. */
export function installedName(ca: CertificateAuthority): string {
  return caAlias(ca);
}

function searchPath(opts: InstallOptions): string {
  return [opts.path ?? process.env.PATH ?? '', ...SYSTEM_PROGRAM_DIRS].join(delimiter);
}

/** debian / fedora from the root's os-release, else from the tools and directories present. */
export async function detectTrustSystem(opts: InstallOptions = {}): Promise<TrustSystem | null> {
  if (opts.system) return opts.system;
  if (!opts.root && process.platform === 'darwin') return 'macos';
  const osRelease = await readFile(prefixed(opts.root, '/etc/os-release'), 'utf8').catch(() => '');
  const ids = [...osRelease.matchAll(/^(?:ID|ID_LIKE)=("?)([^"\n]*)\1$/gm)]
    .flatMap((m) => (m[2] ?? '').split(/\s+/))
    .map((s) => s.toLowerCase());
  if (ids.some((id) => ['debian', 'ubuntu'].includes(id))) return 'debian';
  if (ids.some((id) => ['fedora', 'rhel', 'centos', 'rocky', 'almalinux'].includes(id))) {
    return 'fedora';
  }
  if (opts.root) {
    // A staging root is judged by its own layout, never by the host's tools.
    const has = (p: string) =>
      access(prefixed(opts.root, p)).then(
        () => true,
        () => false,
      );
    if (await has(DEBIAN.localCertsDir)) return 'debian';
    if (await has(FEDORA_ANCHORS)) return 'fedora';
    return null;
  }
  const path = searchPath(opts);
  if (findExecutable('update-ca-certificates', path)) return 'debian';
  if (findExecutable('update-ca-trust', path)) return 'fedora';
  return null;
}

async function systemFor(opts: InstallOptions): Promise<TrustSystem> {
  const system = await detectTrustSystem(opts);
  if (!system) {
    throw new TrustRunError('TR_CONFIG', 'cannot tell which system trust store this machine uses', {
      hint: `pass --system ${TRUST_SYSTEMS.join('|')}, or trust the CA per program: eval "$(trustrun ca env)"`,
    });
  }
  if (system === 'macos' && opts.root) {
    throw new TrustRunError('TR_USAGE', '--root is not supported for the macOS keychain');
  }
  return system;
}

function needsRoot(what: string, err: unknown, dataDir: string, verb: string): never {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    throw new TrustRunError(
      'TR_USAGE',
      `${verb === 'install' ? 'installing' : 'removing'} the CA in the system trust store needs root: ${what} (${code})`,
      { hint: `run it with sudo: sudo trustrun ca ${verb} --data-dir '${dataDir}'` },
    );
  }
  throw err;
}

async function run(exec: Exec, argv: string[], ran: string[][]): Promise<void> {
  ran.push(argv);
  const [file, ...args] = argv as [string, ...string[]];
  const r = await exec(file, args);
  if (r.code !== 0) {
    const out = (r.stderr || r.stdout).trim().split('\n').slice(-3).join(' / ');
    const denied = /permission denied|operation not permitted|must be root|authorization/i.test(
      out,
    );
    throw new TrustRunError(
      denied ? 'TR_USAGE' : 'TR_CONFIG',
      `${argv.join(' ')} failed (exit ${r.code})${out ? `: ${out}` : ''}`,
      denied ? { hint: 'run it with sudo' } : {},
    );
  }
}

async function debianCommand(opts: InstallOptions, fresh: boolean): Promise<string[]> {
  const tool = findExecutable('update-ca-certificates', searchPath(opts));
  if (!tool) {
    throw new TrustRunError('TR_CONFIG', 'update-ca-certificates is not installed', {
      hint: 'apt-get install ca-certificates',
    });
  }
  const argv = [tool];
  if (fresh) argv.push('--fresh');
  if (opts.root) {
    const root = resolve(opts.root);
    argv.push(
      '--certsconf',
      join(root, DEBIAN.certsConf),
      '--certsdir',
      join(root, DEBIAN.certsDir),
      '--localcertsdir',
      join(root, DEBIAN.localCertsDir),
      '--etccertsdir',
      join(root, DEBIAN.etcCertsDir),
      '--hooksdir',
      join(root, DEBIAN.hooksDir),
    );
  }
  return argv;
}

async function stageRoot(root: string): Promise<void> {
  for (const d of [DEBIAN.localCertsDir, DEBIAN.certsDir, DEBIAN.etcCertsDir, DEBIAN.hooksDir]) {
    await mkdir(join(root, d), { recursive: true, mode: 0o755 });
  }
  const conf = join(root, DEBIAN.certsConf);
  await writeFile(conf, '', { flag: 'a', mode: 0o644 });
}

async function sameContent(file: string, text: string): Promise<boolean> {
  return (await readFile(file, 'utf8').catch(() => null)) === text;
}

/**
 * Firefox and Chromium on Linux keep their own NSS stores (~/.pki/nssdb, Firefox profiles).
 * With `certutil` on the PATH the CA is added to (or removed from) each of them, as the store's
 * owner (so a `sudo trustrun ca install` does not leave root-owned files in a user's profile);
 * without it, or when a store refuses, the notes say what to run.
 */
async function nssNotes(
  ca: CertificateAuthority,
  opts: InstallOptions,
  verb: 'install' | 'uninstall',
  ran: string[][] = [],
): Promise<string[]> {
  const home = opts.home ?? process.env.HOME ?? homedir();
  const dbs: string[] = [];
  const pki = join(home, '.pki', 'nssdb');
  if (await exists(join(pki, 'cert9.db'))) dbs.push(pki);
  for (const base of [
    join(home, '.mozilla', 'firefox'),
    join(home, 'snap', 'firefox', 'common', '.mozilla', 'firefox'),
  ]) {
    const entries = await readdir(base, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const dir = join(base, e.name);
      if (await exists(join(dir, 'cert9.db'))) dbs.push(dir);
    }
  }
  if (dbs.length === 0) return [];
  const certutil = findExecutable('certutil', searchPath(opts));
  const name = installedName(ca);
  const command = (db: string): string[] =>
    verb === 'install'
      ? ['certutil', '-d', `sql:${db}`, '-A', '-t', 'C,,', '-n', name, '-i', ca.paths.caCert]
      : ['certutil', '-d', `sql:${db}`, '-D', '-n', name];
  const notes: string[] = [];
  const manual: string[] = [];
  for (const db of dbs) {
    const argv = command(db);
    if (!certutil) {
      manual.push(argv.map((a) => (/^[\w./:,=-]+$/.test(a) ? a : `'${a}'`)).join(' '));
      continue;
    }
    const asOwner = await ownerPrefix(db);
    const full = [...asOwner, certutil, ...argv.slice(1)];
    ran.push(full);
    const [file, ...args] = full as [string, ...string[]];
    const r = await (opts.exec ?? defaultExec)(file, args);
    const absent = verb === 'uninstall' && /could not find|not found/i.test(r.stderr + r.stdout);
    if (r.code === 0 || absent) {
      notes.push(`${verb === 'install' ? 'added to' : 'removed from'} the NSS store ${db}`);
    } else {
      manual.push(argv.map((a) => (/^[\w./:,=-]+$/.test(a) ? a : `'${a}'`)).join(' '));
    }
  }
  if (manual.length > 0) {
    notes.push(
      `Firefox and Chromium use their own certificate stores (NSS); ${verb === 'install' ? 'to trust the CA there too' : 'to remove the CA from them'}, run as your user (not with sudo):`,
      ...manual.map((m) => `  ${m}`),
    );
    if (!certutil) notes.push('  (certutil comes with libnss3-tools / nss-tools)');
  }
  return notes;
}

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

/** Run as the owner of `dir` when this process is root and someone else owns it. */
async function ownerPrefix(dir: string): Promise<string[]> {
  if (process.getuid?.() !== 0) return [];
  const st = await stat(dir).catch(() => null);
  if (!st || st.uid === 0) return [];
  return ['setpriv', `--reuid=${st.uid}`, `--regid=${st.gid}`, '--clear-groups'];
}

/** Adds the CA to the system trust store. */
export async function installCa(
  ca: CertificateAuthority,
  opts: InstallOptions = {},
): Promise<TrustChange> {
  const system = await systemFor(opts);
  const exec = opts.exec ?? defaultExec;
  const ran: string[][] = [];
  const notes: string[] = [];
  const name = installedName(ca);
  const dataDir = ca.paths.root;
  if (opts.root && !isAbsolute(opts.root)) opts = { ...opts, root: resolve(opts.root) };

  if (system === 'macos') {
    await run(
      exec,
      [
        'security',
        'add-trusted-cert',
        '-d',
        '-r',
        'trustRoot',
        '-k',
        MAC_KEYCHAIN,
        ca.paths.caCert,
      ],
      ran,
    );
    return {
      system,
      target: MAC_KEYCHAIN,
      changed: true,
      ran,
      notes: await nssNotes(ca, opts, 'install', ran),
    };
  }

  let target: string;
  let argv: string[] | null;
  if (system === 'debian') {
    if (opts.root)
      await stageRoot(opts.root).catch((e) =>
        needsRoot(`cannot write ${opts.root}`, e, dataDir, 'install'),
      );
    target = join(prefixed(opts.root, DEBIAN.localCertsDir), `${name}.crt`);
    argv = await debianCommand(opts, false);
  } else {
    target = join(prefixed(opts.root, FEDORA_ANCHORS), `${name}.pem`);
    const tool = opts.root ? null : findExecutable('update-ca-trust', searchPath(opts));
    argv = tool ? [tool, 'extract'] : null;
    if (opts.root)
      notes.push(
        `update-ca-trust has no root option: run 'update-ca-trust extract' inside ${opts.root}`,
      );
    else if (!tool)
      throw new TrustRunError('TR_CONFIG', 'update-ca-trust is not installed', {
        hint: 'dnf install ca-certificates',
      });
  }

  const changed = !(await sameContent(target, ca.certPem));
  if (changed) {
    try {
      await mkdir(
        prefixed(opts.root, system === 'debian' ? DEBIAN.localCertsDir : FEDORA_ANCHORS),
        {
          recursive: true,
          mode: 0o755,
        },
      );
      await writeFile(target, ca.certPem, { mode: 0o644 });
    } catch (err) {
      needsRoot(`cannot write ${target}`, err, dataDir, 'install');
    }
  }
  if (argv) await run(exec, argv, ran);
  notes.push(...(await nssNotes(ca, opts, 'install', ran)));
  return { system, target, changed, ran, notes };
}

/** Removes the CA from the system trust store (what installCa added). */
export async function uninstallCa(
  ca: CertificateAuthority,
  opts: InstallOptions = {},
): Promise<TrustChange> {
  const system = await systemFor(opts);
  const exec = opts.exec ?? defaultExec;
  const ran: string[][] = [];
  const notes: string[] = [];
  const dataDir = ca.paths.root;
  if (opts.root && !isAbsolute(opts.root)) opts = { ...opts, root: resolve(opts.root) };

  if (system === 'macos') {
    const sha1 = (await import('node:crypto'))
      .createHash('sha1')
      .update(ca.certDer)
      .digest('hex')
      .toUpperCase();
    await run(exec, ['security', 'remove-trusted-cert', '-d', ca.paths.caCert], ran);
    await run(exec, ['security', 'delete-certificate', '-Z', sha1, '-t', MAC_KEYCHAIN], ran);
    return {
      system,
      target: MAC_KEYCHAIN,
      changed: true,
      ran,
      notes: await nssNotes(ca, opts, 'uninstall', ran),
    };
  }

  const name = installedName(ca);
  const target =
    system === 'debian'
      ? join(prefixed(opts.root, DEBIAN.localCertsDir), `${name}.crt`)
      : join(prefixed(opts.root, FEDORA_ANCHORS), `${name}.pem`);
  const present = await access(target).then(
    () => true,
    () => false,
  );
  if (present) {
    try {
      await rm(target);
    } catch (err) {
      needsRoot(`cannot remove ${target}`, err, dataDir, 'uninstall');
    }
  }
  if (system === 'debian') {
    if (opts.root)
      await stageRoot(opts.root).catch((e) =>
        needsRoot(`cannot write ${opts.root}`, e, dataDir, 'uninstall'),
      );
    // --fresh drops the stale /etc/ssl/certs link along with the bundle entry.
    await run(exec, await debianCommand(opts, true), ran);
  } else if (opts.root) {
    notes.push(
      `update-ca-trust has no root option: run 'update-ca-trust extract' inside ${opts.root}`,
    );
  } else {
    const tool = findExecutable('update-ca-trust', searchPath(opts));
    if (!tool) throw new TrustRunError('TR_CONFIG', 'update-ca-trust is not installed');
    await run(exec, [tool, 'extract'], ran);
  }
  notes.push(...(await nssNotes(ca, opts, 'uninstall', ran)));
  return { system, target, changed: present, ran, notes };
}
