import { pathToFileURL } from 'node:url';
import { RULES } from '../rules.js';
import { describeVerdict } from '../verdict.js';
import {
  PATTERN_NAMES,
  type Finding,
  type PatternName,
  type ScanResult,
  type Severity,
} from '../types.js';

const SARIF_SCHEMA = 'https://json.schemastore.org/sarif-2.1.0.json';
const SRCROOT = '%SRCROOT%';

const LEVEL: Record<Severity, 'error' | 'warning' | 'note'> = {
  critical: 'error',
  warning: 'warning',
  info: 'note',
};

/** GitHub code scanning ranks security alerts by this 0–10 score. */
const SECURITY_SEVERITY: Record<Severity, string> = {
  critical: '9.0',
  warning: '5.0',
  info: '2.0',
};

function ruleName(id: PatternName): string {
  return id
    .split('_')
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join('');
}

function sarifRule(id: PatternName) {
  const r = RULES[id];
  return {
    id,
    name: ruleName(id),
    shortDescription: { text: r.title },
    fullDescription: { text: r.description },
    help: {
      text: r.secret
        ? `${r.description} Move the secret out of the source (environment, secret store) and rotate it.`
        : `${r.description} Check that this destination is approved for the data the code handles.`,
    },
    defaultConfiguration: { level: LEVEL[r.severity] },
    properties: {
      tags: ['security', r.secret ? 'secret' : 'network'],
      precision: r.severity === 'info' ? 'medium' : 'high',
      'security-severity': SECURITY_SEVERITY[r.severity],
    },
  };
}

/** A relative path as a URI reference: each segment percent-encoded. */
function uriFor(file: string): string {
  return file.split('/').map(encodeURIComponent).join('/');
}

function message(f: Finding): string {
  const others = f.patterns.slice(1);
  let text = `${RULES[f.kind].title}: ${f.text}`;
  if (others.length > 0) text += ` (also matched: ${others.join(', ')})`;
  const verdict = describeVerdict(f);
  if (verdict) text += `. Policy: ${verdict}`;
  return text;
}

function sarifResult(f: Finding) {
  return {
    ruleId: f.kind,
    ruleIndex: PATTERN_NAMES.indexOf(f.kind),
    level: LEVEL[f.severity],
    message: { text: message(f) },
    locations: [
      {
        physicalLocation: {
          artifactLocation: { uri: uriFor(f.file), uriBaseId: SRCROOT },
          region: {
            startLine: f.line,
            startColumn: f.column,
            endLine: f.endLine,
            endColumn: f.endColumn,
            snippet: { text: f.context },
          },
        },
      },
    ],
    partialFingerprints: { 'trustrunFinding/v1': f.fingerprint },
    properties: {
      severity: f.severity,
      patterns: f.patterns,
      ...(f.endpoint === null ? {} : { endpoint: f.endpoint }),
      ...(f.destination === null ? {} : { destination: f.destination }),
      ...(f.verdict === null ? {} : { verdict: f.verdict }),
    },
  };
}

/**
 * The scan as a SARIF 2.1.0 log with one run: every pattern as a rule (with GitHub's
 * `security-severity`), every finding as a result with its location relative to
 * %SRCROOT% (the scanned directory) and a stable partial fingerprint. Skipped files are
 * reported as notifications of the invocation.
 */
export function toSarif(result: ScanResult, toolVersion: string): object {
  return {
    $schema: SARIF_SCHEMA,
    version: '2.1.0',
    runs: [
      {
        tool: {
          driver: {
            name: 'TrustRun',
            version: toolVersion,
            semanticVersion: toolVersion,
            rules: PATTERN_NAMES.map(sarifRule),
          },
        },
        invocations: [
          {
            executionSuccessful: true,
            startTimeUtc: result.startedAt,
            endTimeUtc: new Date(
              Date.parse(result.startedAt) + Math.round(result.durationMs),
            ).toISOString(),
            toolExecutionNotifications: result.skipped.map((s) => ({
              level: 'note',
              message: { text: `skipped: ${s.reason.replace('_', ' ')}` },
              locations: [
                {
                  physicalLocation: {
                    artifactLocation: { uri: uriFor(s.file), uriBaseId: SRCROOT },
                  },
                },
              ],
            })),
          },
        ],
        originalUriBaseIds: {
          [SRCROOT]: { uri: pathToFileURL(result.root).href.replace(/\/?$/, '/') },
        },
        columnKind: 'utf16CodeUnits',
        results: result.findings.map(sarifResult),
        properties: {
          scanId: result.id,
          policy: result.policy,
          filesScanned: result.filesScanned,
          filesSkipped: result.filesSkipped,
        },
      },
    ],
  };
}
