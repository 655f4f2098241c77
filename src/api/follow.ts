/**
 * Follows a table for new and changed rows by polling the store, so the live stream works when
 * another process (a `trustrun proxy`) writes the records. Ids are time-ordered but made before
 * the row commits (and two made in the same millisecond are in random order), so each poll
 * re-reads a short window and remembers what it already sent.
 */
import type { Page, PageQuery } from '../store/index.js';

/** How far back each poll re-reads, to catch rows committed after later ids. */
export const OVERLAP_MS = 5_000;
/** How long a row that is still open (no end time) is re-read for its completion. */
export const OPEN_WINDOW_MS = 10 * 60_000;
const PAGE = 1000;
const MAX_PAGES = 5;

/** The smallest cursor that lets every id made at `ms` or later through (`id > cursor`). */
export function cursorAt(ms: number): string {
  return (
    Math.max(0, Math.floor(ms) - 1)
      .toString(36)
      .padStart(9, '0') + 'f'.repeat(12)
  );
}

export function timeOfId(id: string): number {
  return parseInt(id.slice(0, 9), 36);
}

export interface FollowOptions {
  /**
   * How long a row that is still open is re-read for its end (default OPEN_WINDOW_MS). Sessions
   * take Infinity: a proxy runs for days, and the sessions table is small.
   */
  openWindowMs?: number;
}

export class Follower<T extends { id: string }> {
  /** id -> state sent; rows stay here while they are inside the re-read window. */
  private readonly sent = new Map<string, string>();
  private readonly open = new Set<string>();
  private readonly openWindowMs: number;
  private seeded = false;
  /**
   * Where the replay of rows after `after` goes on (it is read MAX_PAGES pages a poll), or null
   * once it has caught up with the re-read window.
   */
  private backlog: string | null;
  /**
   * Where a read of the re-read window that stopped at MAX_PAGES pages goes on at the next poll
   * (a heavy load: more rows in the window than a poll reads), or null. The poll after the one
   * that reaches the end reads the window from its start again, for rows committed late.
   */
  private resume: string | null = null;

  constructor(
    private readonly fetch: (q: PageQuery) => Page<T>,
    /** Changes when the row changes in a way worth sending again. */
    private readonly stateOf: (row: T) => string,
    /** Whether the row may still change (e.g. a request not yet completed). */
    private readonly isOpen: (row: T) => boolean,
    /** Rows with ids up to this one are never sent (until they change). */
    private readonly after: string,
    opts: FollowOptions = {},
  ) {
    this.openWindowMs = opts.openWindowMs ?? OPEN_WINDOW_MS;
    this.backlog = after;
  }

  /**
   * Rows up to `after` that are still open: the client has them (from a list, or an earlier
   * stream) but not their end, which is sent when it comes.
   */
  private seed(now: number): void {
    let cursor: string | undefined = Number.isFinite(this.openWindowMs)
      ? cursorAt(now - this.openWindowMs)
      : undefined;
    // No page limit: this runs once, and a running session may be preceded by many finished ones.
    while (cursor === undefined || cursor < this.after) {
      const page = this.fetch({ order: 'asc', limit: PAGE, ...(cursor ? { cursor } : {}) });
      for (const row of page.items) {
        if (row.id > this.after) return;
        if (!this.isOpen(row)) continue;
        this.open.add(row.id);
        this.sent.set(row.id, this.stateOf(row));
      }
      if (page.nextCursor === null) return;
      cursor = page.nextCursor;
    }
  }

  poll(now: number = Date.now()): T[] {
    if (!this.seeded) {
      this.seeded = true;
      this.seed(now);
    }
    let lowMs = now - OVERLAP_MS;
    for (const id of this.open) {
      const t = timeOfId(id);
      if (t < now - this.openWindowMs) this.open.delete(id);
      else lowMs = Math.min(lowMs, t);
    }
    const window = cursorAt(lowMs);
    const replaying = this.backlog !== null && this.backlog < window;
    let cursor: string | null = replaying ? this.backlog : (this.resume ?? window);
    const out: T[] = [];
    for (let i = 0; i < MAX_PAGES && cursor !== null; i++) {
      const page = this.fetch({ order: 'asc', limit: PAGE, cursor });
      for (const row of page.items) {
        // Up to `after`, only the rows seeded as open are followed.
        if (row.id <= this.after && !this.sent.has(row.id)) continue;
        const state = this.stateOf(row);
        if (this.isOpen(row)) this.open.add(row.id);
        else this.open.delete(row.id);
        if (this.sent.get(row.id) === state) continue;
        this.sent.set(row.id, state);
        out.push(row);
      }
      cursor = page.nextCursor;
    }
    // A read that did not reach the end goes on from here at the next poll.
    this.backlog = replaying && cursor !== null ? cursor : null;
    this.resume = !replaying && cursor !== null ? cursor : null;
    // Forget what the next poll will not read again: rows at or before its window, which the
    // rows found open in this one may have moved back (a replay reaches rows older than the
    // window it started with).
    let nextLow = now - OVERLAP_MS;
    for (const id of this.open) nextLow = Math.min(nextLow, timeOfId(id));
    // Rows after `resume` are read again by the next poll: what was sent of them is kept.
    let forgetUpTo = cursorAt(nextLow);
    if (this.resume !== null && this.resume < forgetUpTo) forgetUpTo = this.resume;
    for (const id of this.sent.keys()) {
      if (id <= forgetUpTo && !this.open.has(id)) this.sent.delete(id);
    }
    return out;
  }
}
