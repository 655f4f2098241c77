/**
 * Which names (header names, query/form keys, JSON keys, XML elements) hold secrets or PHI.
 * Names are compared normalised: percent-decoded, lower case, without `-`, `_`, `.`, spaces
 * and trailing digits, and for `a[b]` form keys only `b`; so `access_token`, `accessToken`,
 * `ACCESS-TOKEN` and `access%5Ftoken` are one name.
 */

/** Where a name was found: the rules for short, ambiguous names (`code`, `key`) differ. */
export type KeyPlace = 'url' | 'json' | 'text' | 'header';

interface Exact {
  kind: string;
  /** Places where this exact name counts; absent = everywhere. */
  places?: readonly KeyPlace[];
}

const EXACT: ReadonlyMap<string, Exact> = new Map<string, Exact>([
  // OAuth authorization codes travel in redirects and form bodies; in JSON and prose `code`
  // is usually an error or terminology code (see secretKeyKind's oauth option).
  ['code', { kind: 'code', places: ['url'] }],
  ['key', { kind: 'api-key', places: ['url', 'json'] }],
  ['sig', { kind: 'signature', places: ['url', 'json', 'text'] }],
  ['token', { kind: 'token' }],
  ['jwt', { kind: 'token' }],
  ['auth', { kind: 'authorization' }],
  ['secret', { kind: 'secret' }],
  ['apikey', { kind: 'api-key' }],
  ['password', { kind: 'password' }],
  ['passwd', { kind: 'password' }],
  ['pwd', { kind: 'password', places: ['url', 'json', 'text'] }],
  ['pass', { kind: 'password', places: ['url', 'json'] }],
  ['pin', { kind: 'password', places: ['url', 'json'] }],
  ['otp', { kind: 'password', places: ['url', 'json'] }],
  ['oauthverifier', { kind: 'token' }],
  ['samlresponse', { kind: 'token', places: ['url', 'json'] }],
  ['samlrequest', { kind: 'token', places: ['url', 'json'] }],
  ['session', { kind: 'session', places: ['url', 'json'] }],
  ['sessid', { kind: 'session' }],
  ['phpsessid', { kind: 'session' }],
  ['jsessionid', { kind: 'session' }],
  ['aspsessionid', { kind: 'session' }],
  ['cookie', { kind: 'cookie' }],
]);

/** Endings that make any name secret (`client_secret`, `X-Vault-Token`, `db_password`, …). */
const SUFFIXES: readonly (readonly [string, string])[] = [
  ['token', 'token'],
  ['secret', 'secret'],
  ['password', 'password'],
  ['passwd', 'password'],
  ['passphrase', 'password'],
  ['apikey', 'api-key'],
  ['subscriptionkey', 'api-key'],
  ['functionskey', 'api-key'],
  ['privatekey', 'secret'],
  ['secretkey', 'secret'],
  ['accesskey', 'secret'],
  ['signingkey', 'secret'],
  ['encryptionkey', 'secret'],
  ['masterkey', 'secret'],
  ['signature', 'signature'],
  ['credential', 'credential'],
  ['credentials', 'credential'],
  ['authorization', 'authorization'],
  ['assertion', 'token'],
  ['sessionid', 'session'],
  ['sessiontoken', 'token'],
  ['cookie', 'cookie'],
];

/** Header names that match a suffix above but carry no secret. */
const HEADER_NOT_SECRET: ReadonlySet<string> = new Set([
  'access-control-allow-credentials',
  'access-control-allow-headers',
  'access-control-expose-headers',
  'access-control-request-headers',
]);

const HEADER_EXACT: ReadonlyMap<string, string> = new Map([
  ['authorization', 'authorization'],
  ['proxy-authorization', 'authorization'],
  ['cookie', 'cookie'],
  ['set-cookie', 'cookie'],
  ['cookie2', 'cookie'],
  ['set-cookie2', 'cookie'],
  ['x-api-key', 'api-key'],
  ['api-key', 'api-key'],
  ['apikey', 'api-key'],
  ['ocp-apim-subscription-key', 'api-key'],
  ['x-functions-key', 'api-key'],
  ['x-goog-api-key', 'api-key'],
  ['x-amz-security-token', 'token'],
  ['x-auth-token', 'token'],
  ['x-access-token', 'token'],
  ['private-token', 'token'],
  ['x-csrf-token', 'token'],
  ['x-xsrf-token', 'token'],
  ['x-auth-key', 'api-key'],
  ['x-sentry-auth', 'authorization'],
]);

const PHI_EXACT: ReadonlyMap<string, string> = new Map([
  ['ssn', 'ssn'],
  ['socialsecurity', 'ssn'],
  ['socialsecuritynumber', 'ssn'],
  ['socialsecurityno', 'ssn'],
  ['mrn', 'mrn'],
  ['medicalrecord', 'mrn'],
  ['medicalrecordnumber', 'mrn'],
  ['medicalrecordno', 'mrn'],
  ['patientid', 'mrn'],
  ['patientidentifier', 'mrn'],
  ['patientnumber', 'mrn'],
  ['patientno', 'mrn'],
  ['chartnumber', 'mrn'],
  ['dob', 'dob'],
  ['birthdate', 'dob'],
  ['dateofbirth', 'dob'],
  ['birthday', 'dob'],
  ['tel', 'phone'],
  ['cell', 'phone'],
  ['mobile', 'phone'],
  ['mobilenumber', 'phone'],
  ['mail', 'email'],
  ['firstname', 'name'],
  ['lastname', 'name'],
  ['middlename', 'name'],
  ['fullname', 'name'],
  ['givenname', 'name'],
  ['familyname', 'name'],
  ['surname', 'name'],
  ['maidenname', 'name'],
  ['patientname', 'name'],
  ['street', 'address'],
  ['streetaddress', 'address'],
  ['addressline', 'address'],
  ['homeaddress', 'address'],
]);

