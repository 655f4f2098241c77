'use strict';
/*
 * TrustRun Node preload: routes a Node program's HTTP(S) traffic through the proxy named by the
 * standard proxy variables. `trustrun run` loads it with `--require` in NODE_OPTIONS; Node 20
 * itself reads no proxy variable.
 *
 * - `fetch` (Node's bundled undici): the global dispatcher becomes an undici EnvHttpProxyAgent,
 *   loaded from TrustRun's own installation (resolved from this file's directory, so the program
 *   needs no node_modules of its own) the first time a dispatcher is asked for. A program that
 *   installs its own dispatcher replaces it.
 * - `http` / `https` modules: every http.Agent and https.Agent (the global ones, `agent: false`,
 *   and agents a program makes) opens its connections through a CONNECT tunnel to the proxy;
 *   TLS then runs inside the tunnel, so NODE_EXTRA_CA_CERTS and the caller's TLS options apply.
 *   Agents that bring their own createConnection (proxy-agent libraries) are left alone, as are
 *   Unix-socket requests (socketPath).
 *
 * NO_PROXY / no_proxy are honoured (`*`, host names, `.domain` / `*.domain` suffixes,
 * `host:port`). Set TRUSTRUN_PRELOAD_DEBUG=1 to log each tunnel on stderr.
 */
