// Resume (docs/protocol.md, "Resume"): a client that reconnects names the last seq it saw per symbol and gets
// the values it missed in "replay" frames (consecutive seqs, then live updates with no gap at the seam), or a
// snapshot marked "reset":true when the server's ring no longer holds them or its seqs are not comparable (the
// server restarted: seq ahead, or another epoch).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startTickerd, stopAll, connect, closeAllClients, httpGet, metrics, waitFor, waitForSymbols, simConfig, sleep,
  checkUpdateShape,
} from './lib/harness.mjs';

const T = { timeout: 60000 };
const SYMS = ['BTC-USD', 'ETH-USD'];

after(async () => {
  closeAllClients();
  await stopAll();
});

// 20000 updates/s over the 20 built-in symbols with the default 10 ms coalescing: about 100 published values/s
// per symbol, so a client away for a few hundred ms misses tens of values per symbol.
const config = (resumeDepth, extra = {}) => simConfig({ rate: 20000, seed: 31, broadcast: { resume_depth: resumeDepth }, ...extra });

/** Every update object a client receives, in order, as {op, reset, frame, u}. */
function record(client) {
  const log = [];
  let frame = 0;
  client.onMessage((m) => {
    if (!['snapshot', 'update', 'replay'].includes(m.op)) return;
    frame++;
    for (const u of m.updates) log.push({ op: m.op, reset: m.reset === true, hasReset: 'reset' in m, frame, u });
  });
  return log;
}

const lastSeqs = (log, symbols) => Object.fromEntries(symbols.map((s) => {
  const mine = log.filter((e) => e.u.symbol === s);
  return [s, mine.length ? mine[mine.length - 1].u.seq : undefined];
}));

async function seqNow(srv, symbol) {
  const list = (await httpGet(srv, '/api/symbols')).json().symbols;
  return list.find((x) => x.symbol === symbol)?.seq ?? 0;
}

/** A client that subscribes to `symbols`, reads for `ms`, and disconnects. Returns {last, epoch}. */
async function watchThenLeave(srv, symbols, ms) {
  const c = await connect(srv);
  const log = record(c);
  const ack = await c.subscribe(symbols, 'first');
  await sleep(ms);
  c.terminate(); // abrupt, as a network drop would be
  await c.waitClose();
  const last = lastSeqs(log, symbols);
  for (const s of symbols) assert.ok(last[s] > 0, `the first connection saw no value of ${s}`);
  return { last, epoch: ack.epoch };
}

test('subscribe acks carry the server epoch: 16 hex digits, the same for every client of one server', T, async () => {
  const srv = await startTickerd({ config: config(64) });
  await waitForSymbols(srv, SYMS);
  const a = await connect(srv);
  const b = await connect(srv);
  const ea = (await a.subscribe(['BTC-USD'])).epoch;
  const eb = (await b.subscribe(['ETH-USD'])).epoch;
  assert.match(ea, /^[0-9a-f]{16}$/);
  assert.equal(ea, eb);
  a.close();
  b.close();
  await srv.stop();
});

