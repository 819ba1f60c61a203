// Cluster roles on Redis (docs/cluster.md): real redis-server processes on ephemeral loopback ports, a real
// tickerd ingest and two edges. Identical (symbol, seq, last) on both edges; a client whose edge dies resumes
// on the other with no silent gap; Redis killed and restarted empty → stale, then an explicit reset; Redis
// dropping the edge's subscriber connection (CLIENT KILL TYPE pubsub) → re-sync from the stream; two ingests
// on the same feed → one seq sequence, no duplicates; a frozen Redis (DEBUG SLEEP 3) → stale, then recovery
// without a gap; a slow edge dropped by a tiny client-output-buffer-limit pubsub → re-sync from the stream;
// two Redis shards → symbols spread over both, identical sequences on two edges, the combined epoch resumes
// across edges.
import { test, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  startTickerd, stopAll, connect, closeAllClients, httpGet, metrics, waitFor, simConfig, updatesOf, sleep,
} from './lib/harness.mjs';

/** An edge knows a symbol (from the Redis set) before any client follows it; values come with a room. */
async function waitForSymbols(target, names, timeoutMs = 5000) {
  return waitFor(async () => {
    const r = await httpGet(target, '/api/symbols');
    const have = new Set((r.json().symbols || []).map((x) => x.symbol));
    return names.every((n) => have.has(n));
  }, { timeoutMs, message: `symbols ${names.join(',')} known` });
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const redisProcs = new Set();

async function freePort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

function cli(port, ...args) {
  return execFileSync('redis-cli', ['-p', String(port), ...args],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
}

/** redis-cli without blocking the event loop (DEBUG SLEEP holds it for seconds; clients keep recording). */
function cliAsync(port, ...args) {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' },
      (err, out) => (err ? reject(err) : resolve(out.trim())));
  });
}

async function startRedis(port, { logfile } = {}) {
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'no', '--enable-debug-command', 'local', ...(logfile ? ['--logfile', logfile] : [])],
    { stdio: 'ignore' });
  redisProcs.add(proc);
  proc.once('exit', () => redisProcs.delete(proc));
  await waitFor(() => { try { return cli(port, 'PING') === 'PONG'; } catch { return false; } },
    { timeoutMs: 5000, message: `redis-server on ${port}` });
  return {
    port,
    addr: `127.0.0.1:${port}`,
    kill: async () => {
      const gone = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGKILL');
      await gone;
    },
  };
}

afterEach(async () => {
  closeAllClients();
  await stopAll();
  await Promise.all([...redisProcs].map((p) => new Promise((r) => { p.once('exit', r); p.kill('SIGKILL'); })));
});
after(async () => { await stopAll(); });

const quiet = { history: { enabled: false } };
const ingestConfig = (redis, rate = 400) => simConfig({ rate, ...quiet, cluster: { role: 'ingest', redis } });
const edgeConfig = (redis, extra = {}) => ({ ...quiet, cluster: { role: 'edge', redis }, ...extra });

/**
 * Symbol s as two edges' clients recorded it: each contiguous, and every seq both saw (at least 5) carrying
 * the same value. Returns the first recording's values of s.
 */
function sameOnBoth(sa, sb, s) {
  const va = checkContiguous(sa, s);
  const bySeq = new Map(checkContiguous(sb, s).map((u) => [u.seq, u]));
  const common = va.filter((u) => bySeq.has(u.seq));
  assert.ok(common.length >= 5, `${s}: ${common.length} seqs seen on both edges`);
  for (const u of common) {
    const w = bySeq.get(u.seq);
    assert.deepEqual([u.last, u.bid, u.ask, u.ts, u.src], [w.last, w.bid, w.ask, w.ts, w.src],
      `${s} seq ${u.seq} differs between edges`);
  }
  return va;
}

/** A client on each of edges a and b subscribed to syms once both know them: their recordings and acks. */
async function subscribeOnBoth(a, b, syms) {
  await waitForSymbols(a, syms, 8000);
  await waitForSymbols(b, syms, 8000);
  const ca = await connect(a);
  const cb = await connect(b);
  const sa = record(ca);
  const sb = record(cb);
  return { sa, sb, acka: await ca.subscribe(syms, 1), ackb: await cb.subscribe(syms, 1) };
}

