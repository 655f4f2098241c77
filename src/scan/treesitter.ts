import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type * as TreeSitter from '@vscode/tree-sitter-wasm';

/**
 * Tree-sitter (WebAssembly build) with the Python, JavaScript, TypeScript and TSX grammars,
 * all from one package so the runtime and the grammars share an ABI. Loaded once, lazily.
 *
 * Every call into the WebAssembly module costs a crossing, so the analyzers do not walk
 * whole trees: candidates found in the text (a quote followed by `https://`, `name(`,
 * `name=`, `import`) are checked against the syntax node found at their offset, and a file
 * with no candidate is not parsed at all.
 */
export type Grammar = 'python' | 'javascript' | 'typescript' | 'tsx';
export type SyntaxNode = TreeSitter.Node;
export type SyntaxTree = TreeSitter.Tree;

const require = createRequire(import.meta.url);

let runtime: Promise<typeof TreeSitter> | null = null;
const parsers = new Map<Grammar, Promise<TreeSitter.Parser>>();

function loadRuntime(): Promise<typeof TreeSitter> {
  runtime ??= (async () => {
    const ts = require('@vscode/tree-sitter-wasm') as typeof TreeSitter;
    await ts.Parser.init();
    return ts;
  })();
  return runtime;
}

function wasmPath(grammar: Grammar): string {
  return join(dirname(require.resolve('@vscode/tree-sitter-wasm')), `tree-sitter-${grammar}.wasm`);
}

/** The parser for a grammar (one per grammar, reused: parsing is synchronous). */
export function parserFor(grammar: Grammar): Promise<TreeSitter.Parser> {
  let p = parsers.get(grammar);
  if (!p) {
    p = (async () => {
      const ts = await loadRuntime();
      const parser = new ts.Parser();
      parser.setLanguage(await ts.Language.load(wasmPath(grammar)));
      return parser;
    })();
    parsers.set(grammar, p);
  }
  return p;
}

/**
 * True when the offset lies in a comment, or (Python) in a docstring: a statement that is
 * only a string.
 */
export function inComment(tree: SyntaxTree, offset: number): boolean {
  let node: SyntaxNode | null = tree.rootNode.descendantForIndex(offset, offset);
  for (let depth = 0; node && depth < 4; depth++, node = node.parent) {
    if (node.type === 'comment' || node.type === 'html_comment') return true;
    if (node.type === 'string') {
      let outer: SyntaxNode = node;
      if (outer.parent?.type === 'concatenated_string') outer = outer.parent;
      const stmt = outer.parent;
      return stmt?.type === 'expression_statement' && stmt.namedChildCount === 1;
    }
  }
  return false;
}

/** The innermost node of the given type that starts exactly at `start`, if any. */
export function nodeStartingAt(
  tree: SyntaxTree,
  start: number,
  type: string | readonly string[],
  end = start + 1,
): SyntaxNode | null {
  const types = typeof type === 'string' ? [type] : type;
  let node: SyntaxNode | null = tree.rootNode.descendantForIndex(start, Math.max(start, end - 1));
  while (node && node.startIndex === start) {
    if (types.includes(node.type)) return node;
    node = node.parent;
  }
  return null;
}

/** Offsets of the parenthesis that opens a call's arguments, after `name … (`. */
export function callNodeAt(
  tree: SyntaxTree,
  paren: number,
  calleeStart: number,
  calleeField: 'function' | 'constructor',
  callTypes: readonly string[],
): SyntaxNode | null {
  const open = tree.rootNode.descendantForIndex(paren, paren);
  const args = open?.parent;
  const call = args?.parent;
  if (!open || open.type !== '(' || !args || !call || !callTypes.includes(call.type)) return null;
  const callee = call.childForFieldName(calleeField);
  return callee && callee.startIndex === calleeStart ? call : null;
}
