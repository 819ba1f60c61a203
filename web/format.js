// Number and time formatting for the quote table. Pure functions, no DOM.
// Fixed 'en-US' locale: predictable glyph widths keep the columns from jittering.

const MAX_DECIMALS = 8;
const DASH = '—';

// Decimals implied by a value: 64999.5 -> 1, 1.08345 -> 5. toFixed(8) both avoids exponent
// notation (1e-7) and rounds away binary noise (0.30000000000000004 -> 1).
export function decimalsOf(x) {
  if (!Number.isFinite(x)) return 0;
  const s = Math.abs(x).toFixed(MAX_DECIMALS);
  let end = s.length;
  while (s.charCodeAt(end - 1) === 48 /* '0' */) end--;
  return end - s.indexOf('.') - 1;
}

const priceFormats = [];
export function fmtPrice(x, decimals) {
  if (!Number.isFinite(x)) return DASH;
  const nf = priceFormats[decimals] ??= new Intl.NumberFormat('en-US', {
    minimumFractionDigits: decimals, maximumFractionDigits: decimals,
  });
  return nf.format(x);
}

// Signed percent with two decimals; never shows "-0.00%".
export function fmtPct(p) {
  if (!Number.isFinite(p)) return DASH;
  const t = Math.abs(p).toFixed(2);
  if (t === '0.00') return '0.00%';
  return (p > 0 ? '+' : '-') + t + '%';
}

const compact = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 });
export function fmtVol(v) {
  return Number.isFinite(v) ? compact.format(v) : DASH;
}

const p2 = (n) => (n < 10 ? '0' : '') + n;
// Local wall-clock time HH:MM:SS.mmm of an epoch in milliseconds.
export function fmtClock(ms) {
  if (!Number.isFinite(ms)) return DASH;
  const d = new Date(ms);
  return `${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

// Coarse age; refreshed about once a second, so no sub-second digits.
export function fmtAge(ms) {
  if (!Number.isFinite(ms)) return '';
  if (ms < 1000) return '<1s';
  if (ms < 60e3) return `${Math.floor(ms / 1e3)}s`;
  if (ms < 3600e3) return `${Math.floor(ms / 60e3)}m`;
  if (ms < 86400e3) return `${Math.floor(ms / 3600e3)}h`;
  return `${Math.floor(ms / 86400e3)}d`;
}
