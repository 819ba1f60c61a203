// Self-test of the fake exchange (fake-exchange.mjs): with plain `ws` and `http` clients, check that every
// venue's REST and WebSocket paths produce messages of the documented shapes, that the emulated venue
// behaviours hold (Binance pings/lifetime/rate limit, Coinbase subscribe deadline and heartbeats, Kraken
// status/acks/heartbeats), that each fault kind has its effect, that odd input cannot hurt the server, and
// that prices are deterministic for a seed.
//
// Run: cd /work/main/tests && node --test fake-exchange/selftest.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { startFakeExchange } from './fake-exchange.mjs';

const UA = { 'User-Agent': 'tickerd-fake-exchange-selftest' };
const DEC = /^\d+(\.\d+)?$/;                                     // decimal string
const RFC3339_US = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;   // RFC3339 with microseconds

let fx;          // the main instance: fast ticks, fast heartbeats
const extra = []; // other instances, closed in after()
const peers = new Set();

before(async () => {
  fx = await startFakeExchange({ seed: 42, tickMs: 20, heartbeatMs: 250, coinbaseSubscribeTimeoutMs: 600 });
});

after(async () => {
  for (const p of peers) p.terminate();
  await Promise.all([fx, ...extra].map((x) => x && x.close()));
});

async function another(opts) {
  const x = await startFakeExchange(opts);
  extra.push(x);
  return x;
}

// ---------------------------------------------------------------------------------------------------------
// Clients

/** GET over a fresh connection: {status, headers, text, json}. */
function get(base, path, headers = UA) {
  return new Promise((resolve, reject) => {
    const req = http.get(base + path, { headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
  });
}

function post(base, path, body) {
  return new Promise((resolve, reject) => {
    const data = typeof body === 'string' ? body : JSON.stringify(body);
    const req = http.request(base + path, { method: 'POST', agent: false, headers: { 'Content-Type': 'application/json' } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode, json: JSON.parse(text) });
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

/** A WebSocket client that queues every text frame ({text, json}) and waits for matching ones. */
class Peer {
  constructor(url, opts = {}) {
    this.queue = [];
    this.waiters = [];
    this.pings = 0;
    this.ws = new WebSocket(url, { perMessageDeflate: false, ...opts });
    peers.add(this);
    this.ws.on('error', () => {});
    this.ws.on('ping', () => { this.pings += 1; });
    this.ws.on('message', (data) => this.push(data.toString('utf8')));
    this.closed = new Promise((resolve) => this.ws.on('close', (code, reason) => { peers.delete(this); resolve({ code, reason: reason.toString() }); }));
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('error', reject);
      this.ws.once('unexpected-response', (req, res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode, body: Buffer.concat(chunks).toString() })));
        res.on('error', () => {});
      });
    });
    this.opened.catch(() => {});
  }

  static async open(url, opts) {
    const p = new Peer(url, opts);
    await p.opened;
    return p;
  }

  push(text) {
    let json;
    try { json = JSON.parse(text); } catch { json = undefined; }
    const m = { text, json };
    const i = this.waiters.findIndex((w) => w.pred(m));
    if (i >= 0) { const [w] = this.waiters.splice(i, 1); clearTimeout(w.timer); w.resolve(m); return; }
    this.queue.push(m);
    if (this.queue.length > 5000) this.queue.shift();
  }

  /** The next frame satisfying pred (already queued or arriving within ms). */
  next(pred = () => true, ms = 3000, label = 'a message') {
    const i = this.queue.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0]);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`timed out after ${ms} ms waiting for ${label}`));
      }, ms);
      this.waiters.push(w);
    });
  }

  /** Parsed JSON of the next frame satisfying pred(json). */
  async nextJson(pred = () => true, ms, label) {
    return (await this.next((m) => m.json !== undefined && pred(m.json), ms, label)).json;
  }

  drain() { this.queue.length = 0; }
  send(x) { this.ws.send(typeof x === 'string' ? x : JSON.stringify(x)); }
  terminate() { try { this.ws.terminate(); } catch { /* gone */ } }
  close() { this.terminate(); }
}

const ws = (x, path) => `${x.wsUrl}${path}`;
const isDec = (v) => typeof v === 'string' && DEC.test(v);
const hasKeys = (obj, keys) => assert.deepEqual(Object.keys(obj).sort(), [...keys].sort());

async function clearAll() { fx.fault({ venue: 'all', kind: 'clear' }); }

/** Resolves with the close info, or fails if the peer is still open after ms. */
async function closedWithin(peer, ms) {
  const r = await Promise.race([peer.closed, sleep(ms).then(() => null)]);
  assert.ok(r, `connection still open after ${ms} ms`);
  return r;
}

// ---------------------------------------------------------------------------------------------------------
// REST shapes

test('Binance REST bookTicker: all, symbol, symbols, errors, weight header', async () => {
  const one = await get(fx.url, '/api/v3/ticker/bookTicker?symbol=BTCUSDT');
  assert.equal(one.status, 200);
  hasKeys(one.json, ['symbol', 'bidPrice', 'bidQty', 'askPrice', 'askQty']);
  assert.equal(one.json.symbol, 'BTCUSDT');
  for (const k of ['bidPrice', 'bidQty', 'askPrice', 'askQty']) assert.match(one.json[k], /^\d+\.\d{8}$/);
  assert.ok(Number(one.json.bidPrice) < Number(one.json.askPrice));
  assert.ok(Number(one.json.bidPrice) > 50000 && Number(one.json.bidPrice) < 80000);
  assert.match(one.headers['x-mbx-used-weight-1m'], /^\d+$/);

  const many = await get(fx.url, '/api/v3/ticker/bookTicker?symbols=' + encodeURIComponent('["ETHUSDT","SOLUSDT"]'));
  assert.equal(many.status, 200);
  assert.deepEqual(many.json.map((r) => r.symbol), ['ETHUSDT', 'SOLUSDT']);

  const all = await get(fx.url, '/api/v3/ticker/bookTicker');
  assert.deepEqual(all.json.map((r) => r.symbol).sort(), ['BTCUSDT', 'ETHUSDT', 'SOLUSDT']);

  const unknown = await get(fx.url, '/api/v3/ticker/bookTicker?symbol=NOPEUSDT');
  assert.equal(unknown.status, 400);
  assert.deepEqual(unknown.json, { code: -1121, msg: 'Invalid symbol.' });
  const usd = await get(fx.url, '/api/v3/ticker/bookTicker?symbols=' + encodeURIComponent('["BTCUSDT","BTCUSD"]'));
  assert.equal(usd.json.code, -1121, 'binance.com lists no USD pairs; one bad symbol fails the request');
  const lower = await get(fx.url, '/api/v3/ticker/bookTicker?symbol=btcusdt');
  assert.equal(lower.status, 400);
  assert.equal(lower.json.code, -1100);
  const both = await get(fx.url, '/api/v3/ticker/bookTicker?symbol=BTCUSDT&symbols=%5B%22BTCUSDT%22%5D');
  assert.equal(both.json.code, -1128);
  const price = await get(fx.url, '/api/v3/ticker/price?symbol=ETHUSDT');
  hasKeys(price.json, ['symbol', 'price']);
  assert.ok(isDec(price.json.price));
});

