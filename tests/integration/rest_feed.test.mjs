// The `rest` feed adapter against the fake exchange (real wire formats on loopback): for each venue preset,
// prices flow from the fake venue through tickerd to a WebSocket client under the canonical symbol; HTTP
// 429 with Retry-After, HTTP 500, malformed and oversized bodies are survived, counted and recovered from.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTickerd, stopAll, connect, closeAllClients, httpGet, waitFor, updatesOf, metrics, collectPrices, startFake } from './lib/harness.mjs';

const T = { timeout: 40000 };
after(async () => {
  closeAllClients();
  await stopAll();
});

const fakeExchange = (opts = {}) => startFake({ seed: 7, tickMs: 50, ...opts });

function restFeed(fx, venue, symbols, extra = {}) {
  return {
    feeds: [{ type: 'rest', name: `${venue}-rest`, venue, base_url: fx.httpUrl, symbols, poll_interval_ms: 100,
      timeout_ms: 2000, stale_after_ms: 1500, max_backoff_ms: 1000, ...extra }],
  };
}


const venues = [
  { venue: 'binance', symbols: ['BTC-USDT', 'ETH-USDT'], near: { 'BTC-USDT': 65000, 'ETH-USDT': 3400 } },
  { venue: 'coinbase', symbols: ['BTC-USD', 'ETH-USD'], near: { 'BTC-USD': 65000, 'ETH-USD': 3400 } },
  { venue: 'kraken', symbols: ['BTC-USD', 'SOL-USD'], near: { 'BTC-USD': 65000, 'SOL-USD': 150 } },
  { venue: 'coingecko', symbols: [{ symbol: 'BTC-USD', venue: 'bitcoin' }, { symbol: 'ETH-USD', venue: 'ethereum' }],
    near: { 'BTC-USD': 65000, 'ETH-USD': 3400 } },
];

for (const { venue, symbols, near } of venues) {
  test(`${venue} preset: prices flow to clients under canonical symbols`, T, async () => {
    const fx = await fakeExchange();
    const srv = await startTickerd({ config: restFeed(fx, venue, symbols) });
    const names = symbols.map((s) => (typeof s === 'string' ? s : s.symbol));
    const seen = await collectPrices(srv, names);
    for (const [sym, ups] of seen) {
      const u = ups.at(-1);
      assert.equal(u.src, `${venue}-rest`);
      assert.ok(u.bid > 0 && u.ask >= u.bid, `${sym}: bid ${u.bid} ask ${u.ask}`);
      assert.ok(Math.abs(u.last / near[sym] - 1) < 0.2, `${sym}: last ${u.last} not near ${near[sym]}`);
      assert.ok(Number.isInteger(u.ts) && Math.abs(u.ts / 1000 - Date.now()) < 60000, `${sym}: ts ${u.ts}`);
    }
    const h = await httpGet(srv, '/healthz');
    assert.equal(h.status, 200);
    assert.equal(h.json().feeds[0].state, 'live');
  });
}

test('HTTP 429 with Retry-After is honoured, then polling resumes', T, async () => {
  const fx = await fakeExchange();
  const srv = await startTickerd({ config: restFeed(fx, 'binance', ['BTC-USDT']) });
  await collectPrices(srv, ['BTC-USDT'], 1);
  fx.fault({ venue: 'binance', kind: 'http_status', status: 429, retry_after: 2, count: 1 });
  await waitFor(() => srv.stderr().includes('HTTP 429'), { timeoutMs: 3000, message: 'the 429 is logged' });
  const t429 = Date.now();
  await new Promise((r) => setTimeout(r, 1200));
  assert.ok(srv.alive());
  // Prices flow again, but not before Retry-After has elapsed.
  await collectPrices(srv, ['BTC-USDT'], 2, 6000);
  assert.ok(Date.now() - t429 >= 1900, 'polling resumed before Retry-After elapsed');
  assert.equal((await metrics(srv)).sum('tickerd_feed_rate_limited_total', { feed: 'binance-rest' }), 1);
});

test('HTTP 500, malformed and oversized bodies: no crash, the feed goes down and recovers', T, async () => {
  const fx = await fakeExchange();
  const srv = await startTickerd({ config: restFeed(fx, 'kraken', ['BTC-USD'], { max_body_bytes: 65536 }) });
  await collectPrices(srv, ['BTC-USD'], 1);
  fx.fault({ venue: 'kraken', kind: 'http_status', status: 500, count: -1 });
  await waitFor(async () => (await httpGet(srv, '/healthz')).status === 503,
    { timeoutMs: 5000, message: 'healthz 503 while the only feed fails' });
  const down = (await httpGet(srv, '/healthz')).json().feeds[0];
  assert.equal(down.state, 'down');
  assert.match(down.detail, /HTTP 500/);
  fx.fault({ venue: 'kraken', kind: 'clear' });
  fx.fault({ venue: 'kraken', kind: 'malformed', count: 3 });
  fx.fault({ venue: 'kraken', kind: 'huge_frame', count: 1 });
  await waitFor(async () => (await httpGet(srv, '/healthz')).status === 200,
    { timeoutMs: 20000, message: 'the feed is live again' });
  await collectPrices(srv, ['BTC-USD'], 2);
  assert.ok(srv.alive());
  assert.match(srv.stderr(), /larger than max_body_bytes|malformed|invalid|JSON/i);
  const m = await metrics(srv);
  assert.ok(m.sum('tickerd_feed_errors_total', { feed: 'kraken-rest' }) >= 1, 'HTTP 500s counted');
  assert.ok(m.sum('tickerd_feed_malformed_total', { feed: 'kraken-rest' }) >= 1, 'malformed bodies counted');
  assert.ok(m.sum('tickerd_feed_oversized_total', { feed: 'kraken-rest' }) >= 1, 'the oversized body counted');
});

test('a bad rest feed config names the key and exits 2', T, async () => {
  const { runTickerd } = await import('./lib/harness.mjs');
  const bad = [
    [{ type: 'rest', venue: 'nope', symbols: ['BTC-USD'] }, /feeds\[0\]\.venue/],
    [{ type: 'rest', venue: 'binance' }, /feeds\[0\]\.symbols/],
    [{ type: 'rest', venue: 'binance', symbols: ['btc'] }, /feeds\[0\]\.symbols\[0\]/],
    [{ type: 'rest', venue: 'coingecko', symbols: ['BTC-USD'] }, /feeds\[0\]\.symbols\[0\]/],
    [{ type: 'rest', venue: 'binance', symbols: ['BTC-USDT'], poll_interval_ms: 1 }, /feeds\[0\]\.poll_interval_ms/],
    [{ type: 'rest', venue: 'binance', symbols: ['BTC-USDT'], base_url: 'ftp://x' }, /feeds\[0\]\.base_url/],
  ];
  for (const [feed, re] of bad) {
    const r = await runTickerd({ config: { feeds: [feed] } });
    assert.equal(r.code, 2, `exit code for ${JSON.stringify(feed)}: ${r.stderr}`);
    assert.match(r.stderr, re);
  }
});
