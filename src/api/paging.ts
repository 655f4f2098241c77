import type { Page, PageQuery } from '../store/index.js';

/** At most this many rows are read from the store to fill one filtered page. */
export const MAX_SCAN_ROWS = 20_000;

/**
 * A page of the rows that pass `keep`, for filters the store cannot apply itself. Reads store
 * pages until `limit` rows pass or MAX_SCAN_ROWS were read; then `nextCursor` continues the scan
 * (so a page may be short, or even empty, while nextCursor is not null).
 */
export function filteredPage<T extends { id: string }>(
  fetch: (q: PageQuery) => Page<T>,
  q: PageQuery,
  keep: ((row: T) => boolean) | null,
): Page<T> {
  if (keep === null) return fetch(q);
  const limit = q.limit ?? 100;
  const items: T[] = [];
  let cursor = q.cursor ?? null;
  let scanned = 0;
  for (;;) {
    const page = fetch({ ...q, cursor, limit: 1000 });
    for (const row of page.items) {
      scanned++;
      if (keep(row)) {
        items.push(row);
        if (items.length === limit) {
          const more = row !== page.items.at(-1) || page.nextCursor !== null;
          return { items, nextCursor: more ? row.id : null };
        }
      }
    }
    if (page.nextCursor === null) return { items, nextCursor: null };
    cursor = page.nextCursor;
    if (scanned >= MAX_SCAN_ROWS) return { items, nextCursor: cursor };
  }
}
