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

// A reader that went away (`trustrun requests --json | head -1`, `run --json -- cmd | head`):
// what was left to print has nowhere to go, and the exit code stays the command's own. Without a
// listener the write error would crash the process with a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
  });
}

await main(process.argv);
