// tickerd dashboard. Incoming updates only land in per-row state and mark the row dirty; the DOM is
// written once per animation frame, for dirty rows only, and a cell only when its text changed. The same
// frame redraws the sparklines (an SVG polyline per row over the last SPARK_POINTS prices) of dirty rows.
// Rows scrolled out of view (or filtered out) are not written at all: they catch up when they come into
// view (an IntersectionObserver tells), so the cost of a frame follows what is on screen, not the list.
// Sparklines start from history: every subscribe asks for the last SPARK_POINTS 1-second candles.
// A click on a row opens its chart (chart.js).

import { TickerdClient } from './tickerd-client.js';
import { decimalsOf, fmtPrice, fmtPct, fmtVol, fmtClock, fmtAge } from './format.js';
import { toCandles } from './series.js';
import { Chart } from './chart.js';

const STORE_KEY = 'tickerd.symbols';
const SORT_KEY = 'tickerd.sort';
const THEME_KEY = 'tickerd.theme';
const DEFAULT_COUNT = 20;       // symbols taken from /api/symbols when nothing is stored
const QUIET_MS = 15000;         // rows without an update for this long are dimmed
const SPARK_POINTS = 60;        // points kept per row for its sparkline ...
const SPARK_STEP_US = 1e6;      // ... one per second (of the values' ts): the last price of that second
const SPARK_W = 100, SPARK_H = 20; // the sparkline's viewBox (stretched to the cell)
// ... and the same from history: the 1-second candles' closes.
const SPARK_HISTORY = { interval: '1s', limit: SPARK_POINTS };
const RECENT_VALUES = 256;      // values kept per row, for the chart to join its history to live
const SYMBOL_RE = /^[A-Z0-9._]+-[A-Z0-9._]+$/;

// ?ws= overrides the socket URL; the REST API lives on the same host as the socket.
const params = new URLSearchParams(location.search);
const WS_URL = params.get('ws') || `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws`;
const API_BASE = (() => {
  try { return new URL(WS_URL.replace(/^ws/i, 'http')).origin; } catch { return location.origin; }
})();

const $ = (id) => document.getElementById(id);
const table = $('quotes');
const tbody = table.tBodies[0];
const rowTpl = $('row-tpl');
const statusEl = $('status');
const statusText = $('status-text');
const latencyEl = $('latency');
const statsEl = $('stats');
const emptyEl = $('empty');
const addInput = $('add-symbol');
const filterInput = $('filter');
const themeBtn = $('theme-btn');
const toastEl = $('toast');

// ---- storage (localStorage may be unavailable or full; the page works without it) ----

function load(key) {
  try { return JSON.parse(localStorage.getItem(key)); } catch { return null; }
}
function save(key, value) {
  try { localStorage.setItem(key, JSON.stringify(value)); } catch { /* ignore */ }
}

// ---- state ----

/** @type {Map<string, Row>} symbol -> row, in the user's list order */
const rows = new Map();
const dirty = new Set();
const known = new Map();        // symbol -> info from /api/symbols
let clockOffset = 0;            // server clock - local clock, ms (from ping acks)
let sort = { key: null, dir: 1 }; // key null = the user's list order
let filterText = '';
let updatesSinceTick = 0;
let lastTick = performance.now();
let tickDue = false;
let sortStale = false;
let frameQueued = false;

