import Ajv from 'ajv';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import {
  PATTERN_NAMES,
  formatText,
  scanDirectory,
  toSarif,
  type ScanResult,
} from '../../../src/scan/index.js';
import { cleanupTmp, fakePolicy, tmp, writeTree } from './helpers.js';

afterEach(cleanupTmp);

const require = createRequire(import.meta.url);

/** The OASIS SARIF 2.1.0 schema (rtm.5, JSON Schema draft-04) as shipped on npm. */
function sarifValidator() {
  const schema = require('@microsoft/jest-sarif/lib/schemas/sarif-2.1.0-rtm.5.json') as object;
  const ajv = new Ajv({ schemaId: 'auto', allErrors: true, jsonPointers: true });
  ajv.addMetaSchema(require('ajv/lib/refs/json-schema-draft-04.json') as object);
  return ajv.compile(schema);
}

interface Location {
  artifactLocation: { uri: string; uriBaseId: string };
  region: { startLine: number; startColumn: number; endLine: number; endColumn: number };
}

async function sampleScan(): Promise<ScanResult> {
  const root = tmp('trustrun scan ');
  writeTree(root, {
    'src/app.py':
      'import requests\nrequests.get("https://api.openai.com/v1/chat")\nhost = "10.1.2.3"\n',
    'web/my client.js': "fetch('https://uploads.partner.org/x');\n",
    'config.yaml': 'key: AKIAIOSFODNN7EXAMPLE\n',
    'big.txt': 'x'.repeat(2048),
  });
  const policy = fakePolicy([
    { match: '*.openai.com', action: 'block', reason: 'no BAA' },
    { match: '10.0.0.0/8', action: 'kill' },
  ]);
  return scanDirectory(root, { policy, maxFileSize: 1024 });
}

describe('SARIF output', () => {
  it('validates against the SARIF 2.1.0 JSON schema', async () => {
    const validate = sarifValidator();
    const log = JSON.parse(JSON.stringify(toSarif(await sampleScan(), '0.1.0')));
    const ok = validate(log);
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
  });

  it('the validator rejects a broken log (so the check above can fail)', async () => {
    const validate = sarifValidator();
    const log = JSON.parse(JSON.stringify(toSarif(await sampleScan(), '0.1.0')));
    log.runs[0].results[0].level = 'fatal';
    delete log.runs[0].tool.driver.name;
    expect(validate(log)).toBe(false);
  });

  it('has what GitHub code scanning needs: rules, levels, locations, fingerprints', async () => {
    const r = await sampleScan();
    const log = toSarif(r, '0.1.0') as {
      version: string;
      runs: Array<{
        tool: {
          driver: {
            name: string;
            rules: Array<{ id: string; properties: Record<string, unknown> }>;
          };
        };
        originalUriBaseIds: Record<string, { uri: string }>;
        results: Array<
          Record<string, unknown> & { locations: Array<{ physicalLocation: Location }> }
        >;
        invocations: Array<{ toolExecutionNotifications: Array<{ message: { text: string } }> }>;
      }>;
    };
    expect(log.version).toBe('2.1.0');
    const run = log.runs[0]!;
    expect(run.tool.driver.name).toBe('TrustRun');
    expect(run.tool.driver.rules.map((x) => x.id)).toEqual([...PATTERN_NAMES]);
    expect(
      run.tool.driver.rules.every((x) => typeof x.properties['security-severity'] === 'string'),
    ).toBe(true);
    expect(run.originalUriBaseIds['%SRCROOT%']?.uri).toBe(pathToFileURL(r.root).href + '/');
    expect(run.results).toHaveLength(r.findings.length);
    for (const [i, res] of run.results.entries()) {
      const f = r.findings[i]!;
      expect(res.ruleId).toBe(f.kind);
      expect(run.tool.driver.rules[res.ruleIndex as number]?.id).toBe(f.kind);
      expect(res.level).toBe({ critical: 'error', warning: 'warning', info: 'note' }[f.severity]);
      expect(res.partialFingerprints).toEqual({ 'trustrunFinding/v1': f.fingerprint });
      const loc = res.locations[0]!.physicalLocation;
      expect(loc.artifactLocation.uriBaseId).toBe('%SRCROOT%');
      expect(loc.region).toMatchObject({ startLine: f.line, startColumn: f.column });
      expect(loc.region.endColumn).toBeGreaterThan(loc.region.startColumn);
    }
    const uris = run.results.map((x) => x.locations[0]!.physicalLocation.artifactLocation.uri);
    expect(uris).toContain('web/my%20client.js');
    const blocked = run.results.find((x) => x.ruleId === 'python_url_literal');
    expect(blocked?.level).toBe('error');
    expect((blocked?.message as { text: string }).text).toContain(
      'blocked by rule `*.openai.com` (#1)',
    );
    const killed = run.results.find((x) => x.ruleId === 'ip_literal');
    expect(killed?.level).toBe('error');
    expect(run.invocations[0]?.toolExecutionNotifications.map((n) => n.message.text)).toEqual([
      'skipped: too large',
    ]);
    expect(JSON.stringify(log)).not.toContain('AKIAIOSFODNN7EXAMPLE');
  });

  it('fingerprints are stable across runs and line moves', async () => {
    const root = tmp();
    writeTree(root, { 'a.py': 'u = "https://api.partner.org"\nv = "https://api.partner.org"\n' });
    const first = await scanDirectory(root);
    writeTree(root, {
      'a.py': '\n\n# moved\nu = "https://api.partner.org"\nv = "https://api.partner.org"\n',
    });
    const second = await scanDirectory(root);
    expect(second.findings.map((f) => f.fingerprint)).toEqual(
      first.findings.map((f) => f.fingerprint),
    );
    expect(new Set(first.findings.map((f) => f.fingerprint)).size).toBe(2); // two occurrences differ
    expect(second.findings.map((f) => f.line)).toEqual([4, 5]);
  });
});

describe('text output', () => {
  it('groups findings by file, names the policy rule, lists skipped files and sums up', async () => {
    const text = formatText(await sampleScan());
    const lines = text.split('\n');
    expect(lines[0]).toBe('config.yaml');
    expect(lines).toContain('src/app.py');
    expect(lines).toContain('web/my client.js');
    expect(text).toMatch(/^ {2}2:1 +info +python_network_call +requests\.get\($/m);
    expect(text).toMatch(
      /^ {2}2:14 +critical +python_url_literal, url +https:\/\/api\.openai\.com\/v1\/chat$/m,
    );
    expect(text).toMatch(/^ +blocked by rule `\*\.openai\.com` \(#1\) in policy fake: no BAA$/m);
    expect(text).toMatch(/^ +killed by rule `10\.0\.0\.0\/8` \(#2\) in policy fake$/m);
    expect(text).toContain('Skipped:\n  big.txt (too large, 2.0 KiB)\n');
    expect(text).toMatch(/^Scanned 3 files \(1 skipped\) in \d+\.\d\ds$/m);
    expect(text).toContain(
      'Total findings: 6 (3 critical, 1 warning, 2 info)\n3 critical finding(s)\n',
    );
    expect(text).not.toContain('AKIAIOSFODNN7EXAMPLE');
  });

  it('says so when there is nothing to report', async () => {
    const root = tmp();
    writeTree(root, { 'a.py': 'x = 1\n' });
    const text = formatText(await scanDirectory(root));
    expect(text).toMatch(
      /^No findings\.\nScanned 1 files \(0 skipped\) in \d+\.\d\ds\nTotal findings: 0 \(0 critical, 0 warning, 0 info\)\n$/,
    );
  });
});
