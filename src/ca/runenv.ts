import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TrustRunError, ensurePrivateDir, type DataPaths } from '../core/index.js';
import { loadOrCreateCa, type CertificateAuthority } from './authority.js';
import { pemCertificates } from './bundle.js';
import { caEnvironment } from './env.js';
import { writeFileAtomic } from './files.js';
import { ensureJavaTrustStore, javaToolOptions, type JavaTrustStore } from './java.js';
import { TEMPLATE_DIR } from './shims.js';

/** The Node preload shipped with the package (top-level shims/), from src/ca or dist/ca alike. */
export const NODE_PRELOAD = join(TEMPLATE_DIR, 'node-preload.cjs');

export interface RunEnvironmentOptions {
  paths: DataPaths;
  /** The proxy every variable points at: http://127.0.0.1:PORT. */
  proxyUrl: string;
  /** The environment the child would otherwise get (default process.env); not modified. */
  baseEnv?: NodeJS.ProcessEnv;
  /** NO_PROXY / no_proxy (default empty: every destination, loopback too, goes through the proxy). */
  noProxy?: string;
  /** The Node preload to load (default: the one shipped with TrustRun). */
  preload?: string;
  /** The CA of `paths`, when the caller has loaded it already. */
  ca?: CertificateAuthority;
}

export interface RunEnvironment {
  /** The child's whole environment: baseEnv with `vars` laid over it. */
  env: NodeJS.ProcessEnv;
  /** What TrustRun set or changed, by name. */
  vars: Record<string, string>;
  javaTrustStore: JavaTrustStore;
}

/**
 * A NODE_OPTIONS word. Node splits NODE_OPTIONS at spaces and reads double-quoted strings with
 * backslash escapes, so a path with a space, quote or backslash is quoted.
 */
function nodeOptionWord(s: string): string {
  if (/[\x00-\x1f\x7f]/.test(s)) {
    throw new TrustRunError('TR_CONFIG', `cannot pass ${JSON.stringify(s)} in NODE_OPTIONS`);
  }
  return /[\s"'\\]/.test(s) ? `"${s.replace(/[\\"]/g, '\\$&')}"` : s;
}

/** Appends `--require PRELOAD` to an existing NODE_OPTIONS, once. */
export function withNodePreload(existing: string | undefined, preload: string): string {
  const word = `--require ${nodeOptionWord(preload)}`;
  const prior = (existing ?? '').trim();
  if (prior.includes(word)) return prior;
  return prior ? `${prior} ${word}` : word;
}

/**
 * NODE_EXTRA_CA_CERTS takes one file. When the user already names one, the child gets a file with
 * theirs and ours, so neither is lost.
 */
async function nodeExtraCa(paths: DataPaths, prior: string | undefined): Promise<string> {
  if (!prior || prior === paths.caCert) return paths.caCert;
  let text: string;
  try {
    text = await readFile(prior, 'utf8');
  } catch {
    return paths.caCert; // Node itself would only warn about an unreadable file.
  }
  const ours = await readFile(paths.caCert, 'utf8');
  const file = join(paths.shimsDir, 'node-extra-ca.pem');
  const certs = [...new Set([...pemCertificates(text), ...pemCertificates(ours)])];
  ensurePrivateDir(paths.shimsDir);
  await writeFileAtomic(file, certs.join(''), 0o600);
  return file;
}

/**
 * The environment of a program run under `trustrun run` (and `learn`): caEnvironment's proxy and
 * trust variables (both cases, bundle for every store-replacing variable, R start-up shim,
 * wgetrc), plus the Node preload in NODE_OPTIONS and Java's trust store and proxy in
 * JAVA_TOOL_OPTIONS (both appended to what is already set). Every generated file lives in the
 * data directory's shims/ (0700, files 0600).
 */
export async function runEnvironment(opts: RunEnvironmentOptions): Promise<RunEnvironment> {
  const base = opts.baseEnv ?? process.env;
  const { paths, proxyUrl } = opts;
  const ca = opts.ca ?? (await loadOrCreateCa(paths));
  const vars = await caEnvironment({
    paths,
    proxyUrl,
    noProxy: opts.noProxy ?? '',
    env: base,
    ca,
  });
  vars.NODE_EXTRA_CA_CERTS = await nodeExtraCa(paths, base.NODE_EXTRA_CA_CERTS);
  vars.NODE_OPTIONS = withNodePreload(base.NODE_OPTIONS, opts.preload ?? NODE_PRELOAD);
  const javaTrustStore = await ensureJavaTrustStore(ca, paths);
  const java = javaToolOptions(javaTrustStore, proxyUrl);
  const priorJava = (base.JAVA_TOOL_OPTIONS ?? '').trim();
  vars.JAVA_TOOL_OPTIONS = priorJava ? `${priorJava} ${java}` : java;
  const env: NodeJS.ProcessEnv = { ...base, ...vars };
  return { env, vars, javaTrustStore };
}
