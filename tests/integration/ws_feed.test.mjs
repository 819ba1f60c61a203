// The `ws` feed adapter against the fake exchange's WebSocket streams: each venue preset (Binance combined
// streams, Coinbase ticker+heartbeat, Kraken v2 ticker) delivers prices under canonical symbols; after an
// abrupt disconnect, a silent stall, a scheduled disconnect (serverShutdown), malformed and oversized frames
// and a rejected subscription the adapter recovers (or reports) as documented, and tickerd keeps serving.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTickerd, stopAll, connect, closeAllClients, httpGet, waitFor, updatesOf, runTickerd, metrics, collectPrices, feedHealth, startFake } from './lib/harness.mjs';

const T = { timeout: 45000 };
after(async () => {
  closeAllClients();
  await stopAll();
});

const fakeExchange = (opts = {}) => startFake({ seed: 11, tickMs: 50, ...opts });

const wsFeed = (fx, venue, symbols, extra = {}) => ({
  type: 'ws', name: `${venue}-ws`, venue, url: fx.wsUrl, symbols, silence_timeout_ms: 1500, max_backoff_ms: 400, ...extra,
});


const feedState = feedHealth;
const feedUpdates = async (srv, name) => (await feedState(srv, name)).updates;

const presets = [
  { venue: 'binance', symbols: ['BTC-USDT', 'ETH-USDT'], near: { 'BTC-USDT': 65000, 'ETH-USDT': 3400 } },
  { venue: 'coinbase', symbols: ['BTC-USD', 'ETH-USD'], near: { 'BTC-USD': 65000, 'ETH-USD': 3400 } },
  { venue: 'kraken', symbols: ['BTC-USD', 'SOL-USD'], near: { 'BTC-USD': 65000, 'SOL-USD': 150 } },
];

for (const { venue, symbols, near } of presets) {
  test(`${venue} stream: prices flow to clients under canonical symbols`, T, async () => {
    const fx = await fakeExchange();
    const srv = await startTickerd({ config: { feeds: [wsFeed(fx, venue, symbols)] } });
    const seen = await collectPrices(srv, symbols, 3);
    for (const [sym, ups] of seen) {
      const u = ups.at(-1);
      assert.equal(u.src, `${venue}-ws`);
      assert.ok(u.bid > 0 && u.ask >= u.bid, `${sym}: bid ${u.bid} ask ${u.ask}`);
      assert.ok(Math.abs(u.last / near[sym] - 1) < 0.2, `${sym}: last ${u.last}`);
      assert.ok(u.volume >= 0);
      for (let i = 1; i < ups.length; i++) assert.ok(ups[i].ts >= ups[i - 1].ts, `${sym}: ts went backwards`);
    }
    assert.equal((await feedState(srv, `${venue}-ws`)).state, 'live');
  });

  test(`${venue} stream: recovers from an abrupt disconnect and re-subscribes`, T, async () => {
    const fx = await fakeExchange();
    const srv = await startTickerd({ config: { feeds: [wsFeed(fx, venue, symbols)] } });
    await collectPrices(srv, symbols, 1);
    fx.fault({ venue, kind: 'disconnect' });
    await waitFor(() => /reconnecting in \d+ ms/.test(srv.stderr()), { timeoutMs: 3000, message: 'a reconnect is scheduled' });
    const before = await feedUpdates(srv, `${venue}-ws`);
    // Within the backoff bound (max_backoff_ms 400) plus connect, prices flow again.
    await waitFor(async () => (await feedUpdates(srv, `${venue}-ws`)) > before + 2, { timeoutMs: 5000, message: 'updates after the reconnect' });
    assert.equal((await feedState(srv, `${venue}-ws`)).state, 'live');
    assert.ok((await metrics(srv)).sum('tickerd_feed_reconnects_total', { feed: `${venue}-ws` }) >= 1, 'reconnect counted');
  });
}

test('a silent (stalled) stream is detected and re-opened', T, async () => {
  const fx = await fakeExchange();
  const srv = await startTickerd({ config: { feeds: [wsFeed(fx, 'coinbase', ['BTC-USD'])] } });
  await collectPrices(srv, ['BTC-USD'], 1);
  fx.fault({ venue: 'coinbase', kind: 'stall', ms: 4000 });
  await waitFor(() => /silent for \d+ ms; reconnecting/.test(srv.stderr()), { timeoutMs: 5000, message: 'silence detected' });
  await waitFor(async () => (await feedState(srv, 'coinbase-ws')).state === 'down', { timeoutMs: 3000, message: 'feed reported down' });
  fx.fault({ venue: 'coinbase', kind: 'clear' });
  await waitFor(async () => (await feedState(srv, 'coinbase-ws')).state === 'live', { timeoutMs: 8000, message: 'feed live again' });
  await collectPrices(srv, ['BTC-USD'], 2);
});

test('Binance serverShutdown: reconnect at once, a single reconnect gap', T, async () => {
  const fx = await fakeExchange();
  const srv = await startTickerd({ config: { feeds: [wsFeed(fx, 'binance', ['BTC-USDT'], { max_backoff_ms: 30000 })] } });
  await collectPrices(srv, ['BTC-USDT'], 1);
  const t0 = Date.now();
  fx.fault({ venue: 'binance', kind: 'server_shutdown' });
  await waitFor(() => /announced a disconnect; reconnecting now/.test(srv.stderr()), { timeoutMs: 3000, message: 'shutdown noticed' });
  // make-before-break: the replacement is opened at once, beside the announced connection
  assert.match(srv.stderr(), /opening a replacement connection \(venue notice\)/);
  const before = await feedUpdates(srv, 'binance-ws');
  await waitFor(async () => (await feedUpdates(srv, 'binance-ws')) > before, { timeoutMs: 3000, message: 'updates resume' });
  assert.ok(Date.now() - t0 < 3000, 'the gap was longer than one reconnect');
});

