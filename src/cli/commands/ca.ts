import { Option, type Command } from 'commander';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import {
  SHELLS,
  TRUST_SYSTEMS,
  caEnvironment,
  exportCa,
  exportCaPkcs12,
  formatEnv,
  installCa,
  loadOrCreateCa,
  uninstallCa,
  type ExportFormat,
  type ShellKind,
  type TrustChange,
  type TrustSystem,
} from '../../ca/index.js';
import { TrustRunError, dataPaths } from '../../core/index.js';
import { addDataDirOption, dataDirFrom, printJson, type CommonOptions } from '../common.js';

export interface CaInitResult {
  created: boolean;
  certPath: string;
  keyPath: string;
  bundlePath: string;
  fingerprint256: string;
  subject: string;
  notAfter: string;
}

/** `trustrun ca init`: creates the CA when missing; describes it either way. */
export async function caInit(opts: CommonOptions): Promise<CaInitResult> {
  const paths = dataPaths(dataDirFrom(opts));
  const existed = existsSync(paths.caCert);
  const ca = await loadOrCreateCa(paths);
  return {
    created: !existed,
    certPath: paths.caCert,
    keyPath: paths.caKey,
    bundlePath: paths.caBundle,
    fingerprint256: ca.fingerprint256,
    subject: ca.subject,
    notAfter: ca.notAfter.toISOString(),
  };
}

/** `trustrun ca path`: where the CA certificate is (or will be); never creates it. */
export function caPath(opts: CommonOptions): { path: string; exists: boolean } {
  const { caCert } = dataPaths(dataDirFrom(opts));
  return { path: caCert, exists: existsSync(caCert) };
}

export interface CaEnvOptions extends CommonOptions {
  shell?: ShellKind;
  proxy?: string;
  bypass?: string;
}

/** `trustrun ca env`: the shell lines that make clients trust the CA (and use a proxy). */
export async function caEnv(opts: CaEnvOptions): Promise<string> {
  const shell = opts.shell ?? 'sh';
  if (!SHELLS.includes(shell)) {
    throw new TrustRunError('TR_USAGE', `unknown shell '${shell}' (use ${SHELLS.join(', ')})`);
  }
  const vars = await caEnvironment({
    paths: dataPaths(dataDirFrom(opts)),
    proxyUrl: opts.proxy,
    noProxy: opts.bypass,
  });
  return formatEnv(vars, shell);
}

export interface CaExportOptions extends CommonOptions {
  format?: ExportFormat | 'p12';
  output?: string;
  /** p12 only: the store's password (default: a random one, see caExport's result). */
  password?: string;
}

/**
 * `trustrun ca export`: the certificate bytes; written to `output` when given. For p12 without
 * a password, `generatedPassword` holds the random one used.
 */
export async function caExport(
  opts: CaExportOptions,
): Promise<Buffer & { generatedPassword?: string }> {
  const format = opts.format ?? 'pem';
  const ca = await loadOrCreateCa(dataPaths(dataDirFrom(opts)));
  let data: Buffer & { generatedPassword?: string };
  if (format === 'p12') {
    const generated =
      opts.password === undefined ? randomBytes(12).toString('base64url') : undefined;
    data = exportCaPkcs12(ca, opts.password ?? (generated as string));
    if (generated) data.generatedPassword = generated;
  } else {
    if (opts.password !== undefined) {
      throw new TrustRunError('TR_USAGE', '--password applies to --format p12 only');
    }
    data = exportCa(ca, format);
  }
  if (opts.output) await writeFile(opts.output, data, { mode: 0o644 });
  return data;
}

export interface CaInstallOptions extends CommonOptions {
  root?: string;
  system?: TrustSystem;
}

/** `trustrun ca install`: adds the CA to the system trust store (needs root). */
export async function caInstall(opts: CaInstallOptions): Promise<TrustChange> {
  const ca = await loadOrCreateCa(dataPaths(dataDirFrom(opts)));
  return installCa(ca, { root: opts.root, system: opts.system });
}

/** `trustrun ca uninstall`: removes what `ca install` added. */
export async function caUninstall(opts: CaInstallOptions): Promise<TrustChange> {
  const ca = await loadOrCreateCa(dataPaths(dataDirFrom(opts)));
  return uninstallCa(ca, { root: opts.root, system: opts.system });
}

