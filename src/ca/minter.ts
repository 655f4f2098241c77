import { createSecureContext, type SecureContext } from 'node:tls';
import { TrustRunError } from '../core/index.js';
import { caSecrets, type CertificateAuthority } from './authority.js';
import { pemEncode } from './der.js';
import { normalizeHost } from './hostname.js';
import { leafTemplate, mintLeaf, processLeafKey, type LeafKey, type LeafTemplate } from './leaf.js';
import { ExpiringLru, TurnQueue } from './lru.js';

export interface LeafMinterOptions {
  /** Most secure contexts kept (default 1000); the least recently used goes first. */
  maxEntries?: number;
  /** How long a context is reused (default 12 hours). */
  ttlMs?: number;
  /**
   * When no `refillSpares()` call comes, how long after a spare context was taken the minter
   * prepares a new one on its own (default 100 ms).
   */
  refillAfterMs?: number;
}

export interface MinterStats {
  /** Certificates signed so far. */
  minted: number;
  /** Calls answered without minting (from the cache, or by joining a mint in progress). */
  hits: number;
  /** Contexts in the cache now. */
  size: number;
}

/** Spare key-only contexts kept ready (see LeafMinter.context). */
const SPARE_CONTEXTS = 2;

export type SniCallback = (
  servername: string,
  cb: (err: Error | null, ctx?: SecureContext) => void,
) => void;

/**
 * Mints leaf certificates signed by the local CA and serves them as TLS secure contexts, one per
 * host, from a bounded cache with an expiry. All leaves share one key generated once per process;
 * concurrent first requests for a host share one mint.
 */
export class LeafMinter {
  private readonly cache: ExpiringLru<SecureContext>;
  private readonly pending = new Map<string, Promise<SecureContext>>();
  private readonly queue = new TurnQueue();
  private minted = 0;
  private hits = 0;
  private readonly spares: SecureContext[] = [];
  private refilling = false;
  private fallback: NodeJS.Timeout | null = null;

  private constructor(
    private readonly template: LeafTemplate,
    private readonly key: LeafKey,
    private readonly ttlMs: number,
    maxEntries: number,
    private readonly refillAfterMs: number,
  ) {
    this.cache = new ExpiringLru(maxEntries);
    for (let i = 0; i < SPARE_CONTEXTS; i++) this.spares.push(this.keyedContext());
  }

  static async create(ca: CertificateAuthority, opts: LeafMinterOptions = {}): Promise<LeafMinter> {
    const maxEntries = opts.maxEntries ?? 1000;
    const ttlMs = opts.ttlMs ?? 12 * 3_600_000;
    const refillAfterMs = opts.refillAfterMs ?? 100;
    if (!Number.isInteger(maxEntries) || maxEntries < 1) {
      throw new TrustRunError(
        'TR_CONFIG',
        `maxEntries must be a whole number of at least 1, got ${maxEntries}`,
      );
    }
    if (!(ttlMs > 0)) throw new TrustRunError('TR_CONFIG', `ttlMs must be positive, got ${ttlMs}`);
    if (!(refillAfterMs >= 0)) {
      throw new TrustRunError(
        'TR_CONFIG',
        `refillAfterMs must be zero or more, got ${refillAfterMs}`,
      );
    }
    const secrets = caSecrets(ca);
    const key = await processLeafKey();
    return new LeafMinter(leafTemplate(secrets, key), key, ttlMs, maxEntries, refillAfterMs);
  }

  /** The TLS context for `hostname` (SNI, CONNECT host or IP literal), minted on first use. */
  async getSecureContext(hostname: string): Promise<SecureContext> {
    const host = normalizeHost(hostname);
    const cached = this.cache.get(host.name, Date.now());
    if (cached) {
      this.hits++;
      return cached;
    }
    const inFlight = this.pending.get(host.name);
    if (inFlight) {
      this.hits++;
      return inFlight;
    }
    const job = this.queue
      .run(async () => {
        const leaf = await mintLeaf(this.template, host);
        return { ctx: this.context(leaf.certDer), notAfter: leaf.notAfter.getTime() };
      })
      .then(({ ctx, notAfter }) => {
        this.minted++;
        this.cache.set(host.name, ctx, Math.min(Date.now() + this.ttlMs, notAfter));
        return ctx;
      })
      .finally(() => this.pending.delete(host.name));
    this.pending.set(host.name, job);
    return job;
  }

  /**
   * A secure context serving `certDer` with the shared leaf key. Making a context and loading
   * the key into it is most of the cost of a new host (OpenSSL 3 builds and decodes slowly: a
   * millisecond or more); contexts that already hold the key are prepared ahead, so a new host
   * only loads its certificate.
   */
  private context(certDer: Buffer): SecureContext {
    const ctx = this.spares.pop() ?? this.keyedContext();
    (ctx.context as { setCert(pem: string): void }).setCert(pemEncode('CERTIFICATE', certDer));
    this.refillLater();
    return ctx;
  }

  private keyedContext(): SecureContext {
    return createSecureContext({ key: this.key.keyPem, minVersion: 'TLSv1.2' });
  }

  /**
   * Tops the spare contexts up now, one per turn of the event loop. Call it when this thread has
   * a quiet moment: the proxy does once a tunnel's exchange is over. A context is minted just
   * before its TLS handshake, and the client's ClientHello arrives a millisecond or two later:
   * refilling right after the mint would put a millisecond or more of key loading in front of
   * that handshake. Without a call, the spares are topped up `refillAfterMs` after one was taken.
   */
  refillSpares(): void {
    if (this.spares.length >= SPARE_CONTEXTS) return;
    if (this.fallback) {
      clearTimeout(this.fallback);
      this.fallback = null;
    }
    this.refillStep();
  }

  /** Spares in stock (at most SPARE_CONTEXTS). */
  get spareCount(): number {
    return this.spares.length;
  }

  private refillLater(): void {
    if (this.fallback || this.refilling || this.spares.length >= SPARE_CONTEXTS) return;
    this.fallback = setTimeout(() => {
      this.fallback = null;
      this.refillStep();
    }, this.refillAfterMs);
    this.fallback.unref();
  }

  private refillStep(): void {
    if (this.refilling || this.spares.length >= SPARE_CONTEXTS) return;
    this.refilling = true;
    setImmediate(() => {
      this.refilling = false;
      if (this.spares.length < SPARE_CONTEXTS) this.spares.push(this.keyedContext());
      this.refillStep();
    }).unref();
  }

  /** A function to pass as `SNICallback` to `tls.createServer` / `new tls.TLSSocket`. */
  sniCallback(): SniCallback {
    return (servername, cb) => {
      this.getSecureContext(servername).then(
        (ctx) => cb(null, ctx),
        (err: unknown) => cb(err instanceof Error ? err : new Error(String(err))),
      );
    };
  }

  stats(): MinterStats {
    return { minted: this.minted, hits: this.hits, size: this.cache.size };
  }
}
