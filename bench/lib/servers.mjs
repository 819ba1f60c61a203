// bench/lib/servers.mjs — starting and stopping the servers under test, pinned to CPU 0.
//
// Owns: the three servers' launch commands (tickerd from a generated JSON config, the two Node peers of
// bench/peers/ with their argv), finding the port each one listens on, the probe for tickerd's optional
// `history` config section, and installing the peers from npm (npm ci into bench/peers/node_modules).
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BENCH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ROOT = path.resolve(BENCH, '..');
const PEERS = path.join(BENCH, 'peers');
export const BIN = process.env.TICKERD_BIN || path.join(ROOT, 'build/tickerd');
export const LOADGEN = process.env.TICKERD_LOADGEN || path.join(ROOT, 'build/bench/tickerd-loadgen');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'tickerd-bench-'));

/** argv prefixed with `taskset -c CPU` when the machine has a CPU to spare for it. */
export function pinned(cpu, cmd, argv) {
  return os.cpus().length > 1 ? ['taskset', ['-c', String(cpu), cmd, ...argv]] : [cmd, argv];
}

/** The kinds of server, each with the load tool's protocol and URL path. */
export const KINDS = {
  tickerd: { proto: 'tickerd', path: '/ws' },
  // tickerd's own Socket.IO endpoint, driven exactly like the Socket.IO peer
  tickerd_sio: { proto: 'socketio', path: '/socket.io/?EIO=4&transport=websocket' },
  // tickerd's Server-Sent Events (the load tool adds each connection's ?symbols=)
  tickerd_sse: { proto: 'sse', path: '/sse', scheme: 'http' },
  ws: { proto: 'plain', path: '/ws', script: 'ws-server.mjs', pkg: 'ws' },
  socketio: { proto: 'socketio', path: '/socket.io/?EIO=4&transport=websocket', script: 'socketio-server.mjs', pkg: 'socket.io' },
};

/** Version of an installed peer package, or null. */
export function peerVersion(pkg) {
  try {
    return JSON.parse(fs.readFileSync(path.join(PEERS, 'node_modules', pkg, 'package.json'), 'utf8')).version;
  } catch { return null; }
}

/**
 * npm ci into bench/peers/ when node_modules is missing or older than the lock file. Returns the peers
 * that are installed afterwards; a failed install is reported, not fatal (those peers show as such).
 */
export function installPeers(log) {
  const stamp = path.join(PEERS, 'node_modules/.package-lock.json');
  const lock = path.join(PEERS, 'package-lock.json');
  if (!fs.existsSync(stamp) || fs.statSync(lock).mtimeMs > fs.statSync(stamp).mtimeMs) {
    log('bench: npm ci (bench/peers/)');
    const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: PEERS, encoding: 'utf8', timeout: 180000 });
    if (r.status !== 0) log(`bench: npm ci failed (${r.status ?? r.signal}): ${(r.stderr || r.error?.message || '').trim().slice(0, 500)}`);
  }
  return { ws: peerVersion('ws'), socketio: peerVersion('socket.io') };
}

/** Port of the TCP socket `pid` listens on, from /proc (0 while it is not listening yet). */
function listeningPort(pid) {
  try {
    const inodes = new Set(fs.readdirSync(`/proc/${pid}/fd`).map((fd) => {
      try { return /socket:\[(\d+)\]/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1]; } catch { return null; }
    }).filter(Boolean));
    for (const line of fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[3] === '0A' && inodes.has(f[9])) return parseInt(f[1].split(':')[1], 16);
    }
  } catch { /* not up yet, or gone */ }
  return 0;
}

/** The hard RLIMIT_NOFILE every process here may raise its own limit to. */
export function fdHardLimit() {
  const m = /Max open files\s+\d+\s+(\d+)/.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
  return m ? Number(m[1]) : 1024;
}

/**
 * tickerd's config for one run. `history`: undefined = the build's default, true/false = enabled or not
 * (the database always goes to the bench's temp dir when the key is supported).
 */
export function tickerdConfig({ s, u, flush, history }, historySupported) {
  const cfg = {
    server: { max_connections: fdHardLimit() - 64, // what tickerd would cap it to (app.c), kept on reload
      // TICKERD_BENCH_LOOP=poll|epoll: server.event_loop for A/B runs (default: the build's)
      ...(process.env.TICKERD_BENCH_LOOP ? { event_loop: process.env.TICKERD_BENCH_LOOP } : {}) },
    log: { level: 'warn' },
    normalizer: { flush_interval_ms: flush },
    feeds: [{ type: 'sim', name: 'sim', rate: u, seed: 1, include_defaults: false, generated_symbols: s }],
  };
  if (historySupported) {
    cfg.history = { path: path.join(TMP, `history-${process.pid}-${Date.now()}.db`) };
    if (history !== undefined) cfg.history.enabled = history;
  }
  return cfg;
}

