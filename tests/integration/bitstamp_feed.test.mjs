// The Bitstamp v2 preset (feeds/venue_bitstamp.c) against the strict fake exchange, over both adapters: prices
// reach a /ws client under canonical symbols; the `ws` feed recovers from every fault the fake injects on a
// WebSocket (abrupt disconnect, bts:request_reconnect, stall, malformed / wrong-typed / oversized frames,
// out-of-order and duplicate messages, a rejected subscribe, a handshake refused by the request budget), the
// bts:heartbeat keepalive keeps a connection the venue would close for silence, and the `rest` feed survives
// HTTP 429 / 500 / 404, held requests and bad bodies. The shipped etc/examples/bitstamp.json is checked byte
// for byte in venue_gateways.test.mjs.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startTickerd, stopAll, closeAllClients, waitFor, collectPrices, startFake, metrics, feedHealth, connect, updatesOf, httpGet } from './lib/harness.mjs';

const T = { timeout: 45000 };
after(async () => {
  closeAllClients();
  await stopAll();
});

const SYMBOLS = ['BTC-USD', 'ETH-USD'];
// Bitstamp lives at "/" of its host: the fake gives its root to Bitstamp (Coinbase then answers at /coinbase).
const fakeExchange = (opts = {}) => startFake({ seed: 21, tickMs: 50, rootWsVenue: 'bitstamp', ...opts });
const wsFeed = (fx, extra = {}) => ({
  type: 'ws', name: 'bitstamp', venue: 'bitstamp', url: fx.wsUrl, symbols: SYMBOLS, silence_timeout_ms: 1500, max_backoff_ms: 300, ...extra,
});
const restFeed = (fx, extra = {}) => ({
  type: 'rest', name: 'bitstamp-rest', venue: 'bitstamp', base_url: fx.httpUrl, symbols: SYMBOLS, poll_interval_ms: 100,
  timeout_ms: 1000, stale_after_ms: 1500, max_backoff_ms: 500, ...extra,
});
const updates = async (srv, name) => (await feedHealth(srv, name)).updates;
const moreUpdates = async (srv, name, n = 3) => {
  const before = await updates(srv, name);
  await waitFor(async () => (await updates(srv, name)) >= before + n, { timeoutMs: 6000, message: `${name}: updates go on` });
};

/** Inject each message fault in turn and wait until the feed counted it (malformed or oversized). */
async function faultsCounted(fx, srv, feed, kinds) {
  let m;
  let want = 0;
  for (const [kind, count] of Object.entries(kinds)) {
    want += count;
    fx.fault({ venue: 'bitstamp', kind, count });
    m = await waitFor(async () => {
      const x = await metrics(srv);
      return x.sum('tickerd_feed_malformed_total', { feed }) + x.sum('tickerd_feed_oversized_total', { feed }) >= want ? x : false;
    }, { timeoutMs: 8000, message: `${feed}: ${kind} counted` });
  }
  return m;
}

/** One GET against the fake (spends one unit of Bitstamp's request budget). */
const get = (fx, path) => new Promise((resolve, reject) => {
  http.get(`${fx.httpUrl}${path}`, { agent: false }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); }).on('error', reject);
});

test('bitstamp ws: trades and the book top reach a /ws client as whole quotes under canonical symbols', T, async () => {
  const fx = await fakeExchange();
  const srv = await startTickerd({ config: { feeds: [wsFeed(fx)] } });
  const seen = await collectPrices(srv, SYMBOLS, 4);
  const near = { 'BTC-USD': 65000, 'ETH-USD': 3400 };
  for (const [sym, ups] of seen) {
    for (const u of ups) {
      assert.equal(u.src, 'bitstamp');
      assert.ok(u.bid > 0 && u.ask > u.bid, `${sym}: bid ${u.bid} ask ${u.ask}`);
      assert.ok(Math.abs(u.last / near[sym] - 1) < 0.2, `${sym}: last ${u.last}`);
    }
    for (let i = 1; i < ups.length; i++) assert.ok(ups[i].ts >= ups[i - 1].ts, `${sym}: ts went backwards`);
  }
  const st = fx.state();
  assert.equal(st.connections.bitstamp, 1);
  assert.equal(st.connections.coinbase, 0, 'the connection at "/" is Bitstamp\'s');
  const [up] = fx.requests({ transport: 'ws', venue: 'bitstamp' });
  assert.equal(up.requestLine, 'GET / HTTP/1.1');
  assert.equal(up.received.length, 4, 'one bts:subscribe per channel, two channels per pair');
  assert.equal((await feedHealth(srv, 'bitstamp')).state, 'live');
});

