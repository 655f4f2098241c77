import { api, qs } from '../lib/api.js';
import { field, fmtTime, h, select, table } from '../lib/dom.js';

export async function sessionsPage() {
  const status = select(
    [
      ['', 'any'],
      ['running', 'running'],
      ['completed', 'completed'],
      ['failed', 'failed'],
      ['interrupted', 'interrupted'],
    ],
    '',
  );
  const kind = select(
    [
      ['', 'any'],
      ['proxy', 'proxy'],
      ['run', 'run'],
      ['watch', 'watch'],
      ['learn', 'learn'],
    ],
    '',
  );
  const search = h('input', { type: 'search', placeholder: 'id, command or policy' });
  const t = table({
    caption: 'Sessions (newest first)',
    columns: [
      {
        label: 'Started',
        cell: (s) => h('a', { href: `#/sessions/${s.id}` }, fmtTime(s.startedAt)),
      },
      { label: 'Kind', cell: (s) => s.kind },
      {
        label: 'Level',
        cell: (s) =>
          s.phi
            ? h(
                'span',
                { class: 'badge phi', title: 'records URLs/headers: may contain PHI' },
                `${s.level} (PHI)`,
              )
            : s.level,
      },
      { label: 'Status', cell: (s) => s.status },
      { label: 'Ended', cell: (s) => fmtTime(s.endedAt) },
      { label: 'Command', cell: (s) => (s.command ? s.command.join(' ') : '–') },
      { label: 'Policy', cell: (s) => s.policy ?? '–' },
      { label: 'Id', cell: (s) => h('code', {}, s.id) },
    ],
    rowId: (s) => s.id,
    empty: 'No sessions match.',
  });
  const more = h('button', { type: 'button', hidden: true }, 'Load more');
  let cursor = null;
  const load = async (reset) => {
    if (reset) {
      t.reset();
      cursor = null;
    }
    const page = await api(
      `/api/sessions${qs({ status: status.value, kind: kind.value, q: search.value.trim(), cursor, limit: 50 })}`,
    );
    t.add(page.items);
    cursor = page.nextCursor;
    more.hidden = cursor === null;
  };
  const form = h(
    'form',
    {
      class: 'filters',
      role: 'search',
      'aria-label': 'Filter sessions',
      onsubmit: (e) => {
        e.preventDefault();
        void load(true);
      },
    },
    field('Status', status),
    field('Kind', kind),
    field('Search', search),
    h('button', { type: 'submit' }, 'Apply'),
  );
  status.addEventListener('change', () => void load(true));
  kind.addEventListener('change', () => void load(true));
  more.addEventListener('click', () => void load(false));
  await load(true);
  return { el: h('section', { class: 'page' }, h('h1', {}, 'Sessions'), form, t.el, more) };
}
