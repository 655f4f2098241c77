/**
 * A policy file's YAML, parsed with positions, so every error can name FILE:LINE:COL.
 */
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Document } from 'yaml';
import { TrustRunError, type ErrorCode } from '../core/index.js';

export type PathSegment = string | number;

export interface PolicySource {
  /** The file as shown in messages. */
  file: string;
  doc: Document;
  lineCounter: LineCounter;
  /** The document as plain data. */
  value: unknown;
}

export interface Position {
  line: number;
  col: number;
}

/** `rules[2].ports[0]` */
export function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const seg of path) {
    out += typeof seg === 'number' ? `[${seg}]` : out === '' ? seg : `.${seg}`;
  }
  return out;
}

/** One line: `FILE:LINE:COL: what (path)`. */
export function policyError(
  file: string,
  pos: Position,
  what: string,
  path?: readonly PathSegment[],
  code: ErrorCode = 'TR_POLICY_INVALID',
): TrustRunError {
  const where = path && path.length > 0 ? ` (${formatPath(path)})` : '';
  return new TrustRunError(code, `${file}:${pos.line}:${pos.col}: ${what}${where}`);
}

/** Parses YAML text; a syntax error becomes a TR_POLICY_INVALID naming its position. */
export function readYaml(text: string, file: string): PolicySource {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const first = doc.errors[0];
  if (first) {
    const what = first.message.split('\n')[0] ?? 'YAML syntax error';
    const detail = first.code === 'DUPLICATE_KEY' ? 'duplicate key' : `YAML syntax error: ${what}`;
    throw policyError(file, lineCounter.linePos(first.pos[0]), detail);
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    const what = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw policyError(file, { line: 1, col: 1 }, `YAML could not be read: ${what}`);
  }
  return { file, doc, lineCounter, value };
}

interface Ranged {
  range?: [number, number, number] | null;
}

function start(node: unknown): number | null {
  const range = (node as Ranged | null)?.range;
  return range ? range[0] : null;
}

/**
 * Position of the node at `path`, or of the nearest enclosing node that exists (a missing key
 * points at its map). With `key`, the position of that key inside the map at `path`.
 */
export function positionOf(
  src: PolicySource,
  path: readonly PathSegment[],
  key?: string,
): Position {
  let node: unknown = src.doc.contents;
  let pos = start(node) ?? 0;
  const segments = key === undefined ? path : [...path, key];
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i] as PathSegment;
    const lastIsKey = key !== undefined && i === segments.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) break;
      const keyPos = start(pair.key);
      const value = pair.value;
      const valuePos = start(value);
      if (lastIsKey || valuePos === null || (isScalar(value) && value.value === null)) {
        pos = keyPos ?? pos;
        node = lastIsKey ? value : null;
        if (!lastIsKey) break;
        continue;
      }
      node = value;
      pos = valuePos;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg];
      const itemPos = start(item);
      if (itemPos === null) break;
      node = item;
      pos = itemPos;
    } else {
      break;
    }
  }
  return src.lineCounter.linePos(pos);
}
