import { describe, expect, it } from 'vitest';
import * as undici from 'undici';
import { UndiciAgent, undiciConnector } from '../../../src/proxy/upstream.js';

describe('the proxy loads two undici modules, not its main entry', () => {
  it('gets the same Agent class and connector builder the main entry exports', () => {
    expect(UndiciAgent).toBe(undici.Agent);
    expect(undiciConnector).toBe(undici.buildConnector);
  });
});
