import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  redactBody,
  redactHeaders,
  redactText,
  redactUrl,
} from '../../../src/store/redact/index.js';

/** REDACT_PROPERTY_RUNS=5000 for a longer hunt. */
const RUNS = { numRuns: Number(process.env.REDACT_PROPERTY_RUNS ?? 300) };

/** Printable ASCII, any printable Unicode, or words joined by separators that split values. */
const secretArb = fc
  .oneof(
    fc.string({ unit: 'grapheme-ascii', minLength: 8, maxLength: 40 }),
    fc.string({ unit: 'grapheme', minLength: 8, maxLength: 24 }),
    fc
      .array(
        fc.oneof(
          fc.constantFrom(
            ';',
            ',',
            '=',
            '&',
            ' ',
            ':',
            '"',
            "'",
            '%',
            '+',
            '/',
            '?',
            '#',
            '\\',
            '@',
          ),
          fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 6 }),
          fc.string({ unit: 'grapheme', minLength: 1, maxLength: 3 }),
        ),
        { minLength: 3, maxLength: 12 },
      )
      .map((parts) => parts.join('')),
  )
  // A secret made only of separators cannot be told apart from the structure around it.
  .filter((s) => s.trim().length >= 8 && s.replace(/[\s;,=&:"'%+/?#\\@]/g, '').length >= 4);

/** The forms a secret could take in a rendered record. */
function forms(secret: string): string[] {
  return [
    secret,
    encodeURIComponent(secret),
    encodeURIComponent(secret).replace(/%20/g, '+'),
    JSON.stringify(secret).slice(1, -1),
  ];
}

function expectHidden(output: string, secret: string): void {
  for (const form of forms(secret)) expect(output).not.toContain(form);
}

/** The secret is not already part of what the template renders around it. */
function notInFrame(frame: string, secret: string): boolean {
  return forms(secret).every((f) => !frame.includes(f));
}

function randomCase(s: string, flips: boolean[]): string {
  return [...s]
    .map((c, i) => (flips[i % flips.length] ? c.toUpperCase() : c.toLowerCase()))
    .join('');
}
const flipsArb = fc.array(fc.boolean(), { minLength: 1, maxLength: 8 });

const SECRET_HEADERS = [
  'Authorization',
  'Proxy-Authorization',
  'Cookie',
  'Set-Cookie',
  'X-Api-Key',
  'api-key',
  'Ocp-Apim-Subscription-Key',
  'X-Functions-Key',
  'X-Goog-Api-Key',
  'X-Amz-Security-Token',
  'X-Auth-Token',
  'X-Access-Token',
  'Private-Token',
  'X-CSRF-Token',
  'X-XSRF-Token',
];

const QUERY_KEYS = [
  'access_token',
  'id_token',
  'refresh_token',
  'code',
  'token',
  'api_key',
  'apikey',
  'key',
  'sig',
  'X-Amz-Signature',
  'X-Amz-Credential',
  'password',
  'passwd',
  'secret',
  'client_secret',
  'private_key',
];

const JSON_KEYS = [
  ...QUERY_KEYS.filter((k) => k !== 'code'),
  'accessToken',
  'refreshToken',
  'apiKey',
  'clientSecret',
  'privateKey',
  'Authorization',
  'x-api-key',
  'db_password',
  'aws_secret_access_key',
];

describe('property: a secret never survives', () => {
  it('in any secret header, any case, any shape of value', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...SECRET_HEADERS),
        flipsArb,
        secretArb,
        fc.constantFrom('raw', 'bearer', 'cookie', 'repeated'),
        (name, flips, secret, shape) => {
          // Cookie names may stay visible: for cookie headers the secret is always a value, and
          // encoded as cookie values must be (RFC 6265 allows no `;`, `,` or spaces in them).
          const isCookie = /cookie/i.test(name);
          const value =
            shape === 'cookie' || isCookie
              ? `sid=${encodeURIComponent(secret)}; theme=dark`
              : shape === 'bearer'
                ? `Bearer ${secret}`
                : secret;
          const spelled = randomCase(name, flips);
          const input: [string, string][] =
            shape === 'repeated'
              ? [
                  [spelled, value],
                  ['Accept', '*/*'],
                  [name, value],
                ]
              : [[spelled, value]];
          const frame = JSON.stringify(redactHeaders(input.map(([n]) => [n, 'Q'])).headers);
          fc.pre(notInFrame(frame, secret));
          const { headers } = redactHeaders(input);
          for (const [, shown] of headers) expectHidden(shown, secret);
          expect(headers.map(([n]) => n)).toEqual(input.map(([n]) => n));
        },
      ),
      RUNS,
    );
  });

  it('in any secret query key, encoded, repeated or mixed case, and in userinfo', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...QUERY_KEYS),
        flipsArb,
        fc.boolean(),
        secretArb,
        secretArb,
        (key, flips, encodeKey, secret, other) => {
          const k = encodeKey
            ? [...key].map((c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`).join('')
            : randomCase(key, flips);
          const v = encodeURIComponent(secret);
          const url = `https://${encodeURIComponent(other)}@api.example/v1/x?a=1&${k}=${v}&b=2&${key}=${v}#${k}=${v}`;
          const frame = redactUrl(
            url.split(v).join('Q').replace(encodeURIComponent(other), 'Q'),
          ).url;
          fc.pre(notInFrame(frame, secret) && notInFrame(frame, other));
          const out = redactUrl(url).url;
          expectHidden(out, secret);
          expectHidden(out, other);
        },
      ),
      RUNS,
    );
  });

  it('under any token-like JSON key, at any depth, also when the JSON is cut off', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...JSON_KEYS),
        secretArb,
        fc.constantFrom('top', 'nested', 'array'),
        (key, secret, where) => {
          const wrap = (v: string) =>
            where === 'top'
              ? { [key]: v, n: 1 }
              : where === 'nested'
                ? { data: { user: 'x', [key]: v } }
                : { items: [{ ok: true }, { [key]: v }] };
          const frame = redactBody(Buffer.from(JSON.stringify(wrap('Q'))), {
            contentType: 'application/json',
          }).text;
          fc.pre(notInFrame(frame ?? '', secret));
          const full = JSON.stringify(wrap(secret));
          const r = redactBody(Buffer.from(full), { contentType: 'application/json' });
          expectHidden(r.text ?? '', secret);
          // Truncated right after the secret: not valid JSON, redacted as text.
          const encoded = JSON.stringify(secret);
          const cut = full.slice(0, full.indexOf(encoded) + encoded.length - 1);
          const t = redactBody(Buffer.from(cut), { contentType: 'application/json' });
          expectHidden(t.text ?? '', secret);
        },
      ),
      RUNS,
    );
  });

  it('in any secret form field', () => {
    fc.assert(
      fc.property(fc.constantFrom(...QUERY_KEYS), secretArb, (key, secret) => {
        const v = encodeURIComponent(secret).replace(/%20/g, '+');
        const frame = redactBody(Buffer.from(`user=jo&${key}=Q`), {
          contentType: 'application/x-www-form-urlencoded',
        }).text;
        fc.pre(notInFrame(frame ?? '', secret));
        const r = redactBody(Buffer.from(`user=jo&${key}=${v}&n=1`), {
          contentType: 'application/x-www-form-urlencoded',
        });
        expectHidden(r.text ?? '', secret);
      }),
      RUNS,
    );
  });
});

