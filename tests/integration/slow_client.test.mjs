// Slow and stalled consumers (docs/protocol.md "Delivery guarantees"): a client that stops reading is
// conflated (latest value per symbol), costs bounded memory, never delays other clients and converges to the
// newest values when it reads again; a client that accepts no bytes for broadcast.stall_timeout_ms is closed.
import { test, afterEach, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startTickerd, stopAll, connect, closeAllClients, metrics, waitFor, waitForSymbolCount, simConfig, UpdateTracker, sleep,
} from './lib/harness.mjs';

const T = { timeout: 45000 };
const MiB = 1024; // in KiB

afterEach(async () => {
  closeAllClients();
  await stopAll();
});
after(async () => {
  closeAllClients();
  await stopAll();
});

// 50000 updates/s over 100 generated symbols, without coalescing (flush_interval_ms 0: every update is
// published), i.e. several MB/s of update frames per `*` subscriber. At the default 10 ms coalescing it would
// be about 10000 values/s, and the loopback socket buffers (several MB) could absorb a whole 3 s stall without
// the server ever having to conflate anything.
function heavyConfig(extra = {}) {
  return simConfig({
    rate: 50000,
    seed: 777,
    feed: { include_defaults: false, generated_symbols: 100 },
    normalizer: { flush_interval_ms: 0 },
    // Pure conflation (latest value only). With the default backlog window a client that keeps up gets
    // every one of the 50000 values/s, which would load this test's Node client rather than the server.
    broadcast: { backlog_ms: 0, ...(extra.broadcast || {}) },
    ...Object.fromEntries(Object.entries(extra).filter(([k]) => k !== 'broadcast')),
  });
}

async function waitForGenerated(srv, n = 100) {
  const list = await waitForSymbolCount(srv, n);
  const names = list.map((s) => s.symbol).sort();
  const want = Array.from({ length: n }, (_, i) => `G${String(i + 1).padStart(5, '0')}-USD`);
  assert.deepEqual(names, want, 'generated symbol names');
}

/** Assert `tracker` received at least one frame in every 500 ms window of [from, to). */
function assertSteady(tracker, from, to, who) {
  const empty = [];
  for (let t = from; t + 500 <= to; t += 500) {
    if (tracker.framesBetween(t, t + 500) === 0) empty.push(`${t - from}-${t - from + 500} ms`);
  }
  assert.deepEqual(empty, [], `${who} received nothing in these 500 ms windows`);
}

