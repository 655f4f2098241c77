import { afterEach, describe, expect, it } from 'vitest';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { PreDialer, type Dial } from '../../../src/proxy/predial.js';
import { until } from '../../helpers/wait.js';

/** A local TCP server that counts accepted and closed sockets. */
interface Counting {
  port: number;
  accepted: number;
  closed: number;
  server: Server;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function countingServer(): Promise<Counting> {
  const c: Counting = { port: 0, accepted: 0, closed: 0, server: createServer() };
  const open = new Set<Socket>();
  c.server.on('connection', (s) => {
    c.accepted++;
    open.add(s);
    s.on('error', () => undefined);
    s.once('close', () => {
      c.closed++;
      open.delete(s);
    });
  });
  await new Promise<void>((r) => c.server.listen(0, '127.0.0.1', r));
  c.port = (c.server.address() as AddressInfo).port;
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        for (const s of open) s.destroy();
        c.server.close(() => r());
      }),
  );
  return c;
}

/** Dials 127.0.0.1:port whatever the host; `calls` counts the dials. */
function tcpDial(port: number, calls: { n: number }, delayMs = 0): Dial {
  return (_host, _port, cb) => {
    calls.n++;
    setTimeout(() => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => cb(null, s));
      s.once('error', (err) => cb(err, null));
    }, delayMs);
  };
}

describe('PreDialer', () => {
  it('has nothing to hand out for a host it did not dial', async () => {
    const srv = await countingServer();
    const p = new PreDialer(tcpDial(srv.port, { n: 0 }), 1000);
    cleanups.push(() => p.close());
    p.start('a.test', 443);
    expect(p.take('b.test', 443)).toBeNull();
    expect(p.take('a.test', 8443)).toBeNull();
  });

  it('hands a connection still under way to the request that takes it, once', async () => {
    const srv = await countingServer();
    const calls = { n: 0 };
    const p = new PreDialer(tcpDial(srv.port, calls, 50), 1000);
    cleanups.push(() => p.close());
    p.start('A.test', 443);
    const taken = p.take('a.test', 443);
    expect(taken).not.toBeNull();
    expect(p.take('a.test', 443)).toBeNull();
    const socket = await taken!;
    expect(socket).not.toBeNull();
    expect(socket!.destroyed).toBe(false);
    expect(srv.accepted).toBe(1);
    socket!.destroy();
  });

  it('does not close a connection after it was taken (tunnel end, idle time)', async () => {
    const srv = await countingServer();
    // Taken once the dial has answered, well inside the idle time; then held for over twice the
    // idle time.
    let dialed = false;
    const dial = tcpDial(srv.port, { n: 0 });
    const p = new PreDialer((host, port, cb) => {
      dial(host, port, (err, socket) => {
        dialed = true;
        cb(err, socket);
      });
    }, 250);
    cleanups.push(() => p.close());
    const ahead = p.start('a.test', 443)!;
    await until(() => dialed);
    const socket = (await p.take('a.test', 443))!;
    ahead.cancel();
    await new Promise((r) => setTimeout(r, 600));
    expect(socket.destroyed).toBe(false);
    expect(srv.closed).toBe(0);
    socket.destroy();
  });

  it('closes an untaken connection after the idle time, and on cancel', async () => {
    const srv = await countingServer();
    const p = new PreDialer(tcpDial(srv.port, { n: 0 }), 300);
    cleanups.push(() => p.close());
    p.start('idle.test', 443);
    await until(() => srv.accepted === 1);
    expect(p.pending).toBe(1);
    await until(() => srv.closed === 1);
    expect(p.pending).toBe(0);
    expect(p.take('idle.test', 443)).toBeNull();

    const q = new PreDialer(tcpDial(srv.port, { n: 0 }), 60_000);
    cleanups.push(() => q.close());
    const ahead = q.start('cancel.test', 443)!;
    await until(() => srv.accepted === 2);
    ahead.cancel();
    await until(() => srv.closed === 2);
    expect(q.pending).toBe(0);
  });

  it('cancelled while dialing: the connection is closed as soon as it opens', async () => {
    const srv = await countingServer();
    const p = new PreDialer(tcpDial(srv.port, { n: 0 }, 30), 60_000);
    cleanups.push(() => p.close());
    p.start('a.test', 443)!.cancel();
    expect(p.take('a.test', 443)).toBeNull();
    await until(() => srv.accepted === 1 && srv.closed === 1);
  });

  it('a failed dial is forgotten, or answers null to a request that took it', async () => {
    const srv = await countingServer();
    const port = srv.port;
    await new Promise<void>((r) => srv.server.close(() => r()));
    const p = new PreDialer(tcpDial(port, { n: 0 }, 20), 1000);
    cleanups.push(() => p.close());
    p.start('a.test', 443);
    expect(await p.take('a.test', 443)).toBeNull();
    p.start('b.test', 443);
    await until(() => p.pending === 0, 'the failed dial to be forgotten');
    expect(p.take('b.test', 443)).toBeNull();
  });

  it('does not pre-dial a host that has an open connection', async () => {
    const srv = await countingServer();
    const calls = { n: 0 };
    const p = new PreDialer(tcpDial(srv.port, calls), 1000);
    cleanups.push(() => p.close());
    const s = connect(srv.port, '127.0.0.1');
    await new Promise((r) => s.once('connect', r));
    p.track('a.test', 443, s);
    expect(p.start('a.test', 443)).toBeNull();
    expect(calls.n).toBe(0);
    s.destroy();
    await new Promise((r) => s.once('close', r));
    expect(p.start('a.test', 443)).not.toBeNull();
    expect(calls.n).toBe(1);
  });

  it('close() ends connections not taken and refuses new ones', async () => {
    const srv = await countingServer();
    const calls = { n: 0 };
    const p = new PreDialer(tcpDial(srv.port, calls), 60_000);
    p.start('a.test', 443);
    p.start('b.test', 443);
    await until(() => srv.accepted === 2);
    p.close();
    await until(() => srv.closed === 2);
    expect(p.start('c.test', 443)).toBeNull();
    expect(calls.n).toBe(2);
  });
});
