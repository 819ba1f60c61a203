#!/usr/bin/env node
// bench/tls.mjs — what TLS on the listener costs (issue 11): the same load against tickerd over ws:// and
// over wss:// (server.tls with a P-256 certificate made here by the openssl CLI), measured on the server:
// deliveries (updates received by clients) per server CPU-second, and RSS per idle connection.
//
//   node bench/tls.mjs [--n 1000] [--duration 10] [--rate 20] [--out docs/performance.md]
//
// tickerd runs pinned to CPU 0, this process (the Node `ws` clients) to CPU 1 (taskset). The C loadgen has
// no TLS, so the clients are Node's: the figures are the server's own (its /proc CPU ticks and RSS), the
// client side only has to keep up (it reports the deliveries it counted). With --out the table is written
// between the BENCH:tls markers.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(ROOT, 'tests', 'package.json'));
const WebSocket = require('ws');
const BIN = process.env.TICKERD_BIN || path.join(ROOT, 'build/tickerd');
const TICK_HZ = 100;
const log = (m) => process.stderr.write(`${m}\n`);

const opt = { n: [1000], duration: 10, rate: 20, out: null, k: 10 };
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i], v = () => process.argv[++i];
  if (a === '--n') opt.n = v().split(',').map(Number);
  else if (a === '--duration') opt.duration = Number(v());
  else if (a === '--rate') opt.rate = Number(v());
  else if (a === '--out') opt.out = v();
  else { log(`bench/tls.mjs: unknown argument ${a}`); process.exit(2); }
}

const cpuTicks = (pid) => {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(f[11]) + Number(f[12]);
};
const rssKiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tickerd-tls-bench-'));
const cert = path.join(tmp, 'c.pem'), key = path.join(tmp, 'k.pem');
execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key,
  '-out', cert, '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
const ca = fs.readFileSync(cert);
const SYMBOLS = ['BTC-USD', 'ETH-USD', 'SOL-USD', 'AAPL-USD', 'MSFT-USD', 'EUR-USD', 'GBP-USD', 'USD-JPY', 'XRP-USD', 'ADA-USD'];

async function startTickerd(tls, n) {
  const cfgPath = path.join(tmp, `tickerd-${tls ? 'tls' : 'plain'}.json`);
  fs.writeFileSync(cfgPath, JSON.stringify({
    server: { max_connections: n + 100, event_loop: 'libuv', ...(tls ? { tls: { cert, key } } : {}) },
    history: { enabled: false },
    limits: { subscribe_timeout_ms: 0 },
    feeds: [{ type: 'sim', name: 'sim', rate: opt.rate, seed: 7 }],
  }));
  const argv = ['-c', cfgPath, '--port', '0', '--log-level', 'warn'];
  const proc = os.cpus().length > 1 ? spawn('taskset', ['-c', '0', BIN, ...argv], { stdio: ['ignore', 'ignore', 'pipe'] })
    : spawn(BIN, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
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

/** N clients, each subscribed to K symbols; counts the updates they receive. */
async function openClients(srv, tls, n) {
  const stats = { deliveries: 0, frames: 0 };
  const clients = [];
  for (let i = 0; i < n; i += 200) {
    const batch = Array.from({ length: Math.min(200, n - i) }, (_, j) => new Promise((resolve, reject) => {
      const ws = new WebSocket(`${tls ? 'wss' : 'ws'}://127.0.0.1:${srv.port}/ws`, { ca, perMessageDeflate: false });
      ws.on('open', () => {
        const syms = Array.from({ length: opt.k }, (_, s) => SYMBOLS[(i + j + s) % SYMBOLS.length]);
        ws.send(JSON.stringify({ op: 'subscribe', symbols: syms }));
        resolve(ws);
      });
      ws.on('message', (data) => {
        stats.frames++;
        // one update per "seq": counting is cheaper than parsing every frame
        for (let p = data.indexOf('"seq"'); p >= 0; p = data.indexOf('"seq"', p + 5)) stats.deliveries++;
      });
      ws.on('error', reject);
    }));
    clients.push(...await Promise.all(batch));
  }
  return { clients, stats };
}

async function measure(tls, n) {
  const srv = await startTickerd(tls, n);
  await sleep(1000);
  const base = rssKiB(srv.proc.pid);
  const t0 = Date.now();
  const { clients, stats } = await openClients(srv, tls, n);
  const connectMs = Date.now() - t0;
  await sleep(2000); // snapshots out, steady state
  const rss = rssKiB(srv.proc.pid);
  const d0 = stats.deliveries, c0 = cpuTicks(srv.proc.pid), w0 = Date.now();
  await sleep(opt.duration * 1000);
  const deliveries = stats.deliveries - d0, cpuS = (cpuTicks(srv.proc.pid) - c0) / TICK_HZ, wallS = (Date.now() - w0) / 1000;
  for (const c of clients) c.terminate();
  // a second round on the same process: what a connection costs once the allocator holds the first
  // round's handshake-time memory (the first round's figure includes that burst)
  await sleep(1500);
  const rssGone = rssKiB(srv.proc.pid);
  const again = await openClients(srv, tls, n);
  await sleep(2000);
  const rss2 = rssKiB(srv.proc.pid);
  for (const c of again.clients) c.terminate();
  srv.proc.kill('SIGTERM');
  await new Promise((r) => srv.proc.once('exit', r));
  const r = {
    mode: tls ? 'wss (TLS 1.3)' : 'ws', n, connectMs,
    rssPerConnKiB: (rss - base) / n, rss2PerConnKiB: (rss2 - rssGone) / n, deliveriesPerS: deliveries / wallS, cpuPct: 100 * cpuS / wallS,
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
let md = `Measured ${new Date().toISOString().slice(0, 10)} by \`node bench/tls.mjs --n ${opt.n.join(',')} --duration ${opt.duration} --rate ${opt.rate}\`: `
  + `sim feed at ${opt.rate} updates/s over 20 symbols, each client subscribed to ${opt.k}, libuv loop, tickerd on CPU 0, `
  + `the Node \`ws\` clients on CPU 1; ${os.cpus().length} × ${os.cpus()[0].model}.\n\n`
  + '| N | transport | deliveries/s | server CPU | deliveries per server CPU-s | µs CPU per delivery | RSS per connection, first round | second round | connect N |\n'
  + '|---|---|---|---|---|---|---|---|---|\n';
for (const [p, t] of rows) {
  for (const r of [p, t])
    md += `| ${r.n} | ${r.mode} | ${f(r.deliveriesPerS)} | ${f(r.cpuPct, 1)} % | ${f(r.deliveriesPerCpuS)} | ${f(r.usPerDelivery, 2)} | ${f(r.rssPerConnKiB, 1)} KiB | ${f(r.rss2PerConnKiB, 1)} KiB | ${r.connectMs} ms |\n`;
  md += `| ${p.n} | **TLS ÷ plain** | | | | **${f(t.usPerDelivery / p.usPerDelivery, 2)}×** | **${f(t.rssPerConnKiB / p.rssPerConnKiB, 2)}×** | **${f(t.rss2PerConnKiB / p.rss2PerConnKiB, 2)}×** | |\n`;
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