(function trustrunPreload() {
  const MARK = Symbol.for('trustrun.preload');
  if (globalThis[MARK]) return;
  Object.defineProperty(globalThis, MARK, { value: true });

  const net = require('node:net');
  const tls = require('node:tls');
  const http = require('node:http');
  const https = require('node:https');

  const env = process.env;
  const debug = env.TRUSTRUN_PRELOAD_DEBUG === '1';
  const warned = new Set();
  function warn(msg) {
    if (warned.has(msg)) return;
    warned.add(msg);
    process.stderr.write(`trustrun preload: ${msg}\n`);
  }

  function first(...names) {
    for (const n of names) if (env[n]) return env[n];
    return '';
  }

  function parseProxy(raw) {
    if (!raw) return null;
    try {
      const u = new URL(raw.includes('://') ? raw : `http://${raw}`);
      if (u.protocol !== 'http:') {
        warn(`only http:// proxies are supported, ignoring ${u.protocol} proxy`);
        return null;
      }
      return u;
    } catch {
      warn(`ignoring proxy variable that is not a URL: ${raw}`);
      return null;
    }
  }

  const proxies = {
    'http:': parseProxy(first('http_proxy', 'HTTP_PROXY', 'all_proxy', 'ALL_PROXY')),
    'https:': parseProxy(first('https_proxy', 'HTTPS_PROXY', 'all_proxy', 'ALL_PROXY')),
  };
  if (!proxies['http:'] && !proxies['https:']) return;

  const noProxy = first('no_proxy', 'NO_PROXY')
    .split(/[\s,]+/)
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);

  function unbracket(host) {
    return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  }

  function bypassed(host, port) {
    for (const entry of noProxy) {
      if (entry === '*') return true;
      let name = entry;
      let p = null;
      const m = /^(.*?):(\d+)$/.exec(entry);
      if (m && !entry.includes('::')) {
        name = m[1];
        p = Number(m[2]);
      }
      if (p !== null && p !== port) continue;
      name = unbracket(name).replace(/^\*/, '');
      if (host === name) return true;
      if (name.startsWith('.') ? host.endsWith(name) : host.endsWith(`.${name}`)) return true;
    }
    return false;
  }

  function proxyFor(protocol, host, port) {
    const proxy = proxies[protocol];
    if (!proxy) return null;
    const h = unbracket(String(host)).toLowerCase();
    if (bypassed(h, port)) return null;
    // The proxy itself is never reached through itself.
    const proxyPort = Number(proxy.port || 80);
    if (port === proxyPort && h === unbracket(proxy.hostname).toLowerCase()) return null;
    return proxy;
  }

  /** Opens a CONNECT tunnel to host:port through the proxy; cb(err, socket). */
  function tunnel(proxy, host, port, cb) {
    const target = `${net.isIPv6(host) ? `[${host}]` : host}:${port}`;
    if (debug) process.stderr.write(`trustrun preload: CONNECT ${target} via ${proxy.host}\n`);
    const sock = net.connect(Number(proxy.port || 80), unbracket(proxy.hostname));
    let head = Buffer.alloc(0);
    let done = false;
    function finish(err, s) {
      if (done) return;
      done = true;
      sock.removeListener('data', onData);
      sock.removeListener('error', onError);
      sock.removeListener('close', onClose);
      if (err) sock.destroy();
      cb(err, s);
    }
    function onError(err) {
      finish(Object.assign(new Error(`proxy ${proxy.host}: ${err.message}`), { code: err.code }));
    }
    function onClose() {
      finish(new Error(`proxy ${proxy.host} closed the connection before answering CONNECT`));
    }
    function onData(chunk) {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > 16384) finish(new Error(`proxy ${proxy.host}: response head too long`));
        return;
      }
      const statusLine = head.subarray(0, head.indexOf('\r\n')).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(statusLine);
      if (!m || m[1] !== '200') {
        const err = new Error(
          `proxy ${proxy.host} refused CONNECT ${target}: ${m ? `${m[1]} ${m[2] || ''}`.trim() : statusLine}`,
        );
        err.code = 'ERR_TRUSTRUN_PROXY_REFUSED';
        err.statusCode = m ? Number(m[1]) : null;
        finish(err);
        return;
      }
      const rest = head.subarray(end + 4);
      sock.pause();
      if (rest.length) sock.unshift(rest);
      finish(null, sock);
    }
    sock.on('data', onData);
    sock.on('error', onError);
    sock.on('close', onClose);
    sock.once('connect', () => {
      let req = `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n`;
      if (proxy.username) {
        const cred = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
        req += `Proxy-Authorization: Basic ${Buffer.from(cred).toString('base64')}\r\n`;
      }
      sock.write(`${req}\r\n`);
    });
  }

  function target(options, defaultPort) {
    const host = options.host || options.hostname || 'localhost';
    const port = Number(options.port) || defaultPort;
    return { host: unbracket(String(host)), port };
  }

  const httpCreate = http.Agent.prototype.createConnection;
  http.Agent.prototype.createConnection = function createConnection(options, cb) {
    if (typeof cb !== 'function' || !options || typeof options !== 'object' || options.socketPath) {
      return httpCreate.apply(this, arguments);
    }
    const { host, port } = target(options, 80);
    const proxy = proxyFor('http:', host, port);
    if (!proxy) return httpCreate.apply(this, arguments);
    tunnel(proxy, host, port, (err, sock) => {
      if (err) return cb(err);
      sock.resume();
      cb(null, sock);
    });
    return undefined;
  };

  const httpsCreate = https.Agent.prototype.createConnection;
  https.Agent.prototype.createConnection = function createConnection(options, cb) {
    if (typeof cb !== 'function' || !options || typeof options !== 'object' || options.socketPath) {
      return httpsCreate.apply(this, arguments);
    }
    const { host, port } = target(options, 443);
    const proxy = proxyFor('https:', host, port);
    if (!proxy) return httpsCreate.apply(this, arguments);
    tunnel(proxy, host, port, (err, raw) => {
      if (err) return cb(err);
      const servername =
        options.servername !== undefined ? options.servername : net.isIP(host) ? '' : host;
      const opts = { ...options, socket: raw, host, port };
      if (servername) opts.servername = servername;
      else delete opts.servername;
      let sock;
      try {
        sock = tls.connect(opts);
      } catch (e) {
        raw.destroy();
        return cb(e);
      }
      cb(null, sock);
    });
    return undefined;
  };

  // fetch: an undici EnvHttpProxyAgent as the global dispatcher, made on first use.
  const DISPATCHER = Symbol.for('undici.globalDispatcher.1');
  if (Object.getOwnPropertyDescriptor(globalThis, DISPATCHER) === undefined) {
    let agent;
    Object.defineProperty(globalThis, DISPATCHER, {
      configurable: true,
      enumerable: false,
      get() {
        if (agent) return agent;
        // Whatever happens next, this getter runs once: undici's own module code asks for the
        // dispatcher while loading.
        delete globalThis[DISPATCHER];
        try {
          let EnvHttpProxyAgent;
          let setGlobalDispatcher;
          try {
            // The parts fetch needs load in a third of the time of the whole package (which
            // also does this Object.assign); the whole package is the fallback.
            EnvHttpProxyAgent = require('undici/lib/dispatcher/env-http-proxy-agent.js');
            ({ setGlobalDispatcher } = require('undici/lib/global.js'));
            const Dispatcher = require('undici/lib/dispatcher/dispatcher.js');
            if (typeof Dispatcher.prototype.connect !== 'function') {
              Object.assign(Dispatcher.prototype, require('undici/lib/api/index.js'));
            }
            if (typeof Dispatcher.prototype.connect !== 'function') throw new Error('layout');
          } catch {
            ({ EnvHttpProxyAgent, setGlobalDispatcher } = require('undici'));
          }
          agent = new EnvHttpProxyAgent();
          setGlobalDispatcher(agent);
          return agent;
        } catch (err) {
          warn(`fetch is not routed through the proxy: ${err && err.message}`);
          return globalThis[DISPATCHER];
        }
      },
      set(value) {
        delete globalThis[DISPATCHER];
        globalThis[DISPATCHER] = value;
      },
    });
  }
})();
