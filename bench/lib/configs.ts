/**
 * The configurations measured side by side, each started as its own process (except direct):
 * a plain Node CONNECT tunnel, `trustrun proxy` at each capture level, mitmdump and Squid with
 * ssl_bump. Each start function returns a Config or throws with the reason it cannot run.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeSquidCa, type UpstreamPki } from './certs.js';
import { ROOT, freePort, spawnChild, undiciEntry, waitForPort, type Spawned } from './children.js';
import type { ProfiledStart, Profiles } from './profiles.js';
import type { Target } from './protocol.js';

export interface Config {
  name: string;
  /** The process whose CPU time and memory are measured (null for direct). */
  pid: number | null;
  target: Target;
  version: string | null;
  stop(): Promise<void>;
}

export interface StartEnv {
  /** The run's temporary directory. */
  tmp: string;
  pki: UpstreamPki;
  upstreamPort: number;
  /** The upstream's 127.0.0.2:443 listener is up (Squid cannot remap ports). */
  squidUpstream: boolean;
  /** Every name the run will request, for Squid's hosts file. */
  hostNames: string[];
  tunnelScript: string;
  /** With --profile: the trustrun configurations and the Node relays run under the CPU profiler. */
  profiles?: Profiles;
}

/** Environment for child programs: no proxy variables, no loader options inherited. */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(https?_proxy|all_proxy|no_proxy|node_options|trustrun_.*)$/i.test(k)) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

function which(cmd: string): string | null {
  for (const dir of [
    '/usr/bin',
    '/usr/sbin',
    '/usr/local/bin',
    '/usr/local/sbin',
    ...(process.env.PATH ?? '').split(':'),
  ]) {
    if (dir && existsSync(join(dir, cmd))) return join(dir, cmd);
  }
  return null;
}

async function until<T>(
  what: string,
  timeoutMs: number,
  probe: () => T | null,
  alive: () => boolean,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = probe();
    if (v !== null) return v;
    if (!alive()) throw new Error(`exited before ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no ${what} after ${timeoutMs} ms`);
}

const isAlive = (p: Spawned) => () => p.child.exitCode === null && p.child.signalCode === null;

export function direct(env: StartEnv): Config {
  return {
    name: 'direct',
    pid: null,
    target: { kind: 'direct', upstreamPort: env.upstreamPort, ca: env.pki.caPem },
    version: null,
    stop: async () => undefined,
  };
}

/** The Node floors of bench/children/tunnel.ts, by mode: see that file. */
const FLOORS = { tunnel: 'tunnel', tls: 'tls-relay', http: 'http-relay' } as const;

export async function tunnel(env: StartEnv, mode: keyof typeof FLOORS = 'tunnel'): Promise<Config> {
  const name = FLOORS[mode];
  const profiled = mode === 'tunnel' ? undefined : env.profiles?.start(name);
  const p = spawnChild(
    process.execPath,
    [...(profiled?.nodeArgs ?? []), env.tunnelScript],
    join(env.tmp, `${name}.log`),
    {
      ipc: true,
      env: childEnv({
        BENCH_TUNNEL_MODE: mode,
        BENCH_TUNNEL_MAP: JSON.stringify({
          suffix: '.bench.test',
          port: 443,
          to: `127.0.0.1:${env.upstreamPort}`,
        }),
        // The relays' own certificate, from the upstream's CA (which the client trusts).
        BENCH_TUNNEL_TLS: JSON.stringify({
          cert: env.pki.relayCertFile,
          key: env.pki.relayKeyFile,
          ca: env.pki.caFile,
        }),
        BENCH_UNDICI: undiciEntry(),
      }),
    },
  );
  try {
    const { listen } = await p.firstJson<{ listen: string }>(15_000);
    return {
      name,
      pid: p.pid,
      target: { kind: 'proxy', proxyUrl: listen, ca: env.pki.caPem },
      version: process.version,
      stop: () => p.stop(),
    };
  } catch (err) {
    await p.stop(1000);
    throw err;
  }
}

/** The trustrun entry point: bin/trustrun.js of this checkout, or BENCH_TRUSTRUN_BIN. */
export function trustrunBin(): string {
  return process.env.BENCH_TRUSTRUN_BIN || join(ROOT, 'bin', 'trustrun.js');
}

/**
 * Extra `node` options for the trustrun process (BENCH_TRUSTRUN_NODE_ARGS, space-separated, e.g.
 * `--max-semi-space-size=8`): NODE_OPTIONS is not passed on to the children.
 */