// --- PHI generators -------------------------------------------------------------------------

const pad = (n: number, width: number) => String(n).padStart(width, '0');

const ssnArb = fc
  .tuple(
    fc.integer({ min: 1, max: 899 }),
    fc.integer({ min: 1, max: 99 }),
    fc.integer({ min: 1, max: 9999 }),
  )
  .filter(([a]) => a !== 666)
  .map(([a, g, s]) => `${pad(a, 3)}-${pad(g, 2)}-${pad(s, 4)}`);

const nanpPart = fc
  .tuple(
    fc.integer({ min: 2, max: 9 }),
    fc.integer({ min: 0, max: 9 }),
    fc.integer({ min: 0, max: 9 }),
  )
  .filter(([, b, c]) => !(b === 1 && c === 1));
const phoneArb = fc
  .tuple(
    nanpPart.filter(([, b]) => b !== 9),
    nanpPart,
    fc.integer({ min: 0, max: 9999 }),
    fc.constantFrom('(A) E-L', 'A-E-L', 'A.E.L', 'A E L', '+1 A E L', '1-A-E-L', '+1AEL', '(A)E-L'),
  )
  .map(([a, e, l, fmt]) =>
    fmt.replace('A', a.join('')).replace('E', e.join('')).replace('L', pad(l, 4)),
  );

