// Durability of the history store (issue 4, items 5 and 7), against the real binary and real disks:
//  - kill -9 during heavy writes, at random moments and aimed at commits: `tickerd --check-history` says the
//    file is intact, every tick reported committed is there, at most about one flush interval is lost, and
//    after a restart history continues (one candle row per bucket, the bucket spanning the kill merged, every
//    candle agreeing with its ticks);
//  - retention: a restart with a short tick retention trims the old ticks at once, candles stay;
//  - a full disk (a small tmpfs) and the history.max_db_mb cap degrade to live-only and recover without a
//    restart when space comes back;
//  - a disk that turns read-only under tickerd (ext4's errors=remount-ro) degrades to live-only;
//  - a history file that cannot be opened at start: tickerd runs live-only and says why.
// The disk tests need root (mount); they skip, saying why, without it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  startTickerd, runTickerd, stopAll, connect, closeAllClients, httpGet, metrics, waitFor, simConfig, sleep,
  tempDir, updatesOf,
} from './lib/harness.mjs';

after(async () => {
  closeAllClients();
  await stopAll();
});

const FLUSH_MS = 200;
const nowUs = () => Date.now() * 1000;

/** A fast sim: every update published (no coalescing) and stored, the writer committing every FLUSH_MS. */
function fastConfig({ rate = 20000, seed = 1, history = {}, ...rest } = {}) {
  return simConfig({
    rate,
    seed,
    normalizer: { flush_interval_ms: 0 },
    history: { flush_interval_ms: FLUSH_MS, max_rows: 10000, ...history },
    ...rest,
  });
}

const healthz = async (srv) => (await httpGet(srv, '/healthz')).json();
const historyHealth = async (srv) => (await healthz(srv)).history;

/** `tickerd --check-history FILE`: {code, line, ticks}. */
async function checkHistory(file) {
  const r = await runTickerd({ args: ['--check-history', file], timeoutMs: 20000 });
  const line = (r.stdout + r.stderr).trim();
  const m = / (\d+) ticks /.exec(line);
  return { code: r.code, line, ticks: m ? Number(m[1]) : NaN };
}

/** Every row of one symbol and interval, paging forward (`next`) through /api/history. */
async function allRows(srv, symbol, interval) {
  const rows = [];
  let from = 0;
  for (;;) {
    const r = await httpGet(srv, `/api/history?symbol=${symbol}&interval=${interval}&from=${from}&limit=10000`,
      { timeoutMs: 20000 });
    assert.equal(r.status, 200, `GET /api/history ${symbol} ${interval}: ${r.body.slice(0, 200)}`);
    const j = r.json();
    rows.push(...j.rows);
    if (j.next === null) return rows;
    from = j.next;
  }
}

/** Live values of `symbols` seen by a WebSocket client: the last one per symbol, all of them ([ts, seq]) per
 *  symbol, and a count. */
async function watch(srv, symbols) {
  const c = await connect(srv);
  const seen = { last: new Map(), all: new Map(symbols.map((x) => [x, []])), n: 0, client: c };
  c.onMessage((m) => {
    for (const u of updatesOf(m)) {
      if (!symbols.includes(u.symbol)) continue;
      seen.n++;
      seen.all.get(u.symbol).push([u.ts, u.seq]);
      const prev = seen.last.get(u.symbol);
      if (!prev || u.seq > prev.seq) seen.last.set(u.symbol, { ts: u.ts, seq: u.seq, last: u.last });
    }
  });
  await c.ok({ op: 'subscribe', symbols });
  return seen;
}

/**
 * The writer's state, sampled from /healthz and /metrics: when its last commit ended and began (ms since the
 * epoch; the start is an estimate on the early side), how long the longest commit seen took, ticks written
 * and dropped. Samples until stop() is called; `last` is the newest sample.
 */
