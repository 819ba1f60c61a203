// History (docs/history.md, docs/protocol.md "History on subscribe", docs/api.md): a subscribe that asks for
// history gets ack → snapshot → one history frame per symbol → replay frames that continue exactly after the
// history's last value → live updates; the HTTP API validates its parameters and pages; the history file
// survives a restart on the default config.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startTickerd, stopAll, connect, closeAllClients, httpGet, metrics, waitFor, waitForSymbols, simConfig, sleep,
  tempDir,
} from './lib/harness.mjs';

const T = { timeout: 60000 };

after(async () => {
  closeAllClients();
  await stopAll();
});

// 2000 updates/s over the 20 built-in symbols: ~100 values/s per symbol, so the writer (flush every 200 ms
// here) is always a few tens of values behind the live stream: the seam is exercised, not trivially empty.
const config = (extra = {}) => simConfig({ rate: 2000, seed: 7, history: { flush_interval_ms: 200 }, ...extra });

/** Every message a client receives, in order. */
function record(client) {
  const log = [];
  client.onMessage((m) => log.push(m));
  return log;
}

/** Wait until the store has written something for every symbol we use. */
async function waitForHistory(srv, symbol, interval = 'tick', min = 5) {
  await waitFor(async () => {
    const r = await httpGet(srv, `/api/history?symbol=${symbol}&interval=${interval}&limit=${min}`);
    return r.status === 200 && r.json().rows.length >= min;
  }, { timeoutMs: 10000, message: `history rows for ${symbol}` });
}

/** The seqs one symbol's values arrive with after its history frame: replay, then updates. */
function valuesAfterHistory(log, symbol) {
  const at = log.findIndex((m) => m.op === 'history' && m.symbol === symbol);
  const out = [];
  for (const m of log.slice(at + 1)) {
    if (m.op !== 'replay' && m.op !== 'update') continue;
    for (const u of m.updates) if (u.symbol === symbol) out.push({ op: m.op, seq: u.seq, ts: u.ts, last: u.last });
  }
  return out;
}

test('history on subscribe: ack, snapshot, history, then replay and updates continue with no gap and no duplicate', T, async () => {
  const srv = await startTickerd({ config: config() });
  const syms = ['BTC-USD', 'ETH-USD', 'SOL-USD'];
  await waitForHistory(srv, 'BTC-USD');
  const c = await connect(srv);
  const log = record(c);
  const ack = await c.ok({ op: 'subscribe', id: 'h', symbols: syms, history: { interval: 'tick', limit: 50 } });
  assert.deepEqual(ack.symbols, syms);
  await waitFor(() => syms.every((s) => valuesAfterHistory(log, s).filter((v) => v.op === 'update').length >= 20),
    { timeoutMs: 10000, message: '20 live updates per symbol after the history' });

  const ops = log.map((m) => m.op);
  assert.equal(ops[0], 'ack', 'the ack comes first');
  const firstSnapshot = ops.indexOf('snapshot');
  assert.ok(firstSnapshot > 0, 'a snapshot follows the ack');
  for (const s of syms) {
    const hi = log.findIndex((m) => m.op === 'history' && m.symbol === s);
    assert.ok(hi > firstSnapshot, `${s}: its history comes after the snapshot`);
    const snapAt = log.findIndex((m) => m.op === 'snapshot' && m.updates.some((u) => u.symbol === s));
    assert.ok(snapAt >= 0 && snapAt < hi, `${s}: snapshot before history`);
    const firstLive = log.findIndex((m) => (m.op === 'update' || m.op === 'replay') && m.updates.some((u) => u.symbol === s));
    assert.ok(firstLive > hi, `${s}: no live value before its history (first at ${firstLive}, history at ${hi})`);

    const h = log[hi];
    assert.deepEqual(h.columns, ['t', 'last', 'bid', 'ask', 'volume', 'seq']);
    assert.equal(h.interval, 'tick');
    assert.ok(h.rows.length > 0 && h.rows.length <= 50, `${s}: 1..50 rows, got ${h.rows.length}`);
    for (let i = 1; i < h.rows.length; i++) assert.ok(h.rows[i][0] >= h.rows[i - 1][0], `${s}: rows oldest first`);
    const lastRow = h.rows[h.rows.length - 1];
    assert.equal(lastRow[5], h.seq, `${s}: "seq" is the seq of the last history row`);

    // The seam: the values after the history start exactly at history.seq + 1 and run on with no gap or repeat.
    const after = valuesAfterHistory(log, s);
    const seqs = after.map((v) => v.seq);
    assert.equal(seqs[0], h.seq + 1, `${s}: the first value after the history is seq ${h.seq + 1}, got ${seqs[0]}`);
    for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], seqs[i - 1] + 1, `${s}: consecutive seqs (${seqs.slice(0, 30)})`);
    assert.ok(after[0].ts >= lastRow[0], `${s}: time goes on from the last history row`);
    // Replays (if any) come before updates.
    const firstUpdate = after.findIndex((v) => v.op === 'update');
    assert.ok(after.slice(firstUpdate).every((v) => v.op === 'update'), `${s}: no replay after live updates began`);
  }
});

