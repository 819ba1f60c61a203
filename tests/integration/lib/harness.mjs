// Test harness for the tickerd integration tests.
//
// Every test starts the real binary (env TICKERD_BIN, default /work/main/build/tickerd) on a free port
// (--port 0) and talks to it over real sockets. No mocks.
//
// Exports:
//   startTickerd({config, args, env, readyTimeoutMs}) -> Server {port, host, url, wsUrl, proc, pid, configPath,
//       stderr(), stdout(), stop(signal), waitExit(ms), writeConfig(obj|string), signal(sig), rssKiB(), alive()}
//   runTickerd({config, args, configPath, timeoutMs}) -> {code, signal, stdout, stderr, timedOut}
//   connect(port|server, opts) -> Client (see class Client)
//   httpGet(port|server, path) -> {status, headers, body, json()}
//   metrics(port|server) -> MetricsMap (Map "name{labels}" -> number, plus .sum/.value/.has/.text)
//   waitFor(fn, {timeoutMs, intervalMs, message}), sleep(ms), stopAll()
//   updatesOf(msg), UpdateTracker
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import WebSocket from 'ws';
import { startFakeExchange } from '../../fake-exchange/fake-exchange.mjs';

export const TICKERD_BIN = process.env.TICKERD_BIN || '/work/main/build/tickerd';
const VERBOSE = !!process.env.TICKERD_TEST_VERBOSE;
export const LISTEN_RE = /listening on https?:\/\/([^\s/]+):(\d+)\//;

export const sleep = (ms) => delay(ms);

/** promise, or `fallback` after timeoutMs (the timer is cleared either way). */
export function orAfter(promise, timeoutMs, fallback) {
  let timer;
  const t = new Promise((resolve) => { timer = setTimeout(() => resolve(fallback), timeoutMs); });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

/** promise, or a rejection with message() after timeoutMs (the timer is cleared either way). */
export function withTimeout(promise, timeoutMs, message = () => `timed out after ${timeoutMs} ms`) {
  let timer;
  const t = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(message())), timeoutMs); });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------------------------
// Process bookkeeping: every child we spawn is tracked and killed when the test process goes away.
const liveProcs = new Set();
const tempDirs = new Set();

function killAllNow() {
  for (const p of liveProcs) {
    try { p.kill('SIGKILL'); } catch { /* already gone */ }
  }
  liveProcs.clear();
  for (const d of tempDirs) {
    try { fs.rmSync(d, { recursive: true, force: true }); } catch { /* ignore */ }
  }
  tempDirs.clear();
}
process.on('exit', killAllNow);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => { killAllNow(); process.exit(128 + os.constants.signals[sig]); });
}

const startedServers = new Set(); // servers from startTickerd() not yet checked by stopAll()
const SANITIZER_RE = /AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|ThreadSanitizer|runtime error:/;

const startedFakes = new Set();

/** Start a fake exchange (tests/fake-exchange) that stopAll() closes. */
export async function startFake(opts = {}) {
  const fx = await startFakeExchange(opts);
  startedFakes.add(fx);
  return fx;
}

/**
 * Stop every fake exchange and every server this process started (use in `after`/`afterEach` hooks): SIGTERM, then SIGKILL after 3 s.
 * Then checks every server started since the last call and throws if one that was still running did not exit
 * 0 on SIGTERM, or if any server's stderr holds a sanitizer report — so crashes, leaks and sanitizer findings
 * fail the test file even when no assertion noticed them.
 */