class Row {
  constructor(sym) {
    this.sym = sym;
    this.q = null;              // merged latest quote
    this.serverStale = false;   // the latest value said "stale":true (no feed quoted it recently)
    this.waiting = false;       // the server did not know the symbol at the last re-subscribe
    this.shownStale = false;
    this.hist = new Float64Array(SPARK_POINTS); // ring buffer of last prices
    this.histLen = 0;
    this.histHead = 0;          // index of the next write
    this.histSlot = -1;         // SPARK_STEP_US slot of the newest point
    this.sparkDirty = false;
    this.recent = new Array(RECENT_VALUES); // ring of the last update objects received
    this.recentCount = 0;
    this.dec = knownDecimals(sym);  // price decimals; only ever grows
    this.prev = {};             // last rendered numbers, for flash direction
    this.text = {};             // last rendered strings, to skip no-op DOM writes
    this.quiet = false;
    this.visible = false;       // on screen (or nearly), per the IntersectionObserver
    this.behind = false;        // has changes not rendered while off screen
    this.drawnAt = -Infinity;   // rAF time of the last render
    this.tr = rowTpl.content.firstElementChild.cloneNode(true);
    this.tr.dataset.symbol = sym;
    this.cells = {};
    this.nodes = {};            // Text nodes; writing .data avoids replacing nodes
    for (const td of this.tr.cells) {
      const key = td.className.match(/\bc-(\w+)/)[1];
      this.cells[key] = td;
    }
    this.cells.symbol.querySelector('.sym').textContent = sym;
    this.cells.symbol.querySelector('.sym').title = `Chart of ${sym}`;
    this.badge = this.cells.symbol.querySelector('.badge-stale');
    this.spark = this.cells.spark.firstElementChild;
    this.line = this.spark.firstElementChild;
    this.sparkDir = '';
    this.tr.querySelector('button.remove').setAttribute('aria-label', `Remove ${sym}`);
    const tc = this.cells.time;
    const box = (key) => this.cells[key].querySelector('.v');
    for (const [key, el] of [['last', box('last')], ['chg', box('chg')], ['bid', box('bid')],
      ['ask', box('ask')], ['spread', box('spread')], ['vol', box('vol')], ['src', box('src')],
      ['clock', tc.querySelector('.clock')], ['age', tc.querySelector('.age')]]) {
      el.textContent = key === 'age' ? '' : '—';
      this.nodes[key] = el.firstChild || el.appendChild(document.createTextNode(''));
      this.text[key] = this.nodes[key].data;
    }
  }

  set(key, s) {
    if (this.text[key] !== s) { this.text[key] = s; this.nodes[key].data = s; }
  }

  // Keep a price for the sparkline: a new point per SPARK_STEP_US slot of the value's time (`ts`, µs);
  // within a slot the newest point follows the price, so the line's right end is live. A value from an
  // earlier slot (a source with a slower clock took over) moves the newest point too.
  push(v, ts) {
    if (!Number.isFinite(v) || !Number.isFinite(ts)) return;
    const slot = Math.floor(ts / SPARK_STEP_US);
    if (this.histLen && slot <= this.histSlot) {
      const i = (this.histHead + SPARK_POINTS - 1) % SPARK_POINTS;
      if (this.hist[i] === v) return;
      this.hist[i] = v;
    } else {
      this.histSlot = slot;
      this.hist[this.histHead] = v;
      this.histHead = (this.histHead + 1) % SPARK_POINTS;
      if (this.histLen < SPARK_POINTS) this.histLen++;
    }
    this.sparkDirty = true;
  }

  // The sparkline starts over from history (1-second candles, oldest first): the replay that follows the
  // history frame extends it from there. An empty history (none stored, or an error) keeps what is there.
  fillSpark(candles) {
    if (!candles.length) return;
    this.histLen = this.histHead = 0;
    this.histSlot = -1;
    for (const k of candles.slice(-SPARK_POINTS)) this.push(k.c, k.t);
  }

  remember(u) {
    this.recent[this.recentCount++ % RECENT_VALUES] = u;
  }

  // After a reconnect the server may be another run, whose seqs start again from 1: older values would
  // not compare.
  forgetRecent() {
    this.recent.fill(undefined);
    this.recentCount = 0;
  }

  /** The last values received (up to RECENT_VALUES), oldest first. */
  recentValues() {
    const n = Math.min(this.recentCount, RECENT_VALUES);
    const out = [];
    for (let i = this.recentCount - n; i < this.recentCount; i++) out.push(this.recent[i % RECENT_VALUES]);
    return out;
  }
}

