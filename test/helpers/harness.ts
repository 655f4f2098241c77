import type { SecureContext } from 'node:tls';
import { createSecureContext } from 'node:tls';
import {
  InterceptingProxy,
  DEFAULT_LIMITS,
  type ProxyOptions,
  type PolicyGate,
  type ContextSource,
} from '../../src/proxy/index.js';
import { silentLogger, type CaptureLevel, type Logger } from '../../src/core/index.js';
import { MemoryRecorder } from './memory-recorder.js';
import { makeLeaf, makeTestCa, type TestCa } from './pki.js';

/** Stands in for the CA module in proxy tests: leaves minted by a test CA, counted. */
export class TestContexts implements ContextSource {
  minted = 0;
  private readonly cache = new Map<string, Promise<SecureContext>>();
  constructor(readonly ca: TestCa) {}
  getSecureContext(hostname: string): Promise<SecureContext> {
    let p = this.cache.get(hostname);
    if (!p) {
      this.minted++;
      p = makeLeaf(this.ca, [hostname]).then((l) =>
        createSecureContext({ key: l.keyPem, cert: l.certPem }),
      );
      this.cache.set(hostname, p);
    }
    return p;
  }
}

export interface Harness {
  proxy: InterceptingProxy;
  recorder: MemoryRecorder;
  url: string;
  port: number;
  proxyCa: TestCa;
  close(): Promise<void>;
}

export async function startProxy(
  opts: Partial<ProxyOptions> & {
    level: CaptureLevel;
    policy?: PolicyGate | null;
    proxyCa?: TestCa;
    /** The certificate source (default: leaves minted by `proxyCa`). */
    contexts?: ContextSource;
    /** Told the size of each body chunk relayed (default: the proxy's own Reclaimer). */
    relayed?: (bytes: number) => void;
    /** The proxy's logger (default: silent). */
    logger?: Logger;
  },
): Promise<Harness> {
  const recorder = new MemoryRecorder();
  const proxyCa = opts.proxyCa ?? (await makeTestCa('Proxy Test CA'));
  const proxy = new InterceptingProxy(
    {
      host: '127.0.0.1',
      port: 0,
      maxBody: 1024 * 1024,
      upstreamCa: [],
      resolve: [],
      onStoreError: 'fail',
      guardPorts: [],
      limits: DEFAULT_LIMITS,
      ...opts,
    },
    {
      recorder,
      sessionId: 'test-session',
      contexts: opts.contexts ?? new TestContexts(proxyCa),
      policy: opts.policy ?? null,
      logger: opts.logger ?? silentLogger(),
      ...(opts.relayed ? { relayed: opts.relayed } : {}),
    },
  );
  const addr = await proxy.listen();
  return {
    proxy,
    recorder,
    proxyCa,
    port: addr.port,
    url: `http://127.0.0.1:${addr.port}`,
    close: () => proxy.close(),
  };
}