export async function stopAll() {
  await Promise.all([...startedFakes].map((fx) => fx.close()));
  startedFakes.clear();
  const problems = [];
  const servers = [...startedServers];
  startedServers.clear();
  await Promise.all(servers.map(async (srv) => {
    if (srv.alive()) {
      const t0 = Date.now();
      try { srv.proc.kill('SIGTERM'); } catch { /* ignore */ }
      const r = await orAfter(srv.exited, 3000, null);
      if (!r) {
        try { srv.proc.kill('SIGKILL'); } catch { /* ignore */ }
        await srv.exited;
        problems.push(`tickerd pid ${srv.pid} did not exit within 3 s of SIGTERM`);
      } else if (r.code !== 0) {
        problems.push(`tickerd pid ${srv.pid} exited with code ${r.code} signal ${r.signal} on SIGTERM ` +
          `(after ${Date.now() - t0} ms)`);
      }
    }
    const err = srv.stderr();
    const m = SANITIZER_RE.exec(err);
    if (m) problems.push(`tickerd pid ${srv.pid} stderr has a sanitizer report:\n${err.slice(Math.max(0, m.index - 200), m.index + 3000)}`);
  }));
  // anything else (e.g. runTickerd leftovers)
  await Promise.all([...liveProcs].map(async (p) => {
    if (p.exitCode !== null || p.signalCode !== null) { liveProcs.delete(p); return; }
    try { p.kill('SIGKILL'); } catch { /* ignore */ }
    await exitPromise(p);
    liveProcs.delete(p);
  }));
  if (problems.length) {
    const tails = servers.filter((x) => problems.some((p) => p.includes(`pid ${x.pid} `)))
      .map((x) => `--- stderr of pid ${x.pid} (last 1500 chars) ---\n${x.stderr().slice(-1500)}`);
    throw new Error(`${problems.join('\n')}\n${tails.join('\n')}`);
  }
}

function makeTempDir() {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tickerd-it-'));
  tempDirs.add(d);
  return d;
}

function writeConfigFile(file, config) {
  const text = typeof config === 'string' ? config : JSON.stringify(config, null, 2);
  // write + rename so a SIGHUP never observes a half-written file
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

function exitPromise(proc) {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      resolve({ code: proc.exitCode, signal: proc.signalCode });
      return;
    }
    proc.once('exit', (code, signal) => resolve({ code, signal }));
  });
}

/**
 * The environment for a tickerd process: its default history file goes under stateDir
 * (XDG_STATE_HOME/tickerd/history.db), never into the user's real state directory, and each test
 * server gets its own unless a test passes the same stateDir to restart "on the same disk".
 */
function stateEnv(stateDir, env) {
  const e = { ...process.env, XDG_STATE_HOME: stateDir, ...env };
  delete e.STATE_DIRECTORY;
  return e;
}

/** A temp directory removed when the test process exits (for a stateDir shared by restarts). */
export function tempDir() {
  return makeTempDir();
}

// ---------------------------------------------------------------------------------------------------------
/**
 * Start tickerd with `config` (object or raw string; written to a temp file) and wait until it logs
 * `listening on http://HOST:PORT/`. Rejects (with the collected stderr) if the process exits first or does
 * not become ready within readyTimeoutMs.
 */