// /api/symbols entries carry the symbol's latest value (if any): a first hint at its precision.
function knownDecimals(sym) {
  const i = known.get(sym);
  return i ? Math.max(decimalsOf(i.last), decimalsOf(i.bid), decimalsOf(i.ask)) : 0;
}

// ---- incoming data ----

function onData({ kind, updates }) {
  const charted = chart.isOpen ? chart.symbol : null;
  for (const u of updates) {
    const row = rows.get(u?.symbol);
    if (!row) continue; // e.g. a late update for a symbol just removed
    row.q = row.q ? Object.assign(row.q, u) : { ...u }; // optional keys may be absent in later updates
    row.serverStale = u.stale === true;                 // ... but a missing "stale" means false
    if (row.waiting) { row.waiting = false; delete row.tr.dataset.waiting; row.tr.removeAttribute('title'); }
    row.push(u.last, u.ts);
    row.remember(u);
    if (row.sym === charted) chart.onValue(u, kind);
    dirty.add(row);
    updatesSinceTick++;
  }
  requestRender();
}

// The history frame of a (re)subscribe: the sparkline starts from it. Unavailable history (the store is
// off or failing) comes with an error and no rows: the sparkline then fills from live values only.
function onHistory({ symbol, columns, rows: data }) {
  const row = rows.get(symbol);
  if (!row) return;
  row.fillSpark(toCandles(columns, data));
  if (row.sparkDirty && row.q) { dirty.add(row); requestRender(); }
}

// ---- rendering (requestAnimationFrame only) ----

// A row is redrawn at most every `rowInterval` ms: ROW_MIN_MS normally (20 Hz per row is more than eyes
// read), growing towards ROW_MAX_MS while frames start late (a slow machine, a busy renderer) and shrinking
// back when they are on time. Rows held back keep only their newest value, so nothing queues up.
const ROW_MIN_MS = 50;
const ROW_MAX_MS = 500;
let rowInterval = ROW_MIN_MS;
let requestedAt = 0;

function requestRender() {
  if (!frameQueued) { frameQueued = true; requestedAt = performance.now(); requestAnimationFrame(frame); }
}

function frame(t) {
  frameQueued = false;
  const late = t - requestedAt;  // ~0-17 ms when the frame came at the next vsync
  if (late > 28) rowInterval = Math.min(ROW_MAX_MS, rowInterval * 1.25);
  else if (late < 20) rowInterval = Math.max(ROW_MIN_MS, rowInterval * 0.97);
  const now = Date.now() + clockOffset;
  let held = null;
  for (const row of dirty) {
    if (!row.visible) { row.behind = true; continue; }
    if (t - row.drawnAt < rowInterval) { (held ??= []).push(row); continue; }
    row.drawnAt = t;
    renderRow(row, now, t, row.behind);
  }
  if (dirty.size && sort.key && sort.key !== 'symbol') sortStale = true;
  dirty.clear();
  if (held) for (const row of held) dirty.add(row);
  stepFlashes(t);
  if (held || flashing.size) requestRender();
  if (tickDue) tick(now);
}

function changePct(q) {
  if (Number.isFinite(q.change_pct)) return q.change_pct;
  return Number.isFinite(q.open) && q.open !== 0 ? (100 * (q.last - q.open)) / q.open : NaN;
}

// Off-screen rows catch up when they come into view (no flash then: the change is not new).
const seen = new IntersectionObserver((entries) => {
  for (const e of entries) {
    const row = rows.get(e.target.dataset.symbol);
    if (!row || row.tr !== e.target) continue;
    row.visible = e.isIntersecting;
    if (row.visible && row.behind && row.q) { dirty.add(row); requestRender(); }
  }
}, { root: document.querySelector('main'), rootMargin: '150px 0px' });