test('Coinbase REST ticker: shape, 404 NotFound, User-Agent required', async () => {
  const r = await get(fx.url, '/products/BTC-USD/ticker');
  assert.equal(r.status, 200);
  hasKeys(r.json, ['trade_id', 'price', 'size', 'time', 'bid', 'ask', 'volume', 'rfq_volume', 'conversions_volume']);
  assert.ok(Number.isInteger(r.json.trade_id));
  for (const k of ['price', 'size', 'bid', 'ask', 'volume']) assert.ok(isDec(r.json[k]), `${k}=${r.json[k]}`);
  assert.match(r.json.time, RFC3339_US);
  assert.ok(Number(r.json.bid) < Number(r.json.ask));

  const nf = await get(fx.url, '/products/NOPE-USD/ticker');
  assert.equal(nf.status, 404);
  assert.deepEqual(nf.json, { message: 'NotFound' });
  const noUa = await get(fx.url, '/products/BTC-USD/ticker', {});
  assert.equal(noUa.status, 400);
  assert.deepEqual(noUa.json, { message: 'User-Agent header is required.' });
});

test('Kraken REST Ticker: internal result keys, array fields, errors in HTTP 200', async () => {
  const r = await get(fx.url, '/0/public/Ticker?pair=XBTUSD,ETHUSD,SOLUSD');
  assert.equal(r.status, 200);
  assert.deepEqual(r.json.error, []);
  assert.deepEqual(Object.keys(r.json.result), ['XXBTZUSD', 'XETHZUSD', 'SOLUSD']);
  for (const t of Object.values(r.json.result)) {
    hasKeys(t, ['a', 'b', 'c', 'v', 'p', 't', 'l', 'h', 'o']);
    for (const k of ['a', 'b']) { assert.equal(t[k].length, 3); assert.ok(t[k].every(isDec)); }
    assert.equal(t.c.length, 2);
    for (const k of ['c', 'v', 'p', 'l', 'h']) assert.ok(t[k].every(isDec), k);
    assert.ok(t.t.every(Number.isInteger));
    assert.ok(isDec(t.o));
    assert.ok(Number(t.b[0]) < Number(t.a[0]));
  }
  const usdt = await get(fx.url, '/0/public/Ticker?pair=XBTUSDT');
  assert.deepEqual(Object.keys(usdt.json.result), ['XBTUSDT']);
  const bad = await get(fx.url, '/0/public/Ticker?pair=XBTUSD,FOOBAR');
  assert.equal(bad.status, 200);
  assert.deepEqual(bad.json, { error: ['EQuery:Unknown asset pair'] });
  const pairs = await get(fx.url, '/0/public/AssetPairs?pair=XBTUSD');
  assert.equal(pairs.json.result.XXBTZUSD.altname, 'XBTUSD');
});

test('CoinGecko simple/price: numbers, volume, last_updated_at, unknown ids left out, User-Agent required', async () => {
  const q = '/api/v3/simple/price?ids=bitcoin,ethereum,notacoin&vs_currencies=usd&include_24hr_vol=true&include_last_updated_at=true';
  const r = await get(fx.url, q);
  assert.equal(r.status, 200);
  assert.deepEqual(Object.keys(r.json), ['bitcoin', 'ethereum']);
  for (const v of Object.values(r.json)) {
    hasKeys(v, ['usd', 'usd_24h_vol', 'last_updated_at']);
    assert.equal(typeof v.usd, 'number');
    assert.equal(typeof v.usd_24h_vol, 'number');
    assert.ok(Number.isInteger(v.last_updated_at) && Math.abs(v.last_updated_at - Date.now() / 1000) < 60);
  }
  assert.ok(r.json.bitcoin.usd > 50000 && r.json.ethereum.usd < 5000);
  const noUa = await get(fx.url, q, {});
  assert.equal(noUa.status, 403);
});

// ---------------------------------------------------------------------------------------------------------
// WebSocket shapes and venue behaviour

test('Binance WS: combined streams are wrapped; bookTicker per change, miniTicker periodic', async () => {
  const p = await Peer.open(ws(fx, '/stream?streams=btcusdt@bookTicker/ethusdt@miniTicker'));
  const a = await p.nextJson((j) => j.stream === 'btcusdt@bookTicker', 2000, 'bookTicker');
  hasKeys(a, ['stream', 'data']);
  hasKeys(a.data, ['u', 's', 'b', 'B', 'a', 'A']);
  assert.equal(a.data.s, 'BTCUSDT');
  assert.ok(Number.isSafeInteger(a.data.u) && a.data.u > 2 ** 32);
  for (const k of ['b', 'B', 'a', 'A']) assert.match(a.data[k], /^\d+\.\d{8}$/);
  const b = await p.nextJson((j) => j.stream === 'btcusdt@bookTicker', 2000, 'second bookTicker');
  assert.ok(b.data.u > a.data.u, 'update id rises');
  const m = await p.nextJson((j) => j.stream === 'ethusdt@miniTicker', 2000, 'miniTicker');
  hasKeys(m.data, ['e', 'E', 's', 'c', 'o', 'h', 'l', 'v', 'q']);
  assert.equal(m.data.e, '24hrMiniTicker');
  assert.ok(Number.isInteger(m.data.E) && Math.abs(m.data.E - Date.now()) < 5000, 'E is epoch ms');
  for (const k of ['c', 'o', 'h', 'l', 'v', 'q']) assert.ok(isDec(m.data[k]));
  p.close();
});