export async function startTickerd({ config = {}, args = [], env = {}, stateDir, readyTimeoutMs = 10000, bin = TICKERD_BIN, logLevel = 'info' } = {}) {
  const dir = makeTempDir();
  const configPath = path.join(dir, 'tickerd.json');
  writeConfigFile(configPath, config);

  // logLevel null: no --log-level, so the config's log.level rules (and reloads)
  const argv = ['-c', configPath, '--port', '0', ...(logLevel ? ['--log-level', logLevel] : []), ...args];
  const proc = spawn(bin, argv, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: stateEnv(stateDir || dir, env),
  });
  liveProcs.add(proc);
  let errText = '';
  let outText = '';
  const exited = exitPromise(proc);
  exited.then(() => liveProcs.delete(proc));
  proc.stderr.setEncoding('utf8');
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (d) => { outText += d; if (VERBOSE) process.stderr.write(`[tickerd ${proc.pid} out] ${d}`); });

  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`tickerd did not log "listening on" within ${readyTimeoutMs} ms; stderr:\n${errText}`));
    }, readyTimeoutMs);
    proc.stderr.on('data', (d) => {
      errText += d;
      if (VERBOSE) process.stderr.write(`[tickerd ${proc.pid}] ${d}`);
      const m = LISTEN_RE.exec(errText);
      if (m) { clearTimeout(timer); resolve(m); }
    });
    proc.once('error', (err) => { clearTimeout(timer); reject(new Error(`cannot spawn ${TICKERD_BIN}: ${err.message}`)); });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`tickerd exited (code ${code}, signal ${signal}) before listening; stderr:\n${errText}`));
    });
  });

  let m;
  try {
    m = await ready;
  } catch (err) {
    try { proc.kill('SIGKILL'); } catch { /* ignore */ }
    throw err;
  }
  const rawHost = m[1];
  const port = Number(m[2]);
  const tls = /listening on https:/.test(m[0]); // server.tls: the urls are https / wss
  const host = rawHost.replace(/^\[(.*)\]$/, '$1');

  const server = {
    proc,
    exited,
    pid: proc.pid,
    port,
    host,
    rawHost,
    tls,
    url: `${tls ? 'https' : 'http'}://${rawHost}:${port}/`,
    wsUrl: `${tls ? 'wss' : 'ws'}://${rawHost}:${port}/ws`,
    configPath,
    dir,
    stderr: () => errText,
    stdout: () => outText,
    alive: () => proc.exitCode === null && proc.signalCode === null,
    signal: (sig) => proc.kill(sig),
    /** Overwrite the config file (atomically); follow with signal('SIGHUP') to reload. */
    writeConfig: (cfg) => writeConfigFile(configPath, cfg),
    /** Resolves {code, signal}; rejects after timeoutMs. */
    waitExit: (timeoutMs = 5000) => withTimeout(exited, timeoutMs, () => `tickerd pid ${proc.pid} did not exit within ${timeoutMs} ms`),
    /** Send `sig` and wait for the exit (SIGKILL after timeoutMs). Resolves {code, signal}. */
    stop: async (sig = 'SIGTERM', timeoutMs = 5000) => {
      if (server.alive()) {
        try { proc.kill(sig); } catch { /* ignore */ }
        const r = await orAfter(exited, timeoutMs, null);
        if (r) return r;
        try { proc.kill('SIGKILL'); } catch { /* ignore */ }
      }
      return exited;
    },
    /** Resident set size in KiB from /proc/<pid>/status (VmRSS). */
    rssKiB: () => rssKiB(proc.pid),
  };
  startedServers.add(server);
  return server;
}

/** Run tickerd to completion (for CLI / bad-config tests). Never leaves the process behind. */
export async function runTickerd({ config, configPath, args = [], timeoutMs = 5000, env = {} } = {}) {
  const argv = [];
  if (config !== undefined) {
    const dir = makeTempDir();
    const file = path.join(dir, 'tickerd.json');
    writeConfigFile(file, config);
    argv.push('-c', file);
  } else if (configPath !== undefined) {
    argv.push('-c', configPath);
  }
  argv.push(...args);
  const proc = spawn(TICKERD_BIN, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: stateEnv(makeTempDir(), env) });
  liveProcs.add(proc);
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stdout.on('data', (d) => { stdout += d; });
  proc.stderr.on('data', (d) => { stderr += d; });
  const spawnErr = new Promise((_, reject) => proc.once('error', reject));
  const exited = exitPromise(proc);
  let timedOut = false;
  const r = await orAfter(Promise.race([exited, spawnErr]), timeoutMs, null);
  let result = r;
  if (!r) {
    timedOut = true;
    try { proc.kill('SIGKILL'); } catch { /* ignore */ }
    result = await exited;
  }
  // let the pipes drain
  await Promise.all([
    new Promise((res) => (proc.stdout.readableEnded ? res() : proc.stdout.once('end', res))),
    new Promise((res) => (proc.stderr.readableEnded ? res() : proc.stderr.once('end', res))),
  ]);
  liveProcs.delete(proc);
  return { code: result.code, signal: result.signal, stdout, stderr, timedOut, argv };
}

export function rssKiB(pid) {
  const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(text);
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]);
}