test('history of candles: 1s buckets, oldest first, the last one holding the value at history.seq', T, async () => {
  const srv = await startTickerd({ config: config() });
  await waitForHistory(srv, 'BTC-USD', '1s', 2);
  const c = await connect(srv);
  const log = record(c);
  await c.ok({ op: 'subscribe', symbols: ['BTC-USD'], history: { interval: '1s', limit: 10 } });
  const h = await c.nextOp('history', 5000);
  assert.deepEqual(h.columns, ['t', 'open', 'high', 'low', 'close', 'count']);
  assert.ok(h.rows.length >= 2 && h.rows.length <= 10);
  for (const [t, o, hi, lo, cl, n] of h.rows) {
    assert.equal(t % 1000000, 0, 'bucket starts on whole seconds (µs)');
    assert.ok(lo <= o && o <= hi && lo <= cl && cl <= hi, `OHLC consistent: ${[o, hi, lo, cl]}`);
    assert.ok(n >= 1);
  }
  for (let i = 1; i < h.rows.length; i++) assert.ok(h.rows[i][0] > h.rows[i - 1][0], 'one row per bucket, in order');
  // The tick at history.seq is the close of the last candle.
  const ticks = (await httpGet(srv, `/api/history?symbol=BTC-USD&interval=tick&limit=2000`)).json().rows;
  const seam = ticks.find((r) => r[5] === h.seq);
  assert.ok(seam, `tick seq ${h.seq} is in the file`);
  const last = h.rows[h.rows.length - 1];
  assert.equal(Math.floor(seam[0] / 1e6) * 1e6, last[0], 'the seam tick falls in the last candle');
  assert.equal(seam[1], last[4], 'and is its close');
  await waitFor(() => valuesAfterHistory(log, 'BTC-USD').length > 0, { message: 'live values after the candles' });
  assert.equal(valuesAfterHistory(log, 'BTC-USD')[0].seq, h.seq + 1);
});

