// The client SDK (web/tickerd-client.js) in Node with the `ws` package's WebSocket, against the real tickerd:
// subscribe -> ack -> snapshot/update events, request timeouts, server error replies (event + rejected
// promise), automatic reconnect with re-subscribe after tickerd restarts on the same port, and the seq-gap
// (conflation) counters.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket, { WebSocketServer } from 'ws';
import { connect, TickerdClient, TickerdError } from '../../web/tickerd-client.js';
import {
  startTickerd, stopAll, metrics, waitFor, waitForSymbols, simConfig, sleep, TICKERD_BIN,
} from './lib/harness.mjs';

const T = { timeout: 60000 };
const clients = new Set();
const servers = new Set();
after(async () => {
  for (const c of clients) c.close();
  for (const s of servers) s.close();
  await stopAll();
});

/** An SDK client that records what it sees; closed in after(). */
function sdk(url, options = {}) {
  const c = connect(url, { WebSocket, pingInterval: 0, ...options });
  clients.add(c);
  const seen = { statuses: [], updates: [], snapshots: [], errors: [], rejected: [] };
  c.on('status', (d) => seen.statuses.push(d.status));
  c.on('update', (u) => seen.updates.push(u));
  c.on('snapshot', (u) => seen.snapshots.push(u));
  c.on('error', (d) => seen.errors.push(d));
  c.on('rejected', (d) => seen.rejected.push(d));
  return { c, seen };
}

const SUBS = (m) => m.sum('tickerd_subscriptions');

test('connect, subscribe: the ack resolves, then one snapshot per symbol and updates with growing seq', T, async () => {
  const srv = await startTickerd({ config: simConfig({ rate: 400 }) });
  const { c, seen } = sdk(srv.wsUrl);
  assert.equal(c.status, 'closed', 'not started before the first microtask');
  await c.ready({ timeout: 5000 });
  assert.deepEqual(seen.statuses, ['connecting', 'live']);
  assert.equal(c.status, 'live');

  await waitForSymbols(srv, ['BTC-USD', 'ETH-USD']); // both have a value: each gets a snapshot
  const r = await c.subscribe(['BTC-USD', 'ETH-USD']);
  assert.deepEqual(r, { symbols: ['BTC-USD', 'ETH-USD'], rejected: [] });
  await waitFor(() => ['BTC-USD', 'ETH-USD'].every((s) => seen.updates.filter((u) => u.symbol === s).length >= 3),
    { timeoutMs: 5000, message: 'three updates per symbol' });
  assert.deepEqual(seen.snapshots.map((u) => u.symbol).sort(), ['BTC-USD', 'ETH-USD']);
  for (const sym of ['BTC-USD', 'ETH-USD']) {
    const snap = seen.snapshots.find((u) => u.symbol === sym);
    const ups = seen.updates.filter((u) => u.symbol === sym);
    assert.ok(ups[0].seq > snap.seq, `${sym}: first update seq ${ups[0].seq} after snapshot seq ${snap.seq}`);
    for (let i = 1; i < ups.length; i++) assert.ok(ups[i].seq > ups[i - 1].seq, `${sym}: seq grows`);
    assert.equal(c.lastSeq(sym), c.latest.get(sym).seq);
    assert.ok(typeof c.latest.get(sym).last === 'number');
  }
  assert.ok(seen.updates.every((u) => u.symbol === 'BTC-USD' || u.symbol === 'ETH-USD'), 'only subscribed symbols');
  assert.deepEqual([...c.subscriptions].sort(), ['BTC-USD', 'ETH-USD']);
  assert.equal((await metrics(srv)).sum('tickerd_subscriptions'), 2);

  // ping: a round trip in ms, and the server clock
  const rtt = await c.ping();
  assert.ok(rtt >= 0 && rtt < 1000, `rtt ${rtt}`);
  assert.ok(Math.abs(c.clockOffset) < 5000, `clock offset ${c.clockOffset}`);

  // unsubscribe: acked, no more values for it
  const ack = await c.unsubscribe(['ETH-USD']);
  assert.equal(ack.op, 'ack');
  assert.equal(ack.req, 'unsubscribe');
  const n = seen.updates.length;
  await sleep(500);
  assert.ok(seen.updates.slice(n).every((u) => u.symbol === 'BTC-USD'), 'no ETH-USD after its unsubscribe');
  await waitFor(async () => SUBS(await metrics(srv)) === 1, { message: 'one subscription' });
  assert.deepEqual(seen.errors, []);

  c.close();
  assert.equal(c.status, 'closed');
  assert.equal(seen.statuses.at(-1), 'closed');
  await waitFor(async () => (await metrics(srv)).sum('tickerd_clients_connected') === 0,
    { message: 'the socket closed' });
});

