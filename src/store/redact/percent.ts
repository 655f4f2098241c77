/** Percent-decoding that never throws, and re-encoding that leaves markers readable. */
import { MARKER_SPLIT } from './types.js';

const PERCENT_BYTE = /%([0-9A-Fa-f]{2})/;

/** Decodes `%XX` (and `+` as space when `plus`); malformed UTF-8 becomes U+FFFD instead of an error. */
export function percentDecode(raw: string, plus: boolean): string {
  const s = plus && raw.includes('+') ? raw.replace(/\+/g, ' ') : raw;
  if (!s.includes('%')) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    const bytes: number[] = [];
    for (let i = 0; i < s.length; i++) {
      const m = s[i] === '%' ? PERCENT_BYTE.exec(s.slice(i, i + 3)) : null;
      if (m && m[1]) {
        bytes.push(parseInt(m[1], 16));
        i += 2;
      } else {
        const cp = s.codePointAt(i) ?? 0;
        if (cp > 0xffff) i++;
        bytes.push(...Buffer.from(String.fromCodePoint(cp), 'utf8'));
      }
    }
    return Buffer.from(bytes).toString('utf8');
  }
}

/** Percent-encodes text for a URL component, keeping `[REDACTED:kind]` markers as they are. */
export function encodeKeepingMarkers(text: string): string {
  return text
    .split(MARKER_SPLIT)
    .map((part, i) => (i % 2 === 1 ? part : encodeURIComponent(part)))
    .join('');
}

/**
 * How a redacted URL component or form field is written back: as it was when nothing was
 * masked; as the redacted text when the original had no percent-encoding (so the unmasked text
 * keeps its spelling: `free text SSN [REDACTED:ssn] ok`, not `free%20text%20…`); re-encoded
 * otherwise.
 */
export function respell(raw: string, decoded: string, shown: string): string {
  if (shown === decoded) return raw;
  return raw === decoded ? shown : encodeKeepingMarkers(shown);
}
