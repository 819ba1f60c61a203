#!/usr/bin/env node
// bench/cluster.mjs — what the Redis hop costs (issue 12): 1 ingest + 2 edges against one standalone tickerd
// at the same load, on this machine.
//
//   node bench/cluster.mjs [--loads 200x1000,1000x1000,100x5000] [--duration 5] [--reps 3] [--out docs/performance.md]
//   node bench/cluster.mjs --redis-only 1000,5000     Redis and an ingest alone: Redis CPU per 1,000 values/s, no edge
//   --server-cpus 0,1                                  let the server processes use both cores (default: CPU 0)
//
// A load NxU is N WebSocket clients, each subscribed to K = 10 of S = 100 generated symbols, with the sim feed
// at U values/s in total. Standalone: one tickerd with the sim feed; cluster: redis-server, an ingest (the sim
// feed, cluster.role ingest) and two edges (cluster.role edge), every client on one of the two edges (N/2
// each). Every server process runs on CPU 0, the two tickerd-loadgen processes (N/2 clients each) on CPU 1, so
// both setups get the same cores. Measured per run after a 2 s warm-up: deliveries/s (updates the clients
// received), the latency ts → client receive (merged histograms of both load processes), each process' CPU
// (from /proc/<pid>/stat) and the values the ingest published (its tickerd_cluster_published_total). Each
// load is run --reps times alternating the setups; the report gives the median of the runs. With --out the
// tables go between the BENCH:cluster markers.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { mergeHists, quantileMs } from './lib/load.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = process.env.TICKERD_BIN || path.join(ROOT, 'build/tickerd');
const LOADGEN = process.env.TICKERD_LOADGEN || path.join(ROOT, 'build/bench/tickerd-loadgen');
const TICK_HZ = 100;
const S = 100, K = 10;
const log = (m) => process.stderr.write(`${m}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const opt = { loads: [[200, 1000], [1000, 1000], [100, 5000]], duration: 5, reps: 3, out: null };
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i], v = () => process.argv[++i];
  if (a === '--loads') opt.loads = v().split(',').map((x) => x.split('x').map(Number));
  else if (a === '--duration') opt.duration = Number(v());
  else if (a === '--reps') opt.reps = Number(v());
  else if (a === '--out') opt.out = v();
  else if (a === '--redis-only') opt.redisOnly = v().split(',').map(Number);
  else if (a === '--report') opt.report = v(); // render the tables of a raw results file again, run nothing
  else if (a === '--server-cpus') opt.serverCpus = v(); // e.g. 0,1: the servers may use both cores
  else { log(`bench/cluster.mjs: unknown argument ${a}`); process.exit(2); }
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tickerd-cluster-bench-'));
const pinned = (cpu, cmd, argv) => (os.cpus().length > 1 ? ['taskset', ['-c', String(cpu), cmd, ...argv]] : [cmd, argv]);
const cpuTicks = (pid) => {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime, all threads
};

async function freePort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

function get(port, p) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, agent: false }, (res) => {
      let b = '';
      res.on('data', (d) => { b += d; });
      res.on('end', () => resolve({ status: res.statusCode, body: b }));
    });
    req.setTimeout(2000, () => req.destroy());
    req.on('error', () => resolve({ status: 0, body: '' }));
  });
}

async function until(pred, ms, what) {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(100)) if (await pred()) return;
  throw new Error(`timed out: ${what}`);
}

const procs = [];
function run(cmd, argv, name) {
  const [c, a] = pinned(opt.serverCpus ?? 0, cmd, argv);
  const proc = spawn(c, a, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr.on('data', (d) => { err = (err + d).slice(-4000); });
  const p = { proc, pid: proc.pid, name, err: () => err, exited: new Promise((r) => proc.on('exit', r)) };
  procs.push(p);
  return p;
}

async function tickerd(name, cfg) {
  const port = await freePort();
  const file = path.join(tmp, `${name}.json`);
  fs.writeFileSync(file, JSON.stringify({
    server: { max_connections: 5000 }, limits: { subscribe_timeout_ms: 0 }, history: { enabled: false },
    log: { level: 'warn' }, ...cfg,
  }));
  const p = run(BIN, ['-c', file, '--port', String(port)], name);
  p.port = port;
  await until(async () => (await get(port, '/healthz')).status === 200, 10000, `${name} healthy: ${p.err()}`);
  return p;
}

const symbolCount = async (port) => {
  try { return JSON.parse((await get(port, '/api/symbols')).body).symbols.length; } catch { return 0; }
};
const published = async (port) => {
  const m = (await get(port, '/metrics')).body;
  return [...m.matchAll(/^tickerd_cluster_published_total\{[^}]*\} (\d+)/gm)].reduce((a, x) => a + Number(x[1]), 0);
};
const sim = (u) => [{ type: 'sim', name: 'sim', rate: u, seed: 1, include_defaults: false, generated_symbols: S }];

async function stopAll() {
  for (const p of procs.splice(0)) {
    if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGTERM');
    const t = setTimeout(() => p.proc.kill('SIGKILL'), 5000);
    await p.exited;
    clearTimeout(t);
  }
}

/** Quantile q (ms) of every report's latency histograms together (bench/lib/load.mjs, as in loadgen.c). */
function reportsQuantileMs(reports, q) {
  const h = mergeHists(reports.flatMap((r) => [r.hist_ok, r.hist_stalled]));
  return quantileMs(h, q, reports[0].hist_sub_bits ?? 6);
}

/** Two load processes (n/2 clients each) against ports[0] and ports[1]; one window measured for all. */
async function measure(ports, n, servers, ingestPort) {
  const half = [Math.ceil(n / 2), Math.floor(n / 2)];
  const lps = ports.map((port, i) => {
    const [c, a] = pinned(1, LOADGEN, ['--url', `ws://127.0.0.1:${port}/ws`, '-n', String(half[i]), '-k', String(K),
      '-s', String(S), '--first-index', String(i ? half[0] : 0), '--duration', String(opt.duration), '--warmup', '2',
      '--ramp', '1000', '--wait-signal', '--hist', '--json', '-q']);
    const child = spawn(c, a, { stdio: ['ignore', 'pipe', 'pipe'] });
    const lp = { child, out: '', err: '' };
    lp.exited = new Promise((r) => child.on('close', r));
    child.stdout.on('data', (d) => { lp.out += d; });
    child.stderr.on('data', (d) => { lp.err = (lp.err + d).slice(-4000); });
    return lp;
  });
  await until(() => lps.every((lp) => /^READY$/m.test(lp.err) || lp.child.exitCode !== null), 60000, 'load ready');
  const t0 = Date.now();
  const c0 = servers.map((s) => cpuTicks(s.pid));
  const p0 = ingestPort ? await published(ingestPort) : 0;
  for (const lp of lps) lp.child.kill('SIGUSR1');
  await Promise.all(lps.map((lp) => lp.exited));
  const secs = (Date.now() - t0) / 1000;
  const c1 = servers.map((s) => cpuTicks(s.pid));
  const p1 = ingestPort ? await published(ingestPort) : 0;
  const reports = lps.map((lp, i) => {
    const line = lp.out.trim().split('\n').pop();
    if (!line?.startsWith('{')) throw new Error(`load ${i}: no report: ${lp.err.slice(-300)}`);
    return JSON.parse(line);
  });
  return {
    deliveries: reports.reduce((a, r) => a + r.updates_per_s, 0),
    connected: reports.reduce((a, r) => a + r.connected, 0),
    p50: reportsQuantileMs(reports, 0.5), p99: reportsQuantileMs(reports, 0.99),
    cpu: Object.fromEntries(servers.map((s, i) => [s.name, (c1[i] - c0[i]) / TICK_HZ / secs])),
    publishedPerS: ingestPort ? (p1 - p0) / secs : NaN,
    loadgenCpu: reports.reduce((a, r) => a + r.loadgen_cpu, 0),
  };
}