test('a request the server never answers rejects with a timeout error', T, async () => {
  // A WebSocket server that accepts and reads, and never replies.
  const mute = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  servers.add(mute);
  await new Promise((r) => mute.once('listening', r));
  const got = [];
  mute.on('connection', (s) => s.on('message', (d) => got.push(JSON.parse(d.toString()))));
  const { c } = sdk(`ws://127.0.0.1:${mute.address().port}/ws`, { timeout: 300 });
  await c.ready({ timeout: 5000 });

  const t0 = Date.now();
  const err = await c.subscribe(['BTC-USD']).then(() => null, (e) => e);
  const took = Date.now() - t0;
  assert.ok(err instanceof TickerdError, `rejects with a TickerdError, got ${err}`);
  assert.equal(err.code, 'timeout');
  assert.match(err.message, /subscribe: no reply from the server within 300 ms/);
  assert.ok(took >= 280 && took < 2000, `rejected after ${took} ms`);
  // per-call timeout
  const e2 = await c.ping({ timeout: 100 }).then(() => null, (e) => e);
  assert.equal(e2?.code, 'timeout');
  assert.equal(got.length, 2);
  assert.deepEqual(got[0], { op: 'subscribe', symbols: ['BTC-USD'], id: got[0].id });
  assert.equal(got[1].op, 'ping');
  // the connection itself is still up (only a timed-out *ping* from the keepalive would drop it)
  assert.equal(c.status, 'live');
  c.close();

  // The subscribe sent on connect (here: for symbols wanted before the connection was up) gets no reply:
  // an error event, and the symbols are retried (waiting) instead of silently never subscribed.
  got.length = 0;
  const { c: c2, seen: seen2 } = sdk(`ws://127.0.0.1:${mute.address().port}/ws`, { timeout: 200, retryUnknown: 300 });
  await c2.subscribe(['ETH-USD']);
  await waitFor(() => got.filter((m) => m.op === 'subscribe').length >= 3, { message: 'the subscribe re-sent' });
  assert.deepEqual([...c2.waiting], ['ETH-USD']);
  assert.deepEqual(seen2.errors.map((e) => `${e.source}:${e.code}`), ['transport:timeout']);
  c2.close();
});

test('an unknown symbol: error event with the server code, and the promise rejects with it', T, async () => {
  const srv = await startTickerd({ config: simConfig({ rate: 200 }) });
  const { c, seen } = sdk(srv.wsUrl);
  await c.ready({ timeout: 5000 });

  // atomic (default), like the server: nothing is subscribed
  const err = await c.subscribe(['BTC-USD', 'FOO-BAR']).then(() => null, (e) => e);
  assert.ok(err instanceof TickerdError);
  assert.equal(err.code, 'unknown_symbol');
  assert.deepEqual(err.symbols, ['FOO-BAR']);
  assert.match(err.message, /FOO-BAR/);
  assert.equal(seen.errors.length, 1);
  assert.equal(seen.errors[0].source, 'server');
  assert.equal(seen.errors[0].code, 'unknown_symbol');
  assert.equal(seen.errors[0].req, 'subscribe');
  assert.deepEqual(seen.errors[0].symbols, ['FOO-BAR']);
  assert.deepEqual([...c.subscriptions], [], 'a failed subscribe leaves nothing to re-subscribe');
  assert.equal(SUBS(await metrics(srv)), 0);

  // {partial: true}: the known ones are subscribed, the unknown ones reported
  const r = await c.subscribe(['BTC-USD', 'FOO-BAR'], { partial: true });
  assert.deepEqual(r, { symbols: ['BTC-USD'], rejected: ['FOO-BAR'] });
  assert.deepEqual(seen.rejected, [{ symbols: ['FOO-BAR'], code: 'unknown_symbol', waiting: false }]);
  assert.deepEqual([...c.subscriptions], ['BTC-USD']);
  assert.equal(SUBS(await metrics(srv)), 1);

  // a request the server refuses for another reason: its code comes through as well
  const e3 = await c.request('subscribe', { symbols: 'BTC-USD' }).then(() => null, (e) => e);
  assert.equal(e3?.code, 'bad_request');
  assert.equal(seen.errors.at(-1).code, 'bad_request');

  // not connected: a clear error, no hang
  c.close();
  const e4 = await c.ping().then(() => null, (e) => e);
  assert.equal(e4?.code, 'not_connected');
});

