import { RangeSet } from '../text.js';
import type { Hit } from '../types.js';
import {
  endpointArgument,
  makeHit,
  shorten,
  urlLiteralEndpoint,
  type AnalyzerResult,
} from './common.js';
import { tokenizeR, type RToken } from './rtokens.js';

/** Network functions by name, with the package they come from. */
const R_CALLS: ReadonlyMap<string, { pkg: string; needsPackage?: boolean }> = new Map([
  ...['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'VERB', 'RETRY'].map(
    (f) => [f, { pkg: 'httr' }] as const,
  ),
  ['request', { pkg: 'httr2', needsPackage: true }],
  ...[
    'req_perform',
    'req_perform_parallel',
    'req_perform_sequential',
    'req_perform_stream',
    'req_perform_connection',
    'req_stream',
  ].map((f) => [f, { pkg: 'httr2' }] as const),
  ...[
    'curl',
    'curl_fetch_memory',
    'curl_fetch_disk',
    'curl_fetch_stream',
    'curl_fetch_multi',
    'curl_download',
  ].map((f) => [f, { pkg: 'curl' }] as const),
  ['download.file', { pkg: 'utils' }],
  ['url', { pkg: 'base' }],
  ['socketConnection', { pkg: 'base' }],
  ...[
    'getURL',
    'getURLContent',
    'getBinaryURL',
    'getForm',
    'postForm',
    'httpGET',
    'httpPOST',
    'httpPUT',
    'httpDELETE',
    'curlPerform',
  ].map((f) => [f, { pkg: 'RCurl' }] as const),
  ['dbConnect', { pkg: 'DBI' }],
  ['dbPool', { pkg: 'pool' }],
]);

/** Named arguments whose string value is an endpoint (compared lower-cased). */
export const R_ENDPOINT_ARGUMENTS: ReadonlySet<string> = new Set([
  'url',
  'base_url',
  'host',
  'hostname',
  'server',
  'endpoint',
  'api_base',
  'azure_endpoint',
]);

const ODBC_SERVER = /(?:^|;)\s*(server|data source|host|hostname|address|addr)\s*=\s*([^;]*)/i;
const ODBC_PASSWORD = /(?:^|;)\s*(?:pwd|password)\s*=\s*([^;]*)/di;
const ODBC_PORT = /(?:^|;)\s*port\s*=\s*(\d{1,5})\s*(?:;|$)/i;

interface Frame {
  bracket: '(' | '[' | '{';
  /** Named string arguments met in this call: name token, value token. */
  named: Array<{ name: RToken; value: RToken }>;
  port?: number;
}

/**
 * The R analyzer: tokenizes the file (comments, strings, raw strings, names) and reports URL
 * literals, endpoint arguments (`url =`, `host =`, `server =` …, with a sibling `port =`),
 * ODBC/DBI connection strings, and calls into httr, httr2, curl, RCurl, download.file,
 * url(), socketConnection and DBI/pool connections. Comments never produce a finding; of
 * the probed offsets, returns those inside comments.
 */
export function analyzeR(text: string, probes: readonly number[]): AnalyzerResult {
  const all = tokenizeR(text);
  const comments: Array<[number, number]> = [];
  const tokens: RToken[] = [];
  for (const t of all) {
    if (t.type === 'comment') comments.push([t.start, t.end]);
    else tokens.push(t);
  }
  const loaded = loadedPackages(tokens);
  const hits: Hit[] = [];
  const stack: Frame[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i] as RToken;
    if (t.type === 'string') {
      stringHits(t, hits);
      continue;
    }
    if (t.type === 'name' && tokens[i + 1]?.value === '(') {
      const call = callHit(tokens, i, loaded);
      if (call) hits.push(call);
    }
    if (t.type === 'op') {
      if (t.value === '(' || t.value === '[' || t.value === '{') {
        stack.push({ bracket: t.value, named: [] });
      } else if (t.value === ')' || t.value === ']' || t.value === '}') {
        const frame = stack.pop();
        if (frame?.bracket === '(') argumentHits(frame, hits);
      } else if (t.value === '=' && stack.at(-1)?.bracket === '(') {
        const name = tokens[i - 1];
        const value = tokens[i + 1];
        const frame = stack.at(-1) as Frame;
        if (name?.type === 'name' && value?.type === 'string') frame.named.push({ name, value });
        if (name?.type === 'name' && name.value === 'port' && value?.type === 'number') {
          const port = Number(value.value.replace(/L$/, ''));
          if (Number.isInteger(port) && port > 0 && port <= 65535) frame.port = port;
        }
      }
    }
  }
  const inComments = new RangeSet(comments);
  return { hits, commented: new Set(probes.filter((p) => inComments.has(p))) };
}

