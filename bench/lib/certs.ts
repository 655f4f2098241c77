/**
 * Test certificates made at run time with the openssl CLI, in a temporary directory that the
 * run deletes: a CA for the local upstream, its server certificate (api.bench.test and
 * *.bench.test) and the Node relays' certificate for the same names, and an RSA CA for Squid's
 * ssl_bump. No key is ever written into the repository.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface UpstreamPki {
  caFile: string;
  caPem: string;
  certFile: string;
  keyFile: string;
  /** The certificate (same names, same CA) the Node relays terminate the client's TLS with. */
  relayCertFile: string;
  relayKeyFile: string;
}

export interface CaPair {
  certFile: string;
  keyFile: string;
  certPem: string;
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 });
}

function makeCa(dir: string, name: string, subject: string, keyArgs: string[]): CaPair {
  const certFile = join(dir, `${name}.pem`);
  const keyFile = join(dir, `${name}.key`);
  openssl([
    'req',
    '-x509',
    '-new',
    ...keyArgs,
    '-nodes',
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-days',
    '2',
    '-subj',
    subject,
    '-addext',
    'basicConstraints=critical,CA:TRUE,pathlen:0',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return { certFile, keyFile, certPem: readFileSync(certFile, 'utf8') };
}

const EC_P256 = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];

/** A server certificate for api.bench.test and *.bench.test, signed by `ca`. */
function makeLeaf(
  dir: string,
  name: string,
  ca: CaPair,
  cn: string,
  serial: number,
): { certFile: string; keyFile: string } {
  const keyFile = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const certFile = join(dir, `${name}.pem`);
  const ext = join(dir, `${name}.ext`);
  openssl([
    'req',
    '-new',
    ...EC_P256,
    '-nodes',
    '-keyout',
    keyFile,
    '-out',
    csr,
    '-subj',
    `/CN=${cn}`,
  ]);
  writeFileSync(
    ext,
    'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' +
      'subjectAltName=DNS:api.bench.test,DNS:*.bench.test\n',
  );
  openssl([
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca.certFile,
    '-CAkey',
    ca.keyFile,
    '-set_serial',
    String(serial),
    '-days',
    '2',
    '-out',
    certFile,
    '-extfile',
    ext,
  ]);
  return { certFile, keyFile };
}

/**
 * The upstream's CA and its server certificate for api.bench.test and *.bench.test, and a second
 * certificate for the same names that the Node relays show their clients (so that a client can
 * tell it talks to the relay, not through it).
 */
export function makeUpstreamPki(dir: string): UpstreamPki {
  const ca = makeCa(dir, 'upstream-ca', '/CN=TrustRun bench upstream CA', EC_P256);
  const leaf = makeLeaf(dir, 'upstream', ca, 'api.bench.test', 2);
  const relay = makeLeaf(dir, 'relay', ca, 'bench relay', 3);
  return {
    caFile: ca.certFile,
    caPem: ca.certPem,
    ...leaf,
    relayCertFile: relay.certFile,
    relayKeyFile: relay.keyFile,
  };
}

/** An RSA 2048 CA for Squid's certificate generator (which signs leaf certs with it). */
export function makeSquidCa(dir: string): CaPair {
  return makeCa(dir, 'squid-ca', '/CN=TrustRun bench Squid CA', ['-newkey', 'rsa:2048']);
}
