import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import {
  connect as netConnect,
  isIP,
  type AddressInfo,
  type Server as NetServer,
  type Socket,
} from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Duplex } from 'node:stream';
import { TLSSocket, type SecureContext } from 'node:tls';
import type { Agent } from 'undici';
import type { Outcome, Verdict } from '../core/index.js';
import { CLIENT_HELLO_MAX, parseClientHello } from './clienthello.js';
import { handleExchange, type ExchangeEnv } from './exchange.js';
import { isRefusal, refusalBody, type Enforced, type Refusal, type Tunnel } from './flow.js';
import { formatIpv4, parseIp, type Ip } from '../policy/index.js';
import { parseAuthority } from './headers.js';
import { Reclaimer, exposedCollector } from './reclaim.js';
import { Resolver, normalizeHost, type Destination } from './resolve.js';
import type { ClientIdentity, PolicyGate, ProxyDeps, ProxyOptions } from './types.js';
import type { PreDial, PreDialer } from './predial.js';
import { classifyUpstreamError, createUpstream } from './upstream.js';

const TLS_HANDSHAKE = 0x16;

function rawReply(socket: Duplex, status: number, text: string, body = ''): void {
  const b = Buffer.from(body);
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${b.length}\r\nConnection: close\r\nX-TrustRun: refused\r\n\r\n${body}`,
  );
}

/** How long `close` waits for the exchanges under way to record how they ended. */
const CLOSE_WAIT_MS = 2000;

/**
 * The intercepting proxy. One listener answers CONNECT and plain-HTTP proxy requests; decrypted
 * or plain traffic inside tunnels is parsed by a second, listener-less HTTP server. TLS is
 * terminated in-process with one secure context per host from the CA module.
 */
export class InterceptingProxy {
  private readonly outer: Server;
  private readonly inner: Server;
  private readonly agent: Agent;
  private readonly predial: PreDialer;
  private readonly resolver: Resolver;
  private readonly tunnels = new WeakMap<Duplex, Tunnel>();
  private readonly sockets = new Set<Duplex>();
  /** Listening sockets opened elsewhere whose connections this proxy accepts (see adopt()). */
  private readonly adopted = new Set<NetServer>();
  /**
   * Tunnels whose connection record is still open, with the client's TCP socket. `close` ends
   * them itself: a destroyed socket's `close` event comes only after the listener's, i.e. after
   * the caller may have closed the store.
   */
  private readonly open = new Map<Tunnel, Socket>();
  /** Client sockets waiting for their response head (see ExchangeEnv.awaitingHead). */
  private readonly awaitingHead = new WeakSet<object>();
  /** Client sockets whose HTTP broke, with the reason (see ExchangeEnv.clientErrors). */
  private readonly clientErrors = new WeakMap<object, string>();

  /**
   * A client connection idle for the idle limit: closed, as Node does when nothing handles its
   * 'timeout', unless its request is with the upstream (the upstream's own timeout applies).
   */
  private dropped = 0;
  private droppedSaidAt = 0;
  /**
   * Past the connection cap Node closes new connections without a word: the log says so (once
   * a minute at most, with how many since the last line).
   */
  private readonly onDrop = (): void => {
    this.dropped++;
    const now = Date.now();
    if (now - this.droppedSaidAt < 60_000) return;
    this.droppedSaidAt = now;
    this.deps.logger.warn(
      { limit: this.options.limits.maxConnections, dropped: this.dropped },
      'connection limit reached: new client connections are closed unanswered',
    );
    this.dropped = 0;
  };

  private readonly onIdle = (socket: Duplex): void => {
    if (!this.awaitingHead.has(socket)) socket.destroy();
  };

  /** Exchanges under way; `close` lets them record how they ended before it returns. */
  private readonly inFlight = new Set<Promise<void>>();
  private readonly localAddresses = new Set<string>();
  private policyGate: PolicyGate | null;
  /**
   * Local ports never dialled: the proxy's own (once listening), the options' `guardPorts`, and
   * any added by `guardPort`.
   */
  private readonly guarded: Set<number>;
  private readonly env: ExchangeEnv;

  constructor(
    readonly options: ProxyOptions,
    private readonly deps: ProxyDeps,
  ) {
    if (options.level !== 'metadata' && !deps.contexts) {
      throw new Error('the headers and full levels need a certificate source');
    }
    this.guarded = new Set(options.guardPorts);
    this.policyGate = deps.policy;
    this.resolver = new Resolver(options.resolve);
    const upstream = createUpstream({
      resolver: this.resolver,
      extraCa: options.upstreamCa,
      connectTimeoutMs: options.limits.upstreamConnectTimeoutMs,
      headersTimeoutMs: options.limits.upstreamHeadersTimeoutMs,
      predialIdleMs: options.limits.predialIdleMs,
      guard: (host, port, address, addressPort) =>
        this.dialProblem(host, port, address, addressPort),
    });
    this.agent = upstream.agent;
    this.predial = upstream.predial;
    const httpOptions = {
      maxHeaderSize: options.limits.maxHeaderBytes,
      headersTimeout: options.limits.headersTimeoutMs,
      requestTimeout: 0,
      keepAliveTimeout: 30_000,
      requireHostHeader: true,
      joinDuplicateHeaders: false,
      // How often Node looks for requests whose headers are late (default 30 s, which lets a
      // 30 s limit run to nearly 60).
      connectionsCheckingInterval: 1_000,
    };
    this.outer = createServer(httpOptions);
    this.outer.maxConnections = options.limits.maxConnections;
    this.outer.on('drop', this.onDrop);
    this.outer.timeout = options.limits.idleTimeoutMs;
    this.outer.on('connect', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.onConnect(req, socket, head).catch((err: unknown) => this.internalError(socket, err));
    });
    this.outer.on('request', (req: IncomingMessage, res: ServerResponse) =>
      this.onProxyRequest(req, res),
    );
    this.outer.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) =>
      this.onClientError(err, socket),
    );
    this.outer.on('timeout', this.onIdle);
    this.outer.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });

    this.inner = createServer(httpOptions);
    this.inner.timeout = options.limits.idleTimeoutMs;
    this.inner.on('timeout', this.onIdle);
    // The inner server never listens (tunnels are handed to it): Node starts checking its
    // connections' header timeout on 'listening', so that is emitted here. Without it a client
    // inside a tunnel could send one header line every few seconds for ever.
    this.inner.emit('listening');
    this.inner.on('request', (req: IncomingMessage, res: ServerResponse) => {
      const tunnel = this.tunnels.get(req.socket);
      if (!tunnel) {
        res.destroy();
        return;
      }
      this.track(handleExchange(this.env, tunnel, req, res), (err) => {
        this.deps.logger.error({ err: String(err) }, 'request handling failed');
        res.destroy();
      });
    });
    this.inner.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) =>
      this.onClientError(err, socket),
    );
    // A CONNECT inside a tunnel (a proxy chained in the client): refused, and the tunnel's
    // record says why. Without a listener Node closes the socket without a word.
    this.inner.on('connect', (_req: IncomingMessage, socket: Duplex) => {
      const reason = 'CONNECT inside a tunnel is not supported';
      const tunnel = this.tunnels.get(socket);
      if (tunnel) tunnel.failure = { outcome: 'bad_request', reason };
      this.deps.logger.warn({ host: tunnel?.host }, 'CONNECT inside a tunnel refused');
      rawReply(socket, 405, 'Method Not Allowed', `TrustRun refused this request: ${reason}\n`);
    });

    this.env = {
      options,
      deps,
      agent: this.agent,
      policy: () => this.policyGate,
      violation: (tunnel, verdict, enforced, requestId, method) =>
        this.recordViolation(tunnel, verdict, enforced, requestId, method),
      enforce: (tunnel, verdict) => this.enforce(tunnel, verdict),
      relayed: deps.relayed ?? new Reclaimer(exposedCollector()).note,
      awaitingHead: this.awaitingHead,
      clientErrors: this.clientErrors,
    };
  }

  /**
   * An exchange (its response written) or a tunnel is over: nothing of it waits on this thread
   * any more, so the certificate source may prepare for the next new host now, rather than in
   * front of a client's TLS handshake.
   */
  private readonly quietMoment = (): void => {
    this.deps.contexts?.refillSpares?.();
  };

  /** Starts listening; resolves with the bound address. */
  listen(): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.outer.once('error', reject);
      this.outer.listen(this.options.port, this.options.host, () => {
        this.outer.off('error', reject);
        const addr = this.outer.address() as AddressInfo;
        this.guarded.add(addr.port);
        this.collectLocalAddresses(addr.address);
        resolve(addr);
      });
    });
  }

  /**
   * Accepts the connections of a socket that listens elsewhere as its own, under a cap of the same size
   * (`run --isolate`: the command's network namespace has only that socket, opened there and
   * handed over). Closed with the proxy.
   */
  adopt(listener: NetServer): void {
    listener.maxConnections = this.options.limits.maxConnections;
    listener.on('drop', this.onDrop);
    listener.on('connection', (socket: Socket) => this.outer.emit('connection', socket));
    this.adopted.add(listener);
  }

  get address(): AddressInfo {
    return this.outer.address() as AddressInfo;
  }

  /** Adds a local port the proxy must never connect to (a server bound after the proxy). */
  guardPort(port: number): void {
    this.guarded.add(port);
  }

  /** Swaps the policy in place (SIGHUP reload); connections already decided keep their verdict. */
  setPolicy(policy: PolicyGate | null): void {
    this.policyGate = policy;
  }

  get policy(): PolicyGate | null {
    return this.policyGate;
  }

  async close(): Promise<void> {
    for (const listener of this.adopted) listener.close();
    await new Promise<void>((resolve) => {
      this.outer.close(() => resolve());
      for (const s of this.sockets) s.destroy();
      this.outer.closeAllConnections();
      this.inner.closeAllConnections();
    });
    // Stops the connection checks 'listening' started on the inner server (it never listened).
    this.inner.close(() => undefined);
    for (const [tunnel, raw] of this.open) this.finishConnection(tunnel, raw);
    // The client sockets are gone, so each exchange ends now (its relay is cancelled); a bound
    // keeps a stuck one from holding the shutdown.
    if (this.inFlight.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled(this.inFlight),
        new Promise((r) => (timer = setTimeout(r, CLOSE_WAIT_MS))),
      ]);
      clearTimeout(timer);
    }
    this.predial.close();
    await this.agent.close().catch(() => undefined);
  }

  /**
   * Keeps an exchange in `inFlight` until it ends, then tells the certificate source that this
   * thread has a quiet moment; `failed` handles an exchange that threw.
   */
  private track(exchange: Promise<void>, failed: (err: unknown) => void): void {
    this.inFlight.add(exchange);
    exchange.then(
      () => {
        this.inFlight.delete(exchange);
        this.quietMoment();
      },
      (err: unknown) => {
        this.inFlight.delete(exchange);
        this.quietMoment();
        failed(err);
      },
    );
  }

  private collectLocalAddresses(bound: string): void {
    const add = (a: string) => {
      const ip = parseIp(a);
      this.localAddresses.add(ip === null ? a : ipKey(ip));
    };
    add(bound);
    for (const list of Object.values(networkInterfaces())) {
      for (const a of list ?? []) add(a.address);
    }
  }

  /** The policy's connection-level refusal of host:port (at `ip`, when known), or null. */
  private connectRefusal(host: string, port: number, ip: string | null): Refusal | null {
    const v = this.policyGate?.evaluateConnect({ host, port, ip });
    return v !== undefined && v !== 'per-request' && isRefusal(v) ? v : null;
  }

  /** Carries out a refusal (a kill terminates the client) and says what its record holds. */
  private enforce(tunnel: Tunnel, verdict: Refusal): Enforced {
    return verdict.action === 'kill'
      ? { outcome: 'killed', reason: this.carryOutKill(tunnel, verdict) }
      : { outcome: 'blocked', reason: verdict.explanation };
  }

  /**
   * The loop / SSRF guard: never dial our own listener or the API. The address is compared as
   * an address, not as text: `::ffff:7f00:1`, `0:0:0:0:0:0:0:1` and `127.1.2.3` are all this
   * machine.
   */
  private loopProblem(address: string, port: number): string | null {
    if (!this.guarded.has(port)) return null;
    const ip = parseIp(address);
    const local =
      ip === null
        ? this.localAddresses.has(address)
        : isLoopbackOrUnspecified(ip) || this.localAddresses.has(ipKey(ip));
    return local ? `refusing to connect to TrustRun's own port ${address}:${port}` : null;
  }

  /**
   * Checked for every upstream connection, with the address it is about to dial: the loop guard,
   * and the policy's connection-level verdict for that address. A name looked up again after
   * its verdict (the resolver keeps an answer for 30 s) may now point somewhere the policy
   * refuses, e.g. an address an IP or CIDR rule blocks; such a dial is refused.
   */
  private dialProblem(
    host: string,
    port: number,
    address: string,
    addressPort: number,
  ): { code: string; message: string; verdict?: Verdict } | null {
    const loop = this.loopProblem(address, addressPort);
    if (loop) return { code: 'TR_LOOP', message: loop };
    const v = this.connectRefusal(host, port, address);
    if (v !== null) {
      return {
        code: 'TR_POLICY',
        message: `${host} resolved to ${address}, which the policy refuses: ${v.explanation}`,
        verdict: v,
      };
    }
    return null;
  }

  private storeRefuses(): boolean {
    return !this.deps.recorder.healthy && this.options.onStoreError === 'fail';
  }

  private internalError(socket: Duplex, err: unknown): void {
    this.deps.logger.error({ err: String(err) }, 'CONNECT handling failed');
    if (!socket.destroyed) socket.destroy();
  }

  private onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    const tunnel = this.tunnels.get(socket);
    const code = err.code ?? 'ERR';
    // The client hung up in the middle of a request (its body, its headers): not malformed
    // HTTP, and nothing left to answer.
    if (code === 'HPE_INVALID_EOF_STATE' || code === 'ECONNRESET' || code === 'EPIPE') {
      if (tunnel?.connectionId) {
        tunnel.failure ??= { outcome: 'client_abort', reason: 'client closed mid-request' };
      }
      socket.destroy();
      return;
    }
    const reason = `malformed HTTP from client: ${code}`;
    if (tunnel?.connectionId) tunnel.failure = { outcome: 'bad_request', reason };
    this.clientErrors.set(socket, reason);
    this.deps.logger.warn({ code, host: tunnel?.host }, 'malformed request refused');
    // Bytes after a request that was read whole (a malformed pipelined request, anything after
    // `Connection: close`): that request is still answered, then the connection closes. The
    // upstream never sees the bytes: each request is framed anew for it.
    const pending = (socket as { _httpMessage?: ServerResponse })._httpMessage;
    if (pending && !pending.writableFinished && pending.req?.complete) {
      // Before its head, the response says `Connection: close` and Node closes after it; once
      // the head is out (keep-alive promised), the connection is closed when it is finished.
      if (!pending.headersSent) pending.shouldKeepAlive = false;
      else pending.once('finish', () => socket.end());
      return;
    }
    const timedOut = code === 'ERR_HTTP_REQUEST_TIMEOUT';
    // A response already going out on this connection (pipelining): a reply would land inside
    // it (Node's own handler checks the same).
    if ((socket as { _httpMessage?: { _headerSent?: boolean } })._httpMessage?._headerSent) {
      socket.destroy();
      return;
    }
    if (
      !socket.writable ||
      (!timedOut && (err as { bytesParsed?: number }).bytesParsed === undefined)
    ) {
      socket.destroy();
      return;
    }
    const [status, text] =
      code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'Request Header Fields Too Large']
        : code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'Request Timeout']
          : [400, 'Bad Request'];
    rawReply(socket, status, text, `TrustRun refused a malformed request: ${code}\n`);
  }

  private identify(socket: Duplex): {
    addr: string;
    port: number;
    client: ReturnType<NonNullable<ProxyDeps['identify']>>;
  } {
    const s = socket as Socket;
    const addr = s.remoteAddress ?? '';
    const port = s.remotePort ?? 0;
    let client = null;
    try {
      client = this.deps.identify?.(addr, port) ?? null;
    } catch {
      client = null;
    }
    return { addr, port, client };
  }

  private recordViolation(
    tunnel: Tunnel,
    verdict: Verdict,
    enforced: boolean,
    requestId: string | null,
    method: string | null,
  ): void {
    this.deps.recorder.addViolation({
      sessionId: this.deps.sessionId,
      time: Date.now(),
      host: tunnel.host,
      port: tunnel.port,
      method,
      verdict,
      enforced,
      connectionId: tunnel.connectionId,
      requestId,
    });
  }

  private carryOutKill(tunnel: Tunnel, verdict: Verdict): string {
    let done: ClientIdentity | null = null;
    try {
      done =
        this.deps.kill?.(tunnel.client, verdict, {
          addr: tunnel.clientAddr,
          port: tunnel.clientPort,
          // Every client connection is to the proxy's one listener.
          proxyPort: (this.outer.address() as AddressInfo | null)?.port ?? 0,
        }) ?? null;
    } catch (err) {
      this.deps.logger.warn({ err }, 'kill failed');
    }
    return done
      ? `kill: terminated process ${done.pid}${done.exe ? ` (${done.exe})` : ''}: ${verdict.explanation}`
      : `kill not possible: the process behind ${tunnel.clientAddr}:${tunnel.clientPort} was not found; request refused (${verdict.explanation})`;
  }

  /**
   * Records the end of a connection once, when its socket closes. Byte counts are taken from the
   * client-facing TCP socket (for an intercepted tunnel: the encrypted bytes).
   */
  private finishConnection(tunnel: Tunnel, raw: Socket): void {
    this.open.delete(tunnel);
    if (!tunnel.connectionId || tunnel.endedAt !== null) return;
    this.quietMoment();
    tunnel.endedAt = Date.now();
    const f = tunnel.failure;
    this.deps.recorder.updateConnection(tunnel.connectionId, {
      endedAt: tunnel.endedAt,
      bytesUp: raw.bytesRead,
      bytesDown: raw.bytesWritten,
      outcome: f?.outcome ?? 'ok',
      reason: f?.reason ?? null,
    });
  }

  /** CONNECT host:port — policy gate, record, then tunnel or intercept. */
  private async onConnect(req: IncomingMessage, duplex: Duplex, head: Buffer): Promise<void> {
    const socket = duplex as Socket;
    socket.on('error', () => undefined);
    const target = parseAuthority(req.url ?? '', null);
    if (!target) {
      rawReply(
        socket,
        400,
        'Bad Request',
        `CONNECT target '${(req.url ?? '').slice(0, 200)}' is not host:port\n`,
      );
      return;
    }
    if (this.storeRefuses()) {
      rawReply(
        socket,
        503,
        'Service Unavailable',
        'TrustRun cannot record traffic (store unavailable); refusing.\n',
      );
      return;
    }
    const who = this.identify(socket);
    const startedAt = Date.now();
    const mode = this.options.level === 'metadata' ? 'tunnel' : 'intercept';
    let dest: Destination | undefined;
    let dnsError: unknown;
    try {
      dest = await this.resolver.resolve(target.host, target.port);
    } catch (err) {
      dnsError = err;
      // A name the policy refuses is refused as such (403, recorded) whether or not it resolves.
      if (this.connectRefusal(target.host, target.port, null)) dest = unresolved(target.port);
    }
    if (!dest) {
      const c = classifyUpstreamError(dnsError);
      const id = this.deps.recorder.addConnection({
        sessionId: this.deps.sessionId,
        startedAt,
        clientAddr: who.addr,
        clientPort: who.port,
        pid: who.client?.pid ?? null,
        exe: who.client?.exe ?? null,
        host: target.host,
        port: target.port,
        mode,
      });
      this.deps.recorder.updateConnection(id, {
        endedAt: Date.now(),
        outcome: c.outcome,
        reason: c.reason,
      });
      rawReply(
        socket,
        502,
        'Bad Gateway',
        `TrustRun could not reach ${target.host}: ${c.reason}\n`,
      );
      return;
    }
    const verdict = this.policyGate
      ? this.policyGate.evaluateConnect({ ...target, ip: dest.address || null })
      : null;
    const tunnel: Tunnel = {
      connectionId: null,
      scheme: 'https',
      host: target.host,
      port: target.port,
      dest,
      clientAddr: who.addr,
      clientPort: who.port,
      client: who.client,
      verdict,
      startedAt,
      endedAt: null,
      failure: null,
    };
    tunnel.connectionId = this.deps.recorder.addConnection({
      sessionId: this.deps.sessionId,
      startedAt,
      clientAddr: who.addr,
      clientPort: who.port,
      pid: who.client?.pid ?? null,
      exe: who.client?.exe ?? null,
      host: target.host,
      port: target.port,
      ip: dest.address || null,
      mode,
    });
    const connVerdict = verdict === 'per-request' ? null : verdict;
    if (connVerdict)
      this.deps.recorder.updateConnection(tunnel.connectionId, { verdict: connVerdict });
    const loop = this.loopProblem(dest.address, dest.port);
    if (loop) {
      this.deps.recorder.updateConnection(tunnel.connectionId, {
        endedAt: Date.now(),
        outcome: 'loop',
        reason: loop,
      });
      rawReply(socket, 403, 'Forbidden', `TrustRun refused: ${loop}\n`);
      return;
    }
    if (connVerdict?.violation)
      this.recordViolation(tunnel, connVerdict, isRefusal(connVerdict), null, null);
    if (isRefusal(connVerdict)) {
      this.deps.recorder.updateConnection(tunnel.connectionId, {
        endedAt: Date.now(),
        ...this.enforce(tunnel, connVerdict),
      });
      rawReply(socket, 403, 'Forbidden', refusalBody(connVerdict));
      return;
    }
    // Audit before forward: the connection record is committed before anything is dialed.
    try {
      await this.deps.recorder.flush();
    } catch (err) {
      if (this.options.onStoreError === 'fail') {
        this.deps.logger.error({ err: String(err) }, 'store unavailable; refusing CONNECT');
        rawReply(
          socket,
          503,
          'Service Unavailable',
          'TrustRun cannot record traffic (store unavailable); refusing.\n',
        );
        return;
      }
    }
    if (this.options.level === 'metadata') this.tunnel(tunnel, socket, head);
    else this.intercept(tunnel, socket, head);
  }

  /** Metadata level: a byte-for-byte tunnel; SNI and ALPN are read from the ClientHello. */
  private tunnel(tunnel: Tunnel, client: Socket, head: Buffer): void {
    const upstream = netConnect({ host: tunnel.dest.address, port: tunnel.dest.port });
    upstream.setNoDelay(true);
    client.setNoDelay(true);
    let connected = false;
    const fail = (outcome: Outcome, reason: string) => {
      tunnel.failure ??= { outcome, reason };
    };
    upstream.setTimeout(this.options.limits.upstreamConnectTimeoutMs, () => {
      if (!connected)
        upstream.destroy(
          Object.assign(new Error('connect timeout'), { code: 'UND_ERR_CONNECT_TIMEOUT' }),
        );
    });
    upstream.once('error', (err) => {
      const c = classifyUpstreamError(err);
      fail(c.outcome, c.reason);
      if (!connected)
        rawReply(
          client,
          c.status,
          'Bad Gateway',
          `TrustRun could not reach ${tunnel.host}: ${c.reason}\n`,
        );
      else client.destroy();
    });
    this.open.set(tunnel, client);
    client.once('close', () => {
      upstream.destroy();
      this.finishConnection(tunnel, client);
    });
    upstream.once('close', () => client.end());
    upstream.once('connect', () => {
      connected = true;
      upstream.setTimeout(0);
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.pipe(client);
      let buf: Buffer = head;
      const check = (): boolean => {
        const hello = parseClientHello(buf);
        if (!hello.complete && buf.length < CLIENT_HELLO_MAX) return false;
        if (hello.sni !== null && tunnel.connectionId) {
          this.deps.recorder.updateConnection(tunnel.connectionId, {
            sni: hello.sni,
            alpn: hello.alpn.length ? hello.alpn.join(',') : null,
          });
        }
        if (hello.sni !== null && !isIP(tunnel.host) && hello.sni.toLowerCase() !== tunnel.host) {
          fail(
            'identity_mismatch',
            `TLS SNI '${hello.sni}' does not match CONNECT ${tunnel.host}:${tunnel.port}`,
          );
          client.destroy();
          upstream.destroy();
          return true;
        }
        // CONNECT to an address: the name the client asks that server for is judged too (a
        // name the policy refuses is not reached by spelling its address).
        const byName =
          hello.sni !== null && isIP(tunnel.host)
            ? this.connectRefusal(hello.sni.toLowerCase(), tunnel.port, tunnel.dest.address || null)
            : null;
        if (byName) {
          this.recordViolation(tunnel, byName, true, null, null);
          const done = this.enforce(tunnel, byName);
          fail(done.outcome, `TLS SNI '${hello.sni}': ${done.reason}`);
          if (tunnel.connectionId) {
            this.deps.recorder.updateConnection(tunnel.connectionId, { verdict: byName });
          }
          client.destroy();
          upstream.destroy();
          return true;
        }
        upstream.write(buf);
        client.pipe(upstream);
        return true;
      };
      if (buf.length && check()) return;
      const onData = (chunk: Buffer) => {
        buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
        if (check()) client.off('data', onData);
      };
      client.on('data', onData);
    });
  }

  /** headers/full level: terminate TLS with a minted leaf, or parse plain HTTP in the tunnel. */
  private intercept(tunnel: Tunnel, socket: Socket, head: Buffer): void {
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    // Started once the 200 is on its way, while the client prepares its ClientHello: the leaf for
    // the CONNECT name (the SNI is still checked against it once the ClientHello arrives), then
    // the upstream connection, which the first request takes once it has passed the policy and
    // been recorded. Minting before the 200 would delay it; minting later would make the
    // handshake wait.
    const leaf = this.deps.contexts!.getSecureContext(tunnel.host);
    leaf.catch(() => undefined);
    let ahead = tunnel.port === 80 ? null : this.dialAhead(tunnel, socket);
    this.open.set(tunnel, socket);
    socket.once('close', () => this.finishConnection(tunnel, socket));
    const start = (first: Buffer) => {
      socket.pause();
      socket.unshift(first);
      if (first[0] === TLS_HANDSHAKE) {
        if (!ahead && tunnel.port === 80) ahead = this.dialAhead(tunnel, socket, first);
        this.terminateTls(tunnel, socket, leaf, ahead);
      } else {
        // Plain HTTP inside the tunnel: a TLS connection opened ahead is of no use.
        ahead?.cancel();
        tunnel.scheme = 'http';
        this.tunnels.set(socket, tunnel);
        this.inner.emit('connection', socket);
        socket.resume();
      }
    };
    if (head.length) start(head);
    else {
      // A client that sends nothing after the 200 is closed after the header timeout.
      const silent = setTimeout(() => {
        tunnel.failure ??= { outcome: 'client_abort', reason: 'client sent nothing after CONNECT' };
        socket.destroy();
      }, this.options.limits.headersTimeoutMs);
      socket.once('close', () => clearTimeout(silent));
      socket.once('data', (first: Buffer) => {
        clearTimeout(silent);
        start(first);
      });
      socket.once('end', () => {
        if (socket.listenerCount('data') > 0) socket.destroy();
      });
    }
  }

  /**
   * Opens the upstream connection while the 200 makes its round trip and the client does its TLS
   * handshake with the proxy, so that the first request does not wait for it. The host-level
   * verdict already allowed the tunnel and its record is committed. The connection carries
   * nothing but the TLS handshake until a request passed the policy and its record is committed
   * (the pool takes it then); it is closed when the tunnel ends unused, or after an idle time.
   *
   * With `hello` (port 80, where plain HTTP is the rule): only once the client's first bytes are
   * a TLS ClientHello naming the CONNECT host (or none), so no plain-HTTP server gets a
   * ClientHello it did not ask for.
   */
  private dialAhead(tunnel: Tunnel, socket: Socket, hello?: Buffer): PreDial | null {
    if (!tunnel.dest.address) return null;
    if (hello) {
      const h = parseClientHello(hello);
      if (!h.complete || (h.sni !== null && h.sni.toLowerCase() !== tunnel.host)) return null;
    }
    const ahead = this.predial.start(tunnel.host, tunnel.port);
    if (ahead) socket.once('close', () => ahead.cancel());
    return ahead;
  }

  private terminateTls(
    tunnel: Tunnel,
    socket: Socket,
    leaf: Promise<SecureContext>,
    ahead: PreDial | null,
  ): void {
    leaf.then(
      (secureContext) => {
        const tls = new TLSSocket(socket, {
          isServer: true,
          secureContext,
          // http/1.0 too (curl --http1.0): the inner server speaks both.
          ALPNProtocols: ['http/1.1', 'http/1.0'],
        });
        // Once wrapped, the TCP socket's events may no longer fire: watch the TLS socket too.
        tls.once('close', () => {
          ahead?.cancel();
          this.finishConnection(tunnel, socket);
        });
        // The listener allows half-open sockets; a client that hangs up before the handshake
        // completes must not leave the socket open.
        tls.once('end', () => {
          if (!secured) {
            tunnel.failure ??= {
              outcome: 'client_tls',
              reason: 'client closed during the TLS handshake (does it trust the TrustRun CA?)',
            };
            tls.destroy();
            socket.destroy();
          }
        });
        let secured = false;
        const timer = setTimeout(() => {
          if (!secured) {
            tunnel.failure ??= { outcome: 'client_tls', reason: 'TLS handshake timed out' };
            socket.destroy();
          }
        }, this.options.limits.headersTimeoutMs);
        tls.on('error', (err: NodeJS.ErrnoException) => {
          if (!secured) {
            const why =
              err.code === 'ERR_SSL_NO_APPLICATION_PROTOCOL'
                ? 'the client offered no HTTP version the proxy speaks by ALPN (http/1.1, http/1.0; h2 alone is not served)'
                : 'does the client trust the TrustRun CA?';
            tunnel.failure ??= {
              outcome: 'client_tls',
              reason:
                `client TLS handshake failed (${why}): ${err.code ?? ''} ${err.message}`.trim(),
            };
            this.deps.logger.warn(
              { host: tunnel.host, code: err.code },
              'client TLS handshake failed',
            );
          }
          tls.destroy();
          socket.destroy();
        });
        tls.once('secure', () => {
          secured = true;
          clearTimeout(timer);
          // The same name however it is spelt (case, a trailing dot), as the CONNECT target is.
          const sni = typeof tls.servername === 'string' ? normalizeHost(tls.servername) : null;
          if (tunnel.connectionId) {
            this.deps.recorder.updateConnection(tunnel.connectionId, {
              sni,
              alpn: typeof tls.alpnProtocol === 'string' ? tls.alpnProtocol : null,
            });
          }
          if (sni && sni !== tunnel.host) {
            tunnel.failure = {
              outcome: 'identity_mismatch',
              reason: `TLS SNI '${sni}' does not match CONNECT ${tunnel.host}:${tunnel.port}`,
            };
            tls.destroy();
            socket.destroy();
            return;
          }
          this.tunnels.set(tls, tunnel);
          this.inner.emit('connection', tls);
        });
      },
      (err: unknown) => {
        tunnel.failure = {
          outcome: 'error',
          reason: `could not mint a certificate: ${String(err)}`,
        };
        socket.destroy();
      },
    );
  }

  /** A plain-HTTP proxy request (absolute URI), or a stray request to the proxy itself. */
  private onProxyRequest(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? '';
    let target: URL | null = null;
    try {
      target = /^https?:\/\//i.test(url) ? new URL(url) : null;
    } catch {
      target = null;
    }
    if (!target) {
      req.resume();
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
      res.end(
        'This is the TrustRun proxy. Send proxy requests (absolute URLs or CONNECT), e.g. with HTTPS_PROXY.\n',
      );
      return;
    }
    const scheme = target.protocol === 'https:' ? 'https' : 'http';
    const a = parseAuthority(target.host, scheme === 'https' ? 443 : 80);
    if (!a) {
      req.resume();
      res.writeHead(400, { connection: 'close' });
      res.end();
      return;
    }
    const who = this.identify(req.socket);
    const run = async () => {
      let dest: Destination;
      // Recorded and judged like any request (an alert is still an alert), then answered with
      // this instead of being forwarded.
      let unreachable: Tunnel['unreachable'];
      try {
        dest = await this.resolver.resolve(a.host, a.port);
      } catch (err) {
        const c = classifyUpstreamError(err);
        dest = unresolved(a.port);
        unreachable = { ...c, text: `TrustRun could not reach ${a.host}: ${c.reason}\n` };
      }
      const loop = dest.address ? this.loopProblem(dest.address, dest.port) : null;
      if (loop) {
        unreachable = {
          status: 403,
          outcome: 'loop',
          reason: loop,
          text: `TrustRun refused: ${loop}\n`,
        };
      }
      const tunnel: Tunnel = {
        connectionId: null,
        scheme,
        host: a.host,
        port: a.port,
        dest,
        clientAddr: who.addr,
        clientPort: who.port,
        client: who.client,
        // Plain requests have no CONNECT: every verdict is a per-request one.
        verdict: this.policyGate ? 'per-request' : null,
        startedAt: Date.now(),
        endedAt: null,
        failure: null,
        unreachable,
      };
      await handleExchange(this.env, tunnel, req, res);
    };
    this.track(run(), (err) => {
      this.deps.logger.error({ err: String(err) }, 'proxy request failed');
      res.destroy();
    });
  }
}

/** The destination of a refused request whose name did not resolve: never dialed. */
function unresolved(port: number): Destination {
  return { address: '', port, overridden: false };
}

/** One text per address, whatever its spelling (mapped IPv6 is its IPv4 address). */
function ipKey(ip: Ip): string {
  return ip.v === 4 ? formatIpv4(ip.n) : ip.w.join(':');
}

/** 127.0.0.0/8, 0.0.0.0, ::1 and ::. */
function isLoopbackOrUnspecified(ip: Ip): boolean {
  if (ip.v === 4) return ip.n >>> 24 === 127 || ip.n === 0;
  const [a, b, c, d] = ip.w;
  return a === 0 && b === 0 && c === 0 && (d === 0 || d === 1);
}
