import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Agent } from 'undici';
import type { Outcome, Verdict } from '../core/index.js';
import { isRefusal, refusalBody, type Enforced, type Refusal, type Tunnel } from './flow.js';
import {
  contentLength,
  forwardRequestHeaders,
  headerCount,
  pairs,
  parseAuthority,
} from './headers.js';
import { Relay } from './relay.js';
import { BodyTap, ByteCounter, Capture, type PartWriter } from './tap.js';
import { classifyUpstreamError } from './upstream.js';
import type { BodyField, ProxyDeps, ProxyOptions, PolicyGate } from './types.js';

/** What one request needs from the proxy around it. */
export interface ExchangeEnv {
  options: ProxyOptions;
  deps: ProxyDeps;
  agent: Agent;
  policy(): PolicyGate | null;
  /** Records a verdict that is a violation; returns nothing. */
  violation(
    tunnel: Tunnel,
    verdict: Verdict,
    enforced: boolean,
    requestId: string | null,
    method: string | null,
  ): void;
  /** Carries out a refusal (a kill terminates the client); returns what its record says. */
  enforce(tunnel: Tunnel, verdict: Refusal): Enforced;
  /** Told the size of each body chunk relayed, either way (see Reclaimer). */
  relayed(bytes: number): void;
  /**
   * Client sockets whose request was received whole and whose response head has not gone out:
   * the servers' idle timeout leaves them open (the upstream is working, not the client idle).
   */
  awaitingHead: WeakSet<object>;
  /** Client sockets whose HTTP broke (a request body's chunking, say), with the reason. */
  clientErrors: WeakMap<object, string>;
}

function reply(res: ServerResponse, status: number, text: string, close = false): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = Buffer.from(text);
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': body.length,
    'x-trustrun': 'refused',
    ...(close ? { connection: 'close' } : {}),
  });
  res.end(body);
}

/**
 * Hands the parts of a long body to the store while it streams (no parts without a record to
 * attach them to). A part that cannot be written is logged once per body; the request goes on,
 * and reading the record shows the parts that were kept with a note that the rest are missing.
 */
function partWriter(deps: ProxyDeps, id: string, field: BodyField): PartWriter {
  let failed = false;
  return (seq, data) => {
    if (failed) return;
    try {
      deps.recorder.addBodyPart(id, field, seq, data);
    } catch (err) {
      failed = true;
      deps.logger.error(
        { code: (err as { code?: string }).code, err: String(err), request: id, field },
        'store write failed',
      );
    }
  };
}

/**
 * Checks that a request inside a tunnel names the tunnel's own destination. Returns the reason
 * for refusing it, or null. The reason is stored in clear and logged, so it quotes nothing the
 * client sent (a URL or Host value may carry a token); the request's own URL and headers are
 * kept sealed in its record as always.
 */
function identityProblem(tunnel: Tunnel, req: IncomingMessage): string | null {
  const raw = req.rawHeaders;
  const hosts = headerCount(raw, 'host');
  if (hosts > 1) return 'more than one Host header';
  const defaultPort = tunnel.scheme === 'https' ? 443 : 80;
  const url = req.url ?? '';
  if (!url.startsWith('/') && url !== '*') {
    let abs: URL;
    try {
      abs = new URL(url);
    } catch {
      return 'request target is neither a path nor an absolute URL';
    }
    const a = parseAuthority(abs.host, abs.protocol === 'https:' ? 443 : 80);
    if (!a || a.host !== tunnel.host || a.port !== tunnel.port) {
      return `absolute URL names another server than the tunnel's ${tunnel.host}:${tunnel.port}`;
    }
  }
  const host = req.headers.host;
  if (host !== undefined) {
    const a = parseAuthority(host, defaultPort);
    if (!a || a.host !== tunnel.host || a.port !== tunnel.port) {
      return `Host header does not match the tunnel to ${tunnel.host}:${tunnel.port}`;
    }
  }
  return null;
}

/** The origin-form target of the request (path and query). */
function originForm(url: string): string {
  if (url.startsWith('/') || url === '*') return url;
  try {
    const u = new URL(url);
    return u.pathname + u.search;
  } catch {
    return url;
  }
}