// ---------------------------------------------------------------------------------------------------------
function hostPort(target, opts = {}) {
  if (typeof target === 'object' && target !== null) {
    return { host: opts.host ?? target.host ?? '127.0.0.1', port: target.port };
  }
  return { host: opts.host ?? '127.0.0.1', port: Number(target) };
}

function bracket(host) { return host.includes(':') ? `[${host}]` : host; }

/** Extract the update objects of a snapshot/update frame ([] for anything else). */
export function updatesOf(msg) {
  if (msg && (msg.op === 'snapshot' || msg.op === 'update') && Array.isArray(msg.updates)) return msg.updates;
  return [];
}

/** true if `msg` is a snapshot/update frame containing `symbol`. */
export function hasSymbol(msg, symbol) {
  return updatesOf(msg).some((u) => u.symbol === symbol);
}

let autoId = 1000;

/**
 * WebSocket client wrapper with a message queue.
 *
 * Stream semantics: next(pred) consumes queued messages in arrival order, discarding those that do not match,
 * and returns the first that does; messages after it stay queued. Listeners registered with onMessage() see
 * every message, whether or not somebody is waiting for it.
 */
export class Client {
  constructor(ws) {
    this.ws = ws;
    this.queue = [];
    this.waiters = [];
    this.listeners = new Set();
    this.framesIn = 0;
    this.bytesIn = 0;
    this.textFrames = 0;
    this.binaryFrames = 0;
    this.parseErrors = [];
    this.recent = []; // last few messages, for error reports
    this.closeInfo = null;
    this.maxQueue = 200000;
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString(), at: Date.now() };
        resolve(this.closeInfo);
        for (const w of this.waiters.splice(0)) {
          clearTimeout(w.timer);
          w.reject(new Error(`connection closed (code ${code}, reason "${reason}") while waiting for ${w.desc}; ` +
            `recent: ${this.recentText()}`));
        }
      });
    });
    this.errors = [];
    ws.on('error', (err) => { this.errors.push(err); });
    ws.on('message', (data, isBinary) => this.#onMessage(data, isBinary));
  }

  #onMessage(data, isBinary) {
    this.framesIn++;
    this.bytesIn += data.length;
    const at = Date.now();
    if (isBinary) this.binaryFrames++; else this.textFrames++;
    let msg;
    try {
      msg = JSON.parse(data.toString('utf8'));
    } catch (err) {
      this.parseErrors.push({ raw: data.toString('utf8').slice(0, 200), err: err.message });
      msg = { op: '__unparseable__', raw: data.toString('utf8') };
    }
    this.recent.push(msg);
    if (this.recent.length > 5) this.recent.shift();
    for (const fn of this.listeners) fn(msg, at, isBinary, data.length);
    this.queue.push(msg);
    if (this.queue.length > this.maxQueue) this.queue.shift();
    this.#pump();
  }

  #pump() {
    while (this.waiters.length && this.queue.length) {
      const w = this.waiters[0];
      const msg = this.queue.shift();
      let ok = false;
      try { ok = w.pred(msg); } catch (err) { ok = false; }
      if (ok) {
        this.waiters.shift();
        clearTimeout(w.timer);
        w.resolve(msg);
      }
    }
  }

  recentText() {
    return this.recent.map((m) => {
      const s = JSON.stringify(m);
      return s.length > 300 ? `${s.slice(0, 300)}...` : s;
    }).join(' | ');
  }

  get isOpen() { return this.ws.readyState === WebSocket.OPEN; }
  get protocol() { return this.ws.protocol; }

  /** Register fn(msg, atMs, isBinary, bytes) for every incoming message; returns an unsubscribe function. */
  onMessage(fn) { this.listeners.add(fn); return () => this.listeners.delete(fn); }

  /** Wait for (and consume up to) the next message matching pred. */
  next(pred = () => true, timeoutMs = 3000, desc = undefined) {
    const description = desc ?? pred.toString().slice(0, 200);
    return new Promise((resolve, reject) => {
      if (this.closeInfo && this.queue.length === 0) {
        reject(new Error(`connection already closed (code ${this.closeInfo.code}) while waiting for ${description}`));
        return;
      }
      const w = { pred, resolve, reject, desc: description };
      w.timer = setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error(`timeout after ${timeoutMs} ms waiting for ${description}; recent: ${this.recentText()}`));
      }, timeoutMs);
      this.waiters.push(w);
      this.#pump();
      if (this.closeInfo && this.waiters.includes(w)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        reject(new Error(`connection closed (code ${this.closeInfo.code}) while waiting for ${description}; ` +
          `recent: ${this.recentText()}`));
      }
    });
  }

  /** Wait for the next message with op === `op` (and optional extra predicate). */
  nextOp(op, timeoutMs = 3000, pred = () => true) {
    return this.next((m) => m.op === op && pred(m), timeoutMs, `op "${op}"`);
  }

  /** Send an object (JSON-encoded), a string (text frame) or a Buffer (binary frame). */
  send(obj) {
    if (Buffer.isBuffer(obj)) this.ws.send(obj, { binary: true });
    else if (typeof obj === 'string') this.ws.send(obj, { binary: false });
    else this.ws.send(JSON.stringify(obj), { binary: false });
  }

  /** Send a request and wait for its ack/error (matched by id; an id is assigned if missing). */
  async request(obj, timeoutMs = 3000) {
    const req = { ...obj };
    if (req.id === undefined) req.id = autoId++;
    const id = req.id;
    const p = this.next((m) => (m.op === 'ack' || m.op === 'error') && m.id === id, timeoutMs,
      `ack/error for id ${JSON.stringify(id)}`);
    this.send(req);
    return p;
  }

  /** Like request() but throws unless the reply is an ack. */
  async ok(obj, timeoutMs = 3000) {
    const r = await this.request(obj, timeoutMs);
    if (r.op !== 'ack') throw new Error(`expected ack for ${JSON.stringify(obj)}, got ${JSON.stringify(r)}`);
    return r;
  }

  subscribe(symbols, id) { return this.ok({ op: 'subscribe', symbols, ...(id === undefined ? {} : { id }) }); }
  unsubscribe(symbols, id) { return this.ok({ op: 'unsubscribe', symbols, ...(id === undefined ? {} : { id }) }); }

  /** Remove and return everything currently queued. */
  drain() { const q = this.queue; this.queue = []; return q; }

  /** Wait ms, then return (and remove) everything queued meanwhile, including what was queued before. */
  async collect(ms) { await delay(ms); return this.drain(); }

  /** Stop reading from the socket (the kernel buffers fill, then the server sees backpressure). */
  pause() { this.ws._socket.pause(); }
  resume() { this.ws._socket.resume(); }

  close(code = 1000, reason = '') {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) {
      try { this.ws.close(code, reason); } catch { /* ignore */ }
    }
  }
  terminate() { try { this.ws.terminate(); } catch { /* ignore */ } }

  /** Resolve with the close info, or reject after timeoutMs. */
  waitClose(timeoutMs = 3000) {
    return withTimeout(this.closed, timeoutMs, () => `connection not closed within ${timeoutMs} ms; recent: ${this.recentText()}`);
  }
}