test('Binance WS: /ws SUBSCRIBE ack, raw payloads, LIST_SUBSCRIPTIONS, request errors', async () => {
  const p = await Peer.open(ws(fx, '/ws'));
  p.send({ method: 'SUBSCRIBE', params: ['solusdt@bookTicker'], id: 1 });
  assert.deepEqual(await p.nextJson((j) => 'id' in j, 2000, 'ack'), { result: null, id: 1 });
  const raw = await p.nextJson((j) => j.s === 'SOLUSDT', 2000, 'raw bookTicker');
  hasKeys(raw, ['u', 's', 'b', 'B', 'a', 'A']);
  p.send({ method: 'LIST_SUBSCRIPTIONS', id: 2 });
  assert.deepEqual(await p.nextJson((j) => j.id === 2), { result: ['solusdt@bookTicker'], id: 2 });
  p.send('{not json');
  assert.equal((await p.nextJson((j) => j.code === 3)).code, 3);
  p.send({ method: 'SUBSCRIBE', params: ['no stream here'], id: 4 });
  assert.deepEqual(await p.nextJson((j) => j.id === 4), { error: { code: 2, msg: 'Invalid request: invalid stream' }, id: 4 });
  p.close();

  const t = await Peer.open(ws(fx, '/ws/btcusdt@trade'));
  const tr = await t.nextJson((j) => j.e === 'trade', 2000, 'trade');
  hasKeys(tr, ['e', 'E', 's', 't', 'p', 'q', 'T', 'm', 'M']);
  assert.equal(typeof tr.m, 'boolean');
  t.close();
});

test('Binance WS: more than 5 incoming messages per second closes the connection', async () => {
  const p = await Peer.open(ws(fx, '/ws'));
  for (let i = 0; i < 7; i++) p.send({ method: 'LIST_SUBSCRIPTIONS', id: 100 + i });
  const c = await closedWithin(p, 2000);
  assert.equal(c.code, 1008);
});

test('Binance WS: pings, pong timeout, connection lifetime (serverShutdown then close)', async () => {
  const x = await another({ seed: 3, tickMs: 0, heartbeatMs: 0, pingMs: 250, pongTimeoutMs: 500, maxConnMs: 1600 });
  const good = await Peer.open(ws(x, '/stream?streams=btcusdt@bookTicker'));
  const mute = await Peer.open(ws(x, '/ws'), { autoPong: false });
  const c = await closedWithin(mute, 1500);
  assert.equal(c.code, 1008, 'no pong: closed');
  assert.ok(mute.pings >= 1);
  await sleep(300);
  assert.equal(good.ws.readyState, WebSocket.OPEN, 'a client that pongs stays');
  assert.ok(good.pings >= 3);
  const sd = await good.nextJson((j) => j.stream === '!serverShutdown', 2000, 'serverShutdown');
  assert.equal(sd.data.e, 'serverShutdown');
  assert.ok(Number.isInteger(sd.data.E));
  assert.equal((await closedWithin(good, 1000)).code, 1001);
});

test('Coinbase WS: subscriptions reply, ticker per change, heartbeats, errors, subscribe deadline', async () => {
  const p = await Peer.open(ws(fx, '/'));
  p.send({ type: 'subscribe', product_ids: ['BTC-USD'], channels: ['ticker', { name: 'heartbeat', product_ids: ['ETH-USD'] }] });
  const subs = await p.nextJson((j) => j.type === 'subscriptions');
  assert.deepEqual(subs, { type: 'subscriptions', channels: [{ name: 'ticker', product_ids: ['BTC-USD'] }, { name: 'heartbeat', product_ids: ['BTC-USD', 'ETH-USD'] }] });
  const t1 = await p.nextJson((j) => j.type === 'ticker');
  hasKeys(t1, ['type', 'sequence', 'product_id', 'price', 'open_24h', 'volume_24h', 'low_24h', 'high_24h', 'volume_30d',
    'best_bid', 'best_bid_size', 'best_ask', 'best_ask_size', 'side', 'time', 'trade_id', 'last_size']);
  assert.equal(t1.product_id, 'BTC-USD');
  assert.ok(Number.isSafeInteger(t1.sequence) && t1.sequence > 2 ** 32);
  assert.ok(['buy', 'sell'].includes(t1.side));
  assert.match(t1.time, RFC3339_US);
  for (const k of ['price', 'open_24h', 'volume_24h', 'best_bid', 'best_ask', 'last_size']) assert.ok(isDec(t1[k]), k);
  const t2 = await p.nextJson((j) => j.type === 'ticker');
  assert.ok(t2.sequence > t1.sequence);
  const h1 = await p.nextJson((j) => j.type === 'heartbeat' && j.product_id === 'ETH-USD', 2000, 'heartbeat');
  hasKeys(h1, ['type', 'sequence', 'last_trade_id', 'product_id', 'time']);
  const h2 = await p.nextJson((j) => j.type === 'heartbeat' && j.product_id === 'ETH-USD', 2000, 'second heartbeat');
  assert.ok(h2.sequence > h1.sequence, 'heartbeat sequence rises');
  p.send({ type: 'subscribe', product_ids: ['BTC-USD', 'NOPE-USD'], channels: ['ticker'] });
  assert.deepEqual(await p.nextJson((j) => j.type === 'error'), { type: 'error', message: 'Failed to subscribe', reason: 'Invalid product ID provided' });
  p.send({ type: 'subscribe', product_ids: ['BTC-USD'], channels: [] });
  assert.equal((await p.nextJson((j) => j.type === 'error')).reason, 'No channels provided');
  p.send({ type: 'unsubscribe', product_ids: ['BTC-USD'], channels: ['ticker', 'heartbeat'] });
  const after = await p.nextJson((j) => j.type === 'subscriptions');
  assert.deepEqual(after.channels, [{ name: 'heartbeat', product_ids: ['ETH-USD'] }]);
  p.close();

  const silent = await Peer.open(ws(fx, '/coinbase'));
  const c = await closedWithin(silent, 2000);
  assert.equal(c.code, 1008, 'no subscribe within the deadline: closed');
});

