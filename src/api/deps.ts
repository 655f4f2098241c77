import type { Logger } from '../core/index.js';
import type { Store } from '../store/index.js';
import type { Credentials } from './tokens.js';

/** What the route files receive. */
export interface ApiDeps {
  store: Store;
  dataDir: string;
  /** `<dataDir>/policies`: where saved policies live, one NAME.yaml each. */
  policiesDir: string;
  logger: Logger;
  credentials: Credentials;
  /** How often the live stream polls the store for new rows (ms). */
  pollMs: number;
  version: string;
}
