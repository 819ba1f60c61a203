// Subscription behaviour of the WebSocket protocol (docs/protocol.md): acks, snapshots, updates, rooms,
// unsubscribe, "*", re-subscribe, unknown symbols, ping, ids, subprotocol.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startTickerd, stopAll, connect, closeAllClients, httpGet, metrics, waitForSymbols, waitForSymbolCount, simConfig,
  updatesOf, hasSymbol,
  UpdateTracker, checkUpdateShape, sleep, DEFAULT_SYMBOLS, BUILTIN_SYMBOL_COUNT,
} from './lib/harness.mjs';

const T = { timeout: 30000 };
let srv;

before(async () => {
  // High rate (about 1000 updates/s per built-in symbol) so that any leak between rooms, or a frame after an
  // unsubscribe, would show up within the observation windows below.
  srv = await startTickerd({ config: simConfig({ rate: 20000, seed: 4242 }) });
  await waitForSymbols(srv, DEFAULT_SYMBOLS);
});

after(async () => {
  closeAllClients();
  await stopAll();
});

/**
 * Read frames after a subscribe ack until every symbol in `symbols` has had its snapshot; fail if an update
 * for one of them arrives before its snapshot. Returns Map symbol -> snapshot entry.
 */
async function expectSnapshotsFirst(client, symbols, timeoutMs = 3000) {
  const want = new Set(symbols);
  const snap = new Map();
  const deadline = Date.now() + timeoutMs;
  while ([...want].some((s) => !snap.has(s))) {
    const left = deadline - Date.now();
    assert.ok(left > 0, `no snapshot for ${[...want].filter((s) => !snap.has(s)).join(',')} within ${timeoutMs} ms`);
    const m = await client.next((x) => x.op === 'snapshot' || x.op === 'update', left, 'snapshot/update frame');
    for (const u of updatesOf(m)) {
      if (!want.has(u.symbol)) continue;
      if (m.op === 'update') {
        assert.ok(snap.has(u.symbol), `update for ${u.symbol} (seq ${u.seq}) arrived before its snapshot`);
      } else if (!snap.has(u.symbol)) {
        snap.set(u.symbol, u);
      }
    }
  }
  return snap;
}

test('subscribe ack carries id, req and symbols; snapshot with current values precedes updates', T, async () => {
  const c = await connect(srv);
  const tracker = new UpdateTracker(c);
  const ack = await c.request({ op: 'subscribe', symbols: ['BTC-USD', 'ETH-USD'], id: 1 });
  assert.equal(ack.op, 'ack', JSON.stringify(ack));
  assert.equal(ack.id, 1);
  assert.equal(ack.req, 'subscribe');
  assert.ok(Array.isArray(ack.symbols), 'ack.symbols is an array');
  assert.deepEqual([...ack.symbols].sort(), ['BTC-USD', 'ETH-USD']);

  const snap = await expectSnapshotsFirst(c, ['BTC-USD', 'ETH-USD']);
  for (const [sym, u] of snap) {
    assert.equal(u.symbol, sym);
    checkUpdateShape(u);
    // "current value": at ~1000 updates/s per symbol the latest value is at most a few ms old.
    const ageMs = Date.now() - u.ts / 1000;
    assert.ok(ageMs < 2000, `snapshot for ${sym} is ${ageMs.toFixed(0)} ms old: ${JSON.stringify(u)}`);
  }

  // Then updates arrive, with seq strictly increasing per symbol and above the snapshot's seq.
  const seen = new Map();
  const deadline = Date.now() + 3000;
  while ((seen.get('BTC-USD') ?? 0) < 5 || (seen.get('ETH-USD') ?? 0) < 5) {
    const m = await c.next((x) => x.op === 'update', Math.max(1, deadline - Date.now()), 'update frame');
    for (const u of updatesOf(m)) {
      assert.ok(['BTC-USD', 'ETH-USD'].includes(u.symbol), `unsubscribed symbol ${u.symbol} in update`);
      checkUpdateShape(u);
      assert.ok(u.seq > snap.get(u.symbol).seq,
        `update seq ${u.seq} for ${u.symbol} not above snapshot seq ${snap.get(u.symbol).seq}`);
      seen.set(u.symbol, (seen.get(u.symbol) ?? 0) + 1);
    }
  }
  assert.deepEqual(tracker.violations, []);
  c.close();
});

