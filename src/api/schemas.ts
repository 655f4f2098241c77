/**
 * zod schemas of the API: query parameters, bodies and responses. Inputs are validated with
 * them; the OpenAPI document is generated from them.
 */
import { z } from 'zod';
import {
  ACTIONS,
  CAPTURE_LEVELS,
  OUTCOMES,
  SESSION_KINDS,
  SESSION_STATUSES,
} from '../core/index.js';
import { CONNECTION_MODES, FINDING_SEVERITIES, MONITOR_PROTOCOLS } from '../store/index.js';

export const ID_PATTERN = /^[0-9a-z]{9}[0-9a-f]{12}$/;
export const POLICY_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export const recordId = z
  .string()
  .regex(ID_PATTERN, 'must be a record id (21 characters: 9 base36 time + 12 hex)');

/** Milliseconds since the epoch, or an ISO 8601 date. */
const time = z
  .string()
  .refine((s) => toMs(s) !== null, 'must be milliseconds since the epoch or an ISO 8601 date')
  .transform((s) => toMs(s) as number)
  .meta({ description: 'milliseconds since the epoch, or an ISO 8601 date' });

function toMs(s: string): number | null {
  if (/^\d{1,15}$/.test(s)) return Number(s);
  if (!/^\d{4}-\d\d-\d\d/.test(s)) return null;
  const t = Date.parse(s);
  return Number.isFinite(t) ? t : null;
}

const bool = z
  .enum(['true', 'false'])
  .transform((s) => s === 'true')
  .meta({ description: 'true or false' });

export const pageQuery = z.strictObject({
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(1000)
    .optional()
    .meta({ description: 'items per page, 1..1000 (default 100)' }),
  cursor: recordId.optional().meta({ description: "a previous page's nextCursor" }),
  order: z.enum(['asc', 'desc']).optional().meta({ description: 'by time; default desc' }),
});

const timeQuery = {
  since: time.optional().meta({ description: 'inclusive lower bound (ms or ISO date)' }),
  until: time.optional().meta({ description: 'exclusive upper bound (ms or ISO date)' }),
};
const hostQuery = z
  .string()
  .min(1)
  .max(253)
  .meta({ description: 'host or glob (`*` matches any characters, dots included)' });
const verdictQuery = z.enum(ACTIONS).meta({ description: 'policy action of the verdict' });

export const sessionsQuery = pageQuery.extend({
  status: z.enum(SESSION_STATUSES).optional(),
  kind: z.enum(SESSION_KINDS).optional(),
  q: z
    .string()
    .max(200)
    .optional()
    .meta({ description: 'search text in the id, command and policy' }),
});

export const requestsQuery = pageQuery.extend({
  session: recordId.optional(),
  host: hostQuery.optional(),
  method: z
    .string()
    .regex(/^[A-Za-z]{1,20}$/, 'must be an HTTP method')
    .optional(),
  status: z.coerce.number().int().min(0).max(999).optional(),
  verdict: verdictQuery.optional(),
  violation: bool.optional(),
  ...timeQuery,
  path: bool.optional().meta({
    description:
      "true: add each request's redacted path and query (`path`, opened server-side; at most 200 per page)",
  }),
});

export const connectionsQuery = pageQuery.extend({
  session: recordId.optional(),
  host: hostQuery.optional(),
  verdict: verdictQuery.optional(),
  violation: bool.optional(),
  ...timeQuery,
});

export const violationsQuery = pageQuery.extend({
  session: recordId.optional(),
  host: hostQuery.optional(),
  method: z
    .string()
    .regex(/^[A-Za-z]{1,20}$/, 'must be an HTTP method')
    .optional(),
  verdict: verdictQuery.optional(),
  enforced: bool.optional(),
  ...timeQuery,
});

export const streamQuery = z.strictObject({
  session: recordId.optional(),
  after: recordId
    .optional()
    .meta({ description: 'send records created after this id (default: from now on)' }),
});

export const idParam = z.strictObject({ id: recordId });
export const policyNameParam = z.strictObject({
  name: z
    .string()
    .regex(POLICY_NAME_PATTERN, 'must be 1-64 letters, digits, dots, dashes or underscores'),
});

