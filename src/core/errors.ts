/**
 * One error type for the whole program. Every error carries a stable code; codes become exit
 * codes (here) and HTTP statuses (in the API and the proxy) in one place each.
 */
export const ERROR_CODES = {
  TR_USAGE: 'bad command-line usage',
  TR_CONFIG: 'bad configuration',
  TR_POLICY_INVALID: 'invalid policy file',
  TR_POLICY_CYCLE: 'policy inheritance cycle',
  TR_CA_INSECURE: 'CA key file permissions are too open',
  TR_CA_INVALID: 'CA files are unreadable or inconsistent',
  TR_STORE: 'the store failed',
  TR_STORE_UNAVAILABLE: 'the store cannot be written',
  TR_SEAL_OPEN: 'a sealed value could not be opened',
  TR_KEY: 'key material is missing or invalid',
  TR_NOT_FOUND: 'not found',
  TR_UPSTREAM_TLS: 'upstream TLS verification failed',
  TR_UPSTREAM_CONNECT: 'upstream connection failed',
  TR_UPSTREAM_DNS: 'upstream name resolution failed',
  TR_UPSTREAM_PROTOCOL: 'upstream sent malformed HTTP',
  TR_IDENTITY_MISMATCH: 'request identity does not match the tunnel',
  TR_BAD_REQUEST: 'malformed request',
  TR_LOOP: 'request would loop back into TrustRun',
  TR_PROCESS: 'process not found or not accessible',
  TR_INTERNAL: 'internal error',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class TrustRunError extends Error {
  readonly code: ErrorCode;
  /** Extra line for the user: what to do about it. */
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; hint?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TrustRunError';
    this.code = code;
    this.hint = options.hint;
  }
}

export function isTrustRunError(err: unknown, code?: ErrorCode): err is TrustRunError {
  return err instanceof TrustRunError && (code === undefined || err.code === code);
}

/** What a file system error says about a path the user gave (no such directory, a file in the way, ...). */
const PATH_CODES: Record<string, string> = {
  ENOENT: 'no such file or directory',
  ENOTDIR: 'a part of the path is not a directory',
  EISDIR: 'is a directory',
  EEXIST: 'already exists',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
};

/** A Node file system error naming a path, or null. */
function pathError(err: unknown): { code: string; path: string; syscall: string } | null {
  const e = err as NodeJS.ErrnoException | null;
  if (!(e instanceof Error) || typeof e.path !== 'string' || typeof e.code !== 'string')
    return null;
  return Object.hasOwn(PATH_CODES, e.code)
    ? { code: e.code, path: e.path, syscall: e.syscall ?? 'use' }
    : null;
}

/** Usage and input mistakes exit 2; everything else that stops a command exits 1. */
export function exitCodeFor(err: unknown): number {
  // A path that does not fit (a missing directory for -o, a file where a directory should be);
  // permission errors stay 1, like other failures of the machine rather than of the input.
  const p = pathError(err);
  if (p !== null) return ['ENOENT', 'ENOTDIR', 'EISDIR', 'EEXIST'].includes(p.code) ? 2 : 1;
  if (!(err instanceof TrustRunError)) return 1;
  switch (err.code) {
    case 'TR_USAGE':
    case 'TR_CONFIG':
    case 'TR_POLICY_INVALID':
    case 'TR_POLICY_CYCLE':
    case 'TR_CA_INSECURE':
    case 'TR_NOT_FOUND':
    case 'TR_PROCESS':
      return 2;
    default:
      return 1;
  }
}

/** A one-line message for a person; never a stack trace for a TrustRunError. */
export function formatError(err: unknown): string {
  if (err instanceof TrustRunError) {
    return err.hint ? `${err.message}\n  ${err.hint}` : err.message;
  }
  const p = pathError(err);
  if (p !== null) return `cannot ${p.syscall} ${p.path}: ${p.code} (${PATH_CODES[p.code]})`;
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}