test('reconnect within the ring depth: replay of exactly the missed seqs, then live updates with no gap', T, async (t) => {
  const srv = await startTickerd({ config: config(1024) });
  await waitForSymbols(srv, SYMS);
  const { last, epoch } = await watchThenLeave(srv, SYMS, 500);
  await sleep(300); // away: about 30 values per symbol published meanwhile

  const c = await connect(srv);
  const log = record(c);
  const ack = await c.request({ op: 'subscribe', symbols: SYMS, resume: last, epoch, id: 'resume' });
  assert.equal(ack.op, 'ack', JSON.stringify(ack));
  assert.equal(ack.epoch, epoch);
  await sleep(1000);

  for (const s of SYMS) {
    const mine = log.filter((e) => e.u.symbol === s);
    const replay = mine.filter((e) => e.op === 'replay');
    t.diagnostic(`${s}: last seen ${last[s]}, replayed ${replay.length} (${replay[0]?.u.seq}..${replay.at(-1)?.u.seq}), then ${mine.length - replay.length} live`);
    assert.ok(replay.length >= 5, `${s}: only ${replay.length} replayed values after 300 ms away`);
    assert.equal(mine.filter((e) => e.op === 'snapshot').length, 0, `${s}: a snapshot although the ring held the missed values`);
    // Replayed first, then live: no live update before the last replayed one.
    const firstLive = mine.findIndex((e) => e.op !== 'replay');
    assert.ok(firstLive === replay.length, `${s}: a live update arrived before the replay was over`);
    assert.ok(mine.length > replay.length, `${s}: no live update after the replay`);
    // Consecutive from last+1, across the seam and on: nothing missed, nothing twice.
    mine.forEach((e, i) => {
      assert.equal(e.u.seq, last[s] + 1 + i,
        `${s}: value ${i} after resuming from ${last[s]} has seq ${e.u.seq} (${e.op})`);
      checkUpdateShape(e.u, { maxAgeMs: 60000 });
    });
  }
  const m = await metrics(srv);
  // Wired in /metrics by the http module; checked once it is there.
  if (m.has('tickerd_resume_replayed_updates_total')) {
    assert.ok(m.value('tickerd_resume_replayed_updates_total') >= 10);
  }
  c.close();
  assert.deepEqual(await srv.stop(), { code: 0, signal: null });
});

test('a replay larger than broadcast.max_frame_bytes is split, every frame within the limit', T, async () => {
  const srv = await startTickerd({ config: config(1024, { broadcast: { resume_depth: 1024, max_frame_bytes: 1024 } }) });
  await waitForSymbols(srv, SYMS);
  const { last, epoch } = await watchThenLeave(srv, SYMS, 300);
  await sleep(500);
  const c = await connect(srv);
  const log = record(c);
  const sizes = [];
  c.onMessage((m, at, bin, bytes) => { if (m.op === 'replay') sizes.push(bytes); });
  await c.ok({ op: 'subscribe', symbols: SYMS, resume: last, epoch });
  await sleep(800);
  assert.ok(sizes.length > 5, `${sizes.length} replay frames`);
  assert.deepEqual(sizes.filter((b) => b > 1024), [], 'replay frames above max_frame_bytes');
  for (const s of SYMS) {
    const mine = log.filter((e) => e.u.symbol === s);
    mine.forEach((e, i) => assert.equal(e.u.seq, last[s] + 1 + i, `${s}: ${e.op} value ${i}`));
    assert.ok(mine.findIndex((e) => e.op !== 'replay') > 0, `${s}: no replay, or no update after it`);
  }
  c.close();
});

test('resuming from a seq the ring no longer holds -> snapshot marked reset; non-resuming clients see no reset key', T, async () => {
  const srv = await startTickerd({ config: config(16) });
  await waitForSymbols(srv, SYMS);
  const { last, epoch } = await watchThenLeave(srv, SYMS, 200);
  // Gone long enough for more than 16 values per symbol (about 100/s).
  await waitFor(async () => (await seqNow(srv, 'BTC-USD')) > last['BTC-USD'] + 40
    && (await seqNow(srv, 'ETH-USD')) > last['ETH-USD'] + 40, { message: 'the rings to move on' });

  const c = await connect(srv);
  const log = record(c);
  await c.ok({ op: 'subscribe', symbols: SYMS, resume: last, epoch });
  await sleep(500);
  for (const s of SYMS) {
    const mine = log.filter((e) => e.u.symbol === s);
    assert.ok(mine.length > 1, `${s}: nothing received`);
    assert.equal(mine[0].op, 'snapshot', `${s}: first frame is ${mine[0].op}`);
    assert.equal(mine[0].reset, true, `${s}: the snapshot is not marked reset`);
    assert.ok(mine[0].u.seq > last[s] + 16, `${s}: reset snapshot seq ${mine[0].u.seq} vs last ${last[s]}`);
    assert.equal(mine.filter((e) => e.op === 'replay').length, 0);
    mine.slice(1).forEach((e) => assert.equal(e.op, 'update'));
  }

  // A client that does not resume gets the snapshot contract unchanged: no "reset" key at all.
  const d = await connect(srv);
  const dlog = record(d);
  await d.subscribe(SYMS);
  await sleep(300);
  const snaps = dlog.filter((e) => e.op === 'snapshot');
  assert.equal(snaps.length, 2);
  assert.deepEqual(snaps.filter((e) => e.hasReset), []);
  const m = await metrics(srv);
  if (m.has('tickerd_resume_resets_total')) {
    assert.ok(m.value('tickerd_resume_resets_total', { reason: 'too_old' }) >= 2);
  }
  c.close();
  d.close();
});

