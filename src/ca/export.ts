import { TrustRunError } from '../core/index.js';
import type { CertificateAuthority } from './authority.js';

export type ExportFormat = 'pem' | 'der';

/** The CA certificate (never the key) as PEM text or DER bytes. */
export function exportCa(ca: CertificateAuthority, format: ExportFormat): Buffer {
  if (format === 'pem') return Buffer.from(ca.certPem, 'utf8');
  if (format === 'der') return Buffer.from(ca.certDer);
  throw new TrustRunError('TR_USAGE', `unknown export format '${String(format)}' (use pem or der)`);
}
