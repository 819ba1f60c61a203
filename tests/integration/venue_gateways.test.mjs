// Every preset's shipped example config (etc/examples/*.json, only scheme, host and port rewritten to the fake
// exchange on loopback) against the strict fake: the exact request line, the Host header with its port, no
// browser-only headers, the subscribe bytes the venues' docs show, and prices end to end. Also the Kraken
// `/v2/v2` regression (the configured path is honoured, never doubled) and the fake's own strictness (it
// refuses what the venues would refuse), so a lenient fake cannot hide such a bug again.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { startTickerd, stopAll, closeAllClients, waitFor, collectPrices, startFake, metrics } from './lib/harness.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const T = { timeout: 45000 };
after(async () => {
  closeAllClients();
  await stopAll();
});

const SYMBOLS = ['BTC-USD', 'ETH-USD', 'SOL-USD', 'BTC-USDT', 'ETH-USDT', 'SOL-USDT', 'XRP-USDT', 'DOGE-USDT', 'ADA-USDT'];
const fakeExchange = (opts = {}) => startFake({ seed: 14, tickMs: 50, symbols: SYMBOLS, ...opts });

/** The shipped example with every upstream URL's scheme and authority pointed at the fake (path kept). */
function exampleConfig(name, fx) {
  const cfg = JSON.parse(fs.readFileSync(path.join(ROOT, 'etc/examples', `${name}.json`), 'utf8'));
  for (const f of cfg.feeds) {
    if (f.url) f.url = f.url.replace(/^wss?:\/\/[^/?]+/, fx.wsUrl);
    if (f.base_url) f.base_url = f.base_url.replace(/^https?:\/\/[^/?]+/, fx.httpUrl);
    if (f.poll_interval_ms) f.poll_interval_ms = 200;
  }
  delete cfg.server;
  return cfg;
}

const header = (entry, name) => entry.headers.filter(([k]) => k.toLowerCase() === name.toLowerCase()).map(([, v]) => v);
const BROWSER_ONLY = ['origin', 'referer', 'cookie', 'sec-fetch-mode', 'sec-fetch-site', 'sec-fetch-dest', 'sec-ch-ua'];

function checkHeaders(fx, entry) {
  assert.deepEqual(header(entry, 'host'), [`127.0.0.1:${fx.port}`], `${entry.requestLine}: Host with the port`);
  for (const h of BROWSER_ONLY) assert.deepEqual(header(entry, h), [], `${entry.requestLine}: no ${h} header`);
}

// What the venues' documentation shows for these symbols (../shared/upstream-formats.md).
const bnStreams = ['btcusdt', 'ethusdt', 'solusdt', 'xrpusdt', 'dogeusdt'].map((s) => `${s}@bookTicker/${s}@miniTicker`).join('/');
const EXPECT = {
  binance: {
    ws: [`GET /stream?streams=${bnStreams} HTTP/1.1`, []],
    rest: ['GET /api/v3/ticker/bookTicker?symbols=%5B%22BTCUSDT%22,%22ETHUSDT%22,%22SOLUSDT%22,%22XRPUSDT%22,%22DOGEUSDT%22%5D HTTP/1.1'],
    symbols: ['BTC-USDT', 'ETH-USDT', 'SOL-USDT', 'XRP-USDT', 'DOGE-USDT'],
  },
  coinbase: {
    ws: ['GET / HTTP/1.1', ['{"type":"subscribe","product_ids":["BTC-USD","ETH-USD","SOL-USD"],"channels":["ticker","heartbeat"]}']],
    rest: ['GET /products/BTC-USD/ticker HTTP/1.1', 'GET /products/ETH-USD/ticker HTTP/1.1', 'GET /products/SOL-USD/ticker HTTP/1.1'],
    symbols: ['BTC-USD', 'ETH-USD', 'SOL-USD'],
  },
  kraken: {
    ws: ['GET /v2 HTTP/1.1', ['{"method":"subscribe","params":{"channel":"ticker","symbol":["BTC/USD","ETH/USD","SOL/USD"]}}']],
    rest: ['GET /0/public/Ticker?pair=XBTUSD,ETHUSD,SOLUSD HTTP/1.1'],
    symbols: ['BTC-USD', 'ETH-USD', 'SOL-USD'],
  },
  okx: {
    ws: ['GET /ws/v5/public HTTP/1.1', ['{"op":"subscribe","args":[{"channel":"tickers","instId":"BTC-USDT"},{"channel":"tickers","instId":"ETH-USDT"},{"channel":"tickers","instId":"SOL-USDT"}]}']],
    rest: ['GET /api/v5/market/ticker?instId=BTC-USDT HTTP/1.1', 'GET /api/v5/market/ticker?instId=ETH-USDT HTTP/1.1', 'GET /api/v5/market/ticker?instId=SOL-USDT HTTP/1.1'],
    symbols: ['BTC-USDT', 'ETH-USDT', 'SOL-USDT'],
  },
  bybit: {
    ws: ['GET /v5/public/spot HTTP/1.1', [
      '{"op":"subscribe","args":["tickers.BTCUSDT","orderbook.1.BTCUSDT","tickers.ETHUSDT","orderbook.1.ETHUSDT","tickers.SOLUSDT","orderbook.1.SOLUSDT","tickers.XRPUSDT","orderbook.1.XRPUSDT","tickers.DOGEUSDT","orderbook.1.DOGEUSDT"]}',
      '{"op":"subscribe","args":["tickers.ADAUSDT","orderbook.1.ADAUSDT"]}']],
    rest: ['GET /v5/market/tickers?category=spot HTTP/1.1'],
    symbols: ['BTC-USDT', 'ETH-USDT', 'SOL-USDT', 'XRP-USDT', 'DOGE-USDT', 'ADA-USDT'],
  },
  bitstamp: {
    // Bitstamp, like Coinbase, serves WS at the root of its host: this fake gives "/" to Bitstamp.
    fake: { rootWsVenue: 'bitstamp' },
    ws: ['GET / HTTP/1.1', ['btcusd', 'ethusd', 'solusd'].flatMap((p) => [
      `{"event":"bts:subscribe","data":{"channel":"live_trades_${p}"}}`, `{"event":"bts:subscribe","data":{"channel":"order_book_${p}"}}`])],
    rest: ['GET /api/v2/ticker/btcusd/ HTTP/1.1', 'GET /api/v2/ticker/ethusd/ HTTP/1.1', 'GET /api/v2/ticker/solusd/ HTTP/1.1'],
    symbols: ['BTC-USD', 'ETH-USD', 'SOL-USD'],
  },
  coingecko: {
    rest: ['GET /api/v3/simple/price?ids=bitcoin,ethereum&vs_currencies=usd&include_24hr_vol=true&include_last_updated_at=true HTTP/1.1'],
    symbols: ['BTC-USD', 'ETH-USD'],
  },
};

