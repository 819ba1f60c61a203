#!/usr/bin/env node
// bench/run.mjs — the core fan-out benchmark. Starts tickerd (pinned to CPU 0) on a sim feed of S
// generated symbols at U updates/s, drives it with tickerd-loadgen (pinned to CPU 1) at N connections
// × K symbols, samples the server's CPU and RSS from /proc, and prints a markdown table (optionally
// written between the BENCH markers of a file).
//
//   node bench/run.mjs [--quick] [--out docs/performance.md] [--n 1000,5000,10000] [--u 1000]
//                      [--flush 10] [--duration 10]
// Needs: build/tickerd, build/bench/tickerd-loadgen (or TICKERD_BIN / TICKERD_LOADGEN).
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = process.env.TICKERD_BIN || path.join(ROOT, 'build/tickerd');
const LOADGEN = process.env.TICKERD_LOADGEN || path.join(ROOT, 'build/bench/tickerd-loadgen');
const TICK = 100; // USER_HZ: /proc/<pid>/stat times are in 1/100 s

function args() {
  const a = { quick: false, out: null, n: [1000, 5000, 10000], u: 1000, s: 100, k: 10, flush: [10], duration: 10 };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i++) {
    const next = () => v[++i];
    switch (v[i]) {
      case '--quick': a.quick = true; break;
      case '--out': a.out = next(); break;
      case '--n': a.n = next().split(',').map(Number); break;
      case '--u': a.u = Number(next()); break;
      case '--s': a.s = Number(next()); break;
      case '--k': a.k = Number(next()); break;
      case '--flush': a.flush = next().split(',').map(Number); break;
      case '--duration': a.duration = Number(next()); break;
      default: console.error(`bench/run.mjs: unknown argument ${v[i]}`); process.exit(2);
    }
  }
  if (a.quick) Object.assign(a, { n: [200], duration: 3, flush: [10] });
  return a;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const cpuTicks = (pid) => {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime
};
const statusKiB = (pid, key) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const pin = (cpu, cmd, argv) => (os.cpus().length > 1 ? ['taskset', ['-c', String(cpu), cmd, ...argv]] : [cmd, argv]);

async function startServer(cfg) {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tickerd-bench-')), 'bench.json');
  fs.writeFileSync(file, JSON.stringify(cfg));
  const [cmd, argv] = pin(0, BIN, ['-c', file, '--port', '0', '--log-level', 'warn']);
  const p = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  // --log-level warn hides the listening line: ask /proc for the listening socket instead.
  p.stderr.on('data', (d) => { err += d; });
  for (let i = 0; i < 100; i++) {
    await sleep(50);
    const port = listeningPort(p.pid);
    if (port) return { p, port, pid: serverPid(p.pid) };
    if (p.exitCode !== null) break;
  }
  throw new Error(`tickerd did not start: ${err}`);
}

// taskset execs the binary, so the pid is the server's.
const serverPid = (pid) => pid;
function listeningPort(pid) {
  try {
    const inodes = new Set(fs.readdirSync(`/proc/${pid}/fd`).map((fd) => {
      try { return /socket:\[(\d+)\]/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1]; } catch { return null; }
    }).filter(Boolean));
    for (const line of fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[3] === '0A' && inodes.has(f[9])) return parseInt(f[1].split(':')[1], 16);
    }
  } catch { /* not up yet */ }
  return 0;
}

