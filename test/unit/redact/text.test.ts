import { describe, expect, it } from 'vitest';
import { redactCommand, redactText } from '../../../src/store/redact/index.js';

/** [input, expected output]: each positive masks exactly the PHI, keeping the context word. */
type Row = [string, string];

function table(name: string, rows: Row[]): void {
  describe(name, () => {
    for (const [input, expected] of rows) {
      it(JSON.stringify(input), () => {
        expect(redactText(input).text).toBe(expected);
      });
    }
  });
}

table('SSN: positives', [
  ['SSN 123-45-6789', 'SSN [REDACTED:ssn]'],
  ['id 123-45-6789 on file', 'id [REDACTED:ssn] on file'],
  ['(078-05-1120)', '([REDACTED:ssn])'],
  ['SSN: 123456789', 'SSN: [REDACTED:ssn]'],
  ['ssn=123456789', 'ssn=[REDACTED:ssn]'],
  ['"ssn": "123456789"', '"ssn": "[REDACTED:ssn]"'],
  ['Social Security Number is 123 45 6789', 'Social Security Number is [REDACTED:ssn]'],
  ['SS# 665-12-3456', 'SS# [REDACTED:ssn]'],
  ['social_security_no: 899-99-9999', 'social_security_no: [REDACTED:ssn]'],
]);

table('SSN: near misses stay', [
  ['000-12-3456', '000-12-3456'],
  ['666-12-3456', '666-12-3456'],
  ['900-12-3456', '900-12-3456'],
  ['999-12-3456', '999-12-3456'],
  ['123-00-4567', '123-00-4567'],
  ['123-45-0000', '123-45-0000'],
  ['SSN 000123456', 'SSN 000123456'],
  ['order 123456789 shipped', 'order 123456789 shipped'],
  ['1123-45-6789', '1123-45-6789'],
  ['123-45-67890', '123-45-67890'],
  ['123-45-6789-1', '123-45-6789-1'],
  ['SSN 1234567890', 'SSN 1234567890'],
]);

table('MRN: positives', [
  ['MRN: 00412345', 'MRN: [REDACTED:mrn]'],
  ['MRN 12345678 admitted', 'MRN [REDACTED:mrn] admitted'],
  ['mrn=A1234567', 'mrn=[REDACTED:mrn]'],
  ['Medical Record Number: 55-1234', 'Medical Record Number: [REDACTED:mrn]'],
  ['medical record no. 998877', 'medical record no. [REDACTED:mrn]'],
  ['Patient ID: PT-004512', 'Patient ID: [REDACTED:mrn]'],
  ['patient identifier 77881234', 'patient identifier [REDACTED:mrn]'],
  ['"patient_id": "884422"', '"patient_id": "[REDACTED:mrn]"'],
  ['MR# 123456', 'MR# [REDACTED:mrn]'],
]);

table('MRN: without context, or without a digit, stays', [
  ['record 00412345', 'record 00412345'],
  ['ID 12345678', 'ID 12345678'],
  ['MRN: pending', 'MRN: pending'],
  ['patient identifier unknown', 'patient identifier unknown'],
  ['MRNX 12345', 'MRNX 12345'],
]);

table('DOB: positives', [
  ['DOB: 01/02/1990', 'DOB: [REDACTED:dob]'],
  ['DOB 1990-01-02', 'DOB [REDACTED:dob]'],
  ['d.o.b. 2/3/61', 'd.o.b. [REDACTED:dob]'],
  ['Date of birth: March 3, 1950', 'Date of birth: [REDACTED:dob]'],
  ['date of birth 3rd March 1950', 'date of birth [REDACTED:dob]'],
  ['born on 31.12.1949', 'born on [REDACTED:dob]'],
  ['birthdate=19700101', 'birthdate=[REDACTED:dob]'],
  ['"birthDate": "1970-01-01"', '"birthDate": "[REDACTED:dob]"'],
  ['<birthDate value="1970-01-01"/>', '<birthDate value="[REDACTED:dob]"/>'],
  ['Birthday: Jan 5 2001', 'Birthday: [REDACTED:dob]'],
]);

