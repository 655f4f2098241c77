import { describe, expect, it } from 'vitest';
import { scanSource, tokenizeR, type Finding } from '../../../src/scan/index.js';

/** [line, kind, text] of every finding: compact enough to compare whole lists exactly. */
async function scan(file: string, code: string): Promise<Array<[number, string, string]>> {
  const fs: Finding[] = await scanSource(code, file);
  return fs.map((f) => [f.line, f.kind, f.text]);
}

describe('Python analyzer', () => {
  it('ignores URLs in comments and docstrings, and reports the code', async () => {
    const code = [
      '"""Module docs: https://docs.partner.org/guide"""',
      '# https://commented.partner.org/old',
      'def f():',
      '    """See https://wiki.partner.org/f."""',
      '    return "https://api.partner.org/v1"  # https://trailing.partner.org',
    ].join('\n');
    expect(await scan('m.py', code)).toEqual([
      [5, 'python_url_literal', 'https://api.partner.org/v1'],
    ]);
  });

  it('still reports a secret inside a comment', async () => {
    expect(await scan('m.py', '# key: AKIAIOSFODNN7EXAMPLE\n')).toEqual([
      [1, 'aws_access_key', 'AKIA…'],
    ]);
  });

  it('resolves import aliases for network calls', async () => {
    const code = [
      'import requests as rq',
      'from httpx import AsyncClient as AC',
      'from urllib.request import urlopen',
      'import boto3, aiohttp',
      'import urllib3',
      'from openai import OpenAI',
      'rq.post(u)',
      'AC()',
      'urlopen(u)',
      'boto3.client("s3")',
      'aiohttp.ClientSession()',
      'urllib3.PoolManager()',
      'OpenAI()',
      'import urllib.request',
      'urllib.request.Request(u)',
      'import http.client',
      'http.client.HTTPSConnection(h)',
    ].join('\n');
    expect((await scan('m.py', code)).map(([line, , text]) => [line, text])).toEqual([
      [7, 'rq.post('],
      [8, 'AC('],
      [9, 'urlopen('],
      [10, 'boto3.client('],
      [11, 'aiohttp.ClientSession('],
      [12, 'urllib3.PoolManager('],
      [13, 'OpenAI('],
      [15, 'urllib.request.Request('],
      [17, 'http.client.HTTPSConnection('],
    ]);
  });

  it('does not take lookalike calls for network calls', async () => {
    const code = [
      'import mylib as requests_like',
      'd = {}',
      'd.get("k")',
      'requests_like.get(u)',
      'session.get(u)',
      'OpenAI()  # not imported from openai',
      'def get(u): pass',
      'get(u)',
    ].join('\n');
    expect(await scan('m.py', code)).toEqual([]);
  });

  it('reports f-strings whose static head holds the host, not those built from variables', async () => {
    const code = [
      'a = f"https://api.partner.org/{path}"',
      'b = f"https://{host}/v1"',
      'c = f"{BASE}/v1"',
      'd = f"https://api.partner.org:{port}/x"',
    ].join('\n');
    expect((await scanSource(code, 'm.py')).map((f) => [f.line, f.kind, f.endpoint])).toEqual([
      [1, 'python_url_literal', 'https://api.partner.org'],
      [4, 'python_url_literal', 'https://api.partner.org'],
    ]);
  });

  it('reports endpoint keyword arguments with a sibling port, and filters local ones', async () => {
    const code = [
      'c = connect(host="db.partner.org", port=5439)',
      'd = connect(host="localhost", port=5432)',
      'e = Client(endpoint_url="https://s3.partner.org")',
      'f = Client(url="/relative/path")',
      'g = Client(base_url="https://api.example.com/v1")',
      'h = Client(timeout="30")',
    ].join('\n');
    const fs = await scanSource(code, 'm.py');
    expect(fs.map((f) => [f.line, f.kind, f.text, f.destination])).toEqual([
      [
        1,
        'python_endpoint_kwarg',
        "host='db.partner.org'",
        { host: 'db.partner.org', port: 5439, ip: null },
      ],
      [
        3,
        'python_endpoint_kwarg',
        "endpoint_url='https://s3.partner.org'",
        { host: 's3.partner.org', port: 443, ip: null },
      ],
      [5, 'url', 'https://api.example.com/v1', { host: 'api.example.com', port: 443, ip: null }],
    ]);
  });

  it('reports literals only when the string starts with the URL', async () => {
    const code = 'msg = "see https://help.partner.org"\nb = b"https://bytes.partner.org"\n';
    expect(await scan('m.py', code)).toEqual([
      [1, 'url', 'https://help.partner.org'],
      [2, 'python_url_literal', 'https://bytes.partner.org'],
    ]);
  });

  it('keeps working on code that does not parse', async () => {
    const code = 'def broken(:\n    requests.get("https://api.partner.org")\n';
    const kinds = (await scan('m.py', code)).map(([, kind]) => kind);
    expect(kinds).toContain('python_url_literal');
  });
});