test('resuming with the seq current: nothing replayed, no snapshot, then live updates', T, async () => {
  // A slow feed (about one value per symbol per second) so that the seq can stay put around the subscribe.
  const srv = await startTickerd({ config: simConfig({ rate: 20, seed: 5, broadcast: { resume_depth: 64 } }) });
  await waitForSymbols(srv, ['EUR-USD']);
  const first = await connect(srv);
  const { epoch } = await first.subscribe(['EUR-USD']);
  first.close();
  for (let attempt = 0; ; attempt++) {
    assert.ok(attempt < 20, 'EUR-USD never stayed put for 150 ms');
    const now = await seqNow(srv, 'EUR-USD');
    const d = await connect(srv);
    const dlog = record(d);
    const r = await d.request({ op: 'subscribe', symbols: ['EUR-USD'], resume: { 'EUR-USD': now }, epoch });
    assert.equal(r.op, 'ack', JSON.stringify(r));
    await sleep(150);
    if ((await seqNow(srv, 'EUR-USD')) !== now) { d.terminate(); continue; } // a value came meanwhile: again
    assert.deepEqual(dlog.map((e) => `${e.op} ${e.u.seq}`), [], `resuming from the current seq ${now}`);
    await waitFor(() => dlog.length > 0, { timeoutMs: 10000, message: 'a live EUR-USD update' });
    assert.equal(dlog[0].op, 'update');
    assert.equal(dlog[0].u.seq, now + 1);
    d.close();
    break;
  }
});

test('server restart: seqs ahead of the new server -> reset; an old epoch -> reset even when the seqs fit the ring', T, async (t) => {
  // The first server runs 1.5 s: its seqs reach about 150 per symbol.
  const first = await startTickerd({ config: config(1024) });
  await waitForSymbols(first, SYMS);
  const long = await watchThenLeave(first, SYMS, 1500);
  assert.deepEqual(await first.stop(), { code: 0, signal: null });

  const second = await startTickerd({ config: config(1024) });
  await waitForSymbols(second, SYMS);
  // (a) At once: the new server's seqs are below the client's: seq ahead -> reset (no epoch sent: seqs alone).
  const a = await connect(second);
  const alog = record(a);
  const ack = await a.ok({ op: 'subscribe', symbols: SYMS, resume: long.last });
  assert.notEqual(ack.epoch, long.epoch, 'a restarted server has a new epoch');
  await sleep(300);
  for (const s of SYMS) {
    const mine = alog.filter((e) => e.u.symbol === s);
    assert.ok(mine.length > 0 && mine[0].op === 'snapshot' && mine[0].reset,
      `${s}: resuming from ${long.last[s]} on a restarted server gave ${mine[0]?.op} reset=${mine[0]?.reset}`);
    assert.ok(mine[0].u.seq < long.last[s], `${s}: the new server is already at ${mine[0].u.seq}`);
    assert.equal(mine.filter((e) => e.op === 'replay').length, 0);
  }
  a.close();

  // (b) Seqs of the first server that the second server's ring happens to hold too (it has passed them): only
  // the epoch tells they are another server's; with it the client gets a reset, not a foreign replay.
  const short = { 'BTC-USD': 10, 'ETH-USD': 10 };
  await waitFor(async () => (await seqNow(second, 'BTC-USD')) > 20 && (await seqNow(second, 'ETH-USD')) > 20,
    { message: 'the new server to pass seq 20' });
  const b = await connect(second);
  const blog = record(b);
  await b.ok({ op: 'subscribe', symbols: SYMS, resume: short, epoch: long.epoch });
  await sleep(300);
  for (const s of SYMS) {
    const mine = blog.filter((e) => e.u.symbol === s);
    assert.ok(mine.length > 0 && mine[0].op === 'snapshot' && mine[0].reset, `${s}: old epoch gave ${mine[0]?.op}`);
    assert.equal(mine.filter((e) => e.op === 'replay').length, 0);
  }
  b.close();
  // ...and with the new epoch the same seqs replay.
  const c = await connect(second);
  const clog = record(c);
  await c.ok({ op: 'subscribe', symbols: SYMS, resume: short, epoch: ack.epoch });
  await sleep(300);
  for (const s of SYMS) {
    const mine = clog.filter((e) => e.u.symbol === s);
    assert.equal(mine[0]?.op, 'replay', `${s}: current epoch`);
    assert.equal(mine[0].u.seq, 11);
  }
  c.close();
  t.diagnostic(`first server epoch ${long.epoch}, second ${ack.epoch}`);
  assert.deepEqual(await second.stop(), { code: 0, signal: null });
});