async function standalone(n, u) {
  const t = await tickerd('standalone', { feeds: sim(u) });
  await until(async () => (await symbolCount(t.port)) >= S, 10000, 'standalone symbols');
  try { return await measure([t.port, t.port], n, [t]); } finally { await stopAll(); }
}

async function cluster(n, u) {
  const rport = await freePort();
  const redis = run('redis-server', ['--port', String(rport), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], 'redis');
  await until(() => { try { return execFileSync('redis-cli', ['-p', String(rport), 'PING'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() === 'PONG'; } catch { return false; } }, 5000, 'redis');
  const shard = [`127.0.0.1:${rport}`];
  try {
    const ingest = await tickerd('ingest', { feeds: sim(u), cluster: { role: 'ingest', redis: shard } });
    const a = await tickerd('edge_a', { cluster: { role: 'edge', redis: shard } });
    const b = await tickerd('edge_b', { cluster: { role: 'edge', redis: shard } });
    for (const e of [a, b]) await until(async () => (await symbolCount(e.port)) >= S, 10000, `${e.name} symbols`);
    return await measure([a.port, b.port], n, [redis, ingest, a, b], ingest.port);
  } finally { await stopAll(); }
}

/** Redis and an ingest at U values/s, no edge: what the script costs Redis without any subscriber. */
async function redisOnly(u) {
  const rport = await freePort();
  const redis = run('redis-server', ['--port', String(rport), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], 'redis');
  await until(() => { try { return execFileSync('redis-cli', ['-p', String(rport), 'PING'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() === 'PONG'; } catch { return false; } }, 5000, 'redis');
  try {
    const ingest = await tickerd('ingest', { feeds: sim(u), cluster: { role: 'ingest', redis: [`127.0.0.1:${rport}`] } });
    await sleep(2000);
    const c0 = cpuTicks(redis.pid), p0 = await published(ingest.port), t0 = Date.now();
    await sleep(opt.duration * 1000);
    const secs = (Date.now() - t0) / 1000;
    const cpu = (cpuTicks(redis.pid) - c0) / TICK_HZ / secs, pub = (await published(ingest.port) - p0) / secs;
    return { cpu, publishedPerS: pub, perThousand: cpu / (pub / 1000) };
  } finally { await stopAll(); }
}

const median = (xs) => {
  const v = xs.filter(Number.isFinite).sort((x, y) => x - y);
  return v.length ? (v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2) : NaN;
};
const fmt = (x, d = 1) => (Number.isFinite(x) ? x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : '—');
const pct = (x) => (Number.isFinite(x) ? `${Math.round(x * 100)} %` : '—');

if (opt.redisOnly) {
  // node bench/cluster.mjs --redis-only 1000,5000 [--reps 3]: Redis CPU per 1,000 values/s with no edge
  for (const u of opt.redisOnly) {
    const rs = [];
    for (let r = 0; r < opt.reps; r++) rs.push(await redisOnly(u));
    log(JSON.stringify(rs));
    process.stdout.write(`| ${u} | ${fmt(median(rs.map((x) => x.publishedPerS)), 0)} | ${pct(median(rs.map((x) => x.cpu)))} | ${fmt(median(rs.map((x) => x.perThousand)) * 100, 2)} % |\n`);
  }
  process.exit(0);
}

const rows = [];
let when = new Date();
if (opt.report) {
  const saved = JSON.parse(fs.readFileSync(opt.report, 'utf8'));
  rows.push(...(Array.isArray(saved) ? saved : saved.rows));
  when = Array.isArray(saved) ? fs.statSync(opt.report).mtime : new Date(saved.when);
  opt.loads = rows.map((r) => [r.n, r.u]);
  opt.reps = rows[0].runs.cluster.length;
}
for (const [n, u] of opt.report ? [] : opt.loads) {
  const runs = { standalone: [], cluster: [] };
  for (let r = 0; r < opt.reps; r++) {
    for (const mode of r % 2 ? ['cluster', 'standalone'] : ['standalone', 'cluster']) {
      log(`bench/cluster: N=${n} U=${u} ${mode} run ${r + 1}/${opt.reps}`);
      const res = await (mode === 'cluster' ? cluster : standalone)(n, u);
      log(`  ${JSON.stringify(res)}`);
      runs[mode].push(res);
    }
  }
  rows.push({ n, u, runs });
}

const med = (runs, f) => median(runs.map(f));
let md = `Measured ${when.toISOString().slice(0, 16)}Z by \`node bench/cluster.mjs --loads ${opt.loads.map((l) => l.join('x')).join(',')} --duration ${opt.duration} --reps ${opt.reps}\` on ${os.cpus().length} × ${os.cpus()[0].model.split(' ').slice(0, 2).join(' ')} (shared with other engineers' builds and tests: medians of ${opt.reps} runs per setup, alternating). S = ${S} generated symbols, K = ${K} per client, coalescing 10 ms (the default) on every node; all server processes on CPU 0, the two load processes on CPU 1; ${opt.duration} s windows after a 2 s warm-up.\n\n`;
md += '| N | U/s | setup | deliveries/s | p50 ms | p99 ms | added p50 ms | added p99 ms | CPU: tickerd (standalone) or ingest + edges | Redis CPU | deliveries per server CPU-s (all processes) | values published to Redis/s | Redis CPU per 1,000 values/s |\n';
md += '|---|---|---|---|---|---|---|---|---|---|---|---|---|\n';
const total = (r) => Object.values(r.cpu).reduce((a, x) => a + x, 0);
for (const { n, u, runs } of rows) {
  const s50 = med(runs.standalone, (r) => r.p50), s99 = med(runs.standalone, (r) => r.p99);
  md += `| ${n.toLocaleString('en-US')} | ${u.toLocaleString('en-US')} | standalone | ${fmt(med(runs.standalone, (r) => r.deliveries), 0)} | ${fmt(s50, 2)} | ${fmt(s99, 2)} | | | ${pct(med(runs.standalone, (r) => r.cpu.standalone))} | | ${fmt(med(runs.standalone, (r) => r.deliveries / total(r)), 0)} | | |\n`;
  const c50 = med(runs.cluster, (r) => r.p50), c99 = med(runs.cluster, (r) => r.p99);
  const cpuT = med(runs.cluster, (r) => r.cpu.ingest + r.cpu.edge_a + r.cpu.edge_b);
  const cpuI = med(runs.cluster, (r) => r.cpu.ingest), cpuE = med(runs.cluster, (r) => (r.cpu.edge_a + r.cpu.edge_b) / 2);
  const rc = med(runs.cluster, (r) => r.cpu.redis), pub = med(runs.cluster, (r) => r.publishedPerS);
  const per = med(runs.cluster, (r) => r.cpu.redis / (r.publishedPerS / 1000));
  md += `| ${n.toLocaleString('en-US')} | ${u.toLocaleString('en-US')} | 1 ingest + 2 edges | ${fmt(med(runs.cluster, (r) => r.deliveries), 0)} | ${fmt(c50, 2)} | ${fmt(c99, 2)} | **${fmt(c50 - s50, 2)}** | ${fmt(c99 - s99, 2)} | ${pct(cpuT)} (ingest ${pct(cpuI)}, each edge ${pct(cpuE)}) | ${pct(rc)} | ${fmt(med(runs.cluster, (r) => r.deliveries / total(r)), 0)} | ${fmt(pub, 0)} | ${fmt(per * 100, 2)} % |\n`;
}
const raw = opt.report || path.join(os.tmpdir(), `tickerd-cluster-bench-${Date.now()}.json`);
if (!opt.report) fs.writeFileSync(raw, JSON.stringify({ when: when.toISOString(), rows }, null, 1));
md += `\nRaw runs: \`${raw}\` (not kept in the repository).\n`;
process.stdout.write(md);
if (opt.out) {
  const text = fs.readFileSync(opt.out, 'utf8');
  const re = /(<!-- BENCH:cluster -->\n)[\s\S]*?(<!-- \/BENCH:cluster -->)/;
  if (!re.test(text)) { log(`no BENCH:cluster markers in ${opt.out}`); process.exit(2); }
  fs.writeFileSync(opt.out, text.replace(re, `$1${md}$2`));
  log(`written to ${opt.out}`);
}
fs.rmSync(tmp, { recursive: true, force: true });
