import { existsSync } from 'node:fs';
import { TrustRunError, dataPaths } from '../core/index.js';
import { openStore, type Page, type Store } from '../store/index.js';

/**
 * Opens the data directory's store for a read command, runs `fn`, and closes it. A directory
 * with no database yet is a clear error rather than a new empty store.
 */
export async function withStore<T>(
  dataDir: string,
  fn: (store: Store) => T | Promise<T>,
): Promise<T> {
  if (!existsSync(dataPaths(dataDir).database)) {
    throw new TrustRunError('TR_NOT_FOUND', `no TrustRun records in ${dataDir} yet`, {
      hint: 'record some with `trustrun proxy` or `trustrun run`, or point --data-dir at another directory',
    });
  }
  const store = await openStore({ dataDir });
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** Every row of a paged store listing, oldest first (pages of 1,000). */
export function* everyRow<T extends { id: string }>(
  list: (q: { cursor: string | null; limit: number; order: 'asc' }) => Page<T>,
): Generator<T> {
  let cursor: string | null = null;
  do {
    const page: Page<T> = list({ cursor, limit: 1000, order: 'asc' });
    yield* page.items;
    cursor = page.nextCursor;
  } while (cursor !== null);
}
