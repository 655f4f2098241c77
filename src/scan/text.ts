/** Positions and display text: line index, context lines, masking of secrets. */

export class LineIndex {
  /** Offset of the first character of each line. */
  private readonly starts: number[];

  constructor(private readonly text: string) {
    const starts = [0];
    for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) starts.push(i + 1);
    this.starts = starts;
  }

  /** 0-based line number of an offset. */
  lineOf(offset: number): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.starts[mid] as number) <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** 1-based line and column of an offset. */
  position(offset: number): { line: number; column: number } {
    const line = this.lineOf(offset);
    return { line: line + 1, column: offset - (this.starts[line] as number) + 1 };
  }

  lineStart(line0: number): number {
    return this.starts[line0] ?? this.text.length;
  }

  /** The line's text without its line break. */
  lineText(line0: number): string {
    const start = this.lineStart(line0);
    const next = this.starts[line0 + 1];
    let end = next === undefined ? this.text.length : next - 1;
    if (end > start && this.text.charCodeAt(end - 1) === 13) end--;
    return this.text.slice(start, end);
  }
}

/**
 * Hides a secret: a known prefix (`sk-proj-`, `ghp_`, `AKIA`…) or, for long values, the
 * first four characters stay visible so a person can tell which secret it is; short values
 * (passwords) are hidden whole.
 */
export function maskSecret(value: string): string {
  const known =
    /^(sk-(?:proj|svcacct|admin)-|sk-|github_pat_|gh[pousr]_|xox[a-z]-|AKIA|ASIA|AIza|eyJ)/.exec(
      value,
    );
  if (known) return known[0] + '…';
  return value.length >= 16 ? value.slice(0, 4) + '…' : '***';
}

/**
 * Replaces the masked ranges (absolute offsets) that fall inside [from, to) of `text` with
 * their masked form.
 */
export function applyMasks(
  text: string,
  from: number,
  to: number,
  masks: Array<[number, number]>,
): string {
  const inside = masks
    .filter(([s, e]) => s < to && e > from)
    .map(([s, e]): [number, number] => [Math.max(s, from), Math.min(e, to)])
    .sort((a, b) => a[0] - b[0]);
  if (inside.length === 0) return text.slice(from, to);
  let out = '';
  let at = from;
  for (const [s, e] of inside) {
    if (s < at) continue;
    out += text.slice(at, s) + maskSecret(text.slice(s, e));
    at = e;
  }
  return out + text.slice(at, to);
}

const CONTEXT_MAX = 200;

/**
 * The trimmed source line around a match; a long line (minified code) is cut to a window
 * around the match, marked with '…'. Secrets are masked.
 */
export function contextLine(
  text: string,
  index: LineIndex,
  line0: number,
  matchStart: number,
  masks: Array<[number, number]>,
): string {
  const start = index.lineStart(line0);
  const raw = index.lineText(line0);
  let from = start;
  let to = start + raw.length;
  while (from < to && /\s/.test(text[from] as string)) from++;
  while (to > from && /\s/.test(text[to - 1] as string)) to--;
  let prefix = '';
  let suffix = '';
  if (to - from > CONTEXT_MAX) {
    const winFrom = Math.max(from, Math.min(matchStart - 60, to - CONTEXT_MAX));
    const winTo = Math.min(to, winFrom + CONTEXT_MAX);
    if (winFrom > from) prefix = '…';
    if (winTo < to) suffix = '…';
    from = winFrom;
    to = winTo;
  }
  return prefix + applyMasks(text, from, to, masks) + suffix;
}

/** Sorted, non-overlapping ranges with a fast "does this offset fall inside one" test. */
export class RangeSet {
  private readonly ranges: Array<[number, number]>;

  constructor(ranges: Array<[number, number]>) {
    this.ranges = [...ranges].sort((a, b) => a[0] - b[0]);
  }

  has(offset: number): boolean {
    let lo = 0;
    let hi = this.ranges.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const [s, e] = this.ranges[mid] as [number, number];
      if (offset < s) hi = mid - 1;
      else if (offset >= e) lo = mid + 1;
      else return true;
    }
    return false;
  }
}
