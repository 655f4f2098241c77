/**
 * The two policy file formats as zod schemas: `version: 2` (strict: unknown keys are errors)
 * and legacy files of the earlier tool (no `version`; unknown keys ignored, as it did).
 */
import { z } from 'zod';
import { ACTIONS, CAPTURE_LEVELS, type Action, type CaptureLevel } from '../core/index.js';
import { pathGlobError } from './glob.js';
import { describe, matchError } from './match.js';
import type { PolicyFormat } from './types.js';

/** A rule as validated, before flattening. */
export interface RuleDoc {
  match: string;
  action: Action;
  reason: string;
  ports: number[];
  methods: string[];
  paths: string[];
}

/** One policy file as validated. */
export interface PolicyDoc {
  format: PolicyFormat;
  name: string | null;
  description: string;
  inherit: string[];
  captureLevel: CaptureLevel | null;
  rules: RuleDoc[];
  defaultAction: Action;
}

const LEGACY_ACTIONS: readonly Action[] = ['alert', 'block', 'kill'];

function oneOrList(v: unknown): unknown[] {
  if (v === undefined || v === null) return [];
  return Array.isArray(v) ? v : [v];
}

function text(label: string, fallback: string) {
  return z
    .unknown()
    .optional()
    .transform((v, ctx): string => {
      if (v === undefined || v === null) return fallback;
      if (typeof v === 'string') return v;
      if (typeof v === 'number' || typeof v === 'boolean') return String(v);
      ctx.addIssue({ code: 'custom', message: `${label} must be text, got ${describe(v)}` });
      return z.NEVER;
    });
}

function action(format: PolicyFormat, required: boolean) {
  const allowed = format === 'v2' ? ACTIONS : LEGACY_ACTIONS;
  return z
    .unknown()
    .optional()
    .transform((v, ctx): Action => {
      if (v === undefined || v === null) {
        if (!required) return 'alert';
        ctx.addIssue({ code: 'custom', message: 'has no "action" (allow, alert, block or kill)' });
        return z.NEVER;
      }
      if (typeof v === 'string' && (allowed as readonly string[]).includes(v)) return v as Action;
      const message =
        format === 'legacy' && v === 'allow'
          ? 'action "allow" needs a version 2 file: add "version: 2" at the top (a file without version is read as a legacy file: alert, block or kill)'
          : `unknown action ${describe(v)}; expected ${format === 'v2' ? 'allow, alert, block or kill' : 'alert, block or kill'}`;
      ctx.addIssue({ code: 'custom', message });
      return z.NEVER;
    });
}

const matchField = z
  .unknown()
  .optional()
  .transform((v, ctx): string => {
    if (v === undefined || v === null) {
      ctx.addIssue({ code: 'custom', message: 'has no "match" (a host glob, IP address or CIDR)' });
      return z.NEVER;
    }
    if (typeof v !== 'string') {
      ctx.addIssue({ code: 'custom', message: `match must be text, got ${describe(v)}` });
      return z.NEVER;
    }
    const err = matchError(v);
    if (err !== null) {
      ctx.addIssue({ code: 'custom', message: err });
      return z.NEVER;
    }
    return v;
  });

const portsField = z
  .unknown()
  .optional()
  .transform((v, ctx): number[] => {
    const list = oneOrList(v);
    const out: number[] = [];
    list.forEach((p, i) => {
      const n =
        typeof p === 'number'
          ? p
          : typeof p === 'string' && /^\s*\d+\s*$/.test(p)
            ? Number(p)
            : NaN;
      if (!Number.isInteger(n) || n < 1 || n > 65535) {
        ctx.addIssue({
          code: 'custom',
          message: `bad port ${describe(p)}: a port is a whole number from 1 to 65535`,
          path: Array.isArray(v) ? [i] : [],
        });
      } else if (!out.includes(n)) {
        out.push(n);
      }
    });
    return out;
  });

const methodsField = z
  .unknown()
  .optional()
  .transform((v, ctx): string[] => {
    const list = oneOrList(v);
    const out: string[] = [];
    list.forEach((m, i) => {
      if (typeof m !== 'string' || !/^[A-Za-z][A-Za-z-]*$/.test(m)) {
        ctx.addIssue({
          code: 'custom',
          message: `bad method ${describe(m)}: write an HTTP method such as GET or POST`,
          path: Array.isArray(v) ? [i] : [],
        });
      } else if (!out.includes(m.toUpperCase())) {
        out.push(m.toUpperCase());
      }
    });
    return out;
  });

