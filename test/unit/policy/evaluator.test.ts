import { describe, expect, it } from 'vitest';
import type { Subject } from '../../../src/core/index.js';
import { auditVerdict, parsePolicy, type CompiledPolicy } from '../../../src/policy/index.js';

const quiet = { warn: () => {} };

/** Builds a policy file from rules written as [match, action, extra YAML lines]. */
function policyText(
  format: 'legacy' | 'v2',
  rules: Array<[string, string, string?]>,
  defaultAction = 'alert',
): string {
  const lines = format === 'v2' ? ['version: 2'] : [];
  lines.push('name: t', 'rules:');
  for (const [match, action, extra] of rules) {
    lines.push(`  - match: "${match}"`, `    action: ${action}`);
    if (extra) lines.push(...extra.split('\n').map((l) => `    ${l}`));
  }
  lines.push('defaults:', `  action: ${defaultAction}`);
  return lines.join('\n') + '\n';
}

function policy(
  format: 'legacy' | 'v2',
  rules: Array<[string, string, string?]>,
  defaultAction?: string,
): Promise<CompiledPolicy> {
  return parsePolicy(policyText(format, rules, defaultAction), 'test.yaml', quiet);
}

// ORIGINAL.md §9: P = *.allowed.com alert, *.blocked.com block, 10.0.0.0/8 alert; default alert
const P: Array<[string, string, string?]> = [
  ['*.allowed.com', 'alert'],
  ['*.blocked.com', 'block', 'reason: Blocked domain'],
  ['10.0.0.0/8', 'alert'],
];
const E11_RULES: Array<[string, string, string?]> = [
  ['*.azure.com', 'alert'],
  ['0.0.0.0/0', 'block'],
];

interface Case {
  id: string;
  rules: Array<[string, string, string?]>;
  defaultAction?: string;
  subject: Subject;
  action: string;
  /** null: the default applied. */
  ruleIndex: number | null;
  violation: boolean;
  reason?: string;
}

const subject = (ip: string | null, host: string, port = 443): Subject => ({ host, port, ip });

// Legacy files keep the earlier tool's meaning: a matched alert rule is no violation.
const legacyCases: Case[] = [
  {
    id: 'E1',
    rules: P,
    subject: subject('1.2.3.4', 'api.allowed.com'),
    action: 'alert',
    ruleIndex: 0,
    violation: false,
  },
  {
    id: 'E2',
    rules: P,
    subject: subject('5.6.7.8', 'evil.blocked.com'),
    action: 'block',
    ruleIndex: 1,
    violation: true,
    reason: 'Blocked domain',
  },
  {
    id: 'E3',
    rules: P,
    subject: subject('10.1.2.3', ''),
    action: 'alert',
    ruleIndex: 2,
    violation: false,
  },
  {
    id: 'E4',
    rules: P,
    subject: subject('192.168.1.1', ''),
    action: 'alert',
    ruleIndex: null,
    violation: true,
  },
  {
    id: 'E5',
    rules: P,
    subject: subject('99.99.99.99', 'unknown.org'),
    action: 'alert',
    ruleIndex: null,
    violation: true,
    reason: 'No rule matched — default action: alert',
  },
  {
    id: 'E6',
    rules: [],
    defaultAction: 'block',
    subject: subject('1.2.3.4', ''),
    action: 'block',
    ruleIndex: null,
    violation: true,
    reason: 'No rule matched — default action: block',
  },
  {
    id: 'E7',
    rules: [
      ['*.example.com', 'block', 'reason: Block first'],
      ['*.example.com', 'alert'],
    ],
    subject: subject(null, 'api.example.com'),
    action: 'block',
    ruleIndex: 0,
    violation: true,
    reason: 'Block first',
  },
  {
    id: 'E8 port 8080',
    rules: [
      ['*.example.com', 'block', 'ports: [8080]'],
      ['*.example.com', 'alert'],
    ],
    subject: subject(null, 'api.example.com', 8080),
    action: 'block',
    ruleIndex: 0,
    violation: true,
  },
  {
    id: 'E8 port 443',
    rules: [
      ['*.example.com', 'block', 'ports: [8080]'],
      ['*.example.com', 'alert'],
    ],
    subject: subject(null, 'api.example.com', 443),
    action: 'alert',
    ruleIndex: 1,
    violation: false,
  },
  {
    id: 'E9',
    rules: [['*.Example.COM', 'block']],
    subject: subject(null, 'api.example.com'),
    action: 'block',
    ruleIndex: 0,
    violation: true,
  },
  {
    id: 'E10',
    rules: [['1.2.3.*', 'block']],
    subject: subject('1.2.3.4', ''),
    action: 'block',
    ruleIndex: 0,
    violation: true,
  },
  {
    id: 'E11',
    rules: E11_RULES,
    subject: subject('1.1.1.1', 'azure.com'),
    action: 'block',
    ruleIndex: 1,
    violation: true,
  },
  {
    id: 'E12',
    rules: E11_RULES,
    subject: subject('::1', ''),
    action: 'alert',
    ruleIndex: null,
    violation: true,
  },
  {
    id: 'E13',
    rules: [['10.0.0.5', 'block']],
    subject: subject('', '10.0.0.5'),
    action: 'alert',
    ruleIndex: null,
    violation: true,
  },
  {
    id: 'E14',
    rules: [['*openai.com', 'block']],
    subject: subject(null, 'evilopenai.com'),
    action: 'block',
    ruleIndex: 0,
    violation: true,
  },
];

