import { describe, expect, it } from 'vitest';
import { scanSource, trimUrl, type Finding } from '../../../src/scan/index.js';

/** A PEM header line, built here so that no tracked file holds one that looks like a key. */
const pemHeader = (kind: string): string => ['-----BEGIN', `${kind}-----`].join(' ');

/** Scans a line as a generic (patterns only) file. */
async function scanText(text: string): Promise<Finding[]> {
  return scanSource(text, 'notes.txt');
}

const FAKE = {
  projKey: 'sk-proj-' + 'Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8Qr9St0_Uv-Wx',
  ghp: 'ghp_' + 'a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8',
  pat: 'github_pat_' + '11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWX',
  google: 'AIza' + 'SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q',
  slack: 'xoxb-' + '1234567890-0987654321-AbCdEfGhIjKlMnOp',
  jwt:
    'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9' +
    '.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ' +
    '.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c',
};

describe('secret patterns', () => {
  it.each([
    ['openai_api_key', `OPENAI_KEY = "${FAKE.projKey}"`],
    ['openai_api_key', 'key: sk-abcdefghijklmnopqrstuvwxyz1234567890'],
    ['aws_access_key', 'id=ASIAIOSFODNN7EXAMPLE'],
    ['github_token', `token = "${FAKE.ghp}"`],
    ['github_token', `GH=${FAKE.pat}`],
    ['google_api_key', `maps("${FAKE.google}")`],
    ['slack_token', `SLACK=${FAKE.slack}`],
    ['jwt', `Authorization: Bearer ${FAKE.jwt}`],
    ['private_key', pemHeader('RSA PRIVATE KEY')],
    ['private_key', pemHeader('OPENSSH PRIVATE KEY')],
    ['private_key', pemHeader('PRIVATE KEY')],
    ['private_key', pemHeader('ENCRYPTED PRIVATE KEY')],
    ['private_key', pemHeader('PGP PRIVATE KEY BLOCK')],
    [
      'azure_connection_string',
      'DefaultEndpointsProtocol=https;AccountName=phistore;AccountKey=bm90LWEtcmVhbC1rZXk=;EndpointSuffix=core.windows.net',
    ],
  ])('%s: %s', async (pattern, line) => {
    const fs = await scanText(line);
    const f = fs.find((x) => x.patterns.includes(pattern as Finding['kind']));
    expect(f, JSON.stringify(fs)).toBeDefined();
    expect(f?.severity).toBe('critical');
  });

  it.each([
    '-----BEGIN PUBLIC KEY-----',
    '-----BEGIN CERTIFICATE-----',
    'sk-short123',
    'ghp_tooShort123',
    'task-sk-abcdefghijklmnopqrstuvwxyz', // not a word start
  ])('no secret in %s', async (line) => {
    const fs = await scanText(line);
    expect(fs.filter((f) => f.severity === 'critical')).toEqual([]);
  });

  it('never shows a secret: text, context, endpoint and matches are masked', async () => {
    const line = `const client = make("${FAKE.projKey}", "${FAKE.ghp}")`;
    const fs = await scanText(line);
    expect(fs.map((f) => f.kind)).toEqual(['openai_api_key', 'github_token']);
    const out = JSON.stringify(fs);
    expect(out).not.toContain(FAKE.projKey.slice(8));
    expect(out).not.toContain(FAKE.ghp.slice(4));
    expect(fs[0]?.text).toBe('sk-proj-…');
    expect(fs[0]?.context).toBe('const client = make("sk-proj-…", "ghp_…")');
  });

  it('masks the value of a generic key assignment, not its name', async () => {
    const fs = await scanText('API_KEY=abc123def456ghi789jkl');
    expect(fs).toHaveLength(1);
    expect(fs[0]?.kind).toBe('generic_api_key');
    expect(fs[0]?.text).toBe('API_KEY=abc1…');
    expect(JSON.stringify(fs)).not.toContain('abc123def456ghi789jkl');
  });

  it('masks a password in a URL and in a short userinfo too', async () => {
    const fs = await scanText(
      'see https://bob:pw@api.partner.org/v1 and postgres://app:Sup3rS3cret@db.partner.org/x',
    );
    const out = JSON.stringify(fs);
    expect(out).not.toContain('Sup3rS3cret');
    expect(out).not.toContain('bob:pw@');
    expect(fs.map((f) => [f.kind, f.severity, f.destination?.host])).toEqual([
      ['url', 'warning', 'api.partner.org'],
      ['database_url', 'critical', 'db.partner.org'],
    ]);
  });
});

