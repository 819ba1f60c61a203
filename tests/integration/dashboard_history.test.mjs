// History for the dashboard, outside the browser: the SDK's `history` option and event (web/tickerd-client.js)
// in Node against the real tickerd, and the pure series functions behind the chart (web/series.js). The page
// itself is tested in browser.test.mjs (sparklines from history, the chart dialog).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { connect } from '../../web/tickerd-client.js';
import { toCandles, addValue, trimBefore, nearest, niceStep, INTERVAL_US } from '../../web/series.js';
import {
  startTickerd, stopAll, waitFor, waitForSymbols, simConfig, httpGet, tempDir, DEFAULT_SYMBOLS,
} from './lib/harness.mjs';

const T = { timeout: 60000 };
const clients = new Set();
after(async () => {
  for (const c of clients) c.close();
  await stopAll();
});

/** An SDK client that records its history, update and error events in arrival order; closed in after(). */
function sdk(url, options = {}) {
  const c = connect(url, { WebSocket, pingInterval: 0, ...options });
  clients.add(c);
  const seen = { events: [], histories: [], errors: [] };
  c.on('history', (h) => { seen.histories.push(h); seen.events.push({ kind: 'history', h }); });
  c.on('update', (u) => seen.events.push({ kind: 'update', u }));
  c.on('error', (e) => seen.errors.push(e));
  return { c, seen };
}

/** Wait until the store holds `n` 1-second candles of `symbol` (it writes once a second). */
async function historyHas(srv, n, symbol = 'BTC-USD') {
  await waitFor(async () => {
    const r = await httpGet(srv, `/api/history?symbol=${symbol}&interval=1s&limit=${n}`);
    return r.status === 200 && r.json().rows.length >= n;
  }, { timeoutMs: 15000, message: `${n} one-second candles of ${symbol} in the history` });
}

test('SDK: a subscribe with history gets a history event per symbol, and the updates continue at its seq + 1', T,
  async () => {
    const srv = await startTickerd({ config: simConfig({ rate: 400 }) });
    await historyHas(srv, 3);
    const syms = ['BTC-USD', 'ETH-USD'];
    const { c, seen } = sdk(srv.wsUrl);
    await c.ready({ timeout: 5000 });
    await c.subscribe(syms, { history: { interval: 'tick', limit: 50 } });
    await waitFor(() => syms.every((s) => seen.events.filter((e) => e.u?.symbol === s).length >= 5
      && seen.histories.some((h) => h.symbol === s)), { timeoutMs: 8000, message: 'history, then updates' });
    for (const sym of syms) {
      const i = seen.events.findIndex((e) => e.h?.symbol === sym);
      const h = seen.events[i].h;
      assert.equal(h.interval, 'tick');
      assert.deepEqual(h.columns, ['t', 'last', 'bid', 'ask', 'volume', 'seq']);
      assert.ok(h.rows.length >= 1 && h.rows.length <= 50, `${h.rows.length} rows`);
      assert.equal(h.rows.at(-1)[5], h.seq, `${sym}: the history's seq is that of its last row`);
      assert.equal(seen.events.slice(0, i).filter((e) => e.u?.symbol === sym).length, 0, `${sym}: nothing before it`);
      // replayed values, then live ones: one continuous run of seqs after the history's
      const after = seen.events.slice(i + 1).filter((e) => e.u?.symbol === sym).map((e) => e.u.seq);
      assert.equal(after[0], h.seq + 1, `${sym}: continues at ${h.seq + 1}: ${after.slice(0, 5)}`);
      for (let k = 1; k < after.length; k++) assert.ok(after[k] > after[k - 1], `${sym}: seqs grow`);
      assert.equal(c.skippedFor(sym), after.at(-1) - h.seq - after.length, `${sym}: gaps counted from the seam`);
    }
    assert.equal(c.stats().histories, 2);
    assert.deepEqual(seen.errors, []);
  });

/** An SDK client whose sent requests are recorded in `sent`. */
function recordingSdk(url, options) {
  const sent = [];
  class Recording extends WebSocket {
    send(data) { sent.push(JSON.parse(data)); super.send(data); }
  }
  return { ...sdk(url, { ...options, WebSocket: Recording }), subscribes: () => sent.filter((m) => m.op === 'subscribe') };
}

test('SDK: options.history splits requests to the server\'s row cap, sends them one at a time, leaves "*" alone', T,
  async () => {
    const srv = await startTickerd({ config: simConfig({ rate: 400 }) });
    await waitForSymbols(srv, DEFAULT_SYMBOLS);
    const all = (await httpGet(srv, '/api/symbols')).json().symbols.map((s) => s.symbol);
    assert.ok(all.length >= 20);
    const history = { interval: '1s', limit: 2000 };

    // 2000 rows x 20 symbols: split into subscribes of 5 symbols (10,000 rows, the server's cap).
    const one = recordingSdk(srv.wsUrl, { history });
    await one.c.ready({ timeout: 5000 });
    const r = await one.c.subscribe(all, { timeout: 10000 });
    assert.deepEqual(r.symbols.sort(), [...all].sort());
    await waitFor(() => one.seen.histories.length === all.length, { timeoutMs: 10000, message: 'a history per symbol' });
    assert.deepEqual(one.seen.histories.map((h) => h.symbol).sort(), [...all].sort());
    for (const m of one.subscribes()) assert.ok(m.symbols.length * m.history.limit <= 10000, `${m.symbols.length} symbols`);
    assert.deepEqual(one.seen.errors, []);

    // 20 subscribes at once: the server refuses a third history request in progress on one connection
    // (`busy`), so the SDK sends each after the history frames of the one before.
    const many = recordingSdk(srv.wsUrl, { history });
    await many.c.ready({ timeout: 5000 });
    await Promise.all(all.map((s) => many.c.subscribe([s], { timeout: 10000 })));
    await waitFor(() => many.seen.histories.length === all.length, { timeoutMs: 20000, message: 'a history per symbol' });
    assert.deepEqual(many.seen.errors, []);
    assert.equal(many.subscribes().length, all.length, 'none refused as busy and sent again');

    const star = await many.c.subscribe(['*']);
    assert.deepEqual(star.symbols, ['*']);
    assert.equal(many.subscribes().at(-1).history, undefined, 'no history with "*"');
    assert.deepEqual(many.seen.errors, []);
  });