const word = (chars: string, min: number, max: number) =>
  fc.string({ unit: fc.constantFrom(...chars), minLength: min, maxLength: max });
const emailArb = fc
  .tuple(
    word('abcdefghijklmnopqrstuvwxyz0123456789', 1, 1),
    word('abcdefghijklmnopqrstuvwxyz0123456789._+-', 0, 20),
    fc.array(word('abcdefghijklmnopqrstuvwxyz0123456789', 1, 12), { minLength: 1, maxLength: 3 }),
    word('abcdefghijklmnopqrstuvwxyz', 2, 6),
  )
  .map(([first, rest, labels, tld]) => `${first}${rest}@${labels.join('.')}.${tld}`);

const dateArb = fc
  .tuple(
    fc.integer({ min: 1900, max: 2024 }),
    fc.integer({ min: 1, max: 12 }),
    fc.integer({ min: 1, max: 28 }),
  )
  .chain(([y, m, d]) =>
    fc.constantFrom(
      `${y}-${pad(m, 2)}-${pad(d, 2)}`,
      `${m}/${d}/${y}`,
      `${pad(m, 2)}/${pad(d, 2)}/${String(y).slice(2)}`,
      `${d}.${m}.${y}`,
      `${['Jan', 'February', 'Mar', 'April', 'May', 'June', 'Jul', 'Aug', 'Sept', 'October', 'Nov', 'December'][m - 1]} ${d}, ${y}`,
    ),
  );
const dobArb = fc
  .tuple(
    fc.constantFrom(
      'DOB',
      'dob:',
      'Date of birth',
      'D.O.B.',
      'born on',
      'birthDate',
      'Birthday is',
    ),
    dateArb,
  )
  .map(([ctx, date]) => ({ text: `${ctx} ${date}`, value: date }));
const mrnArb = fc
  .tuple(
    fc.constantFrom(
      'MRN',
      'MRN:',
      'Medical record number',
      'patient ID:',
      'mrn #',
      'Patient identifier',
    ),
    word('ABCDEFGHJK', 0, 3),
    fc.integer({ min: 1000, max: 99_999_999 }),
  )
  .map(([ctx, letters, n]) => ({ text: `${ctx} ${letters}${n}`, value: `${letters}${n}` }));

const phiArb = fc.oneof(
  ssnArb.map((v) => ({ text: v, value: v })),
  ssnArb.map((v) => ({ text: `SSN ${v.replace(/-/g, '')}`, value: v.replace(/-/g, '') })),
  phoneArb.map((v) => ({ text: v, value: v })),
  emailArb.map((v) => ({ text: v, value: v })),
  dobArb,
  mrnArb,
);

/** Prose around the PHI: letters, punctuation and line breaks, no digits. */
const proseArb = word('abc XYZ,.;!?()\n—é', 0, 30);

describe('property: PHI never survives in a body', () => {
  it('as text, JSON string values and form values', () => {
    fc.assert(
      fc.property(proseArb, phiArb, proseArb, (before, phi, after) => {
        const text = `${before} ${phi.text} ${after}`;
        const plain = redactBody(Buffer.from(text), { contentType: 'text/plain' });
        expect(plain.text).not.toContain(phi.value);
        const asJson = redactBody(Buffer.from(JSON.stringify({ note: text })), {
          contentType: 'application/json',
        });
        expect(asJson.text).not.toContain(phi.value);
        const form = redactBody(Buffer.from(`note=${encodeURIComponent(text)}`), {
          contentType: 'application/x-www-form-urlencoded',
        });
        expect(form.text).not.toContain(encodeURIComponent(phi.value));
        expect(form.text).not.toContain(phi.value);
      }),
      RUNS,
    );
  });
});

