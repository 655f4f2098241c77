import { describe, expect, it } from 'vitest';
import { redactHeaders } from '../../../src/store/redact/index.js';

const SECRET = 'sEcReT-Value_123';

/** Every header the security requirements name, with the kind its value is masked as. */
const SECRET_HEADERS: [string, string][] = [
  ['Authorization', 'authorization'],
  ['Proxy-Authorization', 'authorization'],
  ['X-Api-Key', 'api-key'],
  ['api-key', 'api-key'],
  ['Ocp-Apim-Subscription-Key', 'api-key'],
  ['X-Functions-Key', 'api-key'],
  ['X-Goog-Api-Key', 'api-key'],
  ['X-Amz-Security-Token', 'token'],
  ['X-Auth-Token', 'token'],
  ['X-Access-Token', 'token'],
  ['Private-Token', 'token'],
  ['X-CSRF-Token', 'token'],
  ['X-XSRF-Token', 'token'],
];

/** Headers not in the list whose names say they hold a secret. */
const SIMILAR_HEADERS: [string, string][] = [
  ['X-Vault-Token', 'token'],
  ['X-Shopify-Access-Token', 'token'],
  ['X-Session-Id', 'session'],
  ['X-Client-Secret', 'secret'],
  ['X-RapidAPI-Key', 'api-key'],
  ['X-Hub-Signature-256', 'signature'],
  ['X_API_KEY', 'api-key'],
  ['X-Db-Password', 'password'],
  ['Cf-Access-Client-Secret', 'secret'],
];

const CASES = (name: string) => [name, name.toLowerCase(), name.toUpperCase()];

describe('redactHeaders: secret headers', () => {
  for (const [name, kind] of [...SECRET_HEADERS, ...SIMILAR_HEADERS]) {
    for (const spelled of CASES(name)) {
      it(`masks ${spelled}`, () => {
        const { headers, applied } = redactHeaders([[spelled, SECRET]]);
        expect(headers).toHaveLength(1);
        expect(headers[0]?.[0]).toBe(spelled);
        expect(headers[0]?.[1]).not.toContain(SECRET);
        expect(headers[0]?.[1]).toContain(`[REDACTED:${kind}]`);
        expect(applied).toEqual([{ kind, location: `header:${spelled.toLowerCase()}`, count: 1 }]);
      });
    }
  }

  it('masks every repetition and counts them', () => {
    const { headers, applied } = redactHeaders([
      ['X-Api-Key', 'first-secret'],
      ['Accept', 'application/json'],
      ['x-api-key', 'second-secret'],
      ['X-API-KEY', 'first-secret, third-secret'],
    ]);
    expect(headers).toEqual([
      ['X-Api-Key', '[REDACTED:api-key]'],
      ['Accept', 'application/json'],
      ['x-api-key', '[REDACTED:api-key]'],
      ['X-API-KEY', '[REDACTED:api-key]'],
    ]);
    expect(applied).toEqual([{ kind: 'api-key', location: 'header:x-api-key', count: 3 }]);
  });

  it('keeps an empty secret header empty and does not count it', () => {
    const { headers, applied } = redactHeaders([['X-Api-Key', '']]);
    expect(headers).toEqual([['X-Api-Key', '']]);
    expect(applied).toEqual([]);
  });
});

describe('redactHeaders: Authorization', () => {
  const table: [string, string][] = [
    ['Bearer abc.def.ghi', 'Bearer [REDACTED:authorization]'],
    ['bearer abc', 'bearer [REDACTED:authorization]'],
    ['Basic dXNlcjpwYXNz', 'Basic [REDACTED:authorization]'],
    [
      'Digest username="Mufasa", realm="x", response="6629fae49393a05397450978507c4ef1"',
      'Digest [REDACTED:authorization]',
    ],
    [
      'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, Signature=5d67',
      'AWS4-HMAC-SHA256 [REDACTED:authorization]',
    ],
    ['Token  abc', 'Token  [REDACTED:authorization]'],
    // No known scheme: the first word may be the secret itself.
    ['ghp_abcdef0123456789', '[REDACTED:authorization]'],
    ['sk-live-1234 extra', '[REDACTED:authorization]'],
    ['Bearer', '[REDACTED:authorization]'],
    ['Bearer abc, Basic xyz', 'Bearer [REDACTED:authorization]'],
  ];
  for (const [value, shown] of table) {
    it(`${value} -> ${shown}`, () => {
      expect(redactHeaders([['Authorization', value]]).headers[0]?.[1]).toBe(shown);
      expect(redactHeaders([['proxy-authorization', value]]).headers[0]?.[1]).toBe(shown);
    });
  }
});