test('bitstamp ws: recovers from an abrupt disconnect and from bts:request_reconnect (at once)', T, async () => {
  const fx = await fakeExchange();
  const srv = await startTickerd({ config: { feeds: [wsFeed(fx, { max_backoff_ms: 30000 })] } });
  await collectPrices(srv, SYMBOLS, 1);
  fx.fault({ venue: 'bitstamp', kind: 'disconnect' });
  await waitFor(() => fx.state().connectionsTotal.bitstamp === 2 && fx.state().connections.bitstamp === 1, { message: 'reconnected after the drop' });
  await collectPrices(srv, SYMBOLS, 2);
  const t0 = Date.now();
  fx.fault({ venue: 'bitstamp', kind: 'server_shutdown', graceMs: 2000 });
  await waitFor(() => /announced a disconnect; reconnecting now/.test(srv.stderr()), { timeoutMs: 3000, message: 'bts:request_reconnect noticed' });
  await waitFor(() => fx.state().connectionsTotal.bitstamp === 3, { timeoutMs: 3000, message: 'reconnected at once' });
  assert.ok(Date.now() - t0 < 2000, 'reconnected before the venue closed (no backoff, max_backoff_ms 30000)');
  await moreUpdates(srv, 'bitstamp');
  assert.ok((await metrics(srv)).sum('tickerd_feed_reconnects_total', { feed: 'bitstamp' }) >= 2, 'reconnects counted');
  // every connection subscribed afresh, with the same bytes
  const ups = fx.requests({ transport: 'ws', venue: 'bitstamp' });
  assert.equal(ups.length, 3);
  for (const e of ups) assert.deepEqual(e.received.slice(0, 4), ups[0].received.slice(0, 4));
});

test('bitstamp ws: a stalled connection is detected by silence, re-opened, and live again after the stall', T, async () => {
  const fx = await fakeExchange();
  const srv = await startTickerd({ config: { feeds: [wsFeed(fx)] } });
  await collectPrices(srv, SYMBOLS, 1);
  fx.fault({ venue: 'bitstamp', kind: 'stall', ms: 4000 });
  await waitFor(() => /silent for \d+ ms; reconnecting/.test(srv.stderr()), { timeoutMs: 5000, message: 'silence detected' });
  await waitFor(async () => (await feedHealth(srv, 'bitstamp')).state === 'down', { timeoutMs: 3000, message: 'feed reported down' });
  fx.fault({ venue: 'bitstamp', kind: 'clear' });
  await waitFor(async () => (await feedHealth(srv, 'bitstamp')).state === 'live', { timeoutMs: 8000, message: 'live again' });
  await collectPrices(srv, SYMBOLS, 2);
});

test('bitstamp ws: malformed, wrong-typed and oversized frames are dropped and counted; the stream goes on', T, async () => {
  const fx = await fakeExchange();
  const srv = await startTickerd({ config: { feeds: [wsFeed(fx, { max_message_bytes: 65536 })] } });
  await collectPrices(srv, SYMBOLS, 1);
  // one kind at a time: a message taking several faults at once would be counted once
  const m = await faultsCounted(fx, srv, 'bitstamp', { malformed: 3, wrong_types: 3, huge_frame: 1 });
  assert.equal(m.sum('tickerd_feed_malformed_total', { feed: 'bitstamp' }), 6);
  assert.equal(m.sum('tickerd_feed_oversized_total', { feed: 'bitstamp' }), 1);
  assert.match(srv.stderr(), /malformed message/);
  await moreUpdates(srv, 'bitstamp');
  assert.equal((await feedHealth(srv, 'bitstamp')).state, 'live');
});

