// bench/lib/load.mjs — one measured run against a server that is already listening.
//
// Owns: splitting N connections over several tickerd-loadgen processes on CPU 1 (each process has its own
// 20,000-descriptor limit), starting their measurement together (each prints READY after its warm-up;
// one SIGUSR1 to all starts the window), sampling the server's CPU and RSS from /proc during the window,
// and merging the processes' JSON reports and raw latency histograms into one result.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { LOADGEN, pinned, sleep } from './servers.mjs';

const TICK_HZ = 100; // USER_HZ: /proc/<pid>/stat times are in 1/100 s
export const CONNS_PER_PROCESS = 19000; // below the 20,000 fd hard limit, with room for lws' own

export const procStat = (pid) => {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime, all threads
};
export const statusKiB = (pid, key) => {
  try {
    return Number(new RegExp(`${key}:\\s+(\\d+)`).exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
  } catch { return NaN; }
};

/* ---------------------------------------------------------------- histograms (as in loadgen.c) */

function bucketValue(i, subBits) {
  const sub = 2 ** subBits;
  if (i < sub) return i;
  const e = Math.floor(i / sub) + subBits - 1;
  const width = 2 ** (e - subBits);
  return (sub + (i % sub)) * width + (width - 1) / 2;
}

/** Merges the processes' {max_us, b: [[bucket, count]]} histograms. */
export function mergeHists(hists) {
  const b = new Map();
  let max = 0;
  for (const h of hists.filter(Boolean)) {
    max = Math.max(max, h.max_us);
    for (const [i, c] of h.b) b.set(i, (b.get(i) || 0) + c);
  }
  return { max, buckets: [...b.entries()].sort((x, y) => x[0] - y[0]), count: [...b.values()].reduce((a, c) => a + c, 0) };
}

/** Value at quantile q in ms (the exact max for the last rank), like hist_quantile() in loadgen.c. */
export function quantileMs(h, q, subBits) {
  if (!h.count) return NaN;
  const rank = Math.max(1, Math.ceil(q * h.count));
  if (rank >= h.count) return h.max / 1000;
  let seen = 0;
  for (const [i, c] of h.buckets) {
    seen += c;
    if (seen >= rank) return Math.min(bucketValue(i, subBits), h.max) / 1000;
  }
  return h.max / 1000;
}

const latency = (h, subBits) => ({
  p50: quantileMs(h, 0.5, subBits), p99: quantileMs(h, 0.99, subBits),
  p999: quantileMs(h, 0.999, subBits), max: h.count ? h.max / 1000 : NaN, samples: h.count,
});

/* ------------------------------------------------------------------------ load processes */

function loadArgs(url, proto, share, first, o) {
  const a = ['--url', url, '--proto', proto, '-n', String(share), '-k', String(o.k), '-s', String(o.s),
    '--first-index', String(first), '--duration', String(o.duration), '--warmup', String(o.warmup),
    '--ramp', String(Math.max(1, Math.round(o.ramp / o.procs))), '--wait-signal', '--hist', '--json', '-q'];
  if (o.stall) a.push('--stall-fraction', String(o.stall.fraction), '--stall-after', String(o.stall.after), '--stall-for', String(o.stall.for));
  if (o.connectFor) a.push('--connect-for', String(o.connectFor));
  return a;
}

function startLoad(url, proto, o) {
  const out = [];
  for (let p = 0, first = 0; p < o.procs; p++) {
    const share = Math.floor(o.n / o.procs) + (p < o.n % o.procs ? 1 : 0);
    const [cmd, argv] = pinned(1, LOADGEN, loadArgs(url, proto, share, first, o));
    first += share;
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    const lp = { child, stdout: '', stderr: '', connected: false, ready: false };
    lp.exited = new Promise((r) => child.on('close', (code, sig) => r(code ?? sig))); // after stdout is drained
    child.stdout.on('data', (d) => { lp.stdout += d; });
    child.stderr.on('data', (d) => {
      lp.stderr = (lp.stderr + d).slice(-8000);
      if (/^CONNECTED$/m.test(lp.stderr)) lp.connected = true;
      if (/^READY$/m.test(lp.stderr)) lp.ready = true;
    });
    out.push(lp);
  }
  return out;
}

async function waitFor(pred, ms) {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(50)) if (pred()) return true;
  return pred();
}

/** [busy, total] ticks of CPUs 0 and 1 from /proc/stat: the machine is shared, so others may use them. */
function coreTicks() {
  const lines = fs.readFileSync('/proc/stat', 'utf8').split('\n');
  return [0, 1].map((c) => {
    const f = (lines.find((l) => l.startsWith(`cpu${c} `)) || `cpu${c} 0 0 0 0`).trim().split(/\s+/).slice(1).map(Number);
    const total = f.reduce((a, x) => a + x, 0);
    return [total - f[3] - (f[4] || 0), total]; // idle and iowait are not busy
  });
}