describe('redactHeaders: cookies', () => {
  it('keeps cookie names and masks every value', () => {
    const { headers, applied } = redactHeaders([
      ['Cookie', 'sid=abc123; theme=dark;lang=en'],
      ['cookie', 'other=zzz'],
    ]);
    expect(headers).toEqual([
      ['Cookie', 'sid=[REDACTED:cookie]; theme=[REDACTED:cookie];lang=[REDACTED:cookie]'],
      ['cookie', 'other=[REDACTED:cookie]'],
    ]);
    expect(applied).toEqual([{ kind: 'cookie', location: 'header:cookie', count: 4 }]);
  });

  it('masks a cookie without a name', () => {
    expect(redactHeaders([['Cookie', 'justasecretvalue; a=b']]).headers[0]?.[1]).toBe(
      '[REDACTED:cookie]; a=[REDACTED:cookie]',
    );
  });

  it('masks Set-Cookie values and keeps the attributes', () => {
    const { headers } = redactHeaders([
      ['Set-Cookie', 'id=a3fWa; Expires=Wed, 21 Oct 2015 07:28:00 GMT; Secure; HttpOnly'],
      ['SET-COOKIE', 'session=xyz; Path=/; Domain=example.com; SameSite=Strict; Max-Age=60'],
    ]);
    expect(headers).toEqual([
      [
        'Set-Cookie',
        'id=[REDACTED:cookie]; Expires=Wed, 21 Oct 2015 07:28:00 GMT; Secure; HttpOnly',
      ],
      [
        'SET-COOKIE',
        'session=[REDACTED:cookie]; Path=/; Domain=example.com; SameSite=Strict; Max-Age=60',
      ],
    ]);
  });

  it('masks each of several Set-Cookie values joined with commas', () => {
    const joined = 'a=one; Expires=Wed, 21 Oct 2015 07:28:00 GMT, b=two; Path=/, c=three';
    const { headers, applied } = redactHeaders([['set-cookie', joined]]);
    expect(headers[0]?.[1]).toBe(
      'a=[REDACTED:cookie]; Expires=Wed, 21 Oct 2015 07:28:00 GMT, b=[REDACTED:cookie]; Path=/, c=[REDACTED:cookie]',
    );
    expect(applied[0]?.count).toBe(3);
  });

  it('masks unknown Set-Cookie attributes that carry a value', () => {
    expect(redactHeaders([['Set-Cookie', 'a=1; Foo=secretish']]).headers[0]?.[1]).toBe(
      'a=[REDACTED:cookie]; Foo=[REDACTED:cookie]',
    );
  });
});

describe('redactHeaders: other headers', () => {
  it('masks URL userinfo inside any header value (Link, a custom header)', () => {
    const { headers } = redactHeaders([
      ['Link', '<https://HDRUSER1:HDRPW1@a.example/a>; rel="next"'],
      ['X-Upstream', 'postgres://HDRUSER2:HDRPW2@db.internal:5432/phi'],
    ]);
    expect(JSON.stringify(headers)).not.toMatch(/HDRUSER|HDRPW/);
    expect(headers[0]![1]).toBe('<https://[REDACTED:userinfo]@a.example/a>; rel="next"');
  });

  it('passes ordinary headers unchanged, in order, with their spelling', () => {
    const input: [string, string][] = [
      ['Host', 'api.example.com'],
      ['content-type', 'application/json; charset=utf-8'],
      ['User-Agent', 'Mozilla/5.0 (X11; Linux x86_64) curl/8.5.0'],
      ['Date', 'Tue, 15 Nov 1994 08:12:31 GMT'],
      ['Content-Length', '5551234567'],
      ['Cache-Control', 'max-age=0, no-cache'],
      ['Access-Control-Allow-Credentials', 'true'],
      ['Access-Control-Allow-Headers', 'Authorization, X-Api-Key'],
      ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='],
      ['Idempotency-Key', '8e03978e-40d5-43e8-bc93-6894a57f9324'],
      ['WWW-Authenticate', 'Bearer realm="example", error="invalid_token"'],
      ['X-Request-Id', 'req_12345'],
    ];
    const { headers, applied } = redactHeaders(input);
    expect(headers).toEqual(input);
    expect(applied).toEqual([]);
  });

  it('redacts URL headers as URLs', () => {
    const { headers, applied } = redactHeaders([
      ['Referer', 'https://app.example/cb?code=abc123&state=s1'],
      ['Location', 'https://user:pw@example.com/next#access_token=tok&expires_in=3600'],
    ]);
    expect(headers).toEqual([
      ['Referer', 'https://app.example/cb?code=[REDACTED:code]&state=s1'],
      [
        'Location',
        'https://[REDACTED:userinfo]@example.com/next#access_token=[REDACTED:token]&expires_in=3600',
      ],
    ]);
    expect(applied).toContainEqual({ kind: 'code', location: 'header:referer', count: 1 });
    expect(applied).toContainEqual({ kind: 'userinfo', location: 'header:location', count: 1 });
  });

  it('masks PHI and embedded tokens in other header values', () => {
    const { headers } = redactHeaders([
      ['From', 'jane.roe@example.org'],
      ['X-Debug', 'patient DOB: 1970-01-01 phone (212) 555-0143'],
      ['X-Amzn-Oidc-Data', 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl'],
      ['Link', '<https://x.example/page?access_token=abc>; rel="next"'],
    ]);
    expect(headers).toEqual([
      ['From', '[REDACTED:email]'],
      ['X-Debug', 'patient DOB: [REDACTED:dob] phone [REDACTED:phone]'],
      ['X-Amzn-Oidc-Data', '[REDACTED:token]'],
      ['Link', '<https://x.example/page?access_token=[REDACTED:token]>; rel="next"'],
    ]);
  });

  it('is idempotent', () => {
    const once = redactHeaders([
      ['Authorization', 'Bearer abc'],
      ['Cookie', 'a=1; b'],
      ['Set-Cookie', 'a=1; Path=/'],
      ['X-Api-Key', 'k'],
      ['Referer', 'https://u:p@x/?token=1'],
    ]);
    const twice = redactHeaders(once.headers);
    expect(twice.headers).toEqual(once.headers);
    expect(twice.applied).toEqual([]);
  });
});