async function runOne({ n, u, s, k, flush, duration }) {
  const cfg = {
    server: { max_connections: 100000 },
    normalizer: { flush_interval_ms: flush },
    feeds: [{ type: 'sim', name: 'sim', rate: u, seed: 1, include_defaults: false, generated_symbols: s }],
  };
  const srv = await startServer(cfg);
  await sleep(300);
  const idleRss = statusKiB(srv.pid, 'VmRSS');
  const warmup = 2;
  const [cmd, argv] = pin(1, LOADGEN, ['--url', `ws://127.0.0.1:${srv.port}/ws`, '-n', String(n), '-k', String(k),
    '-s', String(s), '--duration', String(duration), '--warmup', String(warmup), '--json', '-q']);
  const lg = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  lg.stdout.on('data', (d) => { out += d; });
  lg.stderr.on('data', (d) => { err += d; });
  const samples = []; // [ms, ticks, rssKiB]
  const timer = setInterval(() => {
    try { samples.push([Date.now(), cpuTicks(srv.pid), statusKiB(srv.pid, 'VmRSS')]); } catch { /* exiting */ }
  }, 250);
  const code = await new Promise((r) => lg.on('exit', r));
  clearInterval(timer);
  const end = Date.now();
  const peak = statusKiB(srv.pid, 'VmHWM');
  srv.p.kill('SIGTERM');
  await new Promise((r) => srv.p.on('exit', r));
  const line = out.trim().split('\n').pop();
  if (!line || !line.startsWith('{')) throw new Error(`loadgen exited ${code}: ${err}`);
  const r = JSON.parse(line);
  // Server CPU over the measured window: the last `duration` seconds before the load tool exited.
  const win = samples.filter(([t]) => t >= end - duration * 1000 - 100);
  const cpu = win.length > 1 ? ((win.at(-1)[1] - win[0][1]) / TICK) / ((win.at(-1)[0] - win[0][0]) / 1000) : NaN;
  const loadedRss = Math.max(...win.map((x) => x[2]));
  return { n, u, s, k, flush, ...r, code, cpu, idleRss, loadedRss, peak,
    offered: u * (n * k / s), perConnKB: (loadedRss - idleRss) / n * 1.024 };
}

const fmt = (x, d = 0) => (Number.isFinite(x) ? x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : '—');

function table(rows) {
  const head = '| N | U/s | flush ms | offered deliveries/s | delivered updates/s | frames/s | updates/frame | p50 ms | p99 ms | p999 ms | max ms | server CPU | server RSS (peak) | RSS/conn | connect errors |\n'
    + '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|';
  return [head, ...rows.map((r) => `| ${fmt(r.n)} | ${fmt(r.u)} | ${r.flush} | ${fmt(r.offered)} | ${fmt(r.updates_per_s)} | ${fmt(r.frames_per_s)} | ${fmt(r.updates_per_frame, 2)} | ${fmt(r.p50_ms, 1)} | ${fmt(r.p99_ms, 1)} | ${fmt(r.p999_ms, 1)} | ${fmt(r.max_ms, 1)} | ${fmt(r.cpu * 100)} % | ${fmt(r.peak / 1024, 1)} MiB | ${fmt(r.perConnKB, 2)} KB | ${r.connect_errors} |`)].join('\n');
}

const a = args();
for (const f of [BIN, LOADGEN]) if (!fs.existsSync(f)) { console.error(`bench/run.mjs: missing ${f} (build first)`); process.exit(2); }
const rows = [];
for (const flush of a.flush) {
  for (const n of a.n) {
    process.stderr.write(`bench: N=${n} K=${a.k} S=${a.s} U=${a.u} flush=${flush} ms ... `);
    const r = await runOne({ n, u: a.u, s: a.s, k: a.k, flush, duration: a.duration });
    process.stderr.write(`${fmt(r.updates_per_s)} upd/s, p99 ${fmt(r.p99_ms, 1)} ms, cpu ${fmt(r.cpu * 100)} %\n`);
    rows.push(r);
  }
}
let cpuModel = '';
try { cpuModel = /model name\s*:\s*(.*)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))[1]; } catch { /* ignore */ }
const md = `Run ${new Date().toISOString().slice(0, 16)}Z on ${os.cpus().length} × ${cpuModel}; `
  + `S=${a.s}, K=${a.k}, ${a.duration} s measured per row after a 2 s warm-up; server on CPU 0, load tool on CPU 1.\n\n${table(rows)}\n`;
console.log(md);
if (a.out) {
  const text = fs.readFileSync(a.out, 'utf8');
  const re = /(<!-- BENCH:core -->\n)[\s\S]*?(<!-- \/BENCH:core -->)/;
  if (!re.test(text)) { console.error(`bench/run.mjs: no BENCH:core markers in ${a.out}`); process.exit(2); }
  fs.writeFileSync(a.out, text.replace(re, `$1${md}$2`));
}
const bad = rows.filter((r) => r.code !== 0 || r.connect_errors > 0 || !(r.updates_per_s > 0));
if (bad.length) { console.error('bench: a run failed (connect errors, loadgen failure, or nothing delivered)'); process.exit(1); }