test('tickerd restarts: status reconnecting, then live again, and updates resume without a new subscribe', T,
  async () => {
    let srv = await startTickerd({ config: simConfig({ rate: 400 }) });
    const port = srv.port;
    const { c, seen } = sdk(srv.wsUrl, { baseDelay: 100, maxDelay: 1000 });
    await c.ready({ timeout: 5000 });
    await c.subscribe(['BTC-USD', 'SOL-USD']);
    await waitFor(() => seen.updates.length >= 5, { message: 'updates before the restart' });
    const closes = [];
    c.on('close', (d) => closes.push(d.code));
    const subscribe = c.subscribe.bind(c);
    let subscribeCalls = 0;
    c.subscribe = (...a) => { subscribeCalls++; return subscribe(...a); };

    await srv.stop('SIGTERM');
    await waitFor(() => c.status === 'reconnecting', { timeoutMs: 3000, message: 'status reconnecting' });
    assert.ok(seen.statuses.includes('reconnecting'));
    assert.ok(closes.includes(1001), `close codes ${closes}`);
    const statusesBefore = seen.statuses.length;
    await sleep(300); // a few failed attempts while nothing listens
    assert.notEqual(c.status, 'live');

    srv = await startTickerd({ config: simConfig({ rate: 400 }), args: ['--port', String(port)] });
    const mark = seen.updates.length;
    await waitFor(() => c.status === 'live', { timeoutMs: 10000, message: 'status live again' });
    await waitFor(() => ['BTC-USD', 'SOL-USD'].every((s) => seen.updates.slice(mark).some((u) => u.symbol === s)),
      { timeoutMs: 5000, message: 'updates for both symbols after the restart' });
    assert.equal(subscribeCalls, 0, 'the caller did not subscribe again');
    assert.deepEqual(seen.statuses.slice(statusesBefore).filter((s) => s === 'live'), ['live']);
    assert.equal(SUBS(await metrics(srv)), 2);
    assert.ok(c.stats().reconnects >= 1);
    assert.equal(seen.errors.filter((e) => e.source === 'server').length, 0);
    c.close();
  });

test('a symbol unknown at a re-subscribe is kept and retried until the server knows it', T, async () => {
  const srv = await startTickerd({ config: simConfig({ rate: 200 }) });
  const { c, seen } = sdk(srv.wsUrl, { retryUnknown: 300 });
  // Subscribed before the connection is up: sent by the (re-)subscribe on connect, which keeps unknown ones.
  const q = await c.subscribe(['BTC-USD', 'ABC-USD']);
  assert.equal(q.queued, true);
  await waitFor(() => seen.rejected.length === 1, { message: 'the rejected event' });
  assert.deepEqual(seen.rejected[0], { symbols: ['ABC-USD'], code: 'unknown_symbol', waiting: true });
  assert.deepEqual([...c.waiting], ['ABC-USD']);
  assert.deepEqual([...c.subscriptions].sort(), ['ABC-USD', 'BTC-USD'], 'still wanted');
  await waitFor(() => seen.updates.some((u) => u.symbol === 'BTC-USD'), { message: 'BTC-USD flows meanwhile' });
  await sleep(1000); // a few quiet retries
  assert.equal(seen.errors.length, 1, `one error event, not one per retry: ${JSON.stringify(seen.errors)}`);
  assert.equal(seen.rejected.length, 1);

  // The symbol appears (a reloaded config adds it to the sim): the next retry subscribes it.
  srv.writeConfig(simConfig({ rate: 200, feed: { symbols: [
    { symbol: 'ABC-USD', price: 10, volatility: 0.3, spread_bps: 2, tick: 0.01 }] } }));
  srv.signal('SIGHUP');
  const abc = (u) => u.symbol === 'ABC-USD';
  await waitFor(() => seen.updates.some(abc) || seen.snapshots.some(abc),
    { timeoutMs: 5000, message: 'ABC-USD values' });
  assert.deepEqual([...c.waiting], []);
  assert.equal(SUBS(await metrics(srv)), 2);
  c.close();
});