table('DOB: dates without context stay', [
  ['visit on 01/02/1990', 'visit on 01/02/1990'],
  ['created 1990-01-02T10:00:00Z', 'created 1990-01-02T10:00:00Z'],
  ['March 3, 1950', 'March 3, 1950'],
  ['DOB unknown, seen 2020-01-01', 'DOB unknown, seen 2020-01-01'],
  ['stubborn 1990-01-02', 'stubborn 1990-01-02'],
]);

table('phone: positives', [
  ['call (212) 555-0143', 'call [REDACTED:phone]'],
  ['(212)555-0143', '[REDACTED:phone]'],
  ['212-555-0143', '[REDACTED:phone]'],
  ['212.555.0143', '[REDACTED:phone]'],
  ['212 555 0143', '[REDACTED:phone]'],
  ['+1 212 555 0143', '[REDACTED:phone]'],
  ['+1-212-555-0143', '[REDACTED:phone]'],
  ['1-800-555-0199', '[REDACTED:phone]'],
  ['+12125550143', '[REDACTED:phone]'],
  ['phone: 2125550143', 'phone: [REDACTED:phone]'],
  ['Tel 12125550143', 'Tel [REDACTED:phone]'],
  ['fax # 212.555.0143.', 'fax # [REDACTED:phone].'],
]);

table('phone: numbers that are not NANP stay', [
  ['123-456-7890', '123-456-7890'],
  ['023-456-7890', '023-456-7890'],
  ['212-055-0143', '212-055-0143'],
  ['212-155-0143', '212-155-0143'],
  ['911-555-0143', '911-555-0143'],
  ['292-555-0143', '292-555-0143'],
  ['212-411-0143', '212-411-0143'],
  ['2125550143', '2125550143'],
  ['555-0143', '555-0143'],
  ['212-555-01434', '212-555-01434'],
  ['+44 20 7946 0958', '+44 20 7946 0958'],
  ['+442079460958', '+442079460958'],
  ['192.168.100.200', '192.168.100.200'],
  ['v10.212.555.0143', 'v10.212.555.0143'],
  ['4111 1111 1111 1111', '4111 1111 1111 1111'],
  ['ts 1700000000', 'ts 1700000000'],
  ['phone: 1234567890', 'phone: 1234567890'],
]);

table('email', [
  ['mail jane.roe@example.org now', 'mail [REDACTED:email] now'],
  ['<j_doe+tag@mail.sub.example.co.uk>', '<[REDACTED:email]>'],
  ['a@b.io, c@d.io', '[REDACTED:email], [REDACTED:email]'],
  ['user@localhost', 'user@localhost'],
  ['@handle and foo@ and @bar.com', '@handle and foo@ and @bar.com'],
  ['version 1.2@3', 'version 1.2@3'],
]);

