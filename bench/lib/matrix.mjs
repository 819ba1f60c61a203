// bench/lib/matrix.mjs — the experiments of the peer comparison (issue 6) and of the quick mode.
//
// Owns: which runs make up the matrix (side by side at N = 1k/10k, the 50k / descriptor-limit run,
// the saturation search, idle memory, slow consumers, history on/off) and running one of them
// (start the server, measure, stop) into a row that the report turns into tables. A run that cannot
// happen (peer not installed, tickerd without the history key) is a row that says so, never a crash.
import { measure } from './load.mjs';
import { KINDS, startServer, stopServer } from './servers.mjs';

export const S = 100;
export const K = 10;
export const PEER_NAMES = { ws: 'ws', socketio: 'Socket.IO' };

/** Display name of a run's server, e.g. "tickerd (coalescing off)". */
export function serverLabel(spec) {
  if (spec.server === 'tickerd_sio') return `tickerd /socket.io/ (coalescing ${spec.flush === 0 ? 'off' : `${spec.flush} ms`})`;
  if (spec.server === 'tickerd_sse') return `tickerd /sse (coalescing ${spec.flush === 0 ? 'off' : `${spec.flush} ms`})`;
  if (spec.server !== 'tickerd') return PEER_NAMES[spec.server];
  const parts = [spec.flush === 0 ? 'coalescing off' : `coalescing ${spec.flush} ms`];
  if (spec.history !== undefined) parts.push(`history ${spec.history ? 'on' : 'off'}`);
  return `tickerd (${parts.join(', ')})`;
}

function unavailable(ctx, spec) {
  if (!spec.server.startsWith('tickerd') && !ctx.peers[spec.server]) return 'not installed (npm ci in bench/peers/ failed)';
  if (spec.server === 'tickerd' && spec.history !== undefined && !ctx.history.supported) {
    return `pending: this tickerd does not accept the history key (${ctx.history.why || 'exit 2'})`;
  }
  return null;
}

/** Runs one experiment; always resolves a row ({spec, ...figures} or {spec, skipped} or {spec, error}). */
export async function runOne(ctx, spec) {
  const row = { spec, label: serverLabel(spec), offered: spec.u * ((spec.n * spec.k) / spec.s) };
  const skip = unavailable(ctx, spec);
  if (skip) return { ...row, skipped: skip };
  ctx.log(`bench: ${row.label} N=${spec.n} U=${spec.u}${spec.stall ? ' stall' : ''} ...`);
  const t0 = Date.now();
  let srv;
  try {
    srv = await startServer(spec.server, spec, ctx.history.supported);
    const r = await measure(srv, KINDS[spec.server], spec);
    Object.assign(row, r);
  } catch (e) {
    row.error = e.message;
  }
  if (srv) {
    const code = await stopServer(srv);
    row.serverLog = srv.stderr().trim().split('\n').slice(-3);
    if (row.serverAlive === false) row.error = `server exited during the run (${code}): ${row.serverLog.at(-1)}`;
  }
  ctx.log(row.error ? `  error: ${row.error}`
    : `  ${fmtK(row.updates_per_s)} upd/s of ${fmtK(row.offered)}, p99 ${row.latency.p99.toFixed(1)} ms, cpu ${(row.cpu * 100).toFixed(0)} %, `
      + `loadgen ${(row.loadgen_cpu * 100).toFixed(0)} %, ${row.connected - row.closed}/${spec.n} held (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  return row;
}

const fmtK = (x) => (x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : `${(x / 1e3).toFixed(1)}k`);

/** The servers of a comparison: tickerd with coalescing off (every update delivered) and both peers. */
const sideBySide = (base) => ['tickerd', 'ws', 'socketio'].map((server) => ({ ...base, server, flush: 0 }));

/** A run is "tracking" when ≥ 90 % of the offered deliveries arrive with p99 ≤ 1 s and nothing failed. */
export const tracking = (r) => !r.error && !r.skipped && r.updates_per_s >= 0.9 * r.offered && r.latency.p99 <= 1000 && r.failed === 0;

/**
 * Saturation at N = 1k: double U from 500 until delivery stops tracking (that step is kept: the peak).
 * A step that does not track is run once more before stopping: on a shared machine one noisy window
 * should not end the search.
 */
async function saturation(ctx, server, o) {
  const rows = [];
  for (const u of o.steps) {
    const spec = { server, flush: 0, n: 1000, k: K, s: S, u, duration: o.duration, warmup: 2 };
    let r = await runOne(ctx, spec);
    if (!tracking(r)) {
      const again = await runOne(ctx, spec);
      if (tracking(again) || again.updates_per_s > r.updates_per_s) r = again;
    }
    rows.push(r);
    if (!tracking(r)) break;
  }
  return rows;
}

/** The whole issue-6 matrix; `o` can shorten it (durations, N lists, `only` some parts) for development. */
export async function fullMatrix(ctx, o = {}) {
  const d = o.duration ?? 10;
  const want = (part) => !o.only || o.only.includes(part);
  const run = async (list, spec) => list.push(await runOne(ctx, spec));
  const res = { side: [], fd: [], saturation: {}, idle: [], stall: [], history: [] };
  for (const n of want('side') ? o.n ?? [1000, 10000] : []) {
    for (const spec of sideBySide({ n, k: K, s: S, u: 1000, duration: d })) await run(res.side, spec);
    await run(res.side, { server: 'tickerd', flush: 10, n, k: K, s: S, u: 1000, duration: d });
  }
  // More than a server process can hold: connect for at most 60 s, then measure what is held.
  const fd = { n: o.bigN ?? 50000, k: K, s: S, u: 1000, duration: Math.min(d, 5), connectFor: 60 };
  for (const spec of want('fd') ? sideBySide(fd) : []) await run(res.fd, spec);
  for (const server of want('saturation') ? ['tickerd', 'ws', 'socketio'] : []) {
    res.saturation[server] = await saturation(ctx, server, { steps: o.steps ?? [500, 1000, 2000, 4000, 8000, 16000, 32000, 64000], duration: Math.min(d, 5) });
  }
  for (const spec of want('idle') ? sideBySide({ n: o.idleN ?? 10000, k: K, s: S, u: 1, duration: 2, warmup: 1 }) : []) await run(res.idle, spec);
  const stall = { fraction: 0.2, after: 2, for: 10 };
  for (const spec of want('stall') ? sideBySide({ n: o.stallN ?? 10000, k: K, s: S, u: 1000, duration: 14, stall }) : []) await run(res.stall, spec);
  for (const n of want('history') ? o.n ?? [1000, 10000] : []) {
    for (const history of [true, false]) await run(res.history, { server: 'tickerd', flush: 10, history, n, k: K, s: S, u: 1000, duration: d });
  }
  return res;
}

/** Socket.IO clients against tickerd's /socket.io/ and against the Node Socket.IO peer, same load. */
export async function sioMatrix(ctx, o = {}) {
  const rows = [];
  for (const n of o.n ?? [1000, 5000]) {
    for (const server of ['tickerd_sio', 'socketio', 'tickerd_sse']) {
      rows.push(await runOne(ctx, { server, flush: 0, n, k: K, s: S, u: 1000, duration: o.duration ?? 8 }));
    }
  }
  return rows;
}

/** Quick mode: each server briefly, through two load processes (proves the whole path, not the speed). */
export async function quickMatrix(ctx) {
  const base = { n: 200, k: K, s: S, u: 1000, duration: 2, warmup: 0.5, ramp: 1000, procs: 2 };
  const rows = [];
  for (const spec of sideBySide(base)) rows.push(await runOne(ctx, spec));
  return rows;
}