// options.resume against a server that supports it (docs/protocol.md, "Resume"); skipped on one that does not.
test('resume: after a dropped connection the missed values are replayed, with no seq gap', T, async (t) => {
  const srv = await startTickerd({ config: simConfig({ rate: 2000 }) });
  const { c, seen } = sdk(srv.wsUrl, { resume: true, baseDelay: 50, maxDelay: 200 });
  await c.ready({ timeout: 5000 });
  await waitForSymbols(srv, ['BTC-USD', 'ETH-USD']);
  await c.subscribe(['BTC-USD', 'ETH-USD']);
  if (!c.epoch) { t.skip('this tickerd has no resume support (no epoch in the subscribe ack)'); c.close(); return; }
  await waitFor(() => seen.updates.length >= 20, { message: 'updates' });
  const frames = [];
  c.on('data', (d) => frames.push(d));
  const before = { 'BTC-USD': c.lastSeq('BTC-USD'), 'ETH-USD': c.lastSeq('ETH-USD') };
  const n0 = seen.updates.length;
  const s0 = seen.statuses.length;
  c._ws.terminate(); // the TCP connection dies (1006); values keep being published meanwhile
  const backAgain = (from) => () => seen.statuses[from] === 'reconnecting' && seen.statuses.at(-1) === 'live';
  await waitFor(backAgain(s0), { timeoutMs: 5000, message: 'reconnecting, then live again' });
  await waitFor(() => c.counts.replayed > 0 && seen.updates.length > n0 + 20, { message: 'replayed values, then updates' });
  assert.ok(frames.some((f) => f.kind === 'replay'), 'replay frames');
  assert.equal(c.counts.resets, 0, 'nothing reset');
  for (const sym of ['BTC-USD', 'ETH-USD']) {
    const after = seen.updates.slice(n0).filter((u) => u.symbol === sym).map((u) => u.seq);
    assert.equal(after[0], before[sym] + 1, `${sym}: continues at ${before[sym] + 1}: ${after.slice(0, 5)}`);
    for (let i = 1; i < after.length; i++) assert.equal(after[i], after[i - 1] + 1, `${sym}: consecutive`);
  }
  assert.equal(c.skipped, 0);
  assert.equal(seen.snapshots.length, 2, 'no second snapshot');

  // Another server instance (restart on the same port): another epoch, so each symbol is reset, not replayed.
  const epoch = c.epoch;
  const port = srv.port;
  const s1 = seen.statuses.length;
  await srv.stop('SIGTERM');
  const srv2 = await startTickerd({ config: simConfig({ rate: 2000 }), args: ['--port', String(port)] });
  await waitFor(backAgain(s1), { timeoutMs: 10000, message: 'live on the new server' });
  await waitFor(() => c.counts.resets === 2, { timeoutMs: 5000, message: 'two reset snapshots' });
  assert.notEqual(c.epoch, epoch);
  assert.equal(c.skipped, 0, 'a reset is not counted as skipped');
  assert.equal(SUBS(await metrics(srv2)), 2);
  c.close();
});

test('seq gaps from server-side conflation are counted per symbol', T, async () => {
  // As in slow_client.test.mjs: without coalescing, several MB/s per `*` subscriber, more than the loopback
  // socket buffers absorb in a 2 s stall.
  const srv = await startTickerd({
    config: simConfig({ rate: 50000, feed: { include_defaults: false, generated_symbols: 100 },
      normalizer: { flush_interval_ms: 0 } }),
  });
  const { c, seen } = sdk(srv.wsUrl);
  await c.ready({ timeout: 5000 });
  await c.subscribe(['*']);
  await waitFor(() => seen.updates.length > 200, { message: 'updates flowing' });
  const before = c.skipped; // (a reader this slow may already miss some)
  // stop reading for a while: the server keeps only the latest value per symbol for this client
  c._ws._socket.pause();
  await sleep(2000);
  c._ws._socket.resume();
  await waitFor(() => c.skipped > before + 1000, { timeoutMs: 5000, message: 'seq gaps after the pause' });
  await sleep(200);
  // the total is the sum of the per-symbol counts, and matches the gaps in what was delivered
  let sum = 0;
  for (const sym of c.latest.keys()) sum += c.skippedFor(sym);
  assert.equal(sum, c.skipped);
  let gaps = 0;
  const last = new Map();
  for (const u of [...seen.snapshots, ...seen.updates].sort((a, b) => a.seq - b.seq)) {
    const p = last.get(u.symbol);
    if (p !== undefined && u.seq > p + 1) gaps += u.seq - p - 1;
    last.set(u.symbol, u.seq);
  }
  assert.equal(c.skipped, gaps, 'counted = the gaps in what was delivered');
  assert.equal(c.stats().skipped, c.skipped);
  c.close();
});