function reportTrustChange(r: TrustChange, verb: 'install' | 'uninstall', json?: boolean): void {
  if (json) return printJson(r);
  const err = process.stderr;
  if (verb === 'install') {
    err.write(
      `${r.changed ? 'Installed' : 'Already installed'}: the CA is trusted by the ${r.system} system store (${r.target})\n`,
    );
  } else {
    err.write(
      `${r.changed ? 'Removed' : 'Not installed'}: the CA is not in the ${r.system} system store (${r.target})\n`,
    );
  }
  for (const argv of r.ran) err.write(`  ran: ${argv.join(' ')}\n`);
  for (const note of r.notes) err.write(`${note}\n`);
}

function addTrustStoreOptions(cmd: Command): Command {
  return addDataDirOption(cmd)
    .addOption(
      new Option('--system <kind>', 'trust store to use (default: detected)').choices(
        TRUST_SYSTEMS,
      ),
    )
    .option(
      '--root <dir>',
      'prefix every system path with DIR (a staging root, for packaging and tests)',
    )
    .option('--json', 'print the result as JSON on stdout');
}

export function register(program: Command): void {
  const ca = program
    .command('ca')
    .description('the local CA that signs intercepted connections: create it, locate it, trust it');

  addDataDirOption(
    ca.command('init').description('create the CA if missing; print its path and fingerprint'),
  )
    .option('--json', 'print the result as JSON on stdout')
    .action(async (opts: CommonOptions) => {
      const r = await caInit(opts);
      if (opts.json) return printJson(r);
      process.stderr.write(
        `${r.created ? 'Created the CA' : 'The CA exists'}: ${r.certPath}\n` +
          `  subject: ${r.subject}\n  SHA-256 fingerprint: ${r.fingerprint256}\n  valid until: ${r.notAfter}\n`,
      );
    });

  addDataDirOption(ca.command('path').description('print the path of the CA certificate')).action(
    (opts: CommonOptions) => {
      const r = caPath(opts);
      process.stdout.write(r.path + '\n');
      if (!r.exists)
        process.stderr.write("trustrun: the CA does not exist yet; run 'trustrun ca init'\n");
    },
  );

  addDataDirOption(
    ca
      .command('env')
      .description(
        'print variables that make common runtimes trust the CA: eval "$(trustrun ca env)"',
      ),
  )
    .addOption(new Option('--shell <shell>', 'output syntax').choices(SHELLS).default('sh'))
    .option('--proxy <url>', 'also point the proxy variables at this proxy (http://127.0.0.1:PORT)')
    .option('--bypass <hosts>', 'with --proxy: NO_PROXY value (default: empty, nothing bypasses)')
    .action(async (opts: CaEnvOptions) => {
      process.stdout.write(await caEnv(opts));
    });

  addDataDirOption(ca.command('export').description('write the CA certificate (never the key)'))
    .addOption(
      new Option('--format <format>', 'encoding (p12: a PKCS#12 trust store, e.g. for Java)')
        .choices(['pem', 'der', 'p12'])
        .default('pem'),
    )
    .option('-o, --output <file>', 'write to this file instead of stdout')
    .option('--password <password>', 'p12: the store password (default: a random one, printed)')
    .action(async (opts: CaExportOptions) => {
      if (!opts.output && opts.format !== 'pem' && process.stdout.isTTY) {
        throw new TrustRunError(
          'TR_USAGE',
          `refusing to write ${opts.format} bytes to a terminal`,
          {
            hint: 'use -o FILE or redirect stdout',
          },
        );
      }
      const data = await caExport(opts);
      if (opts.output)
        process.stderr.write(`Wrote the CA certificate (${opts.format}) to ${opts.output}\n`);
      else process.stdout.write(data);
      if (data.generatedPassword)
        process.stderr.write(`PKCS#12 password: ${data.generatedPassword}\n`);
    });

  addTrustStoreOptions(
    ca
      .command('install')
      .description(
        'trust the CA in the system store (Debian/Ubuntu, Fedora/RHEL, macOS); needs root',
      ),
  ).action(async (opts: CaInstallOptions) =>
    reportTrustChange(await caInstall(opts), 'install', opts.json),
  );

  addTrustStoreOptions(
    ca.command('uninstall').description('remove the CA from the system store; needs root'),
  ).action(async (opts: CaInstallOptions) =>
    reportTrustChange(await caUninstall(opts), 'uninstall', opts.json),
  );
}
