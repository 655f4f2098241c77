import { api, qs } from '../lib/api.js';
import { field, h, select, table } from '../lib/dom.js';
import { onLive } from '../lib/live.js';
import { violationColumns } from './dashboard.js';

export async function alertsPage() {
  const action = select(
    [
      ['', 'any'],
      ['alert', 'alert'],
      ['block', 'block'],
      ['kill', 'kill'],
    ],
    '',
  );
  const t = table({
    caption: 'Violations, newest first (new ones appear live)',
    columns: [
      ...violationColumns(),
      {
        label: 'Session',
        cell: (v) => h('a', { href: `#/sessions/${v.sessionId}` }, v.sessionId.slice(-6)),
      },
    ],
    rowId: (v) => v.id,
    empty: 'No violations.',
  });
  const more = h('button', { type: 'button', hidden: true }, 'Older alerts');
  let cursor = null;
  const load = async (reset) => {
    if (reset) {
      t.reset();
      cursor = null;
    }
    const page = await api(`/api/violations${qs({ verdict: action.value, cursor, limit: 100 })}`);
    t.add(page.items);
    cursor = page.nextCursor;
    more.hidden = cursor === null;
  };
  action.addEventListener('change', () => void load(true));
  more.addEventListener('click', () => void load(false));
  await load(true);
  const off = onLive((type, row) => {
    if (type === 'violation' && (action.value === '' || action.value === row.action))
      t.add([row], { prepend: true });
  });
  const el = h(
    'section',
    { class: 'page' },
    h('h1', {}, 'Alerts'),
    h(
      'form',
      { class: 'filters', 'aria-label': 'Filter alerts', onsubmit: (e) => e.preventDefault() },
      field('Action', action),
    ),
    t.el,
    more,
  );
  return { el, cleanup: off };
}
