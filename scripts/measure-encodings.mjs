#!/usr/bin/env node
// measure-encodings.mjs — bytes per update and server CPU per update for the frame encodings: JSON
// (tickerd.json), binary (tickerd.bin), each with and without permessage-deflate. The figures in
// docs/performance.md#encodings come from this script.
//
// Each mode gets a fresh tickerd on CPU 0 (sim feed: S generated symbols, U updates/s), and this process on
// CPU 1 opens N WebSocket connections subscribed to K symbols each (connection i takes symbols i*K .. i*K+K-1
// mod S, as in the bench). After a warm-up it measures for a window:
//   - delivered updates and frames: the server's /metrics (tickerd_updates_out_total, tickerd_frames_out_total)
//   - payload bytes: tickerd_bytes_out_total (what tickerd hands to lws_write, before compression)
//   - wire bytes: the TCP bytes the clients' sockets read (WebSocket headers and compression included)
//   - server CPU: utime + stime from /proc/PID/stat; RSS per connection from VmRSS before and after connecting
//   - this process's CPU, to show the load side was not the bottleneck.
// The clients only count; they do not parse or decode (binary frames are checked by the integration tests).
//
// Usage (from the repository root, after building and `cd tests && npm ci`):
//   node scripts/measure-encodings.mjs [--bin build/tickerd] [--n 1000] [--u 1000] [--s 100] [--k 10]
//       [--flush 10] [--secs 10] [--warmup 3] [--modes json,bin,json+deflate,bin+deflate] [--repeat 1]
// Prints one markdown table row per run. Server CPU per update depends on how many updates share a frame (one
// write each): a --flush well above the time one pass over the clients takes (e.g. 100 ms) makes every client
// get one frame per flush, so the encodings are compared at the same batching even on a busy machine.
import { spawn, execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

const require = createRequire(new URL('../tests/package.json', import.meta.url));
const WebSocket = require('ws');

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]]);
  return acc;
}, []));
const opt = {
  bin: args.bin ?? 'build/tickerd',
  n: Number(args.n ?? 1000),
  u: Number(args.u ?? 1000),
  flush: Number(args.flush ?? 10),
  s: Number(args.s ?? 100),
  k: Number(args.k ?? 10),
  secs: Number(args.secs ?? 10),
  warmup: Number(args.warmup ?? 3),
  modes: (args.modes ?? 'json,bin,json+deflate,bin+deflate').split(','),
  repeat: Number(args.repeat ?? 1),
};
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString());
const sym = (i) => `G${String(i + 1).padStart(5, '0')}-USD`;

function pinSelf(cpu) {
  try { execFileSync('taskset', ['-pc', String(cpu), String(process.pid)], { stdio: 'ignore' }); } catch { /* no taskset */ }
}

async function startServer(deflate) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tickerd-enc-'));
  const config = {
    server: { max_connections: 19000 },
    normalizer: { max_symbols: Math.max(opt.s, 100), flush_interval_ms: opt.flush },
    history: { enabled: false }, // its writer thread would count as server CPU
    ...(deflate ? { broadcast: { permessage_deflate: true } } : {}),
    feeds: [{ type: 'sim', name: 'sim', rate: opt.u, seed: 1, include_defaults: false, generated_symbols: opt.s }],
  };
  fs.writeFileSync(path.join(dir, 'tickerd.json'), JSON.stringify(config));
  const proc = spawn('taskset', ['-c', '0', opt.bin, '-c', path.join(dir, 'tickerd.json'), '--port', '0'],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const port = await new Promise((resolve, reject) => {
    proc.stderr.on('data', (d) => {
      err += d;
      const m = /listening on http:\/\/[^\s/]+:(\d+)\//.exec(err);
      if (m) resolve(Number(m[1]));
    });
    proc.once('exit', (code) => reject(new Error(`tickerd exited (${code}):\n${err}`)));
  });
  return { proc, port, dir };
}

async function stopServer(srv) {
  const exited = new Promise((r) => srv.proc.once('exit', r));
  srv.proc.kill('SIGTERM');
  await exited;
  fs.rmSync(srv.dir, { recursive: true, force: true });
}

function serverCpuTicks(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return Number(rest[11]) + Number(rest[12]); // utime, stime (fields 14 and 15)
}

const rssKiB = (pid) => Number(/^VmRSS:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);

function metrics(port) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => {
        const m = {};
        for (const line of body.split('\n')) {
          const x = /^(tickerd_[a-z_]+) (\S+)$/.exec(line);
          if (x) m[x[1]] = Number(x[2]);
        }
        resolve(m);
      });
    }).on('error', reject);
  });
}