const openClients = new Set();

/**
 * Open a WebSocket to ws://host:port/ws. Resolves when open (default) — rejects if the connection fails or
 * closes before opening. With {waitOpen:false} resolves immediately with the Client (use client.opened).
 */
export async function connect(target, opts = {}) {
  const { host, port } = hostPort(target, opts);
  const { path: p = '/ws', protocols, waitOpen = true, timeoutMs = 5000, wsOptions = {} } = opts;
  const url = `ws://${bracket(host)}:${port}${p}`;
  const ws = new WebSocket(url, protocols, { perMessageDeflate: false, handshakeTimeout: timeoutMs, ...wsOptions });
  const client = new Client(ws);
  openClients.add(client);
  client.closed.then(() => openClients.delete(client));
  client.opened = new Promise((resolve, reject) => {
    ws.once('open', () => resolve(client));
    ws.once('error', (err) => reject(err));
    ws.once('close', (code) => reject(new Error(`closed with ${code} before open`)));
  });
  // A server that refuses the upgrade with a plain HTTP response: remember the status, then abort (the client
  // then closes with 1006, and tests asserting a close code show what happened via client.unexpectedStatus).
  ws.on('unexpected-response', (req, res) => {
    client.unexpectedStatus = res.statusCode;
    res.resume();
    ws.terminate();
  });
  client.opened.catch(() => {});
  if (!waitOpen) return client;
  await client.opened;
  return client;
}

