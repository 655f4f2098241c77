/**
 * Worker-thread entry of loadPolicyInWorker (isolated.ts): reads and assembles one policy file
 * and posts the plain result back, with any warnings first. The YAML parser and the schema
 * library load in this thread only and go away with it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { isTrustRunError } from '../core/index.js';
import { readPolicyFile } from './loader.js';
import type { WorkerReply, WorkerRequest } from './isolated.js';

const port = parentPort;
if (!port) throw new Error('policy/worker.js runs as a worker thread only');
const post = (reply: WorkerReply): void => port.postMessage(reply);
const { file, relayWarnings } = workerData as WorkerRequest;

try {
  const parts = await readPolicyFile(
    file,
    relayWarnings ? { warn: (warning) => post({ warning }) } : {},
  );
  post({ parts });
} catch (err) {
  post({
    error: isTrustRunError(err)
      ? { code: err.code, message: err.message, hint: err.hint }
      : { message: err instanceof Error ? err.message : String(err) },
  });
}
