// Small DOM helpers. Text always goes in as text (never as HTML), so recorded data cannot inject markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of [children].flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export function fmtTime(ms) {
  if (ms === null || ms === undefined) return '–';
  const d = new Date(ms);
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`
  );
}

export function fmtSize(n) {
  if (n === null || n === undefined) return '–';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export function fmtMs(n) {
  return n === null || n === undefined ? '–' : `${n} ms`;
}

export function verdictBadge(action, violation) {
  if (!action) return h('span', { class: 'badge none' }, 'no policy');
  return h('span', { class: `badge ${action}${violation ? ' violation' : ''}` }, action);
}

export function processText(pid, exe) {
  if (pid === null || pid === undefined) return exe ?? '–';
  return `${pid}${exe ? ` ${exe}` : ''}`;
}

/**
 * A real table: caption, column headers with scope=col, the first cell of each row a row header.
 * columns: [{ label, cell(row) -> Node|string, num? }]
 */
export function table({ caption, columns, rows, empty = 'Nothing yet.', rowId }) {
  const tbody = h('tbody');
  const t = h(
    'table',
    {},
    h('caption', {}, caption),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        columns.map((c) => h('th', { scope: 'col', class: c.num ? 'num' : null }, c.label)),
      ),
    ),
    tbody,
  );
  const emptyRow = h('tr', { class: 'empty' }, h('td', { colspan: columns.length }, empty));
  const makeRow = (row) => {
    const tr = h('tr', rowId ? { 'data-id': rowId(row) } : {});
    columns.forEach((c, i) => {
      tr.append(
        h(
          i === 0 ? 'th' : 'td',
          { scope: i === 0 ? 'row' : null, class: c.num ? 'num' : null },
          c.cell(row),
        ),
      );
    });
    return tr;
  };
  const api = {
    el: h('div', { class: 'table-wrap' }, t),
    tbody,
    add(list, { prepend = false, max = Infinity } = {}) {
      emptyRow.remove();
      for (const row of list) {
        const tr = makeRow(row);
        const old = rowId ? tbody.querySelector(`tr[data-id="${CSS.escape(rowId(row))}"]`) : null;
        if (old) old.replaceWith(tr);
        else if (prepend) tbody.prepend(tr);
        else tbody.append(tr);
      }
      while (tbody.rows.length > max) tbody.lastElementChild.remove();
      if (tbody.rows.length === 0) tbody.append(emptyRow);
    },
    reset() {
      clear(tbody);
      tbody.append(emptyRow);
    },
  };
  api.reset();
  api.add(rows ?? []);
  return api;
}

export function field(label, control, hint) {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  return h(
    'div',
    { class: 'field' },
    h('label', { for: id }, label),
    control,
    hint ? h('small', {}, hint) : null,
  );
}

export function select(options, value) {
  return h(
    'select',
    {},
    options.map(([v, label]) =>
      h('option', { value: v, selected: v === value ? true : null }, label),
    ),
  );
}

export function toast(message) {
  const el = document.getElementById('toast');
  el.textContent = message;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (el.hidden = true), 6000);
}