/** Terminate every client that is still open (use in `after` hooks). */
export function closeAllClients() {
  for (const c of openClients) c.terminate();
  openClients.clear();
}

// ---------------------------------------------------------------------------------------------------------
/** GET http://host:port/path. Resolves {status, headers, body, json()}. */
export function httpGet(target, urlPath = '/', opts = {}) {
  const { host, port } = hostPort(target, opts);
  const timeoutMs = opts.timeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path: urlPath, agent: false, localAddress: opts.localAddress, headers: { Connection: 'close', ...(opts.headers || {}) } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        resolve({
          status: res.statusCode,
          headers: res.headers,
          body,
          json() {
            try { return JSON.parse(body); } catch (err) {
              throw new Error(`GET ${urlPath}: body is not JSON (${err.message}): ${body.slice(0, 300)}`);
            }
          },
        });
      });
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${urlPath} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/** Map of "name{labels}" (labels exactly as written) -> value, with helpers. */
export class MetricsMap extends Map {
  constructor(text) {
    super();
    this.text = text;
    this.types = new Map(); // name -> type from "# TYPE"
    this.series = [];       // {name, labels: {k: v}, value}
    for (const line of text.split('\n')) {
      const t = line.trim();
      if (!t) continue;
      if (t.startsWith('#')) {
        const m = /^#\s*TYPE\s+(\S+)\s+(\S+)/.exec(t);
        if (m) this.types.set(m[1], m[2]);
        continue;
      }
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(\s+\S+)?$/.exec(t);
      if (!m) throw new Error(`unparseable metrics line: ${JSON.stringify(line)}`);
      const labels = {};
      if (m[2]) {
        const re = /([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"/g;
        let lm;
        while ((lm = re.exec(m[2]))) labels[lm[1]] = lm[2];
      }
      const value = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
      const key = m[1] + (m[2] && m[2] !== '{}' ? m[2] : '');
      this.set(key, value);
      this.series.push({ name: m[1], labels, value });
    }
  }

  /** Value of the series `name` with exactly these labels (undefined if absent). */
  value(name, labels = {}) {
    const want = Object.entries(labels);
    const s = this.series.find((x) => x.name === name
      && Object.keys(x.labels).length === want.length
      && want.every(([k, v]) => x.labels[k] === String(v)));
    return s?.value;
  }

  /** Sum of all series named `name` whose labels include `labels` (0 if none). */
  sum(name, labels = {}) {
    return this.series
      .filter((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === String(v)))
      .reduce((a, x) => a + x.value, 0);
  }

  /** true if a sample or a # TYPE/# HELP line names the metric. */
  has(name) {
    return this.series.some((x) => x.name === name) || this.types.has(name)
      || new RegExp(`^#\\s*HELP\\s+${name}\\s`, 'm').test(this.text);
  }
}

export async function metrics(target, opts = {}) {
  const r = await httpGet(target, '/metrics', opts);
  if (r.status !== 200) throw new Error(`GET /metrics -> ${r.status}: ${r.body.slice(0, 200)}`);
  const m = new MetricsMap(r.body);
  m.headers = r.headers;
  return m;
}

/** Poll fn() until it returns a truthy value; returns that value. */
export async function waitFor(fn, { timeoutMs = 5000, intervalMs = 50, message = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastErr;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) { lastErr = err; }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${message}${lastErr ? `: ${lastErr.message}` : ''}`);
    }
    await delay(intervalMs);
  }
}

/** Wait until /api/symbols lists every symbol in `names` with a value. Returns the symbols array. */
export async function waitForSymbols(target, names, timeoutMs = 5000) {
  return waitFor(async () => {
    const r = await httpGet(target, '/api/symbols');
    if (r.status !== 200) return false;
    const list = r.json().symbols;
    if (!Array.isArray(list)) return false;
    const have = new Map(list.map((s) => [s.symbol, s]));
    return names.every((n) => have.has(n) && typeof have.get(n).last === 'number') ? list : false;
  }, { timeoutMs, message: `symbols ${names.join(',')} in /api/symbols` });
}

/** Wait until /api/symbols lists exactly `n` symbols, all with a value. Returns the symbols array. */
export async function waitForSymbolCount(target, n, timeoutMs = 5000) {
  return waitFor(async () => {
    const r = await httpGet(target, '/api/symbols');
    if (r.status !== 200) return false;
    const list = r.json().symbols;
    return Array.isArray(list) && list.length === n && list.every((s) => typeof s.last === 'number') ? list : false;
  }, { timeoutMs, message: `${n} symbols with values in /api/symbols` });
}

// ---------------------------------------------------------------------------------------------------------
/**
 * Follows every snapshot/update a client receives and checks the per-symbol ordering rules of the protocol:
 *  - an update's seq is greater than any seq seen before for that symbol on this connection,
 *  - a snapshot's seq is not lower than what was seen before,
 *  - a symbol appears once per frame, except as a run of consecutive seqs in an update frame (a backlog).
 * Violations are collected in `violations` (tests assert it is empty).
 */
export class UpdateTracker {
  constructor(client) {
    this.latest = new Map();     // symbol -> last update object seen
    this.counts = new Map();     // symbol -> number of values seen
    this.total = 0;
    this.frames = 0;
    this.updateFrames = 0;
    this.snapshotFrames = 0;
    this.arrivals = [];          // ms timestamps of every update/snapshot frame
    this.violations = [];
    this.gaps = 0;               // number of seq jumps > 1 observed
    this.stop = client.onMessage((m, at) => this.#on(m, at));
  }

  #on(m, at) {
    if (m.op !== 'update' && m.op !== 'snapshot') return;
    this.frames++;
    if (m.op === 'update') this.updateFrames++; else this.snapshotFrames++;
    this.arrivals.push(at);
    // A symbol appears once per frame, except in an update frame carrying a client's small backlog
    // (broadcast.max_backlog): then as a run of consecutive seqs.
    const inFrame = new Map(); // symbol -> last seq seen in this frame
    for (const u of updatesOf(m)) {
      if (inFrame.has(u.symbol) && (m.op !== 'update' || u.seq !== inFrame.get(u.symbol) + 1)) {
        this.violations.push(`${u.symbol} appears twice in one ${m.op} frame (seq ${inFrame.get(u.symbol)} then ${u.seq})`);
      }
      inFrame.set(u.symbol, u.seq);
      const prev = this.latest.get(u.symbol);
      if (prev) {
        if (m.op === 'update' && !(u.seq > prev.seq)) {
          this.violations.push(`${u.symbol}: update seq ${u.seq} after seq ${prev.seq}`);
        } else if (m.op === 'snapshot' && u.seq < prev.seq) {
          this.violations.push(`${u.symbol}: snapshot seq ${u.seq} after seq ${prev.seq}`);
        }
        if (u.seq > prev.seq + 1) this.gaps++;
      }
      this.latest.set(u.symbol, u);
      this.counts.set(u.symbol, (this.counts.get(u.symbol) ?? 0) + 1);
      this.total++;
    }
  }

  /** Number of frames that arrived in [from, to). */
  framesBetween(from, to) { return this.arrivals.filter((t) => t >= from && t < to).length; }
}

// ---------------------------------------------------------------------------------------------------------
/** Some of the 20 built-in sim symbols (docs/config.md). */
export const DEFAULT_SYMBOLS = ['BTC-USD', 'ETH-USD', 'SOL-USD', 'AAPL-USD', 'MSFT-USD', 'EUR-USD', 'GBP-USD', 'USD-JPY'];
export const BUILTIN_SYMBOL_COUNT = 20;

/** A config with one sim feed named "sim"; `feed` adds sim keys, everything else is top-level config. */
export function simConfig({ rate = 2000, seed = 12345, feed = {}, ...rest } = {}) {
  return { ...rest, feeds: [{ type: 'sim', name: 'sim', rate, seed, ...feed }] };
}

/**
 * Assert the shape the protocol guarantees for one update/snapshot entry; `nowMs` bounds ts.
 * Throws AssertionError-like Errors with the offending object.
 */
export function checkUpdateShape(u, { maxAgeMs = 10000 } = {}) {
  const where = JSON.stringify(u);
  const fail = (what) => { throw new Error(`${what}: ${where}`); };
  if (typeof u !== 'object' || u === null) fail('update is not an object');
  if (typeof u.symbol !== 'string' || !/^[A-Z0-9]+-[A-Z0-9]+$/.test(u.symbol)) fail('symbol is not canonical BASE-QUOTE');
  for (const k of ['last', 'bid', 'ask']) {
    if (typeof u[k] !== 'number' || !Number.isFinite(u[k]) || !(u[k] > 0)) fail(`${k} is not a positive number`);
  }
  if (!(u.bid <= u.ask)) fail('bid > ask');
  if (!Number.isInteger(u.seq) || u.seq < 0) fail('seq is not a non-negative integer');
  if (!Number.isInteger(u.ts)) fail('ts is not an integer');
  const ageMs = Date.now() - u.ts / 1000;
  if (Math.abs(ageMs) > maxAgeMs) fail(`ts is ${Math.round(ageMs)} ms away from now (not integer µs since epoch?)`);
}

/**
 * Subscribe a fresh client to `symbols` and collect update objects until each symbol has `n` (snapshots
 * count); returns Map symbol -> [updates]. Waits for the symbols to be known first (feeds may declare them
 * only with their first value). Fails on anything but an ack.
 */
export async function collectPrices(target, symbols, n = 1, timeoutMs = 8000) {
  await waitForSymbols(target, symbols, timeoutMs);
  const c = await connect(target);
  const ack = await c.request({ op: 'subscribe', symbols, id: 1 });
  if (ack.op !== 'ack') throw new Error(`subscribe failed: ${JSON.stringify(ack)}`);
  const seen = new Map(symbols.map((s) => [s, []]));
  const deadline = Date.now() + timeoutMs;
  while ([...seen.values()].some((v) => v.length < n)) {
    const m = await c.next((x) => x.op === 'snapshot' || x.op === 'update', deadline - Date.now(), 'prices');
    for (const u of updatesOf(m)) if (seen.has(u.symbol)) seen.get(u.symbol).push(u);
  }
  c.close();
  return seen;
}

/** The /healthz entry of the feed called `name`. */
export async function feedHealth(target, name) {
  return (await httpGet(target, '/healthz')).json().feeds.find((f) => f.name === name);
}

// ---- Chromium (the page tests) ----
/** Debian's chromium, or $CHROMIUM. */
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// Flags from the machine doc: no sandbox as root, and no background traffic to a closed network.
// The last three keep a page's timers and animation frames running when Chromium considers its window
// hidden or occluded (headless windows can be): the page's reconnect/retry timers and its render loop are
// what these tests watch.
export const CHROMIUM_FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-background-timer-throttling', '--disable-backgrounding-occluded-windows',
  '--disable-renderer-backgrounding'];

/** Headless Chromium through playwright-core (imported here only when a test asks for a browser). */
export async function launchChromium(extraArgs = []) {
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_FLAGS, ...extraArgs] });
}
