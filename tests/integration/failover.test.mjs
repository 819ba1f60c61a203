// Several sources per symbol: two `rest` feeds on the fake exchange quote BTC-USD. Clients see one stream
// whose `src` is the highest-priority fresh source: failover when the preferred one stalls, take-back when it
// recovers, `"stale":true` (and /healthz, /metrics) when none is fresh, `"stale":false` once on recovery, and
// an implausible price from one source held back and counted instead of broadcast.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startTickerd, runTickerd, stopAll, connect, closeAllClients, httpGet, metrics, waitFor, updatesOf, UpdateTracker, startFake,
} from './lib/harness.mjs';

const T = { timeout: 60000 };
const SYM = 'BTC-USD';
after(async () => {
  closeAllClients();
  await stopAll();
});

const fakeExchange = (opts = {}) => startFake({ seed: 11, tickMs: 50, ...opts });

function feed(fx, name, venue) {
  return { type: 'rest', name, venue, base_url: fx.httpUrl, symbols: [SYM], poll_interval_ms: 100,
    timeout_ms: 5000, max_backoff_ms: 500 };
}

function config(fx, normalizer = {}) {
  return {
    normalizer: { stale_after_ms: 800, ...normalizer },
    feeds: [feed(fx, 'cb', 'coinbase'), feed(fx, 'kr', 'kraken')],
  };
}

/** Subscribe to BTC-USD; returns the client and a tracker checking seq order. */
async function subscriber(srv) {
  const c = await connect(srv);
  const tracker = new UpdateTracker(c);
  await c.subscribe([SYM]);
  return { c, tracker };
}

/** Wait for a BTC-USD value (snapshot or update) matching pred; returns it. */
async function nextValue(c, pred, timeoutMs, what) {
  const m = await c.next((x) => updatesOf(x).some((u) => u.symbol === SYM && pred(u)), timeoutMs, what);
  return updatesOf(m).find((u) => u.symbol === SYM && pred(u));
}

