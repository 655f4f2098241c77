import {
  callNodeAt,
  inComment,
  nodeStartingAt,
  parserFor,
  type SyntaxNode,
  type SyntaxTree,
} from '../treesitter.js';
import type { Hit } from '../types.js';
import {
  endpointArgument,
  makeHit,
  pyRepr,
  shorten,
  urlLiteralEndpoint,
  type AnalyzerResult,
} from './common.js';

/** Keyword arguments whose string value is an endpoint. */
export const PYTHON_ENDPOINT_KWARGS: readonly string[] = [
  'base_url',
  'endpoint',
  'endpoint_url',
  'host',
  'hostname',
  'url',
  'uri',
  'api_base',
  'api_url',
  'server_url',
  'azure_endpoint',
];

const VERBS = ['get', 'post', 'put', 'delete', 'patch', 'head', 'options', 'request'];

/** Fully qualified callables that reach the network (after import aliases are resolved). */
const NETWORK_CALLS: ReadonlySet<string> = new Set([
  ...VERBS.map((v) => `requests.${v}`),
  ...VERBS.map((v) => `httpx.${v}`),
  'httpx.stream',
  'httpx.Client',
  'httpx.AsyncClient',
  'urllib3.request',
  'urllib3.PoolManager',
  'urllib3.ProxyManager',
  'urllib3.HTTPConnectionPool',
  'urllib3.HTTPSConnectionPool',
  'http.client.HTTPConnection',
  'http.client.HTTPSConnection',
  'aiohttp.ClientSession',
  'aiohttp.request',
  'openai.OpenAI',
  'openai.AzureOpenAI',
  'openai.AsyncOpenAI',
  'openai.AsyncAzureOpenAI',
  'boto3.client',
  'boto3.resource',
]);

/** Top-level modules of the calls above: a call can only resolve to them through these. */
const NETWORK_ROOTS = [
  'requests',
  'httpx',
  'urllib',
  'urllib3',
  'http',
  'aiohttp',
  'openai',
  'boto3',
];

function isNetworkCall(qualified: string): boolean {
  return NETWORK_CALLS.has(qualified) || /^urllib\.request\.[A-Za-z_]\w*$/.test(qualified);
}

/** Records what each imported name stands for: `import x as y`, `from m import n as k`. */
function recordImport(node: SyntaxNode, aliases: Map<string, string>): void {
  const module =
    node.type === 'import_from_statement' ? node.childForFieldName('module_name') : null;
  if (module && module.type !== 'dotted_name') return; // relative import: the project's own code
  for (const child of node.namedChildren) {
    if (!child || (module && child.startIndex === module.startIndex)) continue;
    let name: SyntaxNode | null = child;
    let alias: SyntaxNode | null = null;
    if (child.type === 'aliased_import') {
      name = child.childForFieldName('name');
      alias = child.childForFieldName('alias');
    }
    if (!name || name.type !== 'dotted_name') continue;
    const full = module ? `${module.text}.${name.text}` : name.text;
    if (alias) aliases.set(alias.text, full);
    else if (module) aliases.set(name.text, full);
    else {
      const top = name.text.split('.')[0] as string;
      aliases.set(top, top);
    }
  }
}

function resolve(dotted: string, aliases: Map<string, string>): string {
  const dot = dotted.indexOf('.');
  const head = dot === -1 ? dotted : dotted.slice(0, dot);
  const target = aliases.get(head);
  return target === undefined ? dotted : target + (dot === -1 ? '' : dotted.slice(dot));
}

interface StringParts {
  /** Source text between the quotes (interpolations included as written). */
  content: string;
  /** Static text before the first interpolation. */
  head: string;
  interpolated: boolean;
}