describe('acceptance cases E1-E14 (legacy files)', () => {
  it.each(legacyCases)('$id', async (c) => {
    const p = await policy('legacy', c.rules, c.defaultAction);
    const v = p.evaluate(c.subject);
    expect(v.action).toBe(c.action);
    expect(v.ruleIndex).toBe(c.ruleIndex);
    expect(v.rule).toBe(c.ruleIndex === null ? null : c.rules[c.ruleIndex]?.[0]);
    expect(v.violation).toBe(c.violation);
    if (c.reason !== undefined) expect(v.reason).toBe(c.reason);
    expect(v.policy).toBe('t');
  });
});

// The same cases in version 2 files: alert is a violation wherever it comes from; allow is not.
const v2Cases: Case[] = [
  {
    id: 'E1 v2 alert',
    rules: P,
    subject: subject('1.2.3.4', 'api.allowed.com'),
    action: 'alert',
    ruleIndex: 0,
    violation: true,
  },
  {
    id: 'E1 v2 allow',
    rules: [['*.allowed.com', 'allow']],
    subject: subject('1.2.3.4', 'api.allowed.com'),
    action: 'allow',
    ruleIndex: 0,
    violation: false,
  },
  {
    id: 'E7 v2',
    rules: [
      ['*.example.com', 'block'],
      ['*.example.com', 'allow'],
    ],
    subject: subject(null, 'api.example.com'),
    action: 'block',
    ruleIndex: 0,
    violation: true,
  },
  {
    id: 'E10 v2',
    rules: [['1.2.3.*', 'block']],
    subject: subject('1.2.3.4', ''),
    action: 'block',
    ruleIndex: 0,
    violation: true,
  },
  {
    id: 'E11 v2: *.x does not match the apex',
    rules: [
      ['*.azure.com', 'allow'],
      ['0.0.0.0/0', 'block'],
    ],
    subject: subject('1.1.1.1', 'azure.com'),
    action: 'block',
    ruleIndex: 1,
    violation: true,
  },
  {
    id: 'E11 v2: x.com matches only the apex',
    rules: [['azure.com', 'allow']],
    defaultAction: 'block',
    subject: subject(null, 'api.azure.com'),
    action: 'block',
    ruleIndex: null,
    violation: true,
  },
  {
    id: 'E11 v2: both forms written',
    rules: [
      ['azure.com', 'allow'],
      ['*.azure.com', 'allow'],
    ],
    defaultAction: 'block',
    subject: subject(null, 'azure.com'),
    action: 'allow',
    ruleIndex: 0,
    violation: false,
  },
  {
    id: 'E12 v2',
    rules: [['0.0.0.0/0', 'block']],
    defaultAction: 'allow',
    subject: subject('::1', 'localhost'),
    action: 'allow',
    ruleIndex: null,
    violation: false,
  },
  {
    id: 'E13 v2: an IP-literal host is checked too',
    rules: [['10.0.0.5', 'block']],
    subject: subject('', '10.0.0.5'),
    action: 'block',
    ruleIndex: 0,
    violation: true,
  },
  {
    id: 'E14 v2',
    rules: [['*openai.com', 'block']],
    subject: subject(null, 'evilopenai.com'),
    action: 'block',
    ruleIndex: 0,
    violation: true,
  },
  {
    id: 'default allow is no violation',
    rules: [],
    defaultAction: 'allow',
    subject: subject(null, 'x.org'),
    action: 'allow',
    ruleIndex: null,
    violation: false,
  },
  {
    id: 'default alert is a violation',
    rules: [],
    defaultAction: 'alert',
    subject: subject(null, 'x.org'),
    action: 'alert',
    ruleIndex: null,
    violation: true,
  },
  {
    id: 'kill',
    rules: [['*.suspicious.io', 'kill']],
    subject: subject(null, 'c2.suspicious.io'),
    action: 'kill',
    ruleIndex: 0,
    violation: true,
  },
];

