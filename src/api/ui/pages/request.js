import { api } from '../lib/api.js';
import { fmtMs, fmtSize, fmtTime, h, processText, table, verdictBadge } from '../lib/dom.js';

function headersTable(caption, list) {
  return table({
    caption,
    columns: [
      { label: 'Name', cell: ([n]) => n },
      {
        label: 'Value',
        cell: ([, v]) => h('span', { class: /\[REDACTED:/.test(v) ? 'redacted' : null }, v),
      },
    ],
    rows: list ?? [],
    empty: 'None recorded.',
  }).el;
}

function pretty(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

function bodyView(title, b) {
  if (b === null)
    return h(
      'section',
      {},
      h('h3', {}, title),
      h(
        'p',
        {},
        'None recorded: there was no body, the session did not keep bodies (only the full ' +
          'level does), or the request was refused before its body was read.',
      ),
    );
  const note = [b.truncated ? 'truncated at --max-body' : null, b.note ?? null]
    .filter(Boolean)
    .join('; ');
  return h(
    'section',
    {},
    h('h3', {}, title),
    note ? h('p', { class: 'note' }, note) : null,
    b.binary
      ? h('p', {}, 'Binary body: not shown.')
      : h('pre', { class: 'body', tabindex: 0, 'aria-label': title }, pretty(b.text ?? '')),
  );
}

export async function requestPage(id) {
  let r;
  try {
    r = await api(`/api/requests/${id}`);
  } catch (err) {
    if (err.status === 410)
      return {
        el: h(
          'section',
          { class: 'page' },
          h('h1', {}, 'Request unavailable'),
          h('p', {}, err.message),
        ),
      };
    throw err;
  }
  const v = r.verdict;
  const el = h(
    'section',
    { class: 'page' },
    h(
      'p',
      { class: 'crumbs' },
      h('a', { href: '#/sessions' }, 'Sessions'),
      ' / ',
      h('a', { href: `#/sessions/${r.sessionId}` }, r.sessionId.slice(-6)),
      ' / request',
    ),
    h('h1', {}, `${r.method} ${r.host}`),
    h('p', { class: 'url' }, h('code', {}, r.url)),
    h(
      'dl',
      { class: 'facts' },
      h('dt', {}, 'Status'),
      h('dd', {}, r.status === null ? (r.outcome ?? 'pending') : String(r.status)),
      h('dt', {}, 'Outcome'),
      h('dd', {}, `${r.outcome ?? 'pending'}${r.reason ? ` (${r.reason})` : ''}`),
      h('dt', {}, 'Started'),
      h('dd', {}, fmtTime(r.startedAt)),
      h('dt', {}, 'Duration'),
      h('dd', {}, fmtMs(r.durationMs)),
      h('dt', {}, 'Sizes'),
      h('dd', {}, `request ${fmtSize(r.requestSize)}, response ${fmtSize(r.responseSize)}`),
      h('dt', {}, 'Process'),
      h('dd', {}, processText(r.pid, r.exe)),
    ),
    h(
      'section',
      { class: `verdict ${v.violation ? 'is-violation' : ''}`, 'aria-labelledby': 'verdict-h' },
      h('h2', { id: 'verdict-h' }, 'Policy verdict'),
      h('p', {}, verdictBadge(v.action, v.violation), v.rule ? ` rule: ${v.rule}` : ''),
      h('p', {}, v.explanation ?? ''),
    ),
    h('h2', {}, 'Redactions applied'),
    table({
      caption: 'What was masked before display (the stored record is unchanged)',
      columns: [
        { label: 'Kind', cell: (x) => x.kind },
        { label: 'Where', cell: (x) => x.location },
        { label: 'Count', cell: (x) => String(x.count), num: true },
      ],
      rows: r.redactions,
      empty: 'Nothing needed masking.',
    }).el,
    h('h2', {}, 'Request'),
    headersTable('Request headers (redacted)', r.requestHeaders),
    bodyView('Request body (redacted)', r.requestBody),
    h('h2', {}, 'Response'),
    headersTable('Response headers (redacted)', r.responseHeaders),
    bodyView('Response body (redacted)', r.responseBody),
  );
  return { el };
}
