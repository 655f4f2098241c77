import { Command } from 'commander';
import { createRequire } from 'node:module';
import { register as registerCa } from './commands/ca.js';
import { register as registerHistory } from './commands/history.js';
import { register as registerLearn } from './commands/learn.js';
import { register as registerPolicy } from './commands/policy.js';
import { register as registerProxy } from './commands/proxy.js';
import { register as registerRequests } from './commands/requests.js';
import { register as registerRun } from './commands/run.js';
import { register as registerScan } from './commands/scan.js';
import { register as registerServer } from './commands/server.js';
import { register as registerViolations } from './commands/violations.js';
import { register as registerWatch } from './commands/watch.js';

const require = createRequire(import.meta.url);
const { version } = require('../../package.json') as { version: string };

/**
 * Builds the command tree. Each command lives in its own file under commands/ and exports
 * `register(program)`; this file only lists them.
 */
export function buildProgram(): Command {
  const program = new Command('trustrun')
    .description(
      'See where code sends data, and stop it: an HTTPS-intercepting proxy with policy enforcement\n' +
        'and an encrypted, redacted audit log.',
    )
    .version(version)
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({
      outputError: (str, write) => write(`trustrun: ${str.replace(/^error: /, '')}`),
    });
  program.enablePositionalOptions();
  // Commands register themselves here (one line each).
  registerCa(program);
  registerHistory(program);
  registerLearn(program);
  registerPolicy(program);
  registerProxy(program);
  registerRequests(program);
  registerRun(program);
  registerScan(program);
  registerServer(program);
  registerViolations(program);
  registerWatch(program);
  return program;
}
