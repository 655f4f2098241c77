import type { Command } from 'commander';
import { CommanderError } from 'commander';
import { exitCodeFor, formatError } from '../core/index.js';
import { buildProgram } from './program.js';

async function main(argv: string[]): Promise<void> {
  const program: Command = await buildProgram(argv);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander has already printed its message; help and version exit 0.
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    process.stderr.write(`trustrun: ${formatError(err)}\n`);
    if (process.env.TRUSTRUN_DEBUG && err instanceof Error && err.stack) {
      process.stderr.write(err.stack + '\n');
    }
    process.exitCode = exitCodeFor(err);
  }
}

await main(process.argv);