function sampleWriter(srv) {
  const w = { last: null, maxCommitMs: 0, samples: 0, stopped: false };
  const flushMs = async () => (await metrics(srv)).get('tickerd_history_last_flush_microseconds') / 1000;
  w.done = (async () => {
    while (!w.stopped) {
      const f1 = await flushMs();
      const h = await historyHealth(srv);
      const at = Date.now();
      const f2 = await flushMs();
      // f1 or f2 is the duration of the commit whose end /healthz dates: the longer one puts its start earlier.
      const end = at - h.last_commit_age_ms;
      w.last = { end, start: end - Math.max(f1, f2), durMs: f2, written: h.ticks_written, dropped: h.dropped, queue: h.queue_depth, state: h.state };
      w.maxCommitMs = Math.max(w.maxCommitMs, f1, f2);
      w.samples++;
      await sleep(20);
    }
  })();
  w.stop = async () => { w.stopped = true; await w.done; return w; };
  return w;
}

/** Run a command; {code, out} (never throws). */
function sh(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 20000 });
  return { code: r.error ? -1 : r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? r.error.message : ''}`.trim() };
}

/** Why the mount tests cannot run here, or null. */
function mountUnsupported() {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'needs root to mount a filesystem';
  const d = tempDir();
  const m = sh('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', d]);
  if (m.code !== 0) return `cannot mount a tmpfs here: ${m.out}`;
  sh('umount', [d]);
  return null;
}
const NO_MOUNT = mountUnsupported();

/** Unmount `dir` (lazily if still busy) — for finally blocks. */
function unmount(dir) {
  if (sh('umount', [dir]).code !== 0) sh('umount', ['-l', dir]);
}

// ---------------------------------------------------------------------------------------------------------

test('kill -9 during heavy writes: the file stays intact, at most about one flush interval is lost, and history continues after a restart', { timeout: 60000 }, async (t) => {
  const stateDir = tempDir();
  const file = path.join(stateDir, 'tickerd', 'history.db');
  const SYMS = ['BTC-USD', 'ETH-USD'];
  const KILLS = 3;
  const runs = []; // {startUs, killUs, aimed, written, live: Map, fileTicks}
  let fileTicks = 0;

  for (let k = 0; k < KILLS; k++) {
    const run = { startUs: nowUs() };
    runs.push(run);
    const srv = await startTickerd({ config: fastConfig({ seed: 11 + k }), stateDir });
    const seen = await watch(srv, SYMS);
    await waitFor(async () => (await historyHealth(srv)).ticks_written > 0, { timeoutMs: 10000, message: 'a first commit' });
    const writer = sampleWriter(srv);
    await sleep(700 + Math.random() * 1300);
    await writer.stop();
    const w = writer.last;
    assert.equal(w.state, 'ok');
    run.written = w.written;
    // Ticks dropped from a full queue (a writer far behind: a slow machine) leave holes in the seqs; a queue
    // more than half full at the last sample may still drop some before the kill.
    run.dropped = w.dropped;
    run.mayDrop = w.dropped > 0 || w.queue > 32768;
    run.maxCommitMs = writer.maxCommitMs;
    run.lastCommitStartMs = w.start;
    // The first kill falls at a random moment; the others are aimed at the middle of a commit: flushes start
    // every FLUSH_MS, and the next one takes about as long as the last one did.
    run.aimed = k > 0;
    if (run.aimed) {
      let at = w.start + FLUSH_MS + w.durMs / 2;
      while (at < Date.now() + 5) at += FLUSH_MS;
      await sleep(at - Date.now());
    }
    run.killUs = nowUs();
    srv.signal('SIGKILL');
    assert.deepEqual(await srv.waitExit(3000), { code: null, signal: 'SIGKILL' });
    run.live = new Map(seen.last);
    run.seen = seen.all;
    seen.client.terminate();

    const check = await checkHistory(file);
    assert.equal(check.code, 0, `--check-history after kill ${k + 1}: ${check.line}`);
    assert.match(check.line, /: ok: schema v2, 20 symbols/);
    // Every tick /healthz reported committed before the kill is in the file (later commits may be there too).
    assert.ok(check.ticks >= fileTicks + run.written,
      `kill ${k + 1}: ${check.ticks} ticks in the file, at least ${fileTicks} + ${run.written} committed`);
    run.fileTicks = check.ticks - fileTicks;
    fileTicks = check.ticks;
  }

  // The last restart: a slow feed, so the symbols' rows hold still while they are read back.
  const finalStartUs = nowUs();
  const srv = await startTickerd({ config: fastConfig({ rate: 20, seed: 99 }), stateDir });
  const h0 = await historyHealth(srv);
  assert.equal(h0.state, 'ok', `the store opens after ${KILLS} kills: ${JSON.stringify(h0)}`);
  await waitFor(async () => (await historyHealth(srv)).ticks_written > 0, { timeoutMs: 10000, message: 'a commit after the restart' });

  const report = [];
  let spanning1m = 0;
  let spanning1s = 0;
  for (const sym of SYMS) {
    // A consistent read: ticks and candles commit together, so if the candles are the same before and after
    // reading the ticks, no commit touched this symbol in between.
    let ticks;
    let c1s;
    let c1m;
    await waitFor(async () => {
      c1s = await allRows(srv, sym, '1s');
      c1m = await allRows(srv, sym, '1m');
      ticks = await allRows(srv, sym, 'tick');
      const again1s = await allRows(srv, sym, '1s');
      return JSON.stringify(again1s) === JSON.stringify(c1s);
    }, { timeoutMs: 15000, intervalMs: 10, message: `a still read of ${sym}` });

    const runOf = (ts) => {
      for (let k = runs.length - 1; k >= 0; k--) if (ts >= runs[k].startUs) return k;
      return -1;
    };
    // Ticks: oldest first, none between a kill and the next start, and within each killed run no seq
    // missing: what is lost is only the end of a run.
    for (let i = 1; i < ticks.length; i++) assert.ok(ticks[i][0] >= ticks[i - 1][0], `${sym}: ticks in time order`);
    for (let k = 0; k < KILLS; k++) {
      const end = k + 1 < KILLS ? runs[k + 1].startUs : finalStartUs;
      const mine = ticks.filter((r) => r[0] >= runs[k].startUs && r[0] < end);
      assert.ok(mine.length > 100, `${sym}: run ${k + 1}'s ticks are there after the restart (${mine.length})`);
      assert.ok(mine.every((r) => r[0] <= runs[k].killUs), `${sym}: no tick of run ${k + 1} after its kill`);
      for (let i = 1; i < mine.length; i++) {
        // With nothing dropped from the writer's queue, every published value is there: consecutive seqs.
        if (!runs[k].mayDrop) {
          assert.equal(mine[i][5], mine[i - 1][5] + 1,
            `${sym}: run ${k + 1}: consecutive seqs in the file (${mine[i - 1][5]} then ${mine[i][5]})`);
        } else {
          assert.ok(mine[i][5] > mine[i - 1][5], `${sym}: run ${k + 1}: seqs rising in the file`);
        }
      }
      const newest = mine[mine.length - 1];
      const live = runs[k].live.get(sym);
      assert.ok(live, `${sym}: the client saw run ${k + 1}'s values`);
      assert.ok(newest[5] <= live.seq, `${sym}: nothing in the file the client never saw`);
      // A commit is durable: every value published before the last commit seen to complete began (less 20 ms
      // for the event loop between making a value and queueing it) is in the file.
      const before = runs[k].seen.get(sym).filter(([ts]) => ts / 1000 < runs[k].lastCommitStartMs - 20);
      const want = before.length ? Math.max(...before.map(([, seq]) => seq)) : 0;
      assert.ok(newest[5] >= want,
        `${sym}: kill ${k + 1}: the file ends at seq ${newest[5]}, but seq ${want} was published before a commit ` +
        'that completed before the kill began');
      // What the kill lost: the values the client saw after the newest one in the file. That is what was queued
      // since the last completed commit began: one flush interval, plus the commits around the kill (their
      // durations: a WAL checkpoint, a slow or busy machine), plus scheduling slack.
      const lostMs = (live.ts - newest[0]) / 1000;
      const lostTicks = live.seq - newest[5];
      const bound = FLUSH_MS + 2 * runs[k].maxCommitMs + 200;
      assert.ok(lostMs <= bound,
        `${sym}: kill ${k + 1} lost ${lostMs.toFixed(0)} ms (${lostTicks} ticks) of history; flush interval ` +
        `${FLUSH_MS} ms, longest commit ${runs[k].maxCommitMs.toFixed(0)} ms`);
      report.push(`kill ${k + 1} ${runs[k].aimed ? '(aimed mid-commit)' : '(random)'} ${sym}: ` +
        `lost ${lostMs.toFixed(0)} ms = ${lostTicks} ticks (flush interval ${FLUSH_MS} ms, longest commit ` +
        `${runs[k].maxCommitMs.toFixed(0)} ms, ${runs[k].dropped} dropped); run wrote ${runs[k].fileTicks} ticks`);
    }

    // Candles: one row per bucket across all the runs, each agreeing with its ticks (count, OHLC by event time).
    for (const [name, rows, len] of [['1s', c1s, 1e6], ['1m', c1m, 60e6]]) {
      const starts = rows.map((r) => r[0]);
      assert.equal(new Set(starts).size, starts.length, `${sym} ${name}: one row per bucket across the restarts`);
      const byBucket = new Map();
      for (const tk of ticks) {
        const b = Math.floor(tk[0] / len) * len;
        if (!byBucket.has(b)) byBucket.set(b, []);
        byBucket.get(b).push(tk);
      }
      assert.deepEqual(starts, [...byBucket.keys()], `${sym} ${name}: a candle for every bucket with ticks, no other`);
      for (const [start, open, high, low, close, count] of rows) {
        const tk = byBucket.get(start);
        const runsIn = new Set(tk.map((r) => runOf(r[0])));
        if (runsIn.size > 1) {
          if (name === '1m') spanning1m++;
          else spanning1s++;
        }
        const where = `${sym} ${name} bucket ${start} (ticks of ${runsIn.size} run(s))`;
        assert.equal(count, tk.length, `${where}: count = its ticks`);
        const minTs = Math.min(...tk.map((r) => r[0]));
        const maxTs = Math.max(...tk.map((r) => r[0]));
        assert.equal(open, tk.find((r) => r[0] === minTs)[1], `${where}: open`);
        assert.equal(close, tk.findLast((r) => r[0] === maxTs)[1], `${where}: close`);
        assert.equal(high, Math.max(...tk.map((r) => r[1])), `${where}: high`);
        assert.equal(low, Math.min(...tk.map((r) => r[1])), `${where}: low`);
      }
    }
  }
  // Each kill is followed by a restart within a second: the minute (and often the second) spanning it holds
  // ticks of both runs in one merged row.
  assert.ok(spanning1m >= 1, 'a 1m candle spans a kill and merges both runs');
  for (const line of report) t.diagnostic(line);
  t.diagnostic(`candles spanning a kill (one row each, counts matching): 1s ${spanning1s}, 1m ${spanning1m}`);
});