test('bad history requests are refused with an error naming the problem, and subscribe nothing', T, async () => {
  const srv = await startTickerd({ config: config() });
  await waitForSymbols(srv, ['BTC-USD']);
  const c = await connect(srv);
  const cases = [
    [{ interval: '2m' }, /history.interval/],
    [{ interval: '1m', limit: 0 }, /history.limit/],
    [{ interval: '1m', limit: 1e9 }, /history.limit/],
    [{ interval: '1m', limit: '5' }, /history.limit/],
    [{ interval: '1m', depth: 5 }, /history.depth/],
    ['1m', /"history" must be/],
  ];
  for (const [history, re] of cases) {
    const r = await c.request({ op: 'subscribe', symbols: ['BTC-USD'], history });
    assert.equal(r.op, 'error', JSON.stringify(history));
    assert.equal(r.code, 'bad_request');
    assert.match(r.message, re);
  }
  let r = await c.request({ op: 'subscribe', symbols: ['*'], history: { interval: '1m' } });
  assert.equal(r.code, 'bad_request');
  assert.match(r.message, /\*/);
  r = await c.request({ op: 'subscribe', symbols: ['BTC-USD'], history: { interval: '1m' }, resume: { 'BTC-USD': 1 } });
  assert.match(r.message, /cannot be combined/);
  const many = ['BTC-USD', 'ETH-USD', 'SOL-USD', 'AAPL-USD', 'MSFT-USD', 'EUR-USD'];
  r = await c.request({ op: 'subscribe', symbols: many, history: { interval: '1m', limit: 2000 } });
  assert.match(r.message, /10000 rows per request/);
  // Nothing was subscribed by any of these.
  const m = await metrics(srv);
  assert.equal(m.get('tickerd_subscriptions'), 0);
  assert.ok(c.drain().every((x) => x.op !== 'snapshot' && x.op !== 'history'));
});

test('GET /api/history: pages forward with next, newest rows without from, 400/404 for bad parameters', T, async () => {
  const srv = await startTickerd({ config: config() });
  await waitForHistory(srv, 'ETH-USD', 'tick', 30);
  const url = (q) => `/api/history?${q}`;

  const newest = (await httpGet(srv, url('symbol=ETH-USD&interval=tick&limit=10'))).json();
  assert.equal(newest.symbol, 'ETH-USD');
  assert.equal(newest.rows.length, 10);
  assert.equal(newest.next, null);
  assert.equal(newest.rows[9][5], newest.seq, 'newest page ends at the seam seq');

  const from = newest.rows[0][0] - 1;
  const p1 = (await httpGet(srv, url(`symbol=ETH-USD&interval=tick&from=${from}&limit=4`))).json();
  assert.equal(p1.rows.length, 4);
  assert.ok(p1.rows[0][0] >= from);
  assert.equal(typeof p1.next, 'number');
  const p2 = (await httpGet(srv, url(`symbol=ETH-USD&interval=tick&from=${p1.next}&limit=4`))).json();
  assert.ok(p2.rows[0][0] > p1.rows[3][0], 'the next page starts after the previous one');
  assert.equal(p2.rows[0][5], p1.rows[3][5] + 1, 'and loses no tick in between');

  const to = newest.rows[5][0];
  const before = (await httpGet(srv, url(`symbol=ETH-USD&interval=tick&to=${to}&limit=3`))).json();
  assert.ok(before.rows.every((r) => r[0] < to), 'to is exclusive');

  const bad = [
    ['interval=1m', /symbol/],
    ['symbol=ETH-USD&interval=5m', /interval/],
    ['symbol=ETH-USD&limit=0', /limit/],
    ['symbol=ETH-USD&limit=99999', /limit/],
    ['symbol=ETH-USD&limit=ten', /limit/],
    ['symbol=ETH-USD&from=-1', /from/],
    ['symbol=ETH-USD&from=20&to=10', /before/],
    ['symbol=ETH-USD&colour=red', /unknown parameter "colour"/],
    ['symbol=ETH-USD&symbol=BTC-USD', /twice/],
  ];
  for (const [q, re] of bad) {
    const r = await httpGet(srv, url(q));
    assert.equal(r.status, 400, q);
    assert.equal(r.json().error, 'bad_request', q);
    assert.match(r.json().message, re, q);
  }
  const unknown = await httpGet(srv, url('symbol=NOPE-USD'));
  assert.equal(unknown.status, 404);
  assert.equal(unknown.json().error, 'unknown_symbol');
});

