// tickerd-client.js — client SDK for the tickerd v1 JSON WebSocket protocol (docs/protocol.md).
// One ES module, no dependencies. Runs in browsers and in Node >= 20 (pass the `ws` package's WebSocket
// class as options.WebSocket where there is no global one). Documented in docs/client.md.
//
//   import { connect } from './tickerd-client.js';
//   const c = connect('ws://127.0.0.1:8080/ws');            // Node 20: connect(url, { WebSocket })
//   c.on('update', (u) => console.log(u.symbol, u.last, u.seq));
//   c.on('status', ({ status }) => console.log(status));     // connecting | live | reconnecting | closed
//   await c.ready();                                        // live (before that, subscribe only remembers)
//   await c.subscribe(['BTC-USD', 'ETH-USD']);              // resolves on the ack, rejects on error/timeout
//
// Events (EventTarget + CustomEvent, payload in event.detail; c.on(type, fn) calls fn(detail, event)):
//   status   {status, state, attempt, delay}  status: connecting | live | reconnecting | closed
//   snapshot one update object of a snapshot frame (the symbol's current value after a subscribe)
//   update   one update object of an update frame (or of a replay frame, with options.resume)
//   data     {kind: 'snapshot'|'update'|'replay', updates, reset?}   the whole frame (replay: resume or
//            history; reset: resume)
//   history  {symbol, interval, columns, rows, seq, error?}  the stored past of a symbol, after a subscribe
//            that asked for it (options.history or subscribe(..., {history})); replay frames then carry
//            the values after `seq` (as 'update' events), so history + replay + updates are continuous
//   error    {source: 'server'|'transport', code, message, id?, req?, symbols?}
//            every server error reply (req names the request's op when it answers one of ours) and
//            transport trouble (connect failure, connect/ping timeout)
//   open / close {code, reason}
//   latency  {rtt, clockOffset}       rtt in ms; clockOffset = server clock - local clock, ms
//   rejected {symbols, code, waiting} unknown symbols: dropped by a partial subscribe (waiting false), or
//                                     kept and retried after a re-subscribe (waiting true; see `waiting`)
//   state    {state, attempt, delay}  the finer-grained state: idle | connecting | open | reconnecting |
//                                     offline | closed (kept for existing callers; prefer `status`)
//   transport {transport, previous}   the way in changed: 'ws' | 'sse' | 'poll' (see options.fallback)
//
// Fallback (options.fallback, on by default in browsers): when the WebSocket upgrade fails before it opens
// (a proxy that strips Upgrade, a blocked port), the client goes on over Server-Sent Events, and if those
// fail too over HTTP long-polling (tickerd-http.js), with the same events and subscriptions; `transport`
// says which is in use. While on a fallback it tries WebSocket again every options.upgradeInterval ms and
// moves back as soon as one opens.
//
// `subscriptions` is the set of symbols the caller wants; it survives disconnects and is re-subscribed
// after every reconnect. Reconnects use exponential backoff with full jitter:
// delay = random(0, min(maxDelay, baseDelay * 2^(attempt-1))).

import { httpBaseOf, openHttpSocket } from './tickerd-http.js';

export class TickerdError extends Error {
  constructor(code, message, extra) {
    super(message || code);
    this.name = 'TickerdError';
    this.code = code;
    this.symbols = [];
    Object.assign(this, extra);
  }
}

// A subscribe with history refused as `busy` (the server reads only so many histories at a time, for all
// its clients) is retried after about 0.1, 0.2, 0.4 … 2 s, 2 s: 10 tries over some 10 s, with jitter.
const HISTORY_BUSY_RETRIES = 10;

const STATUS_OF = {
  idle: 'closed', closed: 'closed', open: 'live', reconnecting: 'reconnecting', offline: 'reconnecting',
};

