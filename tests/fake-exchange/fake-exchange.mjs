// fake-exchange.mjs: a loopback stand-in for the upstream venues tickerd's adapters talk to.
//
// This file owns one HTTP server (one port) that speaks the public market-data wire formats of
//   - Binance Spot       REST /api/v3/ticker/bookTicker (+ ticker/price, ping, time)
//                        WS   /stream?streams=... (combined, wrapped), /ws and /ws/<stream> (raw)
//   - Coinbase Exchange  REST /products/{id}/ticker
//                        WS   / (the real ws-feed path) and /coinbase
//   - Kraken             REST /0/public/Ticker (+ Time, AssetPairs)
//                        WS   /v2
//   - CoinGecko          REST /api/v3/simple/price
// driven by a deterministic random walk per canonical symbol (BTC-USD, ETH-USDT, ...), and the fault
// injection used by tickerd's adapter tests: fault(obj) in process, POST /_fault and GET /_state over HTTP.
//
// Formats and behaviours follow /work/shared/upstream-formats.md. Where a venue's real behaviour is not
// documented there, the choice made here is marked [FAKE] (see README.md for the list).
//
// Use:   import { startFakeExchange } from './fake-exchange.mjs';
//        const fx = await startFakeExchange({ seed: 1 });   // fx.port, fx.url, fx.wsUrl, fx.fault({...}), fx.close()
// CLI:   node tests/fake-exchange/fake-exchange.mjs --port 8089   (prints "fake-exchange listening on 8089")
//
// Bounded by construction: incoming WS payloads are capped (maxPayload), a connection whose send buffer
// exceeds maxBufferedBytes is dropped, connections, active faults and stalled REST requests are capped, and
// per-symbol history is a 4-entry ring. Every handler catches its own errors: no client input can crash it.

import http from 'node:http';
import path from 'node:path';
import process from 'node:process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { WebSocketServer, WebSocket } from 'ws';

// =====================================================================================================
// Options
// =====================================================================================================

/** Canonical symbols served when `symbols` is not given (BASE-QUOTE, as tickerd and Coinbase spell them). */
export const DEFAULT_SYMBOLS = ['BTC-USD', 'ETH-USD', 'SOL-USD', 'BTC-USDT', 'ETH-USDT', 'SOL-USDT'];

/** Starting prices by base asset; anything else starts at 100. */
const BASE_PRICES = { BTC: 65000, ETH: 3400, SOL: 150, DOGE: 0.15, XRP: 0.5, ADA: 0.45, LTC: 80 };

const DEFAULTS = {
  host: '127.0.0.1',
  port: 0,
  seed: 1,
  symbols: DEFAULT_SYMBOLS,
  tickMs: 100,                       // random-walk step period; 0 = only manual fx.tick()
  heartbeatMs: 1000,                 // Binance miniTicker/ticker, Coinbase heartbeat, Kraken heartbeat period
  pingMs: 20000,                     // Binance server ping period
  pongTimeoutMs: 60000,              // Binance: close if no matching pong this long after a ping
  maxConnMs: 24 * 3600 * 1000,       // Binance: connection lifetime (serverShutdown + close at expiry)
  binanceMaxMsgsPerSec: 5,           // Binance: incoming messages (incl. ping/pong) per second; 0 = no limit
  binanceMaxStreams: 1024,           // Binance: streams per connection
  binanceShutdownNotice: true,       // Binance: a serverShutdown event before the maxConnMs close
  binanceConnLogSize: 1000,          // Binance: connections remembered by fx.connections('binance')
  coinbaseSubscribeTimeoutMs: 5000,  // Coinbase: close if no successful subscribe within this
  coinbaseTickerOnSubscribe: true,   // Coinbase: push the current ticker right after a ticker subscribe
  coinbaseRequireUserAgent: true,    // Coinbase REST: 400 without a User-Agent header (as the real API)
  coingeckoRequireUserAgent: true,   // CoinGecko REST: 403 without a User-Agent header (as the real API)
  maxConnections: 1000,              // all venues together; further upgrades get 503
  maxPayload: 64 * 1024,             // largest accepted incoming WS message (bigger: closed with 1009)
  maxBufferedBytes: 8 * 1024 * 1024, // a WS client that lets this much pile up is dropped (slow consumer)
  maxHeldRequests: 256,              // REST requests held during a stall; beyond that they are dropped
  maxFaults: 100,                    // active stored faults
  strictHost: true,                  // WS upgrades and REST requests need Host "name:<listening port>" (RFC 9110)
  strictFields: true,                // subscribe messages with unknown fields get the venue's error
  binanceMaxConnsPer5Min: 300,       // Binance: new WS connections per 5 minutes per IP (0 = off), then HTTP 429
  coinbaseConnsPerSec: 8,            // Coinbase: WS connection requests per second per IP ...
  coinbaseConnBurst: 20,             // ... with bursts up to this (token bucket; 0 = off), then HTTP 429
  coinbaseMaxMsgsPerSec: 100,        // Coinbase: client messages per second per IP (0 = off): error, then close
  okxIdleMs: 30000,                  // OKX: close a connection that has sent nothing this long (0 = off)
  okxConnsPerSec: 3,                 // OKX: WS connection requests per second per IP (0 = off), then HTTP 429
  bybitIdleMs: 0,                    // Bybit: close a connection silent this long (0 = off; keep alive with {"op":"ping"})
  bybitMaxArgs: 10,                  // Bybit spot: topics per subscribe message
  bitstampMaxRequestsPerSec: 400,    // Bitstamp: REST requests + WS upgrades per second per IP (0 = off), then HTTP 429
  bitstampMaxRequestsPer10Min: 10000, // Bitstamp: the same per 10 minutes (0 = off)
  bitstampMaxConnMs: 90 * 24 * 3600 * 1000, // Bitstamp: connection age limit (bts:request_reconnect, then close)
  bitstampIdleMs: 0,                 // Bitstamp: close a client silent this long (0 = off; [FAKE], keep alive with bts:heartbeat)
  rootWsVenue: 'coinbase',           // who serves WS at "/" (Coinbase and Bitstamp both live at the root of their hosts)
  requestLogSize: 200,               // upgrades / REST requests remembered for fx.requests() (oldest dropped)
};

const VENUES = ['binance', 'coinbase', 'kraken', 'coingecko', 'okx', 'bybit', 'bitstamp', 'custom'];
const WS_VENUES = ['binance', 'coinbase', 'kraken', 'okx', 'bybit', 'bitstamp', 'custom'];

// =====================================================================================================
// Small helpers: PRNG, time and number formatting, JSON text surgery
// =====================================================================================================

const noop = () => {};