test('seq increases per symbol and identifies the same value for every client', T, async () => {
  const a = await connect(srv);
  const b = await connect(srv);
  const byA = new Map();
  const byB = new Map();
  const ta = new UpdateTracker(a);
  const tb = new UpdateTracker(b);
  const rec = (map) => (m) => {
    for (const u of updatesOf(m)) if (u.symbol === 'BTC-USD') map.set(u.seq, u);
  };
  a.onMessage(rec(byA));
  b.onMessage(rec(byB));
  await a.subscribe(['BTC-USD']);
  await b.subscribe(['BTC-USD']);
  await sleep(1500);

  assert.deepEqual(ta.violations, []);
  assert.deepEqual(tb.violations, []);
  assert.ok(byA.size >= 10, `client A saw only ${byA.size} BTC-USD values in 1.5 s at rate 20000`);
  let common = 0;
  for (const [seq, ua] of byA) {
    const ub = byB.get(seq);
    if (!ub) continue;
    common++;
    for (const k of ['last', 'bid', 'ask', 'ts']) {
      assert.equal(ua[k], ub[k], `seq ${seq}: ${k} differs between clients (${ua[k]} vs ${ub[k]})`);
    }
  }
  assert.ok(common >= 5, `only ${common} BTC-USD seq values seen by both fast clients`);
  a.close();
  b.close();
});

test('room isolation: a BTC-USD subscriber never receives another symbol', T, async () => {
  const c = await connect(srv);
  await c.subscribe(['BTC-USD']);
  const msgs = await c.collect(2000);
  const others = new Set();
  let btc = 0;
  for (const m of msgs) {
    assert.ok(m.op === 'snapshot' || m.op === 'update', `unexpected frame after the ack: ${JSON.stringify(m).slice(0, 200)}`);
    for (const u of updatesOf(m)) {
      if (u.symbol === 'BTC-USD') btc++; else others.add(u.symbol);
    }
  }
  assert.deepEqual([...others], [], `received symbols outside the room: ${[...others].join(',')}`);
  assert.ok(btc >= 20, `only ${btc} BTC-USD values in 2 s at rate 20000`);
  c.close();
});

test('unsubscribe stops updates for that symbol and keeps the others', T, async () => {
  const c = await connect(srv);
  const tracker = new UpdateTracker(c);
  await c.subscribe(['BTC-USD', 'ETH-USD']);
  await c.next((m) => hasSymbol(m, 'ETH-USD') && m.op === 'update', 3000, 'an ETH-USD update');

  const ack = await c.request({ op: 'unsubscribe', symbols: ['ETH-USD'], id: 'u1' });
  assert.equal(ack.op, 'ack', JSON.stringify(ack));
  assert.equal(ack.id, 'u1');
  assert.equal(ack.req, 'unsubscribe');
  assert.deepEqual(ack.symbols, ['ETH-USD']);

  await sleep(200); // frames already in flight when the ack was written
  c.drain();
  const msgs = await c.collect(800);
  const eth = msgs.filter((m) => hasSymbol(m, 'ETH-USD'));
  const btc = msgs.filter((m) => hasSymbol(m, 'BTC-USD'));
  assert.equal(eth.length, 0, `ETH-USD still delivered >200 ms after unsubscribe: ${JSON.stringify(eth[0])?.slice(0, 200)}`);
  assert.ok(btc.length > 0, 'BTC-USD updates stopped although only ETH-USD was unsubscribed');

  // Unsubscribing from a symbol that is not subscribed is not an error.
  const ack2 = await c.request({ op: 'unsubscribe', symbols: ['SOL-USD'], id: 'u2' });
  assert.equal(ack2.op, 'ack', `unsubscribe of a non-subscribed symbol: ${JSON.stringify(ack2)}`);

  // ["*"] unsubscribes from everything.
  const ack3 = await c.request({ op: 'unsubscribe', symbols: ['*'], id: 'u3' });
  assert.equal(ack3.op, 'ack', JSON.stringify(ack3));
  await sleep(200);
  c.drain();
  const after = await c.collect(800);
  const data = after.filter((m) => m.op === 'update' || m.op === 'snapshot');
  assert.equal(data.length, 0, `frames still delivered after unsubscribe ["*"]: ${JSON.stringify(data[0])?.slice(0, 200)}`);
  assert.deepEqual(tracker.violations, []);
  c.close();
});

