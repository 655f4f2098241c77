// TrustRun web UI: hash routes, one module per page. Everything is loaded from this server.
import { startLive } from './lib/live.js';
import { clear, h } from './lib/dom.js';
import { dashboardPage } from './pages/dashboard.js';
import { sessionsPage } from './pages/sessions.js';
import { sessionPage } from './pages/session.js';
import { requestPage } from './pages/request.js';
import { policiesPage } from './pages/policies.js';
import { alertsPage } from './pages/alerts.js';

const routes = [
  [/^\/$/, 'dashboard', () => dashboardPage()],
  [/^\/sessions$/, 'sessions', () => sessionsPage()],
  [/^\/sessions\/([0-9a-z]{21})$/, 'sessions', (m) => sessionPage(m[1])],
  [/^\/requests\/([0-9a-z]{21})$/, 'sessions', (m) => requestPage(m[1])],
  [/^\/policies(?:\/([A-Za-z0-9._-]+))?$/, 'policies', (m) => policiesPage(m[1])],
  [/^\/alerts$/, 'alerts', () => alertsPage()],
];

let cleanup = null;

async function render() {
  const path = location.hash.replace(/^#/, '') || '/';
  const main = document.getElementById('main');
  if (cleanup) cleanup();
  cleanup = null;
  clear(main);
  for (const [re, nav, page] of routes) {
    const m = re.exec(path);
    if (!m) continue;
    for (const a of document.querySelectorAll('nav a')) {
      if (a.dataset.nav === nav) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    try {
      const view = await page(m);
      main.append(view.el);
      cleanup = view.cleanup ?? null;
      const title = view.el.querySelector('h1')?.textContent;
      document.title = title ? `${title} – TrustRun` : 'TrustRun';
    } catch (err) {
      main.append(
        h('h1', {}, 'Something went wrong'),
        h('p', { class: 'error' }, String(err.message ?? err)),
      );
    }
    return;
  }
  main.append(
    h('h1', {}, 'Not found'),
    h('p', {}, h('a', { href: '#/' }, 'Back to the live view')),
  );
}

window.addEventListener('hashchange', () => {
  void render().then(() => document.getElementById('main').focus({ preventScroll: true }));
});
startLive();
void render();
