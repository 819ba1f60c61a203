// Large universes on Binance (docs/feeds.md, "Several connections and connection age"): a ws feed with more
// symbols than one connection may carry (512: two streams each, 1024 per connection) is spread over several
// upstream connections, each within the limit the strict fake enforces, and is still one feed for /healthz
// and /metrics; connections are replaced make-before-break before the venue's age limit (the fake's
// maxConnMs stands in for Binance's 24 h), so a client sees contiguous seqs, no stale value, no duplicate and
// no step back; and a connection the venue closes first is an ordinary reconnect.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { startTickerd, stopAll, connect, closeAllClients, waitFor, runTickerd, metrics, feedHealth, startFake, UpdateTracker, updatesOf, sleep } from './lib/harness.mjs';

const T = { timeout: 90000 };
after(async () => {
  closeAllClients();
  await stopAll();
});

const universe = (n) => Array.from({ length: n }, (_, i) => `S${String(i + 1).padStart(4, '0')}-USDT`);
const binanceFeed = (fx, symbols, extra = {}) => ({
  type: 'ws', name: 'bn', venue: 'binance', url: fx.wsUrl, symbols, silence_timeout_ms: 3000, max_backoff_ms: 400, ...extra,
});

test('1,500 Binance symbols: three connections within the per-connection limit, one feed, every symbol delivered', T, async () => {
  const symbols = universe(1500);
  // A slow walk: 1,500 books on a 2-core machine; every symbol still changes several times a second.
  const fx = await startFake({ seed: 5, tickMs: 250, symbols });
  const srv = await startTickerd({
    config: { limits: { max_subscriptions: 2000, max_message_bytes: 65536 }, feeds: [binanceFeed(fx, symbols)] },
  });
  assert.match(srv.stderr(), /feed bn: 1500 symbols over 3 connections \(at most 512 each\)/);

  // Two clients: one with "*", one with the whole list.
  const star = await connect(srv);
  const list = await connect(srv);
  const seen = { star: new Set(), list: new Set() };
  star.onMessage((m) => { for (const u of updatesOf(m)) if (u.bid > 0) seen.star.add(u.symbol); });
  list.onMessage((m) => { for (const u of updatesOf(m)) if (u.bid > 0) seen.list.add(u.symbol); });
  await star.subscribe(['*']);
  await list.subscribe(symbols);
  await waitFor(() => seen.star.size === 1500 && seen.list.size === 1500,
    { timeoutMs: 20000, message: 'every symbol delivered to both clients' }).catch((e) => {
    throw new Error(`${e.message} (star ${seen.star.size}, list ${seen.list.size})`);
  });

  // The fake saw three connections, each subscribed to its 1,000 streams (within its limit of 1,024).
  const conns = fx.connections('binance');
  assert.equal(conns.length, 3, JSON.stringify(conns));
  for (const c of conns) {
    assert.equal(c.streams, 1000, `connection ${c.id}: 500 symbols x 2 streams`);
    assert.ok(c.streams <= 1024);
    assert.ok(c.subscribedAt && c.firstDataAt && c.closedAt === null);
  }
  // The URL would be ~20 KB: each connection asks for /stream and sends one SUBSCRIBE with its streams.
  const ups = fx.requests({ transport: 'ws', venue: 'binance' });
  assert.equal(ups.length, 3);
  const subscribed = new Set();
  for (const e of ups) {
    assert.equal(e.requestLine, 'GET /stream HTTP/1.1');
    assert.equal(e.received.length, 1, 'one SUBSCRIBE per connection (Binance counts messages: 5 per second)');
    const sub = JSON.parse(e.received[0]);
    assert.equal(sub.method, 'SUBSCRIBE');
    assert.equal(sub.params.length, 1000);
    for (const p of sub.params) subscribed.add(p);
  }
  assert.equal(subscribed.size, 3000, 'every symbol on exactly one connection, both streams');

  // One feed for /healthz, per-connection state in /metrics.
  const h = await feedHealth(srv, 'bn');
  assert.equal(h.state, 'live');
  const m = await metrics(srv);
  assert.equal(m.sum('tickerd_feed_up', { feed: 'bn' }), 1);
  for (const conn of ['0', '1', '2']) {
    assert.equal(m.sum('tickerd_feed_connection_up', { feed: 'bn', conn }), 1, `conn ${conn} up`);
    assert.equal(m.sum('tickerd_feed_connection_symbols', { feed: 'bn', conn }), 500);
  }
  assert.equal(m.sum('tickerd_feed_reconnects_total', { feed: 'bn' }), 0);

  // Every connection torn down at once: each slot reconnects on its own (one reconnect each) and the feed
  // is live again only when all three are back.
  const updatesBefore = (await feedHealth(srv, 'bn')).updates;
  fx.fault({ venue: 'binance', kind: 'disconnect' });
  await waitFor(async () => (await feedHealth(srv, 'bn')).state === 'live' && (await feedHealth(srv, 'bn')).updates > updatesBefore + 1000,
    { timeoutMs: 10000, message: 'all three connections back' });
  const m2 = await metrics(srv);
  assert.equal(m2.sum('tickerd_feed_reconnects_total', { feed: 'bn' }), 3);
  assert.equal(fx.connections('binance').filter((c) => c.closedAt === null).length, 3);
});