/**
 * Resume on edge `to` from `last` (symbol -> last seq seen) in `epoch`: the ack keeps the epoch and every
 * symbol continues with a replay of exactly the missed values. Returns the new client's recording.
 */
async function resumeOn(to, syms, last, epoch, waitMs) {
  const c = await connect(to);
  const seen = record(c);
  const ack = await c.request({ op: 'subscribe', symbols: syms, resume: last, epoch, id: 2 });
  assert.equal(ack.op, 'ack', JSON.stringify(ack));
  assert.equal(ack.epoch, epoch);
  await sleep(waitMs);
  for (const s of syms) {
    const vals = checkContiguous(seen, s);
    assert.ok(vals.length > 0, `${s}: nothing after the resume`);
    // Exactly the missed values (replayed from the stream), then live ones: no reset needed here.
    assert.equal(vals[0].seq, last[s] + 1, `${s}: resumed at ${vals[0].seq} after ${last[s]}`);
    assert.equal(vals[0].op, 'replay', `${s}: first frame after the resume is ${vals[0].op}`);
  }
  return seen;
}

/** Every update object a client receives, with the frame's op and reset flag. */
function record(c) {
  const seen = [];
  c.onMessage((m) => {
    const ups = m.op === 'replay' && Array.isArray(m.updates) ? m.updates : updatesOf(m);
    for (const u of ups) seen.push({ op: m.op, reset: m.reset === true, ...u });
  });
  return seen;
}

async function edgeUp(edge) {
  await waitFor(async () => {
    const h = (await httpGet(edge, '/healthz')).json();
    return h.cluster && h.cluster.shards.every((s) => s.state === 'up');
  }, { timeoutMs: 8000, message: 'edge connected to Redis' });
}

/** The values of symbol as a client saw them, seq → last, checking seqs only grow and never skip. */
function checkContiguous(seen, symbol) {
  const vals = seen.filter((u) => u.symbol === symbol);
  for (let i = 1; i < vals.length; i++) {
    assert.equal(vals[i].seq, vals[i - 1].seq + 1,
      `${symbol}: seq ${vals[i - 1].seq} then ${vals[i].seq} (${vals[i].op}) — a gap or a repeat`);
  }
  return vals;
}

/**
 * No silent gap for symbol: each value is the previous seq + 1, or the same seq re-sent in place with its stale
 * flag changed (a stale mark), or an explicit reset. Returns the values and how many stale marks it saw.
 */
function checkNoSilentGap(seen, symbol) {
  const vals = seen.filter((u) => u.symbol === symbol);
  let marks = 0;
  for (let i = 1; i < vals.length; i++) {
    const a = vals[i - 1], b = vals[i];
    if (b.reset) continue;
    if (b.seq === a.seq && (b.stale === true) !== (a.stale === true)) { marks += b.stale === true; continue; }
    assert.equal(b.seq, a.seq + 1, `${symbol}: seq ${a.seq} then ${b.seq} (${b.op}) — a silent gap or a repeat`);
  }
  return { vals, marks };
}

test('1 ingest + 2 edges: clients on both edges see identical (symbol, seq, last)', async () => {
  const r = await startRedis(await freePort());
  await startTickerd({ config: ingestConfig([r.addr]) });
  const a = await startTickerd({ config: edgeConfig([r.addr]) });
  const b = await startTickerd({ config: edgeConfig([r.addr], { history: { enabled: true } }) });
  await edgeUp(a);
  await edgeUp(b);
  const syms = ['BTC-USD', 'ETH-USD', 'EUR-USD'];
  const { sa, sb, acka, ackb } = await subscribeOnBoth(a, b, syms);
  assert.equal(acka.epoch, ackb.epoch, 'both edges carry the cluster epoch');
  assert.equal(acka.epoch, cli(r.port, 'GET', 'tickerd:epoch'));
  // history is the ingest's: an edge keeps none and says where it is
  const hist = await httpGet(b, '/api/history?symbol=BTC-USD&interval=1m&limit=5');
  assert.ok(hist.status >= 400, `edge /api/history answered ${hist.status}`);
  assert.match(hist.body, /kept by the ingest \(cluster\.role edge\)/);
  await sleep(2500);
  for (const s of syms) {
    const va = sameOnBoth(sa, sb, s);
    // The stream holds the same values under the same seqs.
    const top = va[va.length - 1];
    const entry = cli(r.port, 'XRANGE', `tickerd:stream:${s}`, `${top.seq}-0`, `${top.seq}-0`);
    assert.ok(entry.includes(`"seq":${top.seq},`) && entry.includes(`"last":${top.last},`), entry);
  }
  const m = await metrics(a);
  assert.ok(m.get('tickerd_cluster_received_total{shard="' + r.addr + '"}') > 0);
});