function renderRow(row, now, t, catchUp = false) {
  row.behind = false;
  const q = row.q;
  const dec = (row.dec = Math.max(row.dec, decimalsOf(q.last), decimalsOf(q.bid), decimalsOf(q.ask)));
  for (const k of ['last', 'bid', 'ask']) {
    const v = q[k];
    const p = row.prev[k];
    if (p !== undefined && !catchUp && Number.isFinite(v) && v !== p) flash(row, k, v > p ? 'up' : 'down', t);
    row.prev[k] = v;
    row.set(k, fmtPrice(v, dec));
  }
  const pct = changePct(q);
  row.set('chg', fmtPct(pct));
  const sign = pct > 0 && row.text.chg !== '0.00%' ? 'pos' : pct < 0 && row.text.chg !== '0.00%' ? 'neg' : '';
  if (row.cells.chg.dataset.sign !== sign) row.cells.chg.dataset.sign = sign;
  row.set('spread', fmtPrice(q.ask - q.bid, dec));
  row.set('vol', fmtVol(q.volume));
  row.set('src', q.src == null ? '—' : String(q.src));
  row.set('clock', fmtClock(q.ts / 1000));
  if (row.serverStale !== row.shownStale) {
    row.shownStale = row.serverStale;
    row.badge.hidden = !row.serverStale;
    if (row.serverStale) row.tr.dataset.stale = ''; else delete row.tr.dataset.stale;
  }
  if (row.sparkDirty) renderSpark(row);
  renderAge(row, now);
}

// The sparkline: one polyline over the kept prices, oldest at the left edge, newest at the right edge (so
// it spans the cell from the second point on), scaled to the window's own range. Coloured by the direction
// over the window.
function renderSpark(row) {
  row.sparkDirty = false;
  const n = row.histLen;
  const h = row.hist;
  const start = (row.histHead + SPARK_POINTS - n) % SPARK_POINTS;
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = h[(start + i) % SPARK_POINTS];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const step = n > 1 ? SPARK_W / (n - 1) : 0;
  const x0 = n > 1 ? 0 : SPARK_W;
  const k = hi > lo ? (SPARK_H - 2) / (hi - lo) : 0;
  const mid = SPARK_H / 2;
  let pts = '';
  for (let i = 0; i < n; i++) {
    const v = h[(start + i) % SPARK_POINTS];
    const y = k ? SPARK_H - 1 - (v - lo) * k : mid;
    pts += `${(x0 + i * step).toFixed(1)},${y.toFixed(1)} `;
  }
  row.line.setAttribute('points', pts);
  const first = h[start], last = h[(start + n - 1) % SPARK_POINTS];
  const dir = n < 2 || first === last ? 'flat' : last > first ? 'up' : 'down';
  if (dir !== row.sparkDir) { row.sparkDir = dir; row.spark.dataset.dir = dir; }
}

// "Quiet": no update received for QUIET_MS (by the upstream timestamp); the row is dimmed. Independent of
// the server's stale flag, which says that no feed quotes the symbol any more.
function renderAge(row, now) {
  if (!row.q) return;
  const age = Math.max(0, now - row.q.ts / 1000);
  row.set('age', fmtAge(age));
  const quiet = age > QUIET_MS;
  if (quiet !== row.quiet) { row.quiet = quiet; row.tr.classList.toggle('quiet', quiet); }
}

// Price flash in two steps, strong then faint then gone (data-flash="up2" -> "up1" -> none), stepped by the
// frame loop. Not a CSS animation: with every visible price moving, hundreds of running background
// animations cost a repaint (and a compositor layer) each per frame; steps cost three style changes.
const FLASH_STRONG_MS = 150;
const FLASH_END_MS = 450;
const flashing = new Map();     // td -> {dir, t0, shown}

function flash(row, key, dir, t) {
  const td = row.cells[key];
  const f = flashing.get(td);
  if (f) { f.dir = dir; f.t0 = t; } else flashing.set(td, { dir, t0: t, shown: '' });
}