table('secrets written as key=value in text', [
  ['password=hunter2', 'password=[REDACTED:password]'],
  ['PASSWORD: "hunter 2"', 'PASSWORD: "[REDACTED:password]"'],
  ["{'client_secret': 'abc'}", "{'client_secret': '[REDACTED:secret]'}"],
  ['{"access_token":"abc\\"def","x":1}', '{"access_token":"[REDACTED:token]","x":1}'],
  ['{"refresh_token": "cut off by trunca', '{"refresh_token": "[REDACTED:token]'],
  ['Authorization: Bearer abc123def', 'Authorization: [REDACTED:authorization]'],
  ['x-api-key: AIzaSyA-123', 'x-api-key: [REDACTED:api-key]'],
  [
    'GET /cb?code=abc&key=k1&state=1',
    'GET /cb?code=[REDACTED:code]&key=[REDACTED:api-key]&state=1',
  ],
  ['a=password=hunter2', 'a=password=[REDACTED:password]'],
  [
    '<password>hunter2</password><user>x</user>',
    '<password>[REDACTED:password]</password><user>x</user>',
  ],
  ['<ns:ssn>123456789</ns:ssn>', '<ns:ssn>[REDACTED:ssn]</ns:ssn>'],
  ['token=abc==', 'token=[REDACTED:token]'],
  ['AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG', 'AWS_SECRET_ACCESS_KEY=[REDACTED:secret]'],
  // A key spelled with percent-encoding is the same key (an echoed URL in a response body).
  [
    '{"path":"/v1/a?Access%5FToken=PCTENCsecret7777&x=1"}',
    '{"path":"/v1/a?Access%5FToken=[REDACTED:token]&x=1"}',
  ],
  ['see ?api%5Fkey=k9k9k9 here', 'see ?api%5Fkey=[REDACTED:api-key] here'],
  ['%70assword=hunter2', '%70assword=[REDACTED:password]'],
]);

table('secrets: near misses stay', [
  ['status code: 404', 'status code: 404'],
  ['primary key: id', 'primary key: id'],
  ['max_tokens=100, token_type=bearer', 'max_tokens=100, token_type=bearer'],
  ['"password": null, "token": ""', '"password": null, "token": ""'],
  ['a bearer token is sent', 'a bearer token is sent'],
  ['bearer authentication', 'bearer authentication'],
]);

table('bearer tokens and JWTs in prose', [
  ['sent bearer abcdefgh12345678', 'sent bearer [REDACTED:authorization]'],
  [
    'jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.SflKxwRJSMeKKF2QT4fwpM end',
    'jwt [REDACTED:token] end',
  ],
]);

describe('redactText: applied', () => {
  it('counts each kind and uses the given location', () => {
    const { applied } = redactText('SSN 123-45-6789, 078-05-1120; a@b.io; 212-555-0143', 'log');
    expect(applied).toEqual([
      { kind: 'ssn', location: 'log', count: 2 },
      { kind: 'email', location: 'log', count: 1 },
      { kind: 'phone', location: 'log', count: 1 },
    ]);
  });

  it('defaults the location to text and reports nothing for clean text', () => {
    expect(redactText('nothing here: 42')).toEqual({ text: 'nothing here: 42', applied: [] });
    expect(redactText('a@b.io').applied[0]?.location).toBe('text');
  });

  it('is idempotent on a mixed record', () => {
    const input =
      'Pt SSN: 123-45-6789 MRN 00412345 DOB: 01/02/1990 born 1/2/90 phone (212) 555-0143, +12125550143, mail a.b@c.org, password=x token: "y" Bearer abcdefghijkl1234 <secret>s</secret>';
    const once = redactText(input).text;
    expect(once).not.toMatch(/123-45-6789|00412345|01\/02\/1990|555-0143|a\.b@c|abcdefghijkl/);
    expect(redactText(once)).toEqual({ text: once, applied: [] });
  });
});

table('URL userinfo in text', [
  [
    'db "postgres://admin:pw1!@db.x:5432/phi" x',
    'db "postgres://[REDACTED:userinfo]@db.x:5432/phi" x',
  ],
  ['see https://user3:pw3@host.example/ now', 'see https://[REDACTED:userinfo]@host.example/ now'],
  ['<https://u4:p4@a.b/a>; rel=next', '<https://[REDACTED:userinfo]@a.b/a>; rel=next'],
  ['ftp://u:p@ss@host/x', 'ftp://[REDACTED:userinfo]@host/x'],
  ['http://u@[::1]:80/', 'http://[REDACTED:userinfo]@[::1]:80/'],
  ['https://x.io/a@b', 'https://x.io/a@b'],
  ['https://example.org/~user/@home', 'https://example.org/~user/@home'],
]);