for (const [name, want] of Object.entries(EXPECT)) {
  test(`etc/examples/${name}.json against the strict fake: request line, headers, subscribe bytes, prices`, T, async () => {
    const fx = await fakeExchange(want.fake);
    const cfg = exampleConfig(name, fx);
    const srv = await startTickerd({ config: cfg });
    const seen = await collectPrices(srv, want.symbols, 2);
    for (const [sym, ups] of seen) {
      const u = ups.at(-1);
      assert.ok(cfg.feeds.some((f) => f.name === u.src), `${sym}: from one of the example's feeds (${u.src})`);
      assert.ok(u.bid > 0 && u.ask >= u.bid && u.last > 0, `${sym}: a whole quote`);
    }
    if (want.ws) {
      await waitFor(() => fx.requests({ transport: 'ws' }).some((e) => e.received.length >= want.ws[1].length), { message: 'the subscribe arrived' });
      const ups = fx.requests({ transport: 'ws' });
      assert.ok(ups.length >= 1);
      for (const e of ups) {
        assert.equal(e.requestLine, want.ws[0]);
        assert.equal(e.status, 101, 'upgraded');
        checkHeaders(fx, e);
        assert.deepEqual(e.received.slice(0, want.ws[1].length), want.ws[1], 'subscribe bytes as documented');
      }
    }
    const rest = fx.requests({ transport: 'rest' });
    const lines = [...new Set(rest.map((e) => e.requestLine))].sort();
    assert.deepEqual(lines, [...want.rest].sort(), 'REST request lines as documented');
    for (const e of rest) {
      checkHeaders(fx, e);
      assert.equal(header(e, 'user-agent').length, 1, 'REST sends a User-Agent');
    }
  });
}

test('Kraken: a configured /v2 (or a proxy prefix) is honoured, never doubled to /v2/v2', T, async () => {
  const fx = await fakeExchange();
  const feed = (name, url) => ({ type: 'ws', name, venue: 'kraken', url, symbols: ['BTC-USD'], max_backoff_ms: 300 });
  const srv = await startTickerd({
    config: { feeds: [feed('k-v2', `${fx.wsUrl}/v2`), feed('k-bare', fx.wsUrl), feed('k-prefix', `${fx.wsUrl}/kraken`), feed('k-slash', `${fx.wsUrl}/kraken/v2/`)] },
  });
  await collectPrices(srv, ['BTC-USD'], 1);
  await waitFor(() => fx.requests({ transport: 'ws' }).filter((e) => e.status === 101).length >= 4, { message: 'four upgrades' });
  const lines = fx.requests({ transport: 'ws' }).map((e) => e.requestLine).sort();
  assert.deepEqual([...new Set(lines)], ['GET /kraken/v2 HTTP/1.1', 'GET /v2 HTTP/1.1']);
  assert.ok(!lines.some((l) => l.includes('/v2/v2')));
});

