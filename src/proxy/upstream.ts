import { createRequire } from 'node:module';
import {
  TLSSocket,
  createSecureContext,
  rootCertificates,
  type PeerCertificate,
  type SecureContext,
} from 'node:tls';
import type { Agent, buildConnector } from 'undici';
import type { Outcome, Verdict } from '../core/index.js';
import type { Socket } from 'node:net';
import { PreDialer } from './predial.js';
import type { Resolver } from './resolve.js';

/**
 * undici's main entry also loads fetch, WebSocket, EventSource, the caches and the mocks (+20 MB
 * of RSS when imported alone, against +11 MB for these two modules; a proxy after load has about
 * 5 MB less). The proxy needs only the Agent and the connector, loaded from their modules. The
 * paths are not undici's public API, so package.json pins its exact version, and
 * test/unit/proxy/undici.test.ts checks that they are the classes the main entry exports.
 */
const requireUndici = createRequire(import.meta.url);
export const UndiciAgent = requireUndici('undici/lib/dispatcher/agent.js') as typeof Agent;
export const undiciConnector = requireUndici('undici/lib/core/connect.js') as typeof buildConnector;

/**
 * The trust store for upstream servers: the system roots plus --upstream-ca, parsed once. Passing
 * `ca` to every tls.connect instead would make Node build a new secure context (parsing ~140
 * root certificates, tens of milliseconds of CPU) for every upstream connection.
 */
function upstreamTrust(extraCa: string[]): SecureContext {
  return createSecureContext({ ca: [...rootCertificates, ...extraCa] });
}

/**
 * Node's client handshake checks the server's name (after the chain was verified) against
 * `getPeerCertificate(true)`: the whole chain converted to objects with their fingerprints, about
 * 0.33 ms of CPU per connection here against 0.08 ms for the leaf alone, although the check reads
 * only the leaf's subject and alternative names. Until the dial's callback runs, the upstream
 * socket answers that call with the leaf alone; the check itself and its verdict stay Node's.
 * undici's connector returns the socket it creates (test/unit/proxy/upstream.test.ts checks it);
 * anything else is left as it is. Returns what puts the socket's own method back.
 */
export function leafOnlyUntilConnected(socket: unknown): () => void {
  if (!(socket instanceof TLSSocket)) return () => {};
  const leaf = (): PeerCertificate => TLSSocket.prototype.getPeerCertificate.call(socket, false);
  Object.defineProperty(socket, 'getPeerCertificate', { value: leaf, configurable: true });
  return () => Reflect.deleteProperty(socket, 'getPeerCertificate');
}

/**
 * The upstream side: one undici Agent (a keep-alive pool per origin) whose connector dials the
 * address the Resolver chose, verifying the server against the system roots plus --upstream-ca
 * under the original host name. There is no way to turn verification off: the shared secure
 * context only holds the trusted CAs; `rejectUnauthorized` and the host name check stay on.
 *
 * `predial` opens a connection through that same connector ahead of the first request (see
 * PreDialer); when the pool needs a new connection to an origin it takes a pre-dialed one if there
 * is one, and dials otherwise.
 */