test('a client that stops reading is conflated: bounded memory, others unaffected, converges on resume', T, async (t) => {
  const srv = await startTickerd({ config: heavyConfig() });
  await waitForGenerated(srv);

  const a = await connect(srv);
  const b = await connect(srv);
  const ta = new UpdateTracker(a);
  const tb = new UpdateTracker(b);
  await a.subscribe(['*']);
  await b.subscribe(['*']);
  // consume nothing through next(): the trackers watch every frame; keep the queues empty
  const drainTimer = setInterval(() => { a.drain(); b.drain(); }, 100);
  try {
    await sleep(1000);
    assert.equal(ta.latest.size, 100, `A sees ${ta.latest.size} of 100 symbols before the stall`);
    // Control period: RSS drift with both clients reading (about 0 for a plain build; allocator quarantine
    // makes it grow steadily under AddressSanitizer). The stall is judged by the growth beyond this drift.
    const rssC = srv.rssKiB();
    await sleep(2000);
    const rss0 = srv.rssKiB();
    const driftPerSec = Math.max(0, (rss0 - rssC) / 2);
    const conflated0 = (await metrics(srv)).sum('tickerd_updates_conflated_total');

    a.pause();
    const t0 = Date.now();
    const aFramesAtPause = ta.frames;
    await sleep(1000);
    const rss1 = srv.rssKiB();
    const bBytes1 = b.bytesIn;
    await sleep(2000);
    const rss3 = srv.rssKiB();
    const bBytes3 = b.bytesIn;
    const tEnd = Date.now();

    // B was never delayed by A.
    assertSteady(tb, t0, tEnd, 'client B (reading) during A\'s stall');
    assert.ok(b.isOpen, 'client B was closed');

    // Memory: bounded, and not growing with the amount of data A did not read.
    const growth = rss3 - rss0 - 3 * driftPerSec;
    const lateGrowth = rss3 - rss1 - 2 * driftPerSec;
    const unreadKiB = (bBytes3 - bBytes1) / 1024; // what A missed between 1 s and 3 s (B got the same data)
    const diag = `RSS before ${rss0} KiB, at 1 s ${rss1} KiB, at 3 s ${rss3} KiB; drift without a stall ` +
      `${driftPerSec.toFixed(0)} KiB/s; B received ${unreadKiB.toFixed(0)} KiB between 1 s and 3 s`;
    t.diagnostic(diag);
    assert.ok(growth < 64 * MiB, `server RSS grew by ${growth.toFixed(0)} KiB beyond drift during a 3 s stall (${diag})`);
    assert.ok(lateGrowth < Math.max(2 * MiB, unreadKiB / 4),
      `server RSS kept growing while A was stalled: +${lateGrowth.toFixed(0)} KiB beyond drift between 1 s and 3 s (${diag})`);

    // Resume: A converges to (at least) what B had at that moment, for every symbol, within 2 s.
    const bAtResume = new Map([...tb.latest].map(([s, u]) => [s, u.seq]));
    assert.equal(bAtResume.size, 100);
    a.resume();
    const tResume = Date.now();
    try {
      await waitFor(() => [...bAtResume].every(([s, seq]) => (ta.latest.get(s)?.seq ?? -1) >= seq),
        { timeoutMs: 2000, intervalMs: 20, message: 'A to catch up with B' });
    } catch (err) {
      const behind = [...bAtResume].filter(([s, seq]) => (ta.latest.get(s)?.seq ?? -1) < seq)
        .slice(0, 5).map(([s, seq]) => `${s}: A ${ta.latest.get(s)?.seq} < B ${seq}`);
      throw new Error(`${err.message}; ${behind.length ? behind.join(', ') : ''} ` +
        `(A got ${ta.frames - aFramesAtPause} frames since the pause, open=${a.isOpen})`);
    }
    const catchUpMs = Date.now() - tResume;
    t.diagnostic(`A caught up ${catchUpMs} ms after resuming; A saw ${ta.gaps} seq gaps`);

    const conflated = (await metrics(srv)).sum('tickerd_updates_conflated_total');
    assert.ok(conflated > 0, 'tickerd_updates_conflated_total is 0 after a 3 s stall');
    assert.ok(conflated > conflated0, `tickerd_updates_conflated_total did not grow during the stall (${conflated0} -> ${conflated})`);
    assert.ok(ta.gaps > 0, 'A never saw a seq gap although values were conflated for it');
    assert.deepEqual(ta.violations, [], 'A: ordering violations');
    assert.deepEqual(tb.violations, [], 'B: ordering violations');

    // Slowness alone does not get a client closed.
    await sleep(300);
    assert.ok(a.isOpen, `A was closed: ${JSON.stringify(a.closeInfo)}`);
    const ack = await a.request({ op: 'ping', id: 'after-stall' }, 3000);
    assert.equal(ack.op, 'ack');
    const m = await metrics(srv);
    assert.equal(m.sum('tickerd_slow_client_closes_total'), 0);
    assert.ok(catchUpMs <= 2000);
  } finally {
    clearInterval(drainTimer);
  }
});

test('a client that accepts no bytes for stall_timeout_ms is closed with 1008, others continue', T, async (t) => {
  const srv = await startTickerd({ config: heavyConfig({ broadcast: { stall_timeout_ms: 1000 } }) });
  await waitForGenerated(srv);

  const a = await connect(srv);
  const b = await connect(srv);
  const tb = new UpdateTracker(b);
  await a.subscribe(['*']);
  await b.subscribe(['*']);
  const drainTimer = setInterval(() => { a.drain(); b.drain(); }, 100);
  try {
    await sleep(500);
    a.pause();
    const t0 = Date.now();
    // Buffers fill first, then 1 s without progress -> closed.
    const m = await waitFor(async () => {
      const x = await metrics(srv);
      return x.sum('tickerd_slow_client_closes_total') >= 1 ? x : false;
    }, { timeoutMs: 15000, intervalMs: 100, message: 'tickerd_slow_client_closes_total >= 1' });
    const tClosed = Date.now();
    assert.equal(m.sum('tickerd_clients_connected'), 1, 'the stalled client is still counted as connected');

    assertSteady(tb, t0, tClosed, 'client B while A stalled');
    assert.ok(b.isOpen, `client B was closed: ${JSON.stringify(b.closeInfo)}`);

    a.resume();
    const info = await a.waitClose(5000);
    // The server can only deliver its 1008 close frame if there is room in the socket; once A reads again it
    // either gets that frame (1008) or the TCP connection just ends (1006). Anything else is wrong.
    assert.ok(info.code === 1008 || info.code === 1006,
      `stalled client closed with ${info.code} (${info.reason})`);
    if (info.code === 1008) assert.equal(info.reason, 'stalled');
    t.diagnostic(`stalled client observed close code ${info.code} ${tClosed - t0} ms after it stopped reading`);

    // B keeps going afterwards.
    // (waited for rather than slept on: a sanitizer build on a loaded machine can be slow, not stopped)
    const before = tb.updateFrames;
    await waitFor(() => tb.updateFrames > before, { timeoutMs: 5000, message: 'B receiving after A was closed' });
    assert.ok(b.isOpen);
    assert.deepEqual(tb.violations, []);
  } finally {
    clearInterval(drainTimer);
  }
});