test('an edge dies: its client resumes on the other edge with no silent gap', async () => {
  const r = await startRedis(await freePort());
  await startTickerd({ config: ingestConfig([r.addr]) });
  const a = await startTickerd({ config: edgeConfig([r.addr]) });
  const b = await startTickerd({ config: edgeConfig([r.addr]) });
  await edgeUp(a);
  await edgeUp(b);
  // SOL-USD is held by no client of edge b: its room opens with the resume (a load from the stream).
  const syms = ['BTC-USD', 'SOL-USD'];
  await waitForSymbols(a, syms, 8000);
  const ca = await connect(a);
  const sa = record(ca);
  const ack = await ca.subscribe(syms, 1);
  await waitFor(() => syms.every((s) => sa.some((u) => u.symbol === s)), { timeoutMs: 5000 });
  await sleep(1000);
  const last = Object.fromEntries(syms.map((s) => [s, checkContiguous(sa, s).at(-1).seq]));
  a.proc.kill('SIGKILL');
  await sleep(700); // values go on meanwhile
  await waitForSymbols(b, syms, 8000);
  await resumeOn(b, syms, last, ack.epoch, 1500);
});

test('Redis killed and restarted empty: values marked stale, then an explicit reset in the new epoch', async () => {
  const port = await freePort();
  let r = await startRedis(port);
  const ingest = await startTickerd({ config: ingestConfig([r.addr]) });
  const e = await startTickerd({ config: edgeConfig([r.addr]) });
  await edgeUp(e);
  await waitForSymbols(e, ['BTC-USD'], 8000);
  const c = await connect(e);
  const seen = record(c);
  const ack = await c.subscribe(['BTC-USD'], 1);
  // far enough into the old sequence that the new one, counting from 1, is told apart
  await waitFor(() => seen.filter((u) => u.symbol === 'BTC-USD').length >= 3 && seen.at(-1).seq >= 40, { timeoutMs: 15000 });
  const before = seen.at(-1).seq;

  await r.kill();
  await waitFor(() => seen.some((u) => u.stale === true), { timeoutMs: 3000, message: 'a stale mark' });
  const stale = seen.find((u) => u.stale === true);
  assert.ok(stale.seq >= before, 'the stale mark re-sends the last value (its seq), not an invented one');
  const h = await httpGet(e, '/healthz');
  assert.equal(h.status, 503);
  assert.equal(h.json().cluster.shards[0].state, 'down');
  assert.equal((await httpGet(e, '/api/symbols')).json().symbols.find((x) => x.symbol === 'BTC-USD').status, 'stale');

  r = await startRedis(port); // empty: seqs start over, a new epoch
  await waitFor(() => seen.some((u) => u.reset), { timeoutMs: 15000, message: 'a reset snapshot' });
  const reset = seen.find((u) => u.reset);
  assert.equal(reset.op, 'snapshot');
  // The reset's seq is of the new sequence: at most what the empty Redis has counted since it came back (how
  // far that got before the edge noticed depends on the machine's load, so not compared with `before`).
  const counted = Number(cli(port, 'GET', 'tickerd:seq:BTC-USD'));
  assert.ok(reset.seq <= counted, `the new epoch's seq ${reset.seq} is of the new count (${counted}; was ${before})`);
  const epoch = cli(port, 'GET', 'tickerd:epoch');
  assert.notEqual(epoch, ack.epoch);
  await edgeUp(e);
  const m = await metrics(e);
  assert.ok(m.get(`tickerd_cluster_epoch_changes_total{shard="${r.addr}"}`) >= 1);
  assert.ok(m.get('tickerd_cluster_resets_total') >= 1);
  // A client resuming with the old epoch gets a reset, never values of another sequence.
  const c2 = await connect(e);
  const s2 = record(c2);
  await c2.request({ op: 'subscribe', symbols: ['BTC-USD'], resume: { 'BTC-USD': before }, epoch: ack.epoch, id: 3 });
  await waitFor(() => s2.length > 0, { timeoutMs: 3000 });
  assert.equal(s2[0].reset, true);
  const mi = await metrics(ingest);
  assert.ok(mi.get(`tickerd_cluster_connects_total{shard="${r.addr}"}`) >= 2);
});

