import { describe, expect, it } from 'vitest';
import { redactBody } from '../../../src/store/redact/index.js';

const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const JSON_TYPE = { contentType: 'application/json' };

describe('redactBody: JSON', () => {
  it('masks token-like keys at any depth, in any spelling, and pretty-prints', () => {
    const r = redactBody(
      json({
        access_token: 'at-1',
        token_type: 'Bearer',
        expires_in: 3600,
        user: { id: 7, apiKey: 'ak-1', 'Client-Secret': 'cs-1', password: 123456 },
        items: [{ refresh_token: 'rt-1' }, { refresh_token: 'rt-2' }],
      }),
      JSON_TYPE,
    );
    expect(r.binary).toBe(false);
    expect(JSON.parse(r.text ?? '')).toEqual({
      access_token: '[REDACTED:token]',
      token_type: 'Bearer',
      expires_in: 3600,
      user: {
        id: 7,
        apiKey: '[REDACTED:api-key]',
        'Client-Secret': '[REDACTED:secret]',
        password: '[REDACTED:password]',
      },
      items: [{ refresh_token: '[REDACTED:token]' }, { refresh_token: '[REDACTED:token]' }],
    });
    expect(r.text).toContain('\n  "access_token": "[REDACTED:token]",\n');
    expect(r.applied).toEqual([
      { kind: 'token', location: 'body:$.access_token', count: 1 },
      { kind: 'api-key', location: 'body:$.user.apiKey', count: 1 },
      { kind: 'secret', location: 'body:$.user["Client-Secret"]', count: 1 },
      { kind: 'password', location: 'body:$.user.password', count: 1 },
      { kind: 'token', location: 'body:$.items[*].refresh_token', count: 2 },
    ]);
  });

  it('masks every leaf under a secret key', () => {
    const r = redactBody(json({ credentials: { user: 'u', pass: 'p', n: [1, 2] } }), JSON_TYPE);
    expect(JSON.parse(r.text ?? '')).toEqual({
      credentials: {
        user: '[REDACTED:credential]',
        pass: '[REDACTED:credential]',
        n: ['[REDACTED:credential]', '[REDACTED:credential]'],
      },
    });
  });

  it('masks a secret named by a name/value pair (HAR, env lists)', () => {
    const r = redactBody(
      json({
        headers: [
          { name: 'Authorization', value: 'Bearer abc' },
          { name: 'Accept', value: 'text/html' },
        ],
        env: [
          { key: 'OPENAI_API_KEY', value: 'sk-1' },
          { key: 'Content-Type', value: 'x' },
        ],
      }),
      JSON_TYPE,
    );
    expect(JSON.parse(r.text ?? '')).toEqual({
      headers: [
        { name: 'Authorization', value: '[REDACTED:authorization]' },
        { name: 'Accept', value: 'text/html' },
      ],
      env: [
        { key: 'OPENAI_API_KEY', value: '[REDACTED:api-key]' },
        { key: 'Content-Type', value: 'x' },
      ],
    });
  });

  it('masks `code` only in an OAuth token request', () => {
    const oauth = redactBody(json({ grant_type: 'authorization_code', code: 'c-1' }), JSON_TYPE);
    expect(JSON.parse(oauth.text ?? '')).toEqual({
      grant_type: 'authorization_code',
      code: '[REDACTED:code]',
    });
    const error = redactBody(
      json({ error: { code: 'rate_limited', message: 'slow down' } }),
      JSON_TYPE,
    );
    expect(JSON.parse(error.text ?? '')).toEqual({
      error: { code: 'rate_limited', message: 'slow down' },
    });
  });

  it('masks PHI by key and by pattern in string values and keys', () => {
    const r = redactBody(
      json({
        dob: '1970-01-01',
        patientId: 42,
        lastName: 'Roe',
        contact: { phone: '2125550143', mobile: '212-555-0199' },
        note: 'SSN 123-45-6789, call 212-555-0143',
        'jane@example.org': { visits: 3 },
        ok: true,
        count: 123456789,
      }),
      JSON_TYPE,
    );
    expect(JSON.parse(r.text ?? '')).toEqual({
      dob: '[REDACTED:dob]',
      patientId: '[REDACTED:mrn]',
      lastName: '[REDACTED:name]',
      contact: { phone: '[REDACTED:phone]', mobile: '[REDACTED:phone]' },
      note: 'SSN [REDACTED:ssn], call [REDACTED:phone]',
      '[REDACTED:email]': { visits: 3 },
      ok: true,
      count: 123456789,
    });
    expect(r.applied).toContainEqual({ kind: 'email', location: 'body:$', count: 1 });
    expect(JSON.stringify(r.applied)).not.toContain('jane@');
  });

  it('keeps two keys that redact to the same marker apart', () => {
    const r = redactBody(json({ 'a@x.org': 1, 'b@x.org': 2 }), JSON_TYPE);
    expect(JSON.parse(r.text ?? '')).toEqual({ '[REDACTED:email]': 1, '[REDACTED:email]#2': 2 });
  });

  it('walks JSON sent without a Content-Type or as text/plain', () => {
    for (const contentType of [undefined, 'text/plain']) {
      const r = redactBody(json({ token: 'abc', lastName: 'Roe' }), { contentType });
      // Only the JSON walk knows `lastName`, and only it pretty-prints.
      expect(r.text).toBe('{\n  "token": "[REDACTED:token]",\n  "lastName": "[REDACTED:name]"\n}');
    }
    // Other text types are not re-printed.
    const xmlish = redactBody(json({ token: 'abc', lastName: 'Roe' }), { contentType: 'text/csv' });
    expect(xmlish.text).toBe('{"token":"[REDACTED:token]","lastName":"Roe"}');
  });

  it('redacts truncated JSON by its structure, keeps its text, and says so', () => {
    const cut = Buffer.from('{"user":"x","access_token":"abcdef0123456789","refresh_token":"ghij');
    const r = redactBody(cut, JSON_TYPE);
    expect(r.text).toBe(
      '{"user":"x","access_token":"[REDACTED:token]","refresh_token":"[REDACTED:token]"',
    );
    expect(r.note).toMatch(/not valid JSON/);
  });

  it('masks what only the structure says in JSON that does not parse (NaN, quotes, cut off)', () => {
    const body =
      '{"password": ["pw-1-abc"], "client_secret": {"v": "cs-1-abc"}, "n": NaN, ' +
      '\'api_key\': \'single-quoted-1\', "resourceType":"Patient", "name":[{"family":"Famname"}], ' +
      '"telecom":[{"system":"phone","value":"555-867-5309"}], "user": "jo", "items": [1, 2,], ' +
      '"password": "dup-pw-2", "note": "SSN 219-54-3299", "jo.doe@example.org": "under-an-email", ' +
      '"tail": {"access_token": "tok-cut-';
    const r = redactBody(Buffer.from(body), JSON_TYPE);
    for (const secret of [
      'pw-1-abc',
      'cs-1-abc',
      'single-quoted-1',
      'Famname',
      '555-867-5309',
      'dup-pw-2',
      '219-54-3299',
      'jo.doe@example.org',
      'under-an-email',
      'tok-cut-',
    ]) {
      expect(r.text).not.toContain(secret);
    }
    // Only the masked values change: the rest is the text as it came.
    expect(r.text).toMatch(/^\{"password": \["\[REDACTED:password\]"\], "client_secret": \{"v": /);
    expect(r.text).toContain('"n": NaN');
    expect(r.text).toContain('"user": "jo", "items": [1, 2,]');
    expect(r.text).toContain('"password": "[REDACTED:duplicate-key]"');
    expect(r.applied).toContainEqual({ kind: 'name', location: 'body:$.name[*].family', count: 1 });
  });

  it('walks a cut-off JSON body sent as text/plain, and the cut-off last line of NDJSON', () => {
    const plain = redactBody(Buffer.from('{"items":[{"secret":["abc-secret-1'), {
      contentType: 'text/plain',
    });
    expect(plain.text).toBe('{"items":[{"secret":["[REDACTED:secret]"');
    const nd = redactBody(Buffer.from('{"ok":1}\n{"client_secret":{"v":["abc-secret-2'), {
      contentType: 'application/x-ndjson',
    });
    expect(nd.text).toBe('{"ok":1}\n{"client_secret":{"v":["[REDACTED:secret]"');
  });

  it('falls back to text for JSON nested too deeply to walk', () => {
    const deep = `${'['.repeat(5000)}"a@b.io"${']'.repeat(5000)}`;
    const r = redactBody(Buffer.from(deep), JSON_TYPE);
    expect(r.text).toContain('[REDACTED:email]');
    expect(r.text).not.toContain('a@b.io');
    expect(r.note).toMatch(/nested too deeply/);
  });

  it('redacts NDJSON line by line', () => {
    const body = `${JSON.stringify({ token: 'a' })}\n${JSON.stringify({ ok: 1 })}\nnot json a@b.io\n`;
    const r = redactBody(Buffer.from(body), { contentType: 'application/x-ndjson' });
    expect(r.text).toBe('{"token":"[REDACTED:token]"}\n{"ok":1}\nnot json [REDACTED:email]\n');
  });
});

describe('redactBody: FHIR Patient', () => {
  const patient = {
    resourceType: 'Patient',
    id: 'example',
    meta: { versionId: '1' },
    text: {
      status: 'generated',
      div: '<div xmlns="http://www.w3.org/1999/xhtml">Peter Chalmers</div>',
    },
    identifier: [
      {
        use: 'usual',
        type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }] },
        system: 'urn:oid:1.2.36.146.595.217.0.1',
        value: '12345',
      },
      {
        type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'SS' }] },
        system: 'http://hl7.org/fhir/sid/us-ssn',
        value: '123456789',
      },
      { system: 'urn:example:insurance', value: 'INS-778' },
    ],
    active: true,
    name: [
      { use: 'official', family: 'Chalmers', given: ['Peter', 'James'] },
      { use: 'usual', given: ['Jim'] },
      { use: 'maiden', text: 'Peter Windsor', period: { end: '2002' } },
    ],
    telecom: [
      { use: 'home' },
      { system: 'phone', value: '(03) 5555 6473', use: 'work', rank: 1 },
      { system: 'email', value: 'p.chalmers@example.org' },
    ],
    gender: 'male',
    birthDate: '1974-12-25',
    address: [
      {
        use: 'home',
        line: ['534 Erewhon St'],
        city: 'PleasantVille',
        state: 'Vic',
        postalCode: '3999',
      },
    ],
    contact: [
      {
        relationship: [{ coding: [{ code: 'N' }] }],
        name: { family: 'du Marché', given: ['Bénédicte'] },
        telecom: [{ system: 'phone', value: '+33 (237) 998327' }],
      },
    ],
    managingOrganization: { reference: 'Organization/1' },
  };

  it('masks birthDate, MR and SS identifiers, names, telecom, address and narrative', () => {
    const r = redactBody(json(patient), { contentType: 'application/fhir+json; fhirVersion=4.0' });
    const out = JSON.parse(r.text ?? '');
    expect(out.birthDate).toBe('[REDACTED:dob]');
    expect(out.identifier[0]).toEqual({ ...patient.identifier[0], value: '[REDACTED:mrn]' });
    expect(out.identifier[1].value).toBe('[REDACTED:ssn]');
    expect(out.identifier[2]).toEqual(patient.identifier[2]);
    expect(out.name).toEqual([
      { use: 'official', family: '[REDACTED:name]', given: ['[REDACTED:name]', '[REDACTED:name]'] },
      { use: 'usual', given: ['[REDACTED:name]'] },
      { use: 'maiden', text: '[REDACTED:name]', period: { end: '2002' } },
    ]);
    expect(out.telecom).toEqual([
      { use: 'home' },
      { system: 'phone', value: '[REDACTED:telecom]', use: 'work', rank: 1 },
      { system: 'email', value: '[REDACTED:telecom]' },
    ]);
    expect(out.address[0]).toEqual({
      use: 'home',
      line: ['[REDACTED:address]'],
      city: '[REDACTED:address]',
      state: 'Vic',
      postalCode: '[REDACTED:address]',
    });
    expect(out.contact[0].name).toEqual({ family: '[REDACTED:name]', given: ['[REDACTED:name]'] });
    expect(out.contact[0].telecom[0].value).toBe('[REDACTED:telecom]');
    expect(out.text.div).toBe('[REDACTED:narrative]');
    expect(out.gender).toBe('male');
    expect(out.managingOrganization).toEqual({ reference: 'Organization/1' });
    for (const leaked of [
      'Chalmers',
      'Peter',
      'Jim',
      '1974-12-25',
      '12345',
      '123456789',
      '5555 6473',
      'Erewhon',
      'Bénédicte',
      '998327',
    ]) {
      expect(r.text).not.toContain(leaked);
    }
    expect(r.applied).toContainEqual({ kind: 'dob', location: 'body:$.birthDate', count: 1 });
    expect(r.applied).toContainEqual({
      kind: 'mrn',
      location: 'body:$.identifier[*].value',
      count: 1,
    });
    expect(r.applied).toContainEqual({
      kind: 'name',
      location: 'body:$.name[*].given[*]',
      count: 3,
    });
  });

  it('masks a Bundle cut off anywhere (a body over --max-body)', () => {
    const bundle = JSON.stringify({
      resourceType: 'Bundle',
      entry: [{ resource: patient }, { resource: patient }],
    });
    const sensitive = [
      'Chalmers',
      'Peter',
      'James',
      'Jim',
      'Windsor',
      '12345',
      '5555 6473',
      'p.chalmers',
      '1974-12-25',
      'Erewhon',
      'PleasantVille',
      'Bénédicte',
      '998327',
    ];
    for (let cut = 1; cut < bundle.length; cut++) {
      const r = redactBody(Buffer.from(bundle.slice(0, cut)), {
        contentType: 'application/fhir+json',
      });
      for (const v of sensitive) {
        const head = v.slice(0, Math.min(4, v.length));
        if (r.text!.includes(head)) throw new Error(`cut at ${cut}: ${head} shown in ${r.text}`);
      }
    }
  });

  it('finds resources inside a Bundle', () => {
    const bundle = {
      resourceType: 'Bundle',
      type: 'searchset',
      entry: [{ resource: patient }, { resource: patient }],
    };
    const r = redactBody(json(bundle), { contentType: 'application/fhir+json' });
    expect(r.text).not.toContain('Chalmers');
    expect(r.applied).toContainEqual({
      kind: 'dob',
      location: 'body:$.entry[*].resource.birthDate',
      count: 2,
    });
  });

  it('leaves `name` alone outside FHIR resources', () => {
    const r = redactBody(
      json({ model: 'gpt-4o', name: 'summarise', tools: [{ name: 'search' }] }),
      JSON_TYPE,
    );
    expect(JSON.parse(r.text ?? '')).toEqual({
      model: 'gpt-4o',
      name: 'summarise',
      tools: [{ name: 'search' }],
    });
  });

  it('masks FHIR XML names', () => {
    const xml =
      '<Patient xmlns="http://hl7.org/fhir"><name><family value="Chalmers"/><given value="Peter"/></name><birthDate value="1974-12-25"/></Patient>';
    const r = redactBody(Buffer.from(xml), { contentType: 'application/fhir+xml' });
    expect(r.text).toBe(
      '<Patient xmlns="http://hl7.org/fhir"><name><family value="[REDACTED:name]"/><given value="[REDACTED:name]"/></name><birthDate value="[REDACTED:dob]"/></Patient>',
    );
  });
});