// --- idempotence ------------------------------------------------------------------------------

const fragmentArb = fc.oneof(
  proseArb,
  phiArb.map((p) => p.text),
  secretArb.map((s) => `password=${s}`),
  secretArb.map((s) => `"access_token": ${JSON.stringify(s)}`),
  fc.constantFrom(
    'Bearer abcdefgh12345678',
    'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc',
    '<secret>s3</secret>',
  ),
  fc.string({ unit: 'grapheme-ascii', maxLength: 20 }),
);
const mixedArb = fc.array(fragmentArb, { maxLength: 8 }).map((parts) => parts.join(' '));

describe('property: redaction is idempotent', () => {
  it('redactText', () => {
    fc.assert(
      fc.property(mixedArb, (text) => {
        const once = redactText(text).text;
        expect(redactText(once)).toEqual({ text: once, applied: [] });
      }),
      RUNS,
    );
  });

  it('redactUrl', () => {
    fc.assert(
      fc.property(
        fc.webUrl({ withQueryParameters: true, withFragments: true }),
        fc.constantFrom(...QUERY_KEYS),
        secretArb,
        phiArb,
        (url, key, secret, phi) => {
          const u = `${url}${url.includes('?') ? '&' : '?'}${key}=${encodeURIComponent(secret)}&q=${encodeURIComponent(phi.text)}`;
          const once = redactUrl(u).url;
          expect(redactUrl(once)).toEqual({ url: once, applied: [] });
        },
      ),
      RUNS,
    );
  });

  it('redactHeaders', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.constantFrom(...SECRET_HEADERS, 'Accept', 'Referer', 'X-Note', 'Set-Cookie'),
            fc.oneof(
              mixedArb,
              secretArb.map((s) => `Bearer ${s}`),
              secretArb.map((s) => `a=${s}; b`),
            ),
          ),
          { maxLength: 6 },
        ),
        (headers) => {
          const clean = headers.map(([n, v]): [string, string] => [n, v.replace(/[\r\n]/g, ' ')]);
          const once = redactHeaders(clean).headers;
          expect(redactHeaders(once)).toEqual({ headers: once, applied: [] });
        },
      ),
      RUNS,
    );
  });

  it('redactBody on JSON', () => {
    fc.assert(
      fc.property(fc.json(), fc.constantFrom(...JSON_KEYS), mixedArb, (value, key, text) => {
        const doc = { value: JSON.parse(value) as unknown, [key]: text, note: text };
        const once = redactBody(Buffer.from(JSON.stringify(doc)), {
          contentType: 'application/json',
        });
        const twice = redactBody(Buffer.from(once.text ?? ''), { contentType: 'application/json' });
        expect(twice.text).toBe(once.text);
        expect(twice.applied).toEqual([]);
      }),
      RUNS,
    );
  });
});

// --- what is not secret passes unchanged -------------------------------------------------------

const PLAIN_HEADERS = [
  'Accept',
  'Accept-Encoding',
  'Accept-Language',
  'Cache-Control',
  'Connection',
  'Content-Type',
  'Content-Encoding',
  'Content-Length',
  'Host',
  'User-Agent',
  'X-Request-Id',
  'X-Forwarded-For',
  'Traceparent',
  'Vary',
  'ETag',
  'Server',
  'Access-Control-Allow-Credentials',
  'Sec-WebSocket-Key',
  'Idempotency-Key',
  'WWW-Authenticate',
];

describe('property: non-secret headers pass unchanged', () => {
  it('any case, any value without PHI', () => {
    const valueArb = fc.oneof(
      word('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ ,;/()-_.!?*"éü日本', 0, 60),
      fc.nat().map(String),
    );
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom(...PLAIN_HEADERS), flipsArb, valueArb), {
          maxLength: 10,
        }),
        (rows) => {
          const input = rows.map(([n, flips, v]): [string, string] => [randomCase(n, flips), v]);
          expect(redactHeaders(input)).toEqual({ headers: input, applied: [] });
        },
      ),
      RUNS,
    );
  });
});
