/**
 * The floors the proxies are measured against, all on Node's own modules and all with nothing
 * recorded, one per BENCH_TUNNEL_MODE:
 *
 * - `tunnel` (default): a plain CONNECT tunnel, bytes piped between the client and the upstream
 *   (no TLS in the proxy, no parsing inside the tunnel).
 * - `tls`: the tunnel's TLS terminated on both sides (the client sees BENCH_TUNNEL_TLS's
 *   certificate, the upstream is verified against its CA) and the decrypted bytes piped: what
 *   an intercepting proxy pays for TLS alone, with no HTTP parsing.
 * - `http`: the same TLS, with each request parsed by `node:http` and sent upstream by undici's
 *   dispatch API, the response written back as it arrives: the stack trustrun's proxy is built
 *   on, without its policy, records, sealing or store.
 *
 * Only hosts named in BENCH_TUNNEL_MAP are tunnelled, to the address given there ({"suffix":
 * ".bench.test", "port": 443, "to": "127.0.0.1:PORT"}); anything else gets 403, so nothing leaves
 * the machine. Prints {"listen": URL} on stdout.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { TLSSocket, connect as tlsConnect, createSecureContext } from 'node:tls';
import { pathToFileURL } from 'node:url';
import type * as UndiciModule from 'undici';
import type { Dispatcher } from 'undici';

interface MapRule {
  suffix: string;
  port: number;
  to: string;
}

const rule = JSON.parse(process.env.BENCH_TUNNEL_MAP ?? '{}') as MapRule;
const [toHost, toPort] = rule.to.split(':') as [string, string];
const mode = process.env.BENCH_TUNNEL_MODE ?? 'tunnel';
if (!['tunnel', 'tls', 'http'].includes(mode)) throw new Error(`unknown mode ${mode}`);

/** The certificate shown to the client and the CA the upstream is checked against. */
const tls =
  mode === 'tunnel'
    ? null
    : ((): { server: ReturnType<typeof createSecureContext>; caPem: string } => {
        const f = JSON.parse(process.env.BENCH_TUNNEL_TLS ?? '{}') as Record<string, string>;
        return {
          server: createSecureContext({ cert: readFileSync(f.cert!), key: readFileSync(f.key!) }),
          caPem: readFileSync(f.ca!, 'utf8'),
        };
      })();
// Only the TLS relay dials the upstream itself; the HTTP relay's undici pool does its own.
const upstreamContext = mode === 'tls' ? createSecureContext({ ca: tls!.caPem }) : null;

/** Headers that belong to one hop (RFC 9110, 7.6.1), never forwarded. */
const HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

const agent =
  mode === 'http'
    ? await (async (): Promise<Dispatcher> => {
        const undici = (await import(
          pathToFileURL(process.env.BENCH_UNDICI ?? 'undici').href
        )) as typeof UndiciModule;
        // Dial the mapped address, keeping the request's name for SNI and verification.
        const base = undici.buildConnector({ ca: tls!.caPem });
        return new undici.Agent({
          connect: (opts, cb) =>
            base(
              {
                ...opts,
                servername: opts.servername || opts.hostname,
                hostname: toHost,
                port: toPort,
              },
              cb,
            ),
        });
      })()
    : null;

/** One request relayed with undici's dispatch API, the response written as it arrives. */
function relay(req: IncomingMessage, res: ServerResponse, host: string): void {
  const headers: string[] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    if (!HOP.has(raw[i]!.toLowerCase())) headers.push(raw[i]!, raw[i + 1]!);
  }
  const hasBody =
    req.headers['content-length'] !== undefined
      ? req.headers['content-length'] !== '0'
      : req.headers['transfer-encoding'] !== undefined;
  let resume: (() => void) | null = null;
  const fail = (): void => {
    if (res.headersSent) res.destroy();
    else res.writeHead(502, { 'content-length': 0 }).end();
  };
  agent!.dispatch(
    {
      origin: `https://${host}`,
      path: req.url ?? '/',
      method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
      headers,
      body: hasBody ? req : null,
    },
    {
      onConnect: () => undefined,
      onHeaders: (status, rawHeaders, resumeUpstream) => {
        if (status < 200) return true;
        resume = resumeUpstream;
        const flat: string[] = [];
        for (let i = 0; i < rawHeaders.length; i += 2) {
          const name = rawHeaders[i]!.toString('latin1');
          if (!HOP.has(name.toLowerCase())) flat.push(name, rawHeaders[i + 1]!.toString('latin1'));
        }
        try {
          res.writeHead(status, flat);
        } catch {
          res.destroy();
          return false;
        }
        return true;
      },
      onData: (chunk) => {
        if (res.write(chunk)) return true;
        res.once('drain', () => resume?.());
        return false;
      },
      onComplete: () => res.end(),
      onError: fail,
    },
  );
}

const inner = mode === 'http' ? createServer() : null;
inner?.on('request', (req: IncomingMessage, res: ServerResponse) => {
  const host = (req.socket as TLSSocket & { benchHost?: string }).benchHost ?? '';
  relay(req, res, host);
});

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
  (client as Socket).setNoDelay?.(true);
  if (head.length > 0) client.unshift(head);
  if (inner) {
    // HTTP: requests go to undici's pool, which opens its own upstream connections.
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    const decrypted = new TLSSocket(client as Socket, {
      isServer: true,
      secureContext: tls!.server,
    });
    Object.assign(decrypted, { benchHost: host });
    decrypted.on('error', () => client.destroy());
    client.on('error', () => decrypted.destroy());
    inner.emit('connection', decrypted);
    return;
  }
  const upstream: Socket = connect(Number(toPort), toHost);
  upstream.setNoDelay(true);
  const fail = (): void => {
    upstream.destroy();
    client.destroy();
  };
  upstream.on('error', fail);
  client.on('error', fail);
  upstream.on('close', () => client.destroy());
  client.on('close', () => upstream.destroy());
  upstream.once('connect', () => {
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    let toClient: Duplex = client;
    let toUpstream: Duplex = upstream;
    if (tls) {
      toClient = new TLSSocket(client as Socket, { isServer: true, secureContext: tls.server });
      toUpstream = tlsConnect({
        socket: upstream,
        servername: host,
        secureContext: upstreamContext!,
      });
      toClient.on('error', fail);
      toUpstream.on('error', fail);
    }
    toUpstream.pipe(toClient);
    toClient.pipe(toUpstream);
  });
});
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  process.stdout.write(`${JSON.stringify({ listen: `http://127.0.0.1:${port}` })}\n`);
});
// The runner's IPC channel closes when it dies, even by SIGKILL: do not outlive it.
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
