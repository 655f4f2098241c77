import type { Command } from 'commander';
import { isIP } from 'node:net';
import { TrustRunError, type Subject, type Verdict } from '../../core/index.js';
import { loadPolicy, type CompiledPolicy, type FlatRule } from '../../policy/index.js';
import { printJson } from '../common.js';

/** Where human output goes; tests pass their own. */
export interface PolicyIo {
  err: (text: string) => void;
}

const stderrIo: PolicyIo = { err: (text) => process.stderr.write(text) };

function load(file: string, io: PolicyIo): Promise<CompiledPolicy> {
  return loadPolicy(file, { warn: (msg) => io.err(`trustrun: warning: ${msg}\n`) });
}

export interface PolicyCheckResult {
  valid: true;
  name: string | null;
  /** The name shown for it: `name`, or the file's name. */
  shownName: string;
  format: CompiledPolicy['format'];
  captureLevel: CompiledPolicy['captureLevel'];
  defaultAction: CompiledPolicy['defaultAction'];
  hasRequestRules: boolean;
  files: string[];
  rules: FlatRule[];
}

/** `trustrun policy check FILE`: validates the file (and what it inherits). */
export async function policyCheck(
  file: string,
  io: PolicyIo = stderrIo,
): Promise<PolicyCheckResult> {
  const p = await load(file, io);
  return {
    valid: true,
    name: p.name,
    shownName: p.shownName,
    format: p.format,
    captureLevel: p.captureLevel,
    defaultAction: p.defaultAction,
    hasRequestRules: p.hasRequestRules,
    files: [...p.files],
    rules: [...p.rules],
  };
}

function conditions(r: FlatRule): string {
  const parts: string[] = [];
  if (r.ports.length > 0) parts.push(`ports ${r.ports.join(',')}`);
  if (r.methods.length > 0) parts.push(r.methods.join(','));
  if (r.paths.length > 0) parts.push(r.paths.join(' '));
  return parts.join(' ');
}

function pad(rows: string[][]): string {
  const widths = rows[0]?.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length))) ?? [];
  return rows
    .map(
      (r) =>
        '  ' +
        r
          .map((cell, c) => cell.padEnd(widths[c] ?? 0))
          .join('  ')
          .trimEnd(),
    )
    .join('\n');
}

export function formatCheck(file: string, r: PolicyCheckResult): string {
  const name = r.name === null ? `unnamed (shown as "${r.shownName}")` : `"${r.name}"`;
  const lines = [
    `${file}: valid ${r.format === 'v2' ? 'version 2' : 'legacy'} policy ${name}: ` +
      `${r.rules.length} rule${r.rules.length === 1 ? '' : 's'} from ${r.files.length} file${r.files.length === 1 ? '' : 's'}, ` +
      `default ${r.defaultAction}, capture level ${r.captureLevel ?? 'not set (the command line decides)'}`,
  ];
  if (r.rules.length > 0) {
    const rows = [['#', 'action', 'match', 'only', 'source', 'reason']];
    for (const rule of r.rules) {
      rows.push([
        String(rule.index + 1),
        rule.action,
        rule.match,
        conditions(rule) || '-',
        `${rule.source}:${rule.line}`,
        rule.reason,
      ]);
    }
    lines.push(pad(rows));
  }
  if (r.hasRequestRules && (r.captureLevel === null || r.captureLevel === 'metadata')) {
    lines.push(
      'note: rules with methods/paths need the request decrypted (--level headers or full); ' +
        'at metadata level they never match',
    );
  }
  return lines.join('\n') + '\n';
}

/** `HOST`, `HOST:PORT`, `[V6]`, `[V6]:PORT` or a bare IPv6 address; the port defaults to 443. */
export function parseTarget(target: string): { host: string; port: number } {
  let host = target;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(target);
  if (bracketed) {
    host = bracketed[1] as string;
    portText = bracketed[2];
  } else if ((target.match(/:/g) ?? []).length === 1) {
    [host, portText] = target.split(':') as [string, string];
  }
  if (host === '' || /[\s/]/.test(host)) {
    throw new TrustRunError('TR_USAGE', `bad target '${target}': expected HOST or HOST:PORT`);
  }
  let port = 443;
  if (portText !== undefined) {
    port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
    if (!(port >= 1 && port <= 65535)) {
      throw new TrustRunError('TR_USAGE', `bad port in '${target}': expected 1-65535`);
    }
  }
  return { host, port };
}

export interface PolicyTestOptions {
  ip?: string;
}

