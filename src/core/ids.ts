import { randomFillSync } from 'node:crypto';

/** Random bytes are drawn from the CSPRNG in blocks: one call per 682 ids instead of per id. */
const ID_RANDOM_BYTES = 6;
const POOL_BYTES = ID_RANDOM_BYTES * 682;
const pool = Buffer.allocUnsafe(POOL_BYTES);
let offset = POOL_BYTES;

/**
 * Time-ordered random ids: 9 base36 characters of milliseconds, then 12 hex characters of
 * randomness. Sorting ids sorts records by creation time; ids are made before insert so the
 * sealing associated data can bind the record id.
 */
export function newId(now: number = Date.now()): string {
  if (offset + ID_RANDOM_BYTES > POOL_BYTES) {
    randomFillSync(pool);
    offset = 0;
  }
  const start = offset;
  offset += ID_RANDOM_BYTES;
  return now.toString(36).padStart(9, '0') + pool.toString('hex', start, start + ID_RANDOM_BYTES);
}
