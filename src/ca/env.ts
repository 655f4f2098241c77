import { TrustRunError, type DataPaths } from '../core/index.js';
import { loadOrCreateCa, type CertificateAuthority } from './authority.js';
import { writeShims } from './shims.js';

/** Variables that replace a client's trust store: they get the bundle (system roots + our CA). */
export const BUNDLE_VARIABLES = [
  'SSL_CERT_FILE',
  'CURL_CA_BUNDLE',
  'REQUESTS_CA_BUNDLE',
  'GIT_SSL_CAINFO',
  'AWS_CA_BUNDLE',
  'PIP_CERT',
  'CARGO_HTTP_CAINFO',
  'DENO_CERT',
  'PERL_LWP_SSL_CA_FILE',
  'HTTPLIB2_CA_CERTS',
  'GRPC_DEFAULT_SSL_ROOTS_FILE_PATH',
  'CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE',
  'NIX_SSL_CERT_FILE',
] as const;

export const PROXY_VARIABLES = [
  'HTTPS_PROXY',
  'https_proxy',
  'HTTP_PROXY',
  'http_proxy',
  'ALL_PROXY',
  'all_proxy',
] as const;

export interface CaEnvironmentOptions {
  paths: DataPaths;
  /** When given, the proxy variables (both cases) point at it. */
  proxyUrl?: string;
  /** NO_PROXY / no_proxy with proxyUrl; default empty: everything, loopback too, goes through the proxy. */
  noProxy?: string;
  /** The environment the variables will join (default process.env): an existing R_PROFILE or WGETRC is kept in. */
  env?: NodeJS.ProcessEnv;
  /** The CA of `paths`, when the caller has loaded it already. */
  ca?: CertificateAuthority;
}

/**
 * The variables that make the runtimes of docs/ca.md trust the CA (and, with proxyUrl, use the
 * proxy). Creates the CA on first use and writes the bundle and the R / wget shims.
 */
export async function caEnvironment(opts: CaEnvironmentOptions): Promise<Record<string, string>> {
  const proxy = opts.proxyUrl === undefined ? undefined : checkProxyUrl(opts.proxyUrl);
  if (opts.noProxy !== undefined && /[\x00-\x1f\x7f]/.test(opts.noProxy)) {
    throw new TrustRunError(
      'TR_USAGE',
      `no-proxy list contains a control character: ${JSON.stringify(opts.noProxy)}`,
    );
  }
  const { paths } = opts;
  if (!opts.ca) await loadOrCreateCa(paths);
  const shims = await writeShims(paths, opts.env ?? process.env);
  const vars: Record<string, string> = {};
  for (const name of BUNDLE_VARIABLES) vars[name] = paths.caBundle;
  vars.NODE_EXTRA_CA_CERTS = paths.caCert;
  vars.R_PROFILE = shims.rProfile;
  vars.WGETRC = shims.wgetrc;
  if (proxy !== undefined) {
    for (const name of PROXY_VARIABLES) vars[name] = proxy;
    vars.NO_PROXY = opts.noProxy ?? '';
    vars.no_proxy = opts.noProxy ?? '';
  }
  return vars;
}

function checkProxyUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new TrustRunError('TR_USAGE', `proxy URL '${raw}' is not a URL`, {
      hint: 'use http://127.0.0.1:PORT',
    });
  }
  if (
    (url.protocol !== 'http:' && url.protocol !== 'https:') ||
    !url.hostname ||
    (url.pathname !== '/' && url.pathname !== '')
  ) {
    throw new TrustRunError('TR_USAGE', `proxy URL '${raw}' must be http://HOST:PORT`, {
      hint: 'use http://127.0.0.1:PORT',
    });
  }
  return raw;
}

export type ShellKind = 'sh' | 'fish' | 'powershell';
export const SHELLS: readonly ShellKind[] = ['sh', 'fish', 'powershell'];

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Renders variables as lines a shell evaluates: `eval "$(trustrun ca env)"` (sh, bash, zsh),
 * `trustrun ca env --shell fish | source`, `trustrun ca env --shell powershell | Out-String |
 * Invoke-Expression`. Values are single-quoted, so nothing in them is expanded.
 */
export function formatEnv(vars: Record<string, string>, shell: ShellKind): string {
  const lines = Object.entries(vars).map(([name, value]) => {
    if (!NAME.test(name))
      throw new TrustRunError('TR_USAGE', `invalid environment variable name '${name}'`);
    switch (shell) {
      case 'sh':
        return `export ${name}='${value.replace(/'/g, `'\\''`)}'`;
      case 'fish':
        return `set -gx ${name} '${value.replace(/[\\']/g, '\\$&')}'`;
      case 'powershell':
        // PowerShell also ends single-quoted strings at the typographic quotes; doubling escapes.
        return `$env:${name} = '${value.replace(/['\u2018\u2019\u201a\u201b]/g, '$&$&')}'`;
      default:
        throw new TrustRunError(
          'TR_USAGE',
          `unknown shell '${String(shell)}' (use sh, fish or powershell)`,
        );
    }
  });
  return lines.length ? lines.join('\n') + '\n' : '';
}