const pathsField = z
  .unknown()
  .optional()
  .transform((v, ctx): string[] => {
    const list = oneOrList(v);
    const out: string[] = [];
    list.forEach((p, i) => {
      const err = typeof p === 'string' ? pathGlobError(p) : `must be text, got ${describe(p)}`;
      if (err !== null) {
        ctx.addIssue({
          code: 'custom',
          message: `path ${describe(p)} ${err}`,
          path: Array.isArray(v) ? [i] : [],
        });
      } else {
        out.push(p as string);
      }
    });
    return out;
  });

const inheritField = z
  .unknown()
  .optional()
  .transform((v, ctx): string[] => {
    const list = oneOrList(v);
    const out: string[] = [];
    list.forEach((ref, i) => {
      if (typeof ref !== 'string' || ref.trim() === '') {
        ctx.addIssue({
          code: 'custom',
          message: `inherit entries are "preset:NAME" or a file path, got ${describe(ref)}`,
          path: Array.isArray(v) ? [i] : [],
        });
      } else {
        out.push(ref.trim());
      }
    });
    return out;
  });

const captureLevelField = z
  .unknown()
  .optional()
  .transform((v, ctx): CaptureLevel | null => {
    if (v === undefined || v === null) return null;
    if (typeof v === 'string' && (CAPTURE_LEVELS as readonly string[]).includes(v)) {
      return v as CaptureLevel;
    }
    ctx.addIssue({
      code: 'custom',
      message: `unknown capture_level ${describe(v)}; expected metadata, headers or full`,
    });
    return z.NEVER;
  });

/** Keys only a version 2 file knows; a legacy file that uses them is told to declare it. */
function v2Only(key: string) {
  return z
    .unknown()
    .optional()
    .transform((v, ctx): string[] => {
      if (v !== undefined && v !== null) {
        ctx.addIssue({
          code: 'custom',
          message: `"${key}" needs a version 2 file: add "version: 2" at the top`,
        });
        return z.NEVER;
      }
      return [];
    });
}

const v2Rule = z.strictObject({
  match: matchField,
  action: action('v2', true),
  reason: text('reason', ''),
  ports: portsField,
  methods: methodsField,
  paths: pathsField,
});

const legacyRule = z.object({
  match: matchField,
  action: action('legacy', false),
  reason: text('reason', ''),
  ports: portsField,
  methods: v2Only('methods'),
  paths: v2Only('paths'),
});

function rulesField<T extends z.ZodType>(rule: T) {
  return z
    .array(rule, { error: (iss) => `rules must be a list of rules, got ${describe(iss.input)}` })
    .nullish()
    .transform((v) => v ?? []);
}

function defaultsField(format: PolicyFormat) {
  const shape = { action: action(format, false) };
  const obj = format === 'v2' ? z.strictObject(shape) : z.object(shape);
  return obj.nullish().transform((v) => ({ action: v?.action ?? ('alert' as Action) }));
}

export const v2PolicySchema = z.strictObject({
  version: z.literal(2),
  name: text('name', ''),
  description: text('description', ''),
  inherit: inheritField,
  capture_level: captureLevelField,
  rules: rulesField(v2Rule),
  defaults: defaultsField('v2'),
});

export const legacyPolicySchema = z.object({
  name: text('name', 'unnamed'),
  description: text('description', ''),
  inherit: inheritField,
  capture_level: captureLevelField,
  rules: rulesField(legacyRule),
  defaults: defaultsField('legacy'),
});

/** Keys a rule and a policy may have, for "did you mean" hints. */
export const KNOWN_KEYS = {
  policy: ['version', 'name', 'description', 'inherit', 'capture_level', 'rules', 'defaults'],
  rule: ['match', 'action', 'reason', 'ports', 'methods', 'paths'],
  defaults: ['action'],
};

export function toPolicyDoc(
  format: PolicyFormat,
  data: z.output<typeof v2PolicySchema> | z.output<typeof legacyPolicySchema>,
): PolicyDoc {
  return {
    format,
    name: data.name === '' ? null : data.name,
    description: data.description,
    inherit: data.inherit,
    captureLevel: data.capture_level,
    rules: data.rules.map((r) => ({
      match: r.match,
      action: r.action,
      reason: r.reason,
      ports: r.ports,
      methods: r.methods,
      paths: r.paths,
    })),
    defaultAction: data.defaults.action,
  };
}
