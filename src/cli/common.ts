import { InvalidArgumentError, type Command } from 'commander';
import { TrustRunError, resolveDataDir } from '../core/index.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

/** Options every command accepts. */
export interface CommonOptions {
  dataDir?: string;
  json?: boolean;
}

export function addDataDirOption(cmd: Command): Command {
  return cmd.option(
    '--data-dir <dir>',
    'data directory (default: $TRUSTRUN_HOME, else $XDG_DATA_HOME/trustrun, else ~/.local/share/trustrun)',
  );
}

export function dataDirFrom(opts: CommonOptions): string {
  return resolveDataDir(opts.dataDir);
}

/** Parses a whole number within bounds, for commander options. */
export function intOption(name: string, min: number, max: number) {
  return (value: string): number => {
    if (!/^\d+$/.test(value)) {
      throw new InvalidArgumentError(`${name} must be a whole number, got '${value}'`);
    }
    const n = Number(value);
    if (n < min || n > max) {
      throw new InvalidArgumentError(`${name} must be between ${min} and ${max}, got ${n}`);
    }
    return n;
  };
}

/** Collects a repeatable option into an array. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function usageError(message: string): TrustRunError {
  return new TrustRunError('TR_USAGE', message);
}

/** Machine output: one JSON document on stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** The name lookups of the socket monitor (`run`, `watch`), as options. */
export interface LookupOptions {
  dnsTimeout?: number;
  whoisTimeout?: number;
  /** false: no whois (commander's --no-whois). */
  whois?: boolean;
}

/** --dns-timeout, --whois-timeout and --no-whois. */
export function addLookupOptions(cmd: Command): Command {
  return cmd
    .option(
      '--dns-timeout <ms>',
      'reverse DNS timeout per lookup for direct connections',
      intOption('--dns-timeout', 1, 60_000),
      500,
    )
    .option(
      '--whois-timeout <ms>',
      'whois timeout per attempt (a failed attempt is tried once more)',
      intOption('--whois-timeout', 1, 60_000),
      2000,
    )
    .option(
      '--no-whois',
      'do not ask whois servers who owns a public address the tables do not place',
    );
}

/** The monitor's settings for those options. */
export function lookupSettings(opts: LookupOptions): {
  dnsTimeoutMs: number;
  whoisTimeoutMs: number;
  whoisLookups: boolean;
} {
  return {
    dnsTimeoutMs: opts.dnsTimeout ?? 500,
    whoisTimeoutMs: opts.whoisTimeout ?? 2000,
    whoisLookups: opts.whois !== false,
  };
}

/**
 * The earlier tool's screen saved rules a user allowed or blocked there in
 * `<data dir>/overrides/<policy name>.yaml`, and merged them into the policy at every run and
 * watch. TrustRun does not: the policy file is all of the policy. When such a file exists for
 * the policy about to be used, this says so (one line), so that nobody believes it applies.
 */
export function overridesNotice(dataDir: string, policyName: string | null): string | null {
  const name = policyName ?? 'default-alert-all';
  if (!/^[^/\\\0]+$/.test(name) || name === '.' || name === '..') return null;
  const file = join(dataDir, 'overrides', `${name}.yaml`);
  if (!existsSync(file)) return null;
  return `trustrun: warning: ${file}: rules saved by the earlier tool's screen are not applied; copy them into the policy file`;
}