describe('JavaScript / TypeScript analyzer', () => {
  it('ignores URLs in line, block, JSDoc and JSX comments', async () => {
    const code = [
      '// https://line.partner.org',
      '/* https://block.partner.org */',
      '/** @see https://jsdoc.partner.org */',
      'const el = <div>{/* https://jsx.partner.org */}</div>;',
      "const u = 'https://api.partner.org';",
    ].join('\n');
    expect(await scan('a.jsx', code)).toEqual([[5, 'js_url_literal', 'https://api.partner.org']]);
  });

  it('resolves imports and require() for network calls', async () => {
    const code = [
      "import ax from 'axios';",
      "import * as h from 'node:https';",
      "import { request as rq, Pool } from 'undici';",
      "const nf = require('node-fetch');",
      "const { get: httpGet } = require('http');",
      "import OpenAI from 'openai';",
      'ax.put(u);',
      'h.request(o);',
      'rq(u);',
      'new Pool(u);',
      'nf(u);',
      'httpGet(u);',
      'new OpenAI();',
      'window.fetch(u);',
      'new WebSocket(u);',
      "xhr.open('POST', u);",
      'ax(cfg);',
    ].join('\n');
    expect((await scan('a.mjs', code)).map(([line, , text]) => [line, text])).toEqual([
      [7, 'ax.put('],
      [8, 'h.request('],
      [9, 'rq('],
      [10, 'new Pool('],
      [11, 'nf('],
      [12, 'httpGet('],
      [13, 'new OpenAI('],
      [14, 'window.fetch('],
      [15, 'new WebSocket('],
      [16, "xhr.open('POST'"],
      [17, 'ax('],
    ]);
  });

  it('does not take lookalikes for network calls', async () => {
    const code = [
      "import { get } from 'lodash';",
      'get(obj, "a");',
      'map.get(k);',
      "file.open('r');",
      'new URL(u);',
      'new Map();',
    ].join('\n');
    expect(await scan('a.js', code)).toEqual([]);
  });

  it('reports endpoint properties, template heads and ws:// literals', async () => {
    const code = [
      'const a = { baseURL: "https://gw.partner.org/v1", port: 8443 };',
      'const b = { host: `db.partner.org`, port: 5432 };',
      'const c = `https://cdn.partner.org/${file}`;',
      'const d = `${base}/x`;',
      "const e = new WebSocket('wss://live.partner.org/feed');",
      "const f = { url: 'http://localhost:3000' };",
    ].join('\n');
    const fs = await scanSource(code, 'a.ts');
    expect(fs.map((f) => [f.line, f.kind, f.text, f.destination])).toEqual([
      [
        1,
        'js_endpoint_property',
        'baseURL: "https://gw.partner.org/v1"',
        { host: 'gw.partner.org', port: 443, ip: null },
      ],
      [
        2,
        'js_endpoint_property',
        'host: `db.partner.org`',
        { host: 'db.partner.org', port: 5432, ip: null },
      ],
      [
        3,
        'js_url_literal',
        'https://cdn.partner.org/${file}',
        { host: 'cdn.partner.org', port: 443, ip: null },
      ],
      [5, 'js_network_call', 'new WebSocket(', null],
      [
        5,
        'js_url_literal',
        'wss://live.partner.org/feed',
        { host: 'live.partner.org', port: 443, ip: null },
      ],
    ]);
  });

  it('parses TypeScript and TSX syntax', async () => {
    const ts = [
      'interface Opts { url: string }',
      'export async function go<T>(o: Opts): Promise<T> {',
      '  const r = await fetch(o.url as string, { method: "GET" } satisfies RequestInit);',
      '  return (await r.json()) as T;',
      '}',
      'const api: string = "https://typed.partner.org";',
    ].join('\n');
    expect(await scan('a.ts', ts)).toEqual([
      [3, 'js_network_call', 'fetch('],
      [6, 'js_url_literal', 'https://typed.partner.org'],
    ]);
    const tsx =
      'export const A = (p: { n: number }) => <a href="https://tsx.partner.org">{p.n}</a>;';
    expect(await scan('a.tsx', tsx)).toEqual([[1, 'js_url_literal', 'https://tsx.partner.org']]);
  });

  it('chooses the analyzer by extension in any case', async () => {
    expect(await scan('APP.JS', 'fetch(u)')).toEqual([[1, 'js_network_call', 'fetch(']]);
    expect(await scan('Main.PY', 'import requests\nrequests.get(u)')).toEqual([
      [2, 'python_network_call', 'requests.get('],
    ]);
  });
});