export async function handleExchange(
  env: ExchangeEnv,
  tunnel: Tunnel,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const { deps, options } = env;
  const { recorder } = deps;
  const startedAt = Date.now();
  const method = req.method ?? 'GET';
  const url = req.url ?? '/';
  const path = originForm(url);
  const requestHeaders = pairs(req.rawHeaders);
  const limits = options.limits;

  // Framing and identity: refused before anything is recorded as forwarded or dialed.
  let refusal: { status: number; outcome: Outcome; reason: string } | null = null;
  if (url === '*') {
    // OPTIONS * asks the server itself, not a resource: there is no path to send it to upstream.
    refusal = {
      status: 400,
      outcome: 'bad_request',
      reason: 'a request for * (OPTIONS *) is not forwarded',
    };
  } else if (url.length > limits.maxUrlLength) {
    refusal = {
      status: 414,
      outcome: 'bad_request',
      reason: `URL longer than ${limits.maxUrlLength} bytes`,
    };
  } else if (req.rawHeaders.length / 2 > limits.maxHeaderCount) {
    refusal = {
      status: 431,
      outcome: 'bad_request',
      reason: `more than ${limits.maxHeaderCount} header fields`,
    };
  } else {
    const problem = identityProblem(tunnel, req);
    if (problem) refusal = { status: 400, outcome: 'identity_mismatch', reason: problem };
  }

  // Policy: the tunnel's verdict, or a per-request one when method/path rules decide.
  let verdict: Verdict | null = null;
  if (!refusal) {
    if (tunnel.verdict === 'per-request') {
      const q = path.indexOf('?');
      verdict =
        env.policy()?.evaluate({
          host: tunnel.host,
          port: tunnel.port,
          ip: tunnel.dest.address || null,
          method,
          path: q === -1 ? path : path.slice(0, q),
        }) ?? null;
    } else {
      verdict = tunnel.verdict;
    }
  }

  // Audit before forward: the record is committed before the upstream sees a byte.
  let id: string | null = null;
  if (!recorder.healthy && options.onStoreError === 'fail') {
    req.resume();
    reply(
      res,
      503,
      'TrustRun cannot record this request (store unavailable); refusing to forward it.\n',
    );
    return;
  }
  try {
    id = await recorder.addRequest({
      sessionId: deps.sessionId,
      connectionId: tunnel.connectionId,
      startedAt,
      method,
      scheme: tunnel.scheme,
      host: tunnel.host,
      port: tunnel.port,
      url: path,
      requestHeaders,
      verdict,
      pid: tunnel.client?.pid ?? null,
      exe: tunnel.client?.exe ?? null,
    });
  } catch (err) {
    deps.logger.error(
      { code: (err as { code?: string }).code, err: String(err) },
      'store write failed',
    );
    if (options.onStoreError === 'fail') {
      req.resume();
      reply(
        res,
        503,
        'TrustRun cannot record this request (store unavailable); refusing to forward it.\n',
      );
      return;
    }
  }
  const complete = (done: Parameters<typeof recorder.completeRequest>[1]) => {
    if (id !== null) recorder.completeRequest(id, done);
  };

  // A request the parser already rejected (e.g. malformed chunking in the first packet) has
  // destroyed its socket by now: it is recorded, never forwarded.
  if (!refusal && (req.destroyed || req.socket.destroyed || req.socket.writableEnded)) {
    refusal = {
      status: 400,
      outcome: 'bad_request',
      reason: 'malformed request body or client closed early',
    };
  }
  if (refusal) {
    req.resume();
    reply(res, refusal.status, `TrustRun refused this request: ${refusal.reason}\n`, true);
    complete({
      endedAt: Date.now(),
      status: refusal.status,
      outcome: refusal.outcome,
      reason: refusal.reason,
    });
    deps.logger.warn(
      { host: tunnel.host, outcome: refusal.outcome, reason: refusal.reason },
      'request refused',
    );
    return;
  }

  if (verdict && tunnel.verdict === 'per-request' && verdict.violation) {
    env.violation(tunnel, verdict, isRefusal(verdict), id, method);
  }
  if (isRefusal(verdict)) {
    req.resume();
    const done = env.enforce(tunnel, verdict);
    reply(res, 403, refusalBody(verdict));
    complete({ endedAt: Date.now(), status: 403, ...done });
    return;
  }
  if (tunnel.unreachable) {
    const u = tunnel.unreachable;
    req.resume();
    reply(res, u.status, u.text);
    complete({ endedAt: Date.now(), status: u.status, outcome: u.outcome, reason: u.reason });
    return;
  }

  // Forward, streaming both bodies and keeping at most --max-body of each at the full level
  // (nothing is kept for a request without a record: there is nowhere to put it).
  const keptFor = options.level === 'full' ? id : null;
  const hasBody =
    req.headers['content-length'] !== undefined
      ? req.headers['content-length'] !== '0'
      : req.headers['transfer-encoding'] !== undefined;
  const reqTap = hasBody
    ? keptFor !== null
      ? new BodyTap(
          options.maxBody,
          contentLength(req.headers['content-length']),
          partWriter(deps, keptFor, 'request_body'),
          env.relayed,
        )
      : new ByteCounter(env.relayed)
    : null;
  if (reqTap) req.pipe(reqTap);
  const relay = new Relay(
    res,
    keptFor !== null
      ? new Capture(options.maxBody, null, partWriter(deps, keptFor, 'response_body'))
      : null,
    startedAt,
    env.relayed,
  );
  let clientGone = false;
  res.once('close', () => {
    if (!res.writableFinished) {
      clientGone = true;
      relay.cancel(new Error('client closed the connection'));
    }
  });

  // Once the request is all sent, and until the response head goes out, the client's
  // connection is quiet, not idle: its idle limit (120 s) would otherwise cut a response the
  // upstream may take up to its own header timeout (300 s) to start. The limit stays on while
  // the client uploads and while the response streams. (Marking the socket costs less than
  // re-arming its timer twice a request: the servers' 'timeout' handler reads the mark.)
  const clientSocket = req.socket;
  const quiet = () => {
    if (!res.headersSent) env.awaitingHead.add(clientSocket);
  };
  const awake = () => {
    env.awaitingHead.delete(clientSocket);
  };
  relay.onHead = awake;
  const uploading = !req.complete;
  if (uploading) req.once('end', quiet);
  else quiet();
  try {
    await relay.run(env.agent, {
      origin: `${tunnel.scheme}://${tunnel.host.includes(':') ? `[${tunnel.host}]` : tunnel.host}:${tunnel.port}`,
      path,
      method,
      headers: forwardRequestHeaders(req.rawHeaders),
      body: reqTap,
    });
    complete({
      endedAt: Date.now(),
      status: relay.status,
      responseHeaders: relay.responseHeaders,
      requestBody: reqTap instanceof BodyTap ? reqTap.capture() : null,
      responseBody: relay.captured(),
      requestSize: reqTap?.size ?? 0,
      responseSize: relay.size,
      durationMs: Date.now() - startedAt,
      ttfbMs: relay.ttfbMs,
      outcome: 'ok',
    });
  } catch (err) {
    // A connection the proxy itself closed because the client's framing broke mid-body is the
    // client's malformed request, not a client that went away.
    const broken = env.clientErrors.get(clientSocket);
    const c = clientGone
      ? broken !== undefined
        ? { outcome: 'bad_request' as const, status: 400, reason: broken }
        : { outcome: 'client_abort' as const, status: 499, reason: 'client closed the connection' }
      : classifyUpstreamError(err);
    // Refused at dial time (the name now resolves to an address the policy refuses): a
    // violation like any refusal, and a kill carried out.
    const refusedBy = (err as { verdict?: Verdict }).verdict ?? null;
    if (refusedBy !== null && isRefusal(refusedBy)) {
      env.violation(tunnel, refusedBy, true, id, method);
      // A block keeps the dial's reason (which names the address); a kill says what it killed.
      const done = env.enforce(tunnel, refusedBy);
      if (done.outcome === 'killed') Object.assign(c, done);
    }
    // The upstream's status was forwarded only if its head went out (with the first body bytes).
    const forwarded = res.headersSent;
    if (!clientGone) {
      if (forwarded) res.destroy();
      else {
        req.resume();
        reply(res, c.status, `TrustRun could not complete this request: ${c.reason}\n`);
      }
    }
    complete({
      endedAt: Date.now(),
      status: forwarded || clientGone ? (relay.status ?? c.status) : c.status,
      responseHeaders: relay.responseHeaders,
      requestBody: reqTap instanceof BodyTap ? reqTap.capture() : null,
      responseBody: relay.captured(),
      requestSize: reqTap?.size ?? 0,
      responseSize: relay.size,
      durationMs: Date.now() - startedAt,
      ttfbMs: relay.ttfbMs,
      outcome: c.outcome,
      reason: c.reason,
    });
    deps.logger.warn(
      { host: tunnel.host, port: tunnel.port, outcome: c.outcome, reason: c.reason },
      'request failed',
    );
  } finally {
    if (uploading) req.off('end', quiet);
    awake();
  }
}
