// Small reusable client for the tickerd v1 JSON WebSocket protocol (docs/protocol.md).
//
//   const c = new TickerdClient('ws://127.0.0.1:8080/ws').connect();
//   c.addEventListener('data', (e) => e.detail.updates.forEach(...));  // snapshot + update frames
//   await c.subscribe(['BTC-USD']);
//
// Events (CustomEvent, payload in .detail):
//   state    {state, attempt, delay}  state: connecting | open | reconnecting | offline | closed
//   open / close {code, reason}
//   data     {kind: 'snapshot'|'update', updates: [...]}
//   latency  {rtt, clockOffset}       rtt in ms; clockOffset = server clock - local clock, ms
//   rejected {symbols, code}          symbols the server did not know; dropped from the subscriptions
//   error    {code, message, ...}     a server error not tied to a pending request, or a failed resubscribe
//
// `subscriptions` is the set of symbols the caller wants; it survives disconnects and is re-sent after every
// reconnect. Reconnects use exponential backoff with full jitter: delay = random(0, min(cap, base * 2^(n-1))).

export class TickerdError extends Error {
  constructor(code, message, extra) {
    super(message || code);
    this.name = 'TickerdError';
    this.code = code;
    this.symbols = [];
    Object.assign(this, extra);
  }
}

export class TickerdClient extends EventTarget {
  constructor(url, options = {}) {
    super();
    this.url = url;
    this.opts = {
      baseDelay: 500,       // ms
      maxDelay: 30000,      // ms
      timeout: 5000,        // ms to wait for an ack/error
      pingInterval: 5000,   // ms between latency pings while open; 0 = off
      stableAfter: 5000,    // ms a connection must stay up before the backoff resets
      WebSocket: globalThis.WebSocket,
      ...options,
    };
    this.state = 'idle';
    this.attempt = 0;         // reconnect attempts since the last stable connection
    this.rtt = null;
    this.clockOffset = 0;
    this.subscriptions = new Set();
    this._ws = null;
    this._nextId = 1;
    this._pending = new Map(); // id -> {resolve, reject, timer}
    this._retryTimer = 0;
    this._pingTimer = 0;
    this._openedAt = 0;
    this._onOnline = () => { if (this.state === 'offline') this._connect(); };
    this._onOffline = () => {
      if (this.state === 'reconnecting') { clearTimeout(this._retryTimer); this._setState('offline'); }
    };
  }

  connect() {
    if (this.state === 'idle' || this.state === 'closed') {
      globalThis.addEventListener?.('online', this._onOnline);
      globalThis.addEventListener?.('offline', this._onOffline);
      this._connect();
    }
    return this;
  }

  close() {
    globalThis.removeEventListener?.('online', this._onOnline);
    globalThis.removeEventListener?.('offline', this._onOffline);
    clearTimeout(this._retryTimer);
    this._setState('closed');
    this._drop(1000, 'client closed');
  }

  // Resolves {symbols: subscribed, rejected: unknown ones dropped}. Offline, the symbols are only
  // remembered ({queued: true}) and subscribed on the next connect.
  subscribe(symbols) {
    symbols = [...new Set(symbols)];
    for (const s of symbols) this.subscriptions.add(s);
    if (this.state !== 'open' || !symbols.length) return Promise.resolve({ symbols: [], rejected: [], queued: true });
    return this._subscribe(symbols);
  }

  unsubscribe(symbols) {
    for (const s of symbols) this.subscriptions.delete(s);
    if (this.state !== 'open' || !symbols.length) return Promise.resolve(null);
    return this.request('unsubscribe', { symbols });
  }

  // Round trip of the ping op, in ms. The ack's server time also gives the clock offset
  // (assuming a symmetric path), which lets callers compute the age of upstream timestamps.
  async ping() {
    const sent = Date.now();
    const t0 = performance.now();
    const ack = await this.request('ping');
    const rtt = performance.now() - t0;
    if (Number.isFinite(ack.time)) this.clockOffset = ack.time / 1000 - (sent + rtt / 2);
    this.rtt = rtt;
    this._emit('latency', { rtt, clockOffset: this.clockOffset });
    return rtt;
  }