export class TickerdClient extends EventTarget {
  constructor(url, options = {}) {
    super();
    this.url = url;
    this.opts = {
      baseDelay: 500,        // ms, first reconnect delay bound
      maxDelay: 30000,       // ms, cap of the reconnect delay bound
      timeout: 5000,         // ms to wait for an ack/error
      connectTimeout: 10000, // ms for the WebSocket handshake; then the attempt counts as failed
      pingInterval: 5000,    // ms between latency pings while open; 0 = off. A ping without reply closes.
      stableAfter: 5000,     // ms a connection must stay up before the backoff resets
      maxRequestBytes: 4000, // larger subscribes are split (server default limits.max_message_bytes: 4096)
      protocols: undefined,  // WebSocket subprotocol(s), e.g. 'tickerd.json'
      retryUnknown: 5000,    // ms between re-tries of symbols a re-subscribe could not confirm; 0 = drop unknown
      resume: false,         // re-subscribes name the last seq per symbol: the server replays what was missed
      history: null,         // {interval, limit}: ask for each symbol's history with every subscribe
      maxHistoryRows: 10000, // limit x symbols per subscribe with history (the server's cap); larger ones are split
      WebSocket: globalThis.WebSocket,
      fallback: typeof window !== 'undefined' && typeof fetch === 'function', // WS -> SSE -> long-polling
      upgradeInterval: 30000, // ms between tries to get back to WebSocket while on a fallback
      ...options,
    };
    if (typeof this.opts.WebSocket !== 'function') {
      throw new TypeError('tickerd-client: no WebSocket implementation; pass one as options.WebSocket ' +
        "(on Node < 22: import WebSocket from 'ws')");
    }
    this.state = 'idle';
    this.transport = 'ws';    // ws | sse | poll: the way in of the current (or next) connection
    this._httpPosition = null; // where the last SSE/poll connection ended: the next one resumes there
    this._upgradeTimer = 0;
    this.attempt = 0;         // reconnect attempts since the last stable connection
    this.rtt = null;
    this.clockOffset = 0;
    this.subscriptions = new Set();
    this.waiting = new Set(); // wanted, but the last re-subscribe got unknown_symbol or no reply (retried)
    this.latest = new Map();  // symbol -> last update object received (snapshot or update)
    this.skipped = 0;         // values skipped by server-side conflation, seen as seq gaps, since creation
    this.counts = {
      snapshots: 0, updates: 0, replayed: 0, resets: 0, histories: 0, frames: 0, connects: 0, reconnects: 0,
    };
    this.epoch = null;        // the server instance of the last subscribe ack (for resume)
    this._seq = new Map();    // symbol -> {seq, conn, skipped}
    this._conn = 0;           // connection number; seq gaps are only counted within one connection
    this._ws = null;
    this._nextId = 1;
    this._pending = new Map(); // id -> {resolve, reject, timer, op}
    this._perValue = { update: new Set(), snapshot: new Set() };
    this._readyWaiters = [];
    this._waitTimer = 0;
    this._starting = null;
    this._retryTimer = 0;
    this._connectTimer = 0;
    this._historyTurn = Promise.resolve(); // settles when the subscribe with history before is through
    this._historyDue = null;  // {due: symbols whose history frame is still to come, release} of that one
    this._pingTimer = 0;
    this._openedAt = 0;
    this._onOnline = () => { if (this.state === 'offline') this._connect(); };
    this._onOffline = () => {
      if (this.state === 'reconnecting') { clearTimeout(this._retryTimer); this._setState('offline'); }
    };
  }

  /** connecting | live | reconnecting | closed */
  get status() {
    if (this.state === 'connecting') return this.attempt ? 'reconnecting' : 'connecting';
    return STATUS_OF[this.state];
  }

  // Starts connecting in a microtask, so listeners added right after connect() see the first 'status'.
  connect() {
    if ((this.state === 'idle' || this.state === 'closed') && !this._starting) {
      globalThis.addEventListener?.('online', this._onOnline);
      globalThis.addEventListener?.('offline', this._onOffline);
      this.attempt = 0;
      const token = (this._starting = {});
      queueMicrotask(() => {
        if (this._starting !== token) return; // close() came first
        this._starting = null;
        this._connect();
      });
    }
    return this;
  }