function stepFlashes(t) {
  for (const [td, f] of flashing) {
    const age = t - f.t0;
    const v = age < FLASH_STRONG_MS ? `${f.dir}2` : age < FLASH_END_MS ? `${f.dir}1` : '';
    if (v !== f.shown) {
      f.shown = v;
      if (v) td.dataset.flash = v; else delete td.dataset.flash;
    }
    if (!v) flashing.delete(td);
  }
}

function clearFlashes(row) {
  for (const td of row.tr.cells) if (flashing.delete(td)) delete td.dataset.flash;
}

// Once a second: ages, stale marks, throttled re-sort on live columns, stats line.
function tick(now) {
  tickDue = false;
  for (const row of rows.values()) if (row.visible) renderAge(row, now);
  if (sortStale) applyOrder();
  const t = performance.now();
  const rate = Math.round((updatesSinceTick * 1000) / (t - lastTick));
  updatesSinceTick = 0;
  lastTick = t;
  let stale = 0;
  for (const r of rows.values()) if (r.serverStale) stale++;
  statsEl.textContent = `${rows.size} symbols${stale ? ` (${stale} stale)` : ''} · ${rate} upd/s · ` +
    `${client.skipped} skipped by conflation · ${WS_URL}`;
}
setInterval(() => { tickDue = true; requestRender(); }, 1000);

// ---- sorting ----

const SORT_VALUE = {
  symbol: (r) => r.sym,
  last: (r) => r.q?.last,
  chg: (r) => (r.q ? changePct(r.q) : undefined),
  bid: (r) => r.q?.bid,
  ask: (r) => r.q?.ask,
  spread: (r) => (r.q ? r.q.ask - r.q.bid : undefined),
  vol: (r) => r.q?.volume,
  src: (r) => r.q?.src,
  time: (r) => r.q?.ts,
};
const TEXT_KEYS = new Set(['symbol', 'src']);

function sanitizeSort(s) {
  return s && SORT_VALUE[s.key] && (s.dir === 1 || s.dir === -1) ? s : { key: null, dir: 1 };
}

// Re-order the tbody, moving only rows that are out of place. Missing values sort last either way;
// ties keep the user's list order.
function applyOrder() {
  sortStale = false;
  const list = [...rows.values()];
  if (sort.key) {
    const get = SORT_VALUE[sort.key];
    const index = new Map(list.map((r, i) => [r, i]));
    const val = (r) => { const v = get(r); return v == null || Number.isNaN(v) ? null : v; };
    list.sort((a, b) => {
      const va = val(a), vb = val(b);
      if (va === null || vb === null) return va === vb ? index.get(a) - index.get(b) : va === null ? 1 : -1;
      const c = typeof va === 'string' ? va.localeCompare(vb) : va - vb;
      return c * sort.dir || index.get(a) - index.get(b);
    });
  }
  let ref = tbody.firstElementChild;
  for (const r of list) {
    if (r.tr === ref) ref = ref.nextElementSibling;
    else tbody.insertBefore(r.tr, ref);
  }
}

function renderSortHeaders() {
  for (const btn of table.tHead.querySelectorAll('button[data-sort]')) {
    const th = btn.parentElement;
    if (btn.dataset.sort === sort.key) th.setAttribute('aria-sort', sort.dir > 0 ? 'ascending' : 'descending');
    else th.removeAttribute('aria-sort');
  }
}

// Click cycles: first direction (ascending for text, descending for numbers) -> the other -> off.
table.tHead.addEventListener('click', (e) => {
  const key = e.target.closest('button[data-sort]')?.dataset.sort;
  if (!key) return;
  const first = TEXT_KEYS.has(key) ? 1 : -1;
  if (sort.key !== key) sort = { key, dir: first };
  else if (sort.dir === first) sort = { key, dir: -first };
  else sort = { key: null, dir: 1 };
  save(SORT_KEY, sort);
  renderSortHeaders();
  applyOrder();
});

