import { Option, type Command } from 'commander';
import { writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import {
  SHELLS,
  caEnvironment,
  exportCa,
  formatEnv,
  loadOrCreateCa,
  type ExportFormat,
  type ShellKind,
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
  format?: ExportFormat;
  output?: string;
}

/** `trustrun ca export`: the certificate bytes; written to `output` when given. */
export async function caExport(opts: CaExportOptions): Promise<Buffer> {
  const format = opts.format ?? 'pem';
  const ca = await loadOrCreateCa(dataPaths(dataDirFrom(opts)));
  const data = exportCa(ca, format);
  if (opts.output) await writeFile(opts.output, data, { mode: 0o644 });
  return data;
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
    .addOption(new Option('--format <format>', 'encoding').choices(['pem', 'der']).default('pem'))
    .option('-o, --output <file>', 'write to this file instead of stdout')
    .action(async (opts: CaExportOptions) => {
      if (!opts.output && opts.format === 'der' && process.stdout.isTTY) {
        throw new TrustRunError('TR_USAGE', 'refusing to write DER bytes to a terminal', {
          hint: 'use -o FILE or redirect stdout',
        });
      }
      const data = await caExport(opts);
      if (opts.output)
        process.stderr.write(`Wrote the CA certificate (${opts.format}) to ${opts.output}\n`);
      else process.stdout.write(data);
    });
}
