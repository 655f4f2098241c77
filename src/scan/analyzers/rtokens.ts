/**
 * A small R tokenizer: enough of R's lexical grammar to tell comments, strings (including
 * raw strings, R >= 4.0), names, numbers and operators apart. Whitespace is dropped.
 */
export type RTokenType = 'comment' | 'string' | 'name' | 'number' | 'op';

export interface RToken {
  type: RTokenType;
  start: number;
  end: number;
  /** For strings: the text between the quotes; otherwise the token's text. */
  value: string;
  /** Offset where `value` starts in the file (after the opening quote for strings). */
  valueStart: number;
}

const NAME_START = /[A-Za-z.\p{L}]/u;
const NAME_CHAR = /[A-Za-z0-9._\p{L}\p{N}]/u;
const OPERATORS = [
  '<<-',
  '->>',
  ':::',
  '::',
  '<-',
  '->',
  '|>',
  '==',
  '!=',
  '<=',
  '>=',
  '&&',
  '||',
  '**',
];

export function tokenizeR(text: string): RToken[] {
  const tokens: RToken[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i] as string;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f') {
      i++;
      continue;
    }
    const start = i;
    if (c === '#') {
      const nl = text.indexOf('\n', i);
      i = nl === -1 ? n : nl;
      tokens.push({
        type: 'comment',
        start,
        end: i,
        value: text.slice(start, i),
        valueStart: start,
      });
      continue;
    }
    // Raw string: r"(...)", R'[...]', r"---{...}---"
    if ((c === 'r' || c === 'R') && (text[i + 1] === '"' || text[i + 1] === "'")) {
      const raw = /^[rR](["'])(-*)([([{])/.exec(text.slice(i, i + 200));
      if (raw) {
        const quote = raw[1] as string;
        const dashes = raw[2] as string;
        const close = { '(': ')', '[': ']', '{': '}' }[raw[3] as '(' | '[' | '{'];
        const terminator = close + dashes + quote;
        const bodyStart = i + raw[0].length;
        const endAt = text.indexOf(terminator, bodyStart);
        const bodyEnd = endAt === -1 ? n : endAt;
        i = endAt === -1 ? n : endAt + terminator.length;
        tokens.push({
          type: 'string',
          start,
          end: i,
          value: text.slice(bodyStart, bodyEnd),
          valueStart: bodyStart,
        });
        continue;
      }
    }
    if (c === '"' || c === "'") {
      i++;
      while (i < n && text[i] !== c) i += text[i] === '\\' ? 2 : 1;
      const bodyEnd = Math.min(i, n);
      i = Math.min(i + 1, n);
      tokens.push({
        type: 'string',
        start,
        end: i,
        value: text.slice(start + 1, bodyEnd),
        valueStart: start + 1,
      });
      continue;
    }
    if (c === '`') {
      const close = text.indexOf('`', i + 1);
      i = close === -1 ? n : close + 1;
      tokens.push({
        type: 'name',
        start,
        end: i,
        value: text.slice(start + 1, close === -1 ? n : close),
        valueStart: start + 1,
      });
      continue;
    }
    if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(text[i + 1] ?? ''))) {
      const m = /^(?:0[xX][0-9a-fA-F]+|[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)[Li]?/.exec(
        text.slice(i, i + 100),
      );
      i += m ? m[0].length : 1;
      tokens.push({
        type: 'number',
        start,
        end: i,
        value: text.slice(start, i),
        valueStart: start,
      });
      continue;
    }
    if (NAME_START.test(c)) {
      i++;
      while (i < n && NAME_CHAR.test(text[i] as string)) i++;
      tokens.push({ type: 'name', start, end: i, value: text.slice(start, i), valueStart: start });
      continue;
    }
    if (c === '%') {
      const close = text.indexOf('%', i + 1);
      const nl = text.indexOf('\n', i + 1);
      i = close !== -1 && (nl === -1 || close < nl) ? close + 1 : i + 1;
      tokens.push({ type: 'op', start, end: i, value: text.slice(start, i), valueStart: start });
      continue;
    }
    const op = OPERATORS.find((o) => text.startsWith(o, i)) ?? c;
    i += op.length;
    tokens.push({ type: 'op', start, end: i, value: op, valueStart: start });
  }
  return tokens;
}