describe('R tokenizer', () => {
  it('tells comments, strings, raw strings, backtick names, operators and numbers apart', () => {
    const code = [
      'x <- "a # not a comment \\" still" # comment "not a string"',
      'y <- r"(raw "quoted" # text)" %>% f(`odd name`, 1.5e3L, .5, 0x1F)',
      'z <- R\'[x]\' ; w <- r"--{a}--"',
    ].join('\n');
    const tokens = tokenizeR(code).map((t) => [t.type, t.value]);
    expect(tokens).toEqual([
      ['name', 'x'],
      ['op', '<-'],
      ['string', 'a # not a comment \\" still'],
      ['comment', '# comment "not a string"'],
      ['name', 'y'],
      ['op', '<-'],
      ['string', 'raw "quoted" # text'],
      ['op', '%>%'],
      ['name', 'f'],
      ['op', '('],
      ['name', 'odd name'],
      ['op', ','],
      ['number', '1.5e3L'],
      ['op', ','],
      ['number', '.5'],
      ['op', ','],
      ['number', '0x1F'],
      ['op', ')'],
      ['name', 'z'],
      ['op', '<-'],
      ['string', 'x'],
      ['op', ';'],
      ['name', 'w'],
      ['op', '<-'],
      ['string', 'a'],
    ]);
  });

  it('gives string offsets that point at the value', () => {
    const code = 'f(r"(https://a.org)", "b")';
    for (const t of tokenizeR(code).filter((x) => x.type === 'string')) {
      expect(code.slice(t.valueStart, t.valueStart + t.value.length)).toBe(t.value);
    }
  });
});

describe('R analyzer', () => {
  it('reports httr, httr2, curl, RCurl, base and DBI calls', async () => {
    const code = [
      'library(httr2)',
      'GET(u)',
      'httr::POST(u, body = b)',
      'request(u) |> req_perform()',
      'curl::curl_fetch_memory(u)',
      'RCurl::getURL(u)',
      'download.file(u, "f")',
      'con <- url(u)',
      'db <- DBI::dbConnect(drv)',
      'p <- pool::dbPool(drv)',
    ].join('\n');
    expect((await scan('a.R', code)).map(([line, , text]) => [line, text])).toEqual([
      [2, 'GET('],
      [3, 'httr::POST('],
      [4, 'request('],
      [4, 'req_perform('],
      [5, 'curl::curl_fetch_memory('],
      [6, 'RCurl::getURL('],
      [7, 'download.file('],
      [8, 'url('],
      [9, 'DBI::dbConnect('],
      [10, 'pool::dbPool('],
    ]);
  });

  it('does not take lookalikes for network calls', async () => {
    const code = [
      'request(u)          # httr2 is not loaded',
      'obj$GET(u)',
      'GET <- function(u) u',
      'mypkg::GET(u)',
      '# GET("https://commented.partner.org")',
      "#' @examples download.file('https://roxygen.partner.org')",
    ].join('\n');
    expect(await scan('a.r', code)).toEqual([]);
  });

  it('reports URL literals (raw and glue strings too) and endpoint arguments with their port', async () => {
    const code = [
      'a <- "https://api.partner.org/v1"',
      'b <- r"(https://raw.partner.org/x)"',
      'c <- glue("https://glue.partner.org/{id}")',
      'd <- glue("https://{host}/x")',
      'con <- dbConnect(RPostgres::Postgres(), host = "pg.partner.org", port = 5433L)',
      'e <- "ftp://ftp.partner.org/pub"',
      'f <- "http://localhost:8787"',
    ].join('\n');
    const fs = await scanSource(code, 'a.R');
    expect(fs.map((f) => [f.line, f.kind, f.destination])).toEqual([
      [1, 'r_url_literal', { host: 'api.partner.org', port: 443, ip: null }],
      [2, 'r_url_literal', { host: 'raw.partner.org', port: 443, ip: null }],
      [3, 'r_url_literal', { host: 'glue.partner.org', port: 443, ip: null }],
      [5, 'r_network_call', null],
      [5, 'r_endpoint_argument', { host: 'pg.partner.org', port: 5433, ip: null }],
      [6, 'r_url_literal', { host: 'ftp.partner.org', port: 21, ip: null }],
    ]);
  });

  it('reports ODBC connection strings, critical and masked when they hold a password', async () => {
    const code = [
      'a <- "Driver={ODBC Driver 18};Server=tcp:sql.partner.net,1433;Database=ehr;"',
      'b <- "Driver={PostgreSQL};Server=pg.partner.org;Port=5433;UID=app;PWD=Hunter2Hunter2;"',
      'c <- "Driver={SQLite};Database=local.db;"',
    ].join('\n');
    const fs = await scanSource(code, 'a.R');
    expect(fs.map((f) => [f.line, f.kind, f.severity, f.destination])).toEqual([
      [1, 'r_connection_string', 'warning', { host: 'sql.partner.net', port: 1433, ip: null }],
      [2, 'r_connection_string', 'critical', { host: 'pg.partner.org', port: 5433, ip: null }],
    ]);
    expect(JSON.stringify(fs)).not.toContain('Hunter2Hunter2');
    expect(fs[1]?.text).toBe(
      'Driver={PostgreSQL};Server=pg.partner.org;Port=5433;UID=app;PWD=***;',
    );
  });
});

