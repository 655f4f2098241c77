/**
 * A plain CONNECT tunnel with Node's http and net modules: the floor of any proxy (no TLS, no
 * parsing inside the tunnel, no recording). Only hosts named in BENCH_TUNNEL_MAP are tunnelled,
 * to the address given there ({"suffix": ".bench.test", "port": 443, "to": "127.0.0.1:PORT"});
 * anything else gets 403, so nothing leaves the machine. Prints {"listen": URL} on stdout.
 */
import { createServer, type IncomingMessage } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';

interface MapRule {
  suffix: string;
  port: number;
  to: string;
}

const rule = JSON.parse(process.env.BENCH_TUNNEL_MAP ?? '{}') as MapRule;
const [toHost, toPort] = rule.to.split(':') as [string, string];

const server = createServer();
server.on('connect', (req: IncomingMessage, client: Duplex, head: Buffer) => {
  const m = /^([^:]+):(\d+)$/.exec(req.url ?? '');
  const host = m?.[1]?.toLowerCase() ?? '';
  if (
    !m ||
    Number(m[2]) !== rule.port ||
    !(host.endsWith(rule.suffix) || host === rule.suffix.slice(1))
  ) {
    client.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    return;
  }
  const upstream: Socket = connect(Number(toPort), toHost);
  upstream.setNoDelay(true);
  (client as Socket).setNoDelay?.(true);
  const fail = (): void => {
    upstream.destroy();
    client.destroy();
  };
  upstream.on('error', fail);
  client.on('error', fail);
  upstream.once('connect', () => {
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length > 0) upstream.write(head);
    upstream.pipe(client);
    client.pipe(upstream);
  });
  upstream.on('close', () => client.destroy());
  client.on('close', () => upstream.destroy());
});
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  process.stdout.write(`${JSON.stringify({ listen: `http://127.0.0.1:${port}` })}\n`);
});
// The runner's IPC channel closes when it dies, even by SIGKILL: do not outlive it.
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
