import {
  isBenignIp,
  isBenignUrl,
  isFalsePositive,
  isLoopbackHost,
  parseDestination,
} from './endpoint.js';
import { RULES } from './rules.js';
import type { Hit, PatternName } from './types.js';

/**
 * The universal patterns: every file is searched with them, whatever its language. Each
 * pattern turns a regex match into a hit, or drops it (false-positive filters).
 */
interface UniversalPattern {
  name: PatternName;
  re: RegExp;
  build(m: RegExpExecArray, text: string): Hit | null;
}

function hit(name: PatternName, start: number, matched: string, extra: Partial<Hit> = {}): Hit {
  return {
    pattern: name,
    severity: RULES[name].severity,
    start,
    end: start + matched.length,
    text: matched,
    endpoint: null,
    ...extra,
  };
}

/** The whole match is the secret. */
function wholeSecret(name: PatternName) {
  return (m: RegExpExecArray): Hit | null => {
    if (isFalsePositive(m[0])) return null;
    return hit(name, m.index, m[0], { masks: [[m.index, m.index + m[0].length]] });
  };
}

/**
 * Drops trailing punctuation that ends a sentence or closes a bracket around the URL, never
 * a bracket that the URL itself opened (`/wiki/Foo_(bar)`).
 */
export function trimUrl(url: string): string {
  let end = url.length;
  while (end > 0) {
    const c = url[end - 1] as string;
    if ('.,;:!?*'.includes(c)) {
      end--;
      continue;
    }
    if (c === ')' || c === ']') {
      const open = c === ')' ? '(' : '[';
      const body = url.slice(0, end);
      if (count(body, c) > count(body, open)) {
        end--;
        continue;
      }
    }
    break;
  }
  return url.slice(0, end);
}

function count(s: string, ch: string): number {
  let n = 0;
  for (let i = s.indexOf(ch); i !== -1; i = s.indexOf(ch, i + 1)) n++;
  return n;
}

/**
 * The password in a URL's userinfo (`scheme://user:PASSWORD@host`), as offsets into the URL;
 * null when there is none or it is a placeholder (`${PW}`, `%(pw)s`, `<password>`).
 */