export const policyBody = z.strictObject({
  yaml: z
    .string()
    .max(1024 * 1024)
    .meta({ description: 'the policy file text (YAML)' }),
});

export const linkBody = z.strictObject({});

// ---- responses ----

const verdictAction = z.enum(ACTIONS).nullable();

export const sessionSchema = z.object({
  id: z.string(),
  kind: z.enum(SESSION_KINDS),
  command: z.array(z.string()).nullable(),
  policy: z.string().nullable(),
  level: z.enum(CAPTURE_LEVELS),
  listen: z.string().nullable(),
  pid: z.number().nullable(),
  startedAt: z.number(),
  endedAt: z.number().nullable(),
  status: z.enum(SESSION_STATUSES),
  exitCode: z.number().nullable(),
  shreddedAt: z.number().nullable(),
  counts: z.object({
    connections: z.number(),
    requests: z.number(),
    violations: z.number(),
    monitorEvents: z.number(),
  }),
  phi: z.boolean().meta({ description: 'the level records URLs and headers (or bodies): PHI' }),
});

export const sessionDetailSchema = sessionSchema;

export const requestSchema = z.object({
  id: z.string(),
  sessionId: z.string(),
  connectionId: z.string().nullable(),
  startedAt: z.number(),
  endedAt: z.number().nullable(),
  method: z.string(),
  scheme: z.string(),
  host: z.string(),
  port: z.number(),
  status: z.number().nullable(),
  requestSize: z.number().nullable(),
  responseSize: z.number().nullable(),
  durationMs: z.number().nullable(),
  ttfbMs: z.number().nullable(),
  outcome: z.enum(OUTCOMES).nullable(),
  reason: z.string().nullable(),
  verdictAction,
  verdictRule: z.string().nullable(),
  violation: z.boolean(),
  pid: z.number().nullable(),
  exe: z.string().nullable(),
  requestBodyTruncated: z.boolean(),
  responseBodyTruncated: z.boolean(),
});

const redaction = z.object({ kind: z.string(), location: z.string(), count: z.number() });
const headerList = z.array(z.tuple([z.string(), z.string()]));
const shownBody = z.object({
  text: z.string().nullable().meta({ description: 'redacted text; null when binary' }),
  binary: z.boolean(),
  truncated: z.boolean(),
  note: z.string().optional(),
});

export const violationSchema = z.object({
  id: z.string(),
  sessionId: z.string(),
  time: z.number(),
  host: z.string(),
  port: z.number(),
  method: z.string().nullable(),
  action: z.enum(ACTIONS),
  rule: z.string().nullable(),
  ruleIndex: z.number().nullable(),
  reason: z.string(),
  explanation: z.string(),
  enforced: z.boolean(),
  connectionId: z.string().nullable(),
  requestId: z.string().nullable(),
  monitorEventId: z.string().nullable(),
});

export const requestListItemSchema = requestSchema.extend({
  path: z.string().nullable().optional().meta({
    description: 'with path=true: the redacted path and query; null when it cannot be opened',
  }),
});

export const requestDetailSchema = requestSchema.extend({
  url: z.string().meta({ description: 'scheme://host:port + path and query, redacted' }),
  requestHeaders: headerList,
  responseHeaders: headerList.nullable(),
  requestBody: shownBody.nullable(),
  responseBody: shownBody.nullable(),
  redactions: z.array(redaction),
  verdict: z.object({
    action: verdictAction,
    rule: z.string().nullable(),
    violation: z.boolean(),
    explanation: z.string().nullable(),
    violations: z.array(violationSchema),
  }),
});

export const connectionSchema = z.object({
  id: z.string(),
  sessionId: z.string(),
  startedAt: z.number(),
  endedAt: z.number().nullable(),
  clientAddr: z.string().nullable(),
  clientPort: z.number().nullable(),
  pid: z.number().nullable(),
  exe: z.string().nullable(),
  host: z.string(),
  port: z.number(),
  ip: z.string().nullable(),
  sni: z.string().nullable(),
  alpn: z.string().nullable(),
  mode: z.enum(CONNECTION_MODES),
  bytesUp: z.number(),
  bytesDown: z.number(),
  outcome: z.enum(OUTCOMES).nullable(),
  reason: z.string().nullable(),
  verdictAction,
  verdictRule: z.string().nullable(),
  violation: z.boolean(),
});