describe('comments across analyzers', () => {
  it.each([
    ['a.py', '# server 203.0.113.7 and https://old.partner.org\nx = 1\n'],
    ['a.js', '/* server 203.0.113.7 and https://old.partner.org */\nlet x = 1;\n'],
    ['a.ts', '// postgres://reader@db.partner.org/app\nlet x = 1;\n'],
    ['a.R', '# server 203.0.113.7 and https://old.partner.org\nx <- 1\n'],
  ])('%s: endpoints in comments are not findings', async (file, code) => {
    expect(await scan(file, code)).toEqual([]);
  });

  it('the same lines are findings in a file no analyzer reads', async () => {
    const kinds = (
      await scan('notes.txt', '# server 203.0.113.7 and https://old.partner.org\n')
    ).map(([, k]) => k);
    expect(kinds).toEqual(['ip_literal', 'url']);
  });

  it.each(['a.py', 'a.js', 'a.R'])('%s: secrets in comments are still findings', async (file) => {
    const marker = file.endsWith('.js') ? '//' : '#';
    const code = [
      `${marker} old hook https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXX`,
      `${marker} postgres://app:Sup3rS3cret@db.partner.org/app`,
      `${marker} AKIAIOSFODNN7EXAMPLE`,
    ].join('\n');
    const fs = await scanSource(code, file);
    expect(fs.map((f) => [f.line, f.kind, f.severity])).toEqual([
      [1, 'slack_webhook', 'critical'],
      [2, 'database_url', 'critical'],
      [3, 'aws_access_key', 'critical'],
    ]);
  });
});

describe('URL literal schemes', () => {
  it.each([
    [
      'a.py',
      'u = "ftp://ftp.partner.org/pub"\nw = "wss://live.partner.org/feed"\n',
      'python_url_literal',
    ],
    [
      'a.js',
      "u = 'ftp://ftp.partner.org/pub';\nw = 'wss://live.partner.org/feed';\n",
      'js_url_literal',
    ],
    [
      'a.R',
      'u <- "ftp://ftp.partner.org/pub"\nw <- "wss://live.partner.org/feed"\n',
      'r_url_literal',
    ],
  ])('%s: ftp:// and wss:// literals', async (file, code, kind) => {
    const fs = await scanSource(code, file);
    expect(fs.map((f) => [f.kind, f.destination?.host, f.destination?.port])).toEqual([
      [kind, 'ftp.partner.org', 21],
      [kind, 'live.partner.org', 443],
    ]);
  });
});