test('Redis drops the edge (CLIENT KILL TYPE pubsub): the edge re-syncs from the stream, no gap', async () => {
  const r = await startRedis(await freePort());
  await startTickerd({ config: ingestConfig([r.addr], 800) });
  const e = await startTickerd({ config: edgeConfig([r.addr]) });
  await edgeUp(e);
  const syms = ['BTC-USD', 'ETH-USD'];
  await waitForSymbols(e, syms, 8000);
  const c = await connect(e);
  const seen = record(c);
  await c.subscribe(syms, 1);
  await sleep(800);
  const m0 = await metrics(e);
  const killed = Number(cli(r.port, 'CLIENT', 'KILL', 'TYPE', 'pubsub'));
  assert.ok(killed >= 1, `killed ${killed}`);
  await sleep(2000);
  await edgeUp(e);
  for (const s of syms) checkContiguous(seen, s);
  const m1 = await metrics(e);
  const key = (n) => `${n}{shard="${r.addr}"}`;
  assert.ok(m1.get(key('tickerd_cluster_connects_total')) > m0.get(key('tickerd_cluster_connects_total')));
  assert.ok(m1.get(key('tickerd_cluster_errors_total')) > m0.get(key('tickerd_cluster_errors_total')));
});

test('two ingests on the same feed: one seq sequence per symbol, no duplicates', async () => {
  const r = await startRedis(await freePort());
  const feed = { type: 'replay', name: 'cb', venue: 'coinbase', file: path.join(ROOT, 'tests/fixtures/coinbase.ws.jsonl'), speed: 1 };
  const cfg = { ...quiet, feeds: [feed], cluster: { role: 'ingest', redis: [r.addr] } };
  const [i1, i2] = await Promise.all([startTickerd({ config: cfg }), startTickerd({ config: cfg })]);
  await sleep(5500); // the capture lasts about 4 s
  let total = 0;
  for (const s of ['BTC-USD', 'ETH-USD', 'SOL-USD']) {
    const raw = cli(r.port, '--raw', 'XRANGE', `tickerd:stream:${s}`, '-', '+');
    const vals = raw.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    assert.ok(vals.length > 0, `${s}: no value in Redis`);
    vals.forEach((u, i) => assert.equal(u.seq, i + 1, `${s}: seq ${u.seq} at position ${i + 1}`));
    const keys = vals.map((u) => `${u.ts}/${u.last}/${u.stale === true}`);
    assert.equal(new Set(keys).size, keys.length, `${s}: a value numbered twice: ${keys}`);
    for (let i = 1; i < vals.length; i++) assert.ok(vals[i].ts >= vals[i - 1].ts, `${s}: ts went back`);
    assert.equal(Number(cli(r.port, 'GET', `tickerd:seq:${s}`)), vals.length);
    total += vals.length;
  }
  const key = `tickerd_cluster_duplicates_total{shard="${r.addr}"}`;
  const dups = (await metrics(i1)).get(key) + (await metrics(i2)).get(key);
  assert.ok(dups > 0, 'the second ingest\'s copies were recognised');
  assert.ok(total > 5);
});