describe('generic_api_key', () => {
  it.each([
    ['api_key = "abcdefghijklmnop1234"', true],
    ['"api_key": "abcdefghijklmnop1234"', true], // JSON
    ['OPENAI_API_KEY=abc123def456ghi789jkl', true], // .env, unquoted with digits
    ['auth-token: Zx9Yw8Vu7Ts6Rq5Po4', true],
    ['api_key = get_api_key_from_vault()', false], // a call, not a value
    ['apiKey: process.env.OPENAI_API_KEY', false],
    ['api_key = some_long_variable_name', false], // unquoted name without digits
    ['api_key = "your-api-key-goes-here"', false], // placeholder
    ['api_key = "xxxxxxxxxxxxxxxxxxxx"', false],
    ['api_key = "short"', false],
  ])('%s → %s', async (line, found) => {
    const fs = await scanText(line);
    expect(fs.some((f) => f.patterns.includes('generic_api_key'))).toBe(found);
  });
});

describe('url', () => {
  it.each([
    ["requests.get('https://api.openai.com')", 'https://api.openai.com'],
    ['(see https://docs.partner.org/a).', 'https://docs.partner.org/a'],
    ['https://en.wikipedia.org/wiki/Foo_(bar)', 'https://en.wikipedia.org/wiki/Foo_(bar)'],
    ['[guide](https://docs.partner.org/p)', 'https://docs.partner.org/p'],
    ['urls = ["https://a.partner.org", "https://b.partner.org"]', 'https://a.partner.org'],
    ['at https://api.partner.org/q?a=1,b=2, then', 'https://api.partner.org/q?a=1,b=2'],
    ['<a href="https://api.partner.org/x">', 'https://api.partner.org/x'],
    ['HTTPS://API.PARTNER.ORG/x;', 'HTTPS://API.PARTNER.ORG/x'],
  ])('%s → %s', async (line, url) => {
    const fs = await scanText(line);
    expect(fs[0]?.matches.find((m) => m.pattern === 'url')?.text).toBe(url);
  });

  it.each([
    'http://localhost:8080/health',
    'http://127.0.0.1:3000',
    'http://0.0.0.0:8000',
    'https://example.com/docs',
    'http://schemas.xmlsoap.org/soap/envelope/',
    'http://www.w3.org/2001/XMLSchema',
    'https://tools.ietf.org/html/rfc7230',
    'f"https://{host}/v1"',
    'https://',
  ])('no finding for %s', async (line) => {
    expect(await scanText(line)).toEqual([]);
  });

  it('keeps api.example.com for the universal pattern (as before)', async () => {
    const fs = await scanText('https://api.example.com/v1');
    expect(fs.map((f) => f.kind)).toEqual(['url']);
  });

  it('does not excuse a URL whose userinfo says localhost', async () => {
    const fs = await scanText('https://localhost@evil.partner.org/steal');
    expect(fs.map((f) => f.destination?.host)).toEqual(['evil.partner.org']);
  });

  it('trimUrl keeps balanced brackets and drops trailing punctuation', () => {
    expect(trimUrl('https://x.org/a).')).toBe('https://x.org/a');
    expect(trimUrl('https://x.org/(a)')).toBe('https://x.org/(a)');
    expect(trimUrl('https://x.org/a]')).toBe('https://x.org/a');
    expect(trimUrl('https://x.org/?q=1;')).toBe('https://x.org/?q=1');
  });

  it('one literal is one finding: a webhook URL is a secret and a URL', async () => {
    const fs = await scanText(
      'WEBHOOK = "https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXX"',
    );
    expect(fs).toHaveLength(1);
    expect(fs[0]?.patterns).toEqual(['slack_webhook', 'url']);
    expect(fs[0]?.severity).toBe('critical');
    expect(fs[0]?.text).toBe('https://hooks.slack.com/services/T000…');
  });
});

