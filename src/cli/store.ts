import { existsSync } from 'node:fs';
import { TrustRunError, dataPaths } from '../core/index.js';
import { openStore, type Store } from '../store/index.js';

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
