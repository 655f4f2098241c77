/**
 * Reads SNI and ALPN from a TLS ClientHello without terminating TLS (metadata level).
 * Only as many bytes as the first handshake record needs are examined; anything malformed
 * yields `complete: true` with no fields, and the tunnel goes on untouched.
 */
export interface ClientHelloInfo {
  /** false while more bytes are needed to see the whole ClientHello. */
  complete: boolean;
  isTls: boolean;
  sni: string | null;
  alpn: string[];
}

const NONE: ClientHelloInfo = { complete: true, isTls: false, sni: null, alpn: [] };

/** The most bytes worth waiting for before giving up on a ClientHello. */
export const CLIENT_HELLO_MAX = 16 * 1024 + 5;

export function parseClientHello(buf: Buffer): ClientHelloInfo {
  if (buf.length < 1) return { ...NONE, complete: false };
  if (buf[0] !== 0x16) return NONE;
  if (buf.length < 5) return { complete: false, isTls: true, sni: null, alpn: [] };
  const recordLen = buf.readUInt16BE(3);
  if (buf.length < 5 + recordLen) {
    return { complete: buf.length >= CLIENT_HELLO_MAX, isTls: true, sni: null, alpn: [] };
  }
  try {
    return { complete: true, isTls: true, ...parseHandshake(buf.subarray(5, 5 + recordLen)) };
  } catch {
    return { complete: true, isTls: true, sni: null, alpn: [] };
  }
}

function parseHandshake(h: Buffer): { sni: string | null; alpn: string[] } {
  const out = { sni: null as string | null, alpn: [] as string[] };
  if (h[0] !== 0x01) return out; // not a ClientHello
  let p = 4 + 2 + 32; // handshake header, client version, random
  p += 1 + h.readUInt8(p); // session id
  p += 2 + h.readUInt16BE(p); // cipher suites
  p += 1 + h.readUInt8(p); // compression methods
  if (p + 2 > h.length) return out;
  const extEnd = p + 2 + h.readUInt16BE(p);
  p += 2;
  while (p + 4 <= extEnd && p + 4 <= h.length) {
    const type = h.readUInt16BE(p);
    const len = h.readUInt16BE(p + 2);
    const body = h.subarray(p + 4, p + 4 + len);
    p += 4 + len;
    if (type === 0x0000) {
      // server_name: list length, then entries of (type, length, name)
      let q = 2;
      while (q + 3 <= body.length) {
        const nameType = body.readUInt8(q);
        const nameLen = body.readUInt16BE(q + 1);
        if (nameType === 0) {
          out.sni = body.subarray(q + 3, q + 3 + nameLen).toString('latin1');
          break;
        }
        q += 3 + nameLen;
      }
    } else if (type === 0x0010) {
      // ALPN: list length, then (length, protocol) pairs
      let q = 2;
      while (q + 1 <= body.length) {
        const l = body.readUInt8(q);
        out.alpn.push(body.subarray(q + 1, q + 1 + l).toString('latin1'));
        q += 1 + l;
      }
    }
  }
  return out;
}
