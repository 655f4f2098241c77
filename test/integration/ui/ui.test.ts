/**
 * End to end in real headless Chromium: a real proxy session at level headers and the API server
 * on the same store; a request made through the proxy appears live in the UI, and its detail
 * shows redacted headers. The page must load nothing from any other origin.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { ProxyAgent, fetch } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/core/index.js';
import { startApiServer, type ApiServer } from '../../../src/api/index.js';
import { startProxySession, type ProxySession } from '../../../src/cli/commands/proxy.js';
import { requireClient } from '../../helpers/clients.js';
import { makeLeaf, makeTestCa } from '../../helpers/pki.js';
import { startUpstream, type TestUpstream } from '../../helpers/upstream.js';

const MARKER = 'UiMarkerSecret5c8e2f1a9d';
const RESULTS = 'test-results';
const closers: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  while (closers.length) await closers.pop()!().catch(() => undefined);
});

interface Setup {
  dir: string;
  upstream: TestUpstream;
  session: ProxySession;
  api: ApiServer;
  browser: Browser;
  page: Page;
  foreign: string[];
  problems: string[];
}

async function setup(viewport = { width: 1280, height: 800 }, policy?: string): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), 'tr-ui-'));
  closers.push(async () => rmSync(dir, { recursive: true, force: true }));
  const ca = await makeTestCa();
  writeFileSync(join(dir, 'upstream-ca.pem'), ca.certPem);
  if (policy) writeFileSync(join(dir, 'policy.yaml'), policy);
  const upstream = await startUpstream({ leaf: await makeLeaf(ca, ['api.example.test']) });
  closers.push(() => upstream.close());
  const session = await startProxySession(
    {
      port: 0,
      host: '127.0.0.1',
      level: 'headers',
      maxBody: 1024 * 1024,
      upstreamCa: [join(dir, 'upstream-ca.pem')],
      resolve: [`api.example.test:443:127.0.0.1:${upstream.port}`],
      dataDir: join(dir, 'data'),
      onStoreError: 'fail',
      ...(policy ? { policy: join(dir, 'policy.yaml') } : {}),
    },
    { logger: silentLogger(), warn: () => undefined },
  );
  closers.push(() => session.stop('completed'));
  const api = await startApiServer({
    store: session.store,
    dataDir: session.dataDir,
    port: 0,
    pollMs: 200,
  });
  closers.push(() => api.close());
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true });
  closers.push(() => browser.close());
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  const own = new URL(api.url).origin;
  const foreign: string[] = [];
  const problems: string[] = [];
  page.on('request', (req) => {
    const u = req.url();
    if (!u.startsWith(`${own}/`) && !u.startsWith('blob:') && !u.startsWith('data:'))
      foreign.push(u);
  });
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console: ${msg.text()}`);
  });
  return { dir, upstream, session, api, browser, page, foreign, problems };
}

async function throughProxy(s: Setup, path: string, headers: Record<string, string>) {
  const dispatcher = new ProxyAgent({
    uri: s.session.url,
    requestTls: { ca: readFileSync(s.session.caPath, 'utf8') },
  });
  try {
    const res = await fetch(`https://api.example.test${path}`, { dispatcher, headers });
    await res.text();
    return res.status;
  } finally {
    await dispatcher.close();
  }
}

function shot(page: Page, name: string) {
  mkdirSync(RESULTS, { recursive: true });
  return page.screenshot({ path: join(RESULTS, `ui-${name}.png`), fullPage: false });
}

describe('web UI in headless Chromium', () => {
  it('shows a proxied request live, then its redacted detail; loads nothing from elsewhere', async () => {
    if (!requireClient('chromium')) return;
    const s = await setup(
      undefined,
      'version: 2\nname: e2e\nrules:\n  - match: api.example.test\n    action: alert\n' +
        '    reason: patient endpoints are reviewed\ndefaults:\n  action: block\n',
    );
    const { page } = s;
    await page.goto(s.api.oneTimeUrl);
    expect(new URL(page.url()).pathname).toBe('/');
    await expect
      .poll(() => page.locator('#live-status').textContent(), { timeout: 15_000 })
      .toBe('live');
    await page.getByRole('heading', { name: 'Live', level: 1 }).waitFor();
    // The session records headers: the PHI warning is shown.
    await page.getByRole('note').filter({ hasText: 'PHI warning' }).waitFor({ timeout: 10_000 });

    expect(
      await throughProxy(s, '/v1/patients?id=7', {
        authorization: `Bearer ${MARKER}`,
        'x-api-key': MARKER,
      }),
    ).toBe(200);
    expect(s.upstream.requests[0]!.headers.authorization).toBe(`Bearer ${MARKER}`);

    const table = page.getByRole('table', { name: /Latest requests/ });
    const row = table.getByRole('row').filter({ hasText: 'api.example.test' });
    await row.first().waitFor({ timeout: 15_000 });
    await expect.poll(() => row.first().textContent(), { timeout: 15_000 }).toContain('200');
    const hosts = page.getByRole('table', { name: /per host/ });
    await expect
      .poll(() => hosts.getByRole('row').filter({ hasText: 'api.example.test' }).textContent())
      .toMatch(/api\.example\.test\s*1\s*1/);
    const alerts = page.getByRole('table', { name: /Latest violations/ });
    await alerts.getByRole('row').filter({ hasText: 'patient endpoints are reviewed' }).waitFor();
    await shot(page, 'dashboard');

    await row.first().getByRole('link').first().click();
    await page.getByRole('heading', { name: 'GET api.example.test', level: 1 }).waitFor();
    const headers = page.getByRole('table', { name: 'Request headers (redacted)' });
    await expect.poll(() => headers.textContent()).toContain('Bearer [REDACTED:authorization]');
    expect(await headers.textContent()).toContain('[REDACTED:api-key]');
    const body = await page.locator('main').textContent();
    expect(body).not.toContain(MARKER);
    expect(body).toContain('/v1/patients?id=7');
    const redactions = page.getByRole('table', { name: /What was masked/ });
    expect(await redactions.textContent()).toContain('request header:authorization');
    const verdict = await page.getByRole('region', { name: 'Policy verdict' }).textContent();
    expect(verdict).toContain('alert');
    expect(verdict).toContain('patient endpoints are reviewed');
    await shot(page, 'request');
    expect(await page.content()).not.toContain(MARKER);

    // The session page lists the request with its redacted path and process columns.
    await page.getByRole('link', { name: s.session.sessionId.slice(-6) }).click();
    const reqs = page.getByRole('table', { name: /Requests in this session/ });
    await reqs.getByRole('row').filter({ hasText: '/v1/patients?id=7' }).waitFor();
    const cols = await reqs.getByRole('columnheader').allTextContents();
    expect(cols).toEqual([
      'Time',
      'Method',
      'Host',
      'Path',
      'Status',
      'Size',
      'Verdict',
      'Process',
    ]);
    await shot(page, 'session');

    expect(s.foreign).toEqual([]);
    expect(s.problems).toEqual([]);
  });

  it('edits a policy with validation errors at the line, on a narrow window', async () => {
    if (!requireClient('chromium')) return;
    const s = await setup({ width: 420, height: 800 });
    const { page } = s;
    await page.goto(s.api.oneTimeUrl);
    await page.getByRole('link', { name: 'Policies' }).click();
    await page.getByRole('heading', { name: 'Policies', level: 1 }).waitFor();
    await page.getByLabel('Name').fill('narrow');
    const yaml = page.getByLabel('Policy (YAML)');
    await yaml.fill(
      'version: 2\nname: n\nrules:\n  - match: "*.example.org"\n    action: permit\ndefaults:\n  action: block\n',
    );
    await page.getByRole('button', { name: 'Validate' }).click();
    const jump = page.getByRole('button', { name: 'line 5, column 13' });
    await jump.waitFor();
    expect(await page.locator('#policy-problems').textContent()).toContain(
      'unknown action "permit"',
    );
    expect(await yaml.getAttribute('aria-invalid')).toBe('true');
    expect(await page.locator('.gutter .err').allTextContents()).toEqual(['5\n']);
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText(/Not saved/).waitFor();
    await shot(page, 'policy-narrow');

    await yaml.fill(
      'version: 2\nname: n\nrules:\n  - match: "*.example.org"\n    action: allow\ndefaults:\n  action: block\n',
    );
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText(/Saved to .*narrow\.yaml/).waitFor();
    expect(readFileSync(join(s.session.dataDir, 'policies', 'narrow.yaml'), 'utf8')).toContain(
      'action: allow',
    );
    const overflow = await page.evaluate<number>(
      'document.documentElement.scrollWidth - window.innerWidth',
    );
    expect(overflow).toBeLessThanOrEqual(0);

    expect(s.foreign).toEqual([]);
    // The refused save answered 400, which Chromium logs; anything else is a problem.
    expect(s.problems.filter((p) => !/status of 400/.test(p))).toEqual([]);
  });
});