// ---- filter ----

// Substring match on the symbol (upper-cased), so it never changes with live data.
function applyFilter(row) {
  const hide = !!filterText && !row.sym.includes(filterText);
  if (row.tr.hidden === hide) return;
  row.tr.hidden = hide;
  // animations do not run while hidden; clear leftovers so they do not replay on show
  if (hide) clearFlashes(row);
}

function renderEmpty() {
  let visible = 0;
  for (const r of rows.values()) if (!r.tr.hidden) visible++;
  emptyEl.hidden = visible > 0;
  emptyEl.textContent = rows.size ? `No symbol matches “${filterInput.value.trim()}”.` : 'No symbols. Add one above.';
}

filterInput.addEventListener('input', () => {
  filterText = filterInput.value.trim().toUpperCase();
  for (const r of rows.values()) applyFilter(r);
  renderEmpty();
});
filterInput.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && filterInput.value) { filterInput.value = ''; filterInput.dispatchEvent(new Event('input')); }
});

// "/" focuses the filter from anywhere but a text field (and not under the chart).
document.addEventListener('keydown', (e) => {
  if (e.key === '/' && !chart.isOpen && !e.ctrlKey && !e.metaKey && !e.altKey && !/^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement?.tagName)) {
    e.preventDefault();
    filterInput.focus();
  }
});

// ---- the symbol list ----

function saveList() {
  save(STORE_KEY, [...rows.keys()]);
}

function addRows(symbols) {
  const fresh = [...new Set(symbols)].filter((s) => !rows.has(s));
  for (const s of fresh) {
    const row = new Row(s);
    rows.set(s, row);
    applyFilter(row);
    tbody.appendChild(row.tr);
    seen.observe(row.tr);
  }
  if (fresh.length) { applyOrder(); renderEmpty(); }
  return fresh;
}

function removeRows(symbols) {
  for (const s of symbols) {
    const row = rows.get(s);
    if (!row) continue;
    rows.delete(s);
    dirty.delete(row);
    seen.unobserve(row.tr);
    clearFlashes(row);
    row.tr.remove();
  }
  saveList();
  renderEmpty();
}

async function addSymbols(symbols) {
  const fresh = addRows(symbols);
  if (!fresh.length) return;
  saveList();
  try {
    // partial: unknown symbols come back through the 'rejected' event, the rest is subscribed
    await client.subscribe(fresh, { partial: true });
  } catch (e) {
    if (e.code === 'too_many_subscriptions') removeRows(fresh);
    // server errors are toasted by the 'error' listener; timeout / disconnected: the client keeps the
    // symbols and subscribes again after reconnecting
    if (e.code === 'timeout') toast(`Subscribe failed: ${e.message}`, 'error');
  }
}

function removeSymbol(sym) {
  removeRows([sym]);
  client.unsubscribe([sym]).catch(() => { /* the server forgets everything on disconnect anyway */ });
}

// A click on × removes the row; anywhere else on a row (the symbol button included) opens its chart,
// unless the click ended a text selection.
tbody.addEventListener('click', (e) => {
  const tr = e.target.closest('tr[data-symbol]');
  if (!tr) return;
  const btn = e.target.closest('button.remove');
  if (!btn) {
    if (e.target.closest('button.sym') || getSelection()?.type !== 'Range') openChart(tr.dataset.symbol);
    return;
  }
  // keep keyboard focus in the table: next row's ×, else previous, else the add box
  const next = [tr.nextElementSibling, tr.previousElementSibling].find((r) => r && !r.hidden);
  removeSymbol(tr.dataset.symbol);
  (next?.querySelector('button.remove') || addInput).focus();
});

