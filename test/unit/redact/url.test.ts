import { describe, expect, it } from 'vitest';
import { redactUrl } from '../../../src/store/redact/index.js';

/** Every query key the security requirements name, with the kind it is masked as. */
const QUERY_KEYS: [string, string][] = [
  ['access_token', 'token'],
  ['id_token', 'token'],
  ['refresh_token', 'token'],
  ['code', 'code'],
  ['token', 'token'],
  ['api_key', 'api-key'],
  ['apikey', 'api-key'],
  ['key', 'api-key'],
  ['sig', 'signature'],
  ['X-Amz-Signature', 'signature'],
  ['X-Amz-Credential', 'credential'],
  ['password', 'password'],
  ['passwd', 'password'],
  ['secret', 'secret'],
  ['client_secret', 'secret'],
  ['private_key', 'secret'],
];

const SECRET = 's3cr3t-VALUE';

function encodeAll(s: string): string {
  return [...Buffer.from(s, 'utf8')]
    .map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`)
    .join('');
}

describe('redactUrl: query keys', () => {
  for (const [key, kind] of QUERY_KEYS) {
    const spellings = [key, key.toUpperCase(), key.toLowerCase(), encodeAll(key)];
    for (const spelled of spellings) {
      it(`masks ?${spelled}=`, () => {
        const { url, applied } = redactUrl(`/api/v1/x?a=1&${spelled}=${SECRET}&b=2`);
        expect(url).toBe(`/api/v1/x?a=1&${spelled}=[REDACTED:${kind}]&b=2`);
        expect(applied).toEqual([
          { kind, location: `query:${decodeURIComponent(spelled)}`, count: 1 },
        ]);
      });
    }
  }

  it('masks every repetition, encoded values and values with separators', () => {
    const { url, applied } = redactUrl(
      '/x?token=one&TOKEN=two%20words&token=th%3Dree&tok%65n=four&token&token=',
    );
    expect(url).toBe(
      '/x?token=[REDACTED:token]&TOKEN=[REDACTED:token]&token=[REDACTED:token]&tok%65n=[REDACTED:token]&token&token=',
    );
    expect(applied).toEqual([
      { kind: 'token', location: 'query:token', count: 3 },
      { kind: 'token', location: 'query:TOKEN', count: 1 },
    ]);
  });

  it('matches double-encoded and camelCase spellings', () => {
    expect(redactUrl('/x?access%255Ftoken=a&accessToken=b&x-amz-security-token=c').url).toBe(
      '/x?access%255Ftoken=[REDACTED:token]&accessToken=[REDACTED:token]&x-amz-security-token=[REDACTED:token]',
    );
  });

  it('masks a presigned S3 URL and an Azure SAS', () => {
    const s3 =
      'https://bucket.s3.amazonaws.com/phi.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20240101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20240101T000000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=deadbeef';
    expect(redactUrl(s3).url).toBe(
      'https://bucket.s3.amazonaws.com/phi.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=[REDACTED:credential]&X-Amz-Date=20240101T000000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=[REDACTED:signature]',
    );
    const sas =
      'https://acct.blob.core.windows.net/c/b?sv=2022-11-02&sp=r&se=2030-01-01&sig=abc%2Bdef%3D';
    expect(redactUrl(sas).url).toBe(
      'https://acct.blob.core.windows.net/c/b?sv=2022-11-02&sp=r&se=2030-01-01&sig=[REDACTED:signature]',
    );
  });

  it('leaves ordinary keys alone, including ones that only contain a secret word', () => {
    const plain =
      '/search?q=token+bucket&max_tokens=100&token_type=bearer&keyword=x&monkey=1&page=2';
    expect(redactUrl(plain)).toEqual({ url: plain, applied: [] });
  });

  it('masks secrets in the fragment', () => {
    expect(
      redactUrl('https://app.example/cb#access_token=abc&token_type=bearer&id_token=x.y.z').url,
    ).toBe(
      'https://app.example/cb#access_token=[REDACTED:token]&token_type=bearer&id_token=[REDACTED:token]',
    );
  });

  it('masks secrets in a URL nested in a parameter', () => {
    const { url, applied } = redactUrl(
      '/login?next=%2Fcb%3Fcode%3Dabc%26x%3D1&redirect_uri=https%3A%2F%2Fa.example%2Fcb',
    );
    expect(url).toBe(
      '/login?next=%2Fcb%3Fcode%3D[REDACTED:code]%26x%3D1&redirect_uri=https%3A%2F%2Fa.example%2Fcb',
    );
    expect(applied).toEqual([{ kind: 'code', location: 'query:next', count: 1 }]);
  });

  it('masks session ids in path parameters', () => {
    expect(redactUrl('/app/home;jsessionid=ABC123?x=1').url).toBe(
      '/app/home;jsessionid=[REDACTED:session]?x=1',
    );
  });
});

describe('redactUrl: userinfo', () => {
  const table: [string, string][] = [
    ['https://user:pass@example.com/p', 'https://[REDACTED:userinfo]@example.com/p'],
    [
      'https://tok_only@github.com/org/repo.git',
      'https://[REDACTED:userinfo]@github.com/org/repo.git',
    ],
    ['https://us%40er:p%3Ass@example.com:8443/', 'https://[REDACTED:userinfo]@example.com:8443/'],
    ['http://a:b@c@example.com/', 'http://[REDACTED:userinfo]@example.com/'],
    [
      'postgres://admin:hunter2@db.internal:5432/app',
      'postgres://[REDACTED:userinfo]@db.internal:5432/app',
    ],
    ['//user:pass@example.com/x', '//[REDACTED:userinfo]@example.com/x'],
    ['user:pass@proxy.example:3128', '[REDACTED:userinfo]@proxy.example:3128'],
  ];
  for (const [input, shown] of table) {
    it(input, () => {
      const { url, applied } = redactUrl(input);
      expect(url).toBe(shown);
      expect(applied).toEqual([{ kind: 'userinfo', location: 'url:userinfo', count: 1 }]);
    });
  }

  it('leaves a URL without userinfo alone', () => {
    const plain = 'https://example.com:8443/a/b?c=d#e';
    expect(redactUrl(plain)).toEqual({ url: plain, applied: [] });
  });
});

describe('redactUrl: PHI in path and values', () => {
  it('masks PHI patterns in path segments, also percent-encoded', () => {
    const { url, applied } = redactUrl(
      '/patients/123-45-6789/contact/jane%40example.org/phone/2125550143',
    );
    expect(url).toBe('/patients/[REDACTED:ssn]/contact/[REDACTED:email]/phone/[REDACTED:phone]');
    expect(applied).toEqual([
      { kind: 'ssn', location: 'path', count: 1 },
      { kind: 'email', location: 'path', count: 1 },
      { kind: 'phone', location: 'path', count: 1 },
    ]);
  });

  it('masks a path segment that follows a PHI context segment', () => {
    expect(redactUrl('/lookup/mrn/00412345/summary').url).toBe(
      '/lookup/mrn/[REDACTED:mrn]/summary',
    );
    expect(redactUrl('/lookup/dob/1970-01-01').url).toBe('/lookup/dob/[REDACTED:dob]');
  });

  it('masks PHI query values by key and by pattern', () => {
    const { url } = redactUrl(
      '/q?email=jane%40example.org&dob=1970-01-01&ssn=123456789&patient_id=A99&note=call+212-555-0143&n=5',
    );
    expect(url).toBe(
      '/q?email=[REDACTED:email]&dob=[REDACTED:dob]&ssn=[REDACTED:ssn]&patient_id=[REDACTED:mrn]&note=call%20[REDACTED:phone]&n=5',
    );
  });

  it('masks FHIR person search parameters', () => {
    expect(
      redactUrl('/fhir/Patient?family=Smith&given=Jo&birthdate=1970-01-01&_count=10').url,
    ).toBe(
      '/fhir/Patient?family=[REDACTED:name]&given=[REDACTED:name]&birthdate=[REDACTED:dob]&_count=10',
    );
    // Not a person resource: `name` is not PHI there.
    expect(redactUrl('/fhir/Organization?name=General+Hospital').url).toBe(
      '/fhir/Organization?name=General+Hospital',
    );
  });

  it('leaves numbers that are not PHI alone', () => {
    const plain = '/orders/1234567890/items/2024-01-15?since=1700000000&zip=12345';
    expect(redactUrl(plain)).toEqual({ url: plain, applied: [] });
  });

  it('is idempotent', () => {
    const inputs = [
      'https://u:p@h/a/123-45-6789;jsessionid=1?token=x&email=a%40b.co&next=%2F%3Fcode%3D1#id_token=z',
      '/fhir/Patient?family=Smith',
      'user:pass@proxy:3128',
    ];
    for (const input of inputs) {
      const once = redactUrl(input).url;
      expect(redactUrl(once)).toEqual({ url: once, applied: [] });
    }
  });
});
