import { Worker } from 'node:worker_threads';
import { TrustRunError, type ErrorCode } from '../core/index.js';
import { compilePolicy, type PolicyParts } from './compile.js';
import type { CompiledPolicy, LoadOptions } from './types.js';

/** What loadPolicyInWorker sends its worker. */
export interface WorkerRequest {
  file: string;
  /** Send warnings back (the caller gave a `warn`); otherwise the worker prints them itself. */
  relayWarnings: boolean;
}

/** The worker's messages: warnings, then either the parts or the error. */
export type WorkerReply =
  | { warning: string }
  | { parts: PolicyParts }
  | { error: { code?: ErrorCode; message: string; hint?: string | undefined } };

const WORKER = new URL('./worker.js', import.meta.url);
/** Built code runs the worker; the sources (run by the test runner) load in this thread. */
const BUILT = import.meta.url.endsWith('.js');

/**
 * loadPolicy for a long-running process: the file is read, parsed and validated in a worker
 * thread, and only the evaluator is compiled here. The YAML parser and the schema library
 * (about 8 MB once loaded) are never loaded into the proxy's own thread. Same results, warnings
 * and errors as loadPolicy; the worker costs about 100 ms more than a first load in this thread,
 * paid at start-up and on a reload (docs/architecture.md).
 */
export async function loadPolicyInWorker(
  file: string,
  opts: LoadOptions = {},
): Promise<CompiledPolicy> {
  if (!BUILT) return (await import('./loader.js')).loadPolicy(file, opts);
  const { warn } = opts;
  const parts = await new Promise<PolicyParts>((resolve, reject) => {
    const request: WorkerRequest = { file, relayWarnings: warn !== undefined };
    const worker = new Worker(WORKER, { workerData: request });
    const fail = (err: unknown): void => {
      reject(err);
      void worker.terminate();
    };
    worker.on('message', (reply: WorkerReply) => {
      if ('warning' in reply) {
        try {
          warn?.(reply.warning);
        } catch (err) {
          fail(err); // as loadPolicy: a throwing warn ends the load
        }
      } else if ('parts' in reply) resolve(reply.parts);
      else {
        const e = reply.error;
        reject(
          e.code
            ? new TrustRunError(e.code, e.message, e.hint === undefined ? {} : { hint: e.hint })
            : new Error(`policy loader failed: ${e.message}`),
        );
      }
    });
    worker.on('error', (err) => reject(new Error(`policy loader failed: ${err.message}`)));
    worker.on('exit', (code) => reject(new Error(`policy loader stopped early (exit ${code})`)));
  });
  return compilePolicy(parts);
}
