/**
 * Request paths are normalised before path globs see them, the way some server will read them:
 * the query and fragment are dropped, percent-encoded unreserved characters are decoded
 * (`%61dmin` is `admin`), an encoded slash or backslash and a backslash are a slash
 * (`/admin%2fy`, `/admin\y`), `;parameters` are dropped from each segment (`/admin;x/y`, as
 * Tomcat and Spring read it), the path ends at an encoded NUL (`/admin%00.html`), repeated
 * slashes are one (`//admin`, as nginx merges them), and `.`/`..` segments are resolved
 * (`/v1/../admin` is `/admin`). So a rule on `/admin/*` cannot be stepped around by spelling the
 * path differently. Reading a path more broadly than a given server does can only make a path
 * rule match more often: a block rule blocks every spelling, and an allow rule's prefix cannot
 * be escaped with `..` hidden in one.
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

export function normalizePath(raw: string): string {
  let p = raw;
  const cut = p.search(/[?#]/);
  if (cut >= 0) p = p.slice(0, cut);
  if (p.indexOf('%') >= 0) {
    const nul = p.indexOf('%00');
    if (nul >= 0) p = p.slice(0, nul);
    p = decodeUnreserved(p).replace(/%2F|%5C/g, '/');
  }
  if (p.indexOf('\\') >= 0) p = p.replace(/\\/g, '/');
  if (p.indexOf(';') >= 0) p = p.replace(/;[^/]*/g, '');
  if (p === '' || p[0] !== '/') p = '/' + p;
  if (p.indexOf('//') >= 0) p = p.replace(/\/{2,}/g, '/');
  if (p.indexOf('/.') >= 0) p = removeDotSegments(p);
  return p;
}
