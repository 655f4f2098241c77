/**
 * The fixture tree test/fixtures/scan/project (Python, JavaScript, TypeScript, TSX, R, YAML,
 * Markdown) scanned whole: the complete list of findings is checked, so a finding that
 * appears where none should (a URL in a comment or docstring, a docs URL, localhost, a
 * skipped directory or extension) fails the test as surely as one that goes missing.
 */
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { scanDirectory, type ScanResult } from '../../../src/scan/index.js';
import { cleanupTmp, realPolicy, tmp, writeTree } from './helpers.js';

afterEach(cleanupTmp);

const FIXTURE = join(import.meta.dirname, '../../fixtures/scan/project');

/** A copy of the fixture plus directories git would not keep (node_modules, build, .git). */
function fixtureCopy(): string {
  const root = tmp();
  cpSync(FIXTURE, root, { recursive: true });
  writeTree(root, {
    'node_modules/dep/index.js': "fetch('https://in-node-modules.partner.org/');\n",
    'build/out.js': "fetch('https://in-build.partner.org/');\n",
    '.git/config': 'url = https://in-git.partner.org/repo.git\n',
    'web/__pycache__/x.py': 'u = "https://in-pycache.partner.org"\n',
  });
  return root;
}

type Row = [
  file: string,
  line: number,
  column: number,
  kind: string,
  patterns: string,
  severity: string,
  dest: string,
];

function rows(r: ScanResult): Row[] {
  return r.findings.map((f) => [
    f.file,
    f.line,
    f.column,
    f.kind,
    f.patterns.join('+'),
    f.severity,
    f.destination ? `${f.destination.host}:${f.destination.port}` : '-',
  ]);
}

const EXPECTED: Row[] = [
  ['analysis/model.R', 8, 11, 'r_network_call', 'r_network_call', 'info', '-'],
  [
    'analysis/model.R',
    8,
    22,
    'r_url_literal',
    'r_url_literal+url',
    'warning',
    'registry.health-data.org:443',
  ],
  ['analysis/model.R', 13, 8, 'r_network_call', 'r_network_call', 'info', '-'],
  [
    'analysis/model.R',
    13,
    16,
    'r_url_literal',
    'r_url_literal+url',
    'warning',
    'api.trial-results.org:443',
  ],
  ['analysis/model.R', 13, 55, 'r_network_call', 'r_network_call', 'info', '-'],
  ['analysis/model.R', 14, 1, 'r_network_call', 'r_network_call', 'info', '-'],
  ['analysis/model.R', 14, 15, 'r_url_literal', 'r_url_literal', 'warning', 'ftp.genomes.org:21'],
  ['analysis/model.R', 15, 8, 'r_network_call', 'r_network_call', 'info', '-'],
  [
    'analysis/model.R',
    15,
    48,
    'r_endpoint_argument',
    'r_endpoint_argument',
    'warning',
    'pg.cohort-db.org:5433',
  ],
  ['analysis/model.R', 16, 13, 'r_network_call', 'r_network_call', 'info', '-'],
  [
    'analysis/model.R',
    16,
    58,
    'r_connection_string',
    'r_connection_string',
    'warning',
    'sql.hospital-db.net:1433',
  ],
  ['analysis/model.R', 17, 10, 'r_network_call', 'r_network_call', 'info', '-'],
  ['config.yaml', 1, 15, 'database_url', 'database_url', 'critical', 'db.cohort-db.org:5432'],
  ['config.yaml', 2, 10, 'database_url', 'database_url', 'warning', 'replica.cohort-db.org:3306'],
  ['config.yaml', 4, 20, 'aws_access_key', 'aws_access_key', 'critical', '-'],
  ['docs/setup.md', 3, 21, 'url', 'url', 'warning', 'api.trial-results.org:443'],
  [
    'src/app.py',
    8,
    7,
    'python_url_literal',
    'python_url_literal+url',
    'warning',
    'data.research-api.org:443',
  ],
  ['src/app.py', 14, 12, 'python_network_call', 'python_network_call', 'info', '-'],
  ['src/app.py', 19, 12, 'python_network_call', 'python_network_call', 'info', '-'],
  [
    'src/app.py',
    19,
    39,
    'python_endpoint_kwarg',
    'python_endpoint_kwarg+python_url_literal+url',
    'warning',
    'hospital-east.openai.azure.com:443',
  ],
  [
    'src/app.py',
    23,
    25,
    'python_endpoint_kwarg',
    'python_endpoint_kwarg',
    'warning',
    'warehouse.internal.org:5439',
  ],
  ['src/app.py', 27, 10, 'python_network_call', 'python_network_call', 'info', '-'],
  [
    'src/app.py',
    27,
    18,
    'python_url_literal',
    'python_url_literal+url',
    'warning',
    'files.research-api.org:443',
  ],
  [
    'web/Badge.tsx',
    3,
    18,
    'js_url_literal',
    'js_url_literal+url',
    'warning',
    'status.hospital.org:443',
  ],
  [
    'web/client.js',
    6,
    14,
    'js_url_literal',
    'js_url_literal+url',
    'warning',
    'uploads.partner-lab.org:443',
  ],
  ['web/client.js', 9, 9, 'js_network_call', 'js_network_call', 'info', '-'],
  ['web/client.js', 10, 3, 'js_network_call', 'js_network_call', 'info', '-'],
  [
    'web/client.js',
    10,
    13,
    'js_url_literal',
    'js_url_literal+url',
    'warning',
    'status.partner-lab.org:443',
  ],
  ['web/client.js', 11, 10, 'js_network_call', 'js_network_call', 'info', '-'],
  [
    'web/client.js',
    14,
    38,
    'js_endpoint_property',
    'js_endpoint_property+js_url_literal+url',
    'warning',
    'uploads.partner-lab.org:443',
  ],
  ['web/service.ts', 7, 20, 'js_network_call', 'js_network_call', 'info', '-'],
  [
    'web/service.ts',
    7,
    42,
    'js_endpoint_property',
    'js_endpoint_property+js_url_literal+url',
    'warning',
    'llm-gateway.hospital.org:443',
  ],
  [
    'web/service.ts',
    10,
    15,
    'js_url_literal',
    'js_url_literal+url',
    'warning',
    'reports.hospital.org:443',
  ],
  ['web/service.ts', 11, 21, 'js_network_call', 'js_network_call', 'info', '-'],
];

