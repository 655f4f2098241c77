/**
 * Shell-style globs for host names and request paths: `*` is any run of characters (it crosses
 * dots and slashes), `?` one character, `[abc]`, `[a-z]` and `[!abc]` a character set.
 */

/** Characters a host glob may contain. */
const HOST_GLOB_CHARS = /^[a-z0-9.\-_*?[\]!]+$/i;

/** Returns an error text, or null when `pattern` is a usable host glob. */
export function hostGlobError(pattern: string): string | null {
  if (pattern.length === 0) return 'is empty';
  if (pattern.includes('://'))
    return 'looks like a URL; write only the host name (e.g. api.example.com)';
  if (/^[^:]+:\d+$/.test(pattern)) return 'has a port in it; list ports under "ports:" instead';
  if (!HOST_GLOB_CHARS.test(pattern)) {
    return 'is not a host name, glob, IP address or CIDR (a host glob may use letters, digits, ".", "-", "_", "*", "?" and [sets])';
  }
  return setSyntaxError(pattern);
}

/** Returns an error text, or null when `pattern` is a usable path glob. */
export function pathGlobError(pattern: string): string | null {
  if (!pattern.startsWith('/') && !pattern.startsWith('*')) return 'must start with "/"';
  if (/\s/.test(pattern)) return 'must not contain spaces';
  return setSyntaxError(pattern);
}

function setSyntaxError(pattern: string): string | null {
  let i = 0;
  while (i < pattern.length) {
    const c = pattern[i];
    if (c === '[') {
      const close = pattern.indexOf(']', i + (pattern[i + 1] === '!' ? 3 : 2));
      if (close < 0) return 'has a "[" without a matching "]"';
      i = close + 1;
    } else if (c === ']') {
      return 'has a "]" without a matching "["';
    } else {
      i++;
    }
  }
  try {
    new RegExp(globSource(pattern));
  } catch {
    return 'has a character set that is not valid (e.g. a reversed range like [z-a])';
  }
  return null;
}

/** Whether a glob has any wildcard or set. */
export function isLiteral(pattern: string): boolean {
  return !/[*?[]/.test(pattern);
}

/** Regex source (anchored) for a glob that `hostGlobError`/`pathGlobError` accepted. */
export function globSource(pattern: string): string {
  let out = '^';
  let i = 0;
  while (i < pattern.length) {
    const c = pattern[i] as string;
    if (c === '*') {
      while (pattern[i + 1] === '*') i++;
      out += '.*';
      i++;
    } else if (c === '?') {
      out += '.';
      i++;
    } else if (c === '[') {
      const negate = pattern[i + 1] === '!';
      const start = i + (negate ? 2 : 1);
      const close = pattern.indexOf(']', start + 1);
      const body = pattern.slice(start, close).replace(/[\\\]^]/g, '\\$&');
      out += `[${negate ? '^' : ''}${body}]`;
      i = close + 1;
    } else {
      out += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
      i++;
    }
  }
  return out + '$';
}

/** A compiled host glob: matched against a lower-cased host. */
export function compileHostGlob(pattern: string): RegExp {
  return new RegExp(globSource(pattern.toLowerCase()), 's');
}

/** Compiles path globs (case-sensitive) into one alternation. */
export function compilePathGlobs(patterns: readonly string[]): RegExp {
  return new RegExp(patterns.map((p) => `(?:${globSource(p)})`).join('|'), 's');
}