/** FNV-1a 32-bit hash of a string (seeds the per-symbol generators). */
function hash32(str) {
  let h = 0x811c9dc5;
  for (let i = 0; i < str.length; i++) {
    h ^= str.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** mulberry32: small, fast, deterministic PRNG returning floats in [0, 1). */
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Wall-clock epoch milliseconds with sub-millisecond precision. */
const nowMs = () => performance.timeOrigin + performance.now();

/** RFC3339 UTC with microseconds: 2022-10-19T23:28:22.061769Z (Coinbase and Kraken v2 style). */
function rfc3339(ms) {
  const whole = Math.floor(ms);
  const micros = Math.min(999, Math.max(0, Math.floor((ms - whole) * 1000)));
  return new Date(whole).toISOString().slice(0, -1) + String(micros).padStart(3, '0') + 'Z';
}

/** Fixed decimals as a string (Binance "65000.12000000", Kraken REST "65000.12000"). */
const fixed = (x, dp) => x.toFixed(dp);
/** Coinbase style: fixed decimals, trailing zeros trimmed ("1313.8", "0.04"). */
const trimmed = (x, dp) => {
  const s = x.toFixed(dp);
  return s.includes('.') ? s.replace(/0+$/, '').replace(/\.$/, '') : s;
};
/** A JSON number rounded to dp decimals (Kraken WS v2, CoinGecko). */
const num = (x, dp) => Number(x.toFixed(dp));

/**
 * Grow a JSON text to exactly `size` bytes while keeping it valid JSON: an object gains a "pad" member,
 * an array a trailing string element. All texts produced here are ASCII, so characters == bytes.
 */
function padJson(text, size) {
  const last = text[text.length - 1];
  if (last !== '}' && last !== ']') return text.length < size ? text + ' '.repeat(size - text.length) : text;
  const sep = text.length > 2 ? ',' : '';
  const head = last === '}' ? `${sep}"pad":"` : `${sep}"`;
  const tail = '"' + last;
  const n = size - (text.length - 1) - head.length - tail.length;
  return n < 0 ? text : text.slice(0, -1) + head + 'x'.repeat(n) + tail;
}

/** Invalid JSON derived from a valid text: cut in the middle (an unterminated object/array/string). */
const corruptJson = (text) => text.slice(0, Math.max(1, Math.floor(text.length / 2)));

/** Split a request target into path and query (no URL() here: it reinterprets "//host" targets). */
function splitTarget(target) {
  const raw = typeof target === 'string' ? target : '/';
  const q = raw.indexOf('?');
  return { pathname: q < 0 ? raw : raw.slice(0, q), params: new URLSearchParams(q < 0 ? '' : raw.slice(q + 1)) };
}

/** Known venue prefixes (/binance/..., /kraken/v2, ...) that force a venue in front of the real paths. */
function stripVenuePrefix(pathname) {
  for (const v of VENUES) {
    if (pathname === `/${v}` || pathname.startsWith(`/${v}/`)) return { venue: v, rest: pathname.slice(v.length + 1) || '/' };
  }
  return { venue: null, rest: pathname };
}

class FaultError extends Error {}

// =====================================================================================================
// Symbol catalogue: canonical BASE-QUOTE and each venue's spelling
// =====================================================================================================

/** Kraken's asset codes differ for a few bases (BTC is XBT, DOGE is XDG). */
const KRAKEN_ASSET = { BTC: 'XBT', DOGE: 'XDG' };
/** Assets whose Kraken internal names carry the X/Z prefix (XXBTZUSD). */
const KRAKEN_LEGACY = new Set(['XBT', 'ETH', 'LTC', 'XRP', 'XDG', 'XLM', 'ETC', 'XMR', 'ZEC', 'MLN', 'REP']);
const KRAKEN_FIAT = new Set(['USD', 'EUR', 'GBP', 'JPY', 'CAD']);
/** CoinGecko coin ids. */
const GECKO_ID = { BTC: 'bitcoin', ETH: 'ethereum', SOL: 'solana', DOGE: 'dogecoin', XRP: 'ripple', ADA: 'cardano', LTC: 'litecoin' };
/** Circulating supply used for usd_market_cap. */
const GECKO_SUPPLY = { BTC: 19.7e6, ETH: 120.2e6, SOL: 4.6e8 };

function spellings(base, quote) {
  const kb = KRAKEN_ASSET[base] || base;
  const kAlt = kb + quote;
  const kKey = KRAKEN_LEGACY.has(kb) && KRAKEN_FIAT.has(quote) ? `X${kb}Z${quote}` : kAlt;
  return {
    binance: base + quote,             // BTCUSDT (streams use the lowercase form)
    coinbase: `${base}-${quote}`,      // BTC-USD
    krakenWs: `${base}/${quote}`,      // BTC/USD (v2 keeps BTC)
    krakenAlt: kAlt,                   // XBTUSD (what REST clients send)
    krakenKey: kKey,                   // XXBTZUSD (what REST answers with)
    krakenBase: KRAKEN_LEGACY.has(kb) ? `X${kb}` : kb,
    krakenQuote: KRAKEN_FIAT.has(quote) ? `Z${quote}` : quote,
    geckoId: GECKO_ID[base] || base.toLowerCase(),
  };
}

// =====================================================================================================
// Market model: one deterministic random walk per canonical symbol
// =====================================================================================================

const VOL = 2e-4;         // per-step relative volatility
const QUIET_P = 0.3;      // chance a symbol does not change on a step
const HISTORY = 4;        // snapshots kept for out_of_order

/**
 * Book: top of book, last trade and 24 h statistics of one symbol. All venues render the same book, in
 * their own spelling and format. Prices live in integer ticks (10^-dp) so that formatting is exact.
 * Each change produces an immutable snapshot; renderers only ever read snapshots (`current`/`older()`),
 * except the heartbeat sequence numbers, which also advance between changes (background book activity).
 */
class Book {
  constructor(symbol, price, seed) {
    [this.base, this.quote] = symbol.split('-');
    this.symbol = symbol;
    this.names = spellings(this.base, this.quote);
    this.dp = price >= 10 ? 2 : price >= 1 ? 4 : 6;                   // price decimals
    this.qdp = price >= 1000 ? 5 : price >= 10 ? 3 : 1;               // quantity decimals
    this.scale = 10 ** this.dp;
    this.rng = mulberry32(hash32(`${seed}|${symbol}|walk`));
    this.bg = mulberry32(hash32(`${seed}|${symbol}|background`));
    const r = this.rng;
    this.anchor = price * this.scale;
    this.mid = this.anchor * (1 + (r() - 0.5) * 0.002);
    this.open = Math.round(this.mid * (1 + (r() - 0.5) * 0.04));
    this.high = Math.round(Math.max(this.open, this.mid) * (1 + r() * 0.01));
    this.low = Math.round(Math.min(this.open, this.mid) * (1 - r() * 0.01));
    this.volume = Math.round(((0.5 + r()) * 2e8) / price * 10 ** this.qdp) / 10 ** this.qdp; // base units
    this.quoteVolume = this.volume * (this.mid / this.scale);
    this.count = 100000 + Math.floor(r() * 900000);                  // trades in 24 h
    this.tradeId = 100000000 + Math.floor(r() * 900000000);
    this.cbSeq = 30000000000 + Math.floor(r() * 9e9);                 // Coinbase sequence: > 32 bits
    this.bnU = 40000000000 + Math.floor(r() * 9e9);                   // Binance updateId: > 32 bits
    this.version = 0;
    this.history = [];
    this.quoteFrom(r);
    this.lastT = this.bidT;
    this.lastSize = this.qty(r, 0.05);
    this.side = 'sell';
    this.commit();
  }

  /** A quantity with about `notional` x 150 k USD of value, at least one lot. */
  qty(r, notional = 1) {
    const q = ((5000 + r() * 150000) * notional) / (this.mid / this.scale);
    return Math.max(1, Math.round(q * 10 ** this.qdp)) / 10 ** this.qdp;
  }

  /** New best bid/ask around the mid (1-3 ticks wide) with fresh sizes. */
  quoteFrom(r) {
    const spread = 1 + Math.floor(r() * 3);
    this.bidT = Math.max(1, Math.floor(this.mid - spread / 2));
    this.askT = this.bidT + spread;
    this.bidQty = this.qty(r);
    this.askQty = this.qty(r);
  }

  /** One random-walk step. Returns true if the book changed (a trade happened and the quote moved). */
  step() {
    const r = this.rng;
    if (r() < QUIET_P) return false;
    const z = (r() + r() + r() + r() - 2) * 1.732;                    // about N(0, 1)
    this.mid *= 1 + z * VOL;
    this.mid += (this.anchor - this.mid) * 1e-4;                      // gentle pull back to the start price
    this.mid = Math.max(this.mid, 10);
    this.quoteFrom(r);
    this.side = r() < 0.5 ? 'buy' : 'sell';                           // taker side
    this.lastT = this.side === 'buy' ? this.askT : this.bidT;
    this.lastSize = this.qty(r, 0.02);
    this.volume += this.lastSize;
    this.quoteVolume += this.lastSize * (this.lastT / this.scale);
    this.count += 1;
    this.tradeId += 1 + Math.floor(r() * 3);
    this.cbSeq += 1 + Math.floor(r() * 20);
    this.bnU += 1 + Math.floor(r() * 40);
    this.high = Math.max(this.high, this.lastT, this.askT);
    this.low = Math.min(this.low, this.lastT, this.bidT);
    this.commit();
    return true;
  }

  /** Background order-book activity between top-of-book changes (called once per heartbeat period). */
  background() {
    this.cbSeq += 1 + Math.floor(this.bg() * 5);
    this.bnU += 1 + Math.floor(this.bg() * 5);
  }

  /** Freeze the current state as a snapshot and keep the last few for out_of_order. */
  commit() {
    const s = this.scale;
    this.version += 1;
    this.current = Object.freeze({
      version: this.version, ts: nowMs(),
      bid: this.bidT / s, ask: this.askT / s, bidQty: this.bidQty, askQty: this.askQty,
      last: this.lastT / s, lastSize: this.lastSize, side: this.side,
      open: this.open / s, high: this.high / s, low: this.low / s,
      volume: this.volume, quoteVolume: this.quoteVolume, count: this.count,
      tradeId: this.tradeId, cbSeq: this.cbSeq, bnU: this.bnU,
    });
    this.history.push(this.current);
    if (this.history.length > HISTORY) this.history.shift();
  }

  /** A snapshot strictly older than `current`: older event time, lower sequence/update/trade ids. */
  older() {
    const cur = this.current;
    const old = this.history[0];
    const base = old === cur ? { ...cur, cbSeq: cur.cbSeq - 7, bnU: cur.bnU - 7, tradeId: cur.tradeId - 1 } : { ...old };
    base.ts = Math.min(base.ts, cur.ts - 5000);
    return base;
  }

  /** Mid price as a plain number (CoinGecko). */
  midPrice(snap) { return (snap.bid + snap.ask) / 2; }
}

// =====================================================================================================
// Faults
// =====================================================================================================

/**
 * What each kind applies to. `ws`/`rest`: whether it has an effect on that transport. `action`: done at
 * once (not stored). Stored message faults are consumed one message (or REST body) at a time.
 */
const KINDS = {
  disconnect: { ws: true, rest: false, action: true },
  stall: { ws: true, rest: true },
  http_status: { ws: false, rest: true },
  malformed: { ws: true, rest: true },
  wrong_types: { ws: true, rest: true },
  huge_frame: { ws: true, rest: true },
  out_of_order: { ws: true, rest: true },
  duplicate: { ws: true, rest: true },
  reject_subscribe: { ws: true, rest: false },
  server_shutdown: { ws: true, rest: false, action: true },
  clear: { ws: true, rest: true, action: true },
};
/** Kinds that transform outgoing market-data messages / REST bodies. */
const MESSAGE_KINDS = ['wrong_types', 'out_of_order', 'huge_frame', 'malformed', 'duplicate'];

function applicable(venue, kind) {
  const k = KINDS[kind];
  return (k.ws && WS_VENUES.includes(venue)) || k.rest;
}

/** Validate a fault request; returns the normalized fields (without venue expansion). */
function normalizeFault(obj) {
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) throw new FaultError('fault must be a JSON object');
  const { venue, kind } = obj;
  if (venue !== 'all' && !VENUES.includes(venue)) throw new FaultError(`venue must be one of ${VENUES.join(', ')}, all`);
  if (!Object.hasOwn(KINDS, kind)) throw new FaultError(`kind must be one of ${Object.keys(KINDS).join(', ')}`);
  const f = { venue, kind };
  const int = (v, name, lo, hi) => {
    if (!Number.isInteger(v) || v < lo || v > hi) throw new FaultError(`${name} must be an integer in [${lo}, ${hi}]`);
    return v;
  };
  if (obj.count !== undefined && obj.count !== null) {
    f.count = obj.count === -1 ? null : int(obj.count, 'count', 1, 1e9);    // -1: until cleared / ms elapsed
  } else {
    f.count = 1;
  }
  if (kind === 'stall') f.count = null;          // a stall lasts for `ms` or until `clear`
  if (obj.ms !== undefined && obj.ms !== null) f.ms = int(obj.ms, 'ms', 1, 24 * 3600 * 1000);
  if (obj.transport !== undefined && obj.transport !== null) {
    if (obj.transport !== 'ws' && obj.transport !== 'rest') throw new FaultError('transport must be "ws" or "rest"');
    f.transport = obj.transport;
    if (!KINDS[kind][f.transport]) throw new FaultError(`${kind} has no effect on transport ${f.transport}`);
  }
  if (kind === 'http_status') {
    f.status = obj.status === undefined ? 500 : int(obj.status, 'status', 200, 599);
    if (obj.retry_after !== undefined && obj.retry_after !== null) {
      if (!(typeof obj.retry_after === 'number' && obj.retry_after >= 0 && obj.retry_after <= 1e9)) {
        throw new FaultError('retry_after must be a non-negative number of seconds');
      }
      f.retry_after = obj.retry_after;
    }
    if (obj.body !== undefined) {
      const b = typeof obj.body === 'string' ? obj.body : JSON.stringify(obj.body);
      if (typeof b !== 'string' || b.length > 65536) throw new FaultError('body must be a string or JSON value under 64 KiB');
      f.body = b;
    }
  }
  if (kind === 'huge_frame') f.size = obj.size === undefined ? 1024 * 1024 : int(obj.size, 'size', 1024, 16 * 1024 * 1024);
  if (kind === 'reject_subscribe' && obj.reason !== undefined) {
    if (typeof obj.reason !== 'string' || obj.reason.length > 200) throw new FaultError('reason must be a short string');
    f.reason = obj.reason;
  }
  if (kind === 'server_shutdown') f.graceMs = obj.graceMs === undefined ? 50 : int(obj.graceMs, 'graceMs', 0, 60000);
  return f;
}

/** The set of active stored faults, in creation order. */
class FaultBook {
  constructor(ex) {
    this.ex = ex;
    this.list = [];
    this.nextId = 1;
  }

  add(f) {
    this.prune();
    if (this.list.length >= this.ex.o.maxFaults) throw new FaultError(`too many active faults (${this.ex.o.maxFaults}); clear some`);
    const rec = { id: this.nextId++, ...f, until: f.ms ? Date.now() + f.ms : null, remaining: f.count };
    delete rec.count;
    this.list.push(rec);
    if (rec.until) this.ex.setTimer(() => { this.prune(); this.ex.onFaultsChanged(rec.venue); }, f.ms);
    return rec;
  }

  prune() {
    if (this.list.length === 0) return;
    const now = Date.now();
    this.list = this.list.filter((f) => (f.until === null || f.until > now) && (f.remaining === null || f.remaining > 0));
  }

  matches(f, venue, kind, transport) {
    return f.venue === venue && f.kind === kind && (!f.transport || !transport || f.transport === transport);
  }

  find(venue, kind, transport) {
    this.prune();
    return this.list.find((f) => this.matches(f, venue, kind, transport)) || null;
  }

  /** Find and consume one use of a fault; returns it (with its parameters) or null. */
  take(venue, kind, transport) {
    const f = this.find(venue, kind, transport);
    if (f && f.remaining !== null) f.remaining -= 1;
    return f;
  }

  stalled(venue, transport) { return this.find(venue, 'stall', transport) !== null; }

  /** Consume every active message fault for one outgoing market-data message: { kind: fault }. */
  takeMessageFaults(venue, transport) {
    const fx = {};
    for (const k of MESSAGE_KINDS) {
      const f = this.take(venue, k, transport);
      if (f) fx[k] = f;
    }
    return fx;
  }

  hasMessageFaults(venue, transport) { return MESSAGE_KINDS.some((k) => this.find(venue, k, transport)); }

  clear(venue) {
    const before = this.list.length;
    this.list = this.list.filter((f) => f.venue !== venue);
    return before - this.list.length;
  }

  snapshot() {
    this.prune();
    return this.list.map((f) => ({ ...f }));
  }
}

// =====================================================================================================
// Binance Spot
// =====================================================================================================

// Well-formed stream names (`btcusdt@bookTicker`, `!miniTicker@arr`). Only lowercase symbols ever carry data.
const BN_STREAM_RE = /^!?[A-Za-z0-9]{1,20}@[A-Za-z0-9_]{1,32}$/;
const BN_SYMBOL_RE = /^[A-Z0-9\-_.]{1,20}$/;
const bnErr = (code, msg) => ({ code, msg });

/**
 * Binance: streams `<lowercase symbol>@bookTicker` (on every change), `@trade` (on every change),
 * `@miniTicker` and `@ticker` (every heartbeatMs). Streams that are well formed but name an unknown symbol or
 * an unsupported type are accepted and stay silent, as Binance does for unknown symbols.
 */
class Binance {
  constructor(ex) {
    this.ex = ex;
    this.name = 'binance';
    this.bySymbol = new Map();   // BTCUSDT -> Book
    this.byStream = new Map();   // btcusdt -> Book
    for (const b of ex.books.values()) {
      if (b.quote === 'USD') continue;                          // binance.com lists no USD-quoted spot pairs
      this.bySymbol.set(b.names.binance, b);
      this.byStream.set(b.names.binance.toLowerCase(), b);
    }
    this.weight = { minute: 0, used: 0 };
    this.connLog = [];           // bounded: one record per connection (fx.connections('binance'))
  }

  // ---- REST ----------------------------------------------------------------------------------------

  routes() {
    return {
      '/api/v3/ticker/bookTicker': (q, req, opts) => this.restTickers(q, opts, 'book'),
      '/api/v3/ticker/price': (q, req, opts) => this.restTickers(q, opts, 'price'),
      '/api/v3/ping': () => ({ status: 200, body: {}, weight: 1 }),
      '/api/v3/time': () => ({ status: 200, body: { serverTime: Date.now() }, weight: 1 }),
    };
  }

  /** bookTicker / price for no symbol (all), `symbol=X` or `symbols=["A","B"]`. */
  restTickers(q, opts, what) {
    const symbol = q.get('symbol');
    const symbols = q.get('symbols');
    const fail = (code, msg, weight) => ({ status: 400, body: bnErr(code, msg), weight });
    if (symbol !== null && symbols !== null) return fail(-1128, 'Combination of optional parameters invalid.', 2);
    let wanted;
    let single = false;
    if (symbol !== null) {
      if (symbol === '') return fail(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.", 2);
      if (!BN_SYMBOL_RE.test(symbol)) {
        return fail(-1100, "Illegal characters found in parameter 'symbol'; legal range is '^[A-Z0-9-_.]{1,20}$'.", 2);
      }
      wanted = [symbol];
      single = true;
    } else if (symbols !== null) {
      let list = null;
      try { list = JSON.parse(symbols); } catch { /* handled below */ }
      if (!Array.isArray(list) || list.length === 0 || list.length > 100 || !list.every((s) => typeof s === 'string' && BN_SYMBOL_RE.test(s))) {
        return fail(-1100, "Illegal characters found in parameter 'symbols'; legal range is '^\\[(\"[A-Z0-9-_.]{1,20}\"(,\"[A-Z0-9-_.]{1,20}\"){0,}){0,1}\\]$'.", 4);
      }
      wanted = list;
    } else {
      wanted = [...this.bySymbol.keys()];
    }
    const weight = single ? 2 : 4;
    if (wanted.some((s) => !this.bySymbol.has(s))) return fail(-1121, 'Invalid symbol.', weight);
    const rows = wanted.map((s) => {
      const b = this.bySymbol.get(s);
      const snap = opts.snap(b);
      const wt = opts.wrongTypes;
      if (what === 'price') return { symbol: s, price: wt ? { value: fixed(snap.last, 8) } : fixed(snap.last, 8) };
      return {
        symbol: s,
        bidPrice: wt ? { value: fixed(snap.bid, 8) } : fixed(snap.bid, 8),
        bidQty: fixed(snap.bidQty, 8),
        askPrice: wt ? true : fixed(snap.ask, 8),
        askQty: fixed(snap.askQty, 8),
      };
    });
    return { status: 200, body: single ? rows[0] : rows, weight, data: true };
  }

  /** Error body for an injected http_status fault. */
  faultBody(status) {
    if (status === 429) {
      return bnErr(-1003, 'Too much request weight used; current limit is 6000 request weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.');
    }
    if (status === 418) {
      return bnErr(-1003, `Way too much request weight used; IP banned until ${Date.now() + 120000}. Please use WebSocket Streams for live updates to avoid bans.`);
    }
    return bnErr(-1000, 'An unknown error occured while processing the request.');
  }

  /** Every Binance REST answer carries the used request weight of the current minute. */
  headers(weight) {
    const minute = Math.floor(Date.now() / 60000);
    if (minute !== this.weight.minute) this.weight = { minute, used: 0 };
    this.weight.used += weight || 1;
    return { 'X-MBX-USED-WEIGHT-1M': String(this.weight.used) };
  }

  // ---- WebSocket -----------------------------------------------------------------------------------

  /** Streams named by the URL: /stream?streams=a/b, /ws/a (also /ws/a/b). */
  urlStreams(pathname, params) {
    if (pathname === '/stream' || pathname === '/stream/') {
      const s = params.get('streams');
      return s ? s.split('/').filter(Boolean) : [];
    }
    if (pathname.startsWith('/ws/')) return pathname.slice(4).split('/').filter(Boolean).map(decodeURIComponentSafe);
    return [];
  }

  /** Handshake-time check; returns [status, body] to refuse the upgrade, or null. */
  refuseUpgrade(pathname, params) {
    const streams = this.urlStreams(pathname, params);
    if (streams.length > this.ex.o.binanceMaxStreams) return [400, bnErr(-1, `Too many streams; max ${this.ex.o.binanceMaxStreams}.`)]; // [FAKE]
    if (streams.some((s) => !this.validStreamName(s))) return [400, bnErr(-1, 'Illegal format ws or stream')]; // [FAKE] form seen in client logs
    if (streams.length && this.ex.faults.take('binance', 'reject_subscribe', 'ws')) return [400, bnErr(2, 'Invalid request: invalid stream')]; // [FAKE]
    return null;
  }

  validStreamName(s) { return typeof s === 'string' && BN_STREAM_RE.test(s); }

  onOpen(conn, pathname, params) {
    conn.combined = pathname.startsWith('/stream');               // wrapper on /stream, raw on /ws
    conn.micro = /^microsecond$/i.test(params.get('timeUnit') || '');
    conn.streams = new Set(this.urlStreams(pathname, params));
    // What a test needs to see make-before-break: when each connection was subscribed, first got data and
    // closed (by whom), and the most streams it ever held.
    conn.info = {
      id: conn.id, path: pathname, openedAt: Date.now(), subscribedAt: conn.streams.size ? Date.now() : null,
      firstDataAt: null, shutdownAt: null, closedAt: null, closeCode: null, closedBy: null, streams: conn.streams.size,
    };
    this.connLog.push(conn.info);
    if (this.connLog.length > this.ex.o.binanceConnLogSize) this.connLog.shift();
    conn.ws.on('close', (code) => {
      if (conn.info.closedAt === null) conn.info.closedAt = Date.now();
      conn.info.closeCode = code;
      if (!conn.info.closedBy) conn.info.closedBy = 'client';
    });
    conn.inWindow = { start: Date.now(), n: 0 };
    conn.pings = [];                                              // payloads of unanswered pings
    conn.pongDeadline = null;
    if (this.ex.o.pingMs > 0) conn.timers.push(setInterval(() => this.ping(conn), this.ex.o.pingMs));
    if (this.ex.o.maxConnMs > 0 && this.ex.o.maxConnMs < 2 ** 31) {
      conn.timers.push(setTimeout(() => {
        if (this.ex.o.binanceShutdownNotice) this.shutdown(conn, 50);
        else this.serverClose(conn, 1001, 'Connection lifetime exceeded'); // [FAKE] close code/reason
      }, this.ex.o.maxConnMs));
    }
    conn.ws.on('pong', (data) => this.onPong(conn, data));
  }

  /** Server ping with a payload; a pong must echo one of the outstanding payloads within pongTimeoutMs. */
  ping(conn) {
    if (this.ex.faults.stalled('binance', 'ws') || conn.ws.readyState !== WebSocket.OPEN) return;
    const payload = String(Date.now());
    conn.pings.push(payload);
    if (conn.pings.length > 8) conn.pings.shift();
    try { conn.ws.ping(payload); } catch { return; }
    if (!conn.pongDeadline) {   // cleared by a matching pong or in dropConn
      conn.pongDeadline = setTimeout(() => this.serverClose(conn, 1008, 'Pong timeout'), this.ex.o.pongTimeoutMs); // [FAKE] close code
    }
  }

  onPong(conn, data) {
    this.countIncoming(conn);
    const text = data.toString('latin1');
    if (!conn.pings.includes(text)) return;                      // unsolicited pongs do not count
    conn.pings = [];
    clearTimeout(conn.pongDeadline);
    conn.pongDeadline = null;
  }

  /** Incoming rate limit: more than binanceMaxMsgsPerSec messages (ping/pong/JSON) in a second closes. */
  countIncoming(conn) {
    const max = this.ex.o.binanceMaxMsgsPerSec;
    if (!max) return true;
    const now = Date.now();
    if (now - conn.inWindow.start >= 1000) conn.inWindow = { start: now, n: 0 };
    conn.inWindow.n += 1;
    if (conn.inWindow.n > max) {
      this.serverClose(conn, 1008, 'Too many requests'); // [FAKE] close code/reason
      return false;
    }
    return true;
  }

  onPing(conn) { return this.countIncoming(conn); }

  /** Live control requests: SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS, SET_PROPERTY, GET_PROPERTY. */
  onMessage(conn, text) {
    if (!this.countIncoming(conn)) return;
    let msg;
    try { msg = JSON.parse(text); } catch {
      this.ex.sendCtl(conn, bnErr(3, 'Invalid JSON: expected value at line 1 column 1'));
      return;
    }
    if (!msg || typeof msg !== 'object' || Array.isArray(msg)) {
      this.ex.sendCtl(conn, bnErr(3, 'Invalid JSON: expected value at line 1 column 1'));
      return;
    }
    const id = msg.id === undefined ? null : msg.id;
    const idOk = id === null || (Number.isSafeInteger(id) && id >= 0) || (typeof id === 'string' && /^[A-Za-z0-9-]{1,36}$/.test(id));
    if (!idOk) { this.ex.sendCtl(conn, bnErr(2, 'Invalid request: request ID must be an unsigned integer')); return; }
    if (typeof msg.method !== 'string') {
      this.ex.sendCtl(conn, bnErr(2, `Invalid request: missing field \`method\` at line 1 column ${text.length}`));
      return;
    }
    // Errors to identified requests: the nested form recorded on the wire ({"error":{...},"id":N}).
    const error = (code, m) => this.ex.sendCtl(conn, { error: bnErr(code, m), id });
    const params = msg.params;
    switch (msg.method) {
      case 'SUBSCRIBE':
      case 'UNSUBSCRIBE': {
        if (!Array.isArray(params) || params.length === 0 || !params.every((s) => this.validStreamName(s))) {
          error(2, 'Invalid request: invalid stream');
          return;
        }
        if (msg.method === 'SUBSCRIBE') {
          if (this.ex.faults.take('binance', 'reject_subscribe', 'ws')) { error(2, 'Invalid request: invalid stream'); return; }
          const next = new Set([...conn.streams, ...params]);
          if (next.size > this.ex.o.binanceMaxStreams) { error(2, 'Invalid request: too many streams'); return; } // [FAKE]
          conn.streams = next;
          conn.info.streams = Math.max(conn.info.streams, next.size);
        } else {
          for (const s of params) conn.streams.delete(s);
        }
        this.ex.sendCtl(conn, { result: null, id });
        if (msg.method === 'SUBSCRIBE' && conn.info.subscribedAt === null) conn.info.subscribedAt = Date.now();
        return;
      }
      case 'LIST_SUBSCRIPTIONS':
        this.ex.sendCtl(conn, { result: [...conn.streams], id });
        return;
      case 'SET_PROPERTY':
        if (Array.isArray(params) && params[0] === 'combined' && typeof params[1] === 'boolean') {
          conn.combined = params[1];
          this.ex.sendCtl(conn, { result: null, id });
        } else error(0, 'Unknown property');
        return;
      case 'GET_PROPERTY':
        if (Array.isArray(params) && params[0] === 'combined') this.ex.sendCtl(conn, { result: conn.combined, id });
        else error(0, 'Unknown property');
        return;
      default:
        error(2, `Invalid request: unknown variant \`${String(msg.method).slice(0, 40)}\`, expected one of \`SUBSCRIBE\`, \`UNSUBSCRIBE\`, \`LIST_SUBSCRIPTIONS\`, \`SET_PROPERTY\`, \`GET_PROPERTY\``);
    }
  }

  /** Wrap for combined connections. */
  frame(conn, stream, data) { return conn.combined ? { stream, data } : data; }

  time(conn, ms) { return conn.micro ? Math.floor(ms * 1000) : Math.floor(ms); }

  onTick(changed) {
    for (const conn of this.ex.conns.binance) {
      for (const b of changed) {
        if (!this.bySymbol.has(b.names.binance)) continue;
        const lo = b.names.binance.toLowerCase();
        if (conn.streams.has(`${lo}@bookTicker`)) {
          const stream = `${lo}@bookTicker`;
          this.sent(conn, this.ex.sendData(conn, b, (snap, o) => this.frame(conn, stream, {
            u: snap.bnU, s: b.names.binance,
            b: o.wrongTypes ? { price: fixed(snap.bid, 8) } : fixed(snap.bid, 8), B: fixed(snap.bidQty, 8),
            a: o.wrongTypes ? true : fixed(snap.ask, 8), A: fixed(snap.askQty, 8),
          })));
        }
        if (conn.streams.has(`${lo}@trade`)) {
          const stream = `${lo}@trade`;
          this.ex.sendData(conn, b, (snap, o) => this.frame(conn, stream, {
            e: 'trade', E: this.time(conn, snap.ts), s: b.names.binance, t: snap.tradeId,
            p: o.wrongTypes ? { price: fixed(snap.last, 8) } : fixed(snap.last, 8), q: fixed(snap.lastSize, 8),
            T: this.time(conn, snap.ts), m: snap.side === 'sell', M: true,
          }));
        }
      }
    }
  }

  onHeartbeat() {
    // One event time per heartbeat for every connection: the same event seen on two connections is the same.
    const now = nowMs();
    for (const conn of this.ex.conns.binance) {
      for (const s of conn.streams) {
        const at = s.indexOf('@');
        const type = s.slice(at + 1);
        if (type !== 'miniTicker' && type !== 'ticker') continue;
        const b = this.byStream.get(s.slice(0, at));
        if (!b) continue;
        this.sent(conn, this.ex.sendData(conn, b, (snap, o) => {
          const E = this.time(conn, o.old ? snap.ts : now);
          const c = o.wrongTypes ? { price: fixed(snap.last, 8) } : fixed(snap.last, 8);
          if (type === 'miniTicker') {
            return this.frame(conn, s, {
              e: '24hrMiniTicker', E, s: b.names.binance, c, o: fixed(snap.open, 8), h: fixed(snap.high, 8),
              l: fixed(snap.low, 8), v: fixed(snap.volume, 8), q: fixed(snap.quoteVolume, 8),
            });
          }
          const change = snap.last - snap.open;
          const closeT = Math.floor(o.old ? snap.ts : now);
          return this.frame(conn, s, {
            e: '24hrTicker', E, s: b.names.binance, p: fixed(change, 8), P: (change / snap.open * 100).toFixed(3),
            w: fixed(snap.quoteVolume / snap.volume, 8), x: fixed(snap.open, 8), c, Q: fixed(snap.lastSize, 8),
            b: o.wrongTypes ? true : fixed(snap.bid, 8), B: fixed(snap.bidQty, 8), a: fixed(snap.ask, 8),
            A: fixed(snap.askQty, 8), o: fixed(snap.open, 8), h: fixed(snap.high, 8), l: fixed(snap.low, 8),
            v: fixed(snap.volume, 8), q: fixed(snap.quoteVolume, 8), O: this.time(conn, closeT - 86400000),
            C: this.time(conn, closeT), F: snap.tradeId - snap.count + 1, L: snap.tradeId, n: snap.count,
          });
        }));
      }
    }
  }

  /** serverShutdown event, then a close frame after graceMs (24 h rule and the server_shutdown fault). */
  shutdown(conn, graceMs) {
    const ev = { e: 'serverShutdown', E: this.time(conn, nowMs()) };
    if (conn.info && conn.info.shutdownAt === null) conn.info.shutdownAt = Date.now();
    this.ex.sendCtl(conn, conn.combined ? { stream: '!serverShutdown', data: ev } : ev);
    conn.timers.push(setTimeout(() => this.serverClose(conn, 1001, 'Server shutdown'), graceMs)); // [FAKE] close code
  }

  /** A close the venue starts (lifetime, shutdown, pong timeout, rate limit): recorded as closedBy 'server'. */
  serverClose(conn, code, reason) {
    if (conn.info && !conn.info.closedBy) conn.info.closedBy = 'server';
    this.ex.closeConn(conn, code, reason);
  }

  /** Note the first market-data message a connection got. */
  sent(conn, ok) {
    if (ok && conn.info && conn.info.firstDataAt === null) conn.info.firstDataAt = Date.now();
  }

  /** Copies of the connection records, oldest first. */
  connections() { return structuredClone(this.connLog); }
}

function decodeURIComponentSafe(s) {
  try { return decodeURIComponent(s); } catch { return s; }
}

// =====================================================================================================
// Coinbase Exchange
// =====================================================================================================

const CB_CHANNELS = new Set(['ticker', 'heartbeat']);
const CB_FIELDS = new Set(['type', 'product_ids', 'channels', 'signature', 'key', 'passphrase', 'timestamp']);
const KRAKEN_FIELDS = new Set(['method', 'params', 'req_id']);
const KRAKEN_TICKER_PARAMS = new Set(['channel', 'symbol', 'event_trigger', 'snapshot']);

/**
 * Coinbase Exchange ws-feed: a client must subscribe within coinbaseSubscribeTimeoutMs; `ticker` is sent on
 * every change (one per match), `heartbeat` once per product per heartbeatMs with the product's sequence.
 * A subscribe that names any unknown product or channel fails as a whole.
 */
class Coinbase {
  constructor(ex) {
    this.ex = ex;
    this.name = 'coinbase';
    this.byProduct = new Map();
    for (const b of ex.books.values()) this.byProduct.set(b.names.coinbase, b);
  }

  // ---- REST ----------------------------------------------------------------------------------------

  /** GET /products/{id}/ticker (404 {"message":"NotFound"} for unknown products). */
  restTicker(id, req, opts) {
    if (this.ex.o.coinbaseRequireUserAgent && !req.headers['user-agent']) {
      return { status: 400, body: { message: 'User-Agent header is required.' } };
    }
    const b = this.byProduct.get(id);
    if (!b) return { status: 404, body: { message: 'NotFound' } };
    const snap = opts.snap(b);
    const p = (x) => trimmed(x, b.dp);
    return {
      status: 200,
      data: true,
      body: {
        trade_id: snap.tradeId,
        price: opts.wrongTypes ? { value: p(snap.last) } : p(snap.last),
        size: trimmed(snap.lastSize, 8),
        time: rfc3339(snap.ts),
        bid: opts.wrongTypes ? true : p(snap.bid),
        ask: p(snap.ask),
        volume: trimmed(snap.volume, 8),
        rfq_volume: '0.00',
        conversions_volume: '0.00',
      },
    };
  }

  faultBody(status) {
    if (status === 429) return { message: 'Public rate limit exceeded' }; // [FAKE] wording
    return { message: http.STATUS_CODES[status] || 'Error' };
  }

  // ---- WebSocket -----------------------------------------------------------------------------------

  onOpen(conn) {
    conn.subs = new Map();          // channel -> Set(product_id), insertion ordered
    conn.subscribed = false;
    const t = this.ex.o.coinbaseSubscribeTimeoutMs;
    if (t > 0) {
      conn.timers.push(setTimeout(() => {
        if (!conn.subscribed) this.ex.closeConn(conn, 1008, 'Subscribe timeout'); // [FAKE] close code
      }, t));
    }
  }

  error(conn, message, reason) {
    this.ex.sendCtl(conn, reason === undefined ? { type: 'error', message } : { type: 'error', message, reason });
  }

  onMessage(conn, text) {
    let msg;
    try { msg = JSON.parse(text); } catch { this.error(conn, 'Malformed JSON'); return; } // [FAKE] wording
    if (!msg || typeof msg !== 'object' || Array.isArray(msg)) { this.error(conn, 'Malformed JSON'); return; }
    if (msg.type !== 'subscribe' && msg.type !== 'unsubscribe') {
      this.error(conn, 'Failed to subscribe', `${String(msg.type).slice(0, 40)} is not a valid message type`); // [FAKE]
      return;
    }
    const sub = msg.type === 'subscribe';
    const fail = (reason) => this.error(conn, sub ? 'Failed to subscribe' : 'Failed to unsubscribe', reason);
    if (this.ex.o.strictFields) {
      // The documented fields (plus the optional authentication ones); anything else is refused. [FAKE] wording
      const unknown = Object.keys(msg).find((k) => !CB_FIELDS.has(k));
      if (unknown !== undefined) { fail(`unknown field ${unknown.slice(0, 40)}`); return; }
      const badCh = Array.isArray(msg.channels) && msg.channels.find((c) => c && typeof c === 'object' && Object.keys(c).some((k) => k !== 'name' && k !== 'product_ids'));
      if (badCh) { fail('unknown field in channel object'); return; }
    }
    const top = msg.product_ids;
    if (top !== undefined && !(Array.isArray(top) && top.every((p) => typeof p === 'string'))) { fail('Invalid product ID provided'); return; }
    if (!Array.isArray(msg.channels) || msg.channels.length === 0) { fail('No channels provided'); return; }
    const wanted = [];              // [channel, [products]]
    for (const ch of msg.channels) {
      const name = typeof ch === 'string' ? ch : ch && typeof ch === 'object' ? ch.name : undefined;
      if (typeof name !== 'string') { fail('No channels provided'); return; }
      if (!CB_CHANNELS.has(name)) { fail(`${name.slice(0, 40)} is not a valid channel`); return; } // [FAKE] wording
      const own = typeof ch === 'object' ? ch.product_ids : undefined;
      if (own !== undefined && !(Array.isArray(own) && own.every((p) => typeof p === 'string'))) { fail('Invalid product ID provided'); return; }
      const products = [...new Set([...(top || []), ...(own || [])])];
      if (products.length === 0) { fail('No product ids provided'); return; } // [FAKE] wording
      if (products.some((p) => !this.byProduct.has(p))) { fail('Invalid product ID provided'); return; }
      wanted.push([name, products]);
    }
    if (sub) {
      const rej = this.ex.faults.take('coinbase', 'reject_subscribe', 'ws');
      if (rej) { fail(rej.reason || 'Invalid product ID provided'); return; }
    }
    const freshTickers = [];
    for (const [name, products] of wanted) {
      if (!conn.subs.has(name)) conn.subs.set(name, new Set());
      const set = conn.subs.get(name);
      for (const p of products) {
        if (sub) {
          if (name === 'ticker' && !set.has(p)) freshTickers.push(p);
          set.add(p);
        } else set.delete(p);
      }
      if (set.size === 0) conn.subs.delete(name);
    }
    if (sub) conn.subscribed = true;
    this.ex.sendCtl(conn, {
      type: 'subscriptions',
      channels: [...conn.subs].map(([name, set]) => ({ name, product_ids: [...set] })),
    });
    if (this.ex.o.coinbaseTickerOnSubscribe) {
      for (const p of freshTickers) this.sendTicker(conn, this.byProduct.get(p));
    }
  }

  sendTicker(conn, b) {
    this.ex.sendData(conn, b, (snap, o) => {
      const p = (x) => trimmed(x, b.dp);
      return {
        type: 'ticker', sequence: snap.cbSeq, product_id: b.names.coinbase,
        price: o.wrongTypes ? { value: p(snap.last) } : p(snap.last),
        open_24h: p(snap.open), volume_24h: trimmed(snap.volume, 8), low_24h: p(snap.low), high_24h: p(snap.high),
        volume_30d: trimmed(snap.volume * 27.3, 8),
        best_bid: o.wrongTypes ? true : p(snap.bid), best_bid_size: trimmed(snap.bidQty, 8),
        best_ask: p(snap.ask), best_ask_size: trimmed(snap.askQty, 8),
        side: snap.side, time: rfc3339(snap.ts), trade_id: snap.tradeId, last_size: trimmed(snap.lastSize, 8),
      };
    });
  }

  onTick(changed) {
    for (const conn of this.ex.conns.coinbase) {
      const set = conn.subs.get('ticker');
      if (!set) continue;
      for (const b of changed) if (set.has(b.names.coinbase)) this.sendTicker(conn, b);
    }
  }

  onHeartbeat() {
    const time = rfc3339(nowMs());
    for (const conn of this.ex.conns.coinbase) {
      const set = conn.subs.get('heartbeat');
      if (!set) continue;
      for (const p of set) {
        const b = this.byProduct.get(p);
        this.ex.sendCtl(conn, { type: 'heartbeat', sequence: b.cbSeq, last_trade_id: b.tradeId, product_id: p, time });
      }
    }
  }

  shutdown(conn) { this.ex.closeConn(conn, 1001, 'Going away'); } // [FAKE]
}

// =====================================================================================================
// Kraken (REST /0/public/* and WebSocket v2)
// =====================================================================================================

const KRAKEN_CONN_ID_BASE = 13834774380200032777n;   // > INT64_MAX, as in the documented status message

/**
 * Kraken WS v2: `status` on open; one ack per symbol; ticker `snapshot` then `update`s (JSON numbers);
 * `{"channel":"heartbeat"}` in heartbeat periods in which nothing else was sent to a subscribed client;
 * application ping/pong. REST errors come inside HTTP 200.
 */
class Kraken {
  constructor(ex) {
    this.ex = ex;
    this.name = 'kraken';
    this.byWs = new Map();    // BTC/USD -> Book
    this.byPair = new Map();  // XBTUSD, XXBTZUSD, BTCUSD -> Book (REST pair names, upper case)
    for (const b of ex.books.values()) {
      const n = b.names;
      this.byWs.set(n.krakenWs, b);
      for (const k of [n.krakenAlt, n.krakenKey, b.base + b.quote]) this.byPair.set(k.toUpperCase(), b);
    }
  }

  // ---- REST ----------------------------------------------------------------------------------------

  routes() {
    return {
      '/0/public/Ticker': (q, req, opts) => this.restTicker(q, opts),
      '/0/public/Time': () => {
        const now = new Date();
        return { status: 200, body: { error: [], result: { unixtime: Math.floor(now / 1000), rfc1123: now.toUTCString().replace('GMT', '+0000') } } };
      },
      '/0/public/AssetPairs': (q) => this.restAssetPairs(q),
    };
  }

  /** Books for a `pair` list, or null if any is unknown (one bad pair fails the whole request). */
  pairs(q) {
    const pair = q.get('pair');
    if (pair === null || pair === '') return [...this.byWs.values()];
    const out = [];
    for (const p of pair.split(',')) {
      const b = this.byPair.get(p.trim().toUpperCase());
      if (!b) return null;
      if (!out.includes(b)) out.push(b);
    }
    return out;
  }

  restTicker(q, opts) {
    const books = this.pairs(q);
    if (!books) return { status: 200, body: { error: ['EQuery:Unknown asset pair'] } };
    const result = {};
    for (const b of books) {
      const s = opts.snap(b);
      const pd = Math.max(5, b.dp);
      const p = (x) => fixed(x, pd);
      const v = (x) => fixed(x, 8);
      const todayVol = s.volume * 0.6;
      result[b.names.krakenKey] = {
        a: opts.wrongTypes ? { price: p(s.ask) } : [p(s.ask), String(Math.max(1, Math.round(s.askQty))), fixed(s.askQty, 3)],
        b: opts.wrongTypes ? true : [p(s.bid), String(Math.max(1, Math.round(s.bidQty))), fixed(s.bidQty, 3)],
        c: [p(s.last), v(s.lastSize)],
        v: [v(todayVol), v(s.volume)],
        p: [p(s.quoteVolume / s.volume), p(s.quoteVolume / s.volume)],
        t: [Math.floor(s.count * 0.6), s.count],
        l: [p(s.low), p(s.low)],
        h: [p(s.high), p(s.high)],
        o: p(s.open),
      };
    }
    return { status: 200, body: { error: [], result }, data: true };
  }

  restAssetPairs(q) {
    const books = this.pairs(q);
    if (!books) return { status: 200, body: { error: ['EQuery:Unknown asset pair'] } };
    const result = {};
    for (const b of books) {
      const n = b.names;
      result[n.krakenKey] = {
        altname: n.krakenAlt, wsname: `${KRAKEN_ASSET[b.base] || b.base}/${b.quote}`,
        aclass_base: 'currency', base: n.krakenBase, aclass_quote: 'currency', quote: n.krakenQuote,
        pair_decimals: b.dp, cost_decimals: 5, lot_decimals: 8, status: 'online',
      };
    }
    return { status: 200, body: { error: [], result } };
  }

  faultBody(status) {
    if (status === 429) return { error: ['EAPI:Rate limit exceeded'] };
    return { error: ['EService:Unavailable'] };
  }

  // ---- WebSocket -----------------------------------------------------------------------------------

  onOpen(conn) {
    conn.subs = new Map();        // BTC/USD -> { event_trigger, snapshot }
    conn.dataSince = false;       // something other than a heartbeat went out in this heartbeat period
    conn.krakenId = KRAKEN_CONN_ID_BASE + BigInt(conn.id);
    this.sendStatus(conn, 'online');
  }

  /** The status message carries a uint64 connection_id, so it is built as text (no JSON number loss). */
  sendStatus(conn, system) {
    this.ex.sendCtl(conn, `{"channel":"status","data":[{"api_version":"v2","connection_id":${conn.krakenId},"system":"${system}","version":"2.0.0"}],"type":"update"}`);
  }

  onMessage(conn, text, recvMs) {
    const timeIn = rfc3339(recvMs);
    const reply = (obj) => this.ex.sendCtl(conn, { ...obj, time_in: timeIn, time_out: rfc3339(nowMs()) });
    let msg;
    try { msg = JSON.parse(text); } catch { reply({ error: 'EGeneral:Invalid arguments', success: false }); return; } // [FAKE]
    if (!msg || typeof msg !== 'object' || Array.isArray(msg)) { reply({ error: 'EGeneral:Invalid arguments', success: false }); return; }
    const method = msg.method;
    const rid = Number.isSafeInteger(msg.req_id) ? { req_id: msg.req_id } : {};
    if (method === 'ping') { reply({ method: 'pong', ...rid }); return; }
    if (method !== 'subscribe' && method !== 'unsubscribe') {
      reply({ error: 'EGeneral:Invalid arguments', method: typeof method === 'string' ? method.slice(0, 40) : undefined, ...rid, success: false });
      return;
    }
    const params = msg.params;
    const fail = (error, symbol) => reply({ error, method, ...rid, success: false, ...(symbol ? { symbol } : {}) });
    if (!params || typeof params !== 'object') { fail('EGeneral:Invalid arguments:params'); return; } // [FAKE] wording
    if (this.ex.o.strictFields) {
      const unknown = Object.keys(msg).find((k) => !KRAKEN_FIELDS.has(k)) ?? Object.keys(params).find((k) => !KRAKEN_TICKER_PARAMS.has(k));
      if (unknown !== undefined) { fail(`EGeneral:Invalid arguments:${unknown.slice(0, 40)} is not a valid field`); return; } // [FAKE] wording
      if (params.event_trigger !== undefined && params.event_trigger !== 'trades' && params.event_trigger !== 'bbo') { fail('EGeneral:Invalid arguments:event_trigger'); return; }
      if (params.snapshot !== undefined && typeof params.snapshot !== 'boolean') { fail('EGeneral:Invalid arguments:snapshot'); return; }
      if (msg.req_id !== undefined && !Number.isSafeInteger(msg.req_id)) { fail('EGeneral:Invalid arguments:req_id'); return; }
    }
    if (params.channel !== 'ticker') { fail(`EGeneral:Invalid arguments:channel ${String(params.channel).slice(0, 40)} not supported by fake-exchange`); return; } // [FAKE]
    const symbols = params.symbol;
    if (!Array.isArray(symbols) || symbols.length === 0 || symbols.length > 1000 || !symbols.every((s) => typeof s === 'string' && s.length <= 40)) {
      fail('EGeneral:Invalid arguments:symbol');
      return;
    }
    const trigger = params.event_trigger === 'bbo' ? 'bbo' : 'trades';
    const snapshot = params.snapshot !== false;
    const rejected = method === 'subscribe' ? this.ex.faults.take('kraken', 'reject_subscribe', 'ws') : null;
    for (const sym of new Set(symbols)) {
      const b = this.byWs.get(sym);
      if (rejected) { fail(rejected.reason || 'EService:Unavailable', sym); continue; }
      if (!b) { fail(`Currency pair not supported ${sym}`, sym); continue; }
      if (method === 'subscribe') {
        if (conn.subs.has(sym)) { fail('Already subscribed', sym); continue; }
        conn.subs.set(sym, { trigger, snapshot });
        reply({ method, ...rid, result: { channel: 'ticker', snapshot, symbol: sym }, success: true });
        if (snapshot) this.sendTicker(conn, b, 'snapshot');
      } else {
        const had = conn.subs.get(sym);
        if (!had) { fail('Subscription Not Found', sym); continue; }
        conn.subs.delete(sym);
        reply({ method, ...rid, result: { channel: 'ticker', event_trigger: had.trigger, symbol: sym }, success: true });
      }
    }
  }

  sendTicker(conn, b, type) {
    const sent = this.ex.sendData(conn, b, (s, o) => {
      const n = (x) => num(x, b.dp);
      const change = s.last - s.open;
      return {
        channel: 'ticker', type,
        data: [{
          symbol: b.names.krakenWs,
          bid: o.wrongTypes ? { price: n(s.bid) } : n(s.bid), bid_qty: num(s.bidQty, 8),
          ask: o.wrongTypes ? true : n(s.ask), ask_qty: num(s.askQty, 8),
          last: n(s.last), volume: num(s.volume, 8), vwap: n(s.quoteVolume / s.volume),
          low: n(s.low), high: n(s.high), change: n(change), change_pct: num((change / s.open) * 100, 2),
          timestamp: rfc3339(s.ts),
        }],
      };
    });
    if (sent) conn.dataSince = true;
  }

  onTick(changed) {
    for (const conn of this.ex.conns.kraken) {
      for (const b of changed) if (conn.subs.has(b.names.krakenWs)) this.sendTicker(conn, b, 'update');
    }
  }

  onHeartbeat() {
    for (const conn of this.ex.conns.kraken) {
      if (conn.subs.size > 0 && !conn.dataSince) this.ex.sendCtl(conn, { channel: 'heartbeat' });
      conn.dataSince = false;
    }
  }

  /** Maintenance status, then a close frame. [FAKE] sequence; the status values are documented. */
  shutdown(conn, graceMs) {
    this.sendStatus(conn, 'maintenance');
    conn.timers.push(setTimeout(() => this.ex.closeConn(conn, 1001, 'Going away'), graceMs));
  }
}

// =====================================================================================================
// OKX v5 (REST /api/v5/market/ticker(s), WebSocket /ws/v5/public)
// =====================================================================================================

const OKX_FIELDS = new Set(['op', 'args', 'id']);
const OKX_ARG_FIELDS = new Set(['channel', 'instId', 'instType', 'instFamily']);

/**
 * OKX v5 public: one `subscribe` event per arg, then a `tickers` push on every change; the text frame `ping`
 * is answered with `pong`; a client silent for okxIdleMs is closed. Errors are `{"event":"error",code,msg}`.
 */
class Okx {
  constructor(ex) {
    this.ex = ex;
    this.name = 'okx';
    this.byInst = new Map();
    for (const b of ex.books.values()) this.byInst.set(`${b.base}-${b.quote}`, b);
  }

  routes() {
    return {
      '/api/v5/market/ticker': (q, req, opts) => {
        const b = this.byInst.get(q.get('instId') || '');
        if (!b) return { status: 200, body: { code: '51001', msg: 'Instrument ID does not exist', data: [] } };
        return { status: 200, data: true, body: { code: '0', msg: '', data: [this.ticker(b, opts.snap(b), opts)] } };
      },
      '/api/v5/market/tickers': (q, req, opts) => {
        if (q.get('instType') !== 'SPOT') return { status: 200, body: { code: '51000', msg: 'Parameter instType error', data: [] } };
        return { status: 200, data: true, body: { code: '0', msg: '', data: [...this.byInst.values()].map((b) => this.ticker(b, opts.snap(b), opts)) } };
      },
    };
  }

  ticker(b, s, o) {
    const p = (x) => fixed(x, b.dp);
    return {
      instType: 'SPOT', instId: `${b.base}-${b.quote}`, last: p(s.last), lastSz: trimmed(s.lastSize, 8),
      askPx: o.wrongTypes ? s.ask : p(s.ask), askSz: trimmed(s.askQty, 8), bidPx: p(s.bid), bidSz: trimmed(s.bidQty, 8),
      open24h: p(s.open), high24h: p(s.high), low24h: p(s.low), volCcy24h: fixed(s.quoteVolume, 2), vol24h: fixed(s.volume, 8),
      ts: String(Math.floor(s.ts)), sodUtc0: p(s.open), sodUtc8: p(s.open),
    };
  }

  faultBody(status) {
    if (status === 429) return { msg: 'Too Many Requests', code: '50011' };
    return { msg: http.STATUS_CODES[status] || 'Error', code: '50001' };
  }

  onOpen(conn) {
    conn.subs = new Set();
    conn.connId = (0x10000000 + conn.id).toString(16).slice(-8);
    this.armIdle(conn);
  }

  /** OKX: "If there's no data return after connecting or subscribing, the connection breaks after 30 s." */
  armIdle(conn) {
    if (!(this.ex.o.okxIdleMs > 0)) return;
    if (conn.idle) clearTimeout(conn.idle);
    conn.idle = setTimeout(() => this.ex.closeConn(conn, 4004, 'No data received in 30s.'), this.ex.o.okxIdleMs);
    conn.timers.push(conn.idle);
  }

  error(conn, code, msg) { this.ex.sendCtl(conn, { event: 'error', code, msg, connId: conn.connId }); }

  onMessage(conn, text) {
    this.armIdle(conn);
    if (text === 'ping') { this.ex.sendCtl(conn, 'pong'); return; }
    let msg;
    try { msg = JSON.parse(text); } catch { this.error(conn, '60012', `Invalid request: ${text.slice(0, 100)}`); return; }
    const bad = () => this.error(conn, '60012', `Invalid request: ${text.slice(0, 200)}`);
    if (!msg || typeof msg !== 'object' || Array.isArray(msg)) { bad(); return; }
    if (msg.op !== 'subscribe' && msg.op !== 'unsubscribe') { bad(); return; }
    if (!Array.isArray(msg.args) || msg.args.length === 0) { bad(); return; }
    if (this.ex.o.strictFields) {
      if (Object.keys(msg).some((k) => !OKX_FIELDS.has(k))) { bad(); return; }
      if (msg.args.some((a) => !a || typeof a !== 'object' || Array.isArray(a) || Object.keys(a).some((k) => !OKX_ARG_FIELDS.has(k)))) { bad(); return; }
    }
    if (Buffer.byteLength(text) > 64 * 1024) { this.error(conn, '60014', 'Requests too frequent.'); return; } // [FAKE] code
    const rej = msg.op === 'subscribe' ? this.ex.faults.take('okx', 'reject_subscribe', 'ws') : null;
    for (const a of msg.args) {
      if (a.channel !== 'tickers' || typeof a.instId !== 'string') { this.error(conn, '60018', `Wrong URL or channel:${a.channel},instId:${a.instId} doesn't exist. Please use the correct URL, channel and parameters referring to API document.`); continue; }
      const b = this.byInst.get(a.instId);
      if (!b) { this.error(conn, '60018', `Wrong URL or channel:tickers,instId:${a.instId.slice(0, 40)} doesn't exist. Please use the correct URL, channel and parameters referring to API document.`); continue; }
      if (rej) { this.error(conn, '60018', rej.reason || 'subscribe rejected'); continue; }
      this.ex.sendCtl(conn, { event: msg.op, arg: { channel: 'tickers', instId: a.instId }, connId: conn.connId });
      if (msg.op === 'subscribe') { conn.subs.add(a.instId); this.sendTicker(conn, b); } else conn.subs.delete(a.instId);
    }
  }

  sendTicker(conn, b) {
    this.ex.sendData(conn, b, (s, o) => ({ arg: { channel: 'tickers', instId: `${b.base}-${b.quote}` }, data: [this.ticker(b, s, o)] }));
  }

  onTick(changed) {
    for (const conn of this.ex.conns.okx) for (const b of changed) if (conn.subs.has(`${b.base}-${b.quote}`)) this.sendTicker(conn, b);
  }

  onHeartbeat() {}

  /** The documented notice (64008), then a close. */
  shutdown(conn, graceMs) {
    this.ex.sendCtl(conn, { event: 'notice', code: '64008', msg: 'The connection will soon be closed for a service upgrade. Please reconnect.', connId: conn.connId });
    conn.timers.push(setTimeout(() => this.ex.closeConn(conn, 1001, 'Going away'), graceMs));
  }
}

// =====================================================================================================
// Bybit v5 spot (REST /v5/market/tickers, WebSocket /v5/public/spot)
// =====================================================================================================

const BYBIT_FIELDS = new Set(['op', 'args', 'req_id']);

/** Bybit spot: `tickers.<SYM>` (last, 24 h) and `orderbook.1.<SYM>` (top of book) on each change. */
class Bybit {
  constructor(ex) {
    this.ex = ex;
    this.name = 'bybit';
    this.bySym = new Map();
    for (const b of ex.books.values()) this.bySym.set(b.base + b.quote, b);
  }

  routes() {
    return {
      '/v5/market/tickers': (q, req, opts) => {
        if (q.get('category') !== 'spot') return { status: 200, body: { retCode: 10001, retMsg: 'Illegal category', result: {}, retExtInfo: {}, time: Date.now() } };
        const one = q.get('symbol');
        if (one !== null && !this.bySym.has(one)) return { status: 200, body: { retCode: 10001, retMsg: 'Not supported symbols', result: {}, retExtInfo: {}, time: Date.now() } };
        const books = one !== null ? [this.bySym.get(one)] : [...this.bySym.values()];
        const list = books.map((b) => {
          const s = opts.snap(b);
          const p = (x) => fixed(x, b.dp);
          return { symbol: b.base + b.quote, bid1Price: opts.wrongTypes ? s.bid : p(s.bid), bid1Size: trimmed(s.bidQty, 8), ask1Price: p(s.ask), ask1Size: trimmed(s.askQty, 8),
            lastPrice: p(s.last), prevPrice24h: p(s.open), price24hPcnt: fixed((s.last - s.open) / s.open, 4), highPrice24h: p(s.high), lowPrice24h: p(s.low),
            turnover24h: fixed(s.quoteVolume, 8), volume24h: fixed(s.volume, 8) };
        });
        return { status: 200, data: true, body: { retCode: 0, retMsg: 'OK', result: { category: 'spot', list }, retExtInfo: {}, time: Math.floor(nowMs()) } };
      },
    };
  }

  faultBody(status) { return { retCode: 10006, retMsg: status === 429 ? 'Too many visits!' : (http.STATUS_CODES[status] || 'Error') }; }

  onOpen(conn) {
    conn.subs = new Set();
    conn.connId = `bybit-${conn.id}`;
    this.armIdle(conn);
  }

  armIdle(conn) {
    if (!(this.ex.o.bybitIdleMs > 0)) return;
    if (conn.idle) clearTimeout(conn.idle);
    conn.idle = setTimeout(() => this.ex.closeConn(conn, 1000, 'idle'), this.ex.o.bybitIdleMs); // [FAKE] code
    conn.timers.push(conn.idle);
  }

  reply(conn, op, success, retMsg, reqId) {
    this.ex.sendCtl(conn, { success, ret_msg: retMsg, conn_id: conn.connId, ...(reqId !== undefined ? { req_id: reqId } : {}), op });
  }

  onMessage(conn, text) {
    this.armIdle(conn);
    let msg;
    try { msg = JSON.parse(text); } catch { this.reply(conn, 'subscribe', false, 'Invalid JSON'); return; } // [FAKE] wording
    if (!msg || typeof msg !== 'object' || Array.isArray(msg)) { this.reply(conn, 'subscribe', false, 'Invalid JSON'); return; }
    if (msg.op === 'ping') { this.reply(conn, 'ping', true, 'pong', msg.req_id); return; }
    if (msg.op !== 'subscribe' && msg.op !== 'unsubscribe') { this.reply(conn, String(msg.op).slice(0, 20), false, `Invalid op`, msg.req_id); return; } // [FAKE]
    if (this.ex.o.strictFields && Object.keys(msg).some((k) => !BYBIT_FIELDS.has(k))) { this.reply(conn, msg.op, false, 'Invalid request', msg.req_id); return; } // [FAKE] wording
    const args = msg.args;
    if (!Array.isArray(args) || args.length === 0 || !args.every((a) => typeof a === 'string')) { this.reply(conn, msg.op, false, 'Invalid args', msg.req_id); return; }
    if (args.length > this.ex.o.bybitMaxArgs) { this.reply(conn, msg.op, false, `args size >${this.ex.o.bybitMaxArgs}`, msg.req_id); return; }
    const bad = args.find((a) => { const m = /^(tickers|orderbook\.1)\.([A-Z0-9]+)$/.exec(a); return !m || !this.bySym.has(m[2]); });
    if (bad !== undefined) { this.reply(conn, msg.op, false, `Invalid symbol :[${bad.slice(0, 60)}]`, msg.req_id); return; }
    const rej = msg.op === 'subscribe' ? this.ex.faults.take('bybit', 'reject_subscribe', 'ws') : null;
    if (rej) { this.reply(conn, msg.op, false, rej.reason || 'rejected', msg.req_id); return; }
    this.reply(conn, msg.op, true, '', msg.req_id);
    for (const a of args) {
      if (msg.op === 'unsubscribe') { conn.subs.delete(a); continue; }
      conn.subs.add(a);
      const sym = a.replace(/^(tickers|orderbook\.1)\./, '');
      this.send(conn, this.bySym.get(sym), a.startsWith('tickers.') ? 'tickers' : 'book');
    }
  }

  send(conn, b, kind) {
    const sym = b.base + b.quote;
    this.ex.sendData(conn, b, (s, o) => {
      const p = (x) => fixed(x, b.dp);
      if (kind === 'tickers') {
        return { topic: `tickers.${sym}`, ts: Math.floor(s.ts), type: 'snapshot', cs: s.bnU,
          data: { symbol: sym, lastPrice: o.wrongTypes ? s.last : p(s.last), highPrice24h: p(s.high), lowPrice24h: p(s.low), prevPrice24h: p(s.open),
            volume24h: fixed(s.volume, 8), turnover24h: fixed(s.quoteVolume, 8), price24hPcnt: fixed((s.last - s.open) / s.open, 4) } };
      }
      return { topic: `orderbook.1.${sym}`, type: 'snapshot', ts: Math.floor(s.ts),
        data: { s: sym, b: [[o.wrongTypes ? s.bid : p(s.bid), trimmed(s.bidQty, 8)]], a: [[p(s.ask), trimmed(s.askQty, 8)]], u: s.version, seq: s.bnU }, cts: Math.floor(s.ts) };
    });
  }

  onTick(changed) {
    for (const conn of this.ex.conns.bybit) {
      for (const b of changed) {
        const sym = b.base + b.quote;
        if (conn.subs.has(`orderbook.1.${sym}`)) this.send(conn, b, 'book');
        if (conn.subs.has(`tickers.${sym}`)) this.send(conn, b, 'tickers');
      }
    }
  }

  onHeartbeat() {}

  shutdown(conn) { this.ex.closeConn(conn, 1001, 'Going away'); } // [FAKE]
}

// =====================================================================================================
// Bitstamp v2 (REST /api/v2/ticker/<pair>/, WebSocket wss://ws.bitstamp.net at /)
// =====================================================================================================

// Top-level and `data` fields of a client message (docs: {"event":"bts:subscribe","data":{"channel":...}};
// `auth` carries the token of private channels).
const BITSTAMP_FIELDS = new Set(['event', 'data']);
const BITSTAMP_DATA_FIELDS = new Set(['channel', 'auth']);
// Documented public channel kinds. Only live_trades and order_book carry data here; the others are
// accepted and stay silent. [FAKE]
const BITSTAMP_CHANNEL_RE = /^(live_trades|live_orders|order_book|detail_order_book|full_order_book|diff_order_book)_([a-z0-9]{2,20})$/;
const BITSTAMP_BOOK_DEPTH = 10;     // levels per side in order_book pushes (the venue sends 100) [FAKE]

/**
 * Bitstamp v2: `bts:subscribe` per channel, answered with `bts:subscription_succeeded`; `live_trades_<pair>`
 * pushes a `trade` event per trade, `order_book_<pair>` a `data` event with the top of the book on every
 * change (and at once after the subscribe). The client's `{"event":"bts:heartbeat"}` is answered. Errors are
 * `{"event":"bts:error","channel":…,"data":{"code":null,"message":…}}`. `bts:request_reconnect` precedes a
 * server-side close. REST and WS upgrades share the documented request budget (400/s, 10,000 per 10 min).
 */
class Bitstamp {
  constructor(ex) {
    this.ex = ex;
    this.name = 'bitstamp';
    this.byPair = new Map();    // btcusd -> Book
    for (const b of ex.books.values()) this.byPair.set((b.base + b.quote).toLowerCase(), b);
    this.budget = { sec: [], tenMin: [] };
  }

  // ---- REST ----------------------------------------------------------------------------------------

  routes() { return {}; }   // /api/v2/ticker/<pair>/ is matched by pattern in onRequest

  /** GET /api/v2/ticker/<pair>/: decimal strings, `timestamp` in epoch seconds; the pair is not in the body. */
  restTicker(pair, req, opts) {
    const b = this.byPair.get(pair);
    if (!b) return { status: 404, body: { message: 'Not Found' } };
    const s = opts.snap(b);
    const p = (x) => fixed(x, b.dp);
    return {
      status: 200,
      data: true,
      body: {
        timestamp: String(Math.floor(s.ts / 1000)), open: p(s.open), high: p(s.high), low: p(s.low),
        last: opts.wrongTypes ? { value: p(s.last) } : p(s.last), volume: fixed(s.volume, 8),
        vwap: p(s.quoteVolume / s.volume), bid: opts.wrongTypes ? true : p(s.bid), ask: p(s.ask),
        side: s.side === 'buy' ? '0' : '1', open_24: p(s.open), percent_change_24: fixed(((s.last - s.open) / s.open) * 100, 2),
      },
    };
  }

  /** The documented rate-limit response code (400.002); the body's shape is [FAKE]. */
  faultBody(status) {
    if (status === 429) return { message: 'Request rejected due to exceeded rate limit.', code: '400.002' };
    return { message: http.STATUS_CODES[status] || 'Error' };
  }

  /**
   * One request (REST or WS upgrade) against the per-IP budget: 400 per second and 10,000 per 10 minutes
   * (the docs: WebSocket connections follow the same policy). Returns the refusal body or null.
   */
  limited() {
    const o = this.ex.o;
    const now = Date.now();
    const windows = [[this.budget.sec, 1000, o.bitstampMaxRequestsPerSec], [this.budget.tenMin, 600000, o.bitstampMaxRequestsPer10Min]];
    for (const [t, span, max] of windows) {
      while (t.length && t[0] <= now - span) t.shift();
      if (max > 0 && t.length >= max) return this.faultBody(429);
    }
    for (const [t, , max] of windows) if (max > 0) t.push(now);
    return null;
  }

  // ---- WebSocket -----------------------------------------------------------------------------------

  onOpen(conn) {
    conn.subs = new Set();        // channel names
    this.armIdle(conn);
    // "Maximum connection age is 90 days": then the venue disconnects. Timers cannot exceed 2^31-1 ms.
    const age = this.ex.o.bitstampMaxConnMs;
    if (age > 0 && age <= 0x7fffffff) conn.timers.push(setTimeout(() => this.shutdown(conn, 50), age));
  }

  /** [FAKE] option: Bitstamp documents no idle close; bitstampIdleMs > 0 closes a client silent that long. */
  armIdle(conn) {
    if (!(this.ex.o.bitstampIdleMs > 0)) return;
    if (conn.idle) clearTimeout(conn.idle);
    conn.idle = setTimeout(() => this.ex.closeConn(conn, 1000, 'idle'), this.ex.o.bitstampIdleMs); // [FAKE] code
    conn.timers.push(conn.idle);
  }

  error(conn, message, channel = '') {
    this.ex.sendCtl(conn, { event: 'bts:error', channel, data: { code: null, message } });
  }

  onMessage(conn, text) {
    this.armIdle(conn);
    let msg;
    try { msg = JSON.parse(text); } catch { this.error(conn, 'Incorrect JSON format.'); return; }
    if (!msg || typeof msg !== 'object' || Array.isArray(msg) || typeof msg.event !== 'string') { this.error(conn, 'Incorrect JSON format.'); return; }
    const strict = this.ex.o.strictFields;
    if (strict && Object.keys(msg).some((k) => !BITSTAMP_FIELDS.has(k))) { this.error(conn, 'Bad subscription string.'); return; } // [FAKE] wording
    if (msg.event === 'bts:heartbeat') {
      if (strict && msg.data !== undefined) { this.error(conn, 'Bad subscription string.'); return; } // [FAKE]
      this.ex.sendCtl(conn, { event: 'bts:heartbeat', channel: '', data: { status: 'success' } });
      return;
    }
    if (msg.event !== 'bts:subscribe' && msg.event !== 'bts:unsubscribe') { this.error(conn, 'Bad subscription string.'); return; } // [FAKE]
    const d = msg.data;
    if (!d || typeof d !== 'object' || Array.isArray(d) || typeof d.channel !== 'string') { this.error(conn, 'Bad subscription string.'); return; } // [FAKE]
    if (strict && Object.keys(d).some((k) => !BITSTAMP_DATA_FIELDS.has(k))) { this.error(conn, 'Bad subscription string.', d.channel.slice(0, 80)); return; } // [FAKE]
    const m = BITSTAMP_CHANNEL_RE.exec(d.channel);
    if (!m || !this.byPair.has(m[2])) { this.error(conn, 'Bad subscription string.', d.channel.slice(0, 80)); return; } // [FAKE] wording
    const sub = msg.event === 'bts:subscribe';
    if (sub) {
      const rej = this.ex.faults.take('bitstamp', 'reject_subscribe', 'ws');
      if (rej) { this.error(conn, rej.reason || 'Bad subscription string.', d.channel); return; }
    }
    if (sub) conn.subs.add(d.channel); else conn.subs.delete(d.channel);
    this.ex.sendCtl(conn, { event: sub ? 'bts:subscription_succeeded' : 'bts:unsubscription_succeeded', channel: d.channel, data: {} });
    if (sub && m[1] === 'order_book') this.sendBook(conn, this.byPair.get(m[2]));
  }

  sendTrade(conn, b) {
    const pair = (b.base + b.quote).toLowerCase();
    this.ex.sendData(conn, b, (s, o) => ({
      data: {
        id: s.tradeId, timestamp: String(Math.floor(s.ts / 1000)), amount: num(s.lastSize, 8), amount_str: fixed(s.lastSize, 8),
        price: num(s.last, b.dp), price_str: o.wrongTypes ? { value: fixed(s.last, b.dp) } : trimmed(s.last, b.dp),
        type: s.side === 'buy' ? 0 : 1, microtimestamp: String(Math.floor(s.ts * 1000)),
        buy_order_id: 1600000000000000 + s.tradeId * 2, sell_order_id: 1600000000000001 + s.tradeId * 2,
      },
      channel: `live_trades_${pair}`, event: 'trade',
    }));
  }

  sendBook(conn, b) {
    const pair = (b.base + b.quote).toLowerCase();
    this.ex.sendData(conn, b, (s, o) => {
      const tick = 1 / b.scale;
      const level = (px, qty, i) => [fixed(px, b.dp), fixed(qty * (1 + i * 0.37), 8)];
      const bids = [];
      const asks = [];
      for (let i = 0; i < BITSTAMP_BOOK_DEPTH; i++) {
        if (s.bid - i * tick > 0) bids.push(level(s.bid - i * tick, s.bidQty, i));
        asks.push(level(s.ask + i * tick, s.askQty, i));
      }
      if (o.wrongTypes) bids[0][0] = s.bid;
      return { data: { timestamp: String(Math.floor(s.ts / 1000)), microtimestamp: String(Math.floor(s.ts * 1000)), bids, asks }, channel: `order_book_${pair}`, event: 'data' };
    });
  }

  onTick(changed) {
    for (const conn of this.ex.conns.bitstamp) {
      for (const b of changed) {
        const pair = (b.base + b.quote).toLowerCase();
        if (conn.subs.has(`live_trades_${pair}`)) this.sendTrade(conn, b);
        if (conn.subs.has(`order_book_${pair}`)) this.sendBook(conn, b);
      }
    }
  }

  onHeartbeat() {}

  /** The documented `bts:request_reconnect`, then a close after graceMs. [FAKE] close code */
  shutdown(conn, graceMs) {
    this.ex.sendCtl(conn, { event: 'bts:request_reconnect', channel: '', data: '' });
    conn.timers.push(setTimeout(() => this.ex.closeConn(conn, 1001, 'Going away'), graceMs));
  }
}

// =====================================================================================================
// CoinGecko
// =====================================================================================================

/** CoinGecko /api/v3/simple/price: ids -> { usd, usd_market_cap?, usd_24h_vol?, usd_24h_change?, last_updated_at? }. */
class CoinGecko {
  constructor(ex) {
    this.ex = ex;
    this.name = 'coingecko';
    this.byId = new Map();   // bitcoin -> Book (X-USD preferred, else X-USDT)
    for (const b of ex.books.values()) {
      const cur = this.byId.get(b.names.geckoId);
      if (!cur || (cur.quote !== 'USD' && b.quote === 'USD')) this.byId.set(b.names.geckoId, b);
    }
  }

  routes() {
    return { '/api/v3/simple/price': (q, req, opts) => this.restPrice(q, req, opts) };
  }

  restPrice(q, req, opts) {
    if (this.ex.o.coingeckoRequireUserAgent && !req.headers['user-agent']) {
      return {
        status: 403,
        text: 'Please add a descriptive User-Agent to your request. For higher rate limits & stable integration, please subscribe to our API plans: https://www.coingecko.com/en/api/pricing',
      };
    }
    const ids = q.get('ids');
    const vs = q.get('vs_currencies');
    if (!ids) return { status: 400, body: { error: 'Missing parameter ids' } };            // [FAKE] wording
    if (!vs) return { status: 400, body: { error: 'Missing parameter vs_currencies' } };   // [FAKE] wording
    const flag = (k) => q.get(k) === 'true';
    const out = {};
    for (const id of ids.split(',').map((s) => s.trim().toLowerCase()).slice(0, 500)) {
      const b = this.byId.get(id);
      if (!b) continue;                                  // unknown ids are left out
      const s = opts.snap(b);
      const entry = {};
      for (const cur of vs.split(',').map((x) => x.trim().toLowerCase())) {
        if (cur !== 'usd') continue;                     // only usd is modelled; others are left out
        const price = num(b.midPrice(s), b.dp + 1);
        entry.usd = opts.wrongTypes ? { value: price } : price;
        if (flag('include_market_cap')) entry.usd_market_cap = num(price * (GECKO_SUPPLY[b.base] || 1e9), 2);
        if (flag('include_24hr_vol')) entry.usd_24h_vol = opts.wrongTypes ? true : num(s.quoteVolume * 40, 4);
        if (flag('include_24hr_change')) entry.usd_24h_change = ((s.last - s.open) / s.open) * 100;
      }
      if (flag('include_last_updated_at')) entry.last_updated_at = Math.floor(s.ts / 1000);
      out[id] = entry;
    }
    return { status: 200, body: out, data: true };
  }

  faultBody(status) {
    if (status === 429) {
      return { status: { error_code: 429, error_message: "You've exceeded the Rate Limit. Please visit https://www.coingecko.com/en/api/pricing to subscribe to our API plans for higher rate limits." } };
    }
    return { status: { error_code: status, error_message: http.STATUS_CODES[status] || 'Error' } };
  }
}

// =====================================================================================================
// custom: a made-up REST shape for the generic JSON mapper (not a real venue)
// =====================================================================================================

/**
 * Two shapes no preset reads, for tickerd's "venue": "generic" tests:
 *   GET /custom/quotes?ids=BTC-USD,ETH-USD → {"ok":true,"result":{"quotes":[{"sym","px":{"last","bid","ask"} (strings),
 *       "vol24" (number),"updated" (epoch ms)}]}}; an unknown id → HTTP 200 {"ok":false,"error":{"message":…}}
 *   GET /custom/quote/<SYMBOL> → {"data":[{"c","b","a" (numbers),"t" (RFC3339)}]}; unknown → 404 {"error":"no such symbol"}
 *   WS /custom/ws: {"action":"subscribe","symbols":["BTC-USD",…]} (exactly these two members) →
 *       {"type":"subscribed","symbols":[…]}, then {"type":"tick","data":{"sym","px":{"last","bid","ask"},"vol24",
 *       "updated"}} per change (the /custom/quotes quote); anything else → {"type":"error","message":…}
 */
class Custom {
  constructor(ex) {
    this.ex = ex;
    this.name = 'custom';
  }

  routes() {
    return {
      '/quotes': (q, req, opts) => {
        const ids = (q.get('ids') || '').split(',').filter(Boolean);
        const unknown = ids.find((id) => !this.ex.books.has(id));
        if (!ids.length || unknown !== undefined) return { status: 200, body: { ok: false, error: { message: `unknown id ${String(unknown ?? '').slice(0, 40)}` } } };
        const quotes = ids.map((id) => {
          const b = this.ex.books.get(id);
          return this.quote(b, opts.snap(b), opts);
        });
        return { status: 200, data: true, body: { ok: true, result: { quotes } } };
      },
    };
  }

  /** GET /custom/quote/<SYMBOL>. */
  one(id, opts) {
    const b = this.ex.books.get(id);
    if (!b) return { status: 404, body: { error: 'no such symbol' } };
    const s = opts.snap(b);
    const n = (x) => num(x, b.dp);
    return { status: 200, data: true, body: { data: [{ c: opts.wrongTypes ? String(n(s.last)) + 'x' : n(s.last), b: n(s.bid), a: n(s.ask), t: rfc3339(s.ts) }] } };
  }

  faultBody(status) { return { ok: false, error: { message: http.STATUS_CODES[status] || 'Error' } }; }

  quote(b, s, o) {
    const p = (x) => fixed(x, b.dp);
    return { sym: b.symbol, px: { last: o.wrongTypes ? { v: p(s.last) } : p(s.last), bid: p(s.bid), ask: p(s.ask) }, vol24: num(s.volume, 4), updated: Math.floor(s.ts) };
  }

  onOpen(conn) { conn.subs = new Set(); }

  onMessage(conn, text) {
    let msg;
    try { msg = JSON.parse(text); } catch { msg = null; }
    const keys = msg && typeof msg === 'object' && !Array.isArray(msg) ? Object.keys(msg).sort().join() : '';
    if (keys !== 'action,symbols' || msg.action !== 'subscribe' || !Array.isArray(msg.symbols) || !msg.symbols.length) {
      this.ex.sendCtl(conn, { type: 'error', message: `bad request: ${text.slice(0, 100)}` });
      return;
    }
    const unknown = msg.symbols.find((id) => typeof id !== 'string' || !this.ex.books.has(id));
    const rej = this.ex.faults.take('custom', 'reject_subscribe', 'ws');
    if (unknown !== undefined || rej) {
      this.ex.sendCtl(conn, { type: 'error', message: rej ? (rej.reason || 'subscribe rejected') : `unknown symbol ${String(unknown).slice(0, 40)}` });
      return;
    }
    this.ex.sendCtl(conn, { type: 'subscribed', symbols: msg.symbols });
    for (const id of msg.symbols) { conn.subs.add(id); this.sendTick(conn, this.ex.books.get(id)); }
  }

  sendTick(conn, b) { this.ex.sendData(conn, b, (s, o) => ({ type: 'tick', data: this.quote(b, s, o) })); }

  onTick(changed) {
    for (const conn of this.ex.conns.custom) for (const b of changed) if (conn.subs.has(b.symbol)) this.sendTick(conn, b);
  }

  onHeartbeat() {}

  shutdown(conn, graceMs) { conn.timers.push(setTimeout(() => this.ex.closeConn(conn, 1001, 'Going away'), graceMs)); }
}

// =====================================================================================================
// The exchange: HTTP server, routing, connection bookkeeping, send pipeline, faults, control endpoints
// =====================================================================================================

class FakeExchange {
  constructor(options = {}) {
    this.o = { ...DEFAULTS, ...options };
    for (const k of Object.keys(DEFAULTS)) if (this.o[k] === undefined) this.o[k] = DEFAULTS[k];
    this.seed = String(this.o.seed);
    this.books = new Map();
    for (const spec of this.o.symbols) {
      const sym = typeof spec === 'string' ? spec : spec && spec.symbol;
      if (typeof sym !== 'string' || !/^[A-Z0-9]{2,10}-[A-Z0-9]{2,10}$/.test(sym)) throw new Error(`bad symbol ${JSON.stringify(spec)} (want BASE-QUOTE)`);
      const base = sym.split('-')[0];
      const price = typeof spec === 'object' && spec.price > 0 ? spec.price : BASE_PRICES[base] || 100;
      this.books.set(sym, new Book(sym, price, this.seed));
    }
    this.conns = { binance: new Set(), coinbase: new Set(), kraken: new Set(), okx: new Set(), bybit: new Set(), bitstamp: new Set(), custom: new Set() };
    this.stats = {
      connectionsTotal: { binance: 0, coinbase: 0, kraken: 0, okx: 0, bybit: 0, bitstamp: 0, custom: 0 },
      messagesSent: { binance: 0, coinbase: 0, kraken: 0, okx: 0, bybit: 0, bitstamp: 0, custom: 0 },
      messagesReceived: { binance: 0, coinbase: 0, kraken: 0, okx: 0, bybit: 0, bitstamp: 0, custom: 0 },
      requestsServed: { binance: 0, coinbase: 0, kraken: 0, coingecko: 0, okx: 0, bybit: 0, bitstamp: 0, custom: 0 },
      slowConsumersDropped: 0,
    };
    this.faults = new FaultBook(this);
    this.venues = { binance: new Binance(this), coinbase: new Coinbase(this), kraken: new Kraken(this), coingecko: new CoinGecko(this), okx: new Okx(this), bybit: new Bybit(this), bitstamp: new Bitstamp(this), custom: new Custom(this) };
    if (this.o.rootWsVenue !== 'coinbase' && this.o.rootWsVenue !== 'bitstamp') throw new Error('rootWsVenue must be coinbase or bitstamp');
    this.routes = new Map();   // path -> [venue, handler]
    for (const v of ['binance', 'kraken', 'coingecko', 'okx', 'bybit', 'custom']) {
      for (const [p, h] of Object.entries(this.venues[v].routes())) this.routes.set(p, [v, h]);
    }
    this.lastBody = {};        // venue -> last data body (for the REST duplicate fault)
    this.requestLog = [];      // bounded: what clients sent (request line, headers, first WS messages)
    this.connTimes = { binance: [], okx: [] };                  // Binance connection attempts in the last 5 minutes
    this.cbBucket = { tokens: this.o.coinbaseConnBurst, at: Date.now() };
    this.cbMsgs = { second: 0, n: 0 };
    this.held = [];            // REST requests held by a stall
    this.timers = new Set();
    this.nextConnId = 1;
    this.ticks = 0;
    this.startedAt = Date.now();
    this.closed = false;
  }

  // ---- lifecycle -----------------------------------------------------------------------------------

  async listen() {
    this.server = http.createServer((req, res) => this.onRequest(req, res));
    this.server.on('upgrade', (req, socket, head) => this.onUpgrade(req, socket, head));
    this.server.on('clientError', (err, socket) => { try { socket.destroy(); } catch { /* gone */ } });
    this.server.keepAliveTimeout = 5000;
    this.wss = new WebSocketServer({
      noServer: true, maxPayload: this.o.maxPayload, perMessageDeflate: false, autoPong: false, clientTracking: false,
    });
    this.wss.on('error', noop);
    await new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.o.port, this.o.host, () => { this.server.off('error', reject); resolve(); });
    });
    this.server.on('error', noop);
    this.port = this.server.address().port;
    if (this.o.tickMs > 0) this.interval(() => this.tick(1), this.o.tickMs);
    if (this.o.heartbeatMs > 0) this.interval(() => this.heartbeat(), this.o.heartbeatMs);
    return this;
  }

  interval(fn, ms) {
    const t = setInterval(() => { try { fn(); } catch (e) { this.oops(e); } }, ms);
    this.timers.add(t);
    return t;
  }

  setTimer(fn, ms) {
    const t = setTimeout(() => { this.timers.delete(t); try { fn(); } catch (e) { this.oops(e); } }, ms);
    this.timers.add(t);
    return t;
  }

  /** Internal errors are reported, never thrown into the event loop. */
  oops(e) { if (!this.closed) process.stderr.write(`fake-exchange: internal error: ${e && e.stack || e}\n`); }

  async close() {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) { clearInterval(t); clearTimeout(t); }
    this.timers.clear();
    for (const set of Object.values(this.conns)) for (const c of set) this.dropConn(c, true);
    for (const h of this.held.splice(0)) { try { h.res.destroy(); } catch { /* gone */ } }
    await new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  // ---- market clock --------------------------------------------------------------------------------

  /** Advance the random walk n steps, pushing change-driven messages after each. */
  tick(n = 1) {
    for (let i = 0; i < n; i++) {
      this.ticks += 1;
      const changed = [];
      for (const b of this.books.values()) if (b.step()) changed.push(b);
      if (changed.length === 0) continue;
      for (const v of WS_VENUES) this.venues[v].onTick(changed);
    }
  }

  /** Once per heartbeatMs: background sequence activity and periodic messages. */
  heartbeat() {
    for (const b of this.books.values()) b.background();
    for (const v of WS_VENUES) this.venues[v].onHeartbeat();
  }

  // ---- WebSocket plumbing ------------------------------------------------------------------------

  /** Which venue serves a WS path (after an optional /binance, /coinbase or /kraken prefix). */
  wsVenue(pathname) {
    const { venue: forced, rest } = stripVenuePrefix(pathname);
    let v = null;
    if (forced === 'custom') v = rest === '/ws' ? 'custom' : null;
    else if (rest === '/ws/v5/public') v = 'okx';
    else if (rest === '/v5/public/spot') v = 'bybit';
    else if (rest === '/stream' || rest === '/stream/' || rest === '/ws' || rest === '/ws/' || rest.startsWith('/ws/')) v = 'binance';
    else if (rest === '/v2' || rest === '/v2/') v = 'kraken';
    else if (rest === '/') v = this.o.rootWsVenue;
    else if (rest === '/coinbase') v = 'coinbase';
    if ((forced === 'coinbase' || forced === 'bitstamp') && rest === '/') v = forced;
    if (forced && v !== forced) return null;
    return v ? { venue: v, pathname: rest } : null;
  }

  refuse(socket, status, body) {
    const text = JSON.stringify(body);
    try {
      socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: application/json;charset=UTF-8\r\n` +
        `Content-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`);
    } catch { /* gone */ }
    setTimeout(() => { try { socket.destroy(); } catch { /* gone */ } }, 100).unref();
  }

  onUpgrade(req, socket, head) {
    socket.on('error', noop);
    try {
      const { pathname, params } = splitTarget(req.url);
      const route = this.wsVenue(pathname);
      if (this.closed) { socket.destroy(); return; }
      const entry = this.logRequest(req, 'ws', route ? route.venue : null);
      const refuse = (status, body) => { entry.status = status; this.refuse(socket, status, body); };
      const hostErr = this.checkHost(req);
      if (hostErr) { refuse(400, { error: hostErr }); return; }
      if (!route) { refuse(404, { error: 'no WebSocket endpoint here', path: pathname.slice(0, 200) }); return; }
      const limited = this.connectionLimited(route.venue);
      if (limited) { refuse(429, limited); return; }
      const open = Object.values(this.conns).reduce((n, s) => n + s.size, 0);
      if (open >= this.o.maxConnections) { refuse(503, { error: 'too many connections' }); return; }
      if (route.venue === 'binance') {
        const refusal = this.venues.binance.refuseUpgrade(route.pathname, params);
        if (refusal) { refuse(refusal[0], refusal[1]); return; }
      }
      entry.status = 101;
      this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(route.venue, ws, route.pathname, params, entry));
    } catch (e) {
      this.oops(e);
      try { socket.destroy(); } catch { /* gone */ }
    }
  }

  onConnection(venue, ws, pathname, params, entry) {
    const conn = { id: this.nextConnId++, venue, ws, openedAt: Date.now(), timers: [], closed: false };
    if (entry) entry.conn = conn.id;
    this.conns[venue].add(conn);
    this.stats.connectionsTotal[venue] += 1;
    const v = this.venues[venue];
    ws.on('error', noop);
    ws.on('close', () => this.dropConn(conn, false));
    ws.on('ping', (data) => {
      if (venue === 'binance' && !v.onPing(conn)) return;
      if (!this.faults.stalled(venue, 'ws')) { try { ws.pong(data); } catch { /* closing */ } }
    });
    ws.on('message', (data, isBinary) => {
      const recvMs = nowMs();
      this.stats.messagesReceived[venue] += 1;
      if (entry && entry.received.length < 20) entry.received.push(isBinary ? '(binary)' : data.toString('utf8').slice(0, 65536));
      if (venue === 'coinbase' && this.coinbaseFlooded(conn)) return;
      try {
        if (isBinary) {
          // None of the venues speaks binary from clients; treat it as an unparseable text message.
          v.onMessage(conn, '\u0000', recvMs);
          return;
        }
        v.onMessage(conn, data.toString('utf8'), recvMs);
      } catch (e) { this.oops(e); }
    });
    try { v.onOpen(conn, pathname, params); } catch (e) { this.oops(e); }
  }

  /** Forget a connection and its timers; `hard` also destroys the socket. */
  dropConn(conn, hard) {
    if (!conn.closed) {
      conn.closed = true;
      for (const t of conn.timers) { clearTimeout(t); clearInterval(t); }
      conn.timers = [];
      if (conn.pongDeadline) clearTimeout(conn.pongDeadline);
      this.conns[conn.venue].delete(conn);
    }
    if (hard) { try { conn.ws.terminate(); } catch { /* gone */ } }
  }

  /** Close with a close frame; a peer that does not answer is cut off after a second. */
  closeConn(conn, code, reason) {
    if (conn.ws.readyState !== WebSocket.OPEN) return;
    try { conn.ws.close(code, reason); } catch { /* gone */ }
    this.setTimer(() => { try { conn.ws.terminate(); } catch { /* gone */ } }, 1000);
  }

  /** Send one text frame. Nothing goes out while the venue's WS is stalled. Returns true if sent. */
  sendRaw(conn, text) {
    const ws = conn.ws;
    if (conn.closed || ws.readyState !== WebSocket.OPEN) return false;
    if (this.faults.stalled(conn.venue, 'ws')) return false;
    if (ws.bufferedAmount > this.o.maxBufferedBytes) {
      this.stats.slowConsumersDropped += 1;
      this.dropConn(conn, true);
      return false;
    }
    try { ws.send(text); } catch { return false; }
    this.stats.messagesSent[conn.venue] += 1;
    return true;
  }

  /** Control messages (acks, errors, heartbeats, status): never altered by message faults. */
  sendCtl(conn, msg) { return this.sendRaw(conn, typeof msg === 'string' ? msg : JSON.stringify(msg)); }

  /**
   * A market-data message about book `b`. `render(snapshot, {wrongTypes, old})` builds the message; the
   * venue's message faults decide how it goes out: wrong_types (render with bad types), huge_frame (pad to
   * size bytes), malformed (cut in half), duplicate (send twice), out_of_order (follow with a message built
   * from an older snapshot). Returns true if something was sent.
   */
  sendData(conn, b, render) {
    if (conn.closed || conn.ws.readyState !== WebSocket.OPEN || this.faults.stalled(conn.venue, 'ws')) return false;
    const fx = this.faults.hasMessageFaults(conn.venue, 'ws') ? this.faults.takeMessageFaults(conn.venue, 'ws') : {};
    let text = JSON.stringify(render(b.current, { wrongTypes: !!fx.wrong_types, old: false }));
    if (fx.huge_frame) text = padJson(text, fx.huge_frame.size);
    if (fx.malformed) text = corruptJson(text);
    const sent = this.sendRaw(conn, text);
    if (fx.duplicate) this.sendRaw(conn, text);
    if (fx.out_of_order) this.sendRaw(conn, JSON.stringify(render(b.older(), { wrongTypes: false, old: true })));
    return sent;
  }

  // ---- REST plumbing -------------------------------------------------------------------------------

  onRequest(req, res) {
    res.on('error', noop);
    req.on('error', noop);
    try {
      const { pathname, params } = splitTarget(req.url);
      if (pathname === '/_fault') { this.controlFault(req, res); return; }
      if (pathname === '/_state') { this.json(res, 200, this.state()); return; }
      const { venue: forced, rest } = stripVenuePrefix(pathname);
      const entry = this.logRequest(req, 'rest', forced);
      const hostErr = this.checkHost(req);
      if (hostErr) { entry.status = 400; this.json(res, 400, { error: hostErr }); return; }
      let route = this.routes.get(rest);
      const cb = /^\/products\/([^/]{1,64})\/ticker$/.exec(rest);
      if (cb) route = ['coinbase', (q, r, opts) => this.venues.coinbase.restTicker(decodeURIComponentSafe(cb[1]), r, opts)];
      const bs = /^\/api\/v2\/ticker\/([^/]{1,64})\/$/.exec(rest);
      if (bs) route = ['bitstamp', (q, r, opts) => this.venues.bitstamp.restTicker(decodeURIComponentSafe(bs[1]), r, opts)];
      const cu = forced === 'custom' && /^\/quote\/([^/]{1,64})$/.exec(rest);
      if (route && route[0] === 'custom' && forced !== 'custom') route = null;   // only under its /custom prefix
      if (cu) route = ['custom', (q, r, opts) => this.venues.custom.one(decodeURIComponentSafe(cu[1]), opts)];
      if (forced === 'coingecko' && rest === '/api/v3/ping') route = ['coingecko', () => ({ status: 200, body: { gecko_says: '(V3) To the Moon!' } })];
      if (route && forced && route[0] !== forced) route = null;
      if (!route) {
        if (rest === '/' && !forced) { this.json(res, 200, this.index()); return; }
        this.json(res, 404, { error: 'not found', path: pathname.slice(0, 200) });
        return;
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') { this.json(res, 405, { error: 'method not allowed' }); return; }
      const limited = route[0] === 'bitstamp' ? this.venues.bitstamp.limited() : null;
      if (limited) { entry.status = 429; this.json(res, 429, limited); return; }
      req.resume();
      this.serveRest(route[0], route[1], params, req, res);
    } catch (e) {
      this.oops(e);
      try { this.json(res, 500, { error: 'internal error' }); } catch { /* gone */ }
    }
  }

  json(res, status, body, headers = {}) {
    if (res.headersSent || res.destroyed) return;
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json;charset=UTF-8', 'Content-Length': Buffer.byteLength(text), ...headers });
    res.end(text);
  }

  /**
   * One venue REST request, through the fault pipeline: stall (hold the request), http_status (answer the
   * injected status), then the venue handler, whose data answers (`data: true`) take the message faults.
   */
  serveRest(venue, handler, params, req, res) {
    if (this.faults.stalled(venue, 'rest')) {
      if (this.held.length >= this.o.maxHeldRequests) { res.destroy(); return; }
      const h = { venue, handler, params, req, res };
      this.held.push(h);
      res.on('close', () => { const i = this.held.indexOf(h); if (i >= 0) this.held.splice(i, 1); });
      return;
    }
    const v = this.venues[venue];
    this.stats.requestsServed[venue] += 1;
    let extra = {};
    const hs = this.faults.take(venue, 'http_status', 'rest');
    if (hs) {
      if (hs.retry_after !== undefined) extra['Retry-After'] = String(hs.retry_after);
      if (venue === 'binance') extra = { ...extra, ...v.headers(1) };
      this.json(res, hs.status, hs.body !== undefined ? hs.body : v.faultBody(hs.status), extra);
      return;
    }
    const normal = { wrongTypes: false, old: false, snap: (b) => b.current };
    let out = handler(params, req, normal);
    if (venue === 'binance') extra = { ...extra, ...v.headers(out.weight) };
    if (out.text !== undefined) {
      if (!res.headersSent) {
        res.writeHead(out.status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(out.text) });
        res.end(out.text);
      }
      return;
    }
    if (!out.data) { this.json(res, out.status, out.body, extra); return; }
    const fx = this.faults.hasMessageFaults(venue, 'rest') ? this.faults.takeMessageFaults(venue, 'rest') : {};
    if (fx.wrong_types || fx.out_of_order) {
      out = handler(params, req, { wrongTypes: !!fx.wrong_types, old: !!fx.out_of_order, snap: (b) => (fx.out_of_order ? b.older() : b.current) });
    }
    let text = JSON.stringify(out.body);
    if (fx.duplicate && this.lastBody[venue] !== undefined) text = this.lastBody[venue];   // serve the previous body again
    else if (!fx.wrong_types && !fx.out_of_order) this.lastBody[venue] = text;
    if (fx.huge_frame) text = padJson(text, fx.huge_frame.size);
    if (fx.malformed) text = corruptJson(text);
    this.json(res, out.status, text, extra);
  }

  /** Answer requests held by a stall once their venue's REST is no longer stalled. */
  releaseHeld() {
    const ready = this.held.filter((h) => !this.faults.stalled(h.venue, 'rest'));
    this.held = this.held.filter((h) => !ready.includes(h));
    for (const h of ready) {
      try { this.serveRest(h.venue, h.handler, h.params, h.req, h.res); } catch (e) { this.oops(e); }
    }
  }

  onFaultsChanged() { this.releaseHeld(); }

  // ---- faults and control endpoints ----------------------------------------------------------------

  /**
   * Apply a fault: {venue, kind, ...}. Returns {ok, applied: [...]} where each entry says what happened
   * per venue ("all" expands to every venue the kind applies to). Throws FaultError on bad input.
   */
  fault(obj) {
    const f = normalizeFault(obj);
    const fits = (v) => applicable(v, f.kind) && !(f.transport === 'ws' && !WS_VENUES.includes(v));
    const venues = f.venue === 'all' ? VENUES.filter(fits) : [f.venue];
    if (f.venue !== 'all' && !fits(f.venue)) throw new FaultError(`${f.kind}${f.transport ? ` (${f.transport})` : ''} does not apply to ${f.venue}: it has no WebSocket`);
    const applied = [];
    for (const venue of venues) {
      const one = { ...f, venue };
      if (f.kind === 'disconnect') {
        const list = [...this.conns[venue]];
        for (const c of list) { if (c.info && !c.info.closedBy) c.info.closedBy = 'server'; this.dropConn(c, true); } // no close frame: TCP torn down
        applied.push({ venue, kind: f.kind, connections: list.length });
      } else if (f.kind === 'server_shutdown') {
        const list = [...this.conns[venue]];
        for (const c of list) this.venues[venue].shutdown(c, f.graceMs);
        applied.push({ venue, kind: f.kind, connections: list.length });
      } else if (f.kind === 'clear') {
        applied.push({ venue, kind: f.kind, removed: this.faults.clear(venue) });
        this.onFaultsChanged(venue);
      } else {
        applied.push({ ...this.faults.add(one) });
      }
    }
    return { ok: true, applied };
  }

  controlFault(req, res) {
    if (req.method !== 'POST') { this.json(res, 405, { ok: false, error: 'POST a JSON fault object' }); return; }
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > 65536) { this.json(res, 413, { ok: false, error: 'body too large' }); req.destroy(); return; }
      chunks.push(c);
    });
    req.on('end', () => {
      if (size > 65536) return;
      try {
        let body;
        try { body = JSON.parse(Buffer.concat(chunks).toString('utf8')); } catch { throw new FaultError('body is not valid JSON'); }
        const list = Array.isArray(body) ? body : [body];
        if (list.length > 50) throw new FaultError('at most 50 faults per request');
        const applied = [];
        for (const f of list) applied.push(...this.fault(f).applied);
        this.json(res, 200, { ok: true, applied });
      } catch (e) {
        if (e instanceof FaultError) this.json(res, 400, { ok: false, error: e.message });
        else { this.oops(e); this.json(res, 500, { ok: false, error: 'internal error' }); }
      }
    });
  }

  /** Counters, active faults and current prices (JSON-safe). */
  // ---- strictness: what a client sent, Host, connection and message rates ----------------------------

  /** Remember a request (bounded): its exact request line and headers, and later its first WS messages. */
  logRequest(req, transport, venue) {
    const headers = [];
    for (let i = 0; i + 1 < req.rawHeaders.length && headers.length < 64; i += 2) headers.push([req.rawHeaders[i], req.rawHeaders[i + 1].slice(0, 1024)]);
    const entry = {
      transport, venue, at: Date.now(), status: null, conn: null,
      requestLine: `${req.method} ${String(req.url).slice(0, 16384)} HTTP/${req.httpVersion}`, headers, received: [],
    };
    this.requestLog.push(entry);
    if (this.requestLog.length > this.o.requestLogSize) this.requestLog.shift();
    return entry;
  }

  /** RFC 9110 §7.2: Host is required and carries the port when it is not the scheme's default. */
  checkHost(req) {
    if (!this.o.strictHost) return null;
    const host = req.headers.host;
    if (!host) return 'missing Host header';
    const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d+))?$/.exec(host);
    if (!m) return `bad Host header ${JSON.stringify(host.slice(0, 100))}`;
    const port = m[2] === undefined ? 80 : Number(m[2]);
    if (port !== this.port) return `Host ${JSON.stringify(host.slice(0, 100))} does not name port ${this.port}`;
    return null;
  }

  /** Connection-rate limits per IP (all clients here are one IP): Binance 300 per 5 min, Coinbase 8/s burst 20. */
  connectionLimited(venue) {
    const now = Date.now();
    if (venue === 'binance' && this.o.binanceMaxConnsPer5Min > 0) {
      const t = this.connTimes.binance;
      while (t.length && t[0] <= now - 300000) t.shift();
      if (t.length >= this.o.binanceMaxConnsPer5Min) return { code: -1003, msg: 'Too many new connections; current limit is 300 per 5 minutes.' }; // [FAKE] wording
      t.push(now);
    }
    if (venue === 'okx' && this.o.okxConnsPerSec > 0) {
      const t = this.connTimes.okx;
      while (t.length && t[0] <= now - 1000) t.shift();
      if (t.length >= this.o.okxConnsPerSec) return { msg: 'Too Many Requests', code: '50011' };
      t.push(now);
    }
    if (venue === 'bitstamp') {
      const refusal = this.venues.bitstamp.limited();
      if (refusal) return refusal;
    }
    if (venue === 'coinbase' && this.o.coinbaseConnBurst > 0) {
      const b = this.cbBucket;
      b.tokens = Math.min(this.o.coinbaseConnBurst, b.tokens + ((now - b.at) / 1000) * this.o.coinbaseConnsPerSec);
      b.at = now;
      if (b.tokens < 1) return { message: 'Too many connection requests' }; // [FAKE] wording
      b.tokens -= 1;
    }
    return null;
  }

  /** Coinbase: more than coinbaseMaxMsgsPerSec client messages in one second → an error and a close. */
  coinbaseFlooded(conn) {
    if (!(this.o.coinbaseMaxMsgsPerSec > 0)) return false;
    const sec = Math.floor(Date.now() / 1000);
    if (this.cbMsgs.second !== sec) this.cbMsgs = { second: sec, n: 0 };
    this.cbMsgs.n += 1;
    if (this.cbMsgs.n <= this.o.coinbaseMaxMsgsPerSec) return false;
    this.sendCtl(conn, { type: 'error', message: 'rate limit exceeded' }); // [FAKE] wording
    this.closeConn(conn, 1008, 'Rate limit exceeded');
    return true;
  }

  /** What clients sent, oldest first (copies): [{transport, venue, requestLine, headers, status, conn, received}]. */
  requests(filter = {}) {
    return structuredClone(this.requestLog.filter((e) => (!filter.transport || e.transport === filter.transport) && (!filter.venue || e.venue === filter.venue)));
  }

  state() {
    const connections = {};
    for (const v of WS_VENUES) connections[v] = this.conns[v].size;
    const prices = {};
    for (const [sym, b] of this.books) {
      const s = b.current;
      prices[sym] = { bid: s.bid, ask: s.ask, last: s.last, version: s.version, tradeId: s.tradeId, sequence: b.cbSeq, ts: Math.floor(s.ts) };
    }
    return {
      port: this.port, seed: this.seed, ticks: this.ticks, uptimeMs: Date.now() - this.startedAt,
      connections, ...structuredClone(this.stats), heldRequests: this.held.length,
      faults: this.faults.snapshot(), prices, requests: this.requests(),
    };
  }

  /** GET / without an upgrade: where things are. */
  index() {
    return {
      service: 'fake-exchange (tickerd tests)',
      rest: {
        binance: ['/api/v3/ticker/bookTicker', '/api/v3/ticker/price', '/api/v3/ping', '/api/v3/time'],
        coinbase: ['/products/{product_id}/ticker'],
        kraken: ['/0/public/Ticker', '/0/public/Time', '/0/public/AssetPairs'],
        coingecko: ['/api/v3/simple/price'],
        okx: ['/api/v5/market/ticker?instId=...', '/api/v5/market/tickers?instType=SPOT'],
        bybit: ['/v5/market/tickers?category=spot'],
        bitstamp: ['/api/v2/ticker/{pair}/'],
        custom: ['/custom/quotes?ids=...', '/custom/quote/{SYMBOL}'],
      },
      ws: {
        binance: ['/stream?streams=...', '/ws', '/ws/<stream>'], kraken: ['/v2'], okx: ['/ws/v5/public'], bybit: ['/v5/public/spot'],
        [this.o.rootWsVenue]: ['/', `/${this.o.rootWsVenue}`], [this.o.rootWsVenue === 'coinbase' ? 'bitstamp' : 'coinbase']: [this.o.rootWsVenue === 'coinbase' ? '/bitstamp' : '/coinbase'],
      },
      control: ['POST /_fault', 'GET /_state'],
      symbols: [...this.books.keys()],
    };
  }
}

// =====================================================================================================
// Public API
// =====================================================================================================

/**
 * Start a fake exchange on loopback.
 * @param {object} [options] port (0 = any), host, symbols (['BTC-USD', ...] or [{symbol, price}]), seed,
 *   tickMs, heartbeatMs, pingMs, pongTimeoutMs, maxConnMs, and the other DEFAULTS above.
 * @returns {Promise<{port:number, url:string, httpUrl:string, wsUrl:string, close:()=>Promise<void>,
 *   fault:(f:object)=>object, state:()=>object, tick:(n?:number)=>void}>}
 */
export async function startFakeExchange(options = {}) {
  const ex = await new FakeExchange(options).listen();
  const host = ex.o.host.includes(':') ? `[${ex.o.host}]` : ex.o.host;
  return {
    port: ex.port,
    url: `http://${host}:${ex.port}`,
    httpUrl: `http://${host}:${ex.port}`,
    wsUrl: `ws://${host}:${ex.port}`,
    close: () => ex.close(),
    fault: (f) => ex.fault(f),
    state: () => ex.state(),
    requests: (filter) => ex.requests(filter),
    connections: (venue = 'binance') => (ex.venues[venue] && ex.venues[venue].connections ? ex.venues[venue].connections() : []),
    tick: (n = 1) => ex.tick(n),
  };
}