// Up and down arrows move between the rows' symbol buttons (Enter or Space then opens the chart).
tbody.addEventListener('keydown', (e) => {
  if ((e.key !== 'ArrowDown' && e.key !== 'ArrowUp') || !e.target.matches('button.sym')) return;
  let tr = e.target.closest('tr');
  do tr = e.key === 'ArrowDown' ? tr.nextElementSibling : tr.previousElementSibling; while (tr?.hidden);
  if (!tr) return;
  e.preventDefault();
  tr.querySelector('button.sym').focus();
});

$('add-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const wanted = addInput.value.toUpperCase().split(/[\s,]+/).filter(Boolean);
  if (!wanted.length) return;
  const bad = wanted.filter((s) => !SYMBOL_RE.test(s));
  if (bad.length) {
    addInput.setAttribute('aria-invalid', 'true');
    toast(`Not a symbol: ${bad.join(', ')} (expected BASE-QUOTE, e.g. BTC-USD)`, 'error');
    return;
  }
  addInput.removeAttribute('aria-invalid');
  const dup = wanted.filter((s) => rows.has(s));
  if (dup.length === wanted.length) toast(`Already in the list: ${dup.join(', ')}`);
  addSymbols(wanted);
  addInput.value = '';
});
addInput.addEventListener('input', () => addInput.removeAttribute('aria-invalid'));

// /api/symbols fills the datalist and, when nothing is stored, gives the default list.
let knownLoading = null;
let needDefaults = false;
function loadKnown() {
  if (known.size || knownLoading) return knownLoading;
  knownLoading = fetch(`${API_BASE}/api/symbols`, { cache: 'no-store' })
    .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
    .then((body) => {
      const list = (body?.symbols || []).map((x) => (typeof x === 'string' ? { symbol: x } : x)).filter((x) => x?.symbol);
      const opts = document.createDocumentFragment();
      for (const info of list) {
        known.set(info.symbol, info);
        opts.appendChild(new Option(info.symbol));
      }
      $('known-symbols').replaceChildren(opts);
      for (const row of rows.values()) row.dec = Math.max(row.dec, knownDecimals(row.sym));
      if (needDefaults) {
        needDefaults = false;
        addSymbols(list.slice(0, DEFAULT_COUNT).map((x) => x.symbol));
      }
    })
    .catch(() => { /* retried on the next (re)connect */ })
    .finally(() => { knownLoading = null; });
  return knownLoading;
}

// ---- the chart ----

const chart = new Chart($('chart'), {
  apiBase: API_BASE,
  quote: (sym) => rows.get(sym)?.q,
  decimals: (sym) => rows.get(sym)?.dec ?? 2,
  recentValues: (sym) => rows.get(sym)?.recentValues() ?? [],
  serverNow: () => Date.now() + clockOffset,
});

function openChart(sym) {
  const row = rows.get(sym);
  if (row) chart.open(sym, row.cells.symbol.querySelector('button.sym'));
}

// ---- connection ----

// Every subscribe, including the re-subscribe after a reconnect, asks for the sparklines' history.
const client = new TickerdClient(WS_URL, { history: SPARK_HISTORY });

// WebSocket, or the fallback the client moved to when the upgrade failed (tickerd-client.js).
const TRANSPORT_NAMES = { ws: 'WebSocket', sse: 'SSE', poll: 'long-polling' };

client.addEventListener('state', ({ detail: { state, attempt } }) => {
  const view = state === 'open' ? 'live' : state === 'offline' || state === 'closed' ? 'offline' : 'reconnecting';
  statusEl.dataset.state = view;
  statusEl.dataset.transport = client.transport;
  document.body.dataset.conn = view;
  statusText.textContent = view === 'reconnecting'
    ? attempt ? `reconnecting (attempt ${attempt})` : 'connecting…'
    : view === 'live' && client.transport !== 'ws' ? `live · ${TRANSPORT_NAMES[client.transport]}` : view;
  statusEl.title = `transport: ${TRANSPORT_NAMES[client.transport]}`;
  if (view !== 'live' || client.transport !== 'ws') latencyEl.textContent = 'rtt —';
});