test('"*" with resume: the named symbols replay, the others get plain snapshots', T, async () => {
  const srv = await startTickerd({ config: config(1024) });
  await waitForSymbols(srv, SYMS);
  const { last, epoch } = await watchThenLeave(srv, ['BTC-USD'], 300);
  await sleep(200);
  const c = await connect(srv);
  const log = record(c);
  await c.ok({ op: 'subscribe', symbols: ['*'], resume: last, epoch });
  await sleep(500);
  const btc = log.filter((e) => e.u.symbol === 'BTC-USD');
  assert.equal(btc[0].op, 'replay');
  btc.forEach((e, i) => assert.equal(e.u.seq, last['BTC-USD'] + 1 + i));
  const eth = log.filter((e) => e.u.symbol === 'ETH-USD');
  assert.ok(eth[0].op === 'snapshot' && !eth[0].hasReset, `ETH-USD first came as ${eth[0].op}`);
  c.close();
});

test('bad resume requests are refused and change nothing', T, async () => {
  const srv = await startTickerd({ config: config(64) });
  await waitForSymbols(srv, SYMS);
  const c = await connect(srv);
  const cases = [
    [{ resume: [1] }, 'bad_request'],
    [{ resume: { 'BTC-USD': -1 } }, 'bad_request'],
    [{ resume: { 'BTC-USD': 1.5 } }, 'bad_request'],
    [{ resume: { 'BTC-USD': '12' } }, 'bad_request'],
    [{ resume: { 'ETH-USD': 3 } }, 'bad_request'], // not in symbols
    [{ resume: { 'BTC-USD': 3 }, epoch: 7 }, 'bad_request'],
    [{ resume: { 'FOO-BAR': 3 } }, 'unknown_symbol'],
  ];
  for (const [extra, code] of cases) {
    const r = await c.request({ op: 'subscribe', symbols: ['BTC-USD'], ...extra });
    assert.equal(r.op, 'error', `${JSON.stringify(extra)} -> ${JSON.stringify(r)}`);
    assert.equal(r.code, code, `${JSON.stringify(extra)} -> ${JSON.stringify(r)}`);
    if (code === 'unknown_symbol') assert.deepEqual(r.symbols, ['FOO-BAR']);
  }
  const data = (await c.collect(300)).filter((m) => ['snapshot', 'update', 'replay'].includes(m.op));
  assert.equal(data.length, 0, 'data after refused subscribes');
  c.close();
});
