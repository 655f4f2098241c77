/**
 * Request paths are read two ways before path globs see them, because servers disagree on
 * what a path means:
 *
 * - the **strict** reading, the way every server reads it: the query and fragment dropped,
 *   percent-encoded unreserved characters decoded (`%61dmin` is `admin`), `.`/`..` segments
 *   resolved (`/v1/../admin` is `/admin`);
 * - the **broad** reading adds what some servers do: an encoded slash or backslash, and a
 *   backslash, are a slash (`/admin%2fy`, `/admin\y`), `;parameters` are dropped from each
 *   segment (`/admin;x/y`, as Tomcat and Spring read it), the path ends at an encoded NUL
 *   (`/admin%00.png`), and repeated slashes are one (`//admin`, as nginx merges them).
 *
 * A rule that refuses or flags (block, kill, alert) matches when either reading matches it; an
 * allow rule only when both do (its patterns read the broad way too, so `/a%2Fb/*` still
 * allows `/a%2Fb/x`). So no spelling steps around a block rule, and no spelling widens an allow
 * rule (`/public/x%00/../../admin` is `/admin` in the strict reading).
 */

const UNRESERVED = /[A-Za-z0-9\-._~]/;

function decodeUnreserved(p: string): string {
  return p.replace(/%([0-9A-Fa-f]{2})/g, (all, hex: string) => {
    const c = String.fromCharCode(parseInt(hex, 16));
    return UNRESERVED.test(c) ? c : all.toUpperCase();
  });
}

/** RFC 3986 section 5.2.4, for an absolute path. */
function removeDotSegments(p: string): string {
  const out: string[] = [];
  const segments = p.split('/');
  for (let i = 1; i < segments.length; i++) {
    const seg = segments[i] as string;
    const last = i === segments.length - 1;
    if (seg === '.') {
      if (last) out.push('');
    } else if (seg === '..') {
      out.pop();
      if (last) out.push('');
    } else {
      out.push(seg);
    }
  }
  return '/' + out.join('/');
}

/** The strict reading of a request path (see above). */
export function normalizePath(raw: string): string {
  let p = raw;
  const cut = p.search(/[?#]/);
  if (cut >= 0) p = p.slice(0, cut);
  if (p === '' || p[0] !== '/') p = '/' + p;
  if (p.indexOf('%') >= 0) p = decodeUnreserved(p);
  if (p.indexOf('/.') >= 0) p = removeDotSegments(p);
  return p;
}

/** The broad reading of a request path (see above). */
export function broadPath(raw: string): string {
  let p = raw;
  const cut = p.search(/[?#]/);
  if (cut >= 0) p = p.slice(0, cut);
  if (p.indexOf('%') >= 0) {
    const nul = p.indexOf('%00');
    if (nul >= 0) p = p.slice(0, nul);
    p = decodeUnreserved(p).replace(/%2F|%5C/g, '/');
  }
  if (p.indexOf('\\') >= 0) p = p.replace(/\\/g, '/');
  p = broadSlashes(p);
  return p.indexOf('/.') >= 0 ? removeDotSegments(p) : p;
}

/**
 * A rule's path glob read the broad way: encoded slashes as slashes, `;parameters` dropped,
 * repeated slashes merged (glob characters are left alone).
 */
export function broadPattern(glob: string): string {
  return broadSlashes(glob.replace(/%2F|%5C/gi, '/'));
}

function broadSlashes(path: string): string {
  let p = path;
  if (p.indexOf(';') >= 0) p = p.replace(/;[^/]*/g, '');
  if (p === '' || p[0] !== '/') p = '/' + p;
  if (p.indexOf('//') >= 0) p = p.replace(/\/{2,}/g, '/');
  return p;
}