describe('version 2 semantics', () => {
  it.each(v2Cases)('$id', async (c) => {
    const p = await policy('v2', c.rules, c.defaultAction);
    const v = p.evaluate(c.subject);
    expect(v.action).toBe(c.action);
    expect(v.ruleIndex).toBe(c.ruleIndex);
    expect(v.violation).toBe(c.violation);
  });
});

describe('host matching', () => {
  const cases: Array<[string, string, boolean]> = [
    ['*.openai.com', 'api.openai.com', true],
    ['*.openai.com', 'a.b.openai.com', true], // * crosses dots
    ['*.openai.com', 'openai.com', false],
    ['*.openai.com', 'API.OpenAI.COM', true],
    ['*.openai.com', 'api.openai.com.', true], // a trailing dot is the same name
    ['*.openai.com', 'api.openai.com.evil.net', false],
    ['*.openai.com', 'xopenai.com', false],
    ['api.openai.com', 'API.openai.com', true],
    ['api.openai.com', 'v1.api.openai.com', false],
    ['api?.x.com', 'api1.x.com', true],
    ['api?.x.com', 'api.x.com', false],
    ['[ab]pi.x.com', 'bpi.x.com', true],
    ['[!ab]pi.x.com', 'api.x.com', false],
    ['[!ab]pi.x.com', 'cpi.x.com', true],
    ['s[0-9].x.com', 's7.x.com', true],
    ['*.bedrock.*.amazonaws.com', 'runtime.bedrock.us-east-1.amazonaws.com', true],
    ['*.bedrock.*.amazonaws.com', 'bedrock.us-east-1.amazonaws.com', false],
    ['*', 'anything.at.all', true],
    ['*openai*', 'my-openai-proxy.io', true],
    ['*[.]com', 'x.com', true], // the last dot is inside a set
    ['*[.]com', 'xcom', false],
  ];
  it.each(cases)('%s vs %s -> %s', async (match, host, expected) => {
    const p = await policy('v2', [[match, 'block']], 'allow');
    expect(p.evaluate({ host, port: 443 }).action).toBe(expected ? 'block' : 'allow');
  });
});