const STRING_OPEN = /^([rRbBuUfF]{0,2})("""|'''|"|')/;

/** Splits a Python string literal's source text (prefix, quotes, f-string fields). */
export function pythonStringParts(literal: string): StringParts | null {
  const open = STRING_OPEN.exec(literal);
  if (!open) return null;
  const quote = open[2] as string;
  const from = open[0].length;
  const to =
    literal.endsWith(quote) && literal.length >= from + quote.length
      ? literal.length - quote.length
      : literal.length;
  const content = literal.slice(from, to);
  if (!/f/i.test(open[1] as string)) return { content, head: content, interpolated: false };
  const field = /\{(?!\{)/.exec(content.replace(/\{\{/g, '\0\0'));
  return field
    ? { content, head: content.slice(0, field.index), interpolated: true }
    : { content, head: content, interpolated: false };
}

const URL_STRING = /(?<![\w'"])([rRbBuUfF]{0,2})("""|'''|"|')(?:https?|wss?|ftp):\/\//gi;
const KWARG = new RegExp(`(?<![\\w.])(${PYTHON_ENDPOINT_KWARGS.join('|')})\\s*=(?!=)`, 'g');
const IMPORT = /^[ \t]*(?:import|from)[ \t]/gm;
const NETWORK_WORDS = new RegExp(`\\b(?:${NETWORK_ROOTS.join('|')})\\b`);

/**
 * The Python analyzer: parses the file with tree-sitter and reports URL string literals,
 * endpoint keyword arguments and calls into network libraries (import aliases resolved).
 * Of the probed offsets, returns those inside comments and docstrings. A file with nothing
 * to look for is not parsed.
 */
export async function analyzePython(
  text: string,
  probes: readonly number[],
): Promise<AnalyzerResult> {
  const urlCandidates = [...text.matchAll(URL_STRING)];
  const kwargCandidates = [...text.matchAll(KWARG)];
  const network = NETWORK_WORDS.test(text);
  if (
    urlCandidates.length === 0 &&
    kwargCandidates.length === 0 &&
    !network &&
    probes.length === 0
  ) {
    return { hits: [], commented: new Set() };
  }
  const tree = (await parserFor('python')).parse(text);
  if (!tree) return { hits: [], commented: new Set() };
  try {
    const hits = [
      ...urlLiterals(tree, text, urlCandidates),
      ...kwargs(tree, text, kwargCandidates),
    ];
    if (network) hits.push(...calls(tree, text, imports(tree, text)));
    return { hits, commented: new Set(probes.filter((p) => inComment(tree, p))) };
  } finally {
    tree.delete();
  }
}

function imports(tree: SyntaxTree, text: string): Map<string, string> {
  const aliases = new Map<string, string>();
  for (const m of text.matchAll(IMPORT)) {
    const at = m.index + m[0].length - m[0].trimStart().length;
    const node = nodeStartingAt(tree, at, ['import_statement', 'import_from_statement']);
    if (node) recordImport(node, aliases);
  }
  return aliases;
}

function urlLiterals(tree: SyntaxTree, text: string, candidates: RegExpExecArray[]): Hit[] {
  const hits: Hit[] = [];
  for (const m of candidates) {
    const node = nodeStartingAt(tree, m.index, 'string');
    if (!node || inComment(tree, m.index)) continue;
    const parts = pythonStringParts(text.slice(node.startIndex, node.endIndex));
    const endpoint = parts && urlLiteralEndpoint(parts.head, parts.interpolated);
    if (parts && endpoint) {
      hits.push(
        makeHit(
          'python_url_literal',
          node.startIndex,
          node.endIndex,
          shorten(parts.content),
          endpoint,
        ),
      );
    }
  }
  return hits;
}

function kwargs(tree: SyntaxTree, text: string, candidates: RegExpExecArray[]): Hit[] {
  const hits: Hit[] = [];
  for (const m of candidates) {
    const kwarg = nodeStartingAt(tree, m.index, 'keyword_argument');
    const value = kwarg?.childForFieldName('value');
    if (!kwarg || !value || value.type !== 'string') continue;
    const parts = pythonStringParts(text.slice(value.startIndex, value.endIndex));
    if (!parts || parts.interpolated) continue;
    const endpoint = endpointArgument(parts.content);
    if (!endpoint) continue;
    const port = siblingPort(kwarg);
    hits.push(
      makeHit(
        'python_endpoint_kwarg',
        value.startIndex,
        value.endIndex,
        shorten(`${m[1]}=${pyRepr(parts.content)}`),
        endpoint,
        port === undefined ? {} : { port },
      ),
    );
  }
  return hits;
}

/** `port=5432` next to the endpoint argument in the same call. */
function siblingPort(kwarg: SyntaxNode): number | undefined {
  for (const sib of kwarg.parent?.namedChildren ?? []) {
    if (sib?.type !== 'keyword_argument') continue;
    const value = sib.childForFieldName('value');
    if (sib.childForFieldName('name')?.text === 'port' && value?.type === 'integer') {
      const port = Number(value.text);
      if (Number.isInteger(port) && port > 0 && port <= 65535) return port;
    }
  }
  return undefined;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function calls(tree: SyntaxTree, text: string, aliases: Map<string, string>): Hit[] {
  // Local names through which a network call can be reached: the modules themselves (unless
  // rebound by an import) and every alias of something inside them.
  const heads = new Set(NETWORK_ROOTS.filter((r) => !aliases.has(r) || aliases.get(r) === r));
  for (const [local, target] of aliases) {
    if (NETWORK_ROOTS.includes(target.split('.')[0] as string)) heads.add(local);
  }
  if (heads.size === 0) return [];
  const re = new RegExp(
    `(?<![\\w.])(${[...heads].map(escapeRe).join('|')})((?:\\s*\\.\\s*[A-Za-z_]\\w*)*)\\s*\\(`,
    'g',
  );
  const hits: Hit[] = [];
  for (const m of text.matchAll(re)) {
    const dotted = (m[1] as string) + (m[2] as string).replace(/\s+/g, '');
    if (!isNetworkCall(resolve(dotted, aliases))) continue;
    const paren = m.index + m[0].length - 1;
    const call = callNodeAt(tree, paren, m.index, 'function', ['call']);
    const fn = call?.childForFieldName('function');
    if (!fn) continue;
    hits.push(makeHit('python_network_call', fn.startIndex, fn.endIndex, `${dotted}(`, null));
  }
  return hits;
}
