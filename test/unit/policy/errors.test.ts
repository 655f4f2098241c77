import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isTrustRunError } from '../../../src/core/index.js';
import { loadPolicy } from '../../../src/policy/index.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'trustrun-policy-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** [name, file text, expected message after "FILE:"] */
const cases: Array<[string, string, string]> = [
  [
    'bad YAML',
    'version: 2\nrules:\n  - match: a.com\n    action: [block\n',
    '5:1: YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ]',
  ],
  ['duplicate key', 'version: 2\nname: a\nname: b\n', '3:1: duplicate key'],
  [
    'unknown action',
    'version: 2\nrules:\n  - match: a.com\n    action: allow\n  - match: b.com\n    action: deny\n',
    '6:13: rule 2: unknown action "deny"; expected allow, alert, block or kill (rules[1].action)',
  ],
  [
    'rule without match (v2)',
    'version: 2\nrules:\n  - match: a.com\n    action: allow\n  - action: block\n    reason: no match here\n',
    '5:5: rule 2 has no "match" (a host glob, IP address or CIDR) (rules[1].match)',
  ],
  [
    'rule without match (legacy)',
    'rules:\n  - match: a.com\n  - reason: forgot it\n',
    '3:5: rule 2 has no "match" (a host glob, IP address or CIDR) (rules[1].match)',
  ],
  [
    'empty match',
    'version: 2\nrules:\n  - match:\n    action: block\n',
    '3:5: rule 1 has no "match" (a host glob, IP address or CIDR) (rules[0].match)',
  ],
  [
    'bad CIDR prefix',
    'version: 2\nrules:\n  - match: 10.0.0.0/33\n    action: block\n',
    '3:12: rule 1: bad CIDR "10.0.0.0/33": prefix length must be a number from 0 to 32 (rules[0].match)',
  ],
  [
    'bad CIDR address',
    'version: 2\nrules:\n  - {match: "10.0.0.256/8", action: block}\n',
    '3:13: rule 1: bad CIDR "10.0.0.256/8": "10.0.0.256" is not an IPv4 address (four numbers 0-255, no leading zeros) (rules[0].match)',
  ],
  [
    'bad IPv6 CIDR',
    'version: 2\nrules:\n  - match: "2001:db8::/129"\n    action: block\n',
    '3:12: rule 1: bad CIDR "2001:db8::/129": prefix length must be a number from 0 to 128 (rules[0].match)',
  ],
  [
    'bad port',
    'version: 2\nrules:\n  - match: a.com\n    action: allow\n    ports: [443, 70000]\n',
    '5:18: rule 1: bad port 70000: a port is a whole number from 1 to 65535 (rules[0].ports[1])',
  ],
  [
    'port as text that is not a number',
    'rules:\n  - match: a.com\n    ports: https\n',
    '3:12: rule 1: bad port "https": a port is a whole number from 1 to 65535 (rules[0].ports)',
  ],
  [
    'unknown capture_level',
    'version: 2\nname: x\ncapture_level: everything\n',
    '3:16: unknown capture_level "everything"; expected metadata, headers or full (capture_level)',
  ],
  [
    'unknown capture_level (legacy)',
    'capture_level: bodies\n',
    '1:16: unknown capture_level "bodies"; expected metadata, headers or full (capture_level)',
  ],
  [
    'misspelt key in a rule',
    'version: 2\nrules:\n  - match: a.com\n    acton: block\n',
    '4:5: unknown key "acton" in rule 1; did you mean "action"? (rules[0].acton)',
  ],
  [
    'unknown top-level key',
    'version: 2\nrulez: []\n',
    '2:1: unknown key "rulez"; did you mean "rules"? (rulez)',
  ],
  [
    'allow in a legacy file',
    'rules:\n  - match: a.com\n    action: allow\n',
    '3:13: rule 1: action "allow" needs a version 2 file: add "version: 2" at the top (a file without version is read as a legacy file: alert, block or kill) (rules[0].action)',
  ],
  [
    'methods in a legacy file',
    'rules:\n  - match: a.com\n    methods: [GET]\n',
    '3:14: rule 1: "methods" needs a version 2 file: add "version: 2" at the top (rules[0].methods)',
  ],
  [
    'a URL as match',
    'version: 2\nrules:\n  - match: https://api.openai.com/v1\n    action: block\n',
    '3:12: rule 1: match "https://api.openai.com/v1" looks like a URL; write only the host name (e.g. api.example.com) (rules[0].match)',
  ],
  [
    'a port in match',
    'version: 2\nrules:\n  - match: api.openai.com:443\n    action: block\n',
    '3:12: rule 1: match "api.openai.com:443" has a port in it; list ports under "ports:" instead (rules[0].match)',
  ],
  [
    'a path that is not absolute',
    'version: 2\nrules:\n  - match: a.com\n    action: allow\n    paths: [v1/*]\n',
    '5:13: rule 1: path "v1/*" must start with "/" (rules[0].paths[0])',
  ],
  [
    'rules not a list',
    'version: 2\nrules: block\n',
    '2:8: rules must be a list, got "block" (rules)',
  ],
  [
    'a rule that is not a mapping',
    'version: 2\nrules:\n  - "*.openai.com"\n',
    '3:5: rule 1 must be a mapping with match and action, got "*.openai.com" (rules[0])',
  ],
  [
    'unsupported version',
    'version: 3\nrules: []\n',
    '1:10: unsupported version 3; write "version: 2", or leave version out for a legacy file (version)',
  ],
  [
    'empty file',
    '',
    '1:1: policy must be a YAML mapping (name, rules, defaults, ...), got an empty document',
  ],
  [
    'the first problem in the file is the one reported',
    'version: 2\ncapture_level: lots\nrules:\n  - match: a.com\n    action: nope\n',
    '2:16: unknown capture_level "lots"; expected metadata, headers or full (capture_level)',
  ],
];

describe('malformed policies name FILE:LINE:COL', () => {
  it.each(cases)('%s', async (_name, text, expected) => {
    const file = join(dir, 'policy.yaml');
    await writeFile(file, text);
    let caught: unknown;
    try {
      await loadPolicy(file, { warn: () => {} });
    } catch (err) {
      caught = err;
    }
    expect(isTrustRunError(caught, 'TR_POLICY_INVALID')).toBe(true);
    const message = (caught as Error).message;
    expect(message).toBe(`${file}:${expected}`);
    expect(message).not.toContain('\n');
  });

  it('an error in an inherited file names that file', async () => {
    await writeFile(
      join(dir, 'base.yaml'),
      'version: 2\nrules:\n  - match: "10.0.0.0/8"\n    action: permit\n',
    );
    const top = join(dir, 'top.yaml');
    await writeFile(top, 'version: 2\ninherit: [base.yaml]\n');
    await expect(loadPolicy(top)).rejects.toThrow(
      `${join(dir, 'base.yaml')}:4:13: rule 1: unknown action "permit"; expected allow, alert, block or kill (rules[0].action)`,
    );
  });
});
