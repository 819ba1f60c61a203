#!/usr/bin/env node
// bench/tls.mjs — what TLS on the listener costs (issue 11): the same load against tickerd over ws:// and
// over wss:// (server.tls with a P-256 certificate made here by the openssl CLI), measured on the server:
// deliveries (updates received by clients) per server CPU-second, and RSS per idle connection.
//
//   node bench/tls.mjs [--n 1000,10000] [--duration 10] [--rate 20[,10]] [--client c|node] [--loop poll|libuv]
//                      [--ramp 2000] [--out docs/performance.md]
//
// tickerd runs pinned to CPU 0, the clients to CPU 1 (taskset). --client c (the default when
// build/bench/tickerd-loadgen exists, or TICKERD_LOADGEN) drives the load with the C load tool over ws:// or
// wss:// (one process, libuv); --client node with Node `ws` clients in this process (which cannot hold 10k
// TLS connections on one core). The figures are the server's own (its /proc CPU ticks and RSS); the client
// side only has to keep up (it reports the deliveries it counted). With --out the table is written between
// the BENCH:tls markers. --loop is tickerd's server.event_loop: poll, its default (lws 4.1.6's experimental
// libuv loop stalls at 10k connections, docs/performance.md).
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(ROOT, 'tests', 'package.json'));
const BIN = process.env.TICKERD_BIN || path.join(ROOT, 'build/tickerd');
const LOADGEN = process.env.TICKERD_LOADGEN || path.join(ROOT, 'build/bench/tickerd-loadgen');
const TICK_HZ = 100;
const S = 20; // symbols in the market (the sim's generated G00001-USD ..), each client subscribes to K of them
const log = (m) => process.stderr.write(`${m}\n`);

const opt = { n: [1000], duration: 10, rate: [20], out: null, k: 10, ramp: 2000, loop: 'poll', client: fs.existsSync(LOADGEN) ? 'c' : 'node' };
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i], v = () => process.argv[++i];
  if (a === '--n') opt.n = v().split(',').map(Number);
  else if (a === '--duration') opt.duration = Number(v());
  else if (a === '--rate') opt.rate = v().split(',').map(Number); // one per --n value, or one for all
  else if (a === '--ramp') opt.ramp = Number(v());
  else if (a === '--client') opt.client = v();
  else if (a === '--loop') opt.loop = v();
  else if (a === '--out') opt.out = v();
  else { log(`bench/tls.mjs: unknown argument ${a}`); process.exit(2); }
}
if (!['c', 'node'].includes(opt.client)) { log('bench/tls.mjs: --client is c or node'); process.exit(2); }

const cpuTicks = (pid) => {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(f[11]) + Number(f[12]);
};
const rssKiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** [busy, total] ticks of CPUs 0 and 1: the machine is shared, so what else ran there is reported too. */
const coreTicks = () => {
  const lines = fs.readFileSync('/proc/stat', 'utf8').split('\n');
  return [0, 1].map((c) => {
    const f = (lines.find((l) => l.startsWith(`cpu${c} `)) || `cpu${c} 0 0 0 0`).trim().split(/\s+/).slice(1).map(Number);
    const total = f.reduce((a, x) => a + x, 0);
    return [total - f[3] - (f[4] || 0), total];
  });
};
const pinned = (cpu, cmd, argv) => (os.cpus().length > 1 ? ['taskset', ['-c', String(cpu), cmd, ...argv]] : [cmd, argv]);
const symbol = (i) => `G${String(i + 1).padStart(5, '0')}-USD`; // the sim's generated names, as loadgen's

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tickerd-tls-bench-'));
const cert = path.join(tmp, 'c.pem'), key = path.join(tmp, 'k.pem');
execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key,
  '-out', cert, '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
const ca = fs.readFileSync(cert);
const running = new Set(); // every child started here, killed on the way out whatever happens
const killAll = () => { for (const p of running) try { p.kill('SIGKILL'); } catch { /* gone */ } };
process.on('exit', () => { killAll(); fs.rmSync(tmp, { recursive: true, force: true }); });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { killAll(); process.exit(130); });
const track = (proc) => { running.add(proc); proc.once('exit', () => running.delete(proc)); return proc; };

const rateFor = (n) => opt.rate[Math.min(opt.n.indexOf(n), opt.rate.length - 1)];

