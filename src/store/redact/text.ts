/**
 * Redaction of free text: secrets written as `key=value` / `"key": "value"` / `<key>value</key>`,
 * bearer tokens and JWTs, and PHI patterns (SSN, MRN and DOB next to a context word, NANP phone
 * numbers, e-mail addresses). Every pattern is compiled once; every repetition is bounded and
 * every match start is anchored by a look-behind, so the cost stays linear in the text's length.
 */
import { phiKeyKind, secretKeyKind } from './keys.js';
import { Applied, isMarker, marker, type Redaction } from './types.js';

/** Between a context word and its value: `: `, ` is `, `": "`, ` #`, ` value="`, … */
const GAP = String.raw`[^A-Za-z0-9\n]{0,6}(?:(?:is|was|on|no\.?|num(?:ber)?|value)[^A-Za-z0-9\n]{0,6})?`;

/** The start of key=value, key: value, "key": … (the value is matched separately, see VALUE). */
const KEY_HEAD = /(?<![\w.%-])(["']?)([A-Za-z_%][\w.%-]{0,127})\1([ \t]*[:=][ \t]*)/g;

/**
 * The value after a secret key: a marker, a quoted string (possibly cut off), or a bare word.
 * Unbounded on purpose (a long SAML assertion is masked whole): it is only tried once, at the
 * position right after a secret key, so it cannot make the scan quadratic.
 */
const VALUE = new RegExp(
  String.raw`\[REDACTED:[a-z][a-z0-9-]*\]` +
    String.raw`|"(?:[^"\\\n]|\\.)*"?` +
    String.raw`|'(?:[^'\\\n]|\\.)*'?` +
    String.raw`|(?:(?:bearer|basic|token|digest|negotiate|ntlm|apikey|api-key|key|sso-key|dpop|mac|hawk|oauth|ssws)[ \t]+)?[^\s&,;"'<>{}[\]]+`,
  'iy',
);

/** <password>…</password>, <ns:ssn>…</ns:ssn> */
const XML_ELEMENT =
  /<((?:[A-Za-z_][\w.-]{0,63}:)?([A-Za-z_][\w.-]{0,63}))(\s[^<>]{0,1024})?>([^<]{1,8192})<\/\1>/g;

/** FHIR XML names: <family value="…"/>, <given value="…"/> */
const FHIR_XML_NAME = /(<(?:family|given|prefix|suffix)\b[^<>]{0,256}?\bvalue=")([^"]*)(")/g;

/**
 * `scheme://user:password@host` in text (a connection string in a JSON value, a Link header): the
 * userinfo up to the last `@` before the host. Bounded, and anchored at the scheme's start.
 */
const URL_USERINFO =
  /(?<![A-Za-z0-9+.-])([A-Za-z][A-Za-z0-9+.-]{0,31}:\/\/)(?!\[REDACTED:)([^\s/?#"'<>[\]{}]{1,256})@(?=[A-Za-z0-9[])/g;

const BEARER = /(?<![A-Za-z0-9_-])(bearer[ \t]+)(?!\[REDACTED)([A-Za-z0-9._~+/=-]{8,})/gi;
const JWT = /(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*/g;

const SSN_DASHED = /(?<!\d)(?<!\d-)(\d{3})-(\d{2})-(\d{4})(?!-?\d)/g;
const SSN_CONTEXT = new RegExp(
  String.raw`((?<!\[REDACTED:)\b(?:ssn|ss#|ss no\.?|social[ _-]?security(?:[ _-]?(?:number|no\.?|#))?)(?![A-Za-z])${GAP})(\d{3})([ -]?)(\d{2})\3(\d{4})(?!\d)`,
  'gi',
);

const MRN_CONTEXT = new RegExp(
  String.raw`((?<!\[REDACTED:)\b(?:mrn|mr ?#|mr no\.?|medical[ _-]?record(?:[ _-]?(?:number|num|no\.?|#))?|patient[ _-]?(?:identifier|id|number|no\.?|#)|chart[ _-]?(?:number|no\.?|#))(?![A-Za-z])${GAP})` +
    String.raw`((?=[A-Za-z0-9-]{0,19}\d)[A-Za-z0-9][A-Za-z0-9-]{2,19})(?![A-Za-z0-9-])`,
  'gi',
);

const MONTHS = String.raw`(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)`;
const DATE =
  String.raw`(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}` +
  String.raw`|\d{1,2}[-/.]\d{1,2}[-/.](?:\d{4}|\d{2})` +
  String.raw`|${MONTHS}\.? \d{1,2}(?:st|nd|rd|th)?,? \d{4}` +
  String.raw`|\d{1,2}(?:st|nd|rd|th)? ${MONTHS}\.?,? \d{4}` +
  String.raw`|\d{8})`;
const DOB_CONTEXT = new RegExp(
  String.raw`((?<!\[REDACTED:)\b(?:dob|d\.o\.b\.?|date[ _-]?of[ _-]?birth|birth[ _-]?date|birthday|born)(?![A-Za-z])${GAP})(${DATE})(?!\d)`,
  'gi',
);

const EMAIL =
  /(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}(?![\w-])/g;

/** (555) 123-4567, 555-123-4567, 555.123.4567, 555 123 4567, +1 555 123 4567, 1-555-123-4567 */
const PHONE_FORMATTED =
  /(?<![\w+.-])(?:\+?1[ .-]?)?(?:\((\d{3})\)[ .-]?|(\d{3})[ .-])(\d{3})[ .-](\d{4})(?![\w-]|\.\d)/g;
/** +15551234567 */
const PHONE_E164 = /(?<![\w+])\+1(\d{3})(\d{3})(\d{4})(?!\d)/g;
/** 5551234567 after a context word: phone: 5551234567, tel 15551234567 */
const PHONE_CONTEXT = new RegExp(
  String.raw`((?<!\[REDACTED:)\b(?:phone|telephone|tel|mobile|cell|fax|ph)(?:[ _-]?(?:no\.?|number|#))?(?![A-Za-z])${GAP})(?:\+?1)?(\d{3})(\d{3})(\d{4})(?!\d)`,
  'gi',
);

/** Cheap test: text without any of these cannot match any pattern above. */
const MAYBE = /[\d@:=<]|bearer|eyJ/i;

function validSsn(area: string, group: string, serial: string): boolean {
  if (area === '000' || area === '666' || area[0] === '9') return false;
  return group !== '00' && serial !== '0000';
}

function validNanp(area: string, exchange: string): boolean {
  // NPA and NXX start with 2-9; N11 codes are service codes; NPAs of the form N9X are reserved.
  if (area[0] === '0' || area[0] === '1' || area[1] === '9') return false;
  if (area[1] === '1' && area[2] === '1') return false;
  if (exchange[0] === '0' || exchange[0] === '1') return false;
  return !(exchange[1] === '1' && exchange[2] === '1');
}

const URL_CONTEXT_CHARS = new Set(['?', '&', ';', '#']);
/** Values that hide nothing: empty quotes, null, true, false. */
const EMPTY_OR_LITERAL = /^(?:""?|''?|null|true|false|undefined|none)$/i;

class TextRedactor {
  constructor(
    private readonly applied: Applied,
    private readonly location: string,
  ) {}

  private mask(kind: string): string {
    this.applied.add(kind, this.location);
    return marker(kind);
  }

  /**
   * Finds each `key` + separator once (linear); only after a secret key is the value read, so
   * `a=password=x` and `next=/cb?token=x` still find the secret inside another value.
   */
  keyValues(text: string): string {
    if (!text.includes('=') && !text.includes(':')) return text;
    const head = KEY_HEAD;
    head.lastIndex = 0;
    let out = '';
    let done = 0;
    for (let m = head.exec(text); m !== null; m = head.exec(text)) {
      const [whole, quote = '', key = '', sep = ''] = m;
      const valueAt = m.index + whole.length;
      // `?key=` and `&code=` are URL parameters; `"key":` is a JSON member; otherwise prose.
      const urlContext = quote === '' && URL_CONTEXT_CHARS.has(text[m.index - 1] ?? '');
      const place = urlContext && sep.trim() === '=' ? 'url' : quote !== '' ? 'json' : 'text';
      const kind = secretKeyKind(key, place);
      if (kind === null) continue;
      VALUE.lastIndex = valueAt;
      const value = VALUE.exec(text)?.[0] ?? '';
      if (value === '') continue;
      const q = value[0] === '"' || value[0] === "'" ? value[0] : '';
      const closing = q !== '' && value.length > 1 && value.endsWith(q) ? q : '';
      const inner = value.slice(q.length, value.length - closing.length);
      // Read past the value either way, so a second pass parses the text as the first did.
      head.lastIndex = valueAt + value.length;
      if (inner === '' || isMarker(inner) || EMPTY_OR_LITERAL.test(value)) continue;
      out += `${text.slice(done, valueAt)}${q}${this.mask(kind)}${closing}`;
      done = valueAt + value.length;
    }
    return done === 0 ? text : out + text.slice(done);
  }

  xmlElements(text: string): string {
    if (!text.includes('</')) return text;
    return text.replace(
      XML_ELEMENT,
      (whole: string, tag: string, local: string, attrs: string | undefined, content: string) => {
        if (content.trim() === '' || isMarker(content)) return whole;
        const kind = secretKeyKind(local, 'json') ?? phiKeyKind(local);
        if (!kind) return whole;
        return `<${tag}${attrs ?? ''}>${this.mask(kind)}</${tag}>`;
      },
    );
  }

  fhirXmlNames(text: string): string {
    if (!text.includes('hl7.org/fhir')) return text;
    return text.replace(
      FHIR_XML_NAME,
      (whole: string, open: string, value: string, close: string) =>
        value === '' || isMarker(value) ? whole : `${open}${this.mask('name')}${close}`,
    );
  }

  userinfo(text: string): string {
    if (!text.includes('://')) return text;
    return text.replace(
      URL_USERINFO,
      (_whole: string, scheme: string) => `${scheme}${this.mask('userinfo')}@`,
    );
  }

  tokens(text: string): string {
    let out = text;
    if (/bearer/i.test(out)) {
      out = out.replace(BEARER, (whole: string, scheme: string, token: string) =>
        token.length >= 16 || /\d/.test(token) ? `${scheme}${this.mask('authorization')}` : whole,
      );
    }
    if (out.includes('eyJ')) out = out.replace(JWT, () => this.mask('token'));
    return out;
  }

  phi(text: string): string {
    let out = text;
    if (/\d/.test(out)) {
      out = out.replace(SSN_DASHED, (whole: string, a: string, g: string, s: string) =>
        validSsn(a, g, s) ? this.mask('ssn') : whole,
      );
      out = out.replace(
        SSN_CONTEXT,
        (whole: string, ctx: string, a: string, _sep: string, g: string, s: string) =>
          validSsn(a, g, s) ? ctx + this.mask('ssn') : whole,
      );
      out = out.replace(MRN_CONTEXT, (whole: string, ctx: string, value: string) =>
        /\d/.test(value) ? ctx + this.mask('mrn') : whole,
      );
      out = out.replace(DOB_CONTEXT, (_whole: string, ctx: string) => ctx + this.mask('dob'));
    }
    if (out.includes('@')) out = out.replace(EMAIL, () => this.mask('email'));
    if (/\d/.test(out)) {
      out = out.replace(
        PHONE_CONTEXT,
        (whole: string, ctx: string, area: string, exchange: string) =>
          validNanp(area, exchange) ? ctx + this.mask('phone') : whole,
      );
      out = out.replace(
        PHONE_FORMATTED,
        (
          whole: string,
          parenArea: string | undefined,
          area: string | undefined,
          exchange: string,
        ) => (validNanp(parenArea ?? area ?? '', exchange) ? this.mask('phone') : whole),
      );
      out = out.replace(PHONE_E164, (whole: string, area: string, exchange: string) =>
        validNanp(area, exchange) ? this.mask('phone') : whole,
      );
    }
    return out;
  }
}

/** Redacts `text`, adding what it masked to `applied` under `location`. */
export function redactTextInto(text: string, applied: Applied, location: string): string {
  if (text.length < 5 || !MAYBE.test(text)) return text;
  const r = new TextRedactor(applied, location);
  let out = r.userinfo(text);
  out = r.keyValues(out);
  out = r.xmlElements(out);
  out = r.fhirXmlNames(out);
  out = r.tokens(out);
  return r.phi(out);
}

/**
 * Masks secrets and PHI patterns in free text. Each masked value becomes `[REDACTED:<kind>]`;
 * context words (`SSN:`, `DOB`, `password=`) stay visible.
 */
export function redactText(
  text: string,
  location = 'text',
): { text: string; applied: Redaction[] } {
  const applied = new Applied();
  const out = redactTextInto(text, applied, location);
  return { text: out, applied: applied.list() };
}