test('tickerd --check-history: ok while tickerd writes, 1 for a damaged or foreign file, 2 for one it cannot open', { timeout: 30000 }, async () => {
  const stateDir = tempDir();
  const file = path.join(stateDir, 'tickerd', 'history.db');
  const srv = await startTickerd({ config: fastConfig({ rate: 5000, seed: 61 }), stateDir });
  await waitFor(async () => (await historyHealth(srv)).ticks_written > 5000, { timeoutMs: 10000, message: '5000 ticks written' });
  const live = await checkHistory(file);
  assert.equal(live.code, 0, `while tickerd writes: ${live.line}`);
  assert.match(live.line, /^\S+history\.db: ok: schema v2, 20 symbols, \d+ ticks \(newest \S+Z\), candles 1s \d+ \/ 1m \d+ \/ 1h \d+, 0 gaps/);
  assert.equal(live.line.split('\n').length, 1, 'one line');
  assert.deepEqual(await srv.stop('SIGTERM'), { code: 0, signal: null });
  assert.ok(!fs.existsSync(`${file}-wal`), 'a clean stop checkpoints the WAL into the file');

  // One page in the middle of the file overwritten: integrity_check names it.
  const damaged = path.join(stateDir, 'damaged.db');
  fs.copyFileSync(file, damaged);
  const pages = fs.statSync(damaged).size / 4096;
  const fd = fs.openSync(damaged, 'r+');
  fs.writeSync(fd, Buffer.alloc(4096, 0xa5), 0, 4096, Math.floor(pages / 2) * 4096);
  fs.closeSync(fd);
  const bad = await checkHistory(damaged);
  assert.equal(bad.code, 1, bad.line);
  assert.match(bad.line, /damaged\.db: CORRUPT: /);

  const foreign = path.join(stateDir, 'notes.txt');
  fs.writeFileSync(foreign, 'not a database\n'.repeat(400));
  const notDb = await checkHistory(foreign);
  assert.equal(notDb.code, 1, notDb.line);
  assert.match(notDb.line, /not a database/);

  const missing = await checkHistory(path.join(stateDir, 'nope.db'));
  assert.equal(missing.code, 2, missing.line);
  assert.match(missing.line, /cannot open: No such file/);
  assert.ok(!fs.existsSync(path.join(stateDir, 'nope.db')), 'the check creates no file');
  assert.equal((await checkHistory(stateDir)).code, 2, 'a directory');
});

