import { basename } from 'node:path';
import type { MonitorEvent } from '../monitor/index.js';
import type { Store } from '../store/index.js';

/** Lines and records for the socket monitor's events, shared by `watch` and `run`. */

export function destination(e: MonitorEvent): string {
  const host = e.hostname ?? e.remoteAddr;
  const shown = host.includes(':') ? `[${host}]` : host;
  return `${shown}:${e.remotePort}${e.org ? ` (${e.org})` : ''}`;
}

export function eventLine(e: MonitorEvent): string {
  const who = `${e.exe ? basename(e.exe) : '?'}[${e.pid}]`;
  return `  ${who} → ${destination(e)} (${e.protocol})\n`;
}

export function violationLine(e: MonitorEvent): string {
  const v = e.verdict;
  const what =
    v.action === 'kill'
      ? e.enforced
        ? ' (process tree terminated)'
        : ' (not enforced)'
      : v.action === 'block'
        ? ' (not enforceable on a direct connection: recorded only)'
        : '';
  return `  ⚠ VIOLATION ${v.action.toUpperCase()} ${destination(e)} — ${v.reason || v.explanation}${what}\n`;
}

/** Writes the watch session, its monitor events and violations to the store. */
export function monitorRecorder(store: Store, sessionId: string, warn: (msg: string) => void) {
  const ids = new Map<MonitorEvent, string>();
  let warned = false;
  const guard = (fn: () => void) => {
    try {
      fn();
    } catch (err) {
      if (!warned) warn(`trustrun: warning: could not record: ${(err as Error).message}`);
      warned = true;
    }
  };
  return {
    event(e: MonitorEvent) {
      guard(() => {
        const id = store.addMonitorEvent({
          sessionId,
          pid: e.pid,
          exe: e.exe,
          protocol: e.protocol,
          localAddr: e.localAddr,
          localPort: e.localPort,
          remoteAddr: e.remoteAddr,
          remotePort: e.remotePort,
          state: e.state,
          firstSeen: e.firstSeen,
          lastSeen: e.lastSeen,
          hostname: e.hostname,
          org: e.org,
          verdict: e.verdict,
          enforced: e.enforced === true,
        });
        ids.set(e, id);
        if (e.verdict.violation) {
          store.addViolation({
            sessionId,
            time: e.firstSeen,
            host: e.hostname ?? e.remoteAddr,
            port: e.remotePort,
            verdict: e.verdict,
            enforced: e.enforced === true,
            monitorEventId: id,
          });
        }
      });
    },
    update(e: MonitorEvent) {
      const id = ids.get(e);
      // The org comes late when whois found it.
      if (id) {
        guard(() =>
          store.updateMonitorEvent(id, { lastSeen: e.lastSeen, state: e.state, org: e.org }),
        );
      }
    },
  };
}