test('Kraken WS v2: status, one ack per symbol, snapshot then updates, ping/pong, unsupported pair', async () => {
  const p = await Peer.open(ws(fx, '/v2'));
  const st = await p.next((m) => m.json && m.json.channel === 'status');
  assert.match(st.text, /"connection_id":1383477438020003\d{4},/, 'uint64 connection_id written exactly');
  assert.equal(st.json.type, 'update');
  assert.equal(st.json.data[0].system, 'online');
  assert.equal(st.json.data[0].api_version, 'v2');
  p.send({ method: 'subscribe', params: { channel: 'ticker', symbol: ['BTC/USD', 'ETH/USD', 'XXX/USD'] }, req_id: 7 });
  for (const sym of ['BTC/USD', 'ETH/USD']) {
    const ack = await p.nextJson((j) => j.method === 'subscribe' && j.success === true && j.result.symbol === sym);
    hasKeys(ack, ['method', 'req_id', 'result', 'success', 'time_in', 'time_out']);
    assert.deepEqual(ack.result, { channel: 'ticker', snapshot: true, symbol: sym });
    assert.equal(ack.req_id, 7);
    assert.match(ack.time_in, RFC3339_US);
  }
  const nack = await p.nextJson((j) => j.success === false);
  assert.equal(nack.error, 'Currency pair not supported XXX/USD');
  assert.equal(nack.symbol, 'XXX/USD');
  const snap = await p.nextJson((j) => j.channel === 'ticker' && j.data[0].symbol === 'BTC/USD');
  assert.equal(snap.type, 'snapshot', 'the first ticker message is the snapshot');
  hasKeys(snap.data[0], ['symbol', 'bid', 'bid_qty', 'ask', 'ask_qty', 'last', 'volume', 'vwap', 'low', 'high', 'change', 'change_pct', 'timestamp']);
  for (const [k, v] of Object.entries(snap.data[0])) if (k !== 'symbol' && k !== 'timestamp') assert.equal(typeof v, 'number', k);
  assert.match(snap.data[0].timestamp, RFC3339_US);
  const upd = await p.nextJson((j) => j.channel === 'ticker' && j.data[0].symbol === 'BTC/USD');
  assert.equal(upd.type, 'update');
  p.send({ method: 'ping', req_id: 9 });
  const pong = await p.nextJson((j) => j.method === 'pong');
  assert.equal(pong.req_id, 9);
  p.send({ method: 'subscribe', params: { channel: 'ticker', symbol: ['BTC/USD'] } });
  assert.equal((await p.nextJson((j) => j.success === false)).error, 'Already subscribed');
  p.close();
});

test('quiet market: Kraken heartbeat only in quiet periods, Coinbase heartbeat sequence still rises', async () => {
  const x = await another({ seed: 5, tickMs: 0, heartbeatMs: 150 });
  const k = await Peer.open(ws(x, '/v2'));
  await k.nextJson((j) => j.channel === 'status');
  await sleep(400);
  assert.ok(!k.queue.some((m) => m.json && m.json.channel === 'heartbeat'), 'no heartbeat before any subscription');
  k.send({ method: 'subscribe', params: { channel: 'ticker', symbol: ['SOL/USD'] } });
  await k.nextJson((j) => j.channel === 'ticker' && j.type === 'snapshot');
  await sleep(400);
  const hb = await k.nextJson((j) => j.channel === 'heartbeat', 1000, 'heartbeat');
  assert.deepEqual(hb, { channel: 'heartbeat' });
  x.tick(20);
  await k.nextJson((j) => j.channel === 'ticker' && j.type === 'update', 1000, 'update after manual ticks');
  // Keep ticking faster than the heartbeat period: no heartbeat while updates flow.
  k.drain();
  const busy = setInterval(() => x.tick(5), 20);
  await sleep(500);
  clearInterval(busy);
  assert.ok(!k.queue.some((m) => m.json && m.json.channel === 'heartbeat'), 'heartbeat only in quiet periods');
  k.close();

  const c = await Peer.open(ws(x, '/'));
  c.send({ type: 'subscribe', channels: [{ name: 'heartbeat', product_ids: ['BTC-USD'] }] });
  const h1 = await c.nextJson((j) => j.type === 'heartbeat');
  const h2 = await c.nextJson((j) => j.type === 'heartbeat');
  assert.ok(h2.sequence > h1.sequence);
  c.close();
});

