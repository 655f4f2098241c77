/**
 * API credentials: the long-lived bearer token in `<dataDir>/api-token` (0600, made on first
 * start), one-time link tokens, and the browser sessions they are exchanged for.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, openSync, readFileSync, statSync, writeSync, closeSync } from 'node:fs';
import { TrustRunError, dataPaths, ensurePrivateDir } from '../core/index.js';

const TOKEN_RE = /^[A-Za-z0-9_-]{32,128}$/;
export const ONE_TIME_TTL_MS = 15 * 60_000;
export const BROWSER_SESSION_TTL_MS = 12 * 3600_000;

export function randomToken(): string {
  return randomBytes(32).toString('base64url');
}

/** Equal in constant time (hashes first, so lengths do not leak either). */
export function safeEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

/** Reads `<dataDir>/api-token`, creating it (0600) when missing; refuses a group/other-readable one. */
export function loadOrCreateApiToken(dataDir: string): string {
  ensurePrivateDir(dataDir);
  const file = dataPaths(dataDir).apiToken;
  try {
    const fd = openSync(file, 'wx', 0o600);
    try {
      writeSync(fd, `${randomToken()}\n`);
    } finally {
      closeSync(fd);
    }
    chmodSync(file, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new TrustRunError('TR_CONFIG', `cannot create ${file}: ${(err as Error).message}`);
    }
  }
  const mode = statSync(file).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new TrustRunError(
      'TR_CONFIG',
      `${file} is readable by others (mode ${mode.toString(8)})`,
      { hint: `run: chmod 600 '${file}'` },
    );
  }
  const token = readFileSync(file, 'utf8').trim();
  if (!TOKEN_RE.test(token)) {
    throw new TrustRunError('TR_CONFIG', `${file} does not hold a valid API token`, {
      hint: 'delete it and restart to make a new one',
    });
  }
  return token;
}

/** In-memory one-time link tokens and browser sessions. */
export class Credentials {
  private readonly oneTime = new Map<string, number>();
  private readonly sessions = new Map<string, number>();

  constructor(
    private readonly apiToken: string,
    private readonly now: () => number = Date.now,
  ) {}

  bearerOk(token: string): boolean {
    return safeEqual(token, this.apiToken);
  }

  /** A token for one exchange within ONE_TIME_TTL_MS. */
  issueOneTime(): string {
    this.prune();
    const t = randomToken();
    this.oneTime.set(hash(t), this.now() + ONE_TIME_TTL_MS);
    return t;
  }

  /** Consumes a one-time token; returns a new browser session secret, or null. */
  exchange(token: string): string | null {
    this.prune();
    if (!TOKEN_RE.test(token)) return null;
    const key = hash(token);
    if (!this.oneTime.has(key)) return null;
    this.oneTime.delete(key);
    const session = randomToken();
    this.sessions.set(hash(session), this.now() + BROWSER_SESSION_TTL_MS);
    return session;
  }

  sessionOk(secret: string): boolean {
    if (!TOKEN_RE.test(secret)) return false;
    const until = this.sessions.get(hash(secret));
    return until !== undefined && until > this.now();
  }

  endSession(secret: string): void {
    this.sessions.delete(hash(secret));
  }

  private prune(): void {
    const t = this.now();
    for (const [k, until] of this.oneTime) if (until <= t) this.oneTime.delete(k);
    for (const [k, until] of this.sessions) if (until <= t) this.sessions.delete(k);
  }
}

/** Map keys are hashes: a timing side channel on Map lookups reveals nothing usable. */
function hash(t: string): string {
  return createHash('sha256').update(t).digest('hex');
}
