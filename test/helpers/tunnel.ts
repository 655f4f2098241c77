import { connect as netConnect } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';

/**
 * Opens a CONNECT tunnel to `target` (host:port) through the proxy on `port`, then a TLS session
 * inside it for `servername`, trusting `caPem` (the proxy's CA); no request yet. Rejects when the
 * CONNECT is not answered 200 or the handshake fails.
 */
export function tunnelTls(
  port: number,
  caPem: string,
  target: string,
  servername = target.slice(0, target.lastIndexOf(':')),
  alpn?: string[],
): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = netConnect(port, '127.0.0.1');
    s.once('error', reject);
    s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
    s.once('data', (d) => {
      if (!d.toString().startsWith('HTTP/1.1 200')) return reject(new Error(d.toString()));
      const t = tlsConnect({
        socket: s,
        servername,
        ca: caPem,
        ...(alpn ? { ALPNProtocols: alpn } : {}),
      });
      t.once('secureConnect', () => resolve(t));
      t.once('error', (e) => {
        s.destroy();
        reject(e);
      });
    });
  });
}

/**
 * Sends `GET path` for `host` on an open tunnel; resolves with the response head and body text
 * once Content-Length bytes of body are in (or with what came when the tunnel closed).
 */
export function getInTunnel(t: TLSSocket, host: string, path: string): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    const onData = (d: Buffer) => {
      out += d.toString('latin1');
      const m = /content-length: (\d+)\r\n[\s\S]*?\r\n\r\n/i.exec(out);
      if (m && out.length >= out.indexOf('\r\n\r\n') + 4 + Number(m[1])) {
        t.off('data', onData);
        resolve(out);
      }
    };
    t.on('data', onData);
    t.once('close', () => resolve(out));
    t.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
  });
}