async function startTickerd(tls, n) {
  const cfgPath = path.join(tmp, `tickerd-${tls ? 'tls' : 'plain'}.json`);
  fs.writeFileSync(cfgPath, JSON.stringify({
    server: { max_connections: n + 100, event_loop: opt.loop, ...(tls ? { tls: { cert, key } } : {}) },
    history: { enabled: false },
    limits: { subscribe_timeout_ms: 0 },
    feeds: [{ type: 'sim', name: 'sim', rate: rateFor(n), seed: 7, include_defaults: false, generated_symbols: S }],
  }));
  const [cmd, argv] = pinned(0, BIN, ['-c', cfgPath, '--port', '0', '--log-level', 'warn']);
  const proc = track(spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'] }));
  let err = '';
  proc.stderr.on('data', (d) => { err += d; });
  // --log-level warn hides the "listening" line: find the port from /proc
  for (let i = 0; i < 100; i++) {
    await sleep(100);
    const port = listeningPort(proc.pid);
    if (port) return { proc, port, stderr: () => err };
  }
  throw new Error(`tickerd did not listen: ${err}`);
}

function listeningPort(pid) {
  let inodes;
  try {
    inodes = new Set(fs.readdirSync(`/proc/${pid}/fd`).map((f) => { try { return /socket:\[(\d+)\]/.exec(fs.readlinkSync(`/proc/${pid}/fd/${f}`))?.[1]; } catch { return null; } }).filter(Boolean));
  } catch { return 0; }
  for (const line of fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[3] === '0A' && inodes.has(f[9])) return parseInt(f[1].split(':')[1], 16);
  }
  return 0;
}

/* ---- the clients: a round opens N, they subscribe, ready() after the warm-up; window(); close() ---- */

/** Node `ws` clients in this process, connection i subscribed to symbols (i*K + j) mod S like loadgen's. */
async function nodeRound(srv, tls, n) {
  const WebSocket = require('ws');
  const stats = { deliveries: 0 };
  const clients = [];
  const t0 = Date.now();
  for (let i = 0; i < n; i += 200) {
    const batch = Array.from({ length: Math.min(200, n - i) }, (_, j) => new Promise((resolve, reject) => {
      const ws = new WebSocket(`${tls ? 'wss' : 'ws'}://127.0.0.1:${srv.port}/ws`, { ca, perMessageDeflate: false });
      ws.on('open', () => {
        ws.send(JSON.stringify({ op: 'subscribe', symbols: Array.from({ length: opt.k }, (_, s) => symbol(((i + j) * opt.k + s) % S)) }));
        resolve(ws);
      });
      ws.on('message', (data) => {
        // one update per "seq": counting is cheaper than parsing every frame
        for (let p = data.indexOf('"seq"'); p >= 0; p = data.indexOf('"seq"', p + 5)) stats.deliveries++;
      });
      ws.on('error', reject);
    }));
    clients.push(...await Promise.all(batch));
  }
  const connectMs = Date.now() - t0;
  await sleep(2000); // snapshots out, steady state
  return {
    connectMs, connected: clients.length,
    window: async (ms, atEnd) => { const d0 = stats.deliveries; await sleep(ms); atEnd(); return stats.deliveries - d0; },
    close: async () => { for (const c of clients) c.terminate(); },
  };
}

/** One tickerd-loadgen process on CPU 1 (--wait-signal: it says READY after its warm-up, measures on SIGUSR1). */
async function cRound(srv, tls, n, durationS) {
  const [cmd, argv] = pinned(1, LOADGEN, ['--url', `${tls ? 'wss' : 'ws'}://127.0.0.1:${srv.port}/ws`, '-n', String(n),
    '-k', String(opt.k), '-s', String(S), '--duration', String(durationS), '--warmup', '2', '--ramp', String(opt.ramp),
    '--engine', 'lws', '--wait-signal', '--json', '-q']); // wss needs the lws client: plain rows use it too, to compare like with like
  const t0 = Date.now();
  const lg = track(spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] }));
  let out = '', err = '', connectMs = NaN;
  const exited = new Promise((r) => lg.on('close', (code, sig) => r(code ?? sig)));
  lg.stdout.on('data', (d) => { out += d; });
  lg.stderr.on('data', (d) => { err = (err + d).slice(-8000); if (Number.isNaN(connectMs) && /^CONNECTED$/m.test(err)) connectMs = Date.now() - t0; });
  for (const end = Date.now() + 120000; !/^READY$/m.test(err); await sleep(50))
    if (lg.exitCode !== null || Date.now() > end) { lg.kill('SIGKILL'); throw new Error(`loadgen did not get ready: ${err.slice(-500)}`); }
  const report = async () => {
    await exited;
    const line = out.trim().split('\n').pop();
    if (!line?.startsWith('{')) throw new Error(`loadgen gave no report: ${err.slice(-500)}`);
    return JSON.parse(line);
  };
  return {
    connectMs,
    // the tool measures its own window from the signal; the server's CPU is read over the same span here
    // (its teardown after the window, closing N connections, is not in the server's figure)
    window: async (ms, atEnd) => { lg.kill('SIGUSR1'); await sleep(ms); atEnd(); const r = await report(); return r.updates_per_s * r.duration_s; },
    close: async () => { if (lg.exitCode === null) lg.kill('SIGINT'); const r = await report(); if (r.failed) log(`loadgen: ${r.failed} of ${n} connections failed`); },
  };
}

