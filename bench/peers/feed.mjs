// bench/peers/feed.mjs — the synthetic market the peer servers broadcast, and their shared command line.
//
// It mirrors tickerd's `sim` feed (feeds/sim.c) with `include_defaults: false, generated_symbols: S`:
// symbols G00001-USD … G%05d-USD with log-uniform prices 1…1000, geometric Brownian motion, a 2 bps spread
// on a 0.01 tick, trades at bid or ask, and U updates per second in total, each on a random symbol, paced
// by a 1 ms timer that owes at most a quarter second of updates after a stall (as sim.c does). Every update
// carries `ts`, the event time in integer µs since the Unix epoch, and the symbol's `seq`, like tickerd.
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';

const SECONDS_PER_YEAR = 31557600;
const TICK = 0.01;
const MEAN_TRADE_NOTIONAL = 5000;

/** µs since the Unix epoch (double: exact to the µs until 2255). */
export const nowUs = () => Math.round((performance.timeOrigin + performance.now()) * 1000);

/** A small seeded generator (mulberry32), uniform in (0, 1), so runs are repeatable. */
function rng(seed) {
  let a = seed >>> 0 || 1;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296; // (0, 1)
  };
}

const round2 = (x) => Math.round(x * 100) / 100;

function makeSymbols(count, uniform) {
  const syms = [];
  for (let i = 1; i <= count; i++) {
    const price = Math.exp(Math.log(1000) * uniform());
    syms.push({
      symbol: `G${String(i).padStart(5, '0')}-USD`,
      mid: price,
      vol: 0.3 + 0.5 * uniform(),
      volume: (5e8 / price) * (0.5 + uniform()),
      seq: 0,
      lastUs: performance.now() * 1000,
    });
  }
  return syms;
}

/** One step of symbol y: returns the update object a peer sends. */
function step(y, uniform, normal) {
  const now = performance.now() * 1000;
  const dt = (now - y.lastUs) / 1e6 / SECONDS_PER_YEAR;
  y.lastUs = now;
  if (dt > 0) y.mid *= Math.exp(-0.5 * y.vol * y.vol * dt + y.vol * Math.sqrt(dt) * normal());
  if (y.mid < 10 * TICK) y.mid = 10 * TICK;
  const half = ((y.mid * 2) / 2e4) * (0.75 + 0.5 * uniform());
  const bid = round2(Math.floor((y.mid - half) / TICK) * TICK);
  let ask = round2(Math.ceil((y.mid + half) / TICK) * TICK);
  if (ask <= bid) ask = round2(bid + TICK);
  const last = uniform() < 0.5 ? bid : ask;
  y.volume += (-Math.log(uniform()) * MEAN_TRADE_NOTIONAL) / last;
  y.seq += 1;
  return { symbol: y.symbol, last, bid, ask, volume: Math.round(y.volume * 1e4) / 1e4, seq: y.seq, ts: nowUs(), src: 'sim' };
}

/**
 * Starts the market: calls publish(update) U times per second in total. Returns { symbols, stats, stop }.
 * The first quote of every symbol is published at once, as sim.c does. With `hold`, the market waits
 * for SIGUSR2: an overloaded peer's event loop barely accepts new connections (its timer callbacks
 * take most of each turn), so the bench connects every client first, then lets the market run.
 */
export function startFeed({ symbols: count, rate, seed, hold }, publish) {
  const uniform = rng(seed);
  const normal = () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
  const syms = makeSymbols(count, uniform);
  const stats = { published: 0, startedMs: 0 };
  const emit = (y) => { stats.published++; publish(step(y, uniform, normal)); };
  let timer = null;
  for (const y of syms) publish(step(y, uniform, normal)); // before any client, as sim.c at start
  const run = () => {
    if (timer) return;
    stats.startedMs = performance.now();
    let credit = 0;
    let last = performance.now();
    timer = setInterval(() => {
      const now = performance.now();
      credit = Math.min(credit + (rate * (now - last)) / 1000, rate / 4 + 1);
      last = now;
      for (; credit >= 1; credit -= 1) emit(syms[Math.floor(uniform() * syms.length)]);
    }, 1);
  };
  if (hold) process.on('SIGUSR2', run);
  else run();
  return { symbols: syms.map((y) => y.symbol), stats, stop: () => clearInterval(timer) };
}

/** --port/--symbols/--rate/--seed/--max-rss-mb (also from PORT, SYMBOLS, RATE, SEED, MAX_RSS_MB), --hold. */
export function peerArgs(name) {
  const o = {
    port: Number(process.env.PORT ?? 0),
    symbols: Number(process.env.SYMBOLS ?? 100),
    rate: Number(process.env.RATE ?? 1000),
    seed: Number(process.env.SEED ?? 1),
    maxRssMb: Number(process.env.MAX_RSS_MB ?? 4096),
    hold: false,
  };
  const keys = { '--port': 'port', '--symbols': 'symbols', '--rate': 'rate', '--seed': 'seed', '--max-rss-mb': 'maxRssMb' };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i += 2) {
    if (v[i] === '--hold') { o.hold = true; i -= 1; continue; }
    const key = keys[v[i]];
    const val = Number(v[i + 1]);
    if (!key || !Number.isFinite(val)) {
      console.error(`${name}: usage: [--port N] [--symbols S] [--rate U] [--seed N] [--max-rss-mb M] [--hold]`);
      process.exit(2);
    }
    o[key] = val;
  }
  return o;
}

/** This process's RLIMIT_NOFILE soft limit. */
function fdLimit() {
  const m = /Max open files\s+(\d+)/.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
  return m ? Number(m[1]) : 1024;
}

/**
 * What every peer does besides its own protocol: log the port like tickerd (`listening on http://…/`),
 * exit 0 on SIGTERM/SIGINT, and exit 3 if its RSS passes the guard — a naive peer buffers without bound
 * for slow readers, and a benchmark must not take the shared machine down with it. On exit it says how
 * many updates its market published (the rate it really offered: an overloaded peer falls behind).
 */
export function peerLifecycle(name, server, maxRssMb, stats) {
  const { port } = server.address();
  // Connections beyond the descriptor limit are accepted and closed at once instead of crashing the
  // process on EMFILE, as any production Node server is configured (64 descriptors kept in reserve).
  server.maxConnections = fdLimit() - 64;
  server.on('error', (e) => console.error(`${name}: ${e.message}`));
  console.error(`${name}: listening on http://127.0.0.1:${port}/`);
  const guard = setInterval(() => {
    const mb = process.memoryUsage.rss() / 1048576;
    if (mb > maxRssMb) {
      console.error(`${name}: RSS ${mb.toFixed(0)} MiB over the ${maxRssMb} MiB guard, exiting`);
      process.exit(3);
    }
  }, 250);
  guard.unref();
  process.on('exit', () => {
    const secs = stats.startedMs ? (performance.now() - stats.startedMs) / 1000 : 0;
    console.error(`${name}: published ${stats.published} updates in ${secs.toFixed(1)} s`);
  });
  for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
}
