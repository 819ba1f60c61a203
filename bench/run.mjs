#!/usr/bin/env node
// bench/run.mjs — the benchmark runner: tickerd and its peers (bench/peers/) side by side in one run.
//
// Servers run pinned to CPU 0, tickerd-loadgen processes to CPU 1. Modes:
//   node bench/run.mjs --peers [--out docs/performance.md]
//                                    the issue-6 matrix against the ws and Socket.IO peers, written between
//                                    the BENCH:peers markers (what bench/run runs)
//   node bench/run.mjs --sio [--out docs/performance.md]
//                                    Socket.IO clients: tickerd's /socket.io/ against the Socket.IO peer
//   node bench/run.mjs --quick       each server for a few seconds (ctest bench_quick): proves the bench
//                                    works, judges no speed
//   node bench/run.mjs [--n 1000,5000,10000] [--flush 10,50] [--out FILE]
//                                    tickerd alone (the issue-2 core matrix), BENCH:core markers
// Development: --duration SEC, --n LIST, --steps LIST (saturation U), --big-n N, --idle-n N, --stall-n N,
// --only side,fd,saturation,idle,stall,history. Raw results go to a JSON file in the temp dir (printed);
// `--report FILE [--out …]` renders the tables of such a file again without running anything.
// Needs build/tickerd and build/bench/tickerd-loadgen (or TICKERD_BIN / TICKERD_LOADGEN); the peers are
// installed with npm ci into bench/peers/node_modules when missing (a peer that cannot be is reported).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fullMatrix, quickMatrix, sioMatrix, runOne, K, S } from './lib/matrix.mjs';
import * as rep from './lib/report.mjs';
import { BIN, LOADGEN, TMP, fdHardLimit, installPeers, peerVersion, probeHistory } from './lib/servers.mjs';

const log = (m) => process.stderr.write(`${m}\n`);
const list = (v) => v.split(',').map(Number);

function args() {
  const a = { mode: 'core', out: null, m: {} };
  const v = process.argv.slice(2);
  const num = { '--duration': 'duration', '--big-n': 'bigN', '--idle-n': 'idleN', '--stall-n': 'stallN' };
  for (let i = 0; i < v.length; i++) {
    const next = () => v[++i];
    if (num[v[i]]) a.m[num[v[i]]] = Number(next());
    else if (v[i] === '--quick') a.mode = 'quick';
    else if (v[i] === '--peers') a.mode = 'peers';
    else if (v[i] === '--sio') a.mode = 'sio';
    else if (v[i] === '--out') a.out = next();
    else if (v[i] === '--n') a.m.n = list(next());
    else if (v[i] === '--steps') a.m.steps = list(next());
    else if (v[i] === '--flush') a.m.flush = list(next());
    else if (v[i] === '--only') a.m.only = next().split(',');
    else if (v[i] === '--report') { a.mode = 'report'; a.raw = next(); }
    else { log(`bench/run.mjs: unknown argument ${v[i]}`); process.exit(2); }
  }
  return a;
}

function machine() {
  let cpu = '';
  try { cpu = /model name\s*:\s*(.*)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))[1]; } catch { /* ignore */ }
  return `${os.cpus().length} × ${cpu}`;
}

/** Replaces the text between <!-- BENCH:name --> and <!-- /BENCH:name --> in file. */
function writeSection(file, name, md) {
  const text = fs.readFileSync(file, 'utf8');
  const re = new RegExp(`(<!-- BENCH:${name} -->\\n)[\\s\\S]*?(<!-- /BENCH:${name} -->)`);
  if (!re.test(text)) { log(`bench/run.mjs: no BENCH:${name} markers in ${file}`); process.exit(2); }
  fs.writeFileSync(file, text.replace(re, (_, a, b) => `${a}${md}${b}`));
}

function saveRaw(res, ctx, started) {
  const file = path.join(TMP, 'results.json');
  fs.writeFileSync(file, JSON.stringify({ res, ctx: { peers: ctx.peers, history: ctx.history }, started, ended: Date.now() }, null, 1));
  log(`bench: raw results in ${file}`);
}

/** The N of an experiment's rows, for its heading. */
const n = (rows) => (rows[0]?.spec.n ?? 0).toLocaleString('en-US');