/*
 * Every server starts with its market held back, and the bench releases it once every client is
 * connected: an overloaded server accepts new connections slowly (the peers' event loop barely gets to
 * accept, tickerd is busy writing), so connecting under full load would measure the ramp, not the
 * steady state. The peers wait for SIGUSR2 (--hold); tickerd starts at S updates/s (about one per symbol
 * and second: a symbol left unquoted for normalizer.stale_after_ms would be republished as stale) and
 * gets the real rate by a config reload (SIGHUP applies feed rates at once, without dropping a client).
 */
function launch(kind, opts, historySupported) {
  if (kind.startsWith('tickerd')) {
    const file = path.join(TMP, `tickerd-${process.pid}-${Date.now()}.json`);
    const cfg = tickerdConfig(opts, historySupported);
    fs.writeFileSync(file, JSON.stringify({ ...cfg, feeds: [{ ...cfg.feeds[0], rate: Math.min(opts.u, opts.s) }] }));
    const release = (proc) => { fs.writeFileSync(file, JSON.stringify(cfg)); proc.kill('SIGHUP'); };
    return [...pinned(0, BIN, ['-c', file, '--port', '0']), release];
  }
  const argv = [path.join(PEERS, KINDS[kind].script), '--port', '0', '--symbols', String(opts.s),
    '--rate', String(opts.u), '--seed', '1', '--max-rss-mb', String(opts.maxRssMb ?? 4096), '--hold'];
  // Node does not raise its own descriptor limit (tickerd and the load tool do): sh raises it, then execs.
  const [cmd, args] = pinned(0, process.execPath, argv);
  return ['sh', ['-c', 'ulimit -n "$(ulimit -Hn)" && exec "$0" "$@"', cmd, ...args], (proc) => proc.kill('SIGUSR2')];
}

/**
 * Starts a server and waits until it listens. Resolves { proc, pid, port, stderr(), releaseFeed() } (its
 * market runs at the configured rate only after releaseFeed(), see launch()) or rejects with the
 * server's own words (exit status and stderr): tickerd exits 2 naming a config key it does not know.
 */
export async function startServer(kind, opts, historySupported = false) {
  const [cmd, argv, release] = launch(kind, opts, historySupported);
  const proc = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr.on('data', (d) => { err = (err + d).slice(-4000); });
  const exited = new Promise((r) => proc.on('exit', (code, sig) => r(code ?? sig)));
  for (let i = 0; i < 200; i++) {
    await sleep(50);
    if (proc.exitCode !== null || proc.signalCode !== null) break;
    const port = listeningPort(proc.pid); // taskset execs the server: same pid
    if (port) return { proc, pid: proc.pid, port, stderr: () => err, exited, releaseFeed: () => release(proc) };
  }
  proc.kill('SIGKILL');
  const code = await exited;
  const e = new Error(`${kind} did not start (exit ${code}): ${err.trim().split('\n').slice(-3).join(' | ')}`);
  e.exitCode = code;
  e.stderr = err;
  throw e;
}

/**
 * SIGTERM, then SIGKILL after 10 s (an overloaded peer's loop may take seconds to see the signal);
 * resolves the exit status. The run's history database (tickerd) is deleted.
 */
export async function stopServer(srv) {
  if (srv.proc.exitCode === null && srv.proc.signalCode === null) srv.proc.kill('SIGTERM');
  const t = setTimeout(() => srv.proc.kill('SIGKILL'), 10000);
  const code = await srv.exited;
  clearTimeout(t);
  for (const f of fs.readdirSync(TMP)) if (f.startsWith('history-')) fs.rmSync(path.join(TMP, f), { force: true });
  return code;
}

/**
 * Does this tickerd accept the `history` section (enabled + path)? It exits 2 naming an unknown key
 * before opening a socket when it does not.
 */
export async function probeHistory() {
  try {
    const srv = await startServer('tickerd', { s: 10, u: 10, flush: 10, history: false }, true);
    await stopServer(srv);
    return { supported: true };
  } catch (e) {
    if (e.exitCode === 2 && /history/.test(e.stderr || '')) return { supported: false, why: e.stderr.trim().split('\n').pop() };
    throw e;
  }
}