test('a frozen Redis (DEBUG SLEEP 3): edges mark stale, ingest and edges recover with no silent gap', async () => {
  const r = await startRedis(await freePort());
  const ingest = await startTickerd({ config: ingestConfig([r.addr]) });
  // stale_after_ms shorter than the freeze: the marks must come (they do once the edge's 1 s command timeout
  // drops the connection, well inside the 3 s).
  const e = await startTickerd({ config: edgeConfig([r.addr], { normalizer: { stale_after_ms: 1000 } }) });
  await edgeUp(e);
  const syms = ['BTC-USD', 'ETH-USD', 'EUR-USD'];
  await waitForSymbols(e, syms, 8000);
  const c = await connect(e);
  const seen = record(c);
  await c.subscribe(syms, 1);
  await waitFor(() => syms.every((s) => seen.some((u) => u.symbol === s)), { timeoutMs: 5000 });
  await sleep(500);
  const mi0 = await metrics(ingest);
  const me0 = await metrics(e);
  const key = (n) => `${n}{shard="${r.addr}"}`;
  const t0 = Date.now();
  const frozen = cliAsync(r.port, 'DEBUG', 'SLEEP', '3'); // needs --enable-debug-command local (Redis 7)
  // While Redis is frozen: the edge's shard goes down and its followed symbols are marked stale.
  await waitFor(async () => {
    const h = await httpGet(e, '/healthz');
    return h.status === 503 && h.json().cluster.shards[0].state === 'down';
  }, { timeoutMs: 3000, message: 'edge sees the shard down during the freeze' });
  await waitFor(() => syms.every((s) => seen.some((u) => u.symbol === s && u.stale === true)),
    { timeoutMs: 4000, message: 'stale marks for every followed symbol' });
  assert.equal(await frozen, 'OK');
  assert.ok(Date.now() - t0 >= 2900, 'the freeze lasted');
  const topAfterFreeze = Object.fromEntries(syms.map((s) => [s, seen.filter((u) => u.symbol === s).at(-1).seq]));
  // Recovery: the edge reconnects, re-syncs from the stream; values flow again and are fresh.
  await edgeUp(e);
  await waitFor(() => syms.every((s) => {
    const v = seen.filter((u) => u.symbol === s);
    return v.at(-1).seq >= topAfterFreeze[s] + 5 && v.at(-1).stale !== true;
  }), { timeoutMs: 8000, message: 'fresh values after the freeze' });
  for (const s of syms) {
    const { vals, marks } = checkNoSilentGap(seen, s);
    assert.ok(marks >= 1, `${s}: no stale mark`);
    // Everything the edge handed over is in the stream under the same seq: nothing invented, nothing skipped.
    const top = vals.at(-1);
    assert.ok(top.seq <= Number(cli(r.port, 'GET', `tickerd:seq:${s}`)));
  }
  const mi1 = await metrics(ingest);
  const me1 = await metrics(e);
  assert.ok(mi1.get(key('tickerd_cluster_errors_total')) > mi0.get(key('tickerd_cluster_errors_total')),
    'the ingest saw the freeze (a timed-out write)');
  assert.ok(mi1.get(key('tickerd_cluster_published_total')) > mi0.get(key('tickerd_cluster_published_total')));
  assert.equal(mi1.get(key('tickerd_cluster_connected')), 1);
  assert.ok(me1.get(key('tickerd_cluster_connects_total')) > me0.get(key('tickerd_cluster_connects_total')));
  assert.ok(me1.get('tickerd_cluster_stale_marks_total') >= syms.length);
  assert.equal(me1.get('tickerd_cluster_stale_symbols'), 0, 'no symbol left stale');
  // The ingest's sequence in Redis has no hole either (the unconfirmed writes were not numbered twice).
  for (const s of syms) {
    const raw = cli(r.port, '--raw', 'XRANGE', `tickerd:stream:${s}`, '-', '+');
    const seqs = raw.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l).seq);
    for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], seqs[i - 1] + 1, `${s}: stream ${seqs[i - 1]} → ${seqs[i]}`);
  }
});