test('failover to the next fresh source, take-back by the preferred one, stale marking and its clearing', T,
  async () => {
    const fx = await fakeExchange();
    const srv = await startTickerd({ config: config(fx) });
    const { c, tracker } = await subscriber(srv);
    const seen = [];
    c.onMessage((x) => { for (const u of updatesOf(x)) if (u.symbol === SYM) seen.push(u); });

    // The preferred source (first in feeds[]) is active once both quote.
    await nextValue(c, (u) => u.src === 'cb', 5000, 'a value from cb');
    await waitFor(async () => (await metrics(srv)).value('tickerd_updates_standby_total') > 3,
      { timeoutMs: 5000, message: 'kr updates kept as standby' });
    c.drain();
    const steady = await c.collect(1000);
    const srcs = new Set(steady.flatMap(updatesOf).map((u) => u.src));
    assert.deepEqual([...srcs], ['cb'], 'only the active source is published');
    // The two venues render one random walk: they agree within the band, so nothing is held back.
    let m = await metrics(srv);
    assert.equal(m.value('tickerd_updates_rejected_total', { reason: 'implausible' }), 0);
    assert.equal(m.value('tickerd_symbols_stale'), 0);
    const switches0 = m.value('tickerd_source_switches_total');

    // The preferred source stalls: kr takes over within stale_after_ms plus a housekeeping period or so.
    fx.fault({ venue: 'coinbase', kind: 'stall', transport: 'rest' });
    const t0 = Date.now();
    const failover = await nextValue(c, (u) => u.src === 'kr', 5000, 'failover to kr');
    assert.ok(Date.now() - t0 < 3000, `failover took ${Date.now() - t0} ms`);
    assert.equal(failover.stale, undefined, 'a fresh source: no stale key');
    m = await metrics(srv);
    assert.ok(m.value('tickerd_source_switches_total') >= switches0 + 1);
    assert.match(srv.stderr(), /BTC-USD: source cb -> kr \(failover/);
    // kr's values keep coming while cb is silent.
    await nextValue(c, (u) => u.src === 'kr' && u.seq > failover.seq, 3000, 'further kr values');

    // cb recovers: it takes back at once.
    fx.fault({ venue: 'coinbase', kind: 'clear' });
    const back = await nextValue(c, (u) => u.src === 'cb', 5000, 'take-back by cb');
    assert.equal(back.stale, undefined);
    assert.match(srv.stderr(), /BTC-USD: source kr -> cb \(take-back/);
    c.drain();
    await c.collect(500);
    const after = (await c.collect(1000)).flatMap(updatesOf);
    assert.ok(after.length > 0 && after.every((u) => u.src === 'cb'), 'cb stays active');

    // Both stall: one value marked stale (same price, next seq), then nothing while stale.
    fx.fault({ venue: 'coinbase', kind: 'stall', transport: 'rest' });
    fx.fault({ venue: 'kraken', kind: 'stall', transport: 'rest' });
    const stale = await nextValue(c, (u) => u.stale === true, 5000, 'a value with stale:true');
    const i = seen.findIndex((u) => u.seq === stale.seq);
    assert.ok(i > 0, 'the stale value follows a fresh one');
    assert.equal(seen[i - 1].seq, stale.seq - 1, 'stale:true is a new value (next seq)');
    assert.equal(seen[i - 1].last, stale.last, 'stale:true repeats the last known price');
    // src: the last active source (kr may have taken over for a moment, whichever went silent first).
    assert.ok(['cb', 'kr'].includes(stale.src), stale.src);
    const h = await httpGet(srv, '/healthz');
    assert.equal(h.json().stale_symbols, 1);
    m = await metrics(srv);
    assert.equal(m.value('tickerd_symbols_stale'), 1);
    const listed = (await httpGet(srv, '/api/symbols')).json().symbols.find((s) => s.symbol === SYM);
    assert.equal(listed.stale, true, '/api/symbols shows the stale flag');
    assert.equal(listed.seq, stale.seq);
    // A client subscribing now gets the stale value in its snapshot.
    const late = await connect(srv);
    await late.subscribe([SYM]);
    const snap = await late.nextOp('snapshot', 3000);
    assert.equal(updatesOf(snap)[0].stale, true);
    late.close();
    const quiet = (await c.collect(1000)).flatMap(updatesOf);
    assert.equal(quiet.length, 0, `no values while stale: ${JSON.stringify(quiet)}`);

    // Clear: the first fresh value says "stale":false, later ones omit the key.
    fx.fault({ venue: 'coinbase', kind: 'clear' });
    fx.fault({ venue: 'kraken', kind: 'clear' });
    const fresh = await nextValue(c, () => true, 5000, 'a fresh value');
    assert.equal(fresh.stale, false);
    assert.equal(fresh.seq, stale.seq + 1);
    const next = await nextValue(c, (u) => u.seq > fresh.seq, 3000, 'the value after');
    assert.equal(next.stale, undefined);
    await waitFor(async () => (await httpGet(srv, '/healthz')).json().stale_symbols === 0,
      { timeoutMs: 3000, message: 'healthz stale_symbols back to 0' });
    assert.equal((await metrics(srv)).value('tickerd_symbols_stale'), 0);
    assert.deepEqual(tracker.violations, []);
    c.close();
  });

test('an implausible price from one source is held back and counted, never broadcast', T, async () => {
  const fx = await fakeExchange();
  const srv = await startTickerd({ config: config(fx, { jump_band_pct: 5 }) });
  const { c, tracker } = await subscriber(srv);
  const first = await nextValue(c, (u) => u.src === 'cb', 5000, 'a value from cb');
  await waitFor(async () => (await metrics(srv)).value('tickerd_updates_standby_total') > 3,
    { timeoutMs: 5000, message: 'kr quoting' });

  // Kraken answers a price twice the market, poll after poll.
  const px = (first.last * 2).toFixed(5);
  const body = { error: [], result: { XXBTZUSD: { a: [px, '1', '1.000'], b: [px, '1', '1.000'], c: [px, '0.1'],
    v: ['1.0', '10.0'], o: px } } };
  fx.fault({ venue: 'kraken', kind: 'http_status', status: 200, body, count: -1 });
  await waitFor(async () => (await metrics(srv)).value('tickerd_updates_rejected_total', { reason: 'implausible' }) >= 5,
    { timeoutMs: 5000, message: 'implausible updates counted' });
  await new Promise((r) => setTimeout(r, 1000)); // kr's held values never make it fresh: it goes stale
  const all = [...tracker.latest.values()];
  assert.ok(all.every((u) => u.src === 'cb' && u.last < first.last * 1.5), JSON.stringify(all));
  const m = await metrics(srv);
  assert.equal(m.value('tickerd_symbols_stale'), 0, 'cb still fresh: the symbol is not stale');
  // With cb stalled, kr's price has nothing fresh to be compared with any more: it is all there is, and it is
  // accepted (a single source is never compared; docs/feeds.md).
  fx.fault({ venue: 'coinbase', kind: 'stall', transport: 'rest' });
  const jumped = await nextValue(c, (u) => u.src === 'kr', 5000, 'kr accepted once nothing else is fresh');
  assert.ok(jumped.last > first.last * 1.5);
  fx.fault({ venue: 'coinbase', kind: 'clear' });
  fx.fault({ venue: 'kraken', kind: 'clear' });
  assert.deepEqual(tracker.violations, []);
  c.close();
});

test('normalizer.priority overrides the feeds[] order per symbol', T, async () => {
  const fx = await fakeExchange();
  const srv = await startTickerd({ config: config(fx, { priority: { [SYM]: ['kr', 'cb'] } }) });
  const { c } = await subscriber(srv);
  await nextValue(c, (u) => u.src === 'kr', 5000, 'a value from kr');
  c.drain();
  const vals = (await c.collect(1000)).flatMap(updatesOf);
  assert.ok(vals.length > 0 && vals.every((u) => u.src === 'kr'), JSON.stringify(vals.map((u) => u.src)));
  c.close();
});

test('SIGHUP applies a new priority: the active source is re-chosen without a restart', T, async () => {
  const fx = await fakeExchange();
  const cfg = config(fx);
  const srv = await startTickerd({ config: cfg });
  const { c, tracker } = await subscriber(srv);
  await nextValue(c, (u) => u.src === 'cb', 5000, 'a value from cb');
  srv.writeConfig({ ...cfg, normalizer: { ...cfg.normalizer, priority: { [SYM]: ['kr'] } } });
  srv.signal('SIGHUP');
  await nextValue(c, (u) => u.src === 'kr', 5000, 'kr after the reload');
  c.drain();
  const vals = (await c.collect(800)).flatMap(updatesOf);
  assert.ok(vals.every((u) => u.src === 'kr'), JSON.stringify(vals.map((u) => u.src)));
  assert.deepEqual(tracker.violations, []);
  c.close();
});

test('bad normalizer settings name the key and exit 2', T, async () => {
  const bad = [
    [{ normalizer: { stale_after_ms: 50 } }, /normalizer\.stale_after_ms/],
    [{ normalizer: { jump_band_pct: -1 } }, /normalizer\.jump_band_pct/],
    [{ normalizer: { priority: { 'BTC-USD': ['nope'] } } }, /normalizer\.priority\.BTC-USD\[0\]/],
    [{ normalizer: { priority: { 'btc/usd': ['sim'] } } }, /normalizer\.priority\.btc\/usd/],
    [{ normalizer: { priority: { 'BTC-USD': ['sim', 'sim'] } } }, /normalizer\.priority\.BTC-USD\[1\]/],
    [{ normalizer: { priority: { 'BTC-USD': [] } } }, /normalizer\.priority\.BTC-USD/],
    [{ normalizer: { priority: [] } }, /normalizer\.priority/],
  ];
  for (const [cfg, re] of bad) {
    const r = await runTickerd({ config: cfg });
    assert.equal(r.code, 2, `exit code for ${JSON.stringify(cfg)}: ${r.stderr}`);
    assert.match(r.stderr, re);
  }
  // A priority naming the default sim feed is fine.
  const ok = await startTickerd({ config: { normalizer: { priority: { 'BTC-USD': ['sim'] } } } });
  assert.equal((await httpGet(ok, '/healthz')).json().stale_symbols, 0);
});