test('bitstamp ws: out-of-order and duplicate messages never move a client\'s ts backwards', T, async () => {
  const fx = await fakeExchange();
  const srv = await startTickerd({ config: { feeds: [wsFeed(fx)] } });
  await collectPrices(srv, SYMBOLS, 1);
  const c = await connect(srv);
  assert.equal((await c.request({ op: 'subscribe', symbols: SYMBOLS, id: 1 })).op, 'ack');
  fx.fault({ venue: 'bitstamp', kind: 'out_of_order', count: 6 });
  fx.fault({ venue: 'bitstamp', kind: 'duplicate', count: 6 });
  await waitFor(() => fx.state().faults.length === 0, { timeoutMs: 5000, message: 'the faults were used' });
  const last = new Map();
  const deadline = Date.now() + 1500;
  let n = 0;
  while (Date.now() < deadline) {
    const msg = await c.next((x) => x.op === 'snapshot' || x.op === 'update', 3000, 'prices');
    for (const u of updatesOf(msg)) {
      if (last.has(u.symbol)) assert.ok(u.ts >= last.get(u.symbol), `${u.symbol}: ts ${u.ts} after ${last.get(u.symbol)}`);
      last.set(u.symbol, u.ts);
      n++;
    }
  }
  c.close();
  assert.ok(n > 3, `${n} updates after the faults`);
});

test('bitstamp ws: a rejected subscribe (bts:error) is counted and reported; a new connection subscribes afresh', T, async () => {
  const fx = await fakeExchange();
  fx.fault({ venue: 'bitstamp', kind: 'reject_subscribe', count: -1 });
  const srv = await startTickerd({ config: { feeds: [wsFeed(fx)] } });
  await waitFor(() => /subscription rejected/.test(srv.stderr()), { timeoutMs: 5000, message: 'rejection logged' });
  const f = await feedHealth(srv, 'bitstamp');
  assert.notEqual(f.state, 'live');
  assert.match(f.detail, /rejected|Bad subscription string/);
  await waitFor(async () => (await metrics(srv)).sum('tickerd_feed_errors_total', { feed: 'bitstamp' }) >= 1, { message: 'the rejection counted' });
  assert.equal((await httpGet(srv, '/healthz')).status, 503);
  fx.fault({ venue: 'bitstamp', kind: 'clear' });
  fx.fault({ venue: 'bitstamp', kind: 'disconnect' });
  await collectPrices(srv, SYMBOLS, 2);
  assert.equal((await feedHealth(srv, 'bitstamp')).state, 'live');
});

test('bitstamp ws: a handshake refused with HTTP 429 (request budget) is retried with backoff', T, async () => {
  const fx = await fakeExchange({ bitstampMaxRequestsPerSec: 1 });
  const srv = await startTickerd({ config: { feeds: [wsFeed(fx)] } });
  await collectPrices(srv, SYMBOLS, 1);
  await new Promise((r) => setTimeout(r, 1100));
  assert.equal(await get(fx, '/api/v2/ticker/btcusd/'), 200, 'the test spends this second\'s budget');
  fx.fault({ venue: 'bitstamp', kind: 'disconnect' });
  await waitFor(() => fx.requests({ transport: 'ws', venue: 'bitstamp' }).some((e) => e.status === 429), { timeoutMs: 3000, message: 'a refused handshake' });
  await waitFor(() => fx.state().connections.bitstamp === 1, { timeoutMs: 5000, message: 'connected again' });
  await collectPrices(srv, SYMBOLS, 2);
  assert.ok(srv.alive());
});

test('bitstamp ws: the bts:heartbeat keepalive keeps a connection the venue closes when the client is silent', T, async () => {
  const fx = await fakeExchange({ bitstampIdleMs: 1500 });
  const srv = await startTickerd({ config: { feeds: [wsFeed(fx, { ping_interval_ms: 400, symbols: ['BTC-USD'] })] } });
  await collectPrices(srv, ['BTC-USD'], 1);
  await new Promise((r) => setTimeout(r, 4000));   // well past bitstampIdleMs: only the heartbeats keep it open
  assert.equal(fx.state().connectionsTotal.bitstamp, 1, 'never dropped for silence');
  const sent = fx.requests({ transport: 'ws', venue: 'bitstamp' })[0].received;
  assert.ok(sent.filter((m) => m === '{"event":"bts:heartbeat"}').length >= 5, 'heartbeats sent');
  assert.equal((await metrics(srv)).sum('tickerd_feed_malformed_total', { feed: 'bitstamp' }), 0, 'the answers are understood');
});

