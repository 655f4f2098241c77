/**
 * The scanner's acceptance cases S1–S19 from the earlier tool (docs/scan.md, "Compatibility"):
 * S1–S17 as written; S18 and S19 as fixed (URLs stop before a closing quote/parenthesis, and
 * IP/CIDR rules apply to IP findings). Each finding lists every pattern that matched its
 * literal, so "a `url` and a `python_url_literal`" is one finding whose patterns hold both;
 * each pattern's own column and text are in `matches`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  isFalsePositive,
  scanDirectory,
  scanSource,
  type Finding,
  type PolicyAdapter,
} from '../../../src/scan/index.js';
import { cleanupTmp, fakePolicy, realPolicy, summary, tmp, writeTree } from './helpers.js';

afterEach(cleanupTmp);

function matchOf(f: Finding, pattern: string) {
  return f.matches.find((m) => m.pattern === pattern);
}

interface SourceCase {
  id: string;
  file: string;
  text: string;
  check: (findings: Finding[]) => void;
}

const sourceCases: SourceCase[] = [
  {
    id: 'S1',
    file: 'config.txt',
    text: 'url = "https://api.openai.com/v1/chat"',
    check: (fs) => {
      expect(fs.map(summary)).toEqual([
        {
          file: 'config.txt',
          line: 1,
          column: 8,
          kind: 'url',
          patterns: ['url'],
          severity: 'warning',
          endpoint: 'https://api.openai.com/v1/chat',
        },
      ]);
    },
  },
  {
    id: 'S2',
    file: 'config.txt',
    text: 'host = "192.168.1.100:8080"',
    check: (fs) => {
      expect(fs).toHaveLength(1);
      expect(fs[0]).toMatchObject({
        kind: 'ip_literal',
        patterns: ['ip_literal'],
        text: '192.168.1.100:8080',
        endpoint: '192.168.1.100',
        destination: { host: '192.168.1.100', port: 8080, ip: '192.168.1.100' },
      });
    },
  },
  {
    id: 'S3',
    file: 'config.txt',
    text: 'aws_key = "AKIAIOSFODNN7EXAMPLE"',
    check: (fs) => {
      expect(fs).toHaveLength(1);
      expect(fs[0]).toMatchObject({
        kind: 'aws_access_key',
        patterns: ['aws_access_key'],
        severity: 'critical',
      });
    },
  },
  {
    id: 'S4',
    file: 'config.txt',
    text: 'api_key = "sk-abcdefghijklmnopqrstuvwxyz1234567890"',
    check: (fs) => {
      // One literal: the key itself (critical) inside the generic assignment (warning).
      expect(fs).toHaveLength(1);
      const f = fs[0] as Finding;
      expect(f.patterns).toEqual(['openai_api_key', 'generic_api_key']);
      expect(f.severity).toBe('critical');
      expect(matchOf(f, 'openai_api_key')?.severity).toBe('critical');
      expect(matchOf(f, 'generic_api_key')?.severity).toBe('warning');
    },
  },
  {
    id: 'S6',
    file: 'notes.txt',
    text: 'http://192.168.0.1/admin',
    check: (fs) => {
      expect(fs).toHaveLength(1);
      const f = fs[0] as Finding;
      expect(f.patterns).toEqual(['url', 'ip_literal']);
      expect(matchOf(f, 'ip_literal')?.text).toBe('192.168.0.1');
      expect(f.destination).toEqual({ host: '192.168.0.1', port: 80, ip: '192.168.0.1' });
    },
  },
  {
    id: 'S7',
    file: 'notes.txt',
    text: '127.0.0.1 0.0.0.0 255.255.255.0 10.0.0.0 10.0.0.1',
    check: (fs) => {
      expect(fs.map((f) => [f.kind, f.text])).toEqual([['ip_literal', '10.0.0.1']]);
    },
  },
  {
    id: 'S8',
    file: 'app.py',
    text: 'response = requests.get("https://api.example.com")',
    check: (fs) => {
      expect(fs.map((f) => [f.kind, f.patterns, f.text, f.severity])).toEqual([
        ['python_network_call', ['python_network_call'], 'requests.get(', 'info'],
        ['url', ['url'], 'https://api.example.com', 'warning'],
      ]);
    },
  },
  {
    id: 'S9',
    file: 'app.py',
    text: 'url = "https://api.production.com/data"',
    check: (fs) => {
      expect(fs.some((f) => f.patterns.includes('python_url_literal'))).toBe(true);
    },
  },
  {
    id: 'S10',
    file: 'app.py',
    text: 'client = OpenAI(base_url="https://my-api.com/v1")',
    check: (fs) => {
      expect(fs).toHaveLength(1);
      const f = fs[0] as Finding;
      expect([...f.patterns].sort()).toEqual([
        'python_endpoint_kwarg',
        'python_url_literal',
        'url',
      ]);
      expect(matchOf(f, 'url')).toMatchObject({ column: 27, text: 'https://my-api.com/v1' });
      expect(matchOf(f, 'python_endpoint_kwarg')).toMatchObject({
        column: 26,
        text: "base_url='https://my-api.com/v1'",
      });
      expect(matchOf(f, 'python_url_literal')).toMatchObject({ column: 26 });
      expect(f.endpoint).toBe('https://my-api.com/v1');
    },
  },
  {
    id: 'S11',
    file: 'broken.py',
    text: 'this is not valid python {{{',
    check: (fs) => {
      expect(Array.isArray(fs)).toBe(true);
    },
  },
  {
    id: 'S12',
    file: 'app.js',
    text: 'const resp = await fetch("https://api.com/data");',
    check: (fs) => {
      expect(fs.some((f) => f.patterns.includes('url'))).toBe(true);
      const call = fs.find((f) => f.kind === 'js_network_call');
      expect(call).toMatchObject({ text: 'fetch(', column: 20, severity: 'info' });
    },
  },
  {
    id: 'S13',
    file: 'api.ts',
    text: 'const data = await axios.get("/api/users");',
    check: (fs) => {
      expect(fs.map((f) => [f.kind, f.text])).toEqual([['js_network_call', 'axios.get(']]);
    },
  },
];

describe('scanner acceptance cases on one file', () => {
  it.each(sourceCases)('$id', async ({ file, text, check }) => {
    check(await scanSource(text, file));
  });
});

describe('S5: the false-positive filter', () => {
  it.each([
    ['http://localhost:8080', true],
    ['http://127.0.0.1:3000', true],
    ['https://api.openai.com', false],
  ])('%s → %s', (text, excluded) => {
    expect(isFalsePositive(text)).toBe(excluded);
  });
});

describe('scanner acceptance cases on a directory', () => {
  it('S14: a tree with app.py and app.js is walked and analysed', async () => {
    const root = tmp();
    writeTree(root, {
      'app.py': 'import requests\nrequests.get("https://api.service.org/x")\n',
      'app.js': 'fetch("https://api.service.org/y");\n',
    });
    const r = await scanDirectory(root);
    expect(r.filesScanned).toBeGreaterThanOrEqual(2);
    expect(r.findings.length).toBeGreaterThan(0);
    expect(new Set(r.findings.map((f) => f.file))).toEqual(new Set(['app.py', 'app.js']));
  });

  it('S16: nothing under .git is reported', async () => {
    const root = tmp();
    writeTree(root, {
      '.git/config': '[remote "origin"]\n  url = https://git.service.org/repo.git\n',
      'main.py': 'x = 1\n',
    });
    const r = await scanDirectory(root);
    expect(r.findings.filter((f) => f.file.includes('.git'))).toEqual([]);
    expect(r.filesScanned).toBe(1);
  });

  it('S17: --exclude skip.py leaves skip.py out', async () => {
    const root = tmp();
    const body = 'url = "https://api.service.org/data"\n';
    writeTree(root, { 'keep.py': body, 'skip.py': body });
    const r = await scanDirectory(root, { exclude: ['skip.py'] });
    expect(r.findings.filter((f) => f.file === 'skip.py')).toEqual([]);
    expect(r.findings.filter((f) => f.file === 'keep.py').length).toBeGreaterThan(0);
  });
});

/** S15, S18 and S19 with the stand-in evaluator and with the real policy module. */
const policies: Array<
  [string, (rules: Array<{ match: string; action: 'block' | 'kill' }>) => Promise<PolicyAdapter>]
