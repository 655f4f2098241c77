import { TLSSocket } from 'node:tls';
import { describe, expect, it } from 'vitest';
import * as undici from 'undici';
import { UndiciAgent, undiciConnector } from '../../../src/proxy/upstream.js';
import { makeLeaf, makeTestCa } from '../../helpers/pki.js';
import { startUpstream } from '../../helpers/upstream.js';

describe('the proxy loads two undici modules, not its main entry', () => {
  it('gets the same Agent class and connector builder the main entry exports', () => {
    expect(UndiciAgent).toBe(undici.Agent);
    expect(undiciConnector).toBe(undici.buildConnector);
  });

  it('gets back from the connector the TLS socket it then hands to the callback', async () => {
    // leafOnlyUntilConnected (src/proxy/upstream.ts) relies on this: the return value is not in
    // undici's types
    const ca = await makeTestCa();
    const upstream = await startUpstream({ leaf: await makeLeaf(ca, ['api.example.test']) });
    try {
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
    } finally {
      await upstream.close();
    }
  });
});
