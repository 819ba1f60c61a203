// tickerd-http.js — the fallback transports of tickerd-client.js: Server-Sent Events (/sse) and HTTP
// long-polling (/api/poll), behind the small part of the WebSocket interface the client uses
// (readyState, onopen/onmessage/onclose/onerror, send, close). docs/protocol.md describes both endpoints;
// docs/client.md when the client uses them.
//
// The client speaks its JSON protocol to this object as to a socket. Each request is answered here the
// way tickerd would answer it, by changing the one stream (or poll loop) the endpoints offer:
//   subscribe / unsubscribe  the stream is reopened for the new symbol set, from the last position (the
//                            SSE id / poll cursor), so the symbols it had continue without a gap (replay)
//                            and new ones start with a snapshot; the ack waits for the server's answer,
//                            an unknown symbol gets the server's own error reply and the old set stays.
//   ping                     acked locally (no round trip to measure over a one-way stream).
//   history                  not offered on these endpoints: a bad_request, after which the client
//                            subscribes without it.
// Both use fetch() with a streamed body: the same code runs in browsers and in Node >= 20, can send
// Last-Event-ID itself and can read the JSON error body of a refused stream (EventSource can do neither).

const OPEN = 1;
const CLOSED = 3;

/** The HTTP origin (and path prefix) of a tickerd WebSocket URL: ws://h:p/x/ws -> http://h:p/x */
export function httpBaseOf(wsUrl) {
  const u = new URL(wsUrl);
  u.protocol = u.protocol === 'wss:' ? 'https:' : u.protocol === 'ws:' ? 'http:' : u.protocol;
  u.pathname = u.pathname.replace(/\/ws\/?$/, '') || '/';
  u.search = '';
  return u.href.replace(/\/$/, '');
}

class HttpSocket {
  /** kind 'sse' | 'poll'; symbols: wanted already (opened with them); position: where a previous one ended. */
  constructor(kind, base, { symbols = [], position = null } = {}) {
    this.kind = kind;
    this.base = base;
    this.readyState = 0;
    this.position = position; // the last SSE id / poll cursor: "EPOCH,SYM:seq,..."
    this.epoch = position ? position.split(',')[0] : null;
    this.onopen = this.onmessage = this.onclose = this.onerror = null;
    this._symbols = new Set(symbols);
    this._run = null;    // {abort, symbols} of the current stream
    this._queue = Promise.resolve(); // requests change the stream one at a time
    queueMicrotask(() => this._start());
  }

  async _start() {
    try {
      if (this._symbols.size) {
        let err = await this._restart([...this._symbols]);
        // Symbols this server does not know (yet) do not make the transport unusable: open without them;
        // the client's re-subscribe then gets their unknown_symbol error and retries them as it would.
        while (err?.code === 'unknown_symbol' && err.symbols?.some((x) => this._symbols.has(x))) {
          for (const x of err.symbols) this._symbols.delete(x);
          err = this._symbols.size ? await this._restart([...this._symbols]) : null;
        }
        if (err) throw new Error(`${this.kind}: ${err.code}: ${err.message}`);
      }
      if (!this._symbols.size) {
        // Nothing to stream yet: ask the endpoint itself without symbols. tickerd answers that with its
        // own 400 bad_request, which proves the way through; a proxy that refuses it answers otherwise.
        const path = this.kind === 'sse' ? '/sse' : '/api/poll';
        const r = await fetch(`${this.base}${path}`, { cache: 'no-store' });
        const err = await this._refused(r);
        if (r.status !== 400 || err.code !== 'bad_request') throw new Error(`${path}: ${err.message}`);
      }
      if (this.readyState !== 0) return;
      this.readyState = OPEN;
      this.onopen?.({});
    } catch (e) {
      this._fail(e);
    }
  }

  // Requests that arrive together (a page adding its symbols one by one) change the stream once: each
  // reopen costs a connection, and a browser allows only six per host over HTTP/1.1.
  send(text) {
    this._batch ??= [];
    this._batch.push(JSON.parse(text));
    if (this._batch.length > 1) return;
    setTimeout(() => {
      const batch = this._batch;
      this._batch = null;
      this._queue = this._queue.then(() => this._handle(batch)).catch((e) => this._fail(e));
    }, 0);
  }

  close() {
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSED;
    this._run?.abort.abort();
    this._run = null;
  }

  _reply(req, m) { this._deliver(JSON.stringify({ id: req.id, ...m })); }

  _ack(req, extra = {}) {
    this._reply(req, { op: 'ack', req: req.op, ...extra, ...(this.epoch ? { epoch: this.epoch } : {}) });
  }

