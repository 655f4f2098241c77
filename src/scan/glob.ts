/**
 * `--exclude` patterns, in the manner of .gitignore:
 * - a pattern without '/' is matched against the name of every file and directory
 *   (`skip.py`, `*.min.js`, `fixtures`);
 * - a pattern with '/' is matched against the whole path relative to the scanned directory
 *   (`src/vendor/**`, `docs/*.md`, `**\/generated/*.py`); a leading '/' or './' is ignored;
 * - a trailing '/' matches directories only;
 * - `*` matches within one path segment, `**` across segments, `?` one character,
 *   `[abc]` / `[!abc]` a character class, `{a,b}` alternatives, `\` escapes.
 * An excluded directory is not entered.
 */
export interface ExcludeMatcher {
  /** `rel` is the '/'-separated path relative to the root. */
  excludes(rel: string, isDir: boolean): boolean;
}

interface CompiledGlob {
  re: RegExp;
  /** Matched against the base name rather than the whole path. */
  basename: boolean;
  dirOnly: boolean;
}

export function compileExcludes(patterns: readonly string[]): ExcludeMatcher {
  const globs = patterns.filter((p) => p.trim() !== '').map(compileGlob);
  return {
    excludes(rel: string, isDir: boolean): boolean {
      const base = rel.slice(rel.lastIndexOf('/') + 1);
      return globs.some((g) => (!g.dirOnly || isDir) && g.re.test(g.basename ? base : rel));
    },
  };
}

export function compileGlob(pattern: string): CompiledGlob {
  let p = pattern.trim();
  const dirOnly = p.endsWith('/');
  p = p.replace(/\/+$/, '').replace(/^\.\//, '');
  const anchored = p.startsWith('/');
  p = p.replace(/^\/+/, '');
  const basename = !anchored && !p.includes('/');
  return { re: new RegExp('^' + globToRegex(p) + '$'), basename, dirOnly };
}

/** Translates a glob into the body of a regular expression. */
export function globToRegex(glob: string): string {
  let out = '';
  let braceDepth = 0;
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === '\\' && i + 1 < glob.length) {
      out += escapeRe(glob[++i] as string);
    } else if (c === '*') {
      if (glob[i + 1] === '*') {
        const atStart = i === 0 || glob[i - 1] === '/';
        let j = i + 2;
        while (glob[j] === '*') j++;
        if (atStart && glob[j] === '/') {
          out += '(?:.*/)?'; // `**/` : zero or more whole segments
          i = j;
        } else if (atStart && j === glob.length) {
          out += '.*'; // trailing `/**` : everything below
          i = j - 1;
        } else {
          out += '.*';
          i = j - 1;
        }
      } else {
        out += '[^/]*';
      }
    } else if (c === '?') {
      out += '[^/]';
    } else if (c === '[') {
      const close = glob.indexOf(']', i + 2);
      if (close === -1) {
        out += '\\[';
      } else {
        let body = glob.slice(i + 1, close);
        const negate = body.startsWith('!') || body.startsWith('^');
        if (negate) body = body.slice(1);
        out += (negate ? '[^' : '[') + body.replace(/[\\\]^]/g, '\\$&') + ']';
        i = close;
      }
    } else if (c === '{') {
      braceDepth++;
      out += '(?:';
    } else if (c === '}' && braceDepth > 0) {
      braceDepth--;
      out += ')';
    } else if (c === ',' && braceDepth > 0) {
      out += '|';
    } else {
      out += escapeRe(c);
    }
  }
  // Unbalanced '{': close the groups so the expression stays valid.
  return out + ')'.repeat(braceDepth);
}

function escapeRe(c: string): string {
  return /[.*+?^${}()|[\]\\/]/.test(c) ? '\\' + c : c;
}
