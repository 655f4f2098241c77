/**
 * `trustrun run` (the built CLI) with real clients. The test sets no proxy or CA variable: the
 * child gets only what `run` sets. Every request must reach the local upstream through the
 * proxy (so the name was never resolved by the client: only --resolve knows it) and be recorded
 * in the store with its URL.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireClient } from '../../helpers/clients.js';
import type { Handler } from '../../helpers/upstream.js';
import { makeWorld, readSummary, trustrunRun, withStore, type World } from './helpers.js';

const API = 'api.example.test';
const GIT = 'git.example.test';
const REF = '0123456789abcdef0123456789abcdef01234567';

/** A dumb-HTTP git repository with one branch. */
const gitHandler: Handler = (req, res) => {
  if (req.url?.startsWith('/repo.git/info/refs')) {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`${REF}\trefs/heads/main\n`);
  } else {
    res.writeHead(404);
    res.end();
  }
};

let w: World;
let n = 0;

beforeAll(async () => {
  if (!existsSync(resolve('dist/cli/main.js'))) {
    throw new Error('dist/ is missing: run `npx tsc -p tsconfig.build.json` first');
  }
  w = await makeWorld([API, GIT], { [GIT]: gitHandler });
});
afterAll(async () => {
  await w?.close();
});

/**
 * Runs `argv` under `trustrun run --level headers` and checks: exit 0, the upstream got `path`
 * through the proxy, the summary lists the destination, and the store has the request (URL
 * opened from its sealed column).
 */
async function runAndCheck(argv: string[], host: string, path: string, cwd?: string) {
  const summaryFile = join(w.dir, `summary-${++n}.json`);
  const r = await trustrunRun(w, ['--level', 'headers', '--json-file', summaryFile], argv, {
    cwd,
  });
  expect(r.stderr).not.toMatch(/trustrun preload:/);
  expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
  expect(w.ups.get(host)!.requests.map((q) => q.url)).toContain(path);
  const s = await readSummary(summaryFile);
  expect(s.exitCode).toBe(0);
  expect(s.destinations).toContainEqual(expect.objectContaining({ host, port: 443, via: 'proxy' }));
  expect(s.requests).toBeGreaterThanOrEqual(1);
  await withStore(w, (store) => {
    const rows = store.listRequests({ sessionId: s.session, host }).items;
    const urls = rows.map((row) => store.getRequest(row.id)!.url);
    expect(urls).toContain(path);
    const row = rows.find((x) => store.getRequest(x.id)!.url === path)!;
    expect(row).toMatchObject({ host, port: 443, scheme: 'https' });
    expect(store.listConnections({ sessionId: s.session, host }).items.length).toBeGreaterThan(0);
    expect(store.getSession(s.session)).toMatchObject({
      kind: 'run',
      command: argv,
      status: 'completed',
      exitCode: 0,
      level: 'headers',
    });
  });
  return r;
}