describe('addresses and networks', () => {
  const cases: Array<[string, Subject, boolean]> = [
    ['10.0.0.0/8', { host: 'db.internal', port: 5432, ip: '10.200.0.1' }, true],
    ['10.0.0.0/8', { host: 'db.internal', port: 5432, ip: '11.0.0.1' }, false],
    ['10.1.2.3/8', { host: 'x', port: 1, ip: '10.9.9.9' }, true], // host bits allowed
    ['1.2.3.4', { host: 'x', port: 1, ip: '1.2.3.4' }, true],
    ['1.2.3.4', { host: 'x', port: 1, ip: '1.2.3.5' }, false],
    ['10.0.0.0/8', { host: 'x', port: 1, ip: '::ffff:10.1.2.3' }, true], // IPv4-mapped IPv6
    ['::ffff:192.168.0.0/112', { host: 'x', port: 1, ip: '192.168.3.4' }, true],
    ['2001:db8::/32', { host: 'x', port: 1, ip: '2001:db8:1::5' }, true],
    ['2001:db8::/32', { host: 'x', port: 1, ip: '2001:db9::1' }, false],
    ['2001:db8::/32', { host: '[2001:db8::1]', port: 443 }, true], // host literal (v2)
    ['2001:db8::/32', { host: 'x', port: 1, ip: '2001:0db8:0000:0000:0000:0000:0000:0001' }, true],
    ['::1', { host: 'x', port: 1, ip: '0:0:0:0:0:0:0:1' }, true],
    ['::1', { host: 'x', port: 1, ip: 'fe80::1%eth0' }, false],
    ['fe80::/10', { host: 'x', port: 1, ip: 'fe80::1%eth0' }, true],
    ['::/0', { host: 'x', port: 1, ip: '1.2.3.4' }, false],
    ['::/0', { host: 'x', port: 1, ip: '2606:4700::1111' }, true],
    ['0.0.0.0/0', { host: 'x', port: 1, ip: '2606:4700::1111' }, false],
    ['127.0.0.0/8', { host: '2130706433', port: 80 }, true], // decimal form of 127.0.0.1
    ['127.0.0.0/8', { host: '0x7f.1', port: 80 }, true],
    ['127.0.0.0/8', { host: '127.1', port: 80 }, true],
    ['127.0.0.0/8', { host: 'localhost', port: 80 }, false],
    ['10.0.0.0/8', { host: 'x', port: 1, ip: 'not-an-ip' }, false],
  ];
  it.each(cases)('%s vs %j -> %s', async (match, s, expected) => {
    const p = await policy('v2', [[match, 'block']], 'allow');
    expect(p.evaluate(s).action).toBe(expected ? 'block' : 'allow');
  });

  it('checks the connected address even when the host is a name', async () => {
    const p = await policy('v2', [['203.0.113.0/24', 'block']], 'allow');
    expect(p.evaluate({ host: 'innocent.example', port: 443, ip: '203.0.113.9' }).action).toBe(
      'block',
    );
  });

  it('in legacy files, network rules look only at the connected address (E13)', async () => {
    const p = await policy('legacy', [['10.0.0.5', 'block']]);
    expect(p.evaluate({ host: '10.0.0.5', port: 80 }).ruleIndex).toBeNull();
    expect(p.evaluate({ host: 'x', port: 80, ip: '10.0.0.5' }).ruleIndex).toBe(0);
  });
});

describe('ports and first match wins', () => {
  it('a rule with ports matches only those ports; the next rule gets the rest', async () => {
    const p = await policy('v2', [
      ['10.0.0.0/8', 'allow', 'ports: [5432, 6379]'],
      ['10.0.0.0/8', 'block'],
    ]);
    expect(p.evaluate({ host: 'db', port: 5432, ip: '10.0.0.1' }).ruleIndex).toBe(0);
    expect(p.evaluate({ host: 'db', port: 6379, ip: '10.0.0.1' }).ruleIndex).toBe(0);
    expect(p.evaluate({ host: 'db', port: 22, ip: '10.0.0.1' }).ruleIndex).toBe(1);
  });

  it('the earliest matching rule wins across kinds of rule (literal, suffix, glob, network)', async () => {
    const rules: Array<[string, string, string?]> = [
      ['10.0.0.0/8', 'kill'],
      ['*.b.example.com', 'block'],
      ['a.b.example.com', 'allow'],
      ['*.example.com', 'alert'],
      ['a.*.example.com', 'allow'],
    ];
    const p = await policy('v2', rules);
    expect(p.evaluate({ host: 'a.b.example.com', port: 443, ip: '10.1.1.1' }).ruleIndex).toBe(0);
    expect(p.evaluate({ host: 'a.b.example.com', port: 443, ip: '8.8.8.8' }).ruleIndex).toBe(1);
    expect(p.evaluate({ host: 'a.c.example.com', port: 443 }).ruleIndex).toBe(3);
    const reordered = await policy('v2', [rules[4], rules[3], rules[2]] as typeof rules);
    expect(reordered.evaluate({ host: 'a.b.example.com', port: 443 }).ruleIndex).toBe(0);
  });
});

