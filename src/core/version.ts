import { createRequire } from 'node:module';

/** TrustRun's version, from package.json (src/core and dist/core are both two levels below it). */
export const VERSION: string = (
  createRequire(import.meta.url)('../../package.json') as { version: string }
).version;