export function trustrunNodeArgs(): string[] {
  return (process.env.BENCH_TRUSTRUN_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
}

/**
 * How to start trustrun with `args`: bin/trustrun.js run as a program, as the installed command
 * is (its launcher sets the runtime's memory options); with BENCH_TRUSTRUN_NODE_ARGS or
 * BENCH_TRUSTRUN_BIN, `node [ARGS] FILE` instead (those options replace the launcher's).
 */
export function trustrunCommand(
  args: string[],
  profiled?: ProfiledStart,
): { command: string; args: string[]; env: Record<string, string> } {
  const nodeArgs = trustrunNodeArgs();
  if (process.env.BENCH_TRUSTRUN_BIN || nodeArgs.length > 0) {
    return {
      command: process.execPath,
      args: [...nodeArgs, ...(profiled?.nodeArgs ?? []), trustrunBin(), ...args],
      env: {},
    };
  }
  return { command: trustrunBin(), args, env: profiled?.env ?? {} };
}

/** Whether this checkout's CLI has the proxy command yet (dist must be built). */
export function trustrunAvailable(): string | null {
  if (!process.env.BENCH_TRUSTRUN_BIN && !existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) {
    return 'dist/ is not built (npx tsc -p tsconfig.build.json)';
  }
  try {
    const cmd = trustrunCommand(['proxy', '--help']);
    execFileSync(cmd.command, cmd.args, {
      stdio: 'pipe',
      timeout: 30_000,
      env: childEnv(),
    });
    return null;
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    const text = (e.stderr?.toString() ?? e.message).trim().split('\n')[0];
    return `\`trustrun proxy\` is not available in this build: ${text}`;
  }
}

/**
 * The policy every trustrun configuration runs with, so that the figures include policy
 * evaluation at CONNECT and per request: a clinical-style policy (an inherited preset, blocks,
 * address rules, method/path rules) whose rules for the benchmark's hosts come after the others
 * (a request is checked against the rules before it), and `defaults: block`.
 */
export const BENCH_POLICY = `version: 2
name: bench-clinical
description: a research team's policy, with the benchmark's upstream as its allowed API
inherit: [preset:azure]
rules:
  - match: "*.openai.com"
    action: block
    reason: direct OpenAI API bypasses the BAA
  - match: "*.anthropic.com"
    action: block
  - match: "*.googleapis.com"
    action: alert
  - match: 10.0.0.0/8
    ports: [5432]
    action: allow
    reason: research database
  - match: 192.168.0.0/16
    action: block
  - match: cran.r-project.org
    methods: [GET]
    action: allow
  - match: "*.pypi.org"
    methods: [GET]
    action: allow
  - match: files.pythonhosted.org
    methods: [GET]
    action: allow
  - match: github.com
    methods: [GET]
    paths: ["/myorg/*"]
    action: allow
  - match: "*.bench.test"
    methods: [GET, POST]
    paths: ["/1k", "/1m", "/stream", "/sink"]
    action: allow
    reason: the benchmark's upstream
  - match: "*.bench.test"
    action: allow
    reason: the same at the metadata level, where no request is seen
defaults:
  action: block
`;

export async function trustrun(
  env: StartEnv,
  level: 'metadata' | 'headers' | 'full',
): Promise<Config> {
  const dataDir = join(env.tmp, `trustrun-${level}`);
  mkdirSync(dataDir, { mode: 0o700 });
  const policyFile = join(env.tmp, 'policy.yaml');
  writeFileSync(policyFile, BENCH_POLICY, { mode: 0o600 });
  const name = `trustrun-${level}`;
  const cmd = trustrunCommand(
    [
      'proxy',
      '--policy',
      policyFile,
      '--port',
      '0',
      '--level',
      level,
      '--data-dir',
      dataDir,
      '--upstream-ca',
      env.pki.caFile,
      '--resolve',
      `*.bench.test:443:127.0.0.1:${env.upstreamPort}`,
      '--json',
    ],
    env.profiles?.start(name),
  );
  const p = spawnChild(cmd.command, cmd.args, join(env.tmp, `${name}.log`), {
    cwd: ROOT,
    env: childEnv({ TRUSTRUN_HOME: dataDir, ...cmd.env }),
  });
  try {
    const info = await p.firstJson<{ listen: string; ca?: string }>(60_000);
    const caFile = info.ca ?? join(dataDir, 'ca', 'ca.pem');
    // At the metadata level the tunnel is not intercepted: the client sees the upstream's own
    // certificate. At headers and full it sees a leaf minted by trustrun's CA.
    const ca = level === 'metadata' ? env.pki.caPem : readFileSync(caFile, 'utf8');
    return {
      name,
      pid: p.pid,
      target: { kind: 'proxy', proxyUrl: info.listen, ca },
      version: (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string })
        .version,
      stop: () => p.stop(10_000),
    };
  } catch (err) {
    await p.stop(1000);
    throw err;
  }
}

