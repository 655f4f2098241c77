/**
 * Polls `predicate` until it holds; rejects naming `what` after `timeoutMs` (for records, sockets
 * and events that other code produces asynchronously).
 */
export async function until(
  predicate: () => boolean,
  what = 'a condition',
  timeoutMs = 5000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Resolves after `n` turns of the event loop (a setImmediate each). */
export async function loopTurns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

/**
 * Resolves once Date.now() has moved past its value at the call. Record ids start with their
 * creation millisecond and records made in the same one sort in random order; a test that needs
 * an order makes its records a tick apart.
 */
export async function nextMillisecond(): Promise<void> {
  const now = Date.now();
  while (Date.now() <= now) await new Promise((r) => setTimeout(r, 1));
}
