/**
 * Child process for the crash test: writes sealed request records as fast as it can and prints
 * `ok <id>` for each addRequest that has resolved (committed), until it is killed.
 * Usage: node --import tsx writer-child.ts DATA_DIR MARKER
 */
import { openStore } from '../../../src/store/index.js';

const dataDir = process.argv[2] ?? '';
const marker = process.argv[3] ?? '';
if (!dataDir || !marker) {
  process.stderr.write('usage: writer-child.ts DATA_DIR MARKER\n');
  process.exit(2);
}

const store = await openStore({ dataDir });
const session = store.startSession({ kind: 'run', level: 'full', command: ['writer-child'] });
process.stdout.write(`session ${session.id}\n`);

const body = Buffer.from(`{"note":"${marker}"}`);
let n = 0;
async function one(): Promise<void> {
  const i = n++;
  const id = await store.addRequest({
    sessionId: session.id,
    connectionId: null,
    startedAt: Date.now(),
    method: 'POST',
    scheme: 'https',
    host: 'api.example.com',
    port: 443,
    url: `/records/${i}?q=${encodeURIComponent(marker)}&raw=${marker}`,
    requestHeaders: [
      ['host', 'api.example.com'],
      ['x-marker', marker],
    ],
    verdict: null,
  });
  process.stdout.write(`ok ${id}\n`);
  store.completeRequest(id, {
    endedAt: Date.now(),
    status: 200,
    responseHeaders: [['x-echo', marker]],
    requestBody: { data: body, truncated: false, size: body.length },
    responseBody: { data: body, truncated: false, size: body.length },
    outcome: 'ok',
  });
}

// Keep 32 requests in flight, forever (the parent kills this process).
for (;;) {
  await Promise.all(Array.from({ length: 32 }, one));
}
