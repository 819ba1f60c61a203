// tickerd dashboard. Incoming updates only land in per-row state and mark the row dirty; the DOM is
// written once per animation frame, for dirty rows only, and a cell only when its text changed.

import { TickerdClient } from './tickerd-client.js';
import { decimalsOf, fmtPrice, fmtPct, fmtVol, fmtClock, fmtAge } from './format.js';

const STORE_KEY = 'tickerd.symbols';
const SORT_KEY = 'tickerd.sort';
const THEME_KEY = 'tickerd.theme';
const DEFAULT_COUNT = 20;       // symbols taken from /api/symbols when nothing is stored
const STALE_MS = 15000;         // rows without an update for this long are dimmed
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
let connEpoch = 0;              // bumped on every (re)connect; seq gaps only count within one connection
let clockOffset = 0;            // server clock - local clock, ms (from ping acks)
let sort = { key: null, dir: 1 }; // key null = the user's list order
let filterText = '';
let updatesSinceTick = 0;
let skipped = 0;                // values skipped by server-side conflation (seq gaps)
let lastTick = performance.now();
let tickDue = false;
let sortStale = false;
let frameQueued = false;

class Row {
  constructor(sym) {
    this.sym = sym;
    this.q = null;              // merged latest quote
    this.seq = null;
    this.conn = 0;
    this.dec = knownDecimals(sym);  // price decimals; only ever grows
    this.prev = {};             // last rendered numbers, for flash direction
    this.flip = {};             // alternates the flash animation name so it restarts
    this.text = {};             // last rendered strings, to skip no-op DOM writes
    this.stale = false;
    this.tr = rowTpl.content.firstElementChild.cloneNode(true);
    this.tr.dataset.symbol = sym;
    this.cells = {};
    this.nodes = {};            // Text nodes; writing .data avoids replacing nodes
    for (const td of this.tr.cells) {
      const key = td.className.match(/\bc-(\w+)/)[1];
      this.cells[key] = td;
    }
    this.cells.symbol.textContent = sym;
    this.tr.querySelector('button.remove').setAttribute('aria-label', `Remove ${sym}`);
    const tc = this.cells.time;
    for (const [key, el] of [['last', this.cells.last], ['chg', this.cells.chg], ['bid', this.cells.bid],
      ['ask', this.cells.ask], ['spread', this.cells.spread], ['vol', this.cells.vol], ['src', this.cells.src],
      ['clock', tc.querySelector('.clock')], ['age', tc.querySelector('.age')]]) {
      el.textContent = key === 'age' ? '' : '—';
      this.nodes[key] = el.firstChild || el.appendChild(document.createTextNode(''));
      this.text[key] = this.nodes[key].data;
    }
  }

  set(key, s) {
    if (this.text[key] !== s) { this.text[key] = s; this.nodes[key].data = s; }
  }
}

// /api/symbols entries carry the symbol's latest value (if any): a first hint at its precision.
function knownDecimals(sym) {
  const i = known.get(sym);
  return i ? Math.max(decimalsOf(i.last), decimalsOf(i.bid), decimalsOf(i.ask)) : 0;
}

// ---- incoming data ----

function onData({ kind, updates }) {
  for (const u of updates) {
    const row = rows.get(u?.symbol);
    if (!row) continue; // e.g. a late update for a symbol just removed
    if (Number.isFinite(u.seq)) {
      if (kind === 'update' && row.conn === connEpoch && row.seq !== null && u.seq > row.seq + 1) {
        skipped += u.seq - row.seq - 1;
      }
      row.seq = u.seq;
      row.conn = connEpoch;
    }
    row.q = row.q ? Object.assign(row.q, u) : { ...u }; // optional keys may be absent in later updates
    dirty.add(row);
    updatesSinceTick++;
  }
  requestRender();
}

// ---- rendering (requestAnimationFrame only) ----

function requestRender() {
  if (!frameQueued) { frameQueued = true; requestAnimationFrame(frame); }
}

function frame() {
  frameQueued = false;
  const now = Date.now() + clockOffset;
  for (const row of dirty) renderRow(row, now);
  if (dirty.size && sort.key && sort.key !== 'symbol') sortStale = true;
  dirty.clear();
  if (tickDue) tick(now);
}

function changePct(q) {
  if (Number.isFinite(q.change_pct)) return q.change_pct;
  return Number.isFinite(q.open) && q.open !== 0 ? (100 * (q.last - q.open)) / q.open : NaN;
}