test('retention: a restart with a 2 s tick retention trims the old ticks at once; the candles stay', { timeout: 30000 }, async (t) => {
  const stateDir = tempDir();
  const file = path.join(stateDir, 'tickerd', 'history.db');
  const first = await startTickerd({ config: fastConfig({ rate: 2000, seed: 5 }), stateDir });
  await waitFor(async () => (await historyHealth(first)).ticks_written > 0, { timeoutMs: 10000, message: 'a first commit' });
  await sleep(2000);
  assert.deepEqual(await first.stop('SIGTERM'), { code: 0, signal: null });
  const stoppedUs = nowUs();
  const check = await checkHistory(file);
  assert.equal(check.code, 0, check.line);
  assert.ok(check.ticks > 1000, check.line);

  // The writer's first retention pass runs as it starts (docs/history.md, Retention): every tick of the first
  // run is older than 2 s by then.
  await sleep(Math.max(0, stoppedUs / 1000 + 2300 - Date.now()));
  const restartUs = nowUs();
  const second = await startTickerd({ config: fastConfig({ rate: 2000, seed: 6, history: { retention_ticks_s: 2 } }), stateDir });
  await waitFor(async () => (await metrics(second)).get('tickerd_history_rows_trimmed_total') >= check.ticks,
    { timeoutMs: 5000, message: `${check.ticks} ticks trimmed` });
  const m = await metrics(second);
  assert.equal(m.get('tickerd_history_rows_trimmed_total'), check.ticks,
    'exactly the first run\'s ticks are trimmed (candles are within their retention)');
  const q = (interval) => httpGet(second, `/api/history?symbol=BTC-USD&interval=${interval}&to=${restartUs}&limit=10000`)
    .then((r) => r.json().rows);
  assert.deepEqual(await q('tick'), [], 'no tick of the first run is left');
  const c1s = await q('1s');
  assert.ok(c1s.length >= 2, `the first run's 1 s candles are still there (${c1s.length})`);
  assert.ok(c1s.reduce((a, r) => a + r[5], 0) > 0);
  assert.ok((await q('1m')).length >= 1, 'and its 1 min candle');
  // Fresh ticks are kept.
  await waitFor(async () => {
    const r = (await httpGet(second, '/api/history?symbol=BTC-USD&interval=tick&limit=5')).json().rows;
    return r.length === 5 && r.every((row) => row[0] >= restartUs);
  }, { timeoutMs: 5000, message: 'the second run\'s ticks in the history' });
  t.diagnostic(`trimmed ${m.get('tickerd_history_rows_trimmed_total')} ticks at start; ${c1s.length} 1 s candles kept`);
});

