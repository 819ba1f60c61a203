// The generic JSON mapper ("type": "rest", "venue": "generic", feeds/venue_generic.c) against the fake
// exchange's made-up /custom routes and against real venue shapes: prices reach a /ws client under canonical
// symbols from a {symbols} and a {symbol} url, the shipped etc/examples/generic.json runs end to end (host
// rewritten to loopback), bad bodies, venue errors inside HTTP 200, HTTP 500 and 429 are counted and
// recovered from like a preset's, and a bad mapping exits 2 naming its key (at startup and in --check-config).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTickerd, stopAll, closeAllClients, waitFor, collectPrices, startFake, metrics, feedHealth, runTickerd, tempDir } from './lib/harness.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const T = { timeout: 45000 };
after(async () => {
  closeAllClients();
  await stopAll();
});

const SYMBOLS = ['BTC-USD', 'ETH-USD', 'SOL-USD', 'BTC-USDT', 'ETH-USDT'];
const fakeExchange = () => startFake({ seed: 31, tickMs: 50, symbols: SYMBOLS });

/** /custom/quotes?ids=A,B → {"ok","result":{"quotes":[{"sym","px":{"last","bid","ask"},"vol24","updated"}]}} */
const listFeed = (fx, extra = {}) => ({
  type: 'rest', name: 'custom-list', venue: 'generic', url: `${fx.httpUrl}/custom/quotes?ids={symbols}`,
  symbols: ['BTC-USD', 'ETH-USD'], poll_interval_ms: 100, timeout_ms: 1000, stale_after_ms: 1500, max_backoff_ms: 500,
  map: { items: 'result.quotes', symbol: 'sym', last: 'px.last', bid: 'px.bid', ask: 'px.ask', volume: 'vol24', ts: 'updated', ts_unit: 'ms', error: 'error.message' },
  ...extra,
});

test('generic: one {symbols} request, quotes found by their paths, reach a /ws client', T, async () => {
  const fx = await fakeExchange();
  const srv = await startTickerd({ config: { feeds: [listFeed(fx)] } });
  const seen = await collectPrices(srv, ['BTC-USD', 'ETH-USD'], 3);
  const st = fx.state().prices;
  for (const [sym, ups] of seen) {
    const u = ups.at(-1);
    assert.equal(u.src, 'custom-list');
    assert.ok(u.bid > 0 && u.ask > u.bid && u.volume > 0, `${sym}: a whole quote`);
    assert.ok(Math.abs(u.last / st[sym].last - 1) < 0.01, `${sym}: ${u.last} near the fake's ${st[sym].last}`);
    assert.ok(Math.abs(u.ts / 1000 - Date.now()) < 60000, `${sym}: ts from "updated" (ms)`);
  }
  const lines = [...new Set(fx.requests({ transport: 'rest' }).map((e) => e.requestLine))];
  assert.deepEqual(lines, ['GET /custom/quotes?ids=BTC-USD,ETH-USD HTTP/1.1']);
  assert.equal((await feedHealth(srv, 'custom-list')).state, 'live');
});

test('generic: one request per {symbol}, data.0.c paths, RFC3339 time, venue spellings', T, async () => {
  const fx = await fakeExchange();
  const feed = {
    type: 'rest', name: 'custom-one', venue: 'generic', url: `${fx.httpUrl}/custom/quote/{symbol}`, poll_interval_ms: 100,
    symbols: ['SOL-USD', { symbol: 'ETH-USDT', venue: 'ETH-USDT' }],
    map: { last: 'data.0.c', bid: 'data.0.b', ask: 'data.0.a', ts: 'data.0.t', ts_unit: 'rfc3339' },
  };
  const srv = await startTickerd({ config: { feeds: [feed] } });
  const seen = await collectPrices(srv, ['SOL-USD', 'ETH-USDT'], 2);
  for (const [sym, ups] of seen) {
    const u = ups.at(-1);
    assert.ok(u.bid > 0 && u.ask > u.bid && u.last > 0, `${sym}: a whole quote`);
    assert.equal(u.volume, 0, `${sym}: no volume mapped`);
  }
  const lines = [...new Set(fx.requests({ transport: 'rest' }).map((e) => e.requestLine))].sort();
  assert.deepEqual(lines, ['GET /custom/quote/ETH-USDT HTTP/1.1', 'GET /custom/quote/SOL-USD HTTP/1.1']);
});