test('Bitstamp v2: / (rootWsVenue) and /bitstamp, bts:subscribe acks, trades and book top, heartbeat, errors, limits, REST', async () => {
  const x = await another({ seed: 42, tickMs: 20, rootWsVenue: 'bitstamp', bitstampMaxRequestsPerSec: 5 });
  const sub = (channel) => ({ event: 'bts:subscribe', data: { channel } });
  const p = await Peer.open(ws(x, '/'));
  p.send(sub('live_trades_btcusd'));
  p.send(sub('order_book_btcusd'));
  assert.deepEqual(await p.nextJson(), { event: 'bts:subscription_succeeded', channel: 'live_trades_btcusd', data: {} });
  assert.deepEqual(await p.nextJson(), { event: 'bts:subscription_succeeded', channel: 'order_book_btcusd', data: {} });
  const book = await p.nextJson((j) => j.event === 'data');
  assert.equal(book.channel, 'order_book_btcusd');
  hasKeys(book.data, ['timestamp', 'microtimestamp', 'bids', 'asks']);
  assert.match(book.data.microtimestamp, /^\d{16}$/);
  assert.ok(book.data.bids.length > 1 && book.data.bids.every(([px, sz]) => isDec(px) && isDec(sz)));
  assert.ok(Number(book.data.bids[0][0]) < Number(book.data.asks[0][0]), 'not crossed');
  assert.ok(Number(book.data.bids[0][0]) > Number(book.data.bids[1][0]), 'best bid first');
  const trade = await p.nextJson((j) => j.event === 'trade');
  assert.equal(trade.channel, 'live_trades_btcusd');
  hasKeys(trade.data, ['id', 'timestamp', 'amount', 'amount_str', 'price', 'price_str', 'type', 'microtimestamp', 'buy_order_id', 'sell_order_id']);
  assert.ok(isDec(trade.data.price_str) && typeof trade.data.price === 'number' && [0, 1].includes(trade.data.type));
  p.send({ event: 'bts:heartbeat' });
  assert.deepEqual(await p.nextJson((j) => j.event === 'bts:heartbeat'), { event: 'bts:heartbeat', channel: '', data: { status: 'success' } });
  // field by field: unknown top-level or data fields, unknown pairs, bad JSON get bts:error
  const err = (j) => j.event === 'bts:error';
  p.send({ event: 'bts:subscribe', data: { channel: 'live_trades_ethusd' }, id: 1 });
  assert.equal((await p.nextJson(err)).data.message, 'Bad subscription string.');
  p.send({ event: 'bts:subscribe', data: { channel: 'live_trades_ethusd', depth: 1 } });
  assert.deepEqual(await p.nextJson(err), { event: 'bts:error', channel: 'live_trades_ethusd', data: { code: null, message: 'Bad subscription string.' } });
  p.send(sub('live_trades_nopeusd'));
  assert.equal((await p.nextJson(err)).channel, 'live_trades_nopeusd');
  p.send(sub('live_trades_BTCUSD'));
  await p.nextJson(err);
  p.send('{oops');
  assert.equal((await p.nextJson(err)).data.message, 'Incorrect JSON format.');
  p.send({ event: 'bts:unsubscribe', data: { channel: 'live_trades_btcusd' } });
  assert.equal((await p.nextJson((j) => j.event === 'bts:unsubscription_succeeded')).channel, 'live_trades_btcusd');
  // reject_subscribe, then server_shutdown: bts:request_reconnect and a close
  x.fault({ venue: 'bitstamp', kind: 'reject_subscribe', reason: 'maintenance' });
  p.send(sub('live_trades_solusd'));
  assert.equal((await p.nextJson(err)).data.message, 'maintenance');
  x.fault({ venue: 'bitstamp', kind: 'server_shutdown' });
  assert.deepEqual(await p.nextJson((j) => j.event === 'bts:request_reconnect'), { event: 'bts:request_reconnect', channel: '', data: '' });
  assert.equal((await closedWithin(p, 1000)).code, 1001);
  // /bitstamp works on any instance; on the default one "/" is Coinbase's
  const q = await Peer.open(ws(fx, '/bitstamp'));
  q.send(sub('order_book_ethusd'));
  assert.equal((await q.nextJson()).event, 'bts:subscription_succeeded');
  q.close();
  // REST: the exact path with its trailing slash, 404 otherwise; 429 over the request budget
  await sleep(1100);
  const t = await get(x.url, '/api/v2/ticker/btcusd/');
  assert.equal(t.status, 200);
  for (const k of ['last', 'bid', 'ask', 'volume', 'open_24', 'timestamp', 'open', 'high', 'low', 'vwap']) assert.ok(isDec(t.json[k]), k);
  assert.deepEqual((await get(x.url, '/api/v2/ticker/nopeusd/')).json, { message: 'Not Found' });
  assert.equal((await get(x.url, '/api/v2/ticker/btcusd')).status, 404);
  const codes = [];
  for (let i = 0; i < 4; i++) codes.push((await get(x.url, '/api/v2/ticker/ethusd/')).status);
  assert.deepEqual(codes, [200, 200, 200, 429], 'five per second, the 404 lookup included');
  await assert.rejects(Peer.open(ws(x, '/')), (e) => e.status === 429, 'WS upgrades share the budget');
  assert.equal((await get(x.url, '/api/v2/ticker/ethusd/')).json.code, '400.002');
});

test('determinism: same seed and steps give the same prices; another seed differs', async () => {
  const a = await another({ seed: 7, tickMs: 0, heartbeatMs: 0 });
  const b = await another({ seed: 7, tickMs: 0, heartbeatMs: 0 });
  const c = await another({ seed: 8, tickMs: 0, heartbeatMs: 0 });
  for (const x of [a, b, c]) x.tick(300);
  const strip = (x) => Object.fromEntries(Object.entries(x.state().prices).map(([s, p]) => [s, [p.bid, p.ask, p.last, p.tradeId]]));
  assert.deepEqual(strip(a), strip(b));
  assert.notDeepEqual(strip(a), strip(c));
  const path = '/0/public/Ticker?pair=XBTUSD,ETHUSD';
  assert.equal((await get(a.url, path)).text, (await get(b.url, path)).text, 'Kraken REST has no clock field: identical bodies');
});

// ---------------------------------------------------------------------------------------------------------
// Faults

test('fault disconnect: every WS of the venue is cut without a close frame, others stay', async () => {
  const b1 = await Peer.open(ws(fx, '/stream?streams=btcusdt@bookTicker'));
  const b2 = await Peer.open(ws(fx, '/ws'));
  const cb = await Peer.open(ws(fx, '/'));
  cb.send({ type: 'subscribe', product_ids: ['BTC-USD'], channels: ['ticker'] });
  await cb.nextJson((j) => j.type === 'subscriptions');
  const r = fx.fault({ venue: 'binance', kind: 'disconnect' });
  assert.equal(r.applied[0].connections, 2);
  assert.equal((await closedWithin(b1, 1000)).code, 1006);
  assert.equal((await closedWithin(b2, 1000)).code, 1006);
  cb.drain();
  await cb.nextJson((j) => j.type === 'ticker', 1000, 'coinbase still flowing');
  assert.equal(fx.state().connections.binance, 0);
  cb.close();
});