test('SDK: a history the server refuses (limit above its max) reports the error and subscribes without it', T,
  async () => {
    const srv = await startTickerd({ config: simConfig({ rate: 400 }) });
    await waitForSymbols(srv, ['BTC-USD']);
    const { c, seen } = sdk(srv.wsUrl);
    await c.ready({ timeout: 5000 });
    const r = await c.subscribe(['BTC-USD'], { history: { interval: '1s', limit: 5000 } });
    assert.deepEqual(r.symbols, ['BTC-USD']);
    assert.equal(seen.errors[0]?.code, 'bad_request');
    await waitFor(() => seen.events.some((e) => e.kind === 'update'), { message: 'live updates' });
    assert.equal(seen.histories.length, 0);
  });

test('SDK: after tickerd restarts, the re-subscribe asks for history again (seq 0: all of it from the run before)',
  T, async () => {
    const stateDir = tempDir();
    let srv = await startTickerd({ config: simConfig({ rate: 400 }), stateDir });
    await historyHas(srv, 3);
    const { c, seen } = sdk(srv.wsUrl, { history: { interval: '1s', limit: 60 }, baseDelay: 100, maxDelay: 500 });
    await c.ready({ timeout: 5000 });
    await c.subscribe(['BTC-USD']);
    await waitFor(() => seen.histories.length === 1, { message: 'the first history' });
    const port = srv.port;
    await srv.stop('SIGTERM');
    srv = await startTickerd({ config: simConfig({ rate: 400 }), stateDir, args: ['--port', String(port)] });
    await waitFor(() => seen.histories.length === 2, { timeoutMs: 15000, message: 'the history after the restart' });
    const h = seen.histories[1];
    assert.ok(h.rows.length >= 3, `${h.rows.length} rows from the run before`);
    assert.ok(h.rows.at(-1)[0] >= seen.histories[0].rows.at(-1)[0], 'at least as recent as the first');
  });

// ---- web/series.js ----

test('series: history rows become candles (1s columns and tick columns), by column name', () => {
  const cols = ['t', 'open', 'high', 'low', 'close', 'count'];
  assert.deepEqual(toCandles(cols, [[1e6, 1, 3, 0.5, 2, 7]]), [{ t: 1e6, o: 1, h: 3, l: 0.5, c: 2, n: 7 }]);
  const tick = ['t', 'last', 'bid', 'ask', 'volume', 'seq'];
  assert.deepEqual(toCandles(tick, [[5, 10, 9, 11, 100, 3]]), [{ t: 5, o: 10, h: 10, l: 10, c: 10, n: 1 }]);
  assert.deepEqual(toCandles(['seq', ...cols], [[9, 2e6, 1, 1, 1, 1, 1]]), [{ t: 2e6, o: 1, h: 1, l: 1, c: 1, n: 1 }]);
  assert.deepEqual(toCandles(cols, [[1e6, null, null, null, null, 0]]), [], 'a row without prices is skipped');
  assert.deepEqual(toCandles(undefined, undefined), []);
});

test('series: live values extend the newest candle, start the next, and widen an older one without its close', () => {
  const iv = INTERVAL_US['1s'];
  const ks = [{ t: 1e6, o: 10, h: 11, l: 9, c: 10, n: 3 }];
  assert.equal(addValue(ks, 1.5e6, 12, iv), true);
  assert.deepEqual(ks[0], { t: 1e6, o: 10, h: 12, l: 9, c: 12, n: 4 });
  addValue(ks, 2.2e6, 8, iv);
  assert.deepEqual(ks[1], { t: 2e6, o: 8, h: 8, l: 8, c: 8, n: 1 });
  addValue(ks, 1.9e6, 7, iv); // a source whose clock is behind: the older bucket
  assert.deepEqual(ks[0], { t: 1e6, o: 10, h: 12, l: 7, c: 12, n: 5 });
  assert.equal(addValue(ks, 0.5e6, 1, iv), false, 'before the first candle: not drawn');
  assert.equal(addValue(ks, 3e6, NaN, iv), false);
  assert.equal(ks.length, 2);
  trimBefore(ks, 2e6);
  assert.deepEqual(ks.map((k) => k.t), [2e6]);
  const empty = [];
  addValue(empty, 61e6, 5, INTERVAL_US['1m']);
  assert.equal(empty[0].t, 60e6, 'bucket start aligned to the interval');
});

test('series: nearest candle and round axis steps', () => {
  const ks = [0, 10, 20, 40].map((t) => ({ t }));
  assert.deepEqual([-5, 4, 6, 29, 31, 99].map((t) => nearest(ks, t)), [0, 0, 1, 2, 3, 3]);
  assert.equal(nearest([], 5), -1);
  assert.equal(niceStep(100, 5), 20);
  assert.equal(niceStep(0.07, 5), 0.02);
  assert.equal(niceStep(4300, 8), 1000);
});