test('"*" receives every symbol, each snapshot before its updates', T, async () => {
  const list = (await httpGet(srv, '/api/symbols')).json().symbols.map((s) => s.symbol);
  assert.equal(list.length, BUILTIN_SYMBOL_COUNT, `/api/symbols lists ${list.length} symbols: ${list.join(',')}`);

  const c = await connect(srv);
  const tracker = new UpdateTracker(c);
  const ack = await c.request({ op: 'subscribe', symbols: ['*'], id: 4 });
  assert.equal(ack.op, 'ack', JSON.stringify(ack));
  assert.equal(ack.id, 4);
  await expectSnapshotsFirst(c, list, 3000);
  for (const s of DEFAULT_SYMBOLS) assert.ok(tracker.latest.has(s), `"*" subscriber never got ${s}`);
  // every symbol then keeps updating
  await sleep(1000);
  for (const s of list) {
    assert.ok(tracker.latest.get(s)?.seq > 0 && (tracker.counts.get(s) ?? 0) >= 2, `"*" subscriber got no updates for ${s}`);
  }
  for (const u of tracker.latest.values()) checkUpdateShape(u);
  assert.deepEqual(tracker.violations, []);
  c.close();
});

test('subscribing to an already subscribed symbol is not an error and resends its snapshot', T, async () => {
  const c = await connect(srv);
  const tracker = new UpdateTracker(c);
  await c.subscribe(['SOL-USD']);
  await expectSnapshotsFirst(c, ['SOL-USD']);
  await c.next((m) => m.op === 'update' && hasSymbol(m, 'SOL-USD'), 3000, 'a SOL-USD update');

  const ack = await c.request({ op: 'subscribe', symbols: ['SOL-USD'], id: 'again' });
  assert.equal(ack.op, 'ack', `re-subscribe: ${JSON.stringify(ack)}`);
  assert.equal(ack.id, 'again');
  const snap = await c.next((m) => m.op === 'snapshot' && hasSymbol(m, 'SOL-USD'), 2000, 'the resent SOL-USD snapshot');
  checkUpdateShape(updatesOf(snap).find((u) => u.symbol === 'SOL-USD'));
  await sleep(300);
  assert.deepEqual(tracker.violations, []);
  c.close();
});

test('unknown symbol -> unknown_symbol error listing it, and the subscribe is atomic', T, async () => {
  const c = await connect(srv);
  const err = await c.request({ op: 'subscribe', symbols: ['BTC-USD', 'FOO-BAR'], id: 7 });
  assert.equal(err.op, 'error', `expected an error, got ${JSON.stringify(err)}`);
  assert.equal(err.id, 7);
  assert.equal(err.code, 'unknown_symbol');
  assert.equal(typeof err.message, 'string');
  assert.deepEqual(err.symbols, ['FOO-BAR']);

  // Nothing subscribed: BTC-USD (about 1000 updates/s) must not be delivered.
  const msgs = await c.collect(600);
  const data = msgs.filter((m) => m.op === 'update' || m.op === 'snapshot');
  assert.equal(data.length, 0, `got data after a failed subscribe: ${JSON.stringify(data[0])?.slice(0, 200)}`);

  // The connection still works and a later subscribe only adds its own symbols.
  await c.subscribe(['ETH-USD']);
  const later = await c.collect(600);
  const syms = new Set(later.flatMap((m) => updatesOf(m).map((u) => u.symbol)));
  assert.deepEqual([...syms], ['ETH-USD']);
  c.close();
});

test('ping is acked with req "ping" and the server time in integer µs', T, async () => {
  const c = await connect(srv);
  const before = Date.now();
  const ack = await c.request({ op: 'ping', id: 3 });
  const afterMs = Date.now();
  assert.equal(ack.op, 'ack', JSON.stringify(ack));
  assert.equal(ack.id, 3);
  assert.equal(ack.req, 'ping');
  assert.ok(Number.isInteger(ack.time), `time is not an integer: ${ack.time}`);
  const t = ack.time / 1000;
  assert.ok(t >= before - 1000 && t <= afterMs + 1000, `ping time ${ack.time} is not µs since epoch near now (${before} ms)`);
  c.close();
});

test('string ids are echoed unchanged; a request without id gets id null', T, async () => {
  const c = await connect(srv);
  for (const id of ['abc-123', 'x'.repeat(64), 'ü-✓', '', '42']) {
    const ack = await c.request({ op: 'ping', id });
    assert.equal(ack.op, 'ack', JSON.stringify(ack));
    assert.equal(ack.id, id);
  }
  const sub = await c.request({ op: 'subscribe', symbols: ['EUR-USD'], id: 'sub-1' });
  assert.equal(sub.op, 'ack');
  assert.equal(sub.id, 'sub-1');

  c.drain();
  c.send({ op: 'ping' });
  const ack = await c.next((m) => m.op === 'ack' && m.req === 'ping', 2000, 'ack of a ping without id');
  assert.ok('id' in ack, `ack of a request without id has no "id" key: ${JSON.stringify(ack)}`);
  assert.equal(ack.id, null);
  c.close();
});