async function measure(tls, n) {
  const round = opt.client === 'c' ? (srv) => cRound(srv, tls, n, opt.duration) : (srv) => nodeRound(srv, tls, n);
  const srv = await startTickerd(tls, n);
  await sleep(1000);
  const base = rssKiB(srv.proc.pid);
  const r1 = await round(srv);
  const rss = rssKiB(srv.proc.pid);
  const c0 = cpuTicks(srv.proc.pid), w0 = Date.now(), k0 = coreTicks();
  let cpuS = NaN, wallS = NaN, others0 = NaN;
  const deliveries = await r1.window(opt.duration * 1000, () => {
    cpuS = (cpuTicks(srv.proc.pid) - c0) / TICK_HZ;
    wallS = (Date.now() - w0) / 1000;
    const [b, t] = coreTicks()[0];
    others0 = Math.max(0, (b - k0[0][0]) / Math.max(1, t - k0[0][1]) - cpuS / wallS); // CPU 0 busy beyond tickerd
  });
  await r1.close();
  // a second round on the same process: N fresh clients once the first N have gone, against the same
  // empty-server base (tickerd trims the heap once a burst of connections is over, so both rounds are
  // read after that trim: the second shows whether the first burst left anything behind)
  await sleep(1500);
  const r2 = await (opt.client === 'c' ? cRound(srv, tls, n, 0.1) : nodeRound(srv, tls, n));
  const rss2 = rssKiB(srv.proc.pid);
  await r2.close();
  srv.proc.kill('SIGTERM');
  await new Promise((r) => (srv.proc.exitCode !== null ? r() : srv.proc.once('exit', r)));
  const r = {
    mode: tls ? 'wss (TLS 1.3)' : 'ws', n, connectMs: r1.connectMs,
    rssPerConnKiB: (rss - base) / n, rss2PerConnKiB: (rss2 - base) / n, deliveriesPerS: deliveries / wallS, cpuPct: 100 * cpuS / wallS, othersPct: 100 * others0, rate: rateFor(n),
    deliveriesPerCpuS: cpuS > 0 ? deliveries / cpuS : NaN, usPerDelivery: deliveries ? 1e6 * cpuS / deliveries : NaN,
  };
  log(JSON.stringify(r));
  return r;
}

const rows = [];
for (const n of opt.n) {
  const plain = await measure(false, n);
  const tls = await measure(true, n);
  rows.push([plain, tls]);
}
const f = (x, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '–');
const clients = opt.client === 'c' ? 'one `tickerd-loadgen` process (lws client, libuv)' : 'the Node `ws` clients';
let md = `Measured ${new Date().toISOString().slice(0, 10)} by \`node bench/tls.mjs --client ${opt.client} --loop ${opt.loop} --n ${opt.n.join(',')} --duration ${opt.duration} --rate ${opt.rate.join(',')}\`: `
  + `sim feed at ${opt.rate.join(' / ')} updates/s (per N) over ${S} symbols, each client subscribed to ${opt.k}, tickerd's ${opt.loop} loop on CPU 0, `
  + `${clients} on CPU 1; ${os.cpus().length} × ${os.cpus()[0].model}.\n\n`
  + '| N | updates/s in | transport | deliveries/s | server CPU | others on CPU 0 | deliveries per server CPU-s | µs CPU per delivery | RSS per idle connection | same, second round | connect N |\n'
  + '|---|---|---|---|---|---|---|---|---|---|---|\n';
for (const [p, t] of rows) {
  for (const r of [p, t])
    md += `| ${r.n} | ${r.rate} | ${r.mode} | ${f(r.deliveriesPerS)} | ${f(r.cpuPct, 1)} % | ${f(r.othersPct, 0)} % | ${f(r.deliveriesPerCpuS)} | ${f(r.usPerDelivery, 2)} | ${f(r.rssPerConnKiB, 1)} KiB | ${f(r.rss2PerConnKiB, 1)} KiB | ${r.connectMs} ms |\n`;
  md += `| ${p.n} | | **TLS ÷ plain** | | | | | **${f(t.usPerDelivery / p.usPerDelivery, 2)}×** | **${f(t.rssPerConnKiB / p.rssPerConnKiB, 2)}×** | **${f(t.rss2PerConnKiB / p.rss2PerConnKiB, 2)}×** | |\n`;
}
process.stdout.write(md);
if (opt.out) {
  const text = fs.readFileSync(opt.out, 'utf8');
  const re = /(<!-- BENCH:tls -->\n)[\s\S]*?(<!-- \/BENCH:tls -->)/;
  if (!re.test(text)) { log(`no BENCH:tls markers in ${opt.out}`); process.exit(2); }
  fs.writeFileSync(opt.out, text.replace(re, `$1${md}$2`));
  log(`written to ${opt.out}`);
}
fs.rmSync(tmp, { recursive: true, force: true });