function renderRow(row, now) {
  const q = row.q;
  const dec = (row.dec = Math.max(row.dec, decimalsOf(q.last), decimalsOf(q.bid), decimalsOf(q.ask)));
  for (const k of ['last', 'bid', 'ask']) {
    const v = q[k];
    const p = row.prev[k];
    if (p !== undefined && Number.isFinite(v) && v !== p) flash(row, k, v > p ? 'up' : 'down');
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
  renderAge(row, now);
}

function renderAge(row, now) {
  if (!row.q) return;
  const age = Math.max(0, now - row.q.ts / 1000);
  row.set('age', fmtAge(age));
  const stale = age > STALE_MS;
  if (stale !== row.stale) { row.stale = stale; row.tr.classList.toggle('stale', stale); }
}

// Two identical keyframes (…0 / …1): switching between them restarts the animation without a reflow.
function flash(row, key, dir) {
  const f = (row.flip[key] ^= 1);
  row.cells[key].dataset.flash = dir + f;
}
// Drop the attribute once done so moving or un-hiding a row does not replay it.
tbody.addEventListener('animationend', (e) => {
  const td = e.target;
  if (td.dataset.flash && e.animationName === `flash-${td.dataset.flash}`) delete td.dataset.flash;
});

// Once a second: ages, stale marks, throttled re-sort on live columns, stats line.
function tick(now) {
  tickDue = false;
  for (const row of rows.values()) renderAge(row, now);
  if (sortStale) applyOrder();
  const t = performance.now();
  const rate = Math.round((updatesSinceTick * 1000) / (t - lastTick));
  updatesSinceTick = 0;
  lastTick = t;
  statsEl.textContent = `${rows.size} symbols · ${rate} upd/s · ${skipped} skipped by conflation · ${WS_URL}`;
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
  if (!hide) for (const td of row.tr.cells) delete td.dataset.flash;
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

// "/" focuses the filter from anywhere but a text field.
document.addEventListener('keydown', (e) => {
  if (e.key === '/' && !e.ctrlKey && !e.metaKey && !e.altKey && !/^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement?.tagName)) {
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
    await client.subscribe(fresh); // unknown symbols come back through the 'rejected' event
  } catch (e) {
    if (e.code === 'too_many_subscriptions') removeRows(fresh);
    // timeout / disconnected: the client keeps them and subscribes again after reconnecting
    if (e.code !== 'disconnected') toast(`Subscribe failed: ${e.message}`, 'error');
  }
}

function removeSymbol(sym) {
  removeRows([sym]);
  client.unsubscribe([sym]).catch(() => { /* the server forgets everything on disconnect anyway */ });
}

tbody.addEventListener('click', (e) => {
  const btn = e.target.closest('button.remove');
  if (!btn) return;
  const tr = btn.closest('tr');
  // keep keyboard focus in the table: next row's ×, else previous, else the add box
  const next = [tr.nextElementSibling, tr.previousElementSibling].find((r) => r && !r.hidden);
  removeSymbol(tr.dataset.symbol);
  (next?.querySelector('button.remove') || addInput).focus();
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

// ---- connection ----

const client = new TickerdClient(WS_URL);

client.addEventListener('state', ({ detail: { state, attempt } }) => {
  const view = state === 'open' ? 'live' : state === 'offline' || state === 'closed' ? 'offline' : 'reconnecting';
  statusEl.dataset.state = view;
  document.body.dataset.conn = view;
  statusText.textContent = view === 'reconnecting'
    ? attempt ? `reconnecting (attempt ${attempt})` : 'connecting…'
    : view;
  if (view !== 'live') latencyEl.textContent = 'rtt —';
});

client.addEventListener('open', () => {
  connEpoch++;
  loadKnown();
});

client.addEventListener('data', (e) => onData(e.detail));

client.addEventListener('latency', ({ detail: { rtt, clockOffset: off } }) => {
  clockOffset = off;
  latencyEl.textContent = `rtt ${rtt < 10 ? rtt.toFixed(1) : Math.round(rtt)} ms`;
});

client.addEventListener('rejected', ({ detail: { symbols } }) => {
  removeRows(symbols);
  toast(`Unknown symbol${symbols.length > 1 ? 's' : ''} dropped: ${symbols.join(', ')}`, 'error');
});

client.addEventListener('error', ({ detail }) => {
  toast(`Server: ${detail.message || detail.code}`, 'error');
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
});
darkQuery.addEventListener('change', renderThemeButton);
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