test('the fake enforces Binance\'s 1,024 streams per connection (URL and SUBSCRIBE)', T, async () => {
  const fx = await startFake({ seed: 5, tickMs: 0 });
  // Short names, so that the URL stays under Node's 16 KB header limit and the stream count is what is refused.
  const streams = Array.from({ length: 1025 }, (_, i) => `s${i}@trade`);
  // By URL: refused at the handshake.
  const status = await new Promise((resolve) => {
    const ws = new WebSocket(`${fx.wsUrl}/stream?streams=${streams.join('/')}`, { maxPayload: 1 << 20 });
    ws.on('unexpected-response', (req, res) => { resolve(res.statusCode); res.resume(); ws.terminate(); });
    ws.on('open', () => { resolve(101); ws.terminate(); });
    ws.on('error', (e) => resolve(`error ${e.message}`));
  });
  assert.equal(status, 400);
  // By SUBSCRIBE: the venue's error; 1,024 is fine.
  const ws = new WebSocket(`${fx.wsUrl}/stream`);
  await new Promise((r) => ws.once('open', r));
  const reply = () => new Promise((r) => ws.once('message', (d) => r(JSON.parse(d.toString()))));
  let p = reply();
  ws.send(JSON.stringify({ method: 'SUBSCRIBE', params: streams, id: 1 }));
  assert.deepEqual(await p, { error: { code: 2, msg: 'Invalid request: too many streams' }, id: 1 });
  p = reply();
  ws.send(JSON.stringify({ method: 'SUBSCRIBE', params: streams.slice(0, 1024), id: 2 }));
  assert.deepEqual(await p, { result: null, id: 2 });
  ws.terminate();
});