/** Open one client subscribed to its K symbols; resolves once the ack came. */
function openClient(port, i, mode, counters) {
  const protocols = mode.startsWith('bin') ? ['tickerd.bin'] : ['tickerd.json'];
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, protocols, {
    perMessageDeflate: mode.endsWith('+deflate'),
    skipUTF8Validation: true, // the clients only count: keep text frames as cheap to receive as binary ones
  });
  const symbols = Array.from({ length: opt.k }, (_, j) => sym((i * opt.k + j) % opt.s));
  return new Promise((resolve, reject) => {
    ws.once('error', reject);
    ws.once('open', () => {
      if (mode.endsWith('+deflate') && !ws.extensions.startsWith('permessage-deflate')) {
        reject(new Error('permessage-deflate was not negotiated'));
        return;
      }
      ws.send(JSON.stringify({ op: 'subscribe', symbols, id: i }));
    });
    ws.on('message', (data, isBinary) => {
      counters.messages++;
      counters.payload += data.length;
      if (!isBinary && !ws.acked) {
        ws.acked = true;
        resolve(ws);
      }
    });
  });
}

async function run(mode) {
  const srv = await startServer(mode.endsWith('+deflate'));
  await sleep(1000);
  const rss0 = rssKiB(srv.proc.pid);
  const counters = { messages: 0, payload: 0 };
  const clients = [];
  for (let i = 0; i < opt.n; i += 100) {
    const batch = [];
    for (let j = i; j < Math.min(opt.n, i + 100); j++) batch.push(openClient(srv.port, j, mode, counters));
    clients.push(...await Promise.all(batch));
  }
  await sleep(opt.warmup * 1000);
  const wire = () => clients.reduce((a, c) => a + c._socket.bytesRead, 0);
  const m0 = await metrics(srv.port);
  const t0 = process.hrtime.bigint();
  const cpu0 = serverCpuTicks(srv.proc.pid);
  const me0 = process.cpuUsage();
  const w0 = wire();
  const p0 = counters.payload;
  await sleep(opt.secs * 1000);
  const w1 = wire();
  const p1 = counters.payload;
  const me1 = process.cpuUsage(me0);
  const cpu1 = serverCpuTicks(srv.proc.pid);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const m1 = await metrics(srv.port);
  const rss1 = rssKiB(srv.proc.pid);
  for (const c of clients) c.terminate();
  await stopServer(srv);

  const d = (k) => m1[k] - m0[k];
  const updates = d('tickerd_updates_out_total');
  const frames = d('tickerd_frames_out_total');
  const cpuSecs = (cpu1 - cpu0) / CLK_TCK;
  return {
    mode,
    offeredPerSec: (d('tickerd_updates_published_total') * opt.n * opt.k) / opt.s / secs,
    conflatedPerSec: d('tickerd_updates_conflated_total') / secs,
    updatesPerSec: updates / secs,
    framesPerSec: frames / secs,
    perFrame: updates / frames,
    payloadPerUpdate: d('tickerd_bytes_out_total') / updates,
    // The clients' wire/payload ratio over their own window, applied to the server's payload per update (the
    // two windows differ by the /metrics round trips).
    wirePerUpdate: ((w1 - w0) / (p1 - p0)) * (d('tickerd_bytes_out_total') / updates),
    serverCpu: cpuSecs / secs,
    usPerUpdate: (cpuSecs * 1e6) / updates,
    rssPerConnKB: ((rss1 - rss0) * 1.024) / opt.n,
    clientCpu: (me1.user + me1.system) / 1e6 / secs,
  };
}

const fmt = (x, d = 0) => x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });

pinSelf(1);
console.log(`N=${opt.n} K=${opt.k} S=${opt.s} U=${opt.u}/s flush ${opt.flush} ms, ${opt.secs} s measured after ` +
  `${opt.warmup} s, server on CPU 0, clients on CPU 1 (${os.cpus()[0].model}); load average ` +
  `${os.loadavg()[0].toFixed(1)} at start`);
console.log('');
const header = () => {
  console.log('| encoding | delivered updates/s | frames/s | updates/frame | payload B/update | wire B/update | ' +
    'server CPU | server µs/update | server RSS/conn | client CPU |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
};
const row = (x, label = x.mode) => console.log(`| ${label} | ${fmt(x.updatesPerSec)} | ${fmt(x.framesPerSec)} | ` +
  `${fmt(x.perFrame, 2)} | ${fmt(x.payloadPerUpdate, 1)} | ${fmt(x.wirePerUpdate, 1)} | ` +
  `${fmt(100 * x.serverCpu)} % | ${fmt(x.usPerUpdate, 2)} | ${fmt(x.rssPerConnKB, 1)} KB | ${fmt(100 * x.clientCpu)} % |`);
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[(s.length - 1) >> 1]; };

header();
const runs = [];
for (let r = 0; r < opt.repeat; r++) {
  for (const mode of opt.modes) { // modes alternate, so a noisy minute spreads over all of them
    const x = await run(mode);
    runs.push(x);
    row(x);
    if (process.env.DEBUG) console.log(x);
  }
}
if (opt.repeat > 1) {
  console.log(`\nMedian of ${opt.repeat} runs per encoding (each column on its own):\n`);
  header();
  for (const mode of opt.modes) {
    const mine = runs.filter((x) => x.mode === mode);
    const m = Object.fromEntries(Object.keys(mine[0]).filter((k) => k !== 'mode')
      .map((k) => [k, median(mine.map((x) => x[k]))]));
    row(m, mode);
  }
}
process.exit(0); // sockets the server closed under the clients may still hold the loop
