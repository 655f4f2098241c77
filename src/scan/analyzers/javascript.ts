import {
  callNodeAt,
  inComment,
  nodeStartingAt,
  parserFor,
  type Grammar,
  type SyntaxNode,
  type SyntaxTree,
} from '../treesitter.js';
import type { Hit } from '../types.js';
import {
  endpointArgument,
  makeHit,
  shorten,
  urlLiteralEndpoint,
  type AnalyzerResult,
} from './common.js';

/** Object properties whose string value is an endpoint (compared without regard to case). */
export const JS_ENDPOINT_PROPERTIES: readonly string[] = [
  'baseurl',
  'base_url',
  'endpoint',
  'endpointurl',
  'endpoint_url',
  'apibase',
  'api_base',
  'apiurl',
  'api_url',
  'azureendpoint',
  'azure_endpoint',
  'serverurl',
  'server_url',
  'host',
  'hostname',
  'url',
  'uri',
];

const AXIOS_VERBS = [
  'get',
  'post',
  'put',
  'delete',
  'patch',
  'head',
  'options',
  'request',
  'create',
];

/** Fully qualified callables (after imports are resolved) that reach the network. */
const NETWORK_CALLS: ReadonlySet<string> = new Set([
  'fetch',
  'node-fetch',
  'cross-fetch',
  'axios',
  ...AXIOS_VERBS.map((v) => `axios.${v}`),
  'http.request',
  'http.get',
  'https.request',
  'https.get',
  'http2.connect',
  'undici.fetch',
  'undici.request',
  'undici.stream',
  'undici.pipeline',
  'undici.connect',
]);

/** Constructors (with `new`) that reach the network. */
const NETWORK_CONSTRUCTORS: ReadonlySet<string> = new Set([
  'XMLHttpRequest',
  'WebSocket',
  'EventSource',
  'undici.Client',
  'undici.Pool',
  'undici.Agent',
  'openai',
  'openai.OpenAI',
  'openai.AzureOpenAI',
]);

/** Names through which a network call can be reached without an import. */
const GLOBAL_HEADS = [
  'fetch',
  'axios',
  'http',
  'https',
  'http2',
  'undici',
  'XMLHttpRequest',
  'WebSocket',
  'EventSource',
];
const GLOBAL_OBJECTS = /^(?:window|globalThis|self)\./;

const NETWORK_MODULES = new Set([
  'axios',
  'http',
  'https',
  'http2',
  'undici',
  'node-fetch',
  'cross-fetch',
  'openai',
]);

export function grammarForExtension(ext: string): Grammar {
  if (ext === '.tsx') return 'tsx';
  if (ext === '.ts' || ext === '.mts' || ext === '.cts') return 'typescript';
  return 'javascript';
}

function moduleName(spec: string): string {
  return spec.replace(/^node:/, '');
}

/** The text of a plain string literal (no `${}`), else null. */
function stringValue(node: SyntaxNode | null | undefined, text: string): string | null {
  if (!node || (node.type !== 'string' && node.type !== 'template_string')) return null;
  const body = text.slice(node.startIndex + 1, node.endIndex - 1);
  return node.type === 'template_string' && body.includes('${') ? null : body;
}

function recordImport(node: SyntaxNode, text: string, aliases: Map<string, string>): void {
  const spec = stringValue(node.childForFieldName('source'), text);
  if (spec === null) return;
  const mod = moduleName(spec);
  const clause = node.namedChildren.find((c) => c?.type === 'import_clause');
  for (const part of clause?.namedChildren ?? []) {
    if (!part) continue;
    if (part.type === 'identifier') aliases.set(part.text, mod);
    else if (part.type === 'namespace_import') {
      const id = part.namedChildren.find((c) => c?.type === 'identifier');
      if (id) aliases.set(id.text, mod);
    } else if (part.type === 'named_imports') {
      for (const s of part.namedChildren) {
        if (s?.type !== 'import_specifier') continue;
        const name = s.childForFieldName('name');
        const alias = s.childForFieldName('alias') ?? name;
        if (name && alias)
          aliases.set(alias.text, name.text === 'default' ? mod : `${mod}.${name.text}`);
      }
    }
  }
}