test('disk full (a 2 MB tmpfs): history degrades to live-only, prices keep flowing, and it recovers when the disk grows', { timeout: 40000 }, async (t) => {
  if (NO_MOUNT) { t.skip(NO_MOUNT); return; }
  const dir = tempDir();
  assert.equal(sh('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', dir]).code, 0);
  let srv;
  try {
    srv = await startTickerd({ config: fastConfig({ seed: 21 }), stateDir: dir });
    const seen = await watch(srv, ['BTC-USD']);
    const t0 = Date.now();
    const degraded = await waitFor(async () => {
      const h = await historyHealth(srv);
      return h.state === 'degraded' && h;
    }, { timeoutMs: 15000, message: 'history degraded on the full disk' });
    const degradedAfterMs = Date.now() - t0;
    assert.match(degraded.error, /full/i);
    assert.ok(degraded.degraded_for_ms >= 0);
    const hz = await httpGet(srv, '/healthz');
    assert.equal(hz.status, 200);
    assert.equal(hz.json().status, 'ok', 'a full disk does not fail /healthz: prices are the service');
    let m = await metrics(srv);
    assert.equal(m.get('tickerd_history_degraded'), 1);
    assert.equal(m.get('tickerd_history_up'), 0);
    assert.ok(m.get('tickerd_history_failed_batches_total') >= 1);
    // Live prices go on while the history is failing.
    const n0 = seen.n;
    await sleep(1000);
    assert.ok(seen.n - n0 > 100, `live updates keep flowing while degraded (${seen.n - n0} in 1 s)`);
    const stuck = (await historyHealth(srv)).ticks_written;

    assert.equal(sh('mount', ['-o', 'remount,size=64m', dir]).code, 0);
    const t1 = Date.now();
    const ok = await waitFor(async () => {
      const h = await historyHealth(srv);
      return h.state === 'ok' && h;
    }, { timeoutMs: 15000, message: 'history ok again after the disk grew (the writer retries every 5 s)' });
    const recoveredMs = Date.now() - t1;
    assert.equal(ok.error, undefined);
    await waitFor(async () => (await historyHealth(srv)).ticks_written > ok.ticks_written,
      { timeoutMs: 3000, message: 'commits go on' });
    assert.ok(ok.ticks_written > stuck, 'the queued ticks were written');
    m = await metrics(srv);
    assert.equal(m.get('tickerd_history_degraded'), 0);
    assert.equal(m.get('tickerd_history_up'), 1);
    assert.deepEqual(await srv.stop('SIGTERM'), { code: 0, signal: null });
    const check = await checkHistory(path.join(dir, 'tickerd', 'history.db'));
    assert.equal(check.code, 0, `the file is intact after the full disk: ${check.line}`);
    t.diagnostic(`degraded ${degradedAfterMs} ms after start ("${degraded.error}"); recovered ${recoveredMs} ms after ` +
      `the disk grew; dropped ${ok.dropped} ticks meanwhile (queue full); ${check.line}`);
  } finally {
    if (srv?.alive()) await srv.stop('SIGTERM');
    unmount(dir);
  }
});