/** Packages attached with library()/require()/requireNamespace() or used as `pkg::`. */
function loadedPackages(tokens: RToken[]): Set<string> {
  const loaded = new Set<string>();
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i] as RToken;
    if (t.type !== 'name') continue;
    if (tokens[i + 1]?.value === '::' || tokens[i + 1]?.value === ':::') loaded.add(t.value);
    if (/^(library|require|requireNamespace)$/.test(t.value) && tokens[i + 1]?.value === '(') {
      const arg = tokens[i + 2];
      if (arg && (arg.type === 'name' || arg.type === 'string')) loaded.add(arg.value);
    }
  }
  return loaded;
}

function callHit(tokens: RToken[], i: number, loaded: Set<string>): Hit | null {
  const name = tokens[i] as RToken;
  const info = R_CALLS.get(name.value);
  if (!info) return null;
  const before = tokens[i - 1];
  if (before?.value === '$' || before?.value === '@') return null;
  let start = name.start;
  let shown = name.value;
  if (before?.value === '::' || before?.value === ':::') {
    const pkg = tokens[i - 2];
    if (!pkg || pkg.value !== info.pkg) return null;
    start = pkg.start;
    shown = `${pkg.value}${before.value}${name.value}`;
  } else if (info.needsPackage && !loaded.has(info.pkg)) {
    return null;
  }
  return makeHit('r_network_call', start, name.end, `${shown}(`, null);
}

function stringHits(t: RToken, hits: Hit[]): void {
  const brace = t.value.indexOf('{'); // glue-style interpolation
  const head = brace === -1 ? t.value : t.value.slice(0, brace);
  const endpoint = urlLiteralEndpoint(head, brace !== -1);
  if (endpoint) {
    hits.push(makeHit('r_url_literal', t.start, t.end, shorten(t.value), endpoint));
    return;
  }
  const conn = connectionString(t);
  if (conn) hits.push(conn);
}

/** ODBC / DBI connection strings: `Driver={…};Server=tcp:db.x.org,1433;PWD=…`. */
function connectionString(t: RToken): Hit | null {
  const value = t.value;
  if (!value.includes(';')) return null;
  const server = ODBC_SERVER.exec(value);
  if (!server) return null;
  let host = (server[2] as string)
    .trim()
    .replace(/^tcp:/i, '')
    .replace(/^\{|\}$/g, '');
  let port: number | undefined;
  const comma = /^(.*?),(\d{1,5})$/.exec(host);
  if (comma) {
    host = comma[1] as string;
    port = Number(comma[2]);
  }
  const portKey = ODBC_PORT.exec(value);
  if (portKey) port = Number(portKey[1]);
  const endpoint = endpointArgument(host);
  if (!endpoint) return null;
  const pw = ODBC_PASSWORD.exec(value);
  const pwRange = pw ? ((pw.indices as RegExpIndicesArray)[1] as [number, number]) : null;
  const hasPassword =
    pw !== null && (pw[1] as string).trim() !== '' && !/^[$%{<*]/.test((pw[1] as string).trim());
  return makeHit('r_connection_string', t.start, t.end, shorten(value), endpoint, {
    severity: hasPassword ? 'critical' : 'warning',
    ...(port !== undefined && port > 0 && port <= 65535 ? { port } : {}),
    ...(hasPassword && pwRange
      ? { masks: [[t.valueStart + pwRange[0], t.valueStart + pwRange[1]]] }
      : {}),
  });
}

function argumentHits(frame: Frame, hits: Hit[]): void {
  for (const { name, value } of frame.named) {
    if (!R_ENDPOINT_ARGUMENTS.has(name.value.toLowerCase())) continue;
    const endpoint = endpointArgument(value.value);
    if (!endpoint) continue;
    hits.push(
      makeHit(
        'r_endpoint_argument',
        value.start,
        value.end,
        shorten(`${name.value} = "${value.value}"`),
        endpoint,
        frame.port === undefined ? {} : { port: frame.port },
      ),
    );
  }
}