const REQUIRE = /(?<![\w$.])require\s*\(\s*(['"`])([^'"`\n]+)\1\s*\)/g;

/** `const x = require('m')`, `const { a, b: c } = require('m')`, `require('m').default`. */
function recordRequires(tree: SyntaxTree, text: string, aliases: Map<string, string>): void {
  for (const m of text.matchAll(REQUIRE)) {
    let node = nodeStartingAt(tree, m.index, 'call_expression');
    if (!node) continue;
    const mod = moduleName(m[2] as string);
    if (
      node.parent?.type === 'member_expression' &&
      node.parent.childForFieldName('property')?.text === 'default'
    ) {
      node = node.parent;
    }
    const decl = node.parent;
    if (
      decl?.type !== 'variable_declarator' ||
      decl.childForFieldName('value')?.startIndex !== node.startIndex
    )
      continue;
    const name = decl.childForFieldName('name');
    if (name?.type === 'identifier') aliases.set(name.text, mod);
    if (name?.type !== 'object_pattern') continue;
    for (const p of name.namedChildren) {
      if (p?.type === 'shorthand_property_identifier_pattern')
        aliases.set(p.text, `${mod}.${p.text}`);
      else if (p?.type === 'pair_pattern') {
        const key = p.childForFieldName('key');
        const value = p.childForFieldName('value');
        if (key && value?.type === 'identifier') aliases.set(value.text, `${mod}.${key.text}`);
      }
    }
  }
}

function resolve(dotted: string, aliases: Map<string, string>): string {
  const plain = dotted.replace(GLOBAL_OBJECTS, '');
  const dot = plain.indexOf('.');
  const head = dot === -1 ? plain : plain.slice(0, dot);
  const target = aliases.get(head);
  return target === undefined ? plain : target + (dot === -1 ? '' : plain.slice(dot));
}

const URL_STRING = /(["'`])(?:https?|wss?|ftp):\/\//gi;
const PROPERTY = new RegExp(
  `(?<![\\w$])(["']?)(${JS_ENDPOINT_PROPERTIES.join('|')})\\1\\s*:`,
  'gi',
);
const XHR_OPEN =
  /(?<![\w$])([\w$]+(?:\s*\??\.\s*[\w$]+)*)\s*\??\.\s*open\s*\(\s*(['"])(GET|POST|PUT|DELETE|PATCH|HEAD|OPTIONS)\2/gi;

const IMPORT = /(?<![\w$.])import[\s{*]/g;
const NETWORK_WORDS =
  /\b(?:fetch|axios|https?|http2|undici|XMLHttpRequest|WebSocket|EventSource|openai|\.open)\b/;

/**
 * The JavaScript/TypeScript analyzer: tree-sitter parse (javascript, typescript or tsx
 * grammar); URL string and template literals, endpoint properties in object literals, and
 * calls into fetch, axios, node's http/https/http2, undici, XMLHttpRequest, WebSocket,
 * EventSource and the OpenAI client, with imports and require() resolved. Of the probed
 * offsets, returns those inside comments. A file with nothing to look for is not parsed.
 */
export async function analyzeJavaScript(
  text: string,
  grammar: Grammar,
  probes: readonly number[],
): Promise<AnalyzerResult> {
  const urlCandidates = [...text.matchAll(URL_STRING)];
  const propertyCandidates = [...text.matchAll(PROPERTY)];
  const network = NETWORK_WORDS.test(text);
  if (
    urlCandidates.length === 0 &&
    propertyCandidates.length === 0 &&
    !network &&
    probes.length === 0
  ) {
    return { hits: [], commented: new Set() };
  }
  const tree = (await parserFor(grammar)).parse(text);
  if (!tree) return { hits: [], commented: new Set() };
  try {
    const hits = [
      ...urlLiterals(tree, text, urlCandidates),
      ...properties(tree, text, propertyCandidates),
    ];
    if (network) {
      const aliases = new Map<string, string>();
      for (const m of text.matchAll(IMPORT)) {
        const node = nodeStartingAt(tree, m.index, 'import_statement');
        if (node) recordImport(node, text, aliases);
      }
      if (text.includes('require')) recordRequires(tree, text, aliases);
      hits.push(...calls(tree, text, aliases), ...xhrOpens(tree, text));
    }
    return { hits, commented: new Set(probes.filter((p) => inComment(tree, p))) };
  } finally {
    tree.delete();
  }
}

function urlLiterals(tree: SyntaxTree, text: string, candidates: RegExpExecArray[]): Hit[] {
  const hits: Hit[] = [];
  for (const m of candidates) {
    const node = nodeStartingAt(tree, m.index, ['string', 'template_string']);
    if (!node) continue;
    const body = text.slice(node.startIndex + 1, node.endIndex - 1);
    const sub = node.type === 'template_string' ? body.indexOf('${') : -1;
    const endpoint = urlLiteralEndpoint(sub === -1 ? body : body.slice(0, sub), sub !== -1);
    if (endpoint)
      hits.push(makeHit('js_url_literal', node.startIndex, node.endIndex, shorten(body), endpoint));
  }
  return hits;
}

function properties(tree: SyntaxTree, text: string, candidates: RegExpExecArray[]): Hit[] {
  const hits: Hit[] = [];
  for (const m of candidates) {
    const pair = nodeStartingAt(tree, m.index, 'pair');
    const value = pair?.childForFieldName('value');
    const str = stringValue(value, text);
    const endpoint = str === null ? null : endpointArgument(str);
    if (!pair || !value || !endpoint) continue;
    const port = siblingPort(pair);
    const key = m[2] as string;
    hits.push(
      makeHit(
        'js_endpoint_property',
        value.startIndex,
        value.endIndex,
        shorten(`${key}: ${text.slice(value.startIndex, value.endIndex)}`),
        endpoint,
        port === undefined ? {} : { port },
      ),
    );
  }
  return hits;
}

function siblingPort(pair: SyntaxNode): number | undefined {
  for (const sib of pair.parent?.namedChildren ?? []) {
    if (sib?.type !== 'pair' || sib.childForFieldName('key')?.text !== 'port') continue;
    const value = sib.childForFieldName('value');
    const port = value?.type === 'number' ? Number(value.text) : NaN;
    if (Number.isInteger(port) && port > 0 && port <= 65535) return port;
  }
  return undefined;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function calls(tree: SyntaxTree, text: string, aliases: Map<string, string>): Hit[] {
  const heads = new Set(
    GLOBAL_HEADS.filter((h) => !aliases.has(h) || NETWORK_MODULES.has(aliases.get(h) as string)),
  );
  for (const [local, target] of aliases) {
    if (NETWORK_MODULES.has(target.split('.')[0] as string)) heads.add(local);
  }
  const re = new RegExp(
    `(?<![\\w$.])(new\\s+)?((?:(?:window|globalThis|self)\\s*\\.\\s*)?(?:${[...heads].map(escapeRe).join('|')}))((?:\\s*\\??\\.\\s*[\\w$]+)*)\\s*\\(`,
    'g',
  );
  const hits: Hit[] = [];
  for (const m of text.matchAll(re)) {
    const isNew = m[1] !== undefined;
    const dotted = ((m[2] as string) + (m[3] as string)).replace(/\s+|\?/g, '');
    const qualified = resolve(dotted, aliases);
    if (!(isNew ? NETWORK_CONSTRUCTORS : NETWORK_CALLS).has(qualified)) continue;
    const calleeStart = m.index + (m[1]?.length ?? 0);
    const paren = m.index + m[0].length - 1;
    const call = isNew
      ? callNodeAt(tree, paren, calleeStart, 'constructor', ['new_expression'])
      : callNodeAt(tree, paren, calleeStart, 'function', ['call_expression']);
    if (!call) continue;
    const calleeEnd = (call.childForFieldName(isNew ? 'constructor' : 'function') as SyntaxNode)
      .endIndex;
    hits.push(
      isNew
        ? makeHit('js_network_call', call.startIndex, calleeEnd, `new ${dotted}(`, null)
        : makeHit('js_network_call', calleeStart, calleeEnd, `${dotted}(`, null),
    );
  }
  return hits;
}

/** XMLHttpRequest: `xhr.open("GET", url)`. */
function xhrOpens(tree: SyntaxTree, text: string): Hit[] {
  const hits: Hit[] = [];
  for (const m of text.matchAll(XHR_OPEN)) {
    const call = nodeStartingAt(tree, m.index, 'call_expression');
    const fn = call?.childForFieldName('function');
    const arg = call?.childForFieldName('arguments')?.namedChildren[0];
    if (!call || !fn || fn.type !== 'member_expression' || !arg || arg.type !== 'string') continue;
    const shown = `${text.slice(fn.startIndex, fn.endIndex).replace(/\s+/g, '')}(${text.slice(arg.startIndex, arg.endIndex)}`;
    hits.push(makeHit('js_network_call', fn.startIndex, arg.endIndex, shown, null));
  }
  return hits;
}