function peersMarkdown(res, ctx, started, ended = Date.now()) {
  const best = rep.saturationBest(res.saturation);
  const mins = ((ended - started) / 60000).toFixed(1);
  const v = `node ${process.version.slice(1)}, ws ${ctx.peers.ws ?? 'not installed'}, socket.io ${ctx.peers.socketio ?? 'not installed'}`;
  return `Run ${new Date(started).toISOString().slice(0, 16)}Z on ${machine()} (${mins} min, \`bench/run\`); ${v}. `
    + `S = ${S}, K = ${K}; server on CPU 0, load tool on CPU 1; each row measured after a 2 s warm-up for 10 s `
    + '(saturation steps and the 50k run 5 s, the stall run 14 s). tickerd rows without "coalescing 10 ms" run with '
    + '`normalizer.flush_interval_ms: 0`. "Others on CPU 0 / 1": what other processes took of the two cores '
    + 'during the window (the machine is shared; a server that did not get its core shows less than 100 % CPU).\n\n'
    + `#### Targets\n\n${rep.targets(res)}\n\n`
    + `#### Side by side, U = 1,000 updates/s\n\n${rep.sideTable(res.side)}\n\n${rep.ratioTable(res.side)}\n\n`
    + `#### Saturation search, N = 1,000\n\n${rep.saturationSummary(best)}\n\n${rep.saturationTable(res.saturation)}\n\n`
    + `#### ${n(res.fd)} connections requested (descriptor limit ${n([{ spec: { n: fdHardLimit() } }])} per process), U = 1,000/s\n\n`
    + `${rep.fdTable(res.fd, best)}\n\n`
    + `#### Idle memory, ${n(res.idle)} clients subscribed to ${K} symbols, U = 1/s\n\n${rep.idleTable(res.idle)}\n\n`
    + `#### Slow consumers: 20 % of ${n(res.stall)} clients stop reading for 10 s, U = 1,000/s\n\n${rep.stallTable(res.stall, res.side)}\n\n`
    + `#### History on vs off (coalescing 10 ms), U = 1,000/s\n\n${rep.historyTable(res.history)}\n`;
}

/** A saved results.json; the run's start and end from its files when it does not say (older format). */
function loadRaw(file) {
  const saved = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (saved.res) return saved;
  const dir = path.dirname(file);
  const times = fs.readdirSync(dir).map((f) => fs.statSync(path.join(dir, f)).mtimeMs);
  const peers = { ws: peerVersion('ws'), socketio: peerVersion('socket.io') };
  return { res: saved, ctx: { peers }, started: Math.min(...times), ended: Math.max(...times) };
}

async function context() {
  const peers = installPeers(log);
  const history = await probeHistory();
  if (!history.supported) log(`bench: tickerd does not accept the history key: history rows pending (${history.why})`);
  return { log, peers, history };
}

const failedRow = (r) => !!r.error || (!r.skipped && (r.failed > 0 || !(r.updates_per_s > 0)));

async function main() {
  const a = args();
  if (a.mode === 'report') { // re-render the tables of a saved run (its results.json)
    fs.rmSync(TMP, { recursive: true, force: true }); // nothing to keep from this invocation
    const { res, ctx, started, ended } = loadRaw(a.raw);
    const md = peersMarkdown(res, ctx, started, ended);
    console.log(md);
    if (a.out) writeSection(a.out, 'peers', md);
    return;
  }
  for (const f of [BIN, LOADGEN]) if (!fs.existsSync(f)) { log(`bench/run.mjs: missing ${f} (build first)`); process.exit(2); }
  const started = Date.now();
  const ctx = await context();
  if (a.mode === 'quick') {
    const rows = await quickMatrix(ctx);
    console.log(rep.sideTable(rows));
    const bad = rows.filter(failedRow);
    if (bad.length) { log(`bench: quick run failed: ${bad.map((r) => r.label).join(', ')}`); process.exit(1); }
    return;
  }
  if (a.mode === 'sio') {
    const rows = await sioMatrix(ctx, a.m);
    const md = `Run ${new Date(started).toISOString().slice(0, 16)}Z on ${machine()}; S=${S}, K=${K}, U=1000, `
      + `${a.m.duration ?? 8} s measured per row; the same load tool in Socket.IO mode (WebSocket transport) `
      + `against both; server on CPU 0, load tool on CPU 1.\n\n${rep.sideTable(rows)}\n`;
    console.log(md);
    if (a.out) writeSection(a.out, 'sio', md);
    if (rows.some(failedRow)) process.exit(1);
    return;
  }
  if (a.mode === 'core') {
    const rows = [];
    for (const flush of a.m.flush ?? [10]) {
      for (const n of a.m.n ?? [1000, 5000, 10000]) rows.push(await runOne(ctx, { server: 'tickerd', flush, n, k: K, s: S, u: 1000, duration: a.m.duration ?? 10 }));
    }
    const md = `Run ${new Date(started).toISOString().slice(0, 16)}Z on ${machine()}; S=${S}, K=${K}, ${a.m.duration ?? 10} s measured per row `
      + `after a 2 s warm-up; server on CPU 0, load tool on CPU 1.\n\n${rep.coreTable(rows)}\n`;
    console.log(md);
    if (a.out) writeSection(a.out, 'core', md);
    if (rows.some(failedRow)) process.exit(1);
    return;
  }
  const res = await fullMatrix(ctx, a.m);
  saveRaw(res, ctx, started);
  const md = peersMarkdown(res, ctx, started);
  console.log(md);
  if (a.out) writeSection(a.out, 'peers', md);
}

await main();
