import { streamSSE } from 'hono/streaming';
import type { ApiDeps } from '../deps.js';
import { Follower, cursorAt } from '../follow.js';
import type { Router } from '../router.js';
import { ID_PATTERN, streamQuery } from '../schemas.js';
import { withPhi } from './sessions.js';

const HEARTBEAT_MS = 15_000;

interface Feed {
  event: string;
  next(): { id: string; data: unknown }[];
}

function feed<T extends { id: string }>(
  event: string,
  f: Follower<T>,
  map: (row: T) => unknown = (row) => row,
  keep: (row: T) => boolean = () => true,
): Feed {
  return {
    event,
    next: () =>
      f
        .poll()
        .filter(keep)
        .map((row) => ({ id: row.id, data: map(row) })),
  };
}

export function streamRoutes(r: Router, { store, pollMs, logger }: ApiDeps): void {
  r.add({
    method: 'get',
    path: '/api/stream',
    tag: 'stream',
    summary: 'Live stream of new and updated records (Server-Sent Events)',
    description:
      'Events: `ready` (data: {after}), `session`, `connection`, `request` (sent again when it ' +
      'completes), `violation`; each `data` is the row as the list endpoints return it and `id` ' +
      'is its record id. Reconnecting with Last-Event-ID (or `after`) resumes after that id. ' +
      'The store is polled, so records written by another process appear too.',
    query: streamQuery,
    produces: 'text/event-stream',
    handler: (c, { query }) => {
      const last = c.req.header('last-event-id');
      const after = query.after ?? (last && ID_PATTERN.test(last) ? last : cursorAt(Date.now()));
      const sessionId = query.session;
      const feeds: Feed[] = [
        feed(
          'session',
          new Follower(
            (p) => store.listSessions(p),
            (s) => `${s.status}|${s.endedAt}`,
            (s) => s.endedAt === null,
            after,
            { openWindowMs: Number.POSITIVE_INFINITY },
          ),
          withPhi,
          (s) => sessionId === undefined || s.id === sessionId,
        ),
        feed(
          'connection',
          new Follower(
            (p) => store.listConnections({ ...p, sessionId }),
            (x) => `${x.endedAt}|${x.outcome}|${x.verdictAction}`,
            (x) => x.endedAt === null,
            after,
          ),
        ),
        feed(
          'request',
          new Follower(
            (p) => store.listRequests({ ...p, sessionId }),
            (x) => `${x.endedAt}|${x.status}|${x.outcome}`,
            (x) => x.endedAt === null,
            after,
          ),
        ),
        feed(
          'monitor',
          new Follower(
            (p) => store.listMonitorEvents({ ...p, sessionId }),
            (x) => `${x.state}|${x.verdictAction}|${x.enforced}|${x.hostname}`,
            () => false,
            after,
          ),
        ),
        feed(
          'violation',
          new Follower(
            (p) => store.listViolations({ ...p, sessionId }),
            () => '',
            () => false,
            after,
          ),
        ),
      ];
      return streamSSE(c, async (stream) => {
        let stop = false;
        stream.onAbort(() => {
          stop = true;
        });
        await stream.writeSSE({ event: 'ready', data: JSON.stringify({ after }), retry: 2000 });
        let quiet = 0;
        while (!stop && !stream.aborted && !stream.closed) {
          let sent = 0;
          for (const { event, next } of feeds) {
            let rows: { id: string; data: unknown }[];
            try {
              rows = next();
            } catch (err) {
              logger.warn({ err: (err as Error).message }, 'live stream: store read failed');
              await stream.writeSSE({
                event: 'error',
                data: JSON.stringify({ message: 'the store cannot be read; the stream ends' }),
              });
              return;
            }
            for (const row of rows) {
              await stream.writeSSE({ event, id: row.id, data: JSON.stringify(row.data) });
              sent++;
            }
          }
          quiet = sent > 0 ? 0 : quiet + pollMs;
          if (quiet >= HEARTBEAT_MS) {
            await stream.write(': keep-alive\n\n');
            quiet = 0;
          }
          await stream.sleep(pollMs);
        }
      });
    },
  });
}