  // Send one request; resolves with its ack, rejects with a TickerdError (server error code, or
  // 'timeout' / 'not_connected' / 'disconnected').
  request(op, fields = {}, timeout = this.opts.timeout) {
    const ws = this._ws;
    if (!ws || this.state !== 'open') return Promise.reject(new TickerdError('not_connected', 'not connected'));
    const id = this._nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new TickerdError('timeout', `${op}: no reply within ${timeout} ms`));
      }, timeout);
      this._pending.set(id, { resolve, reject, timer });
      ws.send(JSON.stringify({ op, ...fields, id }));
    });
  }

  // A subscribe is atomic on the server: one unknown symbol fails them all. Drop the ones it names
  // and retry with the rest.
  async _subscribe(symbols) {
    const rejected = [];
    for (;;) {
      if (!symbols.length) return { symbols, rejected };
      try {
        await this.request('subscribe', { symbols });
        return { symbols, rejected };
      } catch (e) {
        if (e.code === 'too_many_subscriptions') for (const s of symbols) this.subscriptions.delete(s);
        if (e.code !== 'unknown_symbol') throw e;
        const bad = new Set(e.symbols);
        const rest = symbols.filter((s) => !bad.has(s));
        if (rest.length === symbols.length) throw e; // names nothing we sent: do not loop
        const dropped = symbols.filter((s) => bad.has(s));
        for (const s of dropped) this.subscriptions.delete(s);
        rejected.push(...dropped);
        this._emit('rejected', { symbols: dropped, code: e.code });
        symbols = rest;
      }
    }
  }

  _connect() {
    clearTimeout(this._retryTimer);
    this._setState('connecting');
    let ws;
    try {
      ws = new this.opts.WebSocket(this.url);
    } catch (e) { // malformed URL: retrying cannot help
      this._setState('closed');
      this._emit('error', { code: 'bad_url', message: e.message });
      return;
    }
    this._ws = ws;
    ws.onopen = () => {
      this._openedAt = Date.now();
      this._setState('open');
      this._emit('open');
      this._startPings();
      if (this.subscriptions.size) {
        this._subscribe([...this.subscriptions]).catch((e) => {
          if (e.code !== 'disconnected') this._emit('error', { code: e.code, message: e.message });
        });
      }
    };
    ws.onmessage = (ev) => this._onMessage(ev.data);
    ws.onclose = (ev) => this._drop(ev.code, ev.reason);
    ws.onerror = () => {}; // always followed by close
  }

  _onMessage(data) {
    let msg;
    try { msg = JSON.parse(data); } catch { return; }
    switch (msg?.op) {
      case 'snapshot':
      case 'update':
        if (Array.isArray(msg.updates)) this._emit('data', { kind: msg.op, updates: msg.updates });
        break;
      case 'ack':
      case 'error': {
        const p = msg.id != null ? this._pending.get(msg.id) : null;
        if (p) {
          this._pending.delete(msg.id);
          clearTimeout(p.timer);
          if (msg.op === 'ack') p.resolve(msg);
          else p.reject(new TickerdError(msg.code, msg.message, { symbols: msg.symbols || [] }));
        } else if (msg.op === 'error') {
          this._emit('error', msg);
        }
        break;
      }
      // unknown ops are ignored, as unknown keys are
    }
  }

  _startPings() {
    clearInterval(this._pingTimer);
    if (!this.opts.pingInterval) return;
    const ws = this._ws;
    const once = () => this.ping().catch((e) => {
      // No ack in time on a socket that still claims to be open: treat it as dead (a browser may take
      // minutes to notice a silently dropped TCP connection).
      if (e.code === 'timeout' && this._ws === ws) this._drop(4000, 'ping timeout');
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
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    if (ws.readyState < 2) try { ws.close(code >= 4000 || code === 1000 ? code : 1000); } catch { /* ignore */ }
    clearInterval(this._pingTimer);
    for (const p of this._pending.values()) {
      clearTimeout(p.timer);
      p.reject(new TickerdError('disconnected', 'connection lost'));
    }
    this._pending.clear();
    // A connection that stayed up resets the backoff; one closed at once (e.g. 1013, server full) keeps growing it.
    if (this._openedAt && Date.now() - this._openedAt >= this.opts.stableAfter) this.attempt = 0;
    const wasOpen = this._openedAt !== 0;
    this._openedAt = 0;
    this.rtt = null;
    if (wasOpen) this._emit('close', { code, reason });
    if (this.state !== 'closed') this._scheduleReconnect();
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
    this.state = state;
    this._emit('state', { state, attempt: this.attempt, delay });
  }

  _emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