/** A raw HTTP/1.1 upgrade request with exactly these headers; resolves with the status code. */
function rawUpgrade(port, target, headers) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: target, setHost: false, headers: {
      Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', ...headers,
    } });
    req.on('upgrade', (res, socket) => { socket.destroy(); resolve(res.statusCode); });
    req.on('response', (res) => { res.resume(); resolve(res.statusCode); });
    req.on('error', reject);
    req.end();
  });
}

test('the fake is as strict as the venues: exact paths, Host with the port, unknown subscribe fields', T, async () => {
  const fx = await fakeExchange();
  const host = { Host: `127.0.0.1:${fx.port}` };
  assert.equal(await rawUpgrade(fx.port, '/v2', host), 101);
  assert.equal(await rawUpgrade(fx.port, '/v2/v2', host), 404, 'the doubled path is refused');
  assert.equal(await rawUpgrade(fx.port, '/v3', host), 404);
  assert.equal(await rawUpgrade(fx.port, '/v2', { Host: '127.0.0.1' }), 400, 'Host without the non-default port');
  assert.equal(await rawUpgrade(fx.port, '/v2', {}), 400, 'no Host');

  const { WebSocket } = await import('ws');
  const firstReply = (url, send, match) => new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.on('open', () => ws.send(send));
    ws.on('message', (d) => { const m = JSON.parse(d.toString()); if (match(m)) { ws.close(); resolve(m); } });
    ws.on('error', reject);
  });
  const kr = await firstReply(`${fx.wsUrl}/v2`, JSON.stringify({ method: 'subscribe', params: { channel: 'ticker', symbol: ['BTC/USD'], depth: 10 } }), (m) => m.method === 'subscribe');
  assert.equal(kr.success, false);
  assert.match(kr.error, /^EGeneral:Invalid arguments/);
  const cb = await firstReply(`${fx.wsUrl}/`, JSON.stringify({ type: 'subscribe', product_ids: ['BTC-USD'], channels: ['ticker'], extra: 1 }), (m) => m.type === 'error' || m.type === 'subscriptions');
  assert.equal(cb.type, 'error');
  assert.equal(cb.message, 'Failed to subscribe');
});

test('the fake enforces connection-rate limits (Coinbase: burst of 20, then HTTP 429)', T, async () => {
  const fx = await startFake({ seed: 14, tickMs: 0, coinbaseConnBurst: 3, coinbaseConnsPerSec: 0.001 });
  const host = { Host: `127.0.0.1:${fx.port}` };
  const codes = [];
  for (let i = 0; i < 5; i++) codes.push(await rawUpgrade(fx.port, '/', host));
  assert.deepEqual(codes, [101, 101, 101, 429, 429]);
});

test('OKX: the text ping keeps a connection open that the venue closes when the client is silent', T, async () => {
  const fx = await startFake({ seed: 14, tickMs: 50, symbols: SYMBOLS, okxIdleMs: 1500 });
  const feed = (name, extra) => ({ type: 'ws', name, venue: 'okx', url: `${fx.wsUrl}/ws/v5/public`, symbols: ['BTC-USDT'], max_backoff_ms: 300, ...extra });
  const srv = await startTickerd({ config: { feeds: [feed('okx-ping', { ping_interval_ms: 400 })] } });
  await collectPrices(srv, ['BTC-USDT'], 1);
  await new Promise((r) => setTimeout(r, 4000));   // well past okxIdleMs: only the pings keep it open
  const st = fx.state();
  assert.equal(st.connectionsTotal.okx, 1, 'never dropped for silence');
  const ups = fx.requests({ transport: 'ws', venue: 'okx' });
  assert.ok(ups[0].received.filter((m) => m === 'ping').length >= 5, 'text pings sent');
  assert.ok(st.messagesReceived.okx >= 6);
});