describe('explanations', () => {
  it('names the rule, its match and action, and the reason', async () => {
    const p = await parsePolicy(
      [
        'version: 2',
        'name: hipaa',
        'rules:',
        '  - match: "*.example.org"',
        '    action: allow',
        '  - match: "10.0.0.0/8"',
        '    ports: [5432]',
        '    action: allow',
        '  - match: "*.openai.com"',
        '    action: block',
        '    reason: Direct OpenAI API bypasses the BAA',
        'defaults:',
        '  action: block',
      ].join('\n'),
      'hipaa.yaml',
    );
    const v = p.evaluate({ host: 'api.openai.com', port: 443 });
    expect(v).toEqual({
      action: 'block',
      violation: true,
      ruleIndex: 2,
      rule: '*.openai.com',
      reason: 'Direct OpenAI API bypasses the BAA',
      explanation:
        'rule 3 (match "*.openai.com", action block): Direct OpenAI API bypasses the BAA',
      policy: 'hipaa',
    });
    expect(p.evaluate({ host: 'db', port: 5432, ip: '10.0.0.2' }).explanation).toBe(
      'rule 2 (match "10.0.0.0/8", ports 5432, action allow): allowed',
    );
    expect(p.evaluate({ host: 'x.net', port: 443 }).explanation).toBe(
      'no rule matched: default action block, refused',
    );
  });

  it('says where an inherited rule comes from and what a legacy alert means', async () => {
    const p = await parsePolicy(
      'rules:\n  - match: "*.ok.com"\n    action: alert\n',
      'old.yaml',
      quiet,
    );
    expect(p.evaluate({ host: 'a.ok.com', port: 443 }).explanation).toBe(
      'rule 1 (match "*.ok.com", action alert): allowed (legacy policy: a matched alert rule allows, without a violation)',
    );
    const q = await parsePolicy('version: 2\ninherit: preset:azure\n', 'top.yaml');
    expect(q.evaluate({ host: 'x.azurecr.io', port: 443 }).explanation).toBe(
      'rule 12 (match "*.azurecr.io", action allow, from preset:azure): Azure Container Registry (BAA-covered)',
    );
  });

  it('verdicts are frozen and the policy name falls back to the file name', async () => {
    const p = await parsePolicy('version: 2\nrules: []\n', 'dir/unnamed.yaml');
    const v = p.evaluate({ host: 'x', port: 1 });
    expect(Object.isFrozen(v)).toBe(true);
    expect(v.policy).toBe('unnamed.yaml');
    expect(p.name).toBeNull();
  });
});

