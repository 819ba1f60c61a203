// bench/lib/report.mjs — markdown tables and the issue-6 targets from the rows of bench/lib/matrix.mjs.
//
// Owns: number formatting, one table per experiment, the ratios of tickerd against each peer, the
// projection to 1M connections, and the list of targets with met / not met and the figure behind each.
import { PEER_NAMES, tracking } from './matrix.mjs';

const fmt = (x, d = 0) => (Number.isFinite(x) ? x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : '—');
const ms = (x) => (Number.isFinite(x) ? (x >= 100 ? fmt(x, 0) : fmt(x, 1)) : '—');
const mib = (kib) => `${fmt(kib / 1024, 1)} MiB`;
const pct = (x) => `${fmt(x * 100)} %`;
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${fmt(a / b, a / b >= 10 ? 0 : 1)}×` : '—');
const ok = (r) => r && !r.error && !r.skipped;
/** Deliveries per second of server CPU. */
export const perCpu = (r) => (ok(r) && r.cpu > 0 ? r.updates_per_s / r.cpu : NaN);
const held = (r) => (ok(r) ? r.connected - r.closed : NaN);
const rssPerConnKB = (r) => (ok(r) && r.connected ? ((r.readyRssKiB - r.idleRssKiB) * 1.024) / r.connected : NaN);

function table(head, rows) {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((c) => `| ${c.join(' | ')} |`)].join('\n');
}

/** A row that did not run: its reason in the first free column. */
const notRun = (r, width, lead) => [...lead, r.skipped || `failed: ${r.error}`, ...Array(width - lead.length - 1).fill('')];

/* ------------------------------------------------------------------------------ side by side */

/**
 * Updates/s the server's market really published: the peers log it at exit (their market and their sends
 * share one event loop, so an overloaded peer falls behind U); tickerd's sim keeps its rate.
 */
export function publishedPerSec(r) {
  const m = /published (\d+) updates in ([\d.]+) s/.exec((r.serverLog || []).join('\n'));
  return m && Number(m[2]) > 0 ? Number(m[1]) / Number(m[2]) : NaN;
}
const published = (r) => (r.spec.server === 'tickerd' ? fmt(r.spec.u) : fmt(publishedPerSec(r)));

/** What other processes took of CPUs 0 and 1 during the window (the machine is shared). */
const others = (r) => `${fmt(r.othersCore0 * 100)} / ${fmt(r.othersCore1 * 100)} %`;

function sideRow(r) {
  const lead = [fmt(r.spec.n), r.label];
  if (!ok(r)) return notRun(r, 17, lead);
  return [...lead, published(r), fmt(r.offered), fmt(r.updates_per_s), pct(r.updates_per_s / r.offered), ms(r.latency.p50), ms(r.latency.p99),
    ms(r.latency.p999), ms(r.latency.max), pct(r.cpu), fmt(perCpu(r)), mib(r.peakRssKiB), fmt(r.bytes_per_update, 0),
    pct(r.loadgen_cpu), others(r), fmt(r.failed)];
}

export function sideTable(rows) {
  return table(['N', 'server', 'market updates/s', 'offered/s', 'delivered/s', 'delivered', 'p50 ms', 'p99 ms', 'p999 ms', 'max ms',
    'server CPU', 'deliveries per CPU-s', 'peak RSS', 'bytes/update', 'load tool CPU', 'others on CPU 0 / 1', 'failed conns'], rows.map(sideRow));
}

/** tickerd (coalescing off) against each peer at the same N: how many times better, per metric. */
export function ratioTable(rows) {
  const out = [];
  for (const n of [...new Set(rows.map((r) => r.spec.n))]) {
    const at = rows.filter((r) => r.spec.n === n);
    const t = at.find((r) => r.spec.server === 'tickerd' && r.spec.flush === 0);
    for (const peer of ['ws', 'socketio']) {
      const p = at.find((r) => r.spec.server === peer);
      if (!ok(t) || !ok(p)) { out.push([fmt(n), PEER_NAMES[peer], 'not measured', '', '', '', '']); continue; }
      out.push([fmt(n), PEER_NAMES[peer], ratio(t.updates_per_s, p.updates_per_s), ratio(perCpu(t), perCpu(p)),
        ratio(p.latency.p99, t.latency.p99), ratio(p.peakRssKiB, t.peakRssKiB), ratio(p.bytes_per_update, t.bytes_per_update)]);
    }
  }
  return table(['N', 'tickerd vs', 'delivered/s', 'deliveries per CPU-s', 'p99 (peer ÷ tickerd)', 'peak RSS (peer ÷ tickerd)',
    'bytes/update (peer ÷ tickerd)'], out);
}

/* ------------------------------------------------------------------- connections to the fd limit */

/** Projection to 1M connections: memory from RSS per held connection, CPU from deliveries per CPU-s. */
function projection(r, satPerCpu) {
  const perConn = ((r.readyRssKiB - r.idleRssKiB) * 1.024) / Math.max(1, held(r));
  const offeredAt1M = r.spec.u * ((1e6 * r.spec.k) / r.spec.s);
  return { perConn, gib: (perConn * 1e6) / 1024 / 1024 / 1.024, cores: offeredAt1M / satPerCpu };
}

export function fdTable(rows, satBest) {
  return table(['server', 'requested', 'held (open at the end)', 'connect errors', 'closed by server', 'delivered/s',
    'p99 ms', 'server CPU', 'RSS after connecting', 'RSS/conn', '1M conns: RSS', '1M conns at U=1000: cores'], rows.map((r) => {
    if (!ok(r)) return notRun(r, 12, [r.label]);
    const p = projection(r, satBest[r.spec.server]?.perCpu);
    return [r.label, fmt(r.requested), fmt(held(r)), fmt(r.connect_errors), fmt(r.closed), fmt(r.updates_per_s), ms(r.latency.p99),
      pct(r.cpu), mib(r.readyRssKiB), `${fmt(p.perConn, 2)} KB`, `${fmt(p.gib, 1)} GiB`, fmt(p.cores, 1)];
  }));
}

/* ---------------------------------------------------------------------------------- saturation */

/** Per server, the step with the most deliveries per second: its figures are "at saturation". */
export function saturationBest(sat) {
  const best = {};
  for (const [server, rows] of Object.entries(sat)) {
    const good = rows.filter(ok);
    if (!good.length) continue;
    const top = good.reduce((a, r) => (r.updates_per_s > a.updates_per_s ? r : a));
    const tracked = good.filter(tracking).at(-1);
    best[server] = { row: top, perSec: top.updates_per_s, perCpu: perCpu(top), trackedOffered: tracked?.offered ?? 0 };
  }
  return best;
}

export function saturationTable(sat) {
  const rows = Object.values(sat).flat().map((r) => {
    const lead = [r.label, fmt(r.spec.u)];
    if (!ok(r)) return notRun(r, 12, lead);
    return [...lead, fmt(r.offered), fmt(r.updates_per_s), pct(r.updates_per_s / r.offered), ms(r.latency.p99), ms(r.latency.max),
      pct(r.cpu), fmt(perCpu(r)), pct(r.loadgen_cpu), others(r), tracking(r) ? 'yes' : '**no**'];
  });
  return table(['server', 'U/s', 'offered/s', 'delivered/s', 'delivered', 'p99 ms', 'max ms', 'server CPU', 'deliveries per CPU-s',
    'load tool CPU', 'others on CPU 0 / 1', 'tracking'], rows);
}

export function saturationSummary(best) {
  const t = best.tickerd;
  return table(['server', 'highest offered load tracked', 'deliveries/s at saturation', 'deliveries per CPU-s at saturation',
    'tickerd ÷ this (per CPU-s)'], ['tickerd', 'ws', 'socketio'].map((s) => {
    const b = best[s];
    const name = s === 'tickerd' ? 'tickerd (coalescing off)' : PEER_NAMES[s];
    if (!b) return [name, 'not measured', '', '', ''];
    return [name, `${fmt(b.trackedOffered)}/s`, fmt(b.perSec), fmt(b.perCpu), s === 'tickerd' ? '' : ratio(t?.perCpu, b.perCpu)];
  }));
}

/* -------------------------------------------------------------------------------- idle memory */

export function idleTable(rows) {
  const t = rows.find((r) => r.spec.server === 'tickerd');
  return table(['server', 'connected + subscribed', 'RSS before', 'RSS with the clients', 'RSS/conn', 'peer ÷ tickerd'], rows.map((r) => {
    if (!ok(r)) return notRun(r, 6, [r.label]);
    return [r.label, fmt(r.subscribed), mib(r.idleRssKiB), mib(r.readyRssKiB), `${fmt(rssPerConnKB(r), 2)} KB`,
      r === t ? '' : ratio(rssPerConnKB(r), rssPerConnKB(t))];
  }));
}

/* ----------------------------------------------------------------------------- slow consumers */

/** Server RSS at a time (ms from the window start) from the sampled timeline. */
const rssAt = (r, tMs) => r.timeline?.reduce((a, [t, kib]) => (t <= tMs ? kib : a), NaN);

export function stallFigures(r, base) {
  const st = r.spec.stall;
  const atStart = rssAt(r, st.after * 1000);
  const atEarly = rssAt(r, (st.after + 2) * 1000);
  const atEnd = rssAt(r, (st.after + st.for) * 1000);
  return { base: base?.latency.p99, others: r.nonstalled.p99, factor: r.nonstalled.p99 / base?.latency.p99, atStart, atEnd,
    lateGrowthKiB: atEnd - atEarly };
}

export function stallTable(rows, sideRows) {
  return table(['server', 'stalled conns', "others' p99, no stall (same N, side by side)", "others' p99 during the stall", 'factor',
    'stalled p99', 'RSS at stall start', 'RSS at stall end', 'RSS growth, last 8 s of the stall', 'stalled closed', 'delivered/s'],
  rows.map((r) => {
    if (!ok(r)) return notRun(r, 11, [r.label]);
    const f = stallFigures(r, sideRows.find((x) => x.spec.server === r.spec.server && x.spec.n === r.spec.n && x.spec.flush === r.spec.flush));
    return [r.label, fmt(r.stalled_connections), ms(f.base), ms(f.others), Number.isFinite(f.factor) ? `${fmt(f.factor, 2)}×` : '—',
      ms(r.stalled.p99), mib(f.atStart), mib(f.atEnd), mib(f.lateGrowthKiB), fmt(r.stalled_closed), fmt(r.updates_per_s)];
  }));
}

/* ----------------------------------------------------------------------------------- history */

export function historyTable(rows) {
  return table(['N', 'server', 'offered/s', 'delivered/s', 'p50 ms', 'p99 ms', 'max ms', 'server CPU', 'peak RSS'], rows.map((r) => {
    const lead = [fmt(r.spec.n), r.label];
    if (!ok(r)) return notRun(r, 9, lead);
    return [...lead, fmt(r.offered), fmt(r.updates_per_s), ms(r.latency.p50), ms(r.latency.p99), ms(r.latency.max), pct(r.cpu), mib(r.peakRssKiB)];
  }));
}

/* ----------------------------------------------------------------------------------- targets */

const verdict = (met, known = true) => (!known ? 'not measured' : met ? '**met**' : '**not met**');

/** The targets, each as [target, figure, verdict]. */
export function targets(res) {
  const best = saturationBest(res.saturation);
  const t = best.tickerd;
  const out = [];
  for (const [peer, want] of [['socketio', 30], ['ws', 25]]) {
    const f = t && best[peer] ? t.perCpu / best[peer].perCpu : NaN;
    out.push([`≥ ${want}× ${PEER_NAMES[peer]}'s deliveries per server CPU-second at saturation`,
      Number.isFinite(f) ? `${fmt(f, 1)}× (${fmt(t.perCpu)} vs ${fmt(best[peer].perCpu)})` : '—', verdict(f >= want, Number.isFinite(f))]);
  }
  const lgBound = t && t.row.loadgen_cpu > 0.9 ? ' — load tool saturated: a lower bound' : '';
  out.push(['> 3.0M deliveries/s on one core at N = 1k', t ? `${fmt(t.perSec)}/s at ${pct(t.row.cpu)} CPU${lgBound}` : '—', verdict(t?.perSec > 3e6, !!t)]);
  const r10 = res.side.find((r) => r.spec.server === 'tickerd' && r.spec.flush === 0 && r.spec.n === 10000);
  out.push(['N = 10k, U = 1000/s: every update delivered, p99 ≤ 80 ms', ok(r10)
    ? `p99 ${ms(r10.latency.p99)} ms, ${pct(r10.updates_per_s / r10.offered)} delivered (${fmt(r10.seq_skipped)} values conflated)` : '—',
  verdict(ok(r10) && r10.latency.p99 <= 80 && r10.updates_per_s >= 0.99 * r10.offered && r10.seq_skipped === 0, ok(r10))]);
  const idle = res.idle.find((r) => r.spec.server === 'tickerd');
  out.push(['≤ 2 KB server RSS per connection (10 symbols) at 10k', ok(idle) ? `${fmt(rssPerConnKB(idle), 2)} KB` : '—', verdict(rssPerConnKB(idle) <= 2, ok(idle))]);
  const fd = res.fd.find((r) => r.spec.server === 'tickerd');
  // Met when the server holds ≥ 95 % of its descriptor limit and every connection it holds is subscribed;
  // attempts beyond the limit are refused by design (1013, or dropped at accept) and are not failures.
  out.push(['connections up to the fd limit (20,000) held with no failures', ok(fd)
    ? `${fmt(held(fd))} held of ${fmt(fd.requested)} requested (${fmt(fd.subscribed)} subscribed during the run); `
      + `${fmt(fd.closed)} closed by the server, ${fmt(fd.connect_errors)} refused at connect, the rest not connected within 60 s` : '—',
  verdict(held(fd) >= 19000 && fd.subscribed >= held(fd), ok(fd))]);
  const st = res.stall.find((r) => r.spec.server === 'tickerd');
  const base = res.side.find((r) => r.spec.server === 'tickerd' && r.spec.flush === 0 && r.spec.n === st?.spec.n);
  const f = ok(st) && ok(base) ? stallFigures(st, base) : null;
  out.push(["20 % stalled: others' p99 within 1.25× of no stall", f ? `${fmt(f.factor, 2)}× (${ms(f.others)} vs ${ms(f.base)} ms)` : '—', verdict(f?.factor <= 1.25, !!f)]);
  out.push(['20 % stalled: server RSS bounded by subscriptions, not by time stalled', f ? `${mib(f.lateGrowthKiB)} growth over the last 8 s of the stall (${mib(f.atEnd)} at its end)` : '—',
    verdict(f?.lateGrowthKiB <= 2048, !!f)]);
  return table(['target', 'figure', 'verdict'], out);
}

/* ----------------------------------------------------------------- core matrix (issue 2 format) */

export function coreTable(rows) {
  return table(['N', 'U/s', 'flush ms', 'offered deliveries/s', 'delivered updates/s', 'frames/s', 'updates/frame', 'p50 ms', 'p99 ms',
    'p999 ms', 'max ms', 'server CPU', 'server RSS (peak)', 'RSS/conn', 'connect errors'], rows.map((r) => {
    const lead = [fmt(r.spec.n), fmt(r.spec.u), String(r.spec.flush)];
    if (!ok(r)) return notRun(r, 15, lead);
    const perConn = ((r.rssWindowMaxKiB - r.idleRssKiB) * 1.024) / r.spec.n;
    return [...lead, fmt(r.offered), fmt(r.updates_per_s), fmt(r.frames_per_s), fmt(r.updates_per_s / Math.max(1, r.frames_per_s), 2),
      fmt(r.latency.p50, 1), fmt(r.latency.p99, 1), fmt(r.latency.p999, 1), fmt(r.latency.max, 1), pct(r.cpu), mib(r.peakRssKiB),
      `${fmt(perConn, 2)} KB`, fmt(r.connect_errors)];
  }));
}
