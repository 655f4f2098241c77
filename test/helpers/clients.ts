import { spawnSync } from 'node:child_process';

/**
 * Real client programs used by integration tests. When one is missing, a developer's run skips
 * the tests that need it with a line saying how to install it; in CI (CI=true) a missing client
 * is a failure.
 */
const CLIENTS = {
  curl: { probe: ['curl', ['--version']], install: 'apt-get install curl' },
  python3: {
    probe: ['python3', ['-c', 'import requests']],
    install: 'apt-get install python3-requests',
  },
  rscript: {
    probe: ['Rscript', ['-e', 'library(httr); library(curl)']],
    install: 'apt-get install r-base-core r-cran-httr r-cran-curl',
  },
  git: { probe: ['git', ['--version']], install: 'apt-get install git' },
  wget: { probe: ['wget', ['--version']], install: 'apt-get install wget' },
  chromium: { probe: ['chromium', ['--version']], install: 'apt-get install chromium' },
  // `run --isolate`: network namespaces (user namespaces too when not root) and ip(8).
  isolation: {
    probe: [
      'sh',
      [
        '-c',
        '(unshare --user --map-root-user --net true || unshare --net true) 2>/dev/null && { command -v ip || test -x /usr/sbin/ip || test -x /sbin/ip; }',
      ],
    ],
    install:
      'apt-get install util-linux iproute2 (and, as a user other than root, allow user namespaces: sysctl kernel.unprivileged_userns_clone=1)',
  },
  certutil: {
    probe: ['sh', ['-c', 'command -v certutil']],
    install: 'apt-get install libnss3-tools',
  },
} as const satisfies Record<string, { probe: [string, string[]]; install: string }>;

export type ClientName = keyof typeof CLIENTS;

const cache = new Map<ClientName, boolean>();

export function hasClient(name: ClientName): boolean {
  let ok = cache.get(name);
  if (ok === undefined) {
    const [cmd, args] = CLIENTS[name].probe;
    const r = spawnSync(cmd, args, { stdio: 'ignore', timeout: 30_000 });
    ok = r.status === 0;
    cache.set(name, ok);
  }
  return ok;
}

/**
 * Returns true when the client is there. When it is not: throws in CI, and otherwise prints how
 * to install it and returns false (the caller skips).
 */
export function requireClient(name: ClientName): boolean {
  if (hasClient(name)) return true;
  const msg = `${name} is missing; install it with: ${CLIENTS[name].install}`;
  if (process.env.CI) throw new Error(`${msg} (CI requires every real client)`);
  console.warn(`skipping tests that need ${msg}`);
  return false;
}