export async function mitmdump(env: StartEnv): Promise<Config> {
  const bin = which('mitmdump');
  if (!bin) throw new Error('mitmdump is not installed (apt-get install mitmproxy)');
  const dir = join(env.tmp, 'mitmproxy');
  mkdirSync(dir, { mode: 0o700 });
  const addon = join(dir, 'remap.py');
  // With connection_strategy=lazy the server_connect hook can point every *.bench.test
  // connection at the local upstream; SNI and certificate checks keep the real name.
  writeFileSync(
    addon,
    [
      `UPSTREAM = ("127.0.0.1", ${env.upstreamPort})`,
      'class Remap:',
      '    def server_connect(self, data):',
      '        address = data.server.address',
      '        if address and str(address[0]).lower().endswith(".bench.test"):',
      '            data.server.address = UPSTREAM',
      'addons = [Remap()]',
      '',
    ].join('\n'),
  );
  const version =
    execFileSync(bin, ['--version'], { encoding: 'utf8', timeout: 30_000 })
      .split('\n')[0]
      ?.replace(/^Mitmproxy:\s*/i, 'mitmproxy ')
      .trim() ?? null;
  const port = await freePort();
  const p = spawnChild(
    bin,
    [
      '-q',
      '--set',
      'flow_detail=0',
      '--listen-host',
      '127.0.0.1',
      '-p',
      String(port),
      '--set',
      `confdir=${dir}`,
      '--set',
      'connection_strategy=lazy',
      '--set',
      `ssl_verify_upstream_trusted_ca=${env.pki.caFile}`,
      '-s',
      addon,
    ],
    join(env.tmp, 'mitmdump.log'),
    { env: childEnv() },
  );
  try {
    await waitForPort('127.0.0.1', port, 60_000, isAlive(p));
    const caFile = join(dir, 'mitmproxy-ca-cert.pem');
    const ca = await until(
      'mitmproxy CA',
      30_000,
      () => (existsSync(caFile) ? readFileSync(caFile, 'utf8') : null),
      isAlive(p),
    );
    return {
      name: 'mitmdump',
      pid: p.pid,
      target: { kind: 'proxy', proxyUrl: `http://127.0.0.1:${port}`, ca },
      version,
      stop: () => p.stop(),
    };
  } catch (err) {
    await p.stop(1000);
    throw new Error(`${(err as Error).message}; log: ${p.logTail()}`);
  }
}

export async function squid(env: StartEnv): Promise<Config> {
  const bin = which('squid');
  const certgen = '/usr/lib/squid/security_file_certgen';
  if (!bin || !existsSync(certgen))
    throw new Error('Squid with ssl_bump is not installed (apt-get install squid-openssl)');
  if (!env.squidUpstream)
    throw new Error(
      'the upstream could not listen on 127.0.0.2:443, which Squid needs (it cannot remap ports)',
    );
  const dir = join(env.tmp, 'squid');
  mkdirSync(dir);
  // The `proxy` user runs Squid's helpers: it must reach the directory and read the CA key.
  chmodSync(env.tmp, 0o755);
  chmodSync(dir, 0o755);
  const ca = makeSquidCa(dir);
  const db = join(dir, 'ssl_db');
  execFileSync(certgen, ['-c', '-s', db, '-M', '16MB'], { stdio: 'pipe', timeout: 30_000 });
  writeFileSync(join(dir, 'hosts'), `127.0.0.2 ${env.hostNames.join(' ')}\n`);
  const port = await freePort();
  const conf = join(dir, 'squid.conf');
  writeFileSync(
    conf,
    [
      `http_port 127.0.0.1:${port} ssl-bump tls-cert=${ca.certFile} tls-key=${ca.keyFile} generate-host-certificates=on dynamic_cert_mem_cache_size=16MB`,
      `sslcrtd_program ${certgen} -s ${db} -M 16MB`,
      'sslcrtd_children 5 startup=1 idle=1',
      'acl step1 at_step SslBump1',
      'ssl_bump peek step1',
      'ssl_bump bump all',
      `tls_outgoing_options cafile=${env.pki.caFile}`,
      `hosts_file ${join(dir, 'hosts')}`,
      'dns_nameservers 127.0.0.1',
      'acl loopback src 127.0.0.0/8',
      'http_access allow loopback',
      'http_access deny all',
      'cache deny all',
      'access_log none',
      'cache_store_log none',
      `cache_log ${join(dir, 'cache.log')}`,
      `pid_filename ${join(dir, 'squid.pid')}`,
      `coredump_dir ${dir}`,
      'netdb_filename none',
      'pinger_enable off',
      'workers 1',
      'cache_effective_user proxy',
      'shutdown_lifetime 0 seconds',
      '',
    ].join('\n'),
  );
  execFileSync('chown', ['-R', 'proxy:proxy', dir], { stdio: 'pipe' });
  execFileSync('chmod', ['0644', env.pki.caFile], { stdio: 'pipe' });
  const version =
    execFileSync(bin, ['-v'], { encoding: 'utf8', timeout: 30_000 }).split('\n')[0]?.trim() ?? null;
  const p = spawnChild(bin, ['-N', '-f', conf], join(env.tmp, 'squid.log'), { env: childEnv() });
  try {
    await waitForPort('127.0.0.1', port, 60_000, isAlive(p));
    return {
      name: 'squid',
      pid: p.pid,
      target: { kind: 'proxy', proxyUrl: `http://127.0.0.1:${port}`, ca: ca.certPem },
      version,
      stop: () => p.stop(),
    };
  } catch (err) {
    await p.stop(1000);
    let cacheLog = '';
    try {
      cacheLog = readFileSync(join(dir, 'cache.log'), 'utf8').slice(-800);
    } catch {
      // none
    }
    throw new Error(`${(err as Error).message}; log: ${p.logTail()} ${cacheLog}`);
  }
}
