import type { Socket } from 'node:net';

/** Dials host:port the way the upstream pool does (resolver, loop guard, verified TLS). */
export type Dial = (
  host: string,
  port: number,
  callback: (err: Error | null, socket: Socket | null) => void,
) => void;

/** A pre-dial started for one tunnel. */
export interface PreDial {
  /** Closes the connection unless a request has taken it (the tunnel ended first). */
  cancel(): void;
}

interface Entry {
  key: string;
  socket: Socket | null;
  done: boolean;
  /** A request took it: from then on it belongs to the pool. */
  taken: boolean;
  cancelled: boolean;
  /** Set when a request took the entry before the dial finished. */
  taker: ((socket: Socket | null) => void) | null;
  timer: NodeJS.Timeout | null;
  onClose: (() => void) | null;
}

function keyOf(host: string, port: number): string {
  return `${host.toLowerCase()}:${port}`;
}

/**
 * Upstream connections opened ahead of the first request to a host, while the client is still
 * doing its own TLS handshake with the proxy. Only the TLS handshake happens ahead: the socket
 * waits, unused, until the pool needs a connection for that origin (after the request passed the
 * policy and its record was committed) and takes it with `take`. A connection nobody takes is
 * closed after `idleMs`, or as soon as the tunnel that asked for it ends. A pre-dial that fails is
 * forgotten: the request dials as it would have without it.
 */
export class PreDialer {
  private readonly waiting = new Map<string, Entry[]>();
  private readonly live = new Map<string, number>();
  private closed = false;

  constructor(
    private readonly dial: Dial,
    private readonly idleMs: number,
  ) {}

  /**
   * Starts connecting to host:port unless a connection to it is already open (its pool will
   * reuse that one). Returns null when nothing was started.
   */
  start(host: string, port: number): PreDial | null {
    const key = keyOf(host, port);
    if (this.closed || (this.live.get(key) ?? 0) > 0) return null;
    const entry: Entry = {
      key,
      socket: null,
      done: false,
      taken: false,
      cancelled: false,
      taker: null,
      timer: null,
      onClose: null,
    };
    this.add(entry);
    this.dial(host, port, (err, socket) => {
      entry.done = true;
      if (err || !socket) {
        this.remove(entry);
        this.handOver(entry, null);
        return;
      }
      this.count(key, socket);
      if (entry.cancelled || this.closed) {
        socket.destroy();
        return;
      }
      if (entry.taker) {
        this.handOver(entry, socket);
        return;
      }
      // Waiting for a request: errors must not go unhandled, a close drops it, and an unused
      // connection is not kept for long.
      entry.socket = socket;
      entry.onClose = () => {
        this.remove(entry);
        if (entry.timer) clearTimeout(entry.timer);
      };
      socket.on('error', ignore);
      socket.once('close', entry.onClose);
      entry.timer = setTimeout(() => this.drop(entry), this.idleMs);
      entry.timer.unref();
    });
    return { cancel: () => this.drop(entry) };
  }

  /**
   * A pre-dialed connection for host:port, if one is ready or under way: resolves with the
   * socket, or with null when that dial failed or the connection closed meanwhile (the caller
   * then dials itself). Returns null when there is none.
   */
  take(host: string, port: number): Promise<Socket | null> | null {
    const list = this.waiting.get(keyOf(host, port));
    if (!list?.length) return null;
    const entry = list.find((e) => e.socket !== null) ?? list[0]!;
    this.remove(entry);
    entry.taken = true;
    return new Promise((resolve) => {
      entry.taker = resolve;
      if (entry.done) this.handOver(entry, entry.socket);
    });
  }

  /**
   * Counts an open upstream connection to host:port (the pool's own dials are reported here
   * too, so that a host with an open connection is not pre-dialed again).
   */
  track(host: string, port: number, socket: Socket): void {
    this.count(keyOf(host, port), socket);
  }

  private count(key: string, socket: Socket): void {
    this.live.set(key, (this.live.get(key) ?? 0) + 1);
    socket.once('close', () => {
      const n = (this.live.get(key) ?? 1) - 1;
      if (n > 0) this.live.set(key, n);
      else this.live.delete(key);
    });
  }

  /** Connections dialed ahead and not taken yet (ready or under way). */
  get pending(): number {
    let n = 0;
    for (const list of this.waiting.values()) n += list.length;
    return n;
  }

  /** Closes every connection not taken yet; later pre-dials are refused. */
  close(): void {
    this.closed = true;
    for (const list of [...this.waiting.values()]) for (const e of [...list]) this.drop(e);
  }

  private handOver(entry: Entry, socket: Socket | null): void {
    const taker = entry.taker;
    if (!taker) return;
    entry.taker = null;
    if (entry.timer) clearTimeout(entry.timer);
    if (socket) {
      if (entry.onClose) socket.off('close', entry.onClose);
      socket.off('error', ignore);
    }
    taker(socket && !socket.destroyed ? socket : null);
  }

  private drop(entry: Entry): void {
    if (entry.taken || entry.cancelled) return;
    this.remove(entry);
    entry.cancelled = true;
    if (entry.timer) clearTimeout(entry.timer);
    entry.socket?.destroy();
  }

  private add(entry: Entry): void {
    const list = this.waiting.get(entry.key);
    if (list) list.push(entry);
    else this.waiting.set(entry.key, [entry]);
  }

  private remove(entry: Entry): boolean {
    const list = this.waiting.get(entry.key);
    const i = list ? list.indexOf(entry) : -1;
    if (i === -1) return false;
    list!.splice(i, 1);
    if (!list!.length) this.waiting.delete(entry.key);
    return true;
  }
}

function ignore(): void {}
