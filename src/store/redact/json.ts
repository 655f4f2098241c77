/**
 * JSON redaction by walking the parsed value: secret keys, PHI keys, name/value pairs that hold
 * a secret (`{"name": "Authorization", "value": …}`), FHIR resources (birthDate, name, telecom,
 * address, identifier of type MR or SS), then the text patterns on every other string.
 */
import { phiKeyKind, secretKeyKind } from './keys.js';
import { redactTextInto } from './text.js';
import type { Applied } from './types.js';
import { isMarker, marker } from './types.js';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Deeper values than this are not walked; the body is then redacted as text. */
export const MAX_JSON_DEPTH = 256;

export class JsonTooDeep extends Error {}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;
const NAME_LIKE = /^[A-Za-z_][\w.-]{0,127}$/;
const KEY_NAME_LIKE = /^[A-Za-z_][A-Za-z_.-]{0,127}$/;
/** Sibling keys that make `code` an OAuth authorization code. */
const OAUTH_KEYS = ['grant_type', 'redirect_uri', 'code_verifier', 'client_id'];
const NAME_PARTS = new Set(['text', 'family', 'given', 'prefix', 'suffix']);
const ADDRESS_PARTS = new Set(['text', 'line', 'city', 'district', 'postalCode']);

function childPath(path: string, key: string): string {
  return IDENTIFIER.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

function isObject(v: Json | undefined): v is { [key: string]: Json } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function codes(identifier: { [key: string]: Json }): string[] {
  const type = identifier.type;
  if (!isObject(type) || !Array.isArray(type.coding)) return [];
  return type.coding.flatMap((c) => (isObject(c) && typeof c.code === 'string' ? [c.code] : []));
}

/** MR -> mrn, SS (or the US SSN system) -> ssn, anything else: not masked by type. */
function identifierKind(identifier: { [key: string]: Json }): string | null {
  const types = codes(identifier);
  if (types.includes('MR')) return 'mrn';
  const system = typeof identifier.system === 'string' ? identifier.system : '';
  if (types.includes('SS') || system.endsWith('/us-ssn')) return 'ssn';
  return null;
}

export class JsonRedactor {
  constructor(
    private readonly applied: Applied,
    /** Prefix of every location: 'body:' */
    private readonly prefix: string,
  ) {}

  /** Replaces every string and number under `v` with a marker of `kind`. */
  maskDeep(v: Json, kind: string, path: string): Json {
    if (typeof v === 'string') {
      if (v === '' || isMarker(v)) return v;
      this.applied.add(kind, this.prefix + path);
      return marker(kind);
    }
    if (typeof v === 'number') {
      this.applied.add(kind, this.prefix + path);
      return marker(kind);
    }
    if (Array.isArray(v)) return v.map((x) => this.maskDeep(x, kind, `${path}[*]`));
    if (isObject(v)) return this.mapObject(v, path, (x, p) => this.maskDeep(x, kind, p));
    return v;
  }

  /** Keys go through the text patterns too (an e-mail used as a key); clashes get `#2`, `#3`. */
  private mapObject(
    o: { [key: string]: Json },
    path: string,
    each: (value: Json, path: string, key: string) => Json,
  ): { [key: string]: Json } {
    const out: { [key: string]: Json } = {};
    for (const key of Object.keys(o)) {
      let shown = redactTextInto(key, this.applied, `${this.prefix}${path}`);
      if (shown !== key) {
        for (let n = 2; Object.hasOwn(out, shown) || Object.hasOwn(o, shown); n++) {
          shown = `${shown.replace(/#\d+$/, '')}#${n}`;
        }
      }
      out[shown] = each(o[key] as Json, childPath(path, shown), key);
    }
    return out;
  }

  walk(v: Json, path = '$', fhir = false, depth = 0): Json {
    if (depth > MAX_JSON_DEPTH) throw new JsonTooDeep('JSON nested too deeply');
    if (typeof v === 'string') return redactTextInto(v, this.applied, this.prefix + path);
    if (Array.isArray(v)) return v.map((x) => this.walk(x, `${path}[*]`, fhir, depth + 1));
    if (!isObject(v)) return v;
    const inFhir = fhir || typeof v.resourceType === 'string';
    const oauth = OAUTH_KEYS.some((k) => Object.hasOwn(v, k));
    // {"name": "Authorization", "value": "…"} (HAR, Kubernetes env) and {"key": "API_KEY",
    // "value": "…"} (Postman): the name says what the value is. A `key` with digits is more
    // likely a key itself than a name, so it is masked as one instead.
    const pairKey = !Object.hasOwn(v, 'value')
      ? null
      : typeof v.name === 'string' && NAME_LIKE.test(v.name)
        ? 'name'
        : typeof v.key === 'string' && KEY_NAME_LIKE.test(v.key)
          ? 'key'
          : null;
    const pairName = pairKey === null ? '' : String(v[pairKey]);
    const pairKind =
      pairKey === null
        ? null
        : (secretKeyKind(pairName, 'header') ?? secretKeyKind(pairName, 'json'));
    return this.mapObject(v, path, (x, p, key) => {
      if (key === pairKey) return this.walk(x, p, inFhir, depth + 1);
      if (pairKind !== null && key === 'value') return this.maskDeep(x, pairKind, p);
      const secret = secretKeyKind(key, 'json') ?? (oauth && key === 'code' ? 'code' : null);
      if (secret !== null) return this.maskDeep(x, secret, p);
      if (inFhir) {
        const done = this.fhirField(key, x, p, depth);
        if (done !== undefined) return done;
      }
      const phi = phiKeyKind(key);
      if (phi !== null && (typeof x === 'string' || typeof x === 'number')) {
        return this.maskDeep(x, phi, p);
      }
      return this.walk(x, p, inFhir, depth + 1);
    });
  }

  /** FHIR elements that are PHI by their place; undefined when `key` is not one of them. */
  private fhirField(key: string, v: Json, path: string, depth: number): Json | undefined {
    switch (key) {
      case 'birthDate':
        return this.maskDeep(v, 'dob', path);
      case 'div':
        // Narrative XHTML repeats the resource's data (names, dates) as prose.
        return this.maskDeep(v, 'narrative', path);
      case 'name':
        return this.parts(v, path, depth, NAME_PARTS, 'name');
      case 'address':
        return this.parts(v, path, depth, ADDRESS_PARTS, 'address');
      case 'telecom':
        return this.each(v, path, depth, (c, p) =>
          this.mapObject(c, p, (x, cp, k) =>
            k === 'value' ? this.maskDeep(x, 'telecom', cp) : this.walk(x, cp, true, depth + 2),
          ),
        );
      case 'identifier':
        return this.each(v, path, depth, (id, p) => {
          const kind = identifierKind(id);
          return this.mapObject(id, p, (x, ip, k) =>
            kind !== null && k === 'value'
              ? this.maskDeep(x, kind, ip)
              : this.walk(x, ip, true, depth + 2),
          );
        });
      default:
        return undefined;
    }
  }

  /** Applies `fn` to one object or to each object of an array; strings are masked as `fallback`. */
  private each(
    v: Json,
    path: string,
    depth: number,
    fn: (o: { [key: string]: Json }, path: string) => Json,
  ): Json {
    if (Array.isArray(v)) {
      return v.map((x) =>
        isObject(x) ? fn(x, `${path}[*]`) : this.walk(x, `${path}[*]`, true, depth + 1),
      );
    }
    return isObject(v) ? fn(v, path) : this.walk(v, path, true, depth + 1);
  }

  /** HumanName / Address: the listed parts are masked, the rest (use, period, state) walked. */
  private parts(v: Json, path: string, depth: number, parts: Set<string>, kind: string): Json {
    if (typeof v === 'string') return this.maskDeep(v, kind, path);
    return this.each(v, path, depth, (o, p) =>
      this.mapObject(o, p, (x, cp, k) =>
        parts.has(k) ? this.maskDeep(x, kind, cp) : this.walk(x, cp, true, depth + 2),
      ),
    );
  }
}