test('GET /api/snapshot and /api/symbols: latest values and status per symbol', T, async () => {
  const srv = await startTickerd({ config: config() });
  await waitForSymbols(srv, ['BTC-USD', 'ETH-USD']);
  const some = await httpGet(srv, '/api/snapshot?symbols=BTC-USD,ETH-USD');
  assert.equal(some.status, 200);
  assert.deepEqual(some.json().updates.map((u) => u.symbol), ['BTC-USD', 'ETH-USD']);
  for (const u of some.json().updates) assert.ok(u.last > 0 && u.seq > 0);
  const all = (await httpGet(srv, '/api/snapshot')).json().updates;
  assert.equal(all.length, 20);
  const bad = await httpGet(srv, '/api/snapshot?symbols=BTC-USD,NOPE-USD');
  assert.equal(bad.status, 404);
  assert.deepEqual(bad.json().symbols, ['NOPE-USD']);
  const syms = (await httpGet(srv, '/api/symbols')).json().symbols;
  assert.equal(syms.length, 20);
  for (const s of syms) assert.ok(['live', 'stale', 'no_data'].includes(s.status), JSON.stringify(s));
  assert.equal(syms.find((s) => s.symbol === 'BTC-USD').status, 'live');
});

test('CORS: api.cors_origins answers the listed origins only; none by default', T, async () => {
  const srv = await startTickerd({ config: config({ api: { cors_origins: 'https://a.example, https://b.example' } }) });
  await waitForSymbols(srv, ['BTC-USD']);
  const get = (origin) => httpGet(srv, '/api/snapshot?symbols=BTC-USD', { headers: { Origin: origin } });
  assert.equal((await get('https://b.example')).headers['access-control-allow-origin'], 'https://b.example');
  assert.equal((await get('https://evil.example')).headers['access-control-allow-origin'], undefined);
  const open = await startTickerd({ config: config() });
  await waitForSymbols(open, ['BTC-USD']);
  const r = await httpGet(open, '/api/symbols', { headers: { Origin: 'https://a.example' } });
  assert.equal(r.headers['access-control-allow-origin'], undefined, 'no CORS unless configured');
});

test('restarting on the default config keeps the chart: old candles are served and new ones continue them', T, async () => {
  const stateDir = tempDir();
  // No "history" key at all: the default path under the state directory (XDG_STATE_HOME here).
  const cfg = simConfig({ rate: 2000, seed: 3 });
  const first = await startTickerd({ config: cfg, stateDir });
  await waitForHistory(first, 'BTC-USD', '1s', 3);
  const health = (await httpGet(first, '/healthz')).json().history;
  assert.equal(health.state, 'ok');
  assert.equal(health.path, `${stateDir}/tickerd/history.db`);
  await sleep(1200); // the default flush is 1 s: let the last second reach the file
  assert.deepEqual(await first.stop('SIGTERM'), { code: 0, signal: null });
  const stoppedAt = Date.now() * 1000;
  const before = (await httpGet(first, '/healthz').catch(() => null));
  assert.equal(before, null, 'the first server is gone');

  const second = await startTickerd({ config: cfg, stateDir });
  const old = (await httpGet(second, `/api/history?symbol=BTC-USD&interval=1s&to=${stoppedAt}&limit=100`)).json();
  assert.ok(old.rows.length >= 3, `the first run's candles are there (${old.rows.length})`);
  await waitFor(async () => {
    const r = (await httpGet(second, '/api/history?symbol=BTC-USD&interval=1s&limit=100')).json();
    return r.rows.some((row) => row[0] > stoppedAt);
  }, { timeoutMs: 8000, message: 'new candles after the restart' });
  const all = (await httpGet(second, '/api/history?symbol=BTC-USD&interval=1s&limit=2000')).json().rows;
  const starts = all.map((r) => r[0]);
  assert.equal(new Set(starts).size, starts.length, 'one row per bucket across both runs');
});