export function pageOf<T extends z.ZodType>(item: T) {
  return z.object({ items: z.array(item), nextCursor: z.string().nullable() });
}

const policyProblem = z.object({
  file: z.string().nullable(),
  line: z.number().nullable(),
  col: z.number().nullable(),
  message: z.string(),
});

export const policySummarySchema = z.object({
  name: z.string().nullable(),
  format: z.enum(['v2', 'legacy']),
  captureLevel: z.enum(CAPTURE_LEVELS).nullable(),
  defaultAction: z.enum(ACTIONS),
  rules: z.number(),
  files: z.array(z.string()),
});

export const validationSchema = z.object({
  valid: z.boolean(),
  errors: z.array(policyProblem),
  warnings: z.array(z.string()),
  summary: policySummarySchema.nullable(),
});

export const policyFileSchema = z.object({
  name: z.string(),
  file: z.string(),
  size: z.number(),
  modifiedAt: z.number(),
});

export const policyDetailSchema = policyFileSchema.extend({
  yaml: z.string(),
  validation: validationSchema,
});

export const errorSchema = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    issues: z
      .array(
        z.object({
          path: z.string(),
          message: z.string(),
          line: z.number().optional(),
          col: z.number().optional(),
        }),
      )
      .optional(),
  }),
});

// ---- monitor events, scans and findings ----

export const monitorEventsQuery = pageQuery.extend({
  session: recordId.optional(),
  pid: z.coerce
    .number()
    .int()
    .min(0)
    .max(2 ** 31 - 1)
    .optional(),
  host: hostQuery
    .optional()
    .meta({ description: 'hostname or remote address (glob: `*` matches any characters)' }),
  verdict: verdictQuery.optional(),
  violation: bool.optional(),
  ...timeQuery,
});

export const monitorEventSchema = z.object({
  id: z.string(),
  sessionId: z.string(),
  pid: z.number(),
  exe: z.string().nullable(),
  protocol: z.enum(MONITOR_PROTOCOLS),
  localAddr: z.string(),
  localPort: z.number(),
  remoteAddr: z.string(),
  remotePort: z.number(),
  state: z.string(),
  firstSeen: z.number(),
  lastSeen: z.number(),
  hostname: z.string().nullable(),
  org: z.string().nullable(),
  verdictAction,
  verdictRule: z.string().nullable(),
  violation: z.boolean(),
  enforced: z.boolean(),
});

const severity = z.enum(FINDING_SEVERITIES);

export const scansQuery = pageQuery.extend({
  root: z
    .string()
    .min(1)
    .max(4096)
    .optional()
    .meta({ description: 'only scans of this directory' }),
  ...timeQuery,
});

export const scanSchema = z.object({
  id: z.string(),
  root: z.string(),
  startedAt: z.number(),
  endedAt: z.number(),
  files: z.number(),
  skipped: z.number(),
  policy: z.string().nullable(),
  counts: z.object({ info: z.number(), warning: z.number(), critical: z.number() }),
  findings: z.number(),
});

export const findingsQuery = pageQuery.extend({
  severity: severity.optional(),
  kind: z.string().min(1).max(100).optional(),
  file: z.string().min(1).max(4096).optional(),
  violation: bool.optional(),
});

export const findingSchema = z.object({
  id: z.string(),
  scanId: z.string(),
  file: z.string(),
  line: z.number(),
  column: z.number(),
  kind: z.string(),
  patterns: z.array(z.string()),
  severity,
  secret: z.boolean(),
  host: z.string().nullable(),
  port: z.number().nullable(),
  fingerprint: z.string().nullable(),
  verdictAction,
  verdictRule: z.string().nullable(),
  verdictReason: z.string().nullable(),
  violation: z.boolean(),
  value: z.string().meta({ description: 'redacted; a secret finding shows only its kind' }),
  context: z.string().meta({ description: 'the source line, redacted' }),
  endpoint: z.string().nullable(),
});