describe('the fixture tree', () => {
  it('gives exactly the expected findings', async () => {
    const r = await scanDirectory(fixtureCopy());
    expect(rows(r)).toEqual(EXPECTED);
    // config.yaml, setup.md, app.py, model.R, Badge.tsx, client.js, service.ts; not logo.PNG.
    expect(r.filesScanned).toBe(7);
    expect(r.filesSkipped).toBe(0);
    expect(r.counts).toEqual({ critical: 2, warning: 17, info: 15 });
  });

  it('shows the matched text of each call and literal, secrets masked', async () => {
    const r = await scanDirectory(fixtureCopy());
    const texts = r.findings.filter((f) => f.file !== 'analysis/model.R').map((f) => f.text);
    expect(texts).toEqual([
      'postgresql://analyst:***@db.cohort-db.org:5432/cohort',
      'mysql://reader@replica.cohort-db.org/cohort',
      'AKIA…',
      'https://api.trial-results.org/v2',
      'https://data.research-api.org/v2/cohorts',
      'rq.get(',
      'AzureOpenAI(',
      "azure_endpoint='https://hospital-east.openai.azure.com'",
      "host='warehouse.internal.org'",
      'urlopen(',
      'https://files.research-api.org/{path}',
      'https://status.hospital.org',
      'https://uploads.partner-lab.org/api',
      'fetch(',
      'https.get(',
      'https://status.partner-lab.org/ping',
      'undiciRequest(',
      "endpoint: 'https://uploads.partner-lab.org/api'",
      'new OpenAI(',
      "baseURL: 'https://llm-gateway.hospital.org/v1'",
      'https://reports.hospital.org/${region}/items/${id}',
      'axios.post(',
    ]);
    expect(JSON.stringify(r)).not.toContain('S3cretPassw0rd');
    expect(JSON.stringify(r)).not.toContain('AKIAIOSFODNN7EXAMPLE');
  });

  it('applies a version 2 policy: blocked destinations become critical and name their rule', async () => {
    const policy = await realPolicy(
      [
        'version: 2',
        'name: fixture',
        'rules:',
        '  - match: "*.hospital.org"',
        '    action: allow',
        '  - match: "*.research-api.org"',
        '    action: block',
        '    reason: not covered by the BAA',
        '  - match: "*.cohort-db.org"',
        '    ports: [5433]',
        '    action: kill',
        'defaults:',
        '  action: alert',
      ].join('\n'),
    );
    const r = await scanDirectory(fixtureCopy(), { policy });
    expect(r.policy).toBe('fixture');
    const critical = r.findings
      .filter((f) => f.severity === 'critical')
      .map((f) => [f.file, f.line, f.verdict?.action ?? null, f.verdict?.rule ?? null]);
    expect(critical).toEqual([
      ['analysis/model.R', 15, 'kill', '*.cohort-db.org'], // port 5433 from `port = 5433`
      ['config.yaml', 1, 'alert', null], // critical for its password, not for the policy
      ['config.yaml', 4, null, null],
      ['src/app.py', 8, 'block', '*.research-api.org'],
      ['src/app.py', 27, 'block', '*.research-api.org'],
    ]);
    const blocked = r.findings.find((f) => f.file === 'src/app.py' && f.line === 8);
    expect(blocked?.verdict).toMatchObject({
      reason: 'not covered by the BAA',
      ruleIndex: 1,
      violation: true,
    });
    // Allowed destinations keep their own severity.
    const allowed = r.findings.find((f) => f.file === 'web/Badge.tsx');
    expect(allowed).toMatchObject({
      severity: 'warning',
      verdict: { action: 'allow', rule: '*.hospital.org' },
    });
    // The port-restricted rule does not match the same host on another port.
    const cfg = r.findings.find((f) => f.file === 'config.yaml' && f.line === 2);
    expect(cfg).toMatchObject({ severity: 'warning', verdict: { action: 'alert', rule: null } });
  });
});
