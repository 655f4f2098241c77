import { webcrypto, type X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile, mkdir, chmod } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingHttpHeaders } from 'node:http';
import { createServer as createNetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { TLSSocket, connect, type SecureContext } from 'node:tls';
import { dataPaths, type DataPaths } from '../../../src/core/index.js';
import type { LeafMinter } from '../../../src/ca/index.js';
import { x509 } from '../../helpers/pki.js';
import { pemEncode } from '../../../src/ca/der.js';

const dirs: string[] = [];

/** Paths of a data directory that does not exist yet, inside a fresh temporary folder. */
export async function tempPaths(): Promise<DataPaths> {
  const d = await mkdtemp(join(tmpdir(), 'trustrun-ca-'));
  dirs.push(d);
  return dataPaths(join(d, 'data'));
}

/** A fresh temporary folder (removed by cleanupTemp). */
export async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'trustrun-ca-'));
  dirs.push(d);
  return d;
}

export async function cleanupTemp(): Promise<void> {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
}

export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  servername: string | false | null;
}

export interface HttpsTestServer {
  port: number;
  requests: SeenRequest[];
  close(): Promise<void>;
}

/**
 * An HTTPS server on 127.0.0.1 (or `host`) whose certificates come from the minter: SNI picks
 * the leaf; clients that send no SNI (IP literals) get the leaf of `defaultHost`. Built as the
 * proxy builds its TLS side: plain TCP, then a server TLSSocket, then the HTTP parser.
 */
export async function startHttps(
  minter: LeafMinter,
  opts: { host?: string; defaultHost?: string } = {},
): Promise<HttpsTestServer> {
  const host = opts.host ?? '127.0.0.1';
  const defaultContext: SecureContext = await minter.getSecureContext(opts.defaultHost ?? host);
  const requests: SeenRequest[] = [];
  const sockets = new Set<Socket>();
  const http = createHttpServer((req, res) => {
    const servername = (req.socket as TLSSocket).servername;
    requests.push({
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      servername,
    });
    res.setHeader('content-type', 'text/plain');
    res.end(`hello from ${req.headers.host} ua=${req.headers['user-agent'] ?? ''}\n`);
  });
  const server = createNetServer((raw) => {
    sockets.add(raw);
    raw.on('close', () => sockets.delete(raw));
    const tlsSocket = new TLSSocket(raw, {
      isServer: true,
      secureContext: defaultContext,
      SNICallback: minter.sniCallback(),
    });
    tlsSocket.on('error', () => tlsSocket.destroy());
    tlsSocket.on('secure', () => http.emit('connection', tlsSocket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  return {
    port: address.port,
    requests,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      http.close();
    },
  };
}

export interface PeerResult {
  cert: X509Certificate;
  authorized: boolean;
  authorizationError: string | null;
}

/** Handshakes with the server and returns the leaf it presented (verification against `ca`). */
export function peerCertificate(
  port: number,
  opts: { host?: string; servername?: string; ca: string },
): Promise<PeerResult> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: opts.host ?? '127.0.0.1',
      port,
      servername: opts.servername,
      ca: opts.ca,
      rejectUnauthorized: false,
    });
    socket.once('secureConnect', () => {
      const cert = socket.getPeerX509Certificate();
      const error = socket.authorizationError;
      socket.end();
      if (!cert) return reject(new Error('no peer certificate'));
      resolve({
        cert,
        authorized: socket.authorized,
        authorizationError: error ? String(error) : null,
      });
    });
    socket.once('error', reject);
  });
}

export function opensslText(der: Buffer): string {
  const r = spawnSync('openssl', ['x509', '-inform', 'DER', '-noout', '-text'], { input: der });
  if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

/**
 * Writes a CA made here (not by loadOrCreateCa) into `paths`, for the cases the module must
 * handle with a CA it did not create: short validity, already expired, not a CA.
 */
export async function writeCustomCa(
  paths: DataPaths,
  opts: { notBefore: Date; notAfter: Date; isCa?: boolean },
): Promise<void> {
  const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: [{ CN: ['Custom test CA'] }],
    notBefore: opts.notBefore,
    notAfter: opts.notAfter,
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [
      new x509.BasicConstraintsExtension(opts.isCa ?? true, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  await mkdir(paths.caDir, { recursive: true, mode: 0o700 });
  await writeFile(paths.caKey, pemEncode('PRIVATE KEY', pkcs8), { mode: 0o600 });
  await chmod(paths.caKey, 0o600);
  await writeFile(paths.caCert, pemEncode('CERTIFICATE', Buffer.from(cert.rawData)));
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a program without blocking the event loop (the test's own servers must keep answering
 * while it runs).
 */
export function run(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Variables through which the machine's own trust or proxy settings could leak into a test. */
const INHERITED =
  /^(?:.*_proxy|.*_PROXY|SSL_CERT_.*|CURL_CA_BUNDLE|REQUESTS_CA_BUNDLE|GIT_SSL_CAINFO|AWS_CA_BUNDLE|PIP_CERT|CARGO_HTTP_CAINFO|DENO_CERT|PERL_LWP_SSL_CA_FILE|NODE_EXTRA_CA_CERTS|NODE_OPTIONS|R_PROFILE|WGETRC|HTTPLIB2_CA_CERTS|GRPC_DEFAULT_SSL_ROOTS_FILE_PATH|CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE|NIX_SSL_CERT_FILE)$/;

/** process.env without any trust-store or proxy variable, plus `extra`. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!INHERITED.test(k)) env[k] = v;
  return { ...env, ...extra };
}