const PHI_SUFFIXES: readonly (readonly [string, string])[] = [
  ['ssn', 'ssn'],
  ['mrn', 'mrn'],
  ['dob', 'dob'],
  ['birthdate', 'dob'],
  ['dateofbirth', 'dob'],
  ['phone', 'phone'],
  ['phonenumber', 'phone'],
  ['telephone', 'phone'],
  ['fax', 'phone'],
  ['faxnumber', 'phone'],
  ['email', 'email'],
  ['emailaddress', 'email'],
];

const HAS_PERCENT = /%[0-9A-Fa-f]{2}/;
const BRACKET_LAST = /\[([^[\]]*)\]$/;
const SEPARATORS = /[\s_.\-[\]]+/g;
const TRAILING_DIGITS = /\d+$/;

function decodeRepeatedly(name: string): string {
  let out = name;
  for (let i = 0; i < 3 && HAS_PERCENT.test(out); i++) {
    try {
      out = decodeURIComponent(out);
    } catch {
      break;
    }
  }
  return out;
}

/** `access%5FToken` -> `accesstoken`; `user[password]` -> `password`; `key2` -> `key`. */
export function normalizeKey(name: string): string {
  let n = decodeRepeatedly(name).toLowerCase();
  const inner = BRACKET_LAST.exec(n);
  if (inner && inner[1]) n = inner[1];
  n = n.replace(SEPARATORS, '');
  const stripped = n.replace(TRAILING_DIGITS, '');
  return stripped.length > 0 ? stripped : n;
}

function bySuffix(n: string, table: readonly (readonly [string, string])[]): string | null {
  for (const [suffix, kind] of table) if (n.endsWith(suffix)) return kind;
  return null;
}

interface Classified {
  secret: Record<KeyPlace, string | null>;
  phi: string | null;
}

/** Names repeat (every object of a JSON array has the same keys): classify each once. */
const cache = new Map<string, Classified>();
const CACHE_LIMIT = 4096;
const PLACES: readonly KeyPlace[] = ['url', 'json', 'text', 'header'];

function classify(name: string): Classified {
  const hit = cache.get(name);
  if (hit) return hit;
  // A name that was itself redacted (a JSON key that held an e-mail) says nothing any more.
  const n = name.includes('[REDACTED:') ? '' : normalizeKey(name);
  const exact = EXACT.get(n);
  const suffix = exact ? null : bySuffix(n, SUFFIXES);
  const secret = {} as Record<KeyPlace, string | null>;
  for (const place of PLACES) {
    secret[place] = exact
      ? !exact.places || exact.places.includes(place)
        ? exact.kind
        : null
      : suffix;
  }
  const result = { secret, phi: PHI_EXACT.get(n) ?? bySuffix(n, PHI_SUFFIXES) };
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(name, result);
  return result;
}

/** The redaction kind for a secret-bearing name, or null. */
export function secretKeyKind(name: string, place: KeyPlace): string | null {
  if (name.length === 0 || name.length > 128) return null;
  return classify(name).secret[place];
}

/** The redaction kind for a name whose value is PHI by context (`dob`, `patient_id`, …), or null. */
export function phiKeyKind(name: string): string | null {
  if (name.length === 0 || name.length > 128) return null;
  return classify(name).phi;
}

/** The redaction kind for a header whose value is secret, or null. */
export function secretHeaderKind(name: string): string | null {
  const lower = name.trim().toLowerCase().replace(/_/g, '-');
  const exact = HEADER_EXACT.get(lower);
  if (exact) return exact;
  if (HEADER_NOT_SECRET.has(lower)) return null;
  return secretKeyKind(lower, 'header');
}

/** Headers whose value is a URL: their query, fragment and userinfo are redacted as URLs. */
export const URL_HEADERS: ReadonlySet<string> = new Set([
  'referer',
  'location',
  'content-location',
  'x-original-url',
  'x-rewrite-url',
  'x-forwarded-uri',
]);

/** Authorization schemes shown in clear (`Bearer [REDACTED:authorization]`); any other first word is hidden too. */
export const AUTH_SCHEMES: ReadonlySet<string> = new Set([
  'basic',
  'bearer',
  'digest',
  'negotiate',
  'ntlm',
  'kerberos',
  'hoba',
  'mutual',
  'scram-sha-1',
  'scram-sha-256',
  'vapid',
  'aws4-hmac-sha256',
  'goog4-hmac-sha256',
  'token',
  'oauth',
  'apikey',
  'api-key',
  'key',
  'sharedkey',
  'sharedkeylite',
  'ssws',
  'dpop',
  'pop',
  'mac',
  'hawk',
  'googlelogin',
  'splunk',
  'sso-key',
  'privatetoken',
]);
