/**
 * Redaction of JSON that does not parse: a body cut off at --max-body (every FHIR Bundle over
 * the limit), or one with tokens JSON does not allow (`NaN`, single quotes, trailing commas).
 * The text patterns alone miss what only the structure says (`"password": ["…"]`, a FHIR
 * `name`), so the text is read as far as it goes by a parser that never fails: an unfinished
 * string, object or array ends where the text ends, a bare word is a value, a stray character
 * is skipped. The value read is walked by the same JsonRedactor as valid JSON, and each string,
 * number or word it changed is replaced in place: the text shown is the original one, cut where
 * it was cut, with only the masked values changed.
 */
import { JsonRedactor, JsonTooDeep, MAX_JSON_DEPTH, type Json } from './json.js';
import { redactTextInto } from './text.js';
import { Applied, marker } from './types.js';

interface Span {
  start: number;
  end: number;
}

type Node =
  | { t: 'leaf'; span: Span; value: Json }
  | { t: 'none' }
  | { t: 'arr'; items: Node[] }
  | { t: 'obj'; entries: Entry[] };

interface Entry {
  key: string;
  keySpan: Span;
  node: Node;
  /** A key seen before in the same object: the walk sees only the first one. */
  dup: boolean;
}

const NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;
/** A bare word: up to a bracket, colon, comma, quote or white space. */
const WORD = /[^{}[\]:,"'\s]*/y;
const ESCAPES: Record<string, string> = {
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
};

function define(o: Record<string, Json>, key: string, value: Json): void {
  // `__proto__` as an own key, as JSON.parse makes it.
  Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
}

class Reader {
  private i = 0;
  /** Where the next backslash is (-1: none left; smaller than `i`: to be looked up). */
  private backslash = -2;

  constructor(private readonly s: string) {}

  /** Every top-level value (more than one: they are read as one array). */
  all(): { value: Json; node: Node } {
    const values: Json[] = [];
    const nodes: Node[] = [];
    while ((this.skip(), this.i < this.s.length)) {
      const start = this.i;
      const v = this.value(0);
      if (v) {
        values.push(v[0]);
        nodes.push(v[1]);
      }
      if (this.i === start) this.i++; // a stray closing bracket, colon or comma
    }
    if (values.length === 1) return { value: values[0]!, node: nodes[0]! };
    return { value: values, node: { t: 'arr', items: nodes } };
  }

  private skip(): void {
    const s = this.s;
    while (this.i < s.length) {
      const c = s[this.i];
      if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === ',') this.i++;
      else break;
    }
  }

  /** A value at the reader's place, or null when there is none (end, or a closing bracket). */
  private value(depth: number): [Json, Node] | null {
    this.skip();
    if (this.i >= this.s.length) return null;
    const c = this.s[this.i];
    if (c === '{' || c === '[') {
      if (depth >= MAX_JSON_DEPTH) throw new JsonTooDeep('JSON nested too deeply');
      return c === '{' ? this.object(depth + 1) : this.array(depth + 1);
    }
    if (c === '"' || c === "'") {
      const [text, span] = this.string();
      return [text, { t: 'leaf', span, value: text }];
    }
    if (c === '}' || c === ']' || c === ':') return null;
    const [word, span] = this.word();
    const value: Json =
      word === 'true'
        ? true
        : word === 'false'
          ? false
          : word === 'null'
            ? null
            : NUMBER.test(word)
              ? Number(word)
              : word;
    return [value, { t: 'leaf', span, value }];
  }

  private word(): [string, Span] {
    const start = this.i;
    WORD.lastIndex = start;
    WORD.test(this.s);
    this.i = Math.max(WORD.lastIndex, start);
    return [this.s.slice(start, this.i), { start, end: this.i }];
  }

  /** A quoted string, unfinished when the text ends first. */
  private string(): [string, Span] {
    const s = this.s;
    const start = this.i;
    const quote = s[this.i++]!;
    let out = '';
    for (;;) {
      const q = s.indexOf(quote, this.i);
      // The next backslash, found once and kept: searching for it from every string would go
      // to the end of a text that has none, for each string.
      if (this.backslash !== -1 && this.backslash < this.i)
        this.backslash = s.indexOf('\\', this.i);
      const b = this.backslash;
      if (b === -1 || (q !== -1 && q < b)) {
        if (q === -1) {
          out += s.slice(this.i);
          this.i = s.length;
          return [out, { start, end: s.length }];
        }
        out += s.slice(this.i, q);
        this.i = q + 1;
        return [out, { start, end: this.i }];
      }
      out += s.slice(this.i, b);
      this.i = b + 1;
      if (this.i >= s.length) return [out, { start, end: s.length }];
      const e = s[this.i++]!;
      if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(s.slice(this.i, this.i + 4))) {
        out += String.fromCharCode(parseInt(s.slice(this.i, this.i + 4), 16));
        this.i += 4;
      } else {
        out += ESCAPES[e] ?? e;
      }
    }
  }

  private object(depth: number): [Json, Node] {
    this.i++;
    const value: Record<string, Json> = {};
    const entries: Entry[] = [];
    for (;;) {
      this.skip();
      if (this.i >= this.s.length) break;
      const c = this.s[this.i];
      if (c === '}' || c === ']') {
        this.i++;
        break;
      }
      if (c === ':') {
        this.i++;
        continue;
      }
      let key: string;
      let keySpan: Span;
      if (c === '{' || c === '[') {
        // A value where a key belongs: kept under the empty key.
        const v = this.value(depth)!;
        key = '';
        keySpan = { start: this.i, end: this.i };
        this.add(value, entries, key, keySpan, v);
        continue;
      }
      if (c === '"' || c === "'") [key, keySpan] = this.string();
      else [key, keySpan] = this.word();
      this.skip();
      let v: [Json, Node] | null = null;
      if (this.s[this.i] === ':') {
        this.i++;
        v = this.value(depth);
      }
      this.add(value, entries, key, keySpan, v ?? [null, { t: 'none' }]);
    }
    return [value, { t: 'obj', entries }];
  }

  private add(
    value: Record<string, Json>,
    entries: Entry[],
    key: string,
    keySpan: Span,
    [v, node]: [Json, Node],
  ): void {
    const dup = Object.hasOwn(value, key);
    if (!dup) define(value, key, v);
    entries.push({ key, keySpan, node, dup });
  }

  private array(depth: number): [Json, Node] {
    this.i++;
    const value: Json[] = [];
    const items: Node[] = [];
    for (;;) {
      this.skip();
      if (this.i >= this.s.length) break;
      const c = this.s[this.i];
      if (c === ']' || c === '}') {
        this.i++;
        break;
      }
      if (c === ':') {
        this.i++;
        continue;
      }
      const v = this.value(depth)!;
      value.push(v[0]);
      items.push(v[1]);
    }
    return [value, { t: 'arr', items }];
  }
}

