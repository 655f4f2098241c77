import { api, qs } from '../lib/api.js';
import { field, fmtTime, h, processText, select, table, verdictBadge } from '../lib/dom.js';
import { onLive } from '../lib/live.js';
import { phiBanner, requestColumns, violationColumns } from './dashboard.js';

export async function sessionPage(id) {
  const s = await api(`/api/sessions/${id}`);
  const host = h('input', { type: 'text', placeholder: 'api.example.com or *.example.com' });
  const method = h('input', { type: 'text', placeholder: 'GET', size: 7 });
  const status = h('input', { type: 'number', min: 0, max: 999, placeholder: '200' });
  const verdict = select(
    [
      ['', 'any'],
      ['allow', 'allow'],
      ['alert', 'alert'],
      ['block', 'block'],
      ['kill', 'kill'],
    ],
    '',
  );
  const reqs = table({
    caption: 'Requests in this session (newest first)',
    columns: requestColumns({ path: true }),
    rowId: (r) => r.id,
    empty:
      s.level === 'metadata'
        ? 'Level metadata: connections are tunnelled, no requests are decrypted.'
        : 'No requests match.',
  });
  const more = h('button', { type: 'button', hidden: true }, 'Load more requests');
  let cursor = null;
  const load = async (reset) => {
    if (reset) {
      reqs.reset();
      cursor = null;
    }
    const page = await api(
      `/api/requests${qs({ session: id, host: host.value.trim(), method: method.value.trim(), status: status.value, verdict: verdict.value, cursor, limit: 100, path: 'true' })}`,
    );
    reqs.add(page.items);
    cursor = page.nextCursor;
    more.hidden = cursor === null;
  };
  more.addEventListener('click', () => void load(false));
  const form = h(
    'form',
    {
      class: 'filters',
      'aria-label': 'Filter requests',
      onsubmit: (e) => {
        e.preventDefault();
        void load(true).catch(showError);
      },
    },
    field('Host', host),
    field('Method', method),
    field('Status', status),
    field('Verdict', verdict),
    h('button', { type: 'submit' }, 'Apply'),
  );
  const errorSlot = h('p', { class: 'error', role: 'alert' });
  const showError = (err) =>
    (errorSlot.textContent =
      err.body?.error?.issues?.map((i) => `${i.path}: ${i.message}`).join('; ') ?? err.message);
  await load(true);
  const violations = await api(`/api/violations${qs({ session: id, limit: 200 })}`);
  const vio = table({
    caption: 'Violations in this session',
    columns: violationColumns(),
    rows: violations.items,
    rowId: (v) => v.id,
    empty: 'No violations.',
  });
  const monitor = await api(`/api/monitor-events${qs({ session: id, limit: 200 })}`).catch(() => ({
    items: [],
  }));
  const direct = table({
    caption: "Connections made outside the proxy (seen in the process tree's sockets)",
    columns: [
      { label: 'First seen', cell: (e) => fmtTime(e.firstSeen) },
      { label: 'Destination', cell: (e) => `${e.hostname ?? e.remoteAddr}:${e.remotePort}` },
      { label: 'Protocol', cell: (e) => `${e.protocol} ${e.state}` },
      { label: 'Verdict', cell: (e) => verdictBadge(e.verdictAction, e.violation) },
      { label: 'Process', cell: (e) => processText(e.pid, e.exe) },
    ],
    rows: monitor.items,
    rowId: (e) => e.id,
    empty: 'None seen.',
  });
  const off = onLive((type, row) => {
    if (row.sessionId !== id) return;
    if (type === 'violation') vio.add([row], { prepend: true });
    if (type === 'monitor') direct.add([row], { prepend: true });
  });
  const el = h(
    'section',
    { class: 'page' },
    h(
      'p',
      { class: 'crumbs' },
      h('a', { href: '#/sessions' }, 'Sessions'),
      ' / ',
      h('code', {}, id),
    ),
    h('h1', {}, `Session ${id.slice(-6)}`),
    phiBanner([s]),
    h(
      'dl',
      { class: 'facts' },
      h('dt', {}, 'Kind'),
      h('dd', {}, s.kind),
      h('dt', {}, 'Status'),
      h('dd', {}, s.status),
      h('dt', {}, 'Capture level'),
      h('dd', {}, s.level),
      h('dt', {}, 'Started'),
      h('dd', {}, fmtTime(s.startedAt)),
      h('dt', {}, 'Ended'),
      h('dd', {}, fmtTime(s.endedAt)),
      h('dt', {}, 'Command'),
      h('dd', {}, s.command ? s.command.join(' ') : '–'),
      h('dt', {}, 'Policy'),
      h('dd', {}, s.policy ?? 'none (audit only)'),
      h('dt', {}, 'Counts'),
      h(
        'dd',
        {},
        `${s.counts.connections} connections, ${s.counts.requests} requests, ${s.counts.violations} violations`,
      ),
    ),
    h(
      'p',
      {},
      h(
        'a',
        { href: `/api/sessions/${id}/har`, download: `trustrun-${id}.har` },
        'Download HAR (redacted)',
      ),
    ),
    h('h2', {}, 'Requests'),
    form,
    errorSlot,
    reqs.el,
    more,
    h('h2', {}, 'Violations'),
    vio.el,
    h('h2', {}, 'Direct connections'),
    direct.el,
  );
  return { el, cleanup: off };
}