test('history.max_db_mb: beyond the cap history degrades (SQLITE_FULL); raising it with SIGHUP recovers', { timeout: 30000 }, async (t) => {
  const cfg = fastConfig({ seed: 31, history: { max_db_mb: 1 } });
  const srv = await startTickerd({ config: cfg });
  const seen = await watch(srv, ['ETH-USD']);
  const degraded = await waitFor(async () => {
    const h = await historyHealth(srv);
    return h.state === 'degraded' && h;
  }, { timeoutMs: 15000, message: 'history degraded at the 1 MB cap' });
  assert.match(degraded.error, /SQLITE_FULL/);
  assert.equal((await metrics(srv)).get('tickerd_history_degraded'), 1);
  assert.equal((await healthz(srv)).status, 'ok');
  const n0 = seen.n;
  await sleep(500);
  assert.ok(seen.n - n0 > 50, 'live updates keep flowing at the cap');

  cfg.history.max_db_mb = 64;
  srv.writeConfig(cfg);
  srv.signal('SIGHUP');
  const t1 = Date.now();
  const ok = await waitFor(async () => {
    const h = await historyHealth(srv);
    return h.state === 'ok' && h;
  }, { timeoutMs: 10000, message: 'history ok after the cap was raised' });
  const recoveredMs = Date.now() - t1;
  // A raised cap is tried at once, not at the next retry (every 5 s while degraded).
  assert.ok(recoveredMs < 4000, `recovered ${recoveredMs} ms after SIGHUP`);
  assert.ok(ok.ticks_written > degraded.ticks_written);
  assert.equal((await metrics(srv)).get('tickerd_history_degraded'), 0);
  assert.doesNotMatch(srv.stderr(), /need a restart/, 'max_db_mb applies on reload');
  t.diagnostic(`degraded: "${degraded.error}"; recovered ${recoveredMs} ms after SIGHUP`);
});

