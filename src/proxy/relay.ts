import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { Agent, Dispatcher } from 'undici';
import { contentLength, forwardRawResponseHeaders } from './headers.js';
import type { Capture, CapturedBody } from './tap.js';

/**
 * One request forwarded upstream with undici's dispatch API, the response written straight to
 * the client as it arrives: no intermediate body stream, promise per chunk or abort signal per
 * request. Backpressure from the client pauses the upstream read; a client that goes away
 * aborts the upstream request.
 */
export class Relay implements Dispatcher.DispatchHandler {
  status: number | null = null;
  ttfbMs: number | null = null;
  responseHeaders: [string, string][] | null = null;
  /** Response body bytes written to the client. */
  size = 0;
  private abortUpstream: ((err?: Error) => void) | null = null;
  private resumeUpstream: (() => void) | null = null;
  private resolve: (() => void) | null = null;
  private reject: ((err: Error) => void) | null = null;
  private settled = false;
  private gone: Error | null = null;
  /**
   * The response head, written with the first body bytes or at the end (Node sends a head only
   * then anyway): an upstream that breaks its framing before any body byte still gets the client
   * a 502 instead of a head followed by a cut connection.
   */
  private head: (string | string[])[] | null = null;
  /** Called once the response head was handed to the client. */
  onHead: (() => void) | null = null;
  /** A 204 or 304, ended at its head: what undici reports about it afterwards is not ours. */
  private get endedAtHead(): boolean {
    return this.status === 204 || this.status === 304;
  }

  constructor(
    private readonly res: ServerResponse,
    private readonly capture: Capture | null,
    private readonly startedAt: number,
    /** Told the size of each body chunk relayed (see Reclaimer). */
    private readonly relayed: (bytes: number) => void,
  ) {}

  /** Dispatches the request; resolves once the whole response was handed to the client. */
  run(
    agent: Agent,
    opts: {
      origin: string;
      path: string;
      method: string;
      headers: string[];
      body: Readable | null;
    },
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
      agent.dispatch(
        {
          origin: opts.origin,
          path: opts.path,
          method: opts.method as Dispatcher.HttpMethod,
          headers: opts.headers,
          body: opts.body,
        },
        this,
      );
    });
  }

  /** The captured head of the response body (full level), for the record. */
  captured(): CapturedBody | null {
    return this.capture && this.status !== null ? this.capture.capture() : null;
  }

  /** The client went away: stop the upstream request and fail the relay with `err`. */
  cancel(err: Error): void {
    this.gone = err;
    this.abortUpstream?.(err);
    this.fail(err);
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abortUpstream = abort;
    if (this.gone) abort(this.gone);
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    if (statusCode < 200) return true; // 1xx: informational, not forwarded
    // Only `chunked` frames a body both sides read alike: with another coding last (`chunked,
    // identity`, `bogus`) the body runs to the connection's close, and relayed re-chunked it
    // would be the upstream's framing bytes (RFC 9112, 6.3).
    const fwd = forwardRawResponseHeaders(rawHeaders);
    const te = fwd.transferEncoding;
    if (te !== null && te !== 'chunked') {
      const err = Object.assign(
        new Error(
          `Transfer-Encoding "${te.slice(0, 64)}" in the response (only chunked is relayed)`,
        ),
        { code: 'TR_UPSTREAM_FRAMING' },
      );
      this.abortUpstream?.(err);
      this.fail(err);
      return false;
    }
    this.resumeUpstream = resume;
    this.ttfbMs = Date.now() - this.startedAt;
    this.status = statusCode;
    this.responseHeaders = fwd.pairs;
    if (this.capture) {
      for (const [name, value] of fwd.pairs) {
        if (name === 'content-length') {
          this.capture.expect(contentLength(value));
          break;
        }
      }
    }
    this.head = fwd.flat;
    if (this.endedAtHead) {
      // No body, whatever the head says: ended now. RFC 9110 allows a 304 to carry the
      // Content-Length of the full response, which undici then takes for a short body.
      if (this.writeHead()) this.res.end(this.onFinish);
    }
    return true;
  }

  /** Writes the head kept by onHeaders; false when Node refused it (the relay has failed). */
  private writeHead(): boolean {
    const head = this.head;
    if (head === null) return true;
    this.head = null;
    try {
      this.res.writeHead(this.status as number, head);
      this.onHead?.();
      return true;
    } catch (err) {
      this.abortUpstream?.(err as Error);
      this.fail(err as Error);
      return false;
    }
  }

  onData(chunk: Buffer): boolean {
    if (this.settled || this.res.destroyed) return false;
    if (!this.writeHead()) return false;
    this.size += chunk.length;
    this.relayed(chunk.length);
    this.capture?.add(chunk);
    if (this.res.write(chunk)) return true;
    this.res.once('drain', this.onDrain);
    return false;
  }

  onComplete(): void {
    if (this.settled || this.endedAtHead) return;
    if (this.res.destroyed) {
      this.fail(this.gone ?? new Error('client closed the connection'));
      return;
    }
    if (!this.writeHead()) return;
    this.res.end(this.onFinish);
  }

  onError(err: Error): void {
    if (this.endedAtHead && this.res.writableEnded) return;
    this.fail(err);
  }

  private readonly onDrain = (): void => {
    this.resumeUpstream?.();
  };

  private readonly onFinish = (err?: Error | null): void => {
    if (err) this.fail(err);
    else if (!this.settled) {
      this.settled = true;
      this.resolve?.();
    }
  };

  private fail(err: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.reject?.(err);
  }
}