  async _handle(batch) {
    const changes = [];
    for (const req of batch) {
      const { op } = req;
      if (op === 'ping') this._ack(req);
      else if (op !== 'subscribe' && op !== 'unsubscribe') {
        this._reply(req, { op: 'error', code: 'unknown_op', message: `${op}: not available over ${this.kind}` });
      } else if (op === 'subscribe' && req.history) {
        this._reply(req, { op: 'error', req: op, code: 'bad_request', message: `history is not offered over ${this.kind}` });
      } else {
        req.names = Array.isArray(req.symbols) ? req.symbols.filter((s) => typeof s === 'string') : [];
        changes.push(req);
      }
    }
    // Apply them in order; a refused one (unknown symbols) is answered with the server's error and left
    // out, and the rest tried again: tickerd's subscribes are atomic, each request stays so here.
    while (changes.length) {
      const next = new Set(this._symbols);
      const fresh = [];
      for (const req of changes) {
        if (req.op === 'subscribe') {
          for (const s of req.names) { if (this._symbols.has(s)) fresh.push(s); next.add(s); }
        } else if (req.names.includes('*')) next.clear();
        else for (const s of req.names) next.delete(s);
      }
      // A subscribe of what is streamed already is answered with fresh snapshots by tickerd: reopen
      // without a position for those, so the caller gets what it asked for.
      const err = await this._restart([...next], fresh);
      if (!err) {
        this._symbols = next;
        for (const req of changes) this._ack(req, { symbols: req.names });
        return;
      }
      // Not tickerd's answer (a proxy's 502, a lost connection): this way in does not work after all.
      if (err.code.startsWith('http_') || err.code === 'transport_error') throw new Error(`${this.kind}: ${err.message}`);
      const bad = new Set(err.symbols || []);
      const refused = changes.filter((r) => r.op === 'subscribe' && r.names.some((s) => bad.has(s)));
      for (const req of refused.length ? refused : [...changes]) {
        const mine = (err.symbols || []).filter((s) => req.names.includes(s));
        this._reply(req, { ...err, ...(mine.length ? { symbols: mine } : {}), op: 'error', req: req.op });
        changes.splice(changes.indexOf(req), 1);
      }
      if (!changes.length) await this._restart([...this._symbols]); // the old set goes on where it was
    }
  }

  // Replace the stream by one for `symbols` from the current position (minus `fresh`, which restart
  // with snapshots). Resolves null once the server accepted it, or the server's error object.
  _restart(symbols, fresh = []) {
    this._run?.abort.abort();
    this._run = null;
    if (!symbols.length) return Promise.resolve(null);
    let position = this.position;
    if (position && fresh.length) {
      const drop = new Set(fresh.includes('*') ? symbols : fresh);
      position = position.split(',').filter((p, i) => i === 0 || !drop.has(p.slice(0, p.lastIndexOf(':')))).join(',');
    }
    const run = { abort: new AbortController(), symbols };
    this._run = run;
    return new Promise((accepted) => {
      const loop = this.kind === 'sse' ? this._sse(run, position, accepted) : this._poll(run, position, accepted);
      loop.catch((e) => {
        if (run.abort.signal.aborted) return accepted({ code: 'closed', message: 'replaced' });
        accepted({ code: 'transport_error', message: e.message });
        if (this._run === run) this._fail(e);
      });
    });
  }

  async _refused(res) {
    let body = {};
    try { body = JSON.parse(await res.text()); } catch { /* not JSON */ }
    return { code: body.code || `http_${res.status}`, message: body.message || `HTTP ${res.status}`,
      ...(Array.isArray(body.symbols) ? { symbols: body.symbols } : {}) };
  }

  async _sse(run, position, accepted) {
    const q = `symbols=${run.symbols.map(encodeURIComponent).join(',')}`;
    const res = await fetch(`${this.base}/sse?${q}`, {
      headers: position ? { 'Last-Event-ID': position } : {}, signal: run.abort.signal, cache: 'no-store',
    });
    if (res.status !== 200) return accepted(await this._refused(res));
    accepted(null);
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    let ev = {};
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).replace(/\r$/, '');
        buf = buf.slice(nl + 1);
        if (line === '') { this._sseEvent(ev); ev = {}; continue; }
        if (line.startsWith(':')) continue; // heartbeat
        const c = line.indexOf(':');
        const field = c < 0 ? line : line.slice(0, c);
        const v = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
        ev[field] = field === 'data' && ev.data !== undefined ? `${ev.data}\n${v}` : v;
      }
    }
    if (!run.abort.signal.aborted) throw new Error('the event stream ended');
  }

  _sseEvent(ev) {
    if (ev.id) this.position = ev.id;
    if (ev.data === undefined) return;
    if (ev.event === 'ack') { // the stream's own subscribe: its epoch is news, the ack is ours to give
      try { this.epoch = JSON.parse(ev.data).epoch ?? this.epoch; } catch { /* ignore */ }
      return;
    }
    this._deliver(ev.data);
  }

  async _poll(run, position, accepted) {
    const q = `symbols=${run.symbols.map(encodeURIComponent).join(',')}`;
    let first = true;
    // A refused poll is answered at once; one that is valid but has nothing newer than the cursor is held
    // (up to api.poll_hold_s): held that long means accepted.
    const held = setTimeout(() => { if (first) { first = false; accepted(null); } }, 300);
    run.abort.signal.addEventListener('abort', () => clearTimeout(held));
    while (!run.abort.signal.aborted) {
      const since = position ? `&since=${encodeURIComponent(position)}` : '';
      const res = await fetch(`${this.base}/api/poll?${q}${since}`, { signal: run.abort.signal, cache: 'no-store' });
      if (res.status !== 200) {
        const err = await this._refused(res);
        if (first) return accepted(err);
        throw new Error(`poll: ${err.code}: ${err.message}`);
      }
      const body = await res.json();
      if (run.abort.signal.aborted) return;
      if (first) { clearTimeout(held); accepted(null); first = false; }
      position = this.position = body.cursor;
      this.epoch = position.split(',')[0];
      for (const f of body.frames || []) this._deliver(JSON.stringify(f));
    }
  }

  _deliver(data) {
    if (this.readyState === CLOSED) return;
    this.onmessage?.({ data });
  }

  _fail(e) {
    if (this.readyState === CLOSED) return;
    const wasOpen = this.readyState === OPEN;
    this.close();
    this.onerror?.({ message: `${this.kind}: ${e?.message || e}` });
    this.onclose?.({ code: 1006, reason: wasOpen ? 'stream lost' : 'stream refused', wasClean: false });
  }
}

/** A fallback socket of kind 'sse' or 'poll' on the tickerd at `base` (see httpBaseOf). */
export function openHttpSocket(kind, base, options) {
  return new HttpSocket(kind, base, options);
}