test('options: no WebSocket implementation is a clear error; a closed client does not reconnect', T, async () => {
  if (typeof globalThis.WebSocket !== 'function') {
    assert.throws(() => new TickerdClient('ws://127.0.0.1:1/ws'), /no WebSocket implementation/);
  }
  const srv = await startTickerd({ config: simConfig({ rate: 100 }) });
  const { c, seen } = sdk(srv.wsUrl);
  await c.ready({ timeout: 5000 });
  c.close();
  await sleep(300);
  assert.equal(c.status, 'closed');
  assert.deepEqual(seen.statuses, ['connecting', 'live', 'closed']);
  assert.equal((await metrics(srv)).sum('tickerd_clients_connected'), 0);
  const e = await c.ready().then(() => null, (x) => x);
  assert.equal(e?.code, 'closed');
});

// The examples of docs/client.md, so they keep working.
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Run an example client until its stdout matches every regexp in `want` (and stderr those in wantErr),
 * then SIGINT it. Resolves {code, signal, out, err}. */
async function runExample(cmd, args, want, wantErr = []) {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { err += d; });
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  try {
    await waitFor(() => want.every((re) => re.test(out)) && wantErr.every((re) => re.test(err)),
      { timeoutMs: 8000, message: `${want} ${wantErr} in the output` });
  } catch (e) {
    proc.kill('SIGKILL');
    throw new Error(`${e.message}\nstdout:\n${out.slice(-1500)}\nstderr:\n${err.slice(-1500)}`);
  }
  proc.kill('SIGINT');
  const r = await Promise.race([exited, sleep(5000).then(() => null)]);
  if (!r) proc.kill('SIGKILL');
  return { ...(r ?? { code: null }), out, err };
}

test('examples/node-client.mjs prints snapshots and updates, and exits 0 on SIGINT', T, async () => {
  const srv = await startTickerd({ config: simConfig({ rate: 400 }) });
  const r = await runExample(process.execPath,
    [path.join(ROOT, 'examples/node-client.mjs'), srv.wsUrl, 'BTC-USD', 'ETH-USD', 'FOO-BAR'],
    [/(snapshot|update  ) BTC-USD/, /(snapshot|update  ) ETH-USD/, /update {3}BTC-USD .* seq \d+/,
      /update {3}ETH-USD/]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /unknown symbol\(s\), dropped: FOO-BAR/);
  assert.match(r.err, /# \d+ snapshot and \d+ update values/);
  assert.doesNotMatch(r.out, /FOO-BAR/);
});

const C_CLIENT = process.env.TICKERD_EXAMPLE_CLIENT
  || path.join(path.dirname(path.resolve(TICKERD_BIN)), 'examples', 'tickerd-example-client');
test('examples/c-client.c (tickerd-example-client) prints symbol, last and seq per value', {
  ...T, skip: fs.existsSync(C_CLIENT) ? false : `${C_CLIENT} not built`,
}, async () => {
  const srv = await startTickerd({ config: simConfig({ rate: 400 }) });
  const r = await runExample(C_CLIENT, [srv.wsUrl, 'BTC-USD', 'EUR-USD'],
    // (a server just started may have no value yet at the subscribe: then the first one is an update)
    [/^(snapshot|update  ) BTC-USD last=[\d.]+ seq=\d+$/m, /^(snapshot|update  ) EUR-USD/m,
      /^update {3}BTC-USD last=[\d.]+ seq=\d+\n(.*\n)*update {3}BTC-USD/m, /^update {3}EUR-USD/m]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /ack: subscribe/);
  const seqs = [...r.out.matchAll(/^(?:snapshot|update) +BTC-USD last=\S+ seq=(\d+)/gm)].map((m) => Number(m[1]));
  for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i] > seqs[i - 1], `seq grows: ${seqs}`);
  // an unknown symbol: the server's error on stderr, nothing subscribed (atomic)
  const bad = await runExample(C_CLIENT, [srv.wsUrl, 'FOO-BAR', 'BTC-USD'], [],
    [/error: unknown_symbol: unknown symbol\(s\): FOO-BAR/]);
  assert.equal(bad.code, 0);
  assert.equal(bad.out, '');
});