test('generic: bad bodies, errors in HTTP 200, HTTP 500 and 429 are counted; the feed recovers', T, async () => {
  const fx = await fakeExchange();
  const srv = await startTickerd({ config: { feeds: [listFeed(fx, { max_body_bytes: 65536 })] } });
  await collectPrices(srv, ['BTC-USD', 'ETH-USD'], 1);
  const count = async (name) => (await metrics(srv)).sum(name, { feed: 'custom-list' });
  for (const [kind, n] of [['malformed', 2], ['wrong_types', 2]]) {
    const before = await count('tickerd_feed_malformed_total');
    fx.fault({ venue: 'custom', kind, count: n });
    await waitFor(async () => (await count('tickerd_feed_malformed_total')) >= before + n, { timeoutMs: 6000, message: `${kind} counted as malformed` });
  }
  fx.fault({ venue: 'custom', kind: 'huge_frame', count: 1 });
  await waitFor(async () => (await count('tickerd_feed_oversized_total')) === 1, { timeoutMs: 6000, message: 'the oversized body counted' });
  fx.fault({ venue: 'custom', kind: 'http_status', status: 500, count: -1 });
  // the detail names the 500 with the body's mapped error text (the error path is read on a 500 too)
  await waitFor(async () => { const f = await feedHealth(srv, 'custom-list'); return f.state === 'down' && /HTTP 500: Internal Server Error/.test(f.detail); },
    { timeoutMs: 5000, message: 'down with the 500 in the detail' });
  fx.fault({ venue: 'custom', kind: 'clear' });
  await waitFor(async () => (await feedHealth(srv, 'custom-list')).state === 'live', { timeoutMs: 8000, message: 'live again' });
  fx.fault({ venue: 'custom', kind: 'http_status', status: 429, retry_after: 1, count: 1 });
  await waitFor(async () => (await count('tickerd_feed_rate_limited_total')) === 1, { timeoutMs: 5000, message: 'the 429 counted' });
  await collectPrices(srv, ['BTC-USD', 'ETH-USD'], 2);
  assert.ok((await count('tickerd_feed_errors_total')) >= 1);
  assert.ok(srv.alive());

  // a venue error inside HTTP 200 (the mapped "error" path): counted as an error with the venue's words
  const bad = await startTickerd({ config: { feeds: [listFeed(fx, { name: 'custom-bad', symbols: ['BTC-USD', 'XRP-USD'] })] } });
  await waitFor(() => /unknown id XRP-USD/.test(bad.stderr()), { timeoutMs: 5000, message: 'the venue error logged' });
  await waitFor(async () => (await metrics(bad)).sum('tickerd_feed_errors_total', { feed: 'custom-bad' }) >= 1, { message: 'counted' });
  assert.match((await feedHealth(bad, 'custom-bad')).detail, /unknown id XRP-USD/);
});

/** WS /custom/ws: {"action":"subscribe","symbols":[...]} → ack, then {"type":"tick","data":{quote}} per change. */
const wsFeed = (fx, extra = {}) => ({
  type: 'ws', name: 'custom-ws', venue: 'generic', url: `${fx.wsUrl}/custom/ws`, symbols: ['BTC-USD', 'ETH-USD'],
  subscribe: '{"action":"subscribe","symbols":{symbols}}', silence_timeout_ms: 1500, max_backoff_ms: 300,
  map: { symbol: 'data.sym', last: 'data.px.last', bid: 'data.px.bid', ask: 'data.px.ask', volume: 'data.vol24', ts: 'data.updated', match: { type: 'tick' } },
  ...extra,
});

test('generic over WebSocket: the subscribe template sent as configured, ticks mapped, acks ignored, faults recovered', T, async () => {
  const fx = await fakeExchange();
  const srv = await startTickerd({ config: { feeds: [wsFeed(fx)] } });
  const seen = await collectPrices(srv, ['BTC-USD', 'ETH-USD'], 3);
  const st = fx.state().prices;
  for (const [sym, ups] of seen) {
    const u = ups.at(-1);
    assert.equal(u.src, 'custom-ws');
    assert.ok(u.bid > 0 && u.ask > u.bid && u.volume > 0, `${sym}: a whole quote`);
    assert.ok(Math.abs(u.last / st[sym].last - 1) < 0.01, `${sym}: ${u.last} near the fake's ${st[sym].last}`);
  }
  const ws = fx.requests({ transport: 'ws' });
  assert.equal(ws[0].requestLine, 'GET /custom/ws HTTP/1.1');
  assert.deepEqual(ws[0].received, ['{"action":"subscribe","symbols":["BTC-USD","ETH-USD"]}']);
  assert.equal((await feedHealth(srv, 'custom-ws')).state, 'live');
  const count = async (name) => (await metrics(srv)).sum(name, { feed: 'custom-ws' });
  assert.equal(await count('tickerd_feed_malformed_total'), 0, 'the "subscribed" ack is not a malformed tick');
  // a tick whose last is an object is malformed, counted, and the stream goes on
  fx.fault({ venue: 'custom', kind: 'wrong_types', count: 2 });
  await waitFor(async () => (await count('tickerd_feed_malformed_total')) >= 2, { timeoutMs: 6000, message: 'wrong types counted' });
  fx.fault({ venue: 'custom', kind: 'disconnect' });
  await waitFor(async () => (await metrics(srv)).sum('tickerd_feed_reconnects_total', { feed: 'custom-ws' }) >= 1, { timeoutMs: 6000, message: 'reconnected' });
  await collectPrices(srv, ['BTC-USD', 'ETH-USD'], 2);
  assert.equal(fx.requests({ transport: 'ws' }).length, 2, 'one reconnect, subscribed again');
});

