import { TLSSocket, checkServerIdentity, connect, type PeerCertificate } from 'node:tls';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  createUpstream,
  leafOnlyUntilConnected,
  undiciConnector,
} from '../../../src/proxy/upstream.js';
import { Resolver } from '../../../src/proxy/resolve.js';
import { parseResolveRule } from '../../../src/proxy/index.js';
import { makeLeaf, makeTestCa, type TestCa } from '../../helpers/pki.js';
import { startUpstream, type TestUpstream } from '../../helpers/upstream.js';

let ca: TestCa;
let upstream: TestUpstream;

beforeAll(async () => {
  ca = await makeTestCa();
  upstream = await startUpstream({ leaf: await makeLeaf(ca, ['api.example.test']) });
});
afterAll(async () => {
  await upstream.close();
});
afterEach(() => {
  vi.restoreAllMocks();
});

/** Connects as the proxy's connector does; resolves with what the name check was given. */
function handshake(
  servername: string,
): Promise<{ socket: TLSSocket; checked: PeerCertificate | null; error: Error | null }> {
  let checked: PeerCertificate | null = null;
  const socket = connect({
    host: '127.0.0.1',
    port: upstream.port,
    servername,
    ca: [ca.certPem],
    checkServerIdentity: (host, cert) => {
      checked = cert;
      return checkServerIdentity(host, cert);
    },
  });
  const restore = leafOnlyUntilConnected(socket);
  return new Promise((resolve) => {
    socket.once('secureConnect', () => {
      restore();
      resolve({ socket, checked, error: null });
    });
    socket.once('error', (error) => {
      restore();
      resolve({ socket, checked, error });
    });
  });
}

describe('leafOnlyUntilConnected', () => {
  it("gives Node's name check the leaf alone, then the socket's own method again", async () => {
    const { socket, checked, error } = await handshake('api.example.test');
    try {
      expect(error).toBeNull();
      expect(checked).not.toBeNull();
      expect(checked!.subjectaltname).toBe('DNS:api.example.test');
      // the detailed form links each certificate to its issuer; the leaf alone does not
      expect(checked).not.toHaveProperty('issuerCertificate');
      expect(Object.hasOwn(socket, 'getPeerCertificate')).toBe(false);
      expect(socket.getPeerCertificate(true).issuerCertificate.subject.CN).toBe('Upstream Test CA');
    } finally {
      socket.destroy();
    }
  });

  it('still refuses a certificate for another name', async () => {
    const { socket, checked, error } = await handshake('other.example.test');
    socket.destroy();
    expect(checked).not.toBeNull();
    expect(error).toMatchObject({ code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
  });

  it('leaves anything but a TLS socket alone', () => {
    const plain = { getPeerCertificate: 'untouched' };
    leafOnlyUntilConnected(plain)();
    expect(plain.getPeerCertificate).toBe('untouched');
  });
});

describe('the upstream pool', () => {
  it("gets back from undici's connector the TLS socket it then hands to the callback", async () => {
    // leafOnlyUntilConnected relies on this: the return value is not in undici's types
    const connect = undiciConnector({ ca: [ca.certPem] });
    let returned: unknown;
    const given = await new Promise<unknown>((resolve, reject) => {
      returned = (connect as (...a: unknown[]) => unknown)(
        {
          hostname: '127.0.0.1',
          protocol: 'https:',
          port: String(upstream.port),
          servername: 'api.example.test',
        },
        (err: Error | null, socket: unknown) => (err ? reject(err) : resolve(socket)),
      );
    });
    expect(returned).toBeInstanceOf(TLSSocket);
    expect(given).toBe(returned);
    (given as TLSSocket).destroy();
  });

  it('never has the peer chain converted while dialing', async () => {
    const calls: unknown[][] = [];
    const original = TLSSocket.prototype.getPeerCertificate;
    vi.spyOn(TLSSocket.prototype, 'getPeerCertificate').mockImplementation(function (
      this: TLSSocket,
      ...args: unknown[]
    ) {
      calls.push(args);
      return (original as (...a: unknown[]) => PeerCertificate).apply(this, args);
    });
    const { agent } = createUpstream({
      resolver: new Resolver([parseResolveRule(`api.example.test:443:127.0.0.1:${upstream.port}`)]),
      extraCa: [ca.certPem],
      connectTimeoutMs: 5_000,
      headersTimeoutMs: 5_000,
      predialIdleMs: 1_000,
      guard: () => null,
    });
    try {
      const res = await request('https://api.example.test/', { dispatcher: agent });
      await res.body.text();
      expect(res.statusCode).toBe(200);
      expect(calls).toEqual([[false]]);
    } finally {
      await agent.close();
    }
  });
});