test('rotation make-before-break: several replacements before the venue\'s age limit, no seq gap, no stale, no duplicate', T, async () => {
  const symbols = ['BTC-USDT', 'ETH-USDT', 'SOL-USDT', 'XRP-USDT', 'DOGE-USDT', 'ADA-USDT'];
  // The venue would close a connection at 4 s (its "24 h"); tickerd replaces each after 1 s. Prices of 1e8
  // at 2 decimals: each step of the walk moves the book by ~10^6 ticks, so two equal books in a row are one
  // venue event published twice, never two events.
  const fx = await startFake({ seed: 9, tickMs: 50, symbols: symbols.map((symbol) => ({ symbol, price: 1e8 })), maxConnMs: 4000 });
  // flush_interval_ms 0: every accepted update is published, so a duplicate cannot hide in coalescing.
  const srv = await startTickerd({ config: { normalizer: { flush_interval_ms: 0 }, feeds: [binanceFeed(fx, symbols, { rotate_after_s: 1 })] } });
  const c = await connect(srv);
  await waitFor(async () => (await feedHealth(srv, 'bn'))?.state === 'live', { timeoutMs: 5000, message: 'feed live' });
  const tracker = new UpdateTracker(c);
  const perSymbol = new Map(symbols.map((s) => [s, []]));
  c.onMessage((m, at) => { for (const u of updatesOf(m)) perSymbol.get(u.symbol)?.push({ ...u, at }); });
  await c.subscribe(symbols);
  const t0 = Date.now();
  await waitFor(() => fx.connections('binance').filter((x) => x.closedAt !== null).length >= 4,
    { timeoutMs: 20000, message: 'four connections replaced' });
  await sleep(300); // values after the last replacement too
  const elapsed = Date.now() - t0;

  // The client: contiguous seq per symbol, never stale, no reset, no duplicate, no step back.
  assert.deepEqual(tracker.violations, []);
  assert.equal(tracker.gaps, 0, 'no seq gap');
  for (const [sym, ups] of perSymbol) {
    assert.ok(ups.length > 10, `${sym}: ${ups.length} values`);
    for (let i = 1; i < ups.length; i++) {
      const [a, b] = [ups[i - 1], ups[i]];
      assert.equal(b.seq, a.seq + 1, `${sym}: seq ${a.seq} then ${b.seq}`);
      assert.ok(!b.stale && !b.reset, `${sym}: stale/reset at seq ${b.seq}`);
      assert.ok(b.ts >= a.ts, `${sym}: ts went back at seq ${b.seq}`);
      // Equal prices twice in a row: one venue event published twice (a book ticker has no time of its own:
      // its ts is when it arrived, so ts does not tell them apart).
      assert.ok(!(a.bid === b.bid && a.ask === b.ask && a.last === b.last && a.volume === b.volume),
        `${sym}: the same value twice (seq ${a.seq}, ${b.seq}): ${JSON.stringify(b)}`);
      // With a tick every 50 ms a symbol changes several times a second: a reconnect gap would show.
      assert.ok(b.at - a.at < 1500, `${sym}: ${b.at - a.at} ms without a value at seq ${b.seq}`);
    }
  }

  // The fake: each replaced connection was closed by tickerd (close 1000), never by the venue's age limit,
  // and only after its successor was subscribed and delivering.
  const conns = fx.connections('binance');
  const closed = conns.filter((x) => x.closedAt !== null);
  const overlaps = [];
  for (const old of closed) {
    assert.equal(old.closedBy, 'client', `connection ${old.id} closed by ${old.closedBy}`);
    assert.equal(old.closeCode, 1000);
    assert.equal(old.shutdownAt, null, 'never reached the venue\'s lifetime');
    const next = conns.find((x) => x.id > old.id);
    assert.ok(next, `a successor of connection ${old.id}`);
    assert.ok(next.subscribedAt !== null && next.subscribedAt <= old.closedAt, `connection ${next.id} subscribed before ${old.id} closed`);
    assert.ok(next.firstDataAt !== null && next.firstDataAt <= old.closedAt, `connection ${next.id} delivering before ${old.id} closed`);
    overlaps.push(old.closedAt - next.subscribedAt);
  }
  assert.ok(conns.filter((x) => x.closedAt === null).length === 1 || conns.filter((x) => x.closedAt === null).length === 2);
  const m = await metrics(srv);
  const rotations = m.sum('tickerd_feed_rotations_total', { feed: 'bn' });
  assert.ok(rotations >= 4, `${rotations} rotations counted`);
  assert.equal(m.sum('tickerd_feed_reconnects_total', { feed: 'bn' }), 0, 'no reconnect: nothing was lost');
  assert.ok(m.sum('tickerd_feed_stale_dropped_total', { feed: 'bn' }) > 0, 'the overlap\'s second copies were dropped');
  assert.ok(m.has('tickerd_feed_last_overlap_ms'));
  assert.equal(m.sum('tickerd_feed_up', { feed: 'bn' }), 1);
  const vals = [...perSymbol.values()].reduce((n, u) => n + u.length, 0);
  console.log(`# ${closed.length} rotations in ${elapsed} ms, ${vals} values; overlap (new subscribed -> old closed) ms: ` +
    `${overlaps.join(', ')}; tickerd last overlap ${m.sum('tickerd_feed_last_overlap_ms', { feed: 'bn' })} ms; ` +
    `${m.sum('tickerd_feed_stale_dropped_total', { feed: 'bn' })} second copies dropped`);
});