  close() {
    this._starting = null;
    globalThis.removeEventListener?.('online', this._onOnline);
    globalThis.removeEventListener?.('offline', this._onOffline);
    clearTimeout(this._retryTimer);
    clearTimeout(this._upgradeTimer);
    for (const w of this._readyWaiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new TickerdError('closed', 'client closed'));
    }
    this._setState('closed');
    this._drop(1000, 'client closed');
  }

  /**
   * Resolves once the connection is live (at once if it is); rejects with a TickerdError 'timeout' after
   * `timeout` ms (default: none) or 'closed' if close() is called first. Handy before a first subscribe
   * whose result matters: while not live, subscribe() only remembers the symbols.
   */
  ready({ timeout = 0 } = {}) {
    if (this.state === 'open') return Promise.resolve(this);
    if (this.state === 'closed' || (this.state === 'idle' && !this._starting)) {
      return Promise.reject(new TickerdError('closed', 'not connecting: call connect() first'));
    }
    return new Promise((resolve, reject) => {
      const w = { resolve, reject, timer: 0 };
      if (timeout > 0) {
        w.timer = setTimeout(() => {
          this._readyWaiters.splice(this._readyWaiters.indexOf(w), 1);
          reject(new TickerdError('timeout', `not live within ${timeout} ms (${this.status})`));
        }, timeout);
      }
      this._readyWaiters.push(w);
    });
  }

  // Per-value events are only built when somebody listens (a busy page gets thousands per second).
  addEventListener(type, fn, opts) {
    if (fn && (type === 'update' || type === 'snapshot')) this._perValue[type].add(fn);
    super.addEventListener(type, fn, opts);
  }

  removeEventListener(type, fn, opts) {
    if (type === 'update' || type === 'snapshot') this._perValue[type].delete(fn);
    super.removeEventListener(type, fn, opts);
  }

  /** fn(detail, event) for every event of `type`; returns a function that removes the listener. */
  on(type, fn) {
    const h = (e) => fn(e.detail, e);
    this.addEventListener(type, h);
    return () => this.removeEventListener(type, h);
  }

  /**
   * Subscribe to `symbols` (canonical symbols, or ['*']); they are remembered and re-subscribed after every
   * reconnect. Resolves {symbols, rejected} once the server acknowledged.
   * Default (atomic, like the server): any error reply rejects with a TickerdError carrying the server's
   * `code` (and `symbols` for unknown_symbol); the new symbols are then forgotten.
   * {partial: true}: unknown symbols are dropped (listed in `rejected`, and a `rejected` event) and the
   * rest subscribed. {timeout}: ms to wait for the reply (default options.timeout).
   * When not connected the symbols are only remembered: resolves {symbols: [], rejected: [], queued: true}.
   * A request longer than options.maxRequestBytes is sent as several subscribes, each atomic on its own.
   * {history: {interval, limit}} (default options.history; null: none): each symbol's stored past arrives
   * as a 'history' event after its snapshot, then replayed values join it to the live updates. Not with
   * "*" (the server refuses it there, so it is left out). Requests are split to keep limit x symbols
   * within options.maxHistoryRows.
   */
  subscribe(symbols, { partial = false, timeout = this.opts.timeout, history = this.opts.history } = {}) {
    symbols = [...new Set(symbols)];
    const added = symbols.filter((s) => !this.subscriptions.has(s));
    for (const s of symbols) this.subscriptions.add(s);
    if (this.state !== 'open' || !symbols.length) return Promise.resolve({ symbols: [], rejected: [], queued: true });
    return this._subscribe(symbols, { mode: partial ? 'partial' : 'atomic', timeout, added: new Set(added), history });
  }

  /** Resolves with the ack (null when not connected: the server forgets everything on disconnect anyway). */
  unsubscribe(symbols, { timeout = this.opts.timeout } = {}) {
    symbols = [...new Set(symbols)];
    if (symbols.includes('*')) {
      this.subscriptions.clear(); this.waiting.clear(); this._seq.clear(); this.latest.clear();
    }
    for (const s of symbols) {
      this.subscriptions.delete(s); this.waiting.delete(s); this._seq.delete(s); this.latest.delete(s);
    }
    if (this.state !== 'open' || !symbols.length) return Promise.resolve(null);
    return Promise.all(this._chunks(symbols).map((chunk) => this.request('unsubscribe', { symbols: chunk }, timeout)))
      .then((acks) => acks[acks.length - 1]);
  }

  /**
   * Round trip of the ping op, in ms. The ack's server time also gives the clock offset (assuming a
   * symmetric path), which lets callers compute the age of upstream timestamps.
   */
  async ping({ timeout = this.opts.timeout } = {}) {
    const sent = Date.now();
    const t0 = performance.now();
    const ack = await this.request('ping', {}, timeout);
    const rtt = performance.now() - t0;
    if (Number.isFinite(ack.time)) this.clockOffset = ack.time / 1000 - (sent + rtt / 2);
    this.rtt = rtt;
    this._emit('latency', { rtt, clockOffset: this.clockOffset });
    return rtt;
  }

  /**
   * Send one request; resolves with its ack, rejects with a TickerdError: the server's error code, or
   * 'timeout' (no reply within `timeout` ms), 'not_connected', 'disconnected' (connection lost first).
   * quiet: true, or one error code: such an error reply rejects without an 'error' event.
   */
  request(op, fields = {}, timeout = this.opts.timeout, { quiet = false } = {}) {
    const ws = this._ws;
    if (!ws || this.state !== 'open') {
      return Promise.reject(new TickerdError('not_connected', `${op}: not connected (${this.status})`));
    }
    const id = this._nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new TickerdError('timeout', `${op}: no reply from the server within ${timeout} ms`, { op }));
      }, timeout);
      this._pending.set(id, { resolve, reject, timer, op, quiet });
      ws.send(JSON.stringify({ op, ...fields, id }));
    });
  }

  /** seq of the last value received for `symbol` (undefined if none). */
  lastSeq(symbol) { return this._seq.get(symbol)?.seq; }

  /** Values of `symbol` skipped by conflation (seq gaps between consecutive values on one connection). */
  skippedFor(symbol) { return this._seq.get(symbol)?.skipped ?? 0; }

  /** Counters: snapshots/updates (objects), frames, connects, reconnects, skipped. */
  stats() { return { ...this.counts, skipped: this.skipped, symbols: this._seq.size }; }

  // Split a symbol list into pieces whose request JSON stays within maxRequestBytes (extra(s): bytes a
  // symbol adds besides its place in "symbols", e.g. its resume entry), of at most maxCount symbols.
  _chunks(symbols, extra = null, maxCount = Infinity) {
    const limit = this.opts.maxRequestBytes;
    const base = '{"op":"unsubscribe","symbols":[],"id":,"resume":{},"epoch":"","history":{"interval":"","limit":}}'
      .length + 16 + 64 + 24;
    const out = [];
    let cur = [];
    let len = base;
    for (const s of symbols) {
      const n = JSON.stringify(s).length + 1 + (extra ? extra(s) : 0);
      if (cur.length && (len + n > limit || cur.length >= maxCount)) { out.push(cur); cur = []; len = base; }
      cur.push(s);
      len += n;
    }
    if (cur.length) out.push(cur);
    return out;
  }

  // mode: 'atomic' (any error rejects), 'partial' (unknown symbols are dropped, the rest subscribed), or
  // 'keep' (re-subscribes: like partial, but unknown symbols stay wanted, in `waiting`, and are retried
  // while live: right after tickerd restarts, a symbol of a feed that has not quoted yet is unknown *yet*).
  // In keep mode a chunk that gets no reply in time also goes to `waiting` (sending a subscribe again is
  // harmless: the server answers with a fresh snapshot), so a slow moment cannot leave the server without
  // a subscription the client believes it has.
  async _subscribe(symbols, { mode, timeout, added = new Set(), quiet = false, resume = false, history = null }) {
    const done = { symbols: [], rejected: [] };
    let late = null;
    const extra = resume ? (s) => (this._seq.has(s) ? JSON.stringify(s).length + 18 : 0) : null;
    const perChunk = history ? Math.max(1, Math.floor(this.opts.maxHistoryRows / (history.limit || 1))) : Infinity;
    for (const chunk of this._chunks(symbols, extra, perChunk)) {
      let r;
      try {
        r = await this._subscribeChunk(chunk, { mode, timeout, added, quiet, resume, history });
      } catch (e) {
        if (mode !== 'keep' || e.code !== 'timeout') throw e;
        for (const s of chunk) this.waiting.add(s);
        late ??= e;
        continue;
      }
      done.symbols.push(...r.symbols);
      done.rejected.push(...r.rejected);
    }
    if (late) throw late;
    return done;
  }

  // A subscribe is atomic on the server: one unknown symbol fails them all. Partial/keep modes take the
  // ones it names out and retry with the rest.
  async _subscribeChunk(symbols, { mode, timeout, added, quiet, resume, history }) {
    const rejected = [];
    let busy = 0;
    for (;;) {
      if (!symbols.length) return { symbols, rejected };
      const fields = { symbols };
      const resumed = resume ? this._resumeFields(symbols, fields) : [];
      // The server refuses history with "*" and with resume (a resumed symbol continues from its seq).
      // SSE and long-polling carry no history (tickerd-http.js): GET /api/history serves it there.
      const withHistory = history && !resumed.length && !symbols.includes('*') && this.transport === 'ws';
      if (withHistory) fields.history = { interval: history.interval, limit: history.limit };
      try {
        // a `busy` that will be retried is no news for 'error' listeners
        const hush = quiet || (withHistory && busy < HISTORY_BUSY_RETRIES ? 'busy' : false);
        const ack = withHistory ? await this._historyRequest(fields, timeout, hush)
          : await this.request('subscribe', fields, timeout, { quiet: hush });
        if (typeof ack.epoch === 'string') this.epoch = ack.epoch;
        // seqs of resumed symbols continue on this connection: gaps from here on are conflation
        for (const s of resumed) { const st = this._seq.get(s); if (st) st.conn = this._conn; }
        for (const s of symbols) this.waiting.delete(s);
        return { symbols, rejected };
      } catch (e) {
        if (resumed.length && e.code === 'bad_request') { resume = false; continue; } // a server without resume
        // The server reads a few histories per connection at once; the refused subscribe changed nothing.
        if (withHistory && e.code === 'busy' && busy < HISTORY_BUSY_RETRIES) {
          const bound = Math.min(2000, 100 * 2 ** busy++);
          await new Promise((r) => setTimeout(r, bound * (0.5 + Math.random() / 2)));
          if (this.state !== 'open') throw e;
          continue;
        }
        // A server without history, or a limit above its max_rows: subscribe without (the error event
        // already said why).
        if (withHistory && e.code === 'bad_request') { history = null; continue; }
        const forget = (list) => { for (const s of list) if (added.has(s)) this.subscriptions.delete(s); };
        if (e.code === 'too_many_subscriptions') forget(symbols);
        if (e.code !== 'unknown_symbol') throw e;
        const bad = new Set(e.symbols);
        const unknown = symbols.filter((s) => bad.has(s));
        if (mode === 'atomic') {
          forget(symbols);
          for (const s of unknown) this.subscriptions.delete(s); // re-sending them cannot work
          throw e;
        }
        if (!unknown.length) throw e; // names nothing we sent: do not loop
        rejected.push(...unknown);
        if (mode === 'keep') {
          const fresh = unknown.filter((s) => !this.waiting.has(s));
          for (const s of unknown) this.waiting.add(s);
          if (fresh.length) this._emit('rejected', { symbols: fresh, code: e.code, waiting: true });
        } else {
          for (const s of unknown) this.subscriptions.delete(s);
          this._emit('rejected', { symbols: unknown, code: e.code, waiting: false });
        }
        symbols = symbols.filter((s) => !bad.has(s));
      }
    }
  }

  // Subscribes with history go one at a time, each from its send to its last history frame (one per
  // symbol, after the ack): the server reads at most two per connection at once and refuses more as
  // `busy`, and the frames of one request come in one burst anyway. The wait for the frames is bounded by
  // `timeout`; a lost connection ends it (_drop).
  async _historyRequest(fields, timeout, quiet) {
    const before = this._historyTurn;
    let done;
    this._historyTurn = new Promise((resolve) => { done = resolve; });
    const release = () => {
      clearTimeout(wait.timer);
      if (this._historyDue === wait) this._historyDue = null;
      done();
    };
    const wait = { due: new Set(fields.symbols), release, timer: 0 };
    try {
      await before;
      // Registered before the request goes out: in Node, `ws` may deliver the ack and the history frames
      // in one go, before this function resumes.
      this._historyDue = wait;
      const ack = await this.request('subscribe', fields, timeout, { quiet });
      if (this._historyDue === wait) wait.timer = setTimeout(release, timeout);
      return ack;
    } catch (e) {
      release();
      throw e;
    }
  }

  // options.resume: name the last seq seen of each symbol (and the server epoch it came from), so the server
  // replays what was missed instead of sending a snapshot (docs/protocol.md, "Resume"). Not for "*".
  _resumeFields(symbols, fields) {
    const seqs = {};
    const resumed = [];
    for (const s of symbols) {
      const st = this._seq.get(s);
      if (s === '*' || !st) continue;
      seqs[s] = st.seq;
      resumed.push(s);
    }
    if (resumed.length) {
      fields.resume = seqs;
      if (this.epoch) fields.epoch = this.epoch;
    }
    return resumed;
  }

  // While live, subscribe the `waiting` symbols again every retryUnknown ms until the server knows them.
  _retryWaiting() {
    if (this._waitTimer || !this.opts.retryUnknown || !this.waiting.size || this.state !== 'open') return;
    this._waitTimer = setTimeout(() => {
      this._waitTimer = 0;
      const list = [...this.waiting].filter((s) => this.subscriptions.has(s));
      if (this.state !== 'open' || !list.length) return;
      this._subscribe(list, { mode: 'keep', timeout: this.opts.timeout, quiet: true, history: this.opts.history })
        .catch(() => { /* a lost connection re-subscribes everything anyway */ })
        .finally(() => this._retryWaiting());
    }, this.opts.retryUnknown);
  }

  _connect() {
    clearTimeout(this._retryTimer);
    this._setState('connecting');
    let ws;
    try {
      ws = this.transport === 'ws' ? new this.opts.WebSocket(this.url, this.opts.protocols)
        : openHttpSocket(this.transport, httpBaseOf(this.url),
          { symbols: [...this.subscriptions], position: this._httpPosition });
    } catch (e) { // malformed URL: retrying cannot help
      this._setState('closed');
      this._emit('error', { source: 'transport', code: 'bad_url', message: e.message });
      return;
    }
    this._ws = ws;
    this._connectTimer = setTimeout(() => {
      if (this._ws !== ws) return;
      this._emit('error', { source: 'transport', code: 'connect_timeout',
        message: `no ${this.transport === 'ws' ? 'WebSocket handshake' : `${this.transport} stream`} within ${this.opts.connectTimeout} ms` });
      this._drop(1006, 'connect timeout');
    }, this.opts.connectTimeout);
    ws.onopen = () => {
      clearTimeout(this._connectTimer);
      this._openedAt = Date.now();
      this._conn++;
      this.counts.connects++;
      if (this.counts.connects > 1) this.counts.reconnects++;
      this._setState('open');
      this._emit('open');
      this._scheduleUpgrade();
      for (const w of this._readyWaiters.splice(0)) { clearTimeout(w.timer); w.resolve(this); }
      this._startPings();
      if (this.subscriptions.size) {
        const wanted = [...this.subscriptions];
        const mode = this.opts.retryUnknown ? 'keep' : 'partial';
        const again = { mode, timeout: this.opts.timeout, resume: !!this.opts.resume, history: this.opts.history };
        this._subscribe(wanted, again).catch((e) => {
          // server errors already went out as 'error' events; report the rest (e.g. a timeout)
          if (e.code === 'timeout') this._emit('error', { source: 'transport', code: e.code, message: e.message });
        }).finally(() => this._retryWaiting());
      }
    };
    ws.onmessage = (ev) => this._onMessage(ev.data);
    ws.onclose = (ev) => this._drop(ev.code, ev.reason);
    ws.onerror = (ev) => {
      // always followed by close; the reason is only known on some platforms (Node's ws says it)
      this._emit('error', { source: 'transport', code: 'transport_error',
        message: ev?.message || ev?.error?.message || `WebSocket error (${this.url})` });
    };
  }

  _onMessage(data) {
    let msg;
    try { msg = JSON.parse(data); } catch { return; }
    switch (msg?.op) {
      case 'snapshot':
      case 'update':
      case 'replay':
        if (Array.isArray(msg.updates)) this._onValues(msg.op, msg.updates, msg.reset === true);
        break;
      case 'history':
        if (typeof msg.symbol === 'string') this._onHistory(msg);
        break;
      case 'ack':
      case 'error': {
        const p = msg.id != null ? this._pending.get(msg.id) : null;
        if (p) {
          this._pending.delete(msg.id);
          clearTimeout(p.timer);
        }
        if (msg.op === 'error' && !(p && (p.quiet === true || p.quiet === msg.code))) {
          const { op, ...rest } = msg;
          this._emit('error', { source: 'server', ...rest, ...(p ? { req: p.op } : {}) });
        }
        if (p) {
          if (msg.op === 'ack') p.resolve(msg);
          else p.reject(new TickerdError(msg.code, msg.message, { symbols: msg.symbols || [], op: p.op }));
        }
        break;
      }
      // unknown ops are ignored, as unknown keys are
    }
  }

  // kind: snapshot | update | replay (values missed while away, after a resume: in seq order, emitted as
  // 'update' events). A snapshot with reset: true ends a resume that could not be replayed.
  _onValues(kind, updates, reset = false) {
    this.counts.frames++;
    const event = kind === 'replay' ? 'update' : kind;
    for (const u of updates) {
      const sym = u?.symbol;
      if (typeof sym !== 'string') continue;
      if (Number.isFinite(u.seq)) {
        let st = this._seq.get(sym);
        if (!st) this._seq.set(sym, (st = { seq: u.seq, conn: this._conn, skipped: 0 }));
        else {
          if (event === 'update' && st.conn === this._conn && u.seq > st.seq + 1) {
            const gap = u.seq - st.seq - 1;
            st.skipped += gap;
            this.skipped += gap;
          }
          st.seq = u.seq;
          st.conn = this._conn;
        }
      }
      this.latest.set(sym, u);
      if (kind === 'update') this.counts.updates++;
      else if (kind === 'replay') this.counts.replayed++;
      else { this.counts.snapshots++; if (reset) this.counts.resets++; }
      if (this._perValue[event].size) this._emit(event, u);
    }
    this._emit('data', reset ? { kind, updates, reset } : { kind, updates });
  }

  // The replay that follows continues from the history's seq: count seq gaps from there (the snapshot
  // before it may be newer or older than the history's end). seq 0: nothing of this server run in it.
  _onHistory(msg) {
    const { op, ...detail } = msg;
    this.counts.histories++;
    const st = this._seq.get(msg.symbol);
    if (st && Number.isFinite(msg.seq) && msg.seq > 0) { st.seq = msg.seq; st.conn = this._conn; }
    const wait = this._historyDue;
    if (wait?.due.delete(msg.symbol) && !wait.due.size) wait.release();
    if (!Array.isArray(detail.rows)) detail.rows = [];
    this._emit('history', detail);
  }

  _startPings() {
    clearInterval(this._pingTimer);
    // Over SSE/polling a ping is answered locally: nothing to measure, nothing it could detect.
    if (!this.opts.pingInterval || this.transport !== 'ws') return;
    const ws = this._ws;
    const once = () => this.ping().catch((e) => {
      // No ack in time on a socket that still claims to be open: treat it as dead (a browser may take
      // minutes to notice a silently dropped TCP connection).
      if (e.code === 'timeout' && this._ws === ws) {
        this._emit('error', { source: 'transport', code: 'ping_timeout', message: e.message });
        this._drop(4000, 'ping timeout');
      }
    });
    once();
    this._pingTimer = setInterval(once, this.opts.pingInterval);
  }

  // Forget the current socket (closing it if needed), fail pending requests, and schedule a reconnect
  // unless close() was called.
  _drop(code = 1006, reason = '') {
    const ws = this._ws;
    if (!ws) return;
    this._ws = null;
    clearTimeout(this._connectTimer);
    clearTimeout(this._upgradeTimer);
    if (this.transport !== 'ws') this._httpPosition = ws.position ?? this._httpPosition;
    // keep a no-op error handler: Node's ws throws on an 'error' event nobody listens to
    ws.onopen = ws.onmessage = ws.onclose = null;
    ws.onerror = () => {};
    if (ws.readyState < 2) try { ws.close(code >= 4000 || code === 1000 ? code : 1000); } catch { /* ignore */ }
    clearInterval(this._pingTimer);
    clearTimeout(this._waitTimer);
    this._waitTimer = 0;
    this._historyDue?.release();
    for (const p of this._pending.values()) {
      clearTimeout(p.timer);
      p.reject(new TickerdError('disconnected', `${p.op}: connection lost before the reply`, { op: p.op }));
    }
    this._pending.clear();
    // A connection that stayed up resets the backoff; one closed at once (e.g. 1013, server full) keeps growing it.
    if (this._openedAt && Date.now() - this._openedAt >= this.opts.stableAfter) this.attempt = 0;
    const wasOpen = this._openedAt !== 0;
    this._openedAt = 0;
    this.rtt = null;
    if (wasOpen) this._emit('close', { code, reason });
    if (this.state === 'closed') return;
    // Refused before it opened: the next way in, at once; after the last one, WebSocket again with the
    // usual backoff (the server may just be down). A connection that opened keeps its transport.
    const order = ['ws', 'sse', 'poll'];
    if (this.opts.fallback && !wasOpen && code !== 4001) {
      const next = order[order.indexOf(this.transport) + 1];
      if (next) {
        this._setTransport(next);
        this._setState('reconnecting', 0);
        this._retryTimer = setTimeout(() => this._connect(), 0);
        return;
      }
      this._setTransport('ws');
    }
    this._scheduleReconnect();
  }

  _setTransport(transport) {
    if (transport === this.transport) return;
    const previous = this.transport;
    this.transport = transport;
    this._emit('transport', { transport, previous });
  }

  // On a fallback: now and then open a WebSocket on the side; if it opens, close it and reconnect over
  // WebSocket (with options.resume the values in between are replayed).
  _scheduleUpgrade() {
    clearTimeout(this._upgradeTimer);
    if (this.transport === 'ws' || !this.opts.upgradeInterval) return;
    this._upgradeTimer = setTimeout(() => {
      let probe;
      try { probe = new this.opts.WebSocket(this.url, this.opts.protocols); } catch { return; }
      const done = (up) => {
        clearTimeout(timer);
        probe.onopen = probe.onclose = null;
        probe.onerror = () => {};
        try { probe.close(); } catch { /* ignore */ }
        if (up && this.state === 'open' && this.transport !== 'ws') {
          this._setTransport('ws');
          this._drop(4001, 'moving back to WebSocket');
        } else if (this.state === 'open') {
          this._scheduleUpgrade();
        }
      };
      const timer = setTimeout(() => done(false), this.opts.connectTimeout);
      probe.onopen = () => done(true);
      probe.onclose = () => done(false);
      probe.onerror = () => {};
    }, this.opts.upgradeInterval);
  }

  _scheduleReconnect() {
    if (globalThis.navigator?.onLine === false) { this._setState('offline'); return; }
    const { baseDelay, maxDelay } = this.opts;
    this.attempt++;
    const delay = Math.random() * Math.min(maxDelay, baseDelay * 2 ** (this.attempt - 1));
    this._setState('reconnecting', delay);
    this._retryTimer = setTimeout(() => this._connect(), delay);
  }

  _setState(state, delay = 0) {
    const before = this.status;
    this.state = state;
    this._emit('state', { state, attempt: this.attempt, delay });
    const status = this.status;
    if (status !== before || state === 'reconnecting') {
      this._emit('status', { status, state, attempt: this.attempt, delay });
    }
  }

  _emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

/** Create a client and start connecting. options: see TickerdClient (WebSocket, timeout, baseDelay, ...). */
export function connect(url, options = {}) {
  return new TickerdClient(url, options).connect();
}
