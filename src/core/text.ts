/**
 * Recorded text made safe for a terminal: control characters (but line feeds and tabs), DEL, C1
 * controls and the bidirectional overrides become visible `\xNN` / `\uNNNN` escapes. A hostile
 * client or upstream could otherwise retitle the terminal, erase lines or reorder what a
 * reviewer reads (`ESC]0;…`, `ESC[2K`, U+202E).
 */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, escape);
}

/**
 * One recorded field (a file name, a command line) made safe for one line of a report: as
 * `printable`, and line feeds and tabs escaped too, so that it cannot forge report lines.
 */
export function oneLine(text: string): string {
  return text.replace(UNPRINTABLE_IN_LINE, escape);
}

const UNPRINTABLE =
  /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
const UNPRINTABLE_IN_LINE =
  /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/g;

function escape(c: string): string {
  const n = c.charCodeAt(0);
  return n <= 0xff
    ? `\\x${n.toString(16).padStart(2, '0')}`
    : `\\u${n.toString(16).padStart(4, '0')}`;
}
