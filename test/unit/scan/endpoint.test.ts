import { describe, expect, it } from 'vitest';
import { isBenignLiteral, parseDestination } from '../../../src/scan/index.js';

describe('parseDestination', () => {
  it.each([
    ['https://api.partner.org/v1', { host: 'api.partner.org', port: 443, ip: null }],
    ['http://api.partner.org', { host: 'api.partner.org', port: 80, ip: null }],
    ['https://API.Partner.ORG.:8443/x', { host: 'api.partner.org', port: 8443, ip: null }],
    // userinfo is never the host (the earlier tool took `user` here)
    ['https://user:pass@api.partner.org/', { host: 'api.partner.org', port: 443, ip: null }],
    ['https://a@b@api.partner.org/', { host: 'api.partner.org', port: 443, ip: null }],
    ['http://[::1]:8080/x', { host: '::1', port: 8080, ip: '::1' }],
    ['http://[2001:db8::5]/', { host: '2001:db8::5', port: 80, ip: '2001:db8::5' }],
    ['http://10.1.2.3:9000/metrics', { host: '10.1.2.3', port: 9000, ip: '10.1.2.3' }],
    ['postgres://u:p@db.partner.org/app', { host: 'db.partner.org', port: 5432, ip: null }],
    [
      'mongodb://a.partner.org:27018,b.partner.org:27018/app',
      { host: 'a.partner.org', port: 27018, ip: null },
    ],
    [
      'mongodb+srv://u:p@cluster0.partner.net/app',
      { host: 'cluster0.partner.net', port: 0, ip: null },
    ],
    ['jdbc:postgresql://pg.partner.org:5433/app', { host: 'pg.partner.org', port: 5433, ip: null }],
    [
      'jdbc:sqlserver://sql.partner.org;databaseName=ehr',
      { host: 'sql.partner.org', port: 1433, ip: null },
    ],
    ['wss://ws.partner.org/socket', { host: 'ws.partner.org', port: 443, ip: null }],
    ['192.168.1.100:8080', { host: '192.168.1.100', port: 8080, ip: '192.168.1.100' }],
    ['10.1.2.3', { host: '10.1.2.3', port: 0, ip: '10.1.2.3' }],
    ['warehouse.internal.org', { host: 'warehouse.internal.org', port: 0, ip: null }],
    ['api.partner.org/v1/chat', { host: 'api.partner.org', port: 0, ip: null }],
  ])('%s', (endpoint, expected) => {
    expect(parseDestination(endpoint)).toEqual(expected);
  });

  it('uses a port hint only when the endpoint gives none', () => {
    expect(parseDestination('db.partner.org', 5439)).toEqual({
      host: 'db.partner.org',
      port: 5439,
      ip: null,
    });
    expect(parseDestination('https://db.partner.org', 5439)?.port).toBe(443);
  });

  it.each(['https://{host}/v1', '/api/users', '', 'https://', 'not a host'])(
    'no destination in %j',
    (s) => {
      expect(parseDestination(s)).toBeNull();
    },
  );
});

describe("isBenignLiteral (the analyzers' filter)", () => {
  it.each([
    ['http://localhost:8000', true],
    ['http://app.localhost/', true],
    ['http://127.0.0.1/x', true],
    ['http://[::1]:80/', true],
    ['https://example.com', true],
    ['https://api.example.com', true],
    ['https://www.example.org/x', true],
    ['http://schemas.microsoft.com/x', true],
    ['localhost', true],
    ['https://localhost@evil.partner.org', false],
    ['https://api.partner.org', false],
    ['db.internal', false],
  ])('%s → %s', (value, benign) => {
    expect(isBenignLiteral(value)).toBe(benign);
  });
});