describe('ip_literal', () => {
  it.each([
    ['server 203.0.113.7 is up', '203.0.113.7'],
    ['connect("198.51.100.20:5432")', '198.51.100.20:5432'],
    ['http://192.168.0.1/admin', '192.168.0.1'],
  ])('%s → %s', async (line, ip) => {
    const fs = await scanText(line);
    expect(
      fs.flatMap((f) => f.matches.filter((m) => m.pattern === 'ip_literal').map((m) => m.text)),
    ).toEqual([ip]);
  });

  it.each([
    'version = "1.2.3.4"',
    "__version__ = '10.1.0.2'",
    'release v1.2.3.4',
    'pkg-2.10.3.1',
    '1.2.3.4.5',
    '999.1.2.3',
    '127.0.0.1',
    '255.255.255.0',
    '0.0.0.0',
    '10.0.0.0',
  ])('no ip_literal in %s', async (line) => {
    const fs = await scanText(line);
    expect(fs.filter((f) => f.patterns.includes('ip_literal'))).toEqual([]);
  });
});

describe('database_url', () => {
  it.each([
    [
      'DATABASE_URL=postgres://app:Pa55word@db.partner.org:5432/app',
      'critical',
      'db.partner.org',
      5432,
    ],
    [
      'uri = "mongodb+srv://svc:Pa55word@cluster0.ab1cd.mongodb.net/app"',
      'critical',
      'cluster0.ab1cd.mongodb.net',
      0,
    ],
    ['mysql://reader@replica.partner.org/app', 'warning', 'replica.partner.org', 3306],
    ['jdbc:postgresql://pg.partner.org:5433/app', 'warning', 'pg.partner.org', 5433],
    [
      'postgresql+psycopg2://app:${DB_PASSWORD}@pg.partner.org/app',
      'warning',
      'pg.partner.org',
      5432,
    ],
    ['amqps://mq.partner.org/vhost', 'warning', 'mq.partner.org', 5671],
  ])('%s', async (line, severity, host, port) => {
    const fs = await scanText(line);
    expect(fs.map((f) => [f.kind, f.severity, f.destination?.host, f.destination?.port])).toEqual([
      ['database_url', severity, host, port],
    ]);
  });

  it('leaves local databases alone', async () => {
    expect(await scanText('redis://localhost:6379/0 postgres://u:p@127.0.0.1/x')).toEqual([]);
  });

  it('a password given as a parameter is critical and masked everywhere', async () => {
    for (const [line, secret] of [
      ['"jdbc:postgresql://pg.x.org:5432/db?user=a&password=secretpw1"', 'secretpw1'],
      ['"postgresql://db.x.org/cohort?user=bob&password=PlainPw123&ssl=true"', 'PlainPw123'],
      ['"jdbc:sqlserver://sql.x.org:1433;user=u;password=SqlPw456;encrypt=true"', 'SqlPw456'],
      ['"mysql://my.x.org/app?PWD=MyPw789"', 'MyPw789'],
    ] as const) {
      const fs = await scanText(line);
      expect(
        fs.map((f) => [f.kind, f.severity]),
        line,
      ).toEqual([['database_url', 'critical']]);
      expect(JSON.stringify(fs), line).not.toContain(secret);
    }
    const placeholder = await scanText('"postgresql://db.x.org/app?password=${DB_PASSWORD}"');
    expect(placeholder.map((f) => f.severity)).toEqual(['warning']);
  });
});