> = [
  ['fake evaluator', async (rules) => fakePolicy(rules, 'alert')],
  [
    'real policy (legacy file)',
    (rules) =>
      realPolicy(
        'name: acceptance\nrules:\n' +
          rules.map((r) => `  - match: "${r.match}"\n    action: ${r.action}\n`).join(''),
      ),
  ],
];

describe.each(policies)('scanner acceptance cases with a policy: %s', (_name, makePolicy) => {
  it('S15: a URL to a blocked host is critical', async () => {
    const root = tmp();
    writeTree(root, { 'app.py': 'url = "https://api.openai.com/v1/chat"\n' });
    const policy = await makePolicy([{ match: '*.openai.com', action: 'block' }]);
    const r = await scanDirectory(root, { policy });
    const critical = r.findings.filter((f) => f.severity === 'critical');
    expect(critical).toHaveLength(1);
    expect(critical[0]?.patterns).toEqual(expect.arrayContaining(['url', 'python_url_literal']));
    expect(critical[0]?.verdict).toMatchObject({
      action: 'block',
      rule: '*.openai.com',
      ruleIndex: 0,
    });
    expect(r.counts.critical).toBe(1);
  });

  it('S18 (fixed): the URL stops before the quote and parenthesis, and is critical', async () => {
    const policy = await makePolicy([{ match: '*.openai.com', action: 'block' }]);
    const fs = await scanSource("requests.get('https://api.openai.com')", 'app.py', { policy });
    const literal = fs.find((f) => f.patterns.includes('url'));
    expect(literal?.matches.find((m) => m.pattern === 'url')?.text).toBe('https://api.openai.com');
    expect(literal?.patterns).toEqual(expect.arrayContaining(['url', 'python_url_literal']));
    expect(literal?.severity).toBe('critical');
    expect(literal?.destination).toEqual({ host: 'api.openai.com', port: 443, ip: null });
  });

  it('S19 (fixed): an IP literal under a 10.0.0.0/8 kill rule is critical', async () => {
    const policy = await makePolicy([{ match: '10.0.0.0/8', action: 'kill' }]);
    const fs = await scanSource('c = "10.1.2.3"', 'app.py', { policy });
    expect(fs.map((f) => [f.kind, f.severity, f.verdict?.action, f.verdict?.rule])).toEqual([
      ['ip_literal', 'critical', 'kill', '10.0.0.0/8'],
    ]);
  });
});
