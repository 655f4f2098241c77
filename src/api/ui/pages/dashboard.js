import { api } from '../lib/api.js';
import { onLive } from '../lib/live.js';
import { fmtSize, fmtTime, h, processText, table, verdictBadge } from '../lib/dom.js';

export function requestColumns({ session = false, path = false } = {}) {
  return [
    { label: 'Time', cell: (r) => h('a', { href: `#/requests/${r.id}` }, fmtTime(r.startedAt)) },
    ...(session
      ? [
          {
            label: 'Session',
            cell: (r) => h('a', { href: `#/sessions/${r.sessionId}` }, r.sessionId.slice(-6)),
          },
        ]
      : []),
    { label: 'Method', cell: (r) => r.method },
    {
      label: 'Host',
      cell: (r) => `${r.host}${r.port === 443 || r.port === 80 ? '' : `:${r.port}`}`,
    },
    ...(path ? [{ label: 'Path', cell: (r) => h('span', { class: 'path' }, r.path ?? '–') }] : []),
    {
      label: 'Status',
      cell: (r) => r.status ?? (r.endedAt ? r.outcome : 'pending') ?? '–',
      num: true,
    },
    { label: 'Size', cell: (r) => fmtSize(r.responseSize), num: true },
    { label: 'Verdict', cell: (r) => verdictBadge(r.verdictAction, r.violation) },
    { label: 'Process', cell: (r) => processText(r.pid, r.exe) },
  ];
}

export function violationColumns() {
  return [
    { label: 'Time', cell: (v) => fmtTime(v.time) },
    { label: 'Action', cell: (v) => verdictBadge(v.action, true) },
    { label: 'Destination', cell: (v) => `${v.method ? `${v.method} ` : ''}${v.host}:${v.port}` },
    { label: 'Enforced', cell: (v) => (v.enforced ? 'refused' : 'recorded only') },
    { label: 'Explanation', cell: (v) => v.explanation },
    {
      label: 'Record',
      cell: (v) =>
        v.requestId
          ? h('a', { href: `#/requests/${v.requestId}` }, 'request')
          : h('a', { href: `#/sessions/${v.sessionId}` }, 'session'),
    },
  ];
}

export function phiBanner(sessions) {
  const phi = sessions.filter((s) => s.phi && s.status === 'running');
  if (phi.length === 0) return null;
  return h(
    'div',
    { class: 'warning', role: 'note' },
    h('strong', {}, 'PHI warning: '),
    phi.length === 1
      ? `session ${phi[0].id} records ${phi[0].level === 'full' ? 'headers and bodies' : 'URLs and headers'} (level ${phi[0].level}). `
      : `${phi.length} running sessions record URLs and headers or bodies. `,
    'These may contain patient data. Records are encrypted at rest and redacted here; handle the data directory accordingly.',
  );
}

export async function dashboardPage() {
  const [sessions, requests, violations] = await Promise.all([
    api('/api/sessions?status=running&limit=50'),
    api('/api/requests?limit=100'),
    api('/api/violations?limit=50'),
  ]);
  const running = new Map(sessions.items.map((s) => [s.id, s]));
  const bannerSlot = h('div', {});
  const showBanner = () =>
    bannerSlot.replaceChildren(...[phiBanner([...running.values()])].filter(Boolean));
  showBanner();

  const hosts = new Map();
  const count = (host, key) => {
    const c = hosts.get(host) ?? { host, requests: 0, violations: 0 };
    c[key]++;
    hosts.set(host, c);
  };
  const seenRequests = new Set();
  for (const r of requests.items) {
    seenRequests.add(r.id);
    count(r.host, 'requests');
  }
  for (const v of violations.items) count(v.host, 'violations');

  const reqTable = table({
    caption: 'Latest requests (newest first, live)',
    columns: requestColumns({ session: true }),
    rows: requests.items,
    rowId: (r) => r.id,
    empty: 'No requests yet. Point a program at the proxy and they appear here.',
  });
  const vioTable = table({
    caption: 'Latest violations (newest first, live)',
    columns: violationColumns(),
    rows: violations.items,
    rowId: (v) => v.id,
    empty: 'No violations.',
  });
  const hostTable = table({
    caption: 'Requests and violations per host (the latest records)',
    columns: [
      { label: 'Host', cell: (c) => c.host },
      { label: 'Requests', cell: (c) => String(c.requests), num: true },
      { label: 'Violations', cell: (c) => String(c.violations), num: true },
    ],
    rowId: (c) => c.host,
    empty: 'No hosts yet.',
  });
  const drawHosts = () => {
    hostTable.reset();
    hostTable.add(
      [...hosts.values()].sort((a, b) => b.requests + b.violations - (a.requests + a.violations)),
    );
  };
  drawHosts();

  const counter = h('p', { class: 'counter', 'aria-live': 'polite' }, 'Waiting for new records…');
  let newRequests = 0;
  let newViolations = 0;
  const off = onLive((type, row) => {
    if (type === 'session') {
      if (row.status === 'running') running.set(row.id, row);
      else running.delete(row.id);
      showBanner();
    } else if (type === 'request') {
      if (!seenRequests.has(row.id)) {
        seenRequests.add(row.id);
        count(row.host, 'requests');
        newRequests++;
        drawHosts();
      }
      reqTable.add([row], { prepend: true, max: 200 });
    } else if (type === 'violation') {
      count(row.host, 'violations');
      newViolations++;
      drawHosts();
      vioTable.add([row], { prepend: true, max: 100 });
    } else return;
    counter.textContent = `Since this page opened: ${newRequests} new requests, ${newViolations} new violations.`;
  });

  const el = h(
    'section',
    { class: 'page' },
    h('h1', {}, 'Live'),
    bannerSlot,
    counter,
    h(
      'div',
      { class: 'grid' },
      h('div', {}, h('h2', {}, 'Hosts'), hostTable.el),
      h('div', {}, h('h2', {}, 'Violations'), vioTable.el),
    ),
    h('h2', {}, 'Requests'),
    reqTable.el,
  );
  return { el, cleanup: off };
}