/** Samples the server's [ms, cpu ticks, RSS KiB] every 200 ms until stop(); core usage at both ends. */
function sampler(pid) {
  const samples = [];
  const take = () => { try { samples.push([Date.now(), procStat(pid), statusKiB(pid, 'VmRSS')]); } catch { /* exited */ } };
  take();
  const cores0 = coreTicks();
  const t = setInterval(take, 200);
  const s = { samples, stop: () => { clearInterval(t); take(); s.cores = coreTicks().map(([b, tot], i) => (b - cores0[i][0]) / Math.max(1, tot - cores0[i][1])); } };
  return s;
}

/*
 * Server CPU (fraction of a core) over the window, RSS, and what others took of the two cores meanwhile
 * (busy fraction of core 0 minus the server, of core 1 minus the load tool): a noisy-neighbour gauge.
 */
function serverFigures(smp, t0, loadgenCpu) {
  const win = smp.samples.filter(([t]) => t >= t0);
  const cpu = win.length > 1 ? (win.at(-1)[1] - win[0][1]) / TICK_HZ / ((win.at(-1)[0] - win[0][0]) / 1000) : NaN;
  return {
    cpu, rssWindowMaxKiB: Math.max(...win.map((x) => x[2]).filter(Number.isFinite)), timeline: win.map(([t, , r]) => [t - t0, r]),
    othersCore0: Math.max(0, smp.cores[0] - cpu), othersCore1: Math.max(0, smp.cores[1] - loadgenCpu),
  };
}

const sum = (rs, key) => rs.reduce((a, r) => a + (Number(r[key]) || 0), 0);

function mergeReports(reports) {
  const sub = reports[0]?.hist_sub_bits ?? 6;
  const all = mergeHists(reports.flatMap((r) => [r.hist_ok, r.hist_stalled]));
  const ok = mergeHists(reports.map((r) => r.hist_ok));
  const m = { latency: latency(all, sub), nonstalled: latency(ok, sub), stalled: latency(mergeHists(reports.map((r) => r.hist_stalled)), sub) };
  for (const k of ['requested', 'connected', 'connect_errors', 'closed', 'failed', 'subscribed', 'updates_per_s', 'frames_per_s',
    'bytes_per_s', 'seq_skipped', 'seq_backwards', 'server_errors', 'loadgen_cpu', 'stalled_connections', 'stalled_closed', 'in_flight']) m[k] = sum(reports, k);
  m.duration_s = Math.min(...reports.map((r) => r.duration_s));
  m.interrupted = reports.some((r) => r.interrupted);
  m.bytes_per_update = m.updates_per_s > 0 ? m.bytes_per_s / m.updates_per_s : NaN;
  return m;
}

/**
 * Drives `srv` with o.n connections × o.k symbols (o.procs processes) and measures o.duration seconds.
 * Returns the merged load report plus the server's CPU (fraction of a core), RSS before connecting,
 * after connecting (READY), max in the window and peak (VmHWM), and the RSS timeline of the window.
 */
export async function measure(srv, kind, o) {
  o = { warmup: 2, ramp: 3000, procs: Math.ceil(o.n / CONNS_PER_PROCESS), ...o };
  const url = `${kind.scheme ?? 'ws'}://127.0.0.1:${srv.port}${kind.path}`;
  const idleRssKiB = statusKiB(srv.pid, 'VmRSS');
  const lps = startLoad(url, kind.proto, o);
  // Budget: the ramp, lws' 20 s handshake timeout, the tool's 30 s grace after its last attempt, and
  // room for a server that accepts slowly (tickerd on lws 4.1.6 slows down as connections grow: see the
  // profile in docs/performance.md) or shares its core with other work.
  const budget = ((o.connectFor ? o.connectFor + 30 : o.n / o.ramp + 150) + o.warmup) * 1000;
  const settled = (flag) => () => lps.every((lp) => lp[flag] || lp.child.exitCode !== null);
  const t = Date.now();
  await waitFor(settled('connected'), budget);
  srv.releaseFeed(); // the market runs at full rate once every client is connected
  const allReady = await waitFor(settled('ready'), budget - (Date.now() - t));
  const readyRssKiB = statusKiB(srv.pid, 'VmRSS');
  const smp = sampler(srv.pid);
  const t0 = Date.now();
  for (const lp of lps) lp.child.kill(allReady ? 'SIGUSR1' : 'SIGINT');
  const hard = setTimeout(() => lps.forEach((lp) => lp.child.kill('SIGINT')), (o.duration + 60) * 1000);
  const codes = await Promise.all(lps.map((lp) => lp.exited));
  clearTimeout(hard);
  smp.stop();
  const reports = lps.map((lp) => {
    const line = lp.stdout.trim().split('\n').pop();
    return line?.startsWith('{') ? JSON.parse(line) : null;
  });
  const missing = reports.findIndex((r) => !r);
  if (missing >= 0) throw new Error(`load process ${missing} exited ${codes[missing]} without a report: ${lps[missing].stderr.trim().slice(-400)}`);
  const merged = mergeReports(reports);
  return {
    ...merged, ...serverFigures(smp, t0, merged.loadgen_cpu), allReady, codes, procs: o.procs,
    idleRssKiB, readyRssKiB, peakRssKiB: statusKiB(srv.pid, 'VmHWM'), serverAlive: srv.proc.exitCode === null,
    loadErrors: lps.map((lp) => lp.stderr.split('\n').filter((l) => l && l !== 'READY').slice(0, 3)).flat(),
  };
}
