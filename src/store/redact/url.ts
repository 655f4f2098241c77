/**
 * URL redaction: userinfo, secret query/fragment/matrix parameters, and PHI in path segments and
 * parameter values. Everything that is not masked keeps its original spelling and encoding.
 */
import { encodeKeepingMarkers, percentDecode, respell } from './percent.js';
import { phiKeyKind, secretKeyKind } from './keys.js';
import { redactTextInto } from './text.js';
import { Applied, isMarker, locationPart, marker, type Redaction } from './types.js';

/** RFC 3986 appendix B: scheme, authority, path, query, fragment. */
const URL_PARTS =
  /^(?:([A-Za-z][A-Za-z0-9+.-]*):)?(?:\/\/([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#([\s\S]*))?$/;
/** `user:pass@host:443` written without `//` (authority form). */
const BARE_USERINFO = /^([^/?#@\s]+)@((?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?)$/;
const LOOKS_LIKE_URL = /^(?:[A-Za-z][A-Za-z0-9+.-]*:\/\/|\/)[^\s]*[?#@;]/;
const MAX_DEPTH = 3;
/** A path segment that can name the next one (`/mrn/123`): a plain word. */
const CONTEXT_SEGMENT = /^[A-Za-z_][\w.-]{0,63}$/;

function maskRaw(value: string, kind: string, applied: Applied, location: string): string {
  if (value === '' || isMarker(percentDecode(value, true))) return value;
  applied.add(kind, location);
  return marker(kind);
}

/**
 * Redacts the value of a parameter that is not a secret: a nested URL (`redirect_uri=…`), PHI by
 * its key (`dob=…`), or PHI patterns. Returns the raw value, re-encoded only when changed.
 */
function redactPlainValue(
  key: string,
  raw: string,
  applied: Applied,
  location: string,
  ctx: ParamContext,
): string {
  if (raw === '') return raw;
  const decoded = percentDecode(raw, true);
  if (isMarker(decoded)) return raw;
  const phi = phiKeyKind(key) ?? (ctx.fhirPerson ? fhirSearchKind(key) : null);
  if (phi) return maskRaw(raw, phi, applied, location);
  const local = new Applied();
  const out =
    ctx.depth < MAX_DEPTH && LOOKS_LIKE_URL.test(decoded)
      ? redactUrlInto(decoded, local, ctx.depth + 1)
      : redactTextInto(decoded, local, location);
  if (out === decoded) return raw;
  applied.addAll(local.list(), location);
  return respell(raw, decoded, out);
}

interface ParamContext {
  /** Nesting of URLs inside parameter values. */
  depth: number;
  /** The path names a FHIR person resource, so its search parameters (`family=`, …) are PHI. */
  fhirPerson: boolean;
}

/** FHIR search parameters on Patient, Person, RelatedPerson and Practitioner that carry PHI. */
const FHIR_SEARCH: ReadonlyMap<string, string> = new Map([
  ['name', 'name'],
  ['family', 'name'],
  ['given', 'name'],
  ['phonetic', 'name'],
  ['identifier', 'identifier'],
  ['telecom', 'telecom'],
  ['phone', 'telecom'],
  ['email', 'telecom'],
  ['address', 'address'],
  ['address-city', 'address'],
  ['address-postalcode', 'address'],
  ['address-state', 'address'],
  ['birthdate', 'dob'],
  ['death-date', 'dob'],
]);
const FHIR_PERSON_PATH = /(?:^|\/)(?:Patient|Person|RelatedPerson|Practitioner)(?:\/|$)/;

function fhirSearchKind(key: string): string | null {
  const base = key.toLowerCase().split(':')[0] ?? '';
  return FHIR_SEARCH.get(base) ?? null;
}

/**
 * Redacts `a=1&b=2` parameter lists (query strings, fragments, form bodies). `prefix` names the
 * place in each redaction's location: 'query:', 'fragment:', 'body:form:'.
 */
export function redactParamsInto(
  params: string,
  applied: Applied,
  prefix: string,
  ctx: ParamContext = { depth: 0, fhirPerson: false },
): string {
  if (params === '') return params;
  return params
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const rawKey = eq < 0 ? pair : pair.slice(0, eq);
      const key = percentDecode(rawKey, true);
      const shownKey = redactTextInto(key, applied, `${prefix}key`);
      const newKey = respell(rawKey, key, shownKey);
      if (eq < 0) return newKey;
      const raw = pair.slice(eq + 1);
      const location = `${prefix}${locationPart(shownKey)}`;
      const kind = secretKeyKind(key, 'url');
      const value = kind
        ? maskRaw(raw, kind, applied, location)
        : redactPlainValue(key, raw, applied, location, ctx);
      return `${newKey}=${value}`;
    })
    .join('&');
}

/** One path segment: `;name=value` matrix parameters, then PHI by the previous segment or by pattern. */
function redactSegment(segment: string, previous: string, applied: Applied): string {
  const [head = '', ...params] = segment.split(';');
  const maskedParams = params.map((p) => {
    const eq = p.indexOf('=');
    if (eq < 0) return p;
    const key = percentDecode(p.slice(0, eq), false);
    const kind = secretKeyKind(key, 'url');
    return kind
      ? `${p.slice(0, eq)}=${maskRaw(p.slice(eq + 1), kind, applied, `path:${locationPart(key)}`)}`
      : p;
  });
  let out = head;
  const decoded = percentDecode(head, false);
  if (decoded !== '' && !isMarker(decoded)) {
    const phi = CONTEXT_SEGMENT.test(previous) ? phiKeyKind(previous) : null;
    if (phi) out = maskRaw(head, phi, applied, 'path');
    else {
      const shown = redactTextInto(decoded, applied, 'path');
      if (shown !== decoded) out = encodeKeepingMarkers(shown);
    }
  }
  return [out, ...maskedParams].join(';');
}

function redactPath(path: string, applied: Applied): string {
  if (path === '') return path;
  const segments = path.split('/');
  let previous = '';
  return segments
    .map((seg) => {
      const out = redactSegment(seg, previous, applied);
      previous = percentDecode(seg.split(';')[0] ?? '', false);
      return out;
    })
    .join('/');
}

function redactFragment(fragment: string, applied: Applied, ctx: ParamContext): string {
  if (fragment.includes('=')) return redactParamsInto(fragment, applied, 'fragment:', ctx);
  const decoded = percentDecode(fragment, false);
  const shown = redactTextInto(decoded, applied, 'fragment');
  return shown === decoded ? fragment : encodeKeepingMarkers(shown);
}

function redactAuthority(authority: string, applied: Applied): string {
  const at = authority.lastIndexOf('@');
  if (at < 0) return authority;
  return `${maskRaw(authority.slice(0, at), 'userinfo', applied, 'url:userinfo')}${authority.slice(at)}`;
}

export function redactUrlInto(url: string, applied: Applied, depth = 0): string {
  const bare = BARE_USERINFO.exec(url);
  if (bare && !/^mailto:/i.test(url)) {
    return `${maskRaw(bare[1] ?? '', 'userinfo', applied, 'url:userinfo')}@${bare[2] ?? ''}`;
  }
  const m = URL_PARTS.exec(url);
  if (!m) return redactTextInto(url, applied, 'url');
  const [, scheme, authority, path = '', query, fragment] = m;
  let out = scheme === undefined ? '' : `${scheme}:`;
  if (authority !== undefined) out += `//${redactAuthority(authority, applied)}`;
  out += redactPath(path, applied);
  const ctx: ParamContext = { depth, fhirPerson: FHIR_PERSON_PATH.test(path) };
  if (query !== undefined) out += `?${redactParamsInto(query, applied, 'query:', ctx)}`;
  if (fragment !== undefined) out += `#${redactFragment(fragment, applied, ctx)}`;
  return out;
}

/**
 * Masks the secrets and PHI in a URL or a path+query: userinfo, token-like query and fragment
 * keys (any letter case, percent-encoded, repeated), `;jsessionid=`-style path parameters, and
 * PHI patterns in path segments and parameter values.
 */
export function redactUrl(url: string): { url: string; applied: Redaction[] } {
  const applied = new Applied();
  const out = redactUrlInto(url, applied);
  return { url: out, applied: applied.list() };
}