// A filesystem cannot be remounted read-only while a process has files open on it for writing (the kernel
// answers EBUSY), so `mount -o remount,ro` can't turn a disk read-only under tickerd. What does, in real life,
// is a filesystem error: ext4 mounted with errors=remount-ro stops all writes (EROFS) at once. Its sysfs
// trigger_fs_error raises such an error on a loop-mounted image. The kernel keeps that filesystem read-only
// until it is unmounted and checked, so the way back is a restart on the repaired disk.
test('a disk that turns read-only under tickerd (ext4 errors=remount-ro): live-only with the error; a restart on the repaired disk writes again', { timeout: 40000 }, async (t) => {
  if (NO_MOUNT) { t.skip(NO_MOUNT); return; }
  for (const tool of ['mkfs.ext4', 'e2fsck', 'losetup']) {
    if (sh('which', [tool]).code !== 0) { t.skip(`${tool} is not installed`); return; }
  }
  const work = tempDir();
  const img = path.join(work, 'disk.img');
  const dir = path.join(work, 'mnt');
  fs.mkdirSync(dir);
  fs.closeSync(fs.openSync(img, 'w'));
  fs.truncateSync(img, 64 << 20);
  let r = sh('mkfs.ext4', ['-q', '-F', '-O', '^has_journal', img]);
  assert.equal(r.code, 0, r.out);
  r = sh('mount', ['-o', 'loop,errors=remount-ro', img, dir]);
  if (r.code !== 0) { t.skip(`cannot loop-mount an ext4 image here: ${r.out}`); return; }
  let srv;
  try {
    const dev = path.basename(execFileSync('findmnt', ['-no', 'SOURCE', dir], { encoding: 'utf8' }).trim());
    const trigger = `/sys/fs/ext4/${dev}/trigger_fs_error`;
    if (!fs.existsSync(trigger)) { t.skip(`no ${trigger} in this kernel`); return; }
    srv = await startTickerd({ config: fastConfig({ rate: 5000, seed: 41 }), stateDir: dir });
    const seen = await watch(srv, ['BTC-USD']);
    await waitFor(async () => (await historyHealth(srv)).ticks_written > 0, { timeoutMs: 10000, message: 'a first commit' });

    fs.writeFileSync(trigger, 'tickerd durability test\n');
    const degraded = await waitFor(async () => {
      const h = await historyHealth(srv);
      return h.state === 'degraded' && h;
    }, { timeoutMs: 10000, message: 'history degraded on the read-only disk' });
    assert.match(degraded.error, /read-only|I\/O/i);
    const hz = await healthz(srv);
    assert.equal(hz.status, 'ok');
    const m = await metrics(srv);
    assert.equal(m.get('tickerd_history_degraded'), 1);
    assert.equal(m.get('tickerd_history_up'), 0);
    const n0 = seen.n;
    await sleep(1000);
    assert.ok(seen.n - n0 > 50, `live updates keep flowing on a read-only disk (${seen.n - n0} in 1 s)`);
    // Nothing tickerd can do brings this filesystem back; it exits cleanly, naming what it could not write.
    assert.deepEqual(await srv.stop('SIGTERM'), { code: 0, signal: null });
    assert.match(srv.stderr(), /closing with \d+ tick\(s\) unwritten, lost/);

    // The operator's way back: unmount, check, mount; tickerd starts on it and writes again.
    unmount(dir);
    r = sh('e2fsck', ['-fy', img]);
    assert.ok(r.code === 0 || r.code === 1, `e2fsck: ${r.out}`);
    assert.equal(sh('mount', ['-o', 'loop,errors=remount-ro', img, dir]).code, 0);
    const before = await checkHistory(path.join(dir, 'tickerd', 'history.db'));
    srv = await startTickerd({ config: fastConfig({ rate: 5000, seed: 42 }), stateDir: dir });
    const h = await waitFor(async () => {
      const x = await historyHealth(srv);
      return x.state === 'ok' && x.ticks_written > 0 && x;
    }, { timeoutMs: 10000, message: 'history written again after the repair' });
    assert.deepEqual(await srv.stop('SIGTERM'), { code: 0, signal: null });
    const afterCheck = await checkHistory(path.join(dir, 'tickerd', 'history.db'));
    assert.equal(afterCheck.code, 0, afterCheck.line);
    t.diagnostic(`read-only error: "${degraded.error}"; file after the repair, before the restart: ${before.line} ` +
      `(exit ${before.code}); after: ${afterCheck.line}; ${h.ticks_written} ticks written after the restart`);
  } finally {
    if (srv?.alive()) await srv.stop('SIGTERM');
    unmount(dir);
  }
});

