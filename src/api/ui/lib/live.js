// One EventSource for the whole page: the live stream of new and updated records.
const listeners = new Set();
let source = null;

function status(text, ok) {
  const el = document.getElementById('live-status');
  if (!el) return;
  el.textContent = text;
  el.classList.toggle('ok', ok);
}

export function startLive() {
  if (source) return;
  source = new EventSource('/api/stream');
  source.addEventListener('open', () => status('live', true));
  source.addEventListener('error', () => status('reconnecting…', false));
  for (const type of ['session', 'connection', 'request', 'monitor', 'violation']) {
    source.addEventListener(type, (ev) => {
      let data;
      try {
        data = JSON.parse(ev.data);
      } catch {
        return;
      }
      for (const l of listeners) l(type, data);
    });
  }
}

/** Calls fn(type, row) for every live record until the returned function is called. */
export function onLive(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}
