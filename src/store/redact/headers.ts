/**
 * Header redaction: secret headers are masked whole (Authorization keeps a known scheme word,
 * cookies keep their names and attributes), URL headers are redacted as URLs, and every other
 * value goes through the text patterns. Names, order and repetitions are kept.
 */
import { AUTH_SCHEMES, URL_HEADERS, secretHeaderKind } from './keys.js';
import { redactTextInto } from './text.js';
import { redactUrlInto } from './url.js';
import { Applied, isMarker, marker, type Redaction } from './types.js';

const SCHEME_AND_CREDENTIALS = /^(\s*)([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)(\s+)(\S[\s\S]*)$/;
/** Several Set-Cookie values joined with commas; a comma inside `Expires=Wed, 21 Oct …` is not a split. */
const SET_COOKIE_SPLIT = /,(?=\s*[^;,=\s]+=)/;
const COOKIE_ATTRIBUTES: ReadonlySet<string> = new Set([
  'path',
  'domain',
  'expires',
  'max-age',
  'samesite',
  'secure',
  'httponly',
  'partitioned',
  'priority',
  'version',
  'comment',
]);

class HeaderRedactor {
  constructor(
    private readonly applied: Applied,
    private readonly location: string,
    private readonly kind: string,
  ) {}

  private mask(): string {
    this.applied.add(this.kind, this.location);
    return marker(this.kind);
  }

  /** The whole value, unless it is empty or already a marker. */
  whole(value: string): string {
    return value.trim() === '' || isMarker(value.trim()) ? value : this.mask();
  }

  /** `Bearer abc` -> `Bearer [REDACTED:authorization]`; an unknown first word is hidden too. */
  authorization(value: string): string {
    const m = SCHEME_AND_CREDENTIALS.exec(value);
    if (!m) return this.whole(value);
    const [, lead = '', scheme = '', gap = '', rest = ''] = m;
    if (!AUTH_SCHEMES.has(scheme.toLowerCase())) return this.whole(value);
    return isMarker(rest.trim()) ? value : `${lead}${scheme}${gap}${this.mask()}`;
  }

  /** `a=1; b=2` -> `a=[REDACTED:cookie]; b=[REDACTED:cookie]` */
  cookie(value: string): string {
    return value
      .split(';')
      .map((pair) => this.cookiePair(pair))
      .join(';');
  }

  private cookiePair(pair: string): string {
    const eq = pair.indexOf('=');
    if (eq < 0) {
      const bare = pair.trim();
      if (bare === '' || isMarker(bare)) return pair;
      return `${pair.slice(0, pair.length - pair.trimStart().length)}${this.mask()}`;
    }
    const value = pair.slice(eq + 1);
    if (value.trim() === '' || isMarker(value.trim())) return pair;
    return `${pair.slice(0, eq)}=${this.mask()}`;
  }

  /** `id=abc; Path=/; HttpOnly` -> `id=[REDACTED:cookie]; Path=/; HttpOnly` */
  setCookie(value: string): string {
    return value
      .split(SET_COOKIE_SPLIT)
      .map((one) => {
        const [first = '', ...attributes] = one.split(';');
        const shown = attributes.map((attr) => {
          const eq = attr.indexOf('=');
          const name = (eq < 0 ? attr : attr.slice(0, eq)).trim().toLowerCase();
          return COOKIE_ATTRIBUTES.has(name) ? attr : this.cookiePair(attr);
        });
        return [this.cookiePair(first), ...shown].join(';');
      })
      .join(',');
  }
}

/** Which redaction a header's value gets. */
function redactValue(name: string, value: string, applied: Applied): string {
  const lower = name.trim().toLowerCase();
  const location = `header:${lower}`;
  const kind = secretHeaderKind(lower);
  if (kind !== null) {
    const r = new HeaderRedactor(applied, location, kind);
    if (lower === 'authorization' || lower === 'proxy-authorization') return r.authorization(value);
    if (lower === 'cookie' || lower === 'cookie2') return r.cookie(value);
    if (lower === 'set-cookie' || lower === 'set-cookie2') return r.setCookie(value);
    return r.whole(value);
  }
  if (URL_HEADERS.has(lower)) {
    const local = new Applied();
    const out = redactUrlInto(value, local);
    applied.addAll(local.list(), location);
    return out;
  }
  return redactTextInto(value, applied, location);
}

/**
 * Masks secret header values (Authorization, Cookie, Set-Cookie, API-key and token headers, any
 * letter case, repeated or multi-valued) and PHI in the others. Names and order are unchanged.
 */
export function redactHeaders(headers: readonly (readonly [string, string])[]): {
  headers: [string, string][];
  applied: Redaction[];
} {
  const applied = new Applied();
  const out = headers.map(([name, value]): [string, string] => [
    name,
    redactValue(name, String(value), applied),
  ]);
  return { headers: out, applied: applied.list() };
}
