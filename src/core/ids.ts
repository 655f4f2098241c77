import { randomBytes } from 'node:crypto';

/**
 * Time-ordered random ids: 9 base36 characters of milliseconds, then 12 hex characters of
 * randomness. Sorting ids sorts records by creation time; ids are made before insert so the
 * sealing associated data can bind the record id.
 */
export function newId(now: number = Date.now()): string {
  return now.toString(36).padStart(9, '0') + randomBytes(6).toString('hex');
}
