import type { Finding, PolicyAdapter } from './types.js';

/**
 * Checks a finding's destination against the policy. The destination's host, port (from the
 * URL, its scheme's default, or a sibling `port` argument; 0 when unknown) and IP (when the
 * host is an IP literal) are all given, so network (CIDR) rules, port rules and the policy's
 * default apply to findings as they do to traffic. A destination the policy would block or
 * kill makes the finding critical; a violation (alert) lifts an `info` finding to `warning`.
 */
export function judgeFinding(finding: Finding, policy: PolicyAdapter): void {
  const dest = finding.destination;
  if (!dest) return;
  const verdict = policy.evaluate({ host: dest.host, port: dest.port, ip: dest.ip });
  finding.verdict = {
    action: verdict.action,
    violation: verdict.violation,
    rule: verdict.rule,
    ruleIndex: verdict.ruleIndex,
    reason: verdict.reason,
    explanation: verdict.explanation,
    policy: verdict.policy ?? policy.name,
  };
  if (verdict.action === 'block' || verdict.action === 'kill') finding.severity = 'critical';
  else if (verdict.violation && finding.severity === 'info') finding.severity = 'warning';
}

/**
 * "blocked by rule `*.openai.com` (#1): reason" — one line for the text and SARIF output. The
 * rule is numbered from 1, as in every message (`policy check`, `policy test`); the JSON's
 * `ruleIndex` counts from 0.
 */
export function describeVerdict(finding: Finding): string | null {
  const v = finding.verdict;
  if (!v) return null;
  const verb = { allow: 'allowed', alert: 'alerted', block: 'blocked', kill: 'killed' }[v.action];
  const by =
    v.rule === null
      ? 'the policy default'
      : `rule \`${v.rule}\`${v.ruleIndex === null ? '' : ` (#${v.ruleIndex + 1})`}`;
  const policy = v.policy ? ` in policy ${v.policy}` : '';
  return `${verb} by ${by}${policy}${v.reason ? `: ${v.reason}` : ''}`;
}
