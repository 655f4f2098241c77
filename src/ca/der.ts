/**
 * A minimal DER encoder and reader: just what the CA and leaf certificates need (src/ca/x509.ts
 * builds both on it). Leaf minting builds the to-be-signed bytes here instead of through a
 * general ASN.1 library because it runs on the event loop for every new host (a general library
 * costs a few milliseconds per certificate; this costs a few microseconds).
 */

export function tlv(tag: number, content: Buffer): Buffer {
  const n = content.length;
  let header: Buffer;
  if (n < 0x80) header = Buffer.from([tag, n]);
  else if (n < 0x100) header = Buffer.from([tag, 0x81, n]);
  else if (n < 0x10000) header = Buffer.from([tag, 0x82, n >> 8, n & 0xff]);
  else header = Buffer.from([tag, 0x83, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.concat([header, content]);
}

export const seq = (...items: Buffer[]): Buffer => tlv(0x30, Buffer.concat(items));
export const set = (...items: Buffer[]): Buffer => tlv(0x31, Buffer.concat(items));
export const octets = (b: Buffer): Buffer => tlv(0x04, b);
export const bitString = (b: Buffer): Buffer => tlv(0x03, Buffer.concat([Buffer.from([0]), b]));
export const utf8 = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'));
export const bool = (v: boolean): Buffer => Buffer.from([0x01, 0x01, v ? 0xff : 0x00]);
export const NULL = Buffer.from([0x05, 0x00]);
/** Context-specific tag: explicit (constructed) or implicit primitive. */
export const explicit = (n: number, inner: Buffer): Buffer => tlv(0xa0 | n, inner);
export const implicit = (n: number, content: Buffer): Buffer => tlv(0x80 | n, content);

/** A positive INTEGER from big-endian bytes (adds a leading zero when the top bit is set). */
export function integer(bytes: Buffer): Buffer {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0 && (bytes[i + 1] as number) < 0x80) i++;
  let b = bytes.subarray(i);
  if ((b[0] as number) >= 0x80) b = Buffer.concat([Buffer.from([0]), b]);
  return tlv(0x02, b);
}

export function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const [a = 0, b = 0, ...rest] = parts;
  const out = [40 * a + b];
  for (const p of rest) {
    const chunk: number[] = [p & 0x7f];
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128))
      chunk.unshift((v & 0x7f) | 0x80);
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

/** UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 4.1.2.5); whole seconds, UTC. */
export function time(d: Date): Buffer {
  const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '') + 'Z';
  const year = d.getUTCFullYear();
  if (year >= 1950 && year < 2050) return tlv(0x17, Buffer.from(digits.slice(2), 'ascii'));
  return tlv(0x18, Buffer.from(digits, 'ascii'));
}

export interface Tlv {
  tag: number;
  /** Offset of the tag byte within the buffer read. */
  start: number;
  /** Offset of the content. */
  contentStart: number;
  /** Offset just past the content. */
  end: number;
}

/** Reads one TLV at `offset`; throws on truncated or indefinite-length input. */
export function readTlv(buf: Buffer, offset: number): Tlv {
  const tag = buf[offset];
  let lenByte = buf[offset + 1];
  if (tag === undefined || lenByte === undefined) throw new Error('truncated DER');
  let pos = offset + 2;
  let len = lenByte;
  if (lenByte & 0x80) {
    const count = lenByte & 0x7f;
    if (count === 0 || count > 4) throw new Error('unsupported DER length');
    len = 0;
    for (let i = 0; i < count; i++) {
      lenByte = buf[pos++];
      if (lenByte === undefined) throw new Error('truncated DER');
      len = len * 256 + lenByte;
    }
  }
  const end = pos + len;
  if (end > buf.length) throw new Error('truncated DER');
  return { tag, start: offset, contentStart: pos, end };
}

/** The children of a constructed TLV. */
export function children(buf: Buffer, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let pos = parent.contentStart; pos < parent.end;) {
    const t = readTlv(buf, pos);
    out.push(t);
    pos = t.end;
  }
  return out;
}

function tbsFields(certDer: Buffer): Tlv[] {
  const cert = readTlv(certDer, 0);
  const [tbs] = children(certDer, cert);
  if (!tbs) throw new Error('not a certificate');
  return children(certDer, tbs);
}

/** The exact DER bytes of a certificate's subject Name. */
export function certificateSubject(certDer: Buffer): Buffer {
  const fields = tbsFields(certDer);
  // version [0] is optional; subject is the 5th field after it.
  const offset = fields[0]?.tag === 0xa0 ? 1 : 0;
  const subject = fields[offset + 4];
  if (!subject || subject.tag !== 0x30) throw new Error('certificate has no subject');
  return certDer.subarray(subject.start, subject.end);
}

/** The extnValue content (inside the OCTET STRING) of a certificate extension, or null. */
export function certificateExtension(certDer: Buffer, extnId: string): Buffer | null {
  const wanted = oid(extnId);
  const wrapper = tbsFields(certDer).find((f) => f.tag === 0xa3);
  if (!wrapper) return null;
  const [list] = children(certDer, wrapper);
  if (!list) return null;
  for (const ext of children(certDer, list)) {
    const parts = children(certDer, ext);
    const id = parts[0];
    const value = parts.at(-1);
    if (!id || !value || value.tag !== 0x04) continue;
    if (certDer.subarray(id.start, id.end).equals(wanted)) {
      return certDer.subarray(value.contentStart, value.end);
    }
  }
  return null;
}

/** PEM text of DER bytes (64-column base64, LF line ends). */
export function pemEncode(label: string, bytes: Buffer): string {
  const lines = bytes.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
