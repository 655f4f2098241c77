import { Command } from 'commander';
import { existsSync } from 'node:fs';
import { TrustRunError, VERSION } from '../core/index.js';

type CommandModule = { register(program: Command): void };

/**
 * The commands a --policy given before the command applies to. The earlier tool's `learn`
 * ignored it (ORIGINAL.md §10.7, a bug): `learn -- CMD` runs the command under it, as `run` does.
 */
const POLICY_COMMANDS = new Set(['run', 'proxy', 'watch', 'scan', 'learn']);

/**
 * The commands, each in its own file under commands/ exporting `register(program)`. They are
 * loaded on demand: a command's module pulls in the parts it needs (the store, the proxy, the
 * API...), and a long-running `trustrun proxy` should not carry the scanner's or the web UI's code
 * in its memory, nor `trustrun --version` wait for all of it to load.
 */
const COMMANDS: Record<string, () => Promise<CommandModule>> = {
  ca: () => import('./commands/ca.js'),
  history: () => import('./commands/history.js'),
  learn: () => import('./commands/learn.js'),
  policy: () => import('./commands/policy.js'),
  proxy: () => import('./commands/proxy.js'),
  requests: () => import('./commands/requests.js'),
  run: () => import('./commands/run.js'),
  scan: () => import('./commands/scan.js'),
  server: () => import('./commands/server.js'),
  violations: () => import('./commands/violations.js'),
  watch: () => import('./commands/watch.js'),
};

/**
 * Which commands `argv` needs: the named one only; none for a bare `--version`; all of them
 * otherwise (help, no command, an unknown name — commander then lists or suggests them).
 */
export function commandsFor(argv: readonly string[]): string[] {
  const args = argv.slice(2);
  // The value of a --policy given before the command is not the command.
  const at = args.findIndex(
    (a, i) => !a.startsWith('-') && !(i > 0 && /^(-p|--policy)$/.test(args[i - 1] ?? '')),
  );
  const first = at === -1 ? undefined : args[at];
  // `trustrun --help proxy` is the program's help, which lists every command.
  const programHelp = args
    .slice(0, at === -1 ? args.length : at)
    .some((a) => a === '-h' || a === '--help');
  if (first !== undefined && Object.hasOwn(COMMANDS, first) && !programHelp) return [first];
  if (
    first === undefined &&
    args.length > 0 &&
    args.every((a) => a === '-V' || a === '--version')
  ) {
    return [];
  }
  return Object.keys(COMMANDS);
}

/** Builds the command tree with the commands `argv` needs (all of them without `argv`). */
export async function buildProgram(argv?: readonly string[]): Promise<Command> {
  const program = new Command('trustrun')
    .description(
      'See where code sends data, and stop it: an HTTPS-intercepting proxy with policy enforcement\n' +
        'and an encrypted, redacted audit log.',
    )
    // The earlier tool's format, which scripts may parse.
    .version(`trustrun, version ${VERSION}`, '-V, --version', 'print the version and exit')
    .exitOverride()
    .configureOutput({
      // One line (commander may add a suggestion on a line of its own), with where to look.
      outputError: (str, write) =>
        write(
          `trustrun: ${str
            .replace(/^error: /, '')
            .trim()
            .replace(/\s*\n\s*/g, ' ')} (see --help)\n`,
        ),
    });
  program.enablePositionalOptions();
  // The earlier tool took --policy before the command (ORIGINAL.md); it still works there.
  program.option(
    '-p, --policy <file>',
    'policy file for run, proxy, watch, scan and learn, given before the command (as the earlier tool took it)',
  );
  program.option('-v, --verbose', 'log at debug level on stderr (as TRUSTRUN_LOG_LEVEL=debug)');
  program.hook('preAction', () => {
    if (program.opts<{ verbose?: boolean }>().verbose) process.env.TRUSTRUN_LOG_LEVEL = 'debug';
  });
  program.hook('preAction', (_root, action) => {
    const file = program.opts<{ policy?: string }>().policy;
    if (file === undefined || !POLICY_COMMANDS.has(action.name())) return;
    if (action.parent !== program) return;
    if (!existsSync(file)) {
      throw new TrustRunError('TR_USAGE', `--policy ${file}: no such file`);
    }
    if (action.getOptionValue('policy') === undefined) {
      action.setOptionValueWithSource('policy', file, 'cli');
    }
  });
  const names = argv ? commandsFor(argv) : Object.keys(COMMANDS);
  const modules = await Promise.all(names.map((name) => COMMANDS[name]!()));
  for (const mod of modules) mod.register(program);
  return program;
}