test('fault stall (via POST /_fault): silence on WS and held REST until clear; stall with ms ends by itself', async () => {
  const p = await Peer.open(ws(fx, '/'));
  p.send({ type: 'subscribe', product_ids: ['BTC-USD', 'ETH-USD'], channels: ['ticker', 'heartbeat'] });
  await p.nextJson((j) => j.type === 'heartbeat');
  const r = await post(fx.url, '/_fault', { venue: 'coinbase', kind: 'stall' });
  assert.equal(r.status, 200);
  assert.equal(r.json.ok, true);
  p.drain();
  let answered = false;
  const pending = get(fx.url, '/products/BTC-USD/ticker').then((x) => { answered = true; return x; });
  await sleep(500);
  assert.equal(p.queue.length, 0, 'nothing sent while stalled, heartbeats included');
  assert.equal(answered, false, 'REST request held while stalled');
  assert.equal(p.ws.readyState, WebSocket.OPEN);
  assert.equal(fx.state().heldRequests, 1);
  let pongs = 0;
  p.ws.on('pong', () => { pongs += 1; });
  p.ws.ping('are you there');
  await sleep(200);
  assert.equal(pongs, 0, 'protocol pings go unanswered too');
  await post(fx.url, '/_fault', { venue: 'coinbase', kind: 'clear' });
  assert.equal((await pending).status, 200);
  await p.nextJson((j) => j.type === 'ticker', 1000, 'ticker after clear');
  p.close();

  const k = await Peer.open(ws(fx, '/v2'));
  k.send({ method: 'subscribe', params: { channel: 'ticker', symbol: ['BTC/USD'] } });
  await k.nextJson((j) => j.type === 'snapshot');
  fx.fault({ venue: 'kraken', kind: 'stall', ms: 400 });
  k.drain();
  await sleep(300);
  assert.equal(k.queue.length, 0);
  await k.nextJson((j) => j.channel === 'ticker', 1500, 'updates after the stall expired');
  k.close();
});

test('fault http_status: count, status, Retry-After and the venue error bodies', async () => {
  fx.fault({ venue: 'coingecko', kind: 'http_status', status: 429, retry_after: 7, count: 2 });
  const q = '/api/v3/simple/price?ids=bitcoin&vs_currencies=usd';
  for (let i = 0; i < 2; i++) {
    const r = await get(fx.url, q);
    assert.equal(r.status, 429);
    assert.equal(r.headers['retry-after'], '7');
    assert.equal(r.json.status.error_code, 429);
  }
  assert.equal((await get(fx.url, q)).status, 200);
  fx.fault({ venue: 'kraken', kind: 'http_status', status: 500 });
  const k = await get(fx.url, '/0/public/Ticker?pair=XBTUSD');
  assert.equal(k.status, 500);
  assert.deepEqual(k.json, { error: ['EService:Unavailable'] });
  fx.fault({ venue: 'binance', kind: 'http_status', status: 418, retry_after: 120 });
  const b = await get(fx.url, '/api/v3/ticker/bookTicker?symbol=BTCUSDT');
  assert.equal(b.status, 418);
  assert.equal(b.json.code, -1003);
  assert.equal(b.headers['retry-after'], '120');
  fx.fault({ venue: 'coinbase', kind: 'http_status', status: 503 });
  assert.equal((await get(fx.url, '/products/BTC-USD/ticker')).status, 503);
  assert.equal((await get(fx.url, '/products/BTC-USD/ticker')).status, 200);
});

test('fault malformed: the next message / body is invalid JSON, then normal again', async () => {
  const p = await Peer.open(ws(fx, '/stream?streams=btcusdt@bookTicker'));
  await p.nextJson();
  fx.fault({ venue: 'binance', kind: 'malformed', transport: 'ws' });
  p.drain();
  const bad = await p.next(() => true);
  assert.equal(bad.json, undefined, `not JSON: ${bad.text}`);
  assert.ok((await p.next()).json, 'next message parses');
  p.close();
  fx.fault({ venue: 'kraken', kind: 'malformed', transport: 'rest', count: 1 });
  const r = await get(fx.url, '/0/public/Ticker?pair=XBTUSD');
  assert.equal(r.status, 200);
  assert.equal(r.json, undefined);
  assert.ok((await get(fx.url, '/0/public/Ticker?pair=XBTUSD')).json);
});

test('fault wrong_types: prices arrive as objects/booleans (WS and REST)', async () => {
  const p = await Peer.open(ws(fx, '/stream?streams=btcusdt@bookTicker'));
  await p.nextJson();
  fx.fault({ venue: 'binance', kind: 'wrong_types' });
  p.drain();
  const m = await p.nextJson();
  assert.equal(typeof m.data.b, 'object');
  assert.equal(typeof m.data.a, 'boolean');
  assert.equal(typeof (await p.nextJson()).data.b, 'string', 'one message only');
  p.close();
  const k = await Peer.open(ws(fx, '/v2'));
  fx.fault({ venue: 'kraken', kind: 'wrong_types' });
  k.send({ method: 'subscribe', params: { channel: 'ticker', symbol: ['ETH/USD'] } });
  const s = await k.nextJson((j) => j.channel === 'ticker');
  assert.equal(typeof s.data[0].bid, 'object');
  assert.equal(typeof s.data[0].ask, 'boolean');
  k.close();
  fx.fault({ venue: 'coinbase', kind: 'wrong_types', transport: 'rest' });
  const r = await get(fx.url, '/products/ETH-USD/ticker');
  assert.equal(typeof r.json.price, 'object');
  assert.equal(typeof r.json.bid, 'boolean');
});