describe('redactText: cost stays linear on hostile input', () => {
  const M = 1 << 20;
  const inputs: [string, string][] = [
    ['letters', 'a'.repeat(M)],
    ['digits', '7'.repeat(M)],
    ['at signs', 'a@'.repeat(M / 2)],
    ['key=key=', 'a=a='.repeat(M / 4)],
    ['colons', 'x:'.repeat(M / 2)],
    ['ssn-like', '123-45-'.repeat(M / 7)],
    ['phone-like', '212 555 '.repeat(M / 8)],
    ['open quotes', '"password": "'.repeat(M / 13)],
    ['context words', 'MRN: DOB: SSN: phone: '.repeat(M / 22)],
    ['long locals', `${'a'.repeat(60)}@${'b'.repeat(60)}.`.repeat(M / 122)],
    ['tags', '<a>'.repeat(M / 3)],
    ['bearer words', 'bearer '.repeat(M / 7)],
    ['jwt-like', 'eyJaaaaaaaaa.'.repeat(M / 13)],
    ['token run', `token=${'x'.repeat(M)}`],
    ['schemes', 'a://b:c'.repeat(M / 7)],
    ['scheme and at signs', `a://${'b:@'.repeat(M / 3)}`],
  ];
  for (const [name, input] of inputs) {
    it(`${name}: 1 MiB in well under 3 s`, () => {
      const started = performance.now();
      redactText(input);
      expect(performance.now() - started).toBeLessThan(3000);
    });
  }
});

describe('redactText: long secrets are masked whole', () => {
  it('a 100 kB token after a secret key, quoted or bare', () => {
    const long = 'A1b2'.repeat(25_000);
    for (const input of [`token=${long}`, `"token": "${long}"`, `Bearer ${long}`]) {
      const out = redactText(input).text;
      expect(out).not.toMatch(/A1b2/);
    }
  });
});