test('subprotocol tickerd.json is accepted; no subprotocol gets the JSON encoding too', T, async () => {
  const c = await connect(srv, { protocols: ['tickerd.json'] });
  assert.equal(c.protocol, 'tickerd.json');
  await c.subscribe(['BTC-USD']);
  const m = await c.next((x) => x.op === 'snapshot' || x.op === 'update', 3000);
  assert.ok(hasSymbol(m, 'BTC-USD'));
  assert.equal(c.binaryFrames, 0, 'server sent binary frames');
  c.close();

  const d = await connect(srv);
  assert.equal(d.protocol, '');
  await d.subscribe(['BTC-USD']);
  await d.next((x) => x.op === 'snapshot' || x.op === 'update', 3000);
  assert.equal(d.binaryFrames, 0, 'server sent binary frames');
  d.close();
});

test('coalescing: one published value per symbol per flush interval, seq +1 per value', T, async (t) => {
  // 2000 updates/s over 20 symbols = about 100/s per symbol; with 200 ms coalescing at most ~5 values/s each.
  const own = await startTickerd({ config: simConfig({ rate: 2000, seed: 8, normalizer: { flush_interval_ms: 200 } }) });
  await waitForSymbols(own, ['BTC-USD']);
  const c = await connect(own);
  const tracker = new UpdateTracker(c);
  const vals = [];
  c.onMessage((m) => { for (const u of updatesOf(m)) if (u.symbol === 'BTC-USD') vals.push(u); });
  await c.subscribe(['BTC-USD']);
  await sleep(2000);
  const seqs = vals.map((u) => u.seq);
  t.diagnostic(`BTC-USD values in 2 s with 200 ms coalescing: ${seqs.length}`);
  assert.ok(seqs.length >= 3, `only ${seqs.length} BTC-USD values in 2 s`);
  assert.ok(seqs.length <= 2000 / 200 + 3, `${seqs.length} BTC-USD values in 2 s: not coalesced to one per 200 ms`);
  // a fast reader is never conflated: every published value arrives, seq +1 each time
  for (let i = 1; i < seqs.length; i++) {
    assert.equal(seqs[i], seqs[i - 1] + 1, `seq jumped ${seqs[i - 1]} -> ${seqs[i]} for a client that reads promptly`);
  }
  assert.deepEqual(tracker.violations, []);
  const m = await metrics(own);
  assert.ok(m.value('tickerd_updates_coalesced_total') > 0, 'tickerd_updates_coalesced_total is 0');
  assert.ok(m.value('tickerd_updates_published_total') < m.value('tickerd_updates_in_total') / 5,
    `published ${m.value('tickerd_updates_published_total')} of ${m.value('tickerd_updates_in_total')} updates with 200 ms coalescing`);
  c.close();
  assert.deepEqual(await own.stop(), { code: 0, signal: null }, 'exit status on SIGTERM');
});

test('broadcast.max_frame_bytes bounds every data frame; a "*" subscriber still gets every symbol', T, async () => {
  const own = await startTickerd({
    config: simConfig({
      rate: 50000, seed: 9, feed: { include_defaults: false, generated_symbols: 100 },
      broadcast: { max_frame_bytes: 1024 },
    }),
  });
  await waitForSymbolCount(own, 100);
  const c = await connect(own);
  const tracker = new UpdateTracker(c);
  const big = [];
  let frames = 0;
  c.onMessage((m, at, bin, bytes) => {
    if (m.op !== 'update' && m.op !== 'snapshot') return;
    frames++;
    if (bytes > 1024) big.push(`${m.op} of ${bytes} bytes`);
  });
  await c.subscribe(['*']);
  await sleep(1500);
  assert.ok(frames > 10, `only ${frames} data frames`);
  assert.deepEqual(big.slice(0, 5), [], `${big.length} of ${frames} frames exceed max_frame_bytes 1024`);
  assert.equal(tracker.latest.size, 100, `saw ${tracker.latest.size} of 100 symbols`);
  assert.deepEqual(tracker.violations, []);
  c.close();
  assert.deepEqual(await own.stop(), { code: 0, signal: null }, 'exit status on SIGTERM');
});