test('the venue closes first (no notice, rotation off): an ordinary reconnect with backoff, then values again', T, async () => {
  const symbols = ['BTC-USDT', 'ETH-USDT'];
  const fx = await startFake({ seed: 3, tickMs: 50, symbols, maxConnMs: 1500, binanceShutdownNotice: false });
  const srv = await startTickerd({ config: { feeds: [binanceFeed(fx, symbols, { rotate_after_s: 0 })] } });
  await waitFor(() => fx.connections('binance').filter((x) => x.closedBy === 'server').length >= 2,
    { timeoutMs: 10000, message: 'two lifetime closes' });
  await waitFor(async () => (await feedHealth(srv, 'bn')).state === 'live', { timeoutMs: 5000, message: 'live again' });
  assert.match(srv.stderr(), /feed bn: reconnecting in \d+ ms/);
  const m = await metrics(srv);
  assert.ok(m.sum('tickerd_feed_reconnects_total', { feed: 'bn' }) >= 2);
  assert.equal(m.sum('tickerd_feed_rotations_total', { feed: 'bn' }), 0);
});

test('the venue\'s notice first: the replacement is opened at once and takes over', T, async () => {
  const symbols = ['BTC-USDT', 'ETH-USDT'];
  const fx = await startFake({ seed: 4, tickMs: 50, symbols });
  const srv = await startTickerd({ config: { feeds: [binanceFeed(fx, symbols)] } });
  await waitFor(async () => (await feedHealth(srv, 'bn'))?.state === 'live', { timeoutMs: 5000, message: 'feed live' });
  fx.fault({ venue: 'binance', kind: 'server_shutdown', graceMs: 1000 }); // Binance's notice comes ahead of the close
  await waitFor(() => fx.connections('binance').length === 2 && fx.connections('binance')[0].closedAt !== null,
    { timeoutMs: 5000, message: 'replaced' });
  const [old, next] = fx.connections('binance');
  assert.equal(old.closedBy, 'client', 'tickerd closed the old one once the new one delivered, before the venue did');
  assert.ok(next.firstDataAt <= old.closedAt && old.closedAt < old.shutdownAt + 1000);
  const m = await metrics(srv);
  assert.equal(m.sum('tickerd_feed_rotations_total', { feed: 'bn' }), 1);
  assert.equal(m.sum('tickerd_feed_reconnects_total', { feed: 'bn' }), 0);
});

test('bad rotate_after_s and too many symbols name the key and exit 2', T, async () => {
  const feed = (extra) => ({ type: 'ws', venue: 'binance', symbols: ['BTC-USDT'], ...extra });
  const bad = [
    [{ ...feed({}), venue: 'kraken', symbols: ['BTC-USD'], rotate_after_s: 60 }, /feeds\[0\]\.rotate_after_s: venue kraken has no connection age limit/],
    [feed({ rotate_after_s: 86400 }), /feeds\[0\]\.rotate_after_s: must be below/],
    [feed({ rotate_after_s: -1 }), /feeds\[0\]\.rotate_after_s/],
    [feed({ symbols: universe(8193) }), /feeds\[0\]\.symbols: at most 8192 symbols/],
    [{ type: 'ws', venue: 'kraken', symbols: universe(1001).map((s) => s.replace('USDT', 'USD')) }, /feeds\[0\]\.symbols: at most 1000 symbols/],
  ];
  for (const [f, re] of bad) {
    const r = await runTickerd({ config: { feeds: [f] } });
    assert.equal(r.code, 2, `${JSON.stringify(f).slice(0, 200)}: ${r.stderr}`);
    assert.match(r.stderr, re);
  }
  // The bound itself is accepted: 16 connections of 512 (nothing listens there; the feed just retries).
  const srv = await startTickerd({ config: { feeds: [{ ...feed({ symbols: universe(8192) }), name: 'big', url: 'ws://127.0.0.1:9' }] } });
  assert.match(srv.stderr(), /feed big: 8192 symbols over 16 connections/);
});