// =====================================================================================================
// CLI: node tests/fake-exchange/fake-exchange.mjs --port N [--host H] [--seed S] [--tick-ms N] ...
// =====================================================================================================

const CLI_FLAGS = {
  '--port': 'port', '--host': 'host', '--seed': 'seed', '--tick-ms': 'tickMs', '--heartbeat-ms': 'heartbeatMs',
  '--ping-ms': 'pingMs', '--pong-timeout-ms': 'pongTimeoutMs', '--max-conn-ms': 'maxConnMs',
  '--subscribe-timeout-ms': 'coinbaseSubscribeTimeoutMs', '--symbols': 'symbols',
};

async function main(argv) {
  const opts = {};
  for (let i = 0; i < argv.length; i++) {
    const key = CLI_FLAGS[argv[i]];
    if (!key || i + 1 >= argv.length) {
      process.stderr.write(`usage: fake-exchange.mjs [${Object.keys(CLI_FLAGS).join(' V] [')} V]\n`);
      process.exit(2);
    }
    const val = argv[++i];
    if (key === 'host' || key === 'seed') opts[key] = val;
    else if (key === 'symbols') opts.symbols = val.split(',').filter(Boolean);
    else {
      const n = Number(val);
      if (!Number.isInteger(n) || n < 0) { process.stderr.write(`${argv[i - 1]} wants a non-negative integer\n`); process.exit(2); }
      opts[key] = n;
    }
  }
  const fx = await startFakeExchange(opts);
  process.stdout.write(`fake-exchange listening on ${fx.port}\n`);
  const stop = () => { fx.close().finally(() => process.exit(0)); };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((e) => { process.stderr.write(`fake-exchange: ${e.message}\n`); process.exit(1); });
}