client.addEventListener('open', () => {
  loadKnown();
  // The chart joins live values by seq; after a reconnect (maybe to a restarted server, which numbers
  // them from 1 again) it loads its history afresh, which also fills what was missed meanwhile.
  if (client.counts.connects > 1) {
    for (const row of rows.values()) row.forgetRecent();
    chart.reload();
  }
});

client.addEventListener('data', (e) => onData(e.detail));
client.addEventListener('history', (e) => onHistory(e.detail));

client.addEventListener('latency', ({ detail: { rtt, clockOffset: off } }) => {
  clockOffset = off;
  latencyEl.textContent = `rtt ${rtt < 10 ? rtt.toFixed(1) : Math.round(rtt)} ms`;
});

// Unknown to the server: dropped when the user just added them; kept (and retried by the client) when a
// re-subscribe after (re)connecting found them unknown, e.g. tickerd restarted and a feed has not quoted yet.
client.addEventListener('rejected', ({ detail: { symbols, waiting } }) => {
  const s = symbols.length > 1 ? 's' : '';
  if (!waiting) {
    removeRows(symbols);
    toast(`Unknown symbol${s} dropped: ${symbols.join(', ')}`, 'error');
    return;
  }
  for (const sym of symbols) {
    const row = rows.get(sym);
    if (!row) continue;
    row.waiting = true;
    row.tr.dataset.waiting = '';
    row.tr.title = 'Not known to the server (yet): retrying';
  }
  toast(`Not known to the server (yet), retrying: ${symbols.join(', ')}`);
});

// Server error replies (unknown symbols have their own toast); transport errors show in the status.
client.addEventListener('error', ({ detail }) => {
  if (detail.source === 'server' && detail.code !== 'unknown_symbol') {
    toast(`Server: ${detail.message || detail.code}`, 'error');
  }
});

// ---- toast ----

let toastTimer = 0;
function toast(message, kind = 'info') {
  toastEl.textContent = message;
  toastEl.dataset.kind = kind;
  toastEl.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { toastEl.hidden = true; }, 6000);
}
toastEl.addEventListener('click', () => { toastEl.hidden = true; });

// ---- theme: follows prefers-color-scheme until the toggle picks one ----

const darkQuery = matchMedia('(prefers-color-scheme: dark)');
function effectiveTheme() {
  return document.documentElement.dataset.theme || (darkQuery.matches ? 'dark' : 'light');
}
function renderThemeButton() {
  const dark = effectiveTheme() === 'dark';
  themeBtn.setAttribute('aria-pressed', String(dark));
  themeBtn.title = dark ? 'Switch to light theme' : 'Switch to dark theme';
}
const storedTheme = load(THEME_KEY);
if (storedTheme === 'light' || storedTheme === 'dark') document.documentElement.dataset.theme = storedTheme;
themeBtn.addEventListener('click', () => {
  const t = effectiveTheme() === 'dark' ? 'light' : 'dark';
  document.documentElement.dataset.theme = t;
  save(THEME_KEY, t);
  renderThemeButton();
  chart.refresh();
});
darkQuery.addEventListener('change', () => { renderThemeButton(); chart.refresh(); });
renderThemeButton();

// ---- start ----

sort = sanitizeSort(load(SORT_KEY));
renderSortHeaders();
const stored = load(STORE_KEY);
if (Array.isArray(stored)) addSymbols(stored.filter((s) => typeof s === 'string' && SYMBOL_RE.test(s)));
else needDefaults = true;
renderEmpty();
loadKnown();
client.connect();

// For the console and the browser tests: the client, and the renderer's current row interval.
window.tickerd = {
  client,
  chart,
  renderStats: () => ({ rowInterval, rows: rows.size, dirty: dirty.size, flashing: flashing.size }),
};