export function userinfoPassword(url: string): [number, number] | null {
  const schemeEnd = url.indexOf('://');
  if (schemeEnd === -1) return null;
  const from = schemeEnd + 3;
  const authority = url.slice(from).split(/[/?#]/, 1)[0] as string;
  const at = authority.lastIndexOf('@');
  if (at <= 0) return null;
  const colon = authority.indexOf(':');
  if (colon === -1 || colon >= at - 1) return null;
  const password = authority.slice(colon + 1, at);
  if (/^[$%{<*]/.test(password)) return null;
  return [from + colon + 1, from + at];
}

function urlHit(m: RegExpExecArray): Hit | null {
  const url = trimUrl(m[0]);
  if (!/^https?:\/\/[^/?#]/i.test(url) || isBenignUrl(url)) return null;
  const pw = userinfoPassword(url);
  return hit('url', m.index, url, {
    endpoint: url,
    ...(pw ? { masks: [[m.index + pw[0], m.index + pw[1]]] } : {}),
  });
}

function ipHit(m: RegExpExecArray, text: string): Hit | null {
  const ip = m[1] as string;
  if (ip.split('.').some((o) => Number(o) > 255)) return null;
  if (isBenignIp(ip)) return null;
  // Version numbers: `version = "1.2.3.4"`, `__version__: '10.1.0.2'`.
  const lineStart = text.lastIndexOf('\n', m.index) + 1;
  if (/version[\s\W_]{0,8}$/i.test(text.slice(Math.max(lineStart, m.index - 40), m.index)))
    return null;
  return hit('ip_literal', m.index, m[0], {
    endpoint: ip,
    ...(m[2] ? { port: Number(m[2]) } : {}),
  });
}

function genericKeyHit(m: RegExpExecArray, text: string): Hit | null {
  const quote = m[2] as string;
  const value = m[3] as string;
  const after = text[m.index + m[0].length] ?? '';
  if (!quote) {
    // Unquoted values are names as often as keys: ask for letters and digits, and no call.
    if (!/[A-Za-z]/.test(value) || !/\d/.test(value) || /[(.[]/.test(after)) return null;
  }
  if (/^(.)\1+$/.test(value) || /your|example|placeholder|changeme|xxxx|dummy/i.test(value))
    return null;
  if (isFalsePositive(m[0])) return null;
  const valueStart = m.index + m[0].length - value.length;
  return hit('generic_api_key', m.index, m[0], {
    masks: [[valueStart, valueStart + value.length]],
  });
}

/**
 * Passwords given as parameters of a database URL: in its query (`?user=a&password=x`) or as
 * `;key=value` parts (`jdbc:sqlserver://h:1433;user=u;password=x`). Offsets into the URL;
 * placeholders are left out, as in `userinfoPassword`.
 */
export function parameterPasswords(url: string): [number, number][] {
  const out: [number, number][] = [];
  const re = /[?&;](?:password|passwd|pwd|pass)=([^&;#\s]*)/dgi;
  for (let m = re.exec(url); m !== null; m = re.exec(url)) {
    const [start, end] = (m.indices as RegExpIndicesArray)[1] as [number, number];
    if (end > start && !/^[$%{<*]/.test(url.slice(start, end))) out.push([start, end]);
  }
  return out;
}

function databaseHit(m: RegExpExecArray): Hit | null {
  const url = trimUrl(m[0]);
  const dest = parseDestination(url);
  if (!dest || isLoopbackHost(dest.host)) return null;
  const userinfo = userinfoPassword(url);
  const passwords = [...(userinfo ? [userinfo] : []), ...parameterPasswords(url)];
  return hit('database_url', m.index, url, {
    endpoint: url,
    severity: passwords.length > 0 ? 'critical' : 'warning',
    ...(passwords.length > 0
      ? { masks: passwords.map(([a, b]): [number, number] => [m.index + a, m.index + b]) }
      : {}),
  });
}

export const UNIVERSAL_PATTERNS: UniversalPattern[] = [
  {
    name: 'private_key',
    re: /-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----/g,
    build: (m) => hit('private_key', m.index, m[0]),
  },
  {
    name: 'aws_access_key',
    re: /\b(?:AKIA|ASIA)[A-Z0-9]{16}\b/g,
    build: wholeSecret('aws_access_key'),
  },
  {
    name: 'azure_connection_string',
    re: /DefaultEndpointsProtocol=https?;AccountName=[^;\s"'`]+;AccountKey=([^;\s"'`]+)/dgi,
    build: (m) => {
      const key = (m.indices as RegExpIndicesArray)[1] as [number, number];
      return hit('azure_connection_string', m.index, m[0], { masks: [key] });
    },
  },
  {
    name: 'openai_api_key',
    re: /(?<![\w-])sk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,}|[A-Za-z0-9]{20,})(?![A-Za-z0-9_-])/g,
    build: wholeSecret('openai_api_key'),
  },
  {
    name: 'github_token',
    re: /\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{50,})\b/g,
    build: wholeSecret('github_token'),
  },
  {
    name: 'google_api_key',
    re: /\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])/g,
    build: wholeSecret('google_api_key'),
  },
  {
    name: 'slack_token',
    re: /\bxox[abposr]-[A-Za-z0-9-]{10,}/g,
    build: wholeSecret('slack_token'),
  },
  {
    name: 'slack_webhook',
    re: /https:\/\/hooks\.slack\.com\/services\/[A-Za-z0-9_/]+/g,
    build: (m) => {
      const secretFrom = m.index + 'https://hooks.slack.com/services/'.length;
      return hit('slack_webhook', m.index, m[0], {
        endpoint: m[0],
        masks: [[secretFrom, m.index + m[0].length]],
      });
    },
  },
  {
    name: 'jwt',
    re: /\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/g,
    build: wholeSecret('jwt'),
  },
  {
    name: 'generic_api_key',
    re: /(api[_-]?key|secret[_-]key|auth[_-]token)["']?[ \t]*[=:][ \t]*(["']?)([A-Za-z0-9_-]{16,})/gi,
    build: genericKeyHit,
  },
  {
    name: 'database_url',
    re: /\b(?:jdbc:)?(?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?|mssql|sqlserver|oracle|cockroachdb|clickhouse)(?:\+[a-z0-9]+)?:\/\/[^\s"'`<>]+/gi,
    build: databaseHit,
  },
  { name: 'url', re: /https?:\/\/[^\s"'`<>{}|\\^]+/gi, build: urlHit },
  {
    name: 'ip_literal',
    re: /(?<![\w.-])(\d{1,3}(?:\.\d{1,3}){3})(?::(\d{1,5}))?\b(?!\.\d)/g,
    build: ipHit,
  },
];

/** Runs every universal pattern over a file's text. */
export function universalHits(text: string): Hit[] {
  const hits: Hit[] = [];
  for (const p of UNIVERSAL_PATTERNS) {
    p.re.lastIndex = 0;
    for (let m = p.re.exec(text); m !== null; m = p.re.exec(text)) {
      const h = p.build(m, text);
      if (h) hits.push(h);
      if (m[0].length === 0) p.re.lastIndex++;
    }
  }
  return hits;
}