test('fault huge_frame: one 1 MiB text frame / body, still valid JSON', async () => {
  const k = await Peer.open(ws(fx, '/v2'));
  k.send({ method: 'subscribe', params: { channel: 'ticker', symbol: ['BTC/USD'] } });
  await k.nextJson((j) => j.type === 'snapshot');
  fx.fault({ venue: 'kraken', kind: 'huge_frame' });
  const big = await k.next((m) => m.text.length > 100000, 2000, 'huge frame');
  assert.equal(Buffer.byteLength(big.text), 1024 * 1024);
  assert.equal(big.json.channel, 'ticker');
  const small = await k.next((m) => m.json && m.json.channel === 'ticker');
  assert.ok(small.text.length < 2000, 'one frame only');
  k.close();
  fx.fault({ venue: 'binance', kind: 'huge_frame', transport: 'rest' });
  const r = await get(fx.url, '/api/v3/ticker/bookTicker');
  assert.equal(Buffer.byteLength(r.text), 1024 * 1024);
  assert.ok(Array.isArray(r.json));
});

test('fault out_of_order: an update with a lower sequence and an older time follows', async () => {
  const p = await Peer.open(ws(fx, '/'));
  p.send({ type: 'subscribe', product_ids: ['BTC-USD'], channels: ['ticker'] });
  const first = await p.nextJson((j) => j.type === 'ticker');
  fx.fault({ venue: 'coinbase', kind: 'out_of_order' });
  let maxSeq = first.sequence;
  let maxTime = first.time;
  let found = null;
  for (let i = 0; i < 10 && !found; i++) {
    const t = await p.nextJson((j) => j.type === 'ticker');
    if (t.sequence < maxSeq) found = t;
    else { maxSeq = t.sequence; maxTime = t.time; }
  }
  assert.ok(found, 'a ticker with a lower sequence arrived');
  assert.ok(found.time < maxTime, 'and an older time');
  p.close();
  const k = await Peer.open(ws(fx, '/v2'));
  k.send({ method: 'subscribe', params: { channel: 'ticker', symbol: ['ETH/USD'] } });
  const s = await k.nextJson((j) => j.channel === 'ticker' && j.type === 'snapshot');
  fx.fault({ venue: 'kraken', kind: 'out_of_order' });
  const update = (j) => j.channel === 'ticker' && j.type === 'update';   // (status messages are type "update" too)
  const u1 = await k.nextJson(update);
  const u2 = await k.nextJson(update);
  assert.ok(u2.data[0].timestamp < u1.data[0].timestamp && u2.data[0].timestamp < s.data[0].timestamp, 'older timestamp');
  k.close();
});

test('fault duplicate: the same message twice in a row', async () => {
  const p = await Peer.open(ws(fx, '/stream?streams=ethusdt@bookTicker'));
  await p.nextJson();
  fx.fault({ venue: 'binance', kind: 'duplicate' });
  p.drain();
  const a = await p.next();
  const b = await p.next();
  assert.equal(a.text, b.text);
  const c = await p.next();
  assert.notEqual(c.text, b.text);
  p.close();
});

test('fault reject_subscribe: each venue rejects in its own format, once per count', async () => {
  fx.fault({ venue: 'all', kind: 'reject_subscribe' });
  const cb = await Peer.open(ws(fx, '/'));
  cb.send({ type: 'subscribe', product_ids: ['BTC-USD'], channels: ['ticker'] });
  assert.deepEqual(await cb.nextJson(), { type: 'error', message: 'Failed to subscribe', reason: 'Invalid product ID provided' });
  cb.send({ type: 'subscribe', product_ids: ['BTC-USD'], channels: ['ticker'] });
  assert.equal((await cb.nextJson()).type, 'subscriptions');
  cb.close();

  const k = await Peer.open(ws(fx, '/v2'));
  k.send({ method: 'subscribe', params: { channel: 'ticker', symbol: ['BTC/USD'] }, req_id: 3 });
  const nack = await k.nextJson((j) => j.method === 'subscribe');
  assert.equal(nack.success, false);
  assert.equal(typeof nack.error, 'string');
  assert.equal(nack.req_id, 3);
  k.close();

  const o = await Peer.open(ws(fx, '/ws/v5/public'));
  o.send({ op: 'subscribe', args: [{ channel: 'tickers', instId: 'BTC-USDT' }] });
  const oerr = await o.nextJson((j) => j.event === 'error' || j.event === 'subscribe');
  assert.equal(oerr.event, 'error');
  assert.equal(oerr.code, '60018');
  o.close();

  const y = await Peer.open(ws(fx, '/v5/public/spot'));
  y.send({ op: 'subscribe', args: ['tickers.BTCUSDT'] });
  const yerr = await y.nextJson((j) => j.op === 'subscribe');
  assert.equal(yerr.success, false);
  y.close();

  const s = await Peer.open(ws(fx, '/bitstamp'));
  s.send({ event: 'bts:subscribe', data: { channel: 'live_trades_btcusd' } });
  assert.deepEqual(await s.nextJson(), { event: 'bts:error', channel: 'live_trades_btcusd', data: { code: null, message: 'Bad subscription string.' } });
  s.close();

  const c = await Peer.open(ws(fx, '/custom/ws'));
  c.send({ action: 'subscribe', symbols: ['BTC-USD'] });
  assert.deepEqual(await c.nextJson(), { type: 'error', message: 'subscribe rejected' });
  c.send({ action: 'subscribe', symbols: ['BTC-USD'] });
  assert.deepEqual(await c.nextJson(), { type: 'subscribed', symbols: ['BTC-USD'] });
  c.close();

  const b = await Peer.open(ws(fx, '/ws'));
  b.send({ method: 'SUBSCRIBE', params: ['btcusdt@bookTicker'], id: 5 });
  assert.deepEqual(await b.nextJson(), { error: { code: 2, msg: 'Invalid request: invalid stream' }, id: 5 });
  b.close();
  fx.fault({ venue: 'binance', kind: 'reject_subscribe' });
  await assert.rejects(Peer.open(ws(fx, '/stream?streams=btcusdt@bookTicker')), (e) => e.status === 400);
  await (await Peer.open(ws(fx, '/stream?streams=btcusdt@bookTicker'))).nextJson();
});

