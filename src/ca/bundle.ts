import { readFile } from 'node:fs/promises';
import { rootCertificates } from 'node:tls';
import { writeFileAtomic } from './files.js';

/** System trust stores, first found wins (Debian/Ubuntu, Fedora/RHEL, openSUSE, Alpine/macOS). */
export const SYSTEM_BUNDLES = [
  '/etc/ssl/certs/ca-certificates.crt',
  '/etc/pki/tls/certs/ca-bundle.crt',
  '/etc/ssl/ca-bundle.pem',
  '/etc/ssl/cert.pem',
];

const PEM_CERT = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----/g;

/** The certificates of a PEM text, each re-wrapped canonically (64 columns, LF). */
export function pemCertificates(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(PEM_CERT)) {
    const body = (m[1] ?? '').replace(/\s+/g, '');
    if (body) out.push(canonicalPem(body));
  }
  return out;
}

function canonicalPem(base64: string): string {
  const lines = base64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`;
}

async function systemStore(): Promise<string> {
  for (const file of SYSTEM_BUNDLES) {
    try {
      return await readFile(file, 'utf8');
    } catch {
      // not this distribution's path
    }
  }
  return '';
}

/**
 * The bundle for variables that *replace* a client's trust store: the system's roots (the OS
 * store, then Node's bundled Mozilla roots), deduplicated, followed by our CA — so hosts that are
 * tunnelled rather than intercepted still verify.
 */
export async function buildBundle(caPem: string): Promise<string> {
  const ours = pemCertificates(caPem)[0];
  if (!ours) throw new Error('CA certificate has no PEM block');
  const seen = new Set<string>([ours]);
  const parts: string[] = [];
  for (const pem of [
    ...pemCertificates(await systemStore()),
    ...rootCertificates.flatMap(pemCertificates),
  ]) {
    if (seen.has(pem)) continue;
    seen.add(pem);
    parts.push(pem);
  }
  parts.push(ours);
  return parts.join('');
}

/** Writes the bundle when it is missing or differs (our CA or the system roots changed). */
export async function ensureBundle(file: string, caPem: string): Promise<boolean> {
  const want = await buildBundle(caPem);
  let have: string | null = null;
  try {
    have = await readFile(file, 'utf8');
  } catch {
    have = null;
  }
  if (have === want) return false;
  await writeFileAtomic(file, want, 0o644);
  return true;
}
