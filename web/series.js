// Price series for the chart: candles from history rows (a `history` frame or a GET /api/history page)
// and from live values. Pure functions, no DOM. Times are µs since the Unix epoch, like the stream's `ts`.

/** Candle width of each history interval, µs ("tick" rows are single values). */
export const INTERVAL_US = { tick: 0, '1s': 1e6, '1m': 60e6, '1h': 3600e6 };

/**
 * History rows -> candles {t, o, h, l, c, n}, oldest first. Candle intervals have the columns
 * t, open, high, low, close, count; "tick" has t, last, bid, ask, volume, seq and becomes one flat
 * candle per value. Columns are looked up by name, so added columns do no harm.
 */
export function toCandles(columns, rows) {
  const col = Object.fromEntries((columns || []).map((name, i) => [name, i]));
  const out = [];
  if (col.t === undefined) return out;
  const tick = col.close === undefined;
  for (const r of rows || []) {
    if (tick) {
      const v = r[col.last];
      if (Number.isFinite(v)) out.push({ t: r[col.t], o: v, h: v, l: v, c: v, n: 1 });
    } else if (Number.isFinite(r[col.close])) {
      out.push({ t: r[col.t], o: r[col.open], h: r[col.high], l: r[col.low], c: r[col.close], n: r[col.count] ?? 1 });
    }
  }
  return out;
}

/**
 * Add one live value (event time `ts`, price `v`) to `candles` of `intervalUs`, the way the server's
 * store builds them: a value in the newest candle's bucket extends it, a later one starts a new candle.
 * A value for an older bucket (a source whose clock is behind took over) widens that candle's high/low
 * but leaves its close, which belongs to the latest event time. Returns false if nothing changed.
 */
export function addValue(candles, ts, v, intervalUs) {
  if (!Number.isFinite(v) || !Number.isFinite(ts) || !(intervalUs > 0)) return false;
  const t = Math.floor(ts / intervalUs) * intervalUs;
  const last = candles[candles.length - 1];
  if (!last || t > last.t) {
    candles.push({ t, o: v, h: v, l: v, c: v, n: 1 });
    return true;
  }
  let i = candles.length - 1;
  while (i > 0 && candles[i].t > t) i--;
  const k = candles[i];
  if (k.t !== t) return false; // older than what we hold, or a bucket without a candle: not drawn anyway
  if (v > k.h) k.h = v;
  if (v < k.l) k.l = v;
  if (k === last) k.c = v;
  k.n++;
  return true;
}

/** Drop candles that start before `t0` (the chart's range slides with time). */
export function trimBefore(candles, t0) {
  let i = 0;
  while (i < candles.length && candles[i].t < t0) i++;
  if (i) candles.splice(0, i);
}

/** Index of the candle nearest to time `t` (candles sorted by t; -1 when empty). */
export function nearest(candles, t) {
  let lo = 0, hi = candles.length - 1;
  if (hi < 0) return -1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (candles[mid].t < t) lo = mid + 1; else hi = mid;
  }
  return lo > 0 && t - candles[lo - 1].t < candles[lo].t - t ? lo - 1 : lo;
}

/** A round step (1, 2 or 5 × 10^k) that cuts `span` into about `count` parts. */
export function niceStep(span, count) {
  if (!(span > 0) || !(count > 0)) return 1;
  const raw = span / count;
  const p = 10 ** Math.floor(Math.log10(raw));
  const m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

const S = 1e6, M = 60 * S, H = 60 * M, D = 24 * H;

/** Steps for time-axis labels, µs, finest first. */
export const TIME_STEPS = [S, 2 * S, 5 * S, 10 * S, 15 * S, 30 * S, M, 2 * M, 5 * M, 10 * M, 15 * M, 30 * M,
  H, 2 * H, 3 * H, 6 * H, 12 * H, D, 2 * D, 7 * D];