test('a slow edge dropped by a tiny client-output-buffer-limit pubsub re-syncs from the stream, no gap', async (t) => {
  const logfile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tickerd-redis-')), 'redis.log');
  const r = await startRedis(await freePort(), { logfile });
  // Deep streams: the stream must still hold what the edge missed while it was stopped. How long that is
  // depends on how much the kernel's socket buffers absorb first (loopback receive windows autotune up to
  // tcp_rmem's max): 4000 values/s over 20 symbols is 200 per symbol and second, 4096 of them cover 20 s.
  // (max_symbols small, else app.c shortens the rings to fit its memory budget).
  const deep = { broadcast: { resume_depth: 4096 }, normalizer: { max_symbols: 100 } };
  await startTickerd({ config: { ...ingestConfig([r.addr], 4000), ...deep } });
  const e = await startTickerd({ config: edgeConfig([r.addr], deep) });
  await edgeUp(e);
  await waitForSymbols(e, ['BTC-USD', 'USD-CAD'], 8000);
  const c = await connect(e);
  const seen = record(c);
  const ack = await c.subscribe(['*'], 1);
  assert.equal(ack.op, 'ack');
  await sleep(800);
  const m0 = await metrics(e);
  const key = (n) => `${n}{shard="${r.addr}"}`;
  // The tiny limit is set once the edge has loaded its 20 symbols: while a reader thread reads a stream (a room
  // opening) it does not read its subscriber socket, so a limit this small can drop an edge that is busy, not
  // slow (docs/deployment.md sizes it).
  assert.equal(cli(r.port, 'CONFIG', 'SET', 'client-output-buffer-limit', 'pubsub 4kb 2kb 1'), 'OK');
  const logFrom = fs.statSync(logfile).size;
  // The edge stops reading (a slow consumer): the kernel's socket buffers fill, then Redis' output buffer for
  // its subscriber connection passes 4 kB and Redis closes it.
  const atStop = {};
  for (const u of seen) atStop[u.symbol] = u.seq;
  e.proc.kill('SIGSTOP');
  const stopped = Date.now();
  try {
    await waitFor(() => /output buffer limits/.test(fs.readFileSync(logfile, 'utf8').slice(logFrom)),
      { timeoutMs: 15000, intervalMs: 100, message: 'Redis closed the slow subscriber (its log)' });
  } finally {
    e.proc.kill('SIGCONT');
  }
  t.diagnostic(`Redis dropped the stopped edge after ${Date.now() - stopped} ms`);
  await waitFor(async () => (await metrics(e)).get(key('tickerd_cluster_connects_total')) >
    m0.get(key('tickerd_cluster_connects_total')), { timeoutMs: 5000, message: 'the edge reconnected' });
  await edgeUp(e);
  const syms = Object.keys(atStop);
  assert.ok(syms.length >= 20, `${syms.length} symbols followed`);
  const tops = Object.fromEntries(syms.map((s) => [s, seen.filter((u) => u.symbol === s).at(-1).seq]));
  await waitFor(() => syms.every((s) => seen.filter((u) => u.symbol === s).at(-1).seq >= tops[s] + 3),
    { timeoutMs: 8000, message: 'values flow after the re-sync' });
  const m1 = await metrics(e);
  assert.ok(m1.get(key('tickerd_cluster_connects_total')) > m0.get(key('tickerd_cluster_connects_total')));
  assert.ok(m1.get(key('tickerd_cluster_filled_total')) > m0.get(key('tickerd_cluster_filled_total')),
    'the missed values came from the stream');
  assert.equal(m1.get('tickerd_cluster_gaps_total'), 0, 'the edge got every seq');
  // The recording client was itself frozen with the edge and then flooded with seconds of values at once: a
  // client that far behind is conflated by design (broadcast.backlog_ms; seq jumps, counted), so it is checked
  // for order only. (Woken after more than stale_after_ms + 1 s, the edge may first mark its symbols stale:
  // the same seq again, with the flag changed.)
  let jumps = 0;
  for (const s of syms) {
    const v = seen.filter((u) => u.symbol === s);
    for (let i = 1; i < v.length; i++) {
      if (v[i].seq === v[i - 1].seq && (v[i].stale === true) !== (v[i - 1].stale === true)) continue;
      assert.ok(v[i].seq > v[i - 1].seq, `${s}: seq ${v[i - 1].seq} then ${v[i].seq} ${JSON.stringify(v.slice(i - 1, i + 1))}`);
      jumps += v[i].seq > v[i - 1].seq + 1;
    }
  }
  t.diagnostic(`recording client: ${jumps} conflation jumps; conflated ${m1.get('tickerd_updates_conflated_total')}`);
  // The edge's own sequence has no hole: a client resuming from where the stop began gets every value since,
  // replayed from the edge's ring (which only the re-sync from the stream can have filled).
  const probe = syms.slice(0, 3);
  const c2 = await connect(e);
  const s2 = record(c2);
  const ack2 = await c2.request({ op: 'subscribe', symbols: probe, resume: Object.fromEntries(probe.map((s) => [s, atStop[s]])),
    epoch: ack.epoch, id: 2 });
  assert.equal(ack2.op, 'ack', JSON.stringify(ack2));
  await waitFor(() => probe.every((s) => s2.some((u) => u.symbol === s && u.op === 'update')),
    { timeoutMs: 8000, message: 'the resumed client is live' });
  for (const s of probe) {
    const v = checkContiguous(s2, s);
    assert.equal(v[0].seq, atStop[s] + 1, `${s}: replay starts at ${v[0].seq}, stopped at ${atStop[s]}: ${JSON.stringify(v.slice(0, 2).map((u) => [u.op, u.reset, u.seq]))}`);
    assert.equal(v[0].op, 'replay');
    assert.ok(v.length > 50, `${s}: ${v.length} values replayed and live`);
  }
});

