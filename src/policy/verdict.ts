/**
 * Verdicts are data: built once per rule when a policy is compiled, frozen, and shared by every
 * evaluation that ends on that rule.
 */
import type { Action, Verdict } from '../core/index.js';
import type { FlatRule, PolicyFormat } from './types.js';

const CONSEQUENCE: Record<Action, string> = {
  allow: 'allowed',
  alert: 'allowed and flagged as a violation',
  block: 'refused',
  kill: 'refused, and the process tree is terminated',
};

/** Whether a matched rule counts as a violation: in a legacy file a matched alert allows. */
export function ruleIsViolation(action: Action, format: PolicyFormat): boolean {
  if (action === 'allow') return false;
  return !(format === 'legacy' && action === 'alert');
}

function conditions(rule: FlatRule): string {
  let out = `match ${JSON.stringify(rule.match)}`;
  if (rule.ports.length > 0) out += `, ports ${rule.ports.join(' ')}`;
  if (rule.methods.length > 0) out += `, methods ${rule.methods.join(' ')}`;
  if (rule.paths.length > 0) out += `, paths ${rule.paths.map((p) => JSON.stringify(p)).join(' ')}`;
  return out;
}

export function ruleVerdict(rule: FlatRule, policy: string, topFile: string): Verdict {
  const from = rule.source === topFile ? '' : `, from ${rule.source}`;
  const legacyAlert = rule.format === 'legacy' && rule.action === 'alert';
  let because =
    rule.reason !== '' ? rule.reason : legacyAlert ? 'allowed' : CONSEQUENCE[rule.action];
  if (legacyAlert) because += ' (legacy policy: a matched alert rule allows, without a violation)';
  return Object.freeze({
    action: rule.action,
    violation: ruleIsViolation(rule.action, rule.format),
    ruleIndex: rule.index,
    rule: rule.match,
    reason: rule.reason,
    explanation: `rule ${rule.index + 1} (${conditions(rule)}, action ${rule.action}${from}): ${because}`,
    policy,
  });
}

export function defaultVerdict(action: Action, format: PolicyFormat, policy: string): Verdict {
  const violation = format === 'legacy' || action !== 'allow';
  const legacyNote =
    format === 'legacy' && action === 'alert'
      ? ' (legacy policy: an unmatched connection is a violation)'
      : '';
  return Object.freeze({
    action,
    violation,
    ruleIndex: null,
    rule: null,
    reason: `No rule matched — default action: ${action}`,
    explanation: `no rule matched: default action ${action}, ${CONSEQUENCE[action]}${legacyNote}`,
    policy,
  });
}

const AUDIT: Verdict = Object.freeze({
  action: 'allow',
  violation: false,
  ruleIndex: null,
  rule: null,
  reason: 'No policy: audit only',
  explanation: 'no policy loaded: everything is allowed and recorded, nothing is a violation',
  policy: null,
});

/** The verdict when no policy is loaded: allowed, recorded, never a violation. */
export function auditVerdict(): Verdict {
  return AUDIT;
}