describe('redactBody: forms, multipart, text', () => {
  it('redacts form fields like query parameters', () => {
    const body =
      'grant_type=password&username=jo&password=p%40ss+word&client_secret=cs&Code=c1&email=jo%40x.org&n=1';
    const r = redactBody(Buffer.from(body), {
      contentType: 'application/x-www-form-urlencoded; charset=UTF-8',
    });
    expect(r.text).toBe(
      'grant_type=password&username=jo&password=[REDACTED:password]&client_secret=[REDACTED:secret]&Code=[REDACTED:code]&email=[REDACTED:email]&n=1',
    );
    expect(r.applied).toContainEqual({
      kind: 'password',
      location: 'body:form:password',
      count: 1,
    });
  });

  it('keeps the spelling of the unmasked text in a form body (curl --data with prose)', () => {
    const form = { contentType: 'application/x-www-form-urlencoded' };
    expect(redactBody(Buffer.from('free text SSN 123-45-6789 ok'), form).text).toBe(
      'free text SSN [REDACTED:ssn] ok',
    );
    expect(redactBody(Buffer.from('note=born: DOB 01/02/1980, ok&n=1'), form).text).toBe(
      'note=born: DOB [REDACTED:dob], ok&n=1',
    );
    // An encoded field is written back encoded.
    expect(redactBody(Buffer.from('note=SSN%20123-45-6789'), form).text).toBe(
      'note=SSN%20[REDACTED:ssn]',
    );
  });

  it('redacts multipart parts by name and content, and hides binary parts', () => {
    const b = 'XyZ123';
    const body = Buffer.concat([
      Buffer.from(
        `--${b}\r\nContent-Disposition: form-data; name="password"\r\n\r\nhunter2\r\n` +
          `--${b}\r\nContent-Disposition: form-data; name="note"\r\n\r\nSSN 123-45-6789\r\n` +
          `--${b}\r\nContent-Disposition: form-data; name="meta"\r\nContent-Type: application/json\r\n\r\n{"token":"t1"}\r\n` +
          `--${b}\r\nContent-Disposition: form-data; name="file"; filename="scan.png"\r\nContent-Type: image/png\r\n\r\n`,
      ),
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 1, 2, 3]),
      Buffer.from(`\r\n--${b}--\r\n`),
    ]);
    const r = redactBody(body, { contentType: `multipart/form-data; boundary="${b}"` });
    expect(r.binary).toBe(false);
    expect(r.text).toBe(
      `--${b}\r\nContent-Disposition: form-data; name="password"\r\n\r\n[REDACTED:password]\r\n` +
        `--${b}\r\nContent-Disposition: form-data; name="note"\r\n\r\nSSN [REDACTED:ssn]\r\n` +
        `--${b}\r\nContent-Disposition: form-data; name="meta"\r\nContent-Type: application/json\r\n\r\n{\n  "token": "[REDACTED:token]"\n}\r\n` +
        `--${b}\r\nContent-Disposition: form-data; name="file"; filename="scan.png"\r\nContent-Type: image/png\r\n\r\n[binary part: 8 bytes]\r\n` +
        `--${b}--\r\n`,
    );
    expect(r.applied).toEqual([
      { kind: 'password', location: 'body:part:password', count: 1 },
      { kind: 'ssn', location: 'body:part:note', count: 1 },
      { kind: 'token', location: 'body:part:meta:$.token', count: 1 },
    ]);
  });

  it('redacts plain text, XML and unknown text types with the text patterns', () => {
    for (const contentType of ['text/plain', 'application/xml', 'text/csv', undefined]) {
      const r = redactBody(Buffer.from('name,ssn,email\nJo,123-45-6789,jo@x.org\n'), {
        contentType,
      });
      expect(r.text).toBe('name,ssn,email\nJo,[REDACTED:ssn],[REDACTED:email]\n');
      expect(r.binary).toBe(false);
    }
  });

  it('decodes the declared charset', () => {
    const latin1 = Buffer.from('café SSN 123-45-6789', 'latin1');
    const r = redactBody(latin1, { contentType: 'text/plain; charset=ISO-8859-1' });
    expect(r.text).toBe('café SSN [REDACTED:ssn]');
  });

  it('returns empty text for an empty body', () => {
    expect(redactBody(Buffer.alloc(0), JSON_TYPE)).toEqual({
      text: '',
      applied: [],
      binary: false,
    });
    expect(redactBody(Buffer.alloc(0), {})).toEqual({ text: '', applied: [], binary: false });
  });

  it('caps an uncompressed body at maxDecodedBytes', () => {
    const r = redactBody(Buffer.from('a@b.io '.repeat(100)), {
      contentType: 'text/plain',
      maxDecodedBytes: 14,
    });
    expect(r.text).toBe('[REDACTED:email] [REDACTED:email] ');
    expect(r.note).toMatch(/first 14 bytes/);
  });
});

describe('redactBody: binary', () => {
  const png = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');
  it('does not show declared binary types', () => {
    for (const contentType of [
      'image/png',
      'application/octet-stream',
      'application/pdf',
      'application/grpc',
      'application/x-protobuf',
    ]) {
      // Even text bytes are not shown when the type says binary.
      const r = redactBody(Buffer.from('password=hunter2'), { contentType });
      expect(r).toEqual({ text: null, applied: [], binary: true });
    }
  });

  it('sniffs binary bytes without a type', () => {
    expect(redactBody(png, {})).toEqual({ text: null, applied: [], binary: true });
    expect(redactBody(Buffer.from([0xff, 0xfe, 0xfd, 0x41, 0x42]), {}).binary).toBe(true);
    expect(redactBody(Buffer.from([0x01, 0x02, 0x03, 0x04, 0x05, 0x41]), {}).binary).toBe(true);
  });

  it('treats valid UTF-8 without a type as text', () => {
    const r = redactBody(Buffer.from('héllo wörld — 日本 a@b.io'), {});
    expect(r.binary).toBe(false);
    expect(r.text).toBe('héllo wörld — 日本 [REDACTED:email]');
  });
});