export function createUpstream(opts: {
  resolver: Resolver;
  extraCa: string[];
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  /** How long a pre-dialed connection that no request takes stays open. */
  predialIdleMs: number;
  /**
   * Returns why the address must not be dialed (the loop guard, the policy), with the error
   * code the refusal carries, or null. `port` is the one asked for (the policy's); `addressPort`
   * the one dialed (a --resolve rule may change it; the loop guard's).
   */
  guard: (
    host: string,
    port: number,
    address: string,
    addressPort: number,
  ) => { code: string; message: string; verdict?: Verdict } | null;
}): { agent: Agent; predial: PreDialer } {
  const base = undiciConnector({
    secureContext: upstreamTrust(opts.extraCa),
    rejectUnauthorized: true,
    timeout: opts.connectTimeoutMs,
    maxCachedSessions: 1000,
  });
  const dial = (
    options: buildConnector.Options,
    host: string,
    port: number,
    callback: buildConnector.Callback,
  ): void => {
    opts.resolver.resolve(host, port).then(
      (dest) => {
        const refused = opts.guard(host, port, dest.address, dest.port);
        if (refused) {
          const { code, verdict } = refused;
          callback(Object.assign(new Error(refused.message), { code, verdict }), null);
          return;
        }
        // The callback may run before base returns (a connector failing at once): the socket
        // is then done with, and nothing is put on it.
        let settled = false;
        let restore = (): void => {};
        const socket: unknown = base(
          {
            ...options,
            hostname: dest.address,
            port: String(dest.port),
            servername:
              options.servername || (host.includes(':') || /^[\d.]+$/.test(host) ? '' : host),
          },
          (...args) => {
            settled = true;
            restore();
            callback(...args);
          },
        );
        if (!settled) restore = leafOnlyUntilConnected(socket);
      },
      (err: Error) => callback(err, null),
    );
  };
  const predial = new PreDialer((host, port, done) => {
    const authority = `${host.includes(':') ? `[${host}]` : host}:${port}`;
    dial(
      { hostname: host, host: authority, protocol: 'https:', port: String(port) },
      host,
      port,
      (...args) => (args[0] ? done(args[0], null) : done(null, args[1] as Socket)),
    );
  }, opts.predialIdleMs);
  const connect: buildConnector.connector = (options, callback) => {
    const host = options.hostname;
    const port = Number(options.port) || (options.protocol === 'https:' ? 443 : 80);
    const own: buildConnector.Callback = (...args) => {
      if (!args[0]) predial.track(host, port, args[1] as Socket);
      callback(...args);
    };
    const ready = options.protocol === 'https:' ? predial.take(host, port) : null;
    if (!ready) {
      dial(options, host, port, own);
      return;
    }
    void ready.then((socket) => {
      if (socket) callback(null, socket);
      else dial(options, host, port, own);
    });
  };
  const agent = new UndiciAgent({
    connect,
    keepAliveTimeout: 30_000,
    keepAliveMaxTimeout: 120_000,
    headersTimeout: opts.headersTimeoutMs,
    bodyTimeout: opts.headersTimeoutMs,
    connections: 128,
    pipelining: 1,
  });
  return { agent, predial };
}

const TLS_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'INVALID_CA',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'HOSTNAME_MISMATCH',
]);

/** Maps an upstream failure to a stored outcome, an HTTP status and a short reason. */
export function classifyUpstreamError(err: unknown): {
  outcome: Outcome;
  status: number;
  reason: string;
} {
  const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  const inner = e?.cause ?? e;
  const code = String(inner?.code ?? e?.code ?? '');
  const message = String(inner?.message ?? e?.message ?? err);
  if (code === 'TR_LOOP') return { outcome: 'loop', status: 403, reason: message };
  if (code === 'TR_POLICY') return { outcome: 'blocked', status: 403, reason: message };
  if (TLS_CODES.has(code) || /certificate|ssl|tls/i.test(code) || code.startsWith('ERR_SSL')) {
    return {
      outcome: 'upstream_tls',
      status: 502,
      reason: `upstream TLS verification failed: ${code}: ${message}`,
    };
  }
  if (code === 'TR_UPSTREAM_DNS' || code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return { outcome: 'upstream_dns', status: 502, reason: message };
  }
  if (
    code === 'UND_ERR_CONNECT_TIMEOUT' ||
    code === 'UND_ERR_HEADERS_TIMEOUT' ||
    code === 'UND_ERR_BODY_TIMEOUT'
  ) {
    return { outcome: 'upstream_timeout', status: 504, reason: `${code}: ${message}` };
  }
  // undici's parser errors do not always carry an HPE_ code (a bad chunk size has none), its
  // header overflow has its own code, and an unexpected 1xx is a socket error "bad response".
  const name = String(inner?.name ?? e?.name ?? '');
  if (
    code.startsWith('HPE_') ||
    name === 'HTTPParserError' ||
    code === 'UND_ERR_HEADERS_OVERFLOW' ||
    (code === 'UND_ERR_SOCKET' && (message === 'bad response' || message === 'bad upgrade')) ||
    code === 'TR_UPSTREAM_FRAMING' ||
    code === 'UND_ERR_INFO' ||
    code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH'
  ) {
    return {
      outcome: 'upstream_protocol',
      status: 502,
      reason: `malformed upstream response: ${code || name}: ${message}`,
    };
  }
  if (code === 'ECONNREFUSED' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH') {
    return { outcome: 'upstream_connect', status: 502, reason: `${code}: ${message}` };
  }
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE') {
    return { outcome: 'upstream_reset', status: 502, reason: `${code}: ${message}` };
  }
  return { outcome: 'error', status: 502, reason: code ? `${code}: ${message}` : message };
}