describe('trustrun run with real clients', () => {
  it.skipIf(!requireClient('curl'))('curl', async () => {
    const r = await runAndCheck(['curl', '-sS', '--fail', `https://${API}/curl`], API, '/curl');
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, url: '/curl' });
  });

  it.skipIf(!requireClient('python3'))('python3 requests', async () => {
    const script = `import requests\nr = requests.get("https://${API}/python", timeout=30)\nprint(r.status_code, r.json()["url"])`;
    const r = await runAndCheck(['python3', '-c', script], API, '/python');
    expect(r.stdout).toBe('200 /python\n');
  });

  it.skipIf(!requireClient('python3'))('python3 urllib (standard library)', async () => {
    const script = `import urllib.request, json\nwith urllib.request.urlopen("https://${API}/urllib", timeout=30) as r:\n    print(r.status, json.load(r)["url"])`;
    const r = await runAndCheck(['python3', '-c', script], API, '/urllib');
    expect(r.stdout).toBe('200 /urllib\n');
  });

  it.skipIf(!requireClient('rscript'))(
    'Rscript download.file (libcurl method)',
    async () => {
      const r = await runAndCheck(
        [
          'Rscript',
          '-e',
          `f <- tempfile(); download.file("https://${API}/r-download", f, quiet = TRUE); cat(readLines(f, warn = FALSE))`,
        ],
        API,
        '/r-download',
      );
      expect(r.stdout).toMatch(/^\{.*"url":"\/r-download"/);
    },
    120_000,
  );

  it.skipIf(!requireClient('rscript'))(
    'Rscript with httr',
    async () => {
      const r = await runAndCheck(
        [
          'Rscript',
          '-e',
          `r <- httr::GET("https://${API}/r-httr"); cat(httr::status_code(r), httr::content(r, "text", encoding = "UTF-8"))`,
        ],
        API,
        '/r-httr',
      );
      expect(r.stdout).toMatch(/^200 \{.*"url":"\/r-httr"/);
    },
    120_000,
  );

  it.skipIf(!requireClient('rscript'))(
    'Rscript with the curl package (curl_fetch_memory)',
    async () => {
      const r = await runAndCheck(
        [
          'Rscript',
          '-e',
          `x <- curl::curl_fetch_memory("https://${API}/r-curl"); cat(x$status_code, rawToChar(x$content))`,
        ],
        API,
        '/r-curl',
      );
      expect(r.stdout).toMatch(/^200 \{.*"url":"\/r-curl"/);
    },
    120_000,
  );

  it('node fetch (preload; no node_modules in the working directory)', async () => {
    const script = `fetch("https://${API}/node-fetch").then(async (r) => console.log(r.status, (await r.json()).url))`;
    expect(existsSync(join(w.home, 'node_modules'))).toBe(false);
    const r = await runAndCheck(['node', '-e', script], API, '/node-fetch', w.home);
    expect(r.stdout).toBe('200 /node-fetch\n');
  });

  it('node https.get (preload)', async () => {
    const script = `require("https").get("https://${API}/node-https", (res) => { let b = ""; res.on("data", (c) => (b += c)); res.on("end", () => console.log(res.statusCode, JSON.parse(b).url)); })`;
    const r = await runAndCheck(['node', '-e', script], API, '/node-https', w.home);
    expect(r.stdout).toBe('200 /node-https\n');
  });

  it.skipIf(!requireClient('git'))('git ls-remote over https (dumb HTTP)', async () => {
    const r = await runAndCheck(
      ['git', 'ls-remote', `https://${GIT}/repo.git`],
      GIT,
      '/repo.git/info/refs?service=git-upload-pack',
    );
    expect(r.stdout).toBe(`${REF}\trefs/heads/main\n`);
  });

  it.skipIf(!requireClient('wget'))('wget (generated wgetrc)', async () => {
    const r = await runAndCheck(['wget', '-q', '-O', '-', `https://${API}/wget`], API, '/wget');
    expect(JSON.parse(r.stdout)).toMatchObject({ url: '/wget' });
  });

  const hasJava = spawnSync('java', ['-version'], { stdio: 'ignore' }).status === 0;
  it.skipIf(!hasJava)(
    'Java HttpURLConnection and HttpClient (JAVA_TOOL_OPTIONS, PKCS12 trust store)',
    async () => {
      // Java is optional: skipped (with this test named as skipped) when `java` is not installed.
      const src = join(w.dir, 'Fetch.java');
      writeFileSync(
        src,
        [
          'import java.net.*; import java.net.http.*;',
          'public class Fetch { public static void main(String[] a) throws Exception {',
          '  HttpURLConnection c = (HttpURLConnection) new URL(a[0] + "/java-url").openConnection();',
          '  System.out.println(c.getResponseCode() + " " + new String(c.getInputStream().readAllBytes()));',
          '  HttpResponse<String> r = HttpClient.newHttpClient().send(',
          '    HttpRequest.newBuilder(URI.create(a[0] + "/java-client")).build(), HttpResponse.BodyHandlers.ofString());',
          '  System.out.println(r.statusCode() + " " + r.body());',
          '} }',
        ].join('\n'),
      );
      const r = await runAndCheck(['java', src, `https://${API}`], API, '/java-url');
      expect(r.stdout).toMatch(/^200 \{.*"url":"\/java-url".*\n200 \{.*"url":"\/java-client"/);
      expect(w.ups.get(API)!.requests.map((q) => q.url)).toContain('/java-client');
    },
    120_000,
  );
});