test('OKX: recovers from a drop, a service-upgrade notice and a rejected subscribe', T, async () => {
  const fx = await fakeExchange();
  const srv = await startTickerd({ config: { feeds: [{ type: 'ws', name: 'okx', venue: 'okx', url: `${fx.wsUrl}/ws/v5/public`, symbols: ['BTC-USDT', 'ETH-USDT'], max_backoff_ms: 300 }] } });
  await collectPrices(srv, ['BTC-USDT', 'ETH-USDT'], 1);
  for (const kind of ['disconnect', 'server_shutdown']) {
    const before = fx.state().connectionsTotal.okx;
    fx.fault({ venue: 'okx', kind });
    await waitFor(() => fx.state().connectionsTotal.okx > before && fx.state().connections.okx === 1, { message: `reconnected after ${kind}` });
    await collectPrices(srv, ['BTC-USDT', 'ETH-USDT'], 2);
  }
  // A rejected subscribe leaves a silent connection: the next connection subscribes afresh.
  fx.fault({ venue: 'okx', kind: 'reject_subscribe', count: 1 });
  fx.fault({ venue: 'okx', kind: 'disconnect' });
  await waitFor(() => fx.state().faults.every((f) => f.kind !== 'reject_subscribe'), { message: 'the rejection was used' });
  // the rejection is counted as a feed error (REJECT), not dropped silently
  await waitFor(async () => /tickerd_feed_errors_total\{[^}]*feed="okx"[^}]*\} [1-9]/.test((await metrics(srv)).text), { message: 'the rejection counted' });
  fx.fault({ venue: 'okx', kind: 'disconnect' });
  await collectPrices(srv, ['BTC-USDT', 'ETH-USDT'], 2);
});

test('the OKX fake validates the subscribe schema, answers ping with pong, limits connections to 3/s', T, async () => {
  const fx = await startFake({ seed: 14, tickMs: 50, symbols: SYMBOLS, okxConnsPerSec: 0 });
  const { WebSocket } = await import('ws');
  const replies = (send, n) => new Promise((resolve, reject) => {
    const ws = new WebSocket(`${fx.wsUrl}/ws/v5/public`);
    const got = [];
    ws.on('open', () => ws.send(send));
    ws.on('message', (d) => { got.push(d.toString()); if (got.length >= n) { ws.close(); resolve(got); } });
    ws.on('error', reject);
  });
  assert.deepEqual(await replies('ping', 1), ['pong']);
  const extra = JSON.parse((await replies(JSON.stringify({ op: 'subscribe', args: [{ channel: 'tickers', instId: 'BTC-USDT', depth: 5 }] }), 1))[0]);
  assert.equal(extra.event, 'error');
  assert.equal(extra.code, '60012');
  const unknown = JSON.parse((await replies(JSON.stringify({ op: 'subscribe', args: [{ channel: 'tickers', instId: 'NOPE-USDT' }] }), 1))[0]);
  assert.equal(unknown.code, '60018');
  const ok = (await replies(JSON.stringify({ op: 'subscribe', args: [{ channel: 'tickers', instId: 'BTC-USDT' }] }), 2)).map((m) => JSON.parse(m));
  assert.equal(ok[0].event, 'subscribe');
  assert.equal(ok[1].arg.channel, 'tickers');
  assert.match(ok[1].data[0].bidPx, /^\d+\.\d+$/);
  const host = { Host: `127.0.0.1:${fx.port}` };
  assert.equal(await rawUpgrade(fx.port, '/ws/v5/public', host), 101);
  assert.notEqual(await rawUpgrade(fx.port, '/ws/v5/public/ws/v5/public', host), 101, 'the doubled path is refused');
  const limited = await startFake({ seed: 14, tickMs: 0, symbols: SYMBOLS });
  const lh = { Host: `127.0.0.1:${limited.port}` };
  const codes = [];
  for (let i = 0; i < 4; i++) codes.push(await rawUpgrade(limited.port, '/ws/v5/public', lh));
  assert.deepEqual(codes, [101, 101, 101, 429]);
});

test('Bybit: the {"op":"ping"} keepalive keeps a connection the venue would close for silence', T, async () => {
  const fx = await startFake({ seed: 14, tickMs: 50, symbols: SYMBOLS, bybitIdleMs: 1500 });
  const srv = await startTickerd({ config: { feeds: [{ type: 'ws', name: 'bybit', venue: 'bybit', url: `${fx.wsUrl}/v5/public/spot`, symbols: ['BTC-USDT'], ping_interval_ms: 400, max_backoff_ms: 300 }] } });
  await collectPrices(srv, ['BTC-USDT'], 1);
  await new Promise((r) => setTimeout(r, 4000));
  assert.equal(fx.state().connectionsTotal.bybit, 1, 'never dropped for silence');
  const sent = fx.requests({ transport: 'ws', venue: 'bybit' })[0].received;
  assert.ok(sent.filter((m) => m === '{"op":"ping"}').length >= 5, 'pings sent');
  fx.fault({ venue: 'bybit', kind: 'disconnect' });
  await waitFor(() => fx.state().connectionsTotal.bybit === 2 && fx.state().connections.bybit === 1, { message: 'reconnected' });
  await collectPrices(srv, ['BTC-USDT'], 2);
});