test('bitstamp rest: HTTP 429 with Retry-After is honoured, then polling resumes', T, async () => {
  const fx = await fakeExchange();
  // One pair, so one request: rest.c waits out Retry-After per request (easy handle), not per feed.
  const srv = await startTickerd({ config: { feeds: [restFeed(fx, { symbols: ['BTC-USD'] })] } });
  await collectPrices(srv, ['BTC-USD'], 1);
  fx.fault({ venue: 'bitstamp', kind: 'http_status', status: 429, retry_after: 2, count: 1 });
  await waitFor(() => srv.stderr().includes('HTTP 429'), { timeoutMs: 3000, message: 'the 429 is logged' });
  const t429 = Date.now();
  const served = fx.state().requestsServed.bitstamp;
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(fx.state().requestsServed.bitstamp, served, 'no request while Retry-After runs');
  await collectPrices(srv, ['BTC-USD'], 2, 6000);
  assert.ok(Date.now() - t429 >= 1900, 'polling resumed before Retry-After elapsed');
  assert.equal((await metrics(srv)).sum('tickerd_feed_rate_limited_total', { feed: 'bitstamp-rest' }), 1);
});

test('bitstamp rest: prices reach a /ws client; 500, held requests and bad bodies recovered from', T, async () => {
  const fx = await fakeExchange();
  const srv = await startTickerd({ config: { feeds: [restFeed(fx, { max_body_bytes: 65536 })] } });
  const seen = await collectPrices(srv, SYMBOLS, 2);
  for (const [sym, ups] of seen) {
    const u = ups.at(-1);
    assert.equal(u.src, 'bitstamp-rest');
    assert.ok(u.bid > 0 && u.ask > u.bid && u.last > 0 && u.volume > 0, `${sym}: a whole quote`);
  }
  // 500 until cleared: down, then live again
  fx.fault({ venue: 'bitstamp', kind: 'http_status', status: 500, count: -1 });
  await waitFor(async () => (await feedHealth(srv, 'bitstamp-rest')).state === 'down', { timeoutMs: 5000, message: 'down while failing' });
  assert.match((await feedHealth(srv, 'bitstamp-rest')).detail, /HTTP 500|Internal Server Error/);
  fx.fault({ venue: 'bitstamp', kind: 'clear' });
  await waitFor(async () => (await feedHealth(srv, 'bitstamp-rest')).state === 'live', { timeoutMs: 8000, message: 'live after the 500s' });
  // a stall holds the requests past timeout_ms
  fx.fault({ venue: 'bitstamp', kind: 'stall', ms: 2500 });
  await waitFor(async () => (await feedHealth(srv, 'bitstamp-rest')).state === 'down', { timeoutMs: 5000, message: 'down while stalled' });
  await waitFor(async () => (await feedHealth(srv, 'bitstamp-rest')).state === 'live', { timeoutMs: 8000, message: 'live after the stall' });
  // bad bodies
  const m = await faultsCounted(fx, srv, 'bitstamp-rest', { malformed: 2, wrong_types: 2, huge_frame: 1 });
  assert.equal(m.sum('tickerd_feed_malformed_total', { feed: 'bitstamp-rest' }), 4);
  assert.ok(m.sum('tickerd_feed_errors_total', { feed: 'bitstamp-rest' }) >= 1, 'the HTTP 500s counted');
  await waitFor(async () => (await feedHealth(srv, 'bitstamp-rest')).state === 'live', { timeoutMs: 8000, message: 'live after the bad bodies' });
  await collectPrices(srv, SYMBOLS, 2);
  assert.ok(srv.alive());
});

test('bitstamp rest: an unknown pair (HTTP 404 {"message":"Not Found"}) is an error with the venue\'s words', T, async () => {
  const fx = await fakeExchange();
  const srv = await startTickerd({ config: { feeds: [restFeed(fx, { symbols: ['BTC-USD', 'XRP-USD'] })] } });
  await waitFor(() => /Not Found/.test(srv.stderr()), { timeoutMs: 5000, message: 'the 404 logged with its message' });
  assert.ok(fx.requests({ transport: 'rest' }).some((e) => e.requestLine === 'GET /api/v2/ticker/xrpusd/ HTTP/1.1'));
  await waitFor(async () => (await metrics(srv)).sum('tickerd_feed_errors_total', { feed: 'bitstamp-rest' }) >= 1, { message: 'the 404 counted' });
});