describe('redactCommand', () => {
  it('masks a URL argument as a URL and any argument as text, also in a shell script', () => {
    const shown = redactCommand([
      'sh',
      '-c',
      "curl 'https://h.test/x?api_key=CMDKEY1' -H 'Authorization: Bearer CMDBEARER123456'",
      '--password=CMDPASS1',
      'https://u:CMDPW2@h.test/a?access_token=CMDTOK3',
      'analysis.R',
      '--token',
      'CMDTOK4',
    ]);
    expect(shown.join(' ')).not.toMatch(/CMDKEY1|CMDBEARER|CMDPASS1|CMDPW2|CMDTOK3|CMDTOK4/);
    expect(shown[3]).toBe('--password=[REDACTED:password]');
    expect(shown[7]).toBe('[REDACTED:token]');
    expect(shown[0]).toBe('sh');
    expect(shown[5]).toBe('analysis.R');
    expect(shown[2]).toContain("curl 'https://h.test/x?api_key=[REDACTED:");
    expect(shown[4]).toMatch(
      /^https:\/\/\[REDACTED:userinfo\]@h\.test\/a\?access_token=\[REDACTED:/,
    );
  });

  it("masks the password of curl's -u/--user/--proxy-user, separate, attached or in a script", () => {
    const shown = redactCommand([
      'curl',
      '-u',
      'user1:CMDPW1',
      '--user=user2:CMDPW2',
      '-uuser3:CMDPW3',
      '--proxy-user',
      'user4:CMDPW4',
      '-su',
      'user5:CMDPW5',
      '-s',
      'https://h.test/',
    ]);
    expect(shown).toEqual([
      'curl',
      '-u',
      'user1:[REDACTED:password]',
      '--user=user2:[REDACTED:password]',
      '-uuser3:[REDACTED:password]',
      '--proxy-user',
      'user4:[REDACTED:password]',
      '-su',
      'user5:[REDACTED:password]',
      '-s',
      'https://h.test/',
    ]);
    expect(
      redactCommand(['sh', '-c', 'curl -u alice:CMDPW6 https://h/ && curl --user "bob:CMDPW7" x']),
    ).toEqual([
      'sh',
      '-c',
      'curl -u alice:[REDACTED:password] https://h/ && curl --user "bob:[REDACTED:password]" x',
    ]);
  });

  it('masks options named like secrets inside a script, and a whole --password= argument', () => {
    expect(
      redactCommand([
        'sh',
        '-c',
        `tool --password="quoted pw1" db && tool --password='q w' --token abc --api-key=xyz -v; git --no-pager log -n 3`,
      ])[2],
    ).toBe(
      'tool --password=[REDACTED:password] db && tool --password=[REDACTED:password] ' +
        '--token [REDACTED:token] --api-key=[REDACTED:api-key] -v; git --no-pager log -n 3',
    );
    // After a space the next option is not the value.
    expect(redactCommand(['sh', '-c', 'tool --token --verbose'])[2]).toBe('tool --token --verbose');
    // One argument: all of its value, spaces included.
    expect(redactCommand(['tool', '--password=pass word2', 'x'])).toEqual([
      'tool',
      '--password=[REDACTED:password]',
      'x',
    ]);
  });

  it("masks the MySQL family's -pPASSWORD, in their arguments and in a script that runs one", () => {
    const P = '-p[REDACTED:password]';
    expect(redactCommand(['mysql', '-uroot', '-pS3cr3t!', 'clinic'])).toEqual([
      'mysql',
      '-uroot',
      P,
      'clinic',
    ]);
    expect(redactCommand(['/usr/bin/mariadb-dump', '-pabc', 'db'])).toEqual([
      '/usr/bin/mariadb-dump',
      P,
      'db',
    ]);
    // `-p` alone asks for the password: nothing to mask.
    expect(redactCommand(['mysql', '-p', '-h', 'db.local'])).toEqual([
      'mysql',
      '-p',
      '-h',
      'db.local',
    ]);
    expect(
      redactCommand([
        'sh',
        '-c',
        "mkdir -p out; mysqldump -uroot -pS3cr3t clinic | gzip > out/x.gz; mysql -p'pass word' -e 'select 1'",
      ])[2],
    ).toBe(
      `mkdir -p out; mysqldump -uroot ${P} clinic | gzip > out/x.gz; mysql ${P} -e 'select 1'`,
    );
    // Behind a wrapper, in a cluster of flags, as a prefix of --password, and the argument
    // after -pSECRET is not taken for its value.
    expect(redactCommand(['docker', 'exec', '-i', 'db', 'mysql', '-uroot', '-pdockerpw'])).toEqual([
      'docker',
      'exec',
      '-i',
      'db',
      'mysql',
      '-uroot',
      P,
    ]);
    expect(redactCommand(['sudo', '-u', 'app', 'mysql', '-BNphunter2', '-e', 'select 1'])).toEqual([
      'sudo',
      '-u',
      'app',
      'mysql',
      '-BNp[REDACTED:password]',
      '-e',
      'select 1',
    ]);
    expect(redactCommand(['mysql', '--pass=hunter2', '--password=pass word2', 'mydb'])).toEqual([
      'mysql',
      '--pass=[REDACTED:password]',
      '--password=[REDACTED:password]',
      'mydb',
    ]);
    expect(redactCommand(['mysql', '-pPassword123', 'mydb'])).toEqual(['mysql', P, 'mydb']);
    expect(
      redactCommand([
        'bash',
        '-lc',
        `mysql --password="quoted pw1" db; mysql -pSEC\\ RET9 db<dump.sql; mysql -e 'select 1; select 2' -pLATE`,
      ])[2],
    ).toBe(
      'mysql --password=[REDACTED:password] db; mysql -p[REDACTED:password] db<dump.sql; ' +
        "mysql -e 'select 1; select 2' -p[REDACTED:password]",
    );
    // A script that only names a client (a service, a path) keeps the other commands' -p.
    expect(
      redactCommand([
        'sh',
        '-c',
        'systemctl restart mysql; mkdir -pv out; rsync -pav /var/lib/mysql /b',
      ])[2],
    ).toBe('systemctl restart mysql; mkdir -pv out; rsync -pav /var/lib/mysql /b');
    // Other programs' -p is theirs (a port, a flag).
    expect(redactCommand(['ssh', '-p2222', 'host'])).toEqual(['ssh', '-p2222', 'host']);
    expect(redactCommand(['sh', '-c', 'ssh -p2222 host'])[2]).toBe('ssh -p2222 host');
    // Linear on a long run of -p.
    const long = `mysql ${'-p'.repeat(50_000)}`;
    const t0 = performance.now();
    redactCommand(['sh', '-c', long]);
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it('leaves -u alone when it is not a user:password (python -u, git push -u, sort -u, uid:gid)', () => {
    for (const argv of [
      ['python3', '-u', 'train.py'],
      ['git', 'push', '-u', 'origin', 'main'],
      ['sort', '-u', 'patients.csv'],
      ['sort', '-u', '-t:', '-k2'],
      ['docker', 'run', '-u', '1000', 'img'],
      ['docker', 'run', '-u', '1000:1000', 'img'],
      ['java', '-Duser.dir=/a:b', 'Main'],
      ['curl', '-u', '[REDACTED:userinfo]'],
      ['curl', '--user=[REDACTED:userinfo]'],
    ]) {
      expect(redactCommand(argv)).toEqual(argv);
    }
  });

  it('masks an empty-user token and quoted passwords with spaces; stays linear', () => {
    expect(redactCommand(['curl', '-u', ':PAT1', 'x', '--user', ':PAT2', '-u:PAT3'])).toEqual([
      'curl',
      '-u',
      ':[REDACTED:password]',
      'x',
      '--user',
      ':[REDACTED:password]',
      '-u:[REDACTED:password]',
    ]);
    expect(
      redactCommand([
        'sh',
        '-c',
        `curl -u :PAT4 h; curl -u 'alice:pass word' x; (curl -u a:PW5); curl -u "b:two words" y`,
      ]),
    ).toEqual([
      'sh',
      '-c',
      `curl -u :[REDACTED:password] h; curl -u 'alice:[REDACTED:password]' x; (curl -u a:[REDACTED:password]); curl -u "b:[REDACTED:password]" y`,
    ]);
    const started = performance.now();
    redactCommand(['x', `x: -${'u'.repeat(200_000)}`]);
    redactCommand(['sh', '-c', '(-u'.repeat(66_666)]);
    redactCommand(['sh', '-c', `-u '${'a'.repeat(200_000)}`]);
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('reads the value as a shell word: quotes after the colon, escapes, continuations, punctuation', () => {
    const cases: [string[], string[]][] = [
      [
        ['curl', '--user=alice:pa;ss&word)x'],
        ['curl', '--user=alice:[REDACTED:password]'],
      ],
      [
        ['curl', '-ualice:pa;ssword'],
        ['curl', '-ualice:[REDACTED:password]'],
      ],
      [
        ['curl', '-u', '4711:83920174'],
        ['curl', '-u', '4711:[REDACTED:password]'],
      ],
      [
        ['bash', '-c', `curl -u alice:'s3cret PW' x; curl -u "bob":pw2 y; curl -u c:s3\\ x z`],
        [
          'bash',
          '-c',
          `curl -u alice:[REDACTED:password] x; curl -u "bob":[REDACTED:password] y; curl -u c:[REDACTED:password] z`,
        ],
      ],
      [
        ['bash', '-c', 'curl --user alice:"s3 PW" x && curl -u \\\n d:pw3 w'],
        [
          'bash',
          '-c',
          'curl --user alice:[REDACTED:password] x && curl -u \\\n d:[REDACTED:password] w',
        ],
      ],
    ];
    for (const [argv, shown] of cases) expect(redactCommand(argv)).toEqual(shown);
  });
});