test('fault server_shutdown: Binance serverShutdown + close, Kraken maintenance + close, Coinbase close', async () => {
  const b = await Peer.open(ws(fx, '/ws'));
  const k = await Peer.open(ws(fx, '/v2'));
  await k.nextJson((j) => j.channel === 'status');
  const c = await Peer.open(ws(fx, '/'));
  const r = fx.fault({ venue: 'all', kind: 'server_shutdown' });
  assert.deepEqual(r.applied.map((x) => x.venue), ['binance', 'coinbase', 'kraken', 'okx', 'bybit', 'bitstamp', 'custom']);
  const ev = await b.nextJson((j) => j.e === 'serverShutdown');
  assert.ok(Number.isInteger(ev.E));
  assert.equal((await closedWithin(b, 1000)).code, 1001);
  assert.equal((await k.nextJson((j) => j.channel === 'status')).data[0].system, 'maintenance');
  assert.equal((await closedWithin(k, 1000)).code, 1001);
  assert.equal((await closedWithin(c, 1000)).code, 1001);
});

test('fault clear, validation, and GET /_state counters', async () => {
  fx.fault({ venue: 'kraken', kind: 'malformed', count: 5 });
  fx.fault({ venue: 'kraken', kind: 'http_status', status: 500, count: -1 });
  fx.fault({ venue: 'binance', kind: 'duplicate', ms: 60000 });
  assert.equal(fx.state().faults.filter((f) => f.venue === 'kraken').length, 2);
  const r = fx.fault({ venue: 'kraken', kind: 'clear' });
  assert.equal(r.applied[0].removed, 2);
  assert.deepEqual(fx.state().faults.map((f) => [f.venue, f.kind]), [['binance', 'duplicate']]);
  await clearAll();
  assert.deepEqual(fx.state().faults, []);

  assert.throws(() => fx.fault({ venue: 'nasdaq', kind: 'stall' }), /venue/);
  assert.throws(() => fx.fault({ venue: 'binance', kind: 'explode' }), /kind/);
  assert.throws(() => fx.fault({ venue: 'coingecko', kind: 'disconnect' }), /no WebSocket/);
  assert.throws(() => fx.fault({ venue: 'binance', kind: 'http_status', status: 99 }), /status/);
  assert.throws(() => fx.fault({ venue: 'binance', kind: 'http_status', transport: 'ws' }), /transport/);
  assert.equal((await post(fx.url, '/_fault', '{oops')).status, 400);
  assert.equal((await post(fx.url, '/_fault', { venue: 'all' })).status, 400);

  const st = (await get(fx.url, '/_state')).json;
  for (const v of ['binance', 'coinbase', 'kraken']) {
    assert.equal(typeof st.connections[v], 'number');
    assert.ok(st.connectionsTotal[v] > 0);
    assert.ok(st.messagesSent[v] > 0);
  }
  for (const v of ['binance', 'coinbase', 'kraken', 'coingecko']) assert.ok(st.requestsServed[v] > 0);
  assert.deepEqual(Object.keys(st.prices).sort(), ['BTC-USD', 'BTC-USDT', 'ETH-USD', 'ETH-USDT', 'SOL-USD', 'SOL-USDT']);
});

// ---------------------------------------------------------------------------------------------------------
// Robustness: hostile input must not hurt the server

test('hostile input: garbage frames, oversize messages, odd HTTP, raw junk; server keeps serving', async () => {
  const junk = ['', 'null', '[]', '"x"', '{"method":"SUBSCRIBE","params":"x","id":{}}', '{"type":"subscribe","channels":[{"name":{}}]}',
    '{"method":"subscribe","params":{"channel":"ticker","symbol":[1,2]}}', '{"type":"subscribe","product_ids":"BTC-USD","channels":["ticker"]}',
    '{"method":"SET_PROPERTY","params":["combined"],"id":1}', '{"method":"unsubscribe","params":{"channel":"ticker","symbol":["BTC/USD"]}}',
    '['.repeat(5000), JSON.stringify({ type: 'subscribe', product_ids: Array(2000).fill('X'), channels: ['ticker'] })];
  for (const path of ['/ws', '/', '/v2']) {
    const p = await Peer.open(ws(fx, path));
    for (const [i, j] of junk.entries()) {
      p.send(j);
      if (i % 4 === 3) await sleep(path === '/ws' ? 1100 : 10);   // stay under Binance's 5 messages/s
    }
    p.ws.send(Buffer.from([0, 1, 2, 255]), { binary: true });
    await sleep(50);
    assert.equal(p.ws.readyState, WebSocket.OPEN, `${path} survives junk`);
    p.send('x'.repeat(70 * 1024));                                   // over maxPayload
    assert.equal((await closedWithin(p, 2000)).code, 1009);
  }
  await assert.rejects(Peer.open(ws(fx, '/nowhere')), (e) => e.status === 404);
  for (const path of ['/%ZZ', '//evil/x', '/api/v3/ticker/bookTicker?symbols=%5B%22', '/0/public/Ticker?pair=' + 'A,'.repeat(3000),
    '/api/v3/simple/price?ids=&vs_currencies=', '/products/%E0%A4%A/ticker', '/_state?x=1']) {
    const r = await get(fx.url, path);
    assert.ok(r.status >= 200 && r.status < 500, `${path} -> ${r.status}`);
  }
  await new Promise((resolve) => {   // raw TCP junk and a half request
    const s = net.connect(fx.port, '127.0.0.1', () => { s.write('GARBAGE\r\n\r\nGET / HTTP/1.1\r\nHost'); setTimeout(() => { s.destroy(); resolve(); }, 100); });
    s.on('error', resolve);
  });
  const ok = await get(fx.url, '/api/v3/ticker/bookTicker?symbol=BTCUSDT');
  assert.equal(ok.status, 200);
  const p = await Peer.open(ws(fx, '/stream?streams=btcusdt@bookTicker'));
  await p.nextJson();
  p.close();
});