interface Replacement extends Span {
  text: string;
}

function isRecord(v: Json | undefined): v is Record<string, Json> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

class Splicer {
  readonly out: Replacement[] = [];

  constructor(
    private readonly text: string,
    private readonly applied: Applied,
    private readonly location: string,
  ) {}

  /** Every string, number and word under `node` becomes a marker of `kind` (quoted). */
  maskAll(node: Node, kind: string): void {
    if (node.t === 'leaf') {
      if (typeof node.value === 'string' || typeof node.value === 'number') {
        this.out.push({ ...node.span, text: JSON.stringify(marker(kind)) });
        this.applied.add(kind, this.location);
      }
    } else if (node.t === 'arr') {
      for (const item of node.items) this.maskAll(item, kind);
    } else if (node.t === 'obj') {
      for (const e of node.entries) this.maskAll(e.node, kind);
    }
  }

  /** Compares what was read with what the walk made of it, and records each change. */
  diff(node: Node, shown: Json | undefined): void {
    if (node.t === 'none') return;
    if (shown === undefined) {
      this.maskAll(node, 'unpaired');
      return;
    }
    if (node.t === 'leaf') {
      if (!Object.is(node.value, shown)) {
        // A bare word stays bare: prose read as words is shown as prose.
        const quoted = this.text[node.span.start] === '"' || this.text[node.span.start] === "'";
        const text = !quoted && typeof shown === 'string' ? shown : JSON.stringify(shown);
        this.out.push({ ...node.span, text });
      }
      return;
    }
    if (node.t === 'arr') {
      const items = Array.isArray(shown) ? shown : [];
      node.items.forEach((item, i) => this.diff(item, items[i]));
      return;
    }
    const o = isRecord(shown) ? shown : {};
    for (const e of node.entries) {
      if (e.dup) {
        this.maskAll(e.node, 'duplicate-key');
        continue;
      }
      // A key the walk kept is in its output under the same name (a key it masked is renamed,
      // and never to another key of the same object).
      if (Object.hasOwn(o, e.key)) {
        this.diff(e.node, o[e.key]);
        continue;
      }
      // The key itself held PHI: masked (the walk counted it), and its value with it (a clash
      // may have numbered the renamed key: the value is not looked up).
      const key = redactTextInto(e.key, new Applied(), this.location);
      this.out.push({ ...e.keySpan, text: JSON.stringify(key) });
      this.maskAll(e.node, 'unpaired');
    }
  }
}

/**
 * Redacts JSON text that JSON.parse refused, by its structure as far as it can be read; null
 * when it is nested too deeply (the caller then uses the text patterns alone).
 */
export function redactLenientJson(text: string, applied: Applied, location: string): string | null {
  let read: { value: Json; node: Node };
  let shown: Json;
  try {
    read = new Reader(text).all();
    shown = new JsonRedactor(applied, `${location}:`).walk(read.value);
  } catch (err) {
    if (err instanceof JsonTooDeep || err instanceof RangeError) return null;
    throw err;
  }
  const splicer = new Splicer(text, applied, location);
  splicer.diff(read.node, shown);
  const cuts = splicer.out.sort((a, b) => a.start - b.start);
  let out = '';
  let at = 0;
  for (const c of cuts) {
    if (c.start < at) continue;
    out += text.slice(at, c.start) + c.text;
    at = c.end;
  }
  out += text.slice(at);
  // What the structure did not reach (prose around the values) still gets the text patterns.
  return redactTextInto(out, applied, location);
}
