import { api } from '../lib/api.js';
import { clear, field, fmtTime, h, table, toast } from '../lib/dom.js';

const TEMPLATE = `version: 2
name: my-policy
description: Only the approved endpoints
capture_level: metadata
rules:
  - match: "*.example.org"
    action: allow
defaults:
  action: block
`;

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** A message for the next render of this page (after a save navigates to the saved policy). */
let flash = null;

function download(name, text) {
  const url = URL.createObjectURL(new Blob([text], { type: 'application/yaml' }));
  const a = h('a', { href: url, download: `${name}.yaml` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function editor() {
  const gutter = h('pre', { class: 'gutter', 'aria-hidden': 'true' });
  const area = h('textarea', {
    class: 'code',
    spellcheck: 'false',
    autocomplete: 'off',
    wrap: 'off',
    rows: 24,
    'aria-describedby': 'policy-problems',
  });
  const problems = h('div', { id: 'policy-problems', class: 'problems', 'aria-live': 'polite' });
  let errorLines = new Set();
  const drawGutter = () => {
    const n = area.value.split('\n').length;
    clear(gutter);
    for (let i = 1; i <= n; i++)
      gutter.append(h('span', { class: errorLines.has(i) ? 'err' : null }, `${i}\n`));
    gutter.scrollTop = area.scrollTop;
  };
  area.addEventListener('scroll', () => (gutter.scrollTop = area.scrollTop));
  area.addEventListener('input', drawGutter);
  const goTo = (line, col = 1) => {
    const lines = area.value.split('\n');
    let pos = 0;
    for (let i = 0; i < line - 1 && i < lines.length; i++) pos += lines[i].length + 1;
    pos += Math.max(0, col - 1);
    area.focus();
    area.setSelectionRange(pos, pos);
    const lh = area.scrollHeight / Math.max(1, lines.length);
    area.scrollTop = Math.max(0, (line - 3) * lh);
  };
  const show = (v) => {
    errorLines = new Set(
      v.errors.filter((e) => e.line !== null && e.file === null).map((e) => e.line),
    );
    area.setAttribute('aria-invalid', v.valid ? 'false' : 'true');
    clear(problems);
    if (v.valid) {
      const s = v.summary;
      problems.append(
        h(
          'p',
          { class: 'ok' },
          `Valid: ${s.name ?? 'unnamed'} (${s.format}), ${s.rules} rules, default ${s.defaultAction}${s.captureLevel ? `, level ${s.captureLevel}` : ''}.`,
        ),
      );
    } else {
      problems.append(
        h('p', { class: 'error' }, 'Not valid:'),
        h(
          'ul',
          {},
          v.errors.map((e) =>
            h(
              'li',
              {},
              e.line !== null && e.file === null
                ? h(
                    'button',
                    { type: 'button', class: 'link', onclick: () => goTo(e.line, e.col ?? 1) },
                    `line ${e.line}, column ${e.col}`,
                  )
                : (e.file ?? ''),
              `: ${e.message}`,
            ),
          ),
        ),
      );
    }
    for (const w of v.warnings) problems.append(h('p', { class: 'note' }, w));
    drawGutter();
  };
  return {
    el: h('div', { class: 'editor' }, gutter, area),
    problems,
    area,
    set(text) {
      area.value = text;
      errorLines = new Set();
      clear(problems);
      drawGutter();
    },
    show,
  };
}

export async function policiesPage(selected) {
  const list = await api('/api/policies');
  const ed = editor();
  const name = h('input', {
    type: 'text',
    required: true,
    pattern: NAME_RE.source,
    value: selected ?? '',
  });
  const status = h('p', { role: 'status', class: 'note' }, flash ?? '');
  flash = null;
  const t = table({
    caption: `Saved policies (in ${list.dir})`,
    columns: [
      { label: 'Name', cell: (p) => h('a', { href: `#/policies/${p.name}` }, p.name) },
      { label: 'Modified', cell: (p) => fmtTime(p.modifiedAt) },
      { label: 'Size', cell: (p) => `${p.size} B`, num: true },
    ],
    rows: list.items,
    empty: 'No saved policies yet.',
  });

  const validate = async () => {
    const v = await api('/api/policies/validate', {
      method: 'POST',
      body: { yaml: ed.area.value, ...(NAME_RE.test(name.value) ? { name: name.value } : {}) },
    });
    ed.show(v);
    return v;
  };
  let timer = null;
  ed.area.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => void validate(), 400);
  });

  if (selected) {
    const p = await api(`/api/policies/${encodeURIComponent(selected)}`);
    ed.set(p.yaml);
    ed.show(p.validation);
  } else {
    ed.set(TEMPLATE);
  }

  const save = async () => {
    if (!NAME_RE.test(name.value)) {
      status.textContent = 'Give the policy a name: letters, digits, dots, dashes or underscores.';
      name.focus();
      return;
    }
    try {
      const saved = await api(`/api/policies/${encodeURIComponent(name.value)}`, {
        method: 'PUT',
        body: { yaml: ed.area.value },
      });
      ed.show(saved.validation);
      status.textContent = `Saved to ${saved.file}.`;
      if (location.hash !== `#/policies/${saved.name}`) {
        flash = status.textContent;
        location.hash = `#/policies/${saved.name}`;
      }
    } catch (err) {
      const issues = err.body?.error?.issues ?? [];
      ed.show({
        valid: false,
        errors: issues.map((i) => ({
          file: null,
          line: i.line ?? null,
          col: i.col ?? null,
          message: i.message,
        })),
        warnings: [],
        summary: null,
      });
      status.textContent = `Not saved: ${err.message}`;
    }
  };
  const fileInput = h('input', { type: 'file', accept: '.yaml,.yml,text/yaml,application/yaml' });
  fileInput.addEventListener('change', async () => {
    const f = fileInput.files?.[0];
    if (!f) return;
    ed.set(await f.text());
    if (!name.value) name.value = f.name.replace(/\.ya?ml$/i, '').replace(/[^A-Za-z0-9._-]/g, '-');
    status.textContent = `Imported ${f.name}: not saved yet.`;
    await validate();
  });
  const del = async () => {
    if (!selected || !confirm(`Delete policy ${selected}?`)) return;
    await api(`/api/policies/${encodeURIComponent(selected)}`, { method: 'DELETE' });
    toast(`Deleted ${selected}.`);
    location.hash = '#/policies';
  };

  const el = h(
    'section',
    { class: 'page' },
    h('h1', {}, 'Policies'),
    t.el,
    h('p', {}, h('a', { href: '#/policies', onclick: () => ed.set(TEMPLATE) }, 'New policy')),
    h('h2', {}, selected ? `Edit ${selected}` : 'New policy'),
    h(
      'form',
      {
        class: 'filters',
        'aria-label': 'Policy file',
        onsubmit: (e) => {
          e.preventDefault();
          void save();
        },
      },
      field('Name', name, 'saved as NAME.yaml'),
      field('Import a YAML file', fileInput),
    ),
    h(
      'label',
      { for: ed.area.id || (ed.area.id = 'policy-yaml'), class: 'block' },
      'Policy (YAML)',
    ),
    ed.el,
    ed.problems,
    h(
      'div',
      { class: 'actions' },
      h('button', { type: 'button', onclick: () => void validate() }, 'Validate'),
      h('button', { type: 'button', class: 'primary', onclick: () => void save() }, 'Save'),
      h(
        'button',
        { type: 'button', onclick: () => download(name.value || 'policy', ed.area.value) },
        'Export',
      ),
      selected
        ? h('button', { type: 'button', class: 'danger', onclick: () => void del() }, 'Delete')
        : null,
    ),
    status,
  );
  return { el };
}