test('a history file that cannot be opened at start: prices still flow, history is "unavailable" with the reason', { timeout: 20000 }, async () => {
  const dir = tempDir();
  const blocker = path.join(dir, 'not-a-directory');
  fs.writeFileSync(blocker, 'a regular file where the history directory should be\n');
  const histPath = path.join(blocker, 'history.db');
  const srv = await startTickerd({ config: fastConfig({ rate: 2000, seed: 51, history: { path: histPath } }) });
  assert.match(srv.stderr(), /history unavailable, running live-only/);
  const hz = await healthz(srv);
  assert.equal(hz.status, 'ok');
  assert.equal(hz.history.state, 'unavailable');
  assert.equal(hz.history.path, histPath);
  assert.match(hz.history.error, /not-a-directory/);
  const m = await metrics(srv);
  assert.equal(m.get('tickerd_history_degraded'), 1);
  assert.equal(m.get('tickerd_history_up'), 0);

  const c = await connect(srv);
  const log = [];
  c.onMessage((x) => log.push(x));
  await c.ok({ op: 'subscribe', symbols: ['BTC-USD', 'ETH-USD'], history: { interval: '1m', limit: 10 } });
  await waitFor(() => log.filter((x) => x.op === 'update').length >= 20, { message: 'live updates' });
  const frames = log.filter((x) => x.op === 'history');
  assert.deepEqual(frames.map((f) => f.symbol), ['BTC-USD', 'ETH-USD']);
  for (const f of frames) {
    assert.deepEqual(f.rows, []);
    assert.equal(typeof f.error, 'string');
    assert.ok(f.error.length > 0);
  }
  const api = await httpGet(srv, '/api/history?symbol=BTC-USD&interval=1m');
  assert.equal(api.status, 503);
  assert.equal(api.json().error, 'history_unavailable');
  assert.ok(!fs.existsSync(histPath));
});

test('a history file that cannot be opened: the history frame\'s and /api/history\'s error give the reason, not "disabled"', { timeout: 20000 }, async () => {
  const dir = tempDir();
  const blocker = path.join(dir, 'not-a-directory');
  fs.writeFileSync(blocker, 'x\n');
  const srv = await startTickerd({ config: fastConfig({ rate: 200, seed: 52, history: { path: path.join(blocker, 'history.db') } }) });
  const c = await connect(srv);
  await c.ok({ op: 'subscribe', symbols: ['BTC-USD'], history: { interval: '1m', limit: 10 } });
  const f = await c.nextOp('history', 5000);
  const api = (await httpGet(srv, '/api/history?symbol=BTC-USD&interval=1m')).json();
  for (const text of [f.error, api.message]) {
    assert.doesNotMatch(text, /history\.enabled is false/, 'history is enabled');
    assert.match(text, /unavailable|not-a-directory|cannot/);
  }
});