describe('per-request rules', () => {
  const text = [
    'version: 2',
    'name: azure-only',
    'rules:',
    '  - match: myorg.openai.azure.com',
    '    methods: [post]',
    '    paths: ["/openai/deployments/*"]',
    '    action: allow',
    '  - match: "*.openai.azure.com"',
    '    action: block',
    '    reason: only deployments of myorg',
    '  - match: files.example.com',
    '    action: allow',
    '  - match: files.example.com',
    '    methods: [DELETE]',
    '    action: block',
    'defaults:',
    '  action: block',
  ].join('\n');

  it('CONNECT defers when a request rule could decide first, and requests get their verdict', async () => {
    const p = await parsePolicy(text, 'azure.yaml');
    expect(p.hasRequestRules).toBe(true);
    const host = 'myorg.openai.azure.com';
    expect(p.evaluateConnect({ host, port: 443, ip: '20.1.2.3' })).toBe('per-request');
    const request = (method: string, path: string) =>
      p.evaluate({ host, port: 443, ip: '20.1.2.3', method, path }).ruleIndex;
    expect(request('POST', '/openai/deployments/gpt4/chat/completions')).toBe(0);
    expect(request('post', '/openai/deployments/gpt4?api-version=1')).toBe(0);
    expect(request('GET', '/openai/deployments/gpt4')).toBe(1);
    expect(request('POST', '/openai/models')).toBe(1);
    // Spelling the path differently does not step around a path rule.
    expect(request('POST', '/openai/deployments/../../admin')).toBe(1);
    expect(request('POST', '/openai/deployments/%2e%2e/%2E%2E/admin')).toBe(1);
    expect(request('POST', '/openai/%64eployments/x')).toBe(0);
    // Spellings some servers read as another path (merged slashes, an encoded slash or a
    // backslash, ;parameters, a NUL): an allow rule needs both readings of the path to match,
    // so none of them widens it; the request falls to the next rule.
    for (const odd of [
      '//openai/deployments/x',
      '/openai//deployments//x',
      '/openai%2fdeployments%2Fx',
      '/openai\\deployments\\x',
      '/openai/deployments%5c..%5c..%5cadmin',
      '/openai/deployments;v=1/..;/..;/admin',
      '/openai;x/deployments;y/x',
      '/openai/deployments%00/../../admin',
    ]) {
      expect(request('POST', odd), odd).toBe(1);
    }
    // Without the request line (metadata level, direct sockets) a request rule cannot match.
    expect(p.evaluate({ host, port: 443 }).ruleIndex).toBe(1);
  });

  it('a block rule on a path holds against every spelling of it', async () => {
    const p = await parsePolicy(
      [
        'version: 2',
        'rules:',
        '  - match: good.test',
        '    paths: ["/admin", "/admin/*"]',
        '    action: block',
        'defaults:',
        '  action: allow',
      ].join('\n'),
      'admin.yaml',
    );
    const action = (path: string) =>
      p.evaluate({ host: 'good.test', port: 443, method: 'GET', path }).action;
    for (const path of [
      '/admin',
      '//admin/y',
      '/admin%2fy',
      '/admin%2Fy',
      '/admin;x/y',
      '/admin;jsessionid=1',
      '/admin%00',
      '/admin%00.png',
      '/x/..%2fadmin',
      '/admin\\y',
      '/%61dmin/y',
    ]) {
      expect(action(path), path).toBe('block');
    }
    expect(action('/administrator')).toBe('allow');
    expect(action('/public/admin')).toBe('allow');
  });

  it('neither reading of a path gets around a rule: dots hidden in parameters, NULs', async () => {
    const load = (rules: string[], fallback: string) =>
      parsePolicy(
        ['version: 2', 'rules:', ...rules, 'defaults:', `  action: ${fallback}`].join('\n'),
        'two-readings.yaml',
      );
    const blocks = await load(
      ['  - match: good.test', '    paths: ["/internal/*", "/api/*/delete"]', '    action: block'],
      'allow',
    );
    const allows = await load(
      [
        '  - match: good.test',
        '    paths: ["/public/*", "/projects/grp%2Frepo/*"]',
        '    action: allow',
      ],
      'block',
    );
    const action = (policy: CompiledPolicy, path: string) =>
      policy.evaluate({ host: 'good.test', port: 443, method: 'GET', path }).action;
    for (const path of [
      '/internal/..;/x',
      '/internal/..%2Fx',
      '/internal/..\\x',
      '/api/x%00/delete',
    ]) {
      expect(action(blocks, path), path).toBe('block');
    }
    expect(action(blocks, '/api/x/list')).toBe('allow');
    expect(action(allows, '/public/x%00/../../admin')).toBe('block');
    expect(action(allows, '/public/a.css')).toBe('allow');
    // An allow rule written with an encoded slash still allows that spelling.
    expect(action(allows, '/projects/grp%2Frepo/x')).toBe('allow');
  });

  it('CONNECT decides at once when a rule without methods/paths comes first', async () => {
    const p = await parsePolicy(text, 'azure.yaml');
    const other = p.evaluateConnect({ host: 'eu.openai.azure.com', port: 443 });
    expect(other).not.toBe('per-request');
    expect(other).toMatchObject({ action: 'block', ruleIndex: 1 });
    // files.example.com: the allow rule (no methods) comes before the DELETE rule.
    expect(p.evaluateConnect({ host: 'files.example.com', port: 443 })).toMatchObject({
      action: 'allow',
      ruleIndex: 2,
    });
    expect(p.evaluateConnect({ host: 'nowhere.net', port: 443 })).toMatchObject({
      action: 'block',
      ruleIndex: null,
    });
  });

  it('a policy without request rules never defers', async () => {
    const p = await policy('v2', [['*.x.com', 'allow']]);
    expect(p.hasRequestRules).toBe(false);
    expect(p.evaluateConnect({ host: 'a.x.com', port: 443 })).toMatchObject({ ruleIndex: 0 });
  });
});

describe('auditVerdict', () => {
  it('allows everything with no violation and no policy', () => {
    expect(auditVerdict()).toMatchObject({
      action: 'allow',
      violation: false,
      ruleIndex: null,
      rule: null,
      policy: null,
    });
  });
});