/** The cluster epoch of several shards, as docs/cluster.md defines it: FNV-1a-64 over the shards' epochs. */
function combinedEpoch(epochs) {
  let h = 0xcbf29ce484222325n;
  for (const ch of Buffer.from(epochs.join(''))) {
    h ^= BigInt(ch);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h.toString(16).padStart(16, '0');
}

test('two Redis shards: symbols spread over both, identical sequences on two edges, resume across edges', async () => {
  const r1 = await startRedis(await freePort());
  const r2 = await startRedis(await freePort());
  const shards = [r1.addr, r2.addr];
  await startTickerd({ config: ingestConfig(shards) });
  const a = await startTickerd({ config: edgeConfig(shards) });
  const b = await startTickerd({ config: edgeConfig(shards) });
  await edgeUp(a);
  await edgeUp(b);
  await waitFor(() => Number(cli(r1.port, 'SCARD', 'tickerd:symbols')) + Number(cli(r2.port, 'SCARD', 'tickerd:symbols')) === 20,
    { timeoutMs: 8000, message: 'all 20 symbols written' });
  const on1 = cli(r1.port, '--raw', 'SMEMBERS', 'tickerd:symbols').split('\n').filter(Boolean);
  const on2 = cli(r2.port, '--raw', 'SMEMBERS', 'tickerd:symbols').split('\n').filter(Boolean);
  assert.ok(on1.length > 0 && on2.length > 0, `spread: ${on1.length} + ${on2.length}`);
  assert.equal(on1.filter((s) => on2.includes(s)).length, 0, 'a symbol lives on one shard only');
  for (const s of on1) assert.equal(cli(r2.port, 'EXISTS', `tickerd:seq:${s}`), '0');
  // Two symbols of each shard.
  const syms = [...on1.slice(0, 2), ...on2.slice(0, 2)];
  const { sa, sb, acka, ackb } = await subscribeOnBoth(a, b, syms);
  const e1 = cli(r1.port, 'GET', 'tickerd:epoch');
  const e2 = cli(r2.port, 'GET', 'tickerd:epoch');
  assert.notEqual(e1, e2, 'each shard has its own epoch');
  assert.equal(acka.epoch, ackb.epoch, 'both edges carry the same combined epoch');
  assert.equal(acka.epoch, combinedEpoch([e1, e2]));
  await sleep(2000);
  for (const s of syms) sameOnBoth(sa, sb, s);
  // Edge a dies; its client resumes on b with the combined epoch: exactly the missed values of both shards.
  const last = Object.fromEntries(syms.map((s) => [s, sa.filter((u) => u.symbol === s).at(-1).seq]));
  a.proc.kill('SIGKILL');
  await sleep(700);
  const sc = await resumeOn(b, syms, last, acka.epoch, 1200);
  for (const s of syms) assert.ok(checkContiguous(sc, s).every((u) => !u.reset), `${s}: a reset where a replay was possible`);
  const m = await metrics(b);
  for (const addr of shards) assert.ok(m.get(`tickerd_cluster_received_total{shard="${addr}"}`) > 0, addr);
});
