import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Action, Subject, Verdict } from '../../../src/core/index.js';
import { loadPolicy } from '../../../src/policy/index.js';
import type { Finding, PolicyAdapter } from '../../../src/scan/index.js';

/** Temp directories made by a test file, removed by cleanupTmp() in afterEach. */
const made: string[] = [];

export function tmp(prefix = 'trustrun-scan-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

export function cleanupTmp(): void {
  while (made.length > 0) rmSync(made.pop() as string, { recursive: true, force: true });
}

/** Writes files (path → content) under root, creating directories. */
export function writeTree(root: string, files: Record<string, string | Buffer>): void {
  for (const [rel, content] of Object.entries(files)) {
    const abs = join(root, rel);
    mkdirSync(dirname(abs), { recursive: true });
    writeFileSync(abs, content);
  }
}

/**
 * A tiny stand-in for the policy module's evaluator: first match wins; a rule is an IPv4
 * CIDR/IP (matches the subject's ip) or a host glob where `*` crosses dots.
 */
export function fakePolicy(
  rules: Array<{ match: string; action: Action; reason?: string }>,
  defaultAction: Action = 'allow',
): PolicyAdapter & { asked: Subject[] } {
  const asked: Subject[] = [];
  const toInt = (ip: string) => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
  const matches = (match: string, s: Subject): boolean => {
    const cidr = /^(\d+\.\d+\.\d+\.\d+)(?:\/(\d+))?$/.exec(match);
    if (cidr) {
      if (!s.ip || !/^\d+\.\d+\.\d+\.\d+$/.test(s.ip)) return false;
      const bits = Number(cidr[2] ?? 32);
      const mask = bits === 0 ? 0 : 2 ** 32 - 2 ** (32 - bits);
      return (toInt(s.ip) & mask) >>> 0 === (toInt(cidr[1] as string) & mask) >>> 0;
    }
    const re = new RegExp(
      '^' +
        match
          .split('*')
          .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
          .join('.*') +
        '$',
      'i',
    );
    return re.test(s.host);
  };
  return {
    name: 'fake',
    asked,
    evaluate(s: Subject): Verdict {
      asked.push(s);
      const i = rules.findIndex((r) => matches(r.match, s));
      const r = rules[i];
      if (r) {
        return {
          action: r.action,
          violation: r.action !== 'allow',
          ruleIndex: i,
          rule: r.match,
          reason: r.reason ?? '',
          explanation: `rule ${r.match} matched`,
          policy: 'fake',
        };
      }
      return {
        action: defaultAction,
        violation: defaultAction !== 'allow',
        ruleIndex: null,
        rule: null,
        reason: `No rule matched — default action: ${defaultAction}`,
        explanation: 'default',
        policy: 'fake',
      };
    },
  };
}

/** The real policy module, loaded from YAML text written to a temp file. */
export async function realPolicy(yaml: string): Promise<PolicyAdapter> {
  const file = join(tmp('trustrun-scan-policy-'), 'policy.yaml');
  writeFileSync(file, yaml);
  const policy = await loadPolicy(file, { warn: () => {} });
  return { name: policy.name, evaluate: (s) => policy.evaluate(s) };
}

/** The comparable part of a finding. */
export function summary(f: Finding) {
  return {
    file: f.file,
    line: f.line,
    column: f.column,
    kind: f.kind,
    patterns: f.patterns,
    severity: f.severity,
    endpoint: f.endpoint,
  };
}