export interface PolicyTestResult {
  subject: Subject;
  /** What the proxy decides at CONNECT time. */
  connect: Verdict | 'per-request';
  /** The verdict for the request, when METHOD and PATH were given. */
  request: Verdict | null;
}

/** `trustrun policy test FILE HOST[:PORT] [METHOD PATH]`: the verdict for one destination. */
export async function policyTest(
  file: string,
  target: string,
  method: string | undefined,
  path: string | undefined,
  opts: PolicyTestOptions = {},
  io: PolicyIo = stderrIo,
): Promise<PolicyTestResult> {
  const { host, port } = parseTarget(target);
  if ((method === undefined) !== (path === undefined)) {
    throw new TrustRunError('TR_USAGE', 'give both METHOD and PATH, or neither');
  }
  if (method !== undefined && !/^[A-Za-z][A-Za-z-]*$/.test(method)) {
    throw new TrustRunError('TR_USAGE', `bad method '${method}'`);
  }
  if (path !== undefined && !path.startsWith('/')) {
    throw new TrustRunError('TR_USAGE', `bad path '${path}': it must start with '/'`);
  }
  if (opts.ip !== undefined && isIP(opts.ip.replace(/^\[|\]$/g, '').replace(/%.*$/, '')) === 0) {
    throw new TrustRunError('TR_USAGE', `bad --ip '${opts.ip}': expected an IPv4 or IPv6 address`);
  }
  const p = await load(file, io);
  const subject: Subject = { host, port, ip: opts.ip ?? null };
  const connect = p.evaluateConnect(subject);
  let request: Verdict | null = null;
  if (method !== undefined && path !== undefined) {
    const requestSubject: Subject = { ...subject, method: method.toUpperCase(), path };
    request = p.evaluate(requestSubject);
    return { subject: requestSubject, connect, request };
  }
  return { subject, connect, request };
}

function describeVerdict(v: Verdict): string {
  return `${v.action}${v.violation ? ' (violation)' : ''}\n  ${v.explanation}`;
}

export function formatTest(r: PolicyTestResult): string {
  const s = r.subject;
  const host = s.host.includes(':') ? `[${s.host}]` : s.host;
  const ip = s.ip ? ` (${s.ip})` : '';
  const dest = `${host}:${s.port}${ip}`;
  if (r.request !== null) {
    // Decided at CONNECT, the request's verdict is the CONNECT verdict (no request rule came first).
    const stage =
      r.connect === 'per-request'
        ? 'decided per request: CONNECT waits for the decrypted request'
        : 'decided at CONNECT, before any request is decrypted';
    return `${s.method} ${host}:${s.port}${s.path}${ip}: ${describeVerdict(r.request)}\n  (${stage})\n`;
  }
  if (r.connect === 'per-request') {
    return (
      `${dest}: decided per request: a rule with methods/paths applies to this destination\n` +
      '  give METHOD and PATH to see the verdict for a request\n'
    );
  }
  return `${dest}: ${describeVerdict(r.connect)}\n`;
}

export function register(program: Command): void {
  const policy = program
    .command('policy')
    .description('check a policy file, and see what it decides for a destination');

  policy
    .command('check')
    .description('validate a policy file (and what it inherits); list the flattened rules')
    .argument('<file>', 'policy file (YAML)')
    .option('--json', 'print the result as JSON on stdout')
    .action(async (file: string, opts: { json?: boolean }) => {
      const r = await policyCheck(file);
      if (opts.json) return printJson(r);
      process.stderr.write(formatCheck(file, r));
    });

  policy
    .command('test')
    .description('print the verdict for HOST[:PORT] (port 443 by default), or for one request')
    .argument('<file>', 'policy file (YAML)')
    .argument('<target>', 'HOST, HOST:PORT or [IPV6]:PORT')
    .argument('[method]', 'request method, e.g. POST (with PATH)')
    .argument('[path]', 'request path, e.g. /v1/chat/completions (with METHOD)')
    .option('--ip <addr>', 'the address the connection goes to (checked against IP/CIDR rules)')
    .option('--json', 'print the result as JSON on stdout')
    .action(
      async (
        file: string,
        target: string,
        method: string | undefined,
        path: string | undefined,
        opts: PolicyTestOptions & { json?: boolean },
      ) => {
        const r = await policyTest(file, target, method, path, { ip: opts.ip });
        if (opts.json) return printJson(r);
        process.stderr.write(formatTest(r));
      },
    );
}