test('generic over WebSocket: one message per {symbol}; bad template and missing symbol path exit 2', T, async () => {
  const fx = await fakeExchange();
  const srv = await startTickerd({ config: { feeds: [wsFeed(fx, { subscribe: '{"action":"subscribe","symbols":["{symbol}"]}' })] } });
  await collectPrices(srv, ['BTC-USD', 'ETH-USD'], 2);
  assert.deepEqual(fx.requests({ transport: 'ws' })[0].received.slice(0, 2),
    ['{"action":"subscribe","symbols":["BTC-USD"]}', '{"action":"subscribe","symbols":["ETH-USD"]}']);
  const bad = [
    [{ subscribe: '{"a":{symbol},"b":{symbols}}' }, /feeds\[0\]\.subscribe: use \{symbol\} or \{symbols\}, not both/],
    [{ map: { last: 'data.px.last' } }, /feeds\[0\]\.map\.symbol: required with 2 symbols on one stream/],
    [{ url: '' }, /feeds\[0\]\.url: required for venue generic/],
    [{ venue: 'okx', map: undefined }, /feeds\[0\]\.subscribe: only for "venue": "generic"/],
  ];
  for (const [extra, re] of bad) {
    const r = await runTickerd({ config: { feeds: [wsFeed(fx, extra)] } });
    assert.equal(r.code, 2, JSON.stringify(extra));
    assert.match(r.stderr, re);
  }
});

test('generic: the shipped etc/examples/generic.json (CoinGecko and OKX shapes) runs end to end', T, async () => {
  const fx = await fakeExchange();
  const cfg = JSON.parse(fs.readFileSync(path.join(ROOT, 'etc/examples/generic.json'), 'utf8'));
  for (const f of cfg.feeds) {
    f.url = f.url.replace(/^https?:\/\/[^/?]+/, fx.httpUrl);
    f.poll_interval_ms = 200;
  }
  delete cfg.server;
  const srv = await startTickerd({ config: cfg });
  const seen = await collectPrices(srv, ['BTC-USD', 'ETH-USD', 'BTC-USDT', 'ETH-USDT'], 1);
  assert.equal(seen.get('BTC-USD').at(-1).src, 'gecko-generic');
  assert.equal(seen.get('BTC-USDT').at(-1).src, 'okx-generic');
  for (const [sym, ups] of seen) assert.ok(ups.at(-1).last > 0, sym);
  const lines = [...new Set(fx.requests({ transport: 'rest' }).map((e) => e.requestLine))].sort();
  assert.deepEqual(lines, [
    'GET /api/v3/simple/price?ids=bitcoin,ethereum&vs_currencies=usd&include_24hr_vol=true&include_last_updated_at=true HTTP/1.1',
    'GET /api/v5/market/ticker?instId=BTC-USDT HTTP/1.1',
    'GET /api/v5/market/ticker?instId=ETH-USDT HTTP/1.1',
  ]);
});

test('generic: a bad mapping or url exits 2 naming the key, at startup and in --check-config', T, async () => {
  const base = { type: 'rest', name: 'g', venue: 'generic', url: 'http://127.0.0.1:9/q?ids={symbols}', symbols: ['BTC-USD', 'ETH-USD'], map: { symbol: 's', last: 'p' } };
  const bad = [
    [{ map: { symbol: 's', last: 'data..c' } }, /feeds\[1\]\.map\.last: bad path "data\.\.c"/],
    [{ map: { symbol: 's', last: 'p', bidd: 'b' } }, /feeds\[1\]\.map\.bidd: unknown key/],
    [{ map: { symbol: 's', bid: 'b' } }, /feeds\[1\]\.map: give "last"/],
    [{ map: { last: 'p' } }, /feeds\[1\]\.map\.symbol: required/],
    [{ map: { symbol: 's', last: 'p', ts: 't', ts_unit: 'minutes' } }, /feeds\[1\]\.map\.ts_unit/],
    [{ map: undefined }, /feeds\[1\]\.map: required/],
    [{ url: 'http://h/q?ids={sym}' }, /feeds\[1\]\.url: unknown placeholder/],
    [{ url: undefined }, /feeds\[1\]\.url: required/],
    [{ base_url: 'http://h' }, /feeds\[1\]\.base_url: not for venue generic/],
    [{ venue: 'okx', map: undefined }, /feeds\[1\]\.url: only for "venue": "generic"/],
  ];
  const dir = tempDir();
  for (const [over, re] of bad) {
    const feed = { ...base, ...over };
    for (const k of Object.keys(feed)) if (feed[k] === undefined) delete feed[k];
    const config = { feeds: [{ type: 'sim', name: 'sim' }, feed] };
    const r = await runTickerd({ config });
    assert.equal(r.code, 2, `${JSON.stringify(over)}: ${r.stderr}`);
    assert.match(r.stderr, re);
    const file = path.join(dir, 'check.json');
    fs.writeFileSync(file, JSON.stringify({ ...config, server: { port: 0 } }));
    const c = await runTickerd({ args: ['--check-config', file] });
    assert.equal(c.code, 2, `--check-config ${JSON.stringify(over)}: ${c.stdout}${c.stderr}`);
    assert.match(c.stdout + c.stderr, re);
  }
});