test('malformed, wrong-typed and oversized frames are dropped and counted; the stream goes on', T, async () => {
  const fx = await fakeExchange();
  const srv = await startTickerd({ config: { feeds: [wsFeed(fx, 'kraken', ['BTC-USD'], { max_message_bytes: 65536 })] } });
  await collectPrices(srv, ['BTC-USD'], 1);
  fx.fault({ venue: 'kraken', kind: 'malformed', count: 3 });
  fx.fault({ venue: 'kraken', kind: 'wrong_types', count: 3 });
  fx.fault({ venue: 'kraken', kind: 'huge_frame', count: 1 });
  await waitFor(() => /malformed message/.test(srv.stderr()) && /over max_message_bytes/.test(srv.stderr()),
    { timeoutMs: 5000, message: 'malformed and oversized frames logged' });
  const before = await feedUpdates(srv, 'kraken-ws');
  await waitFor(async () => (await feedUpdates(srv, 'kraken-ws')) > before + 2, { timeoutMs: 5000, message: 'updates go on' });
  assert.ok(srv.alive());
  // The faulted frames trickle in with the market's ticks: wait until all are counted.
  const m = await waitFor(async () => {
    const x = await metrics(srv);
    const dropped = x.sum('tickerd_feed_malformed_total', { feed: 'kraken-ws' })
      + x.sum('tickerd_feed_oversized_total', { feed: 'kraken-ws' });
    return dropped >= 3 ? x : false;
  }, { timeoutMs: 8000, message: 'the bad frames counted as malformed or oversized' });
  assert.ok(m.sum('tickerd_feed_malformed_total', { feed: 'kraken-ws' }) >= 1, 'malformed frames counted');
  assert.ok(m.sum('tickerd_feed_oversized_total', { feed: 'kraken-ws' }) >= 1, 'the oversized frame counted');
});

test('a rejected subscription is reported in /healthz and the log', T, async () => {
  const fx = await fakeExchange();
  fx.fault({ venue: 'kraken', kind: 'reject_subscribe', count: -1 });
  const srv = await startTickerd({ config: { feeds: [wsFeed(fx, 'kraken', ['BTC-USD'])] } });
  await waitFor(() => /subscription rejected/.test(srv.stderr()), { timeoutMs: 5000, message: 'rejection logged' });
  const f = await feedState(srv, 'kraken-ws');
  assert.notEqual(f.state, 'live');
  assert.match(f.detail, /rejected/);
  const h = await httpGet(srv, '/healthz');
  assert.equal(h.status, 503);
});

test('capture records the stream raw; replay plays it back to the same prices', T, async () => {
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tickerd-cap-'));
  const file = path.join(dir, 'kraken.ws.jsonl');
  const fx = await fakeExchange();
  const srv = await startTickerd({ config: { feeds: [wsFeed(fx, 'kraken', ['BTC-USD'], { capture: file })] } });
  const live = await collectPrices(srv, ['BTC-USD'], 3);
  const lastLive = live.get('BTC-USD').at(-1);
  await srv.stop('SIGTERM');
  const lines = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(lines.length >= 3, `${lines.length} captured frames`);
  for (const l of lines) assert.ok(Number.isInteger(l.t) && typeof l.frame === 'string');
  assert.ok(lines.some((l) => l.frame.includes('"channel":"ticker"')), 'ticker frames captured');

  const rp = await startTickerd({ config: { feeds: [{ type: 'replay', name: 'rp', venue: 'kraken', file, speed: 0, symbols: ['BTC-USD'] }] } });
  const snap = await waitFor(async () => {
    const x = (await httpGet(rp, '/api/symbols')).json().symbols.find((y) => y.symbol === 'BTC-USD');
    return x && x.seq > 0 ? x : false;
  }, { timeoutMs: 5000, message: 'BTC-USD replayed' });
  assert.ok(Math.abs(snap.last / lastLive.last - 1) < 0.05, `replayed ${snap.last} vs live ${lastLive.last}`);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a bad ws feed config names the key and exits 2', T, async () => {
  const bad = [
    [{ type: 'ws', venue: 'coingecko', symbols: ['BTC-USD'] }, /feeds\[0\]\.venue/],
    [{ type: 'ws', venue: 'kraken', symbols: [] }, /feeds\[0\]\.symbols/],
    [{ type: 'ws', venue: 'kraken', symbols: ['BTC-USD'], url: 'http://x' }, /feeds\[0\]\.url/],
    [{ type: 'ws', venue: 'kraken', symbols: ['BTC-USD'], silence_timeout_ms: 1 }, /feeds\[0\]\.silence_timeout_ms/],
  ];
  for (const [feed, re] of bad) {
    const r = await runTickerd({ config: { feeds: [feed] } });
    assert.equal(r.code, 2, `${JSON.stringify(feed)}: ${r.stderr}`);
    assert.match(r.stderr, re);
  }
});
