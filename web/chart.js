// The larger chart of one symbol, in a modal <dialog>: candles or a line over a chosen range, loaded from
// GET /api/history and extended live while open. Hand-drawn on two stacked canvases: the chart, and an
// overlay for the crosshair, so moving the pointer redraws two lines and a label, not the chart.
//
// The seam between the stored past and live values is the history's `seq`: values the page has received
// (its recent values of the symbol, and those that arrive while the request runs) are added when their
// seq is above it, so nothing is counted twice and, unless the page itself was conflated, nothing is lost.

import { INTERVAL_US, TIME_STEPS, toCandles, addValue, trimBefore, nearest, niceStep } from './series.js';
import { fmtPrice, fmtPct } from './format.js';

// Each range takes the finest interval whose candles fit one page of the server's max_rows (2000).
export const RANGES = [
  { id: '15m', span: 15 * 60e6, interval: '1s', label: '15 minutes of 1-second candles' },
  { id: '1h', span: 3600e6, interval: '1m', label: '1 hour of 1-minute candles' },
  { id: '6h', span: 6 * 3600e6, interval: '1m', label: '6 hours of 1-minute candles' },
  { id: '24h', span: 24 * 3600e6, interval: '1m', label: '24 hours of 1-minute candles' },
  { id: '7d', span: 7 * 86400e6, interval: '1h', label: '7 days of 1-hour candles' },
];
const KINDS = ['candles', 'line'];
const PAGE_ROWS = 2000;     // rows per request: the server's default max_rows
const MAX_PAGES = 10;       // every range fits one page; this only bounds paging through `next`
const MIN_CANDLES = 30;     // the time axis spans at least this many intervals: a young history is not one fat bar
const DRAW_EVERY_MS = 100;  // live redraws at most 10 times a second
const PREFS_KEY = 'tickerd.chart';

const PAD = { top: 12, right: 8, bottom: 24, left: 10 };
const AXIS_GAP = 8;         // between the plot and the price labels
const LABEL_GAP_PX = 28;    // at least between two time labels
const PRICE_LABEL_PX = 36;  // between two price labels

export class Chart {
  /**
   * dialog: the <dialog id="chart"> of index.html.
   * page: {apiBase, quote(sym), decimals(sym), recentValues(sym), serverNow()}: what the chart needs of
   *       the table (the latest quote, its precision, the values received lately, the server's clock in ms).
   */
  constructor(dialog, page) {
    this.dlg = dialog;
    this.page = page;
    this.q = (sel) => dialog.querySelector(sel);
    this.main = this.q('.chart-main');
    this.over = this.q('.chart-over');
    this.tip = this.q('.chart-tip');
    this.msg = this.q('.chart-msg');
    this.live = this.q('.chart-live');
    const prefs = load(PREFS_KEY) || {};
    this.range = RANGES.find((r) => r.id === prefs.range) || RANGES[0];
    this.kind = KINDS.includes(prefs.kind) ? prefs.kind : 'candles';
    this.symbol = null;
    this.opener = null;
    this.candles = [];
    this.lastSeq = 0;       // the newest seq in `candles` (0: none of this server run)
    this.pending = null;    // values that arrived while loading (null when not loading)
    this.note = '';         // why there is no history (an error), shown over the chart
    this.gen = 0;           // load generation: a newer load makes older responses moot
    this.abort = null;
    this.geo = null;        // the last drawing's scales, for the crosshair
    this.hover = -1;        // candle under the crosshair
    this.pointerY = null;
    this.drawQueued = false;
    this.drawnAt = -Infinity;
    this.buildControls();
    this.bindEvents();
  }

  get isOpen() { return this.dlg.open; }

  open(symbol, opener) {
    this.symbol = symbol;
    this.opener = opener;
    this.dlg.dataset.symbol = symbol;
    this.q('.chart-sym').textContent = symbol;
    if (!this.dlg.open) this.dlg.showModal();
    this.q(`input[name="chart-range"][value="${this.range.id}"]`).focus();
    this.load();
  }

  close() { if (this.dlg.open) this.dlg.close(); }

  /** Reload the open chart: after a reconnect (a restarted server numbers its seqs from 1 again). */
  reload() { if (this.dlg.open) this.load(); }

  /** Redraw with the current colours (the theme changed). */
  refresh() { if (this.dlg.open) this.requestDraw(); }

  /** A value of the open symbol from the stream; kind: snapshot | replay | update (of the frame). */
  onValue(u, kind) {
    if (this.pending) { this.pending.push(u); return; }
    // A snapshot (of a re-subscribe) comes before the replay that joins the subscribe's history to live,
    // and that replay holds it again, in seq order. Applied first, it would hide the values below its seq.
    if (kind === 'snapshot') return;
    if (this.apply(u)) this.requestDraw();
  }

  // ---- data ----

  async load() {
    const gen = ++this.gen;
    this.abort?.abort();
    const abort = (this.abort = new AbortController());
    const { symbol, range } = this;
    const iv = INTERVAL_US[range.interval];
    this.pending = [];
    this.candles = [];  // another range has other candles: none until its own arrive
    this.hover = -1;
    this.setState('loading');
    this.requestDraw();
    let candles = [], seq = 0, note = '';
    try {
      ({ candles, seq } = await this.fetchRange(symbol, range, abort.signal));
    } catch (e) {
      if (abort.signal.aborted || gen !== this.gen) return;
      note = e.message;  // e.g. 503 history_unavailable: the chart still follows live values
    }
    if (gen !== this.gen) return;
    this.candles = candles;
    this.lastSeq = seq;
    this.note = note;
    // Join the live values: what the page received lately and what came during the request, in seq
    // order (a snapshot may have come before a replay of older values); apply() skips what the history
    // holds, and repeats.
    const joined = [...this.page.recentValues(symbol), ...this.pending].sort((a, b) => a.seq - b.seq);
    this.pending = null;
    for (const u of joined) this.apply(u);
    trimBefore(this.candles, this.lastT() + iv - range.span);
    this.setState(note ? 'unavailable' : this.candles.length ? 'ready' : 'empty');
    this.requestDraw();
  }

  // GET /api/history from the start of the range (aligned to its interval) to now, following `next`.
  async fetchRange(symbol, range, signal) {
    const iv = INTERVAL_US[range.interval];
    const nowUs = this.page.serverNow() * 1000;
    let from = Math.floor((nowUs - range.span) / iv) * iv;
    const rows = [];
    let columns = null, seq = 0;
    for (let n = 0; n < MAX_PAGES && from != null; n++) {
      const url = `${this.page.apiBase}/api/history?symbol=${encodeURIComponent(symbol)}` +
        `&interval=${range.interval}&from=${from}&limit=${PAGE_ROWS}`;
      const res = await fetch(url, { signal, cache: 'no-store' });
      const body = await res.json().catch(() => null);
      if (!res.ok || !body) {
        const why = body?.message || body?.error || `HTTP ${res.status}`;
        throw new Error(res.status === 503 ? `History unavailable: ${why}` : `History: ${why}`);
      }
      columns = body.columns;
      if (Array.isArray(body.rows)) for (const r of body.rows) rows.push(r);
      if (Number.isFinite(body.seq)) seq = body.seq;
      from = body.next ?? null;
    }
    return { candles: toCandles(columns, rows), seq };
  }

  // Add a value unless the history already holds it (seq at or below the seam). Stale values repeat the
  // last price; the store keeps none of them, and neither does the chart.
  apply(u) {
    if (u?.symbol !== this.symbol) return false;
    if (Number.isFinite(u.seq)) {
      if (u.seq <= this.lastSeq) return false;
      this.lastSeq = u.seq;
    }
    if (u.stale === true) return false;
    const iv = INTERVAL_US[this.range.interval];
    const before = this.candles.length;
    if (!addValue(this.candles, u.ts, u.last, iv)) return false;
    if (this.candles.length !== before) {
      trimBefore(this.candles, this.lastT() + iv - this.range.span);
      if (this.dlg.dataset.state === 'empty') this.setState('ready');
    }
    return true;
  }

  lastT() { return this.candles.length ? this.candles[this.candles.length - 1].t : 0; }

  // loading | ready | empty (no history in the range yet) | unavailable (the history request failed: the
  // chart shows live values only, under a note that says why)
  setState(state) {
    const d = this.dlg.dataset;
    d.state = state;
    // with the state, not only at the next frame's draw: a reader of "ready" sees the candles it holds
    d.points = String(this.candles.length);
    d.range = this.range.id;
    d.interval = this.range.interval;
    d.kind = this.kind;
    this.q('.chart-box').setAttribute('aria-busy', String(state === 'loading'));
    this.msg.textContent = state === 'loading' ? 'Loading…'
      : state === 'unavailable' ? `${this.note}. Showing live values only.`
        : state === 'empty' ? 'No history in this range yet: the chart fills as prices arrive.' : '';
    this.msg.hidden = !this.msg.textContent;
    this.msg.dataset.place = state === 'unavailable' ? 'top' : 'middle';
  }

  // ---- controls and events ----

  buildControls() {
    const group = this.q('.chart-range');
    for (const r of RANGES) {
      const label = document.createElement('label');
      label.title = r.label;
      label.innerHTML = '<input type="radio" name="chart-range"><span></span>';
      label.firstChild.value = r.id;
      label.firstChild.checked = r === this.range;
      label.lastChild.textContent = r.id;
      group.appendChild(label);
    }
    this.q(`input[name="chart-kind"][value="${this.kind}"]`).checked = true;
  }

  bindEvents() {
    this.q('.chart-range').addEventListener('change', (e) => {
      this.range = RANGES.find((r) => r.id === e.target.value) || this.range;
      this.savePrefs();
      this.load();
    });
    this.q('.chart-kind').addEventListener('change', (e) => {
      this.kind = e.target.value;
      this.dlg.dataset.kind = this.kind;
      this.savePrefs();
      this.requestDraw();
    });
    this.q('.chart-close').addEventListener('click', () => this.close());
    // A click on the backdrop closes it, as Escape does. The backdrop's clicks have the dialog as their
    // target, and so do those on its padding: only one outside its box counts.
    this.dlg.addEventListener('click', (e) => {
      const r = this.dlg.getBoundingClientRect();
      const outside = e.clientX < r.left || e.clientX > r.right || e.clientY < r.top || e.clientY > r.bottom;
      if (e.target === this.dlg && outside) this.close();
    });
    this.dlg.addEventListener('close', () => {
      this.gen++;
      this.abort?.abort();
      this.pending = null;
      this.tip.hidden = true;
      this.dlg.dataset.state = 'closed';
      if (this.opener?.isConnected) this.opener.focus();
    });
    // pointerdown too: a tap on a touch screen shows the candle under the finger
    for (const type of ['pointermove', 'pointerdown']) {
      this.over.addEventListener(type, (e) => this.pointAt(e.offsetX, e.offsetY));
    }
    this.over.addEventListener('pointerleave', () => { this.hover = -1; this.drawOverlay(); });
    this.over.addEventListener('keydown', (e) => this.onKey(e));
    this.over.addEventListener('blur', () => { this.hover = -1; this.drawOverlay(); });
    new ResizeObserver(() => this.requestDraw()).observe(this.q('.chart-box'));
  }

  savePrefs() { save(PREFS_KEY, { range: this.range.id, kind: this.kind }); }

  pointAt(x, y) {
    const g = this.geo;
    if (!g || !this.candles.length) return;
    this.hover = nearest(this.candles, g.tAt(x) - g.iv / 2);
    this.pointerY = y;
    this.drawOverlay();
  }

  // Arrow keys walk the candles (the crosshair follows and a live region reads them out); Home/End jump.
  onKey(e) {
    const n = this.candles.length;
    if (!n) return;
    const steps = { ArrowLeft: -1, ArrowRight: 1, PageUp: -10, PageDown: 10 };
    let i;
    if (e.key in steps) i = (this.hover < 0 ? n - 1 : this.hover + steps[e.key]);
    else if (e.key === 'Home') i = 0;
    else if (e.key === 'End') i = n - 1;
    else return;
    e.preventDefault();
    this.hover = Math.max(0, Math.min(n - 1, i));
    this.pointerY = null;
    this.drawOverlay();
    this.live.textContent = this.describe(this.candles[this.hover]);
  }

  // ---- drawing ----

  requestDraw() {
    if (this.drawQueued || !this.dlg.open) return;
    this.drawQueued = true;
    const wait = Math.max(0, this.drawnAt + DRAW_EVERY_MS - performance.now());
    setTimeout(() => requestAnimationFrame((t) => {
      this.drawQueued = false;
      this.drawnAt = t;
      if (this.dlg.open) this.draw();
    }), wait);
  }

  colors() {
    const cs = getComputedStyle(this.dlg);
    const v = (name) => cs.getPropertyValue(name).trim();
    return { fg: v('--fg'), muted: v('--muted'), line: v('--line'), up: v('--up'), down: v('--down'),
      panel: v('--panel'), accent: v('--accent'), font: `11px ${v('--mono')}` };
  }

  // Size a canvas to its box in device pixels; returns the context scaled to CSS pixels.
  fit(canvas) {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    return { ctx, w, h };
  }

  draw() {
    this.renderHeader();
    const { ctx, w, h } = this.fit(this.main);
    const c = this.colors();
    ctx.font = c.font;
    ctx.textBaseline = 'middle';
    const candles = this.candles;
    this.dlg.dataset.points = String(candles.length);
    if (!candles.length || w < 50 || h < 50) { this.geo = null; this.drawOverlay(); return; }

    const g = (this.geo = this.scales(ctx, w, h));
    this.drawGrid(ctx, g, c);
    if (this.kind === 'line') this.drawLine(ctx, g, c); else this.drawCandles(ctx, g, c);
    this.drawLastPrice(ctx, g, c);
    this.over.setAttribute('aria-label', this.summary());
    this.drawOverlay();
  }

  // x: time -> px (candle t at its left edge); y: price -> px. The price axis sits on the right.
  scales(ctx, w, h) {
    const candles = this.candles;
    const iv = INTERVAL_US[this.range.interval];
    const xMax = candles[candles.length - 1].t + iv;
    const xMin = Math.max(xMax - this.range.span, Math.min(candles[0].t, xMax - MIN_CANDLES * iv));
    let lo = Infinity, hi = -Infinity;
    for (const k of candles) { if (k.l < lo) lo = k.l; if (k.h > hi) hi = k.h; }
    if (hi === lo) { const d = Math.abs(hi) * 1e-4 || 1; lo -= d; hi += d; }
    const pad = (hi - lo) * 0.06;
    lo -= pad; hi += pad;
    const step = niceStep(hi - lo, Math.max(2, (h - PAD.top - PAD.bottom) / PRICE_LABEL_PX));
    const dec = Math.max(0, Math.ceil(-Math.log10(step) - 1e-9));
    // wide enough for the grid labels and for the price tags, which have the quote's precision
    const widest = Math.max(ctx.measureText(fmtPrice(hi, dec)).width,
      ctx.measureText(fmtPrice(hi, Math.max(dec, this.decimals()))).width);
    const axisW = widest + AXIS_GAP + 6;
    const x0 = PAD.left, x1 = w - PAD.right - axisW, y0 = PAD.top, y1 = h - PAD.bottom;
    const kx = (x1 - x0) / (xMax - xMin), ky = (y1 - y0) / (hi - lo);
    return {
      x0, x1, y0, y1, xMin, xMax, lo, hi, iv, step, dec,
      x: (t) => x0 + (t - xMin) * kx,
      tAt: (x) => xMin + (x - x0) / kx,
      y: (v) => y1 - (v - lo) * ky,
      vAt: (y) => lo + (y1 - y) / ky,
      pxPerCandle: iv * kx,
    };
  }

  drawGrid(ctx, g, c) {
    ctx.lineWidth = 1;
    ctx.strokeStyle = c.line;
    ctx.fillStyle = c.muted;
    ctx.textAlign = 'left';
    ctx.beginPath();
    for (let v = Math.ceil(g.lo / g.step) * g.step; v <= g.hi; v += g.step) {
      const y = crisp(g.y(v));
      ctx.moveTo(g.x0, y); ctx.lineTo(g.x1, y);
      ctx.fillText(fmtPrice(v, g.dec), g.x1 + AXIS_GAP, y);
    }
    // Time labels on local-time boundaries (a day step starts at local midnight), as many as fit.
    const pxPerUs = g.pxPerCandle / g.iv;
    const step = TIME_STEPS.find((s) => s * pxPerUs >= ctx.measureText(fmtTime(g.xMax, s)).width + LABEL_GAP_PX)
      ?? TIME_STEPS[TIME_STEPS.length - 1];
    const off = new Date(g.xMax / 1000).getTimezoneOffset() * 60e6;
    ctx.textAlign = 'center';
    for (let t = Math.ceil((g.xMin - off) / step) * step + off; t <= g.xMax; t += step) {
      const x = crisp(g.x(t));
      if (x < g.x0 + 20 || x > g.x1 - 20) continue;
      ctx.moveTo(x, g.y0); ctx.lineTo(x, g.y1);
      ctx.fillText(fmtTime(t, step), x, g.y1 + PAD.bottom / 2 + 1);
    }
    ctx.stroke();
    ctx.strokeStyle = c.muted;
    ctx.beginPath();
    ctx.moveTo(g.x0, crisp(g.y1)); ctx.lineTo(g.x1, crisp(g.y1));
    ctx.stroke();
  }

  // Wicks and bodies, one path per colour. Below 3 px per candle only the high-low bar is left.
  drawCandles(ctx, g, c) {
    const px = g.pxPerCandle;
    const body = px >= 3 ? Math.max(1, Math.floor(px * 0.7)) : 0;
    for (const up of [true, false]) {
      ctx.strokeStyle = ctx.fillStyle = up ? c.up : c.down;
      ctx.lineWidth = 1;
      ctx.beginPath();
      for (const k of this.candles) {
        if ((k.c >= k.o) !== up) continue;
        const x = crisp(g.x(k.t + g.iv / 2));
        ctx.moveTo(x, g.y(k.h)); ctx.lineTo(x, g.y(k.l) + (k.h === k.l ? 1 : 0));
      }
      ctx.stroke();
      if (!body) continue;
      for (const k of this.candles) {
        if ((k.c >= k.o) !== up) continue;
        const top = g.y(Math.max(k.o, k.c)), bottom = g.y(Math.min(k.o, k.c));
        const x = Math.round(g.x(k.t + g.iv / 2) - body / 2);
        ctx.fillRect(x, Math.round(top), body, Math.max(1, Math.round(bottom - top)));
      }
    }
  }

  // Closes joined by a line over a faint area, coloured by the direction over the range.
  drawLine(ctx, g, c) {
    const ks = this.candles;
    const color = ks[ks.length - 1].c >= ks[0].o ? c.up : c.down;
    ctx.beginPath();
    ks.forEach((k, i) => { const x = g.x(k.t + g.iv / 2), y = g.y(k.c); if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y); });
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.5;
    ctx.lineJoin = 'round';
    ctx.stroke();
    ctx.lineTo(g.x(ks[ks.length - 1].t + g.iv / 2), g.y1);
    ctx.lineTo(g.x(ks[0].t + g.iv / 2), g.y1);
    ctx.closePath();
    ctx.globalAlpha = 0.12;
    ctx.fillStyle = color;
    ctx.fill();
    ctx.globalAlpha = 1;
  }

  // A dashed line at the last price, with the price in a tag on the axis.
  drawLastPrice(ctx, g, c) {
    const k = this.candles[this.candles.length - 1];
    const y = crisp(g.y(k.c));
    const color = k.c >= k.o ? c.up : c.down;
    ctx.setLineDash([3, 3]);
    ctx.strokeStyle = color;
    ctx.beginPath(); ctx.moveTo(g.x0, y); ctx.lineTo(g.x1, y); ctx.stroke();
    ctx.setLineDash([]);
    this.tag(ctx, g, y, fmtPrice(k.c, this.decimals()), color, c.panel);
  }

  tag(ctx, g, y, text, bg, fg) {
    const w = ctx.measureText(text).width + 8;
    ctx.fillStyle = bg;
    ctx.fillRect(g.x1 + AXIS_GAP - 4, Math.round(y - 8), w, 16);
    ctx.fillStyle = fg;
    ctx.textAlign = 'left';
    ctx.fillText(text, g.x1 + AXIS_GAP, y);
  }

  // The crosshair: a vertical line through the candle nearest the pointer (or picked with the keys), a
  // horizontal one at the pointer's price (or the candle's close), and the candle in a tooltip.
  drawOverlay() {
    const { ctx } = this.fit(this.over);
    const g = this.geo, k = this.candles[this.hover];
    if (!g || !k) { this.tip.hidden = true; return; }
    const c = this.colors();
    ctx.font = c.font;
    ctx.textBaseline = 'middle';
    const x = crisp(g.x(k.t + g.iv / 2));
    const yp = this.pointerY ?? g.y(k.c);
    const y = crisp(Math.max(g.y0, Math.min(g.y1, yp)));
    ctx.strokeStyle = c.muted;
    ctx.setLineDash([2, 3]);
    ctx.beginPath();
    ctx.moveTo(x, g.y0); ctx.lineTo(x, g.y1);
    ctx.moveTo(g.x0, y); ctx.lineTo(g.x1, y);
    ctx.stroke();
    ctx.setLineDash([]);
    this.tag(ctx, g, y, fmtPrice(g.vAt(y), this.decimals()), c.fg, c.panel);

    this.tip.textContent = this.describe(k);
    this.tip.hidden = false;
    const box = this.over.clientWidth;
    const tw = this.tip.offsetWidth;
    this.tip.style.left = `${x + 12 + tw > g.x1 ? Math.max(0, x - 12 - tw) : x + 12}px`;
    this.tip.style.top = `${g.y0}px`;
    if (tw > box) this.tip.style.left = '0px';
  }

  describe(k) {
    const d = this.decimals();
    const p = (v) => fmtPrice(v, d);
    const when = fmtStamp(k.t, INTERVAL_US[this.range.interval]);
    return `${when} · ${k.n} value${k.n === 1 ? '' : 's'}\nO ${p(k.o)}  H ${p(k.h)}\nL ${p(k.l)}  C ${p(k.c)}`;
  }

  summary() {
    const ks = this.candles;
    let lo = Infinity, hi = -Infinity;
    for (const k of ks) { if (k.l < lo) lo = k.l; if (k.h > hi) hi = k.h; }
    const d = this.decimals();
    const kind = this.kind === 'line' ? 'Line chart' : 'Candlestick chart';
    return `${kind} of ${this.symbol}, ${this.range.label}: ${ks.length} candles from ` +
      `${fmtStamp(ks[0].t, 1e6)} to ${fmtStamp(ks[ks.length - 1].t, 1e6)}, low ${fmtPrice(lo, d)}, ` +
      `high ${fmtPrice(hi, d)}, last ${fmtPrice(ks[ks.length - 1].c, d)}. Arrow keys read the candles.`;
  }

  renderHeader() {
    const q = this.page.quote(this.symbol);
    this.q('.chart-last').textContent = q ? fmtPrice(q.last, this.decimals()) : '';
    const pct = q ? q.change_pct : NaN;
    const chg = this.q('.chart-chg');
    chg.textContent = Number.isFinite(pct) ? fmtPct(pct) : '';
    chg.dataset.sign = pct > 0 ? 'pos' : pct < 0 ? 'neg' : '';
  }

  decimals() { return this.page.decimals(this.symbol); }
}

// Half-pixel alignment makes 1 px lines sharp.
const crisp = (v) => Math.round(v) + 0.5;

const p2 = (n) => String(n).padStart(2, '0');
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

// An axis label: as precise as the label step needs; local midnight shows the date instead.
function fmtTime(us, step) {
  const d = new Date(us / 1000);
  const hm = `${p2(d.getHours())}:${p2(d.getMinutes())}`;
  if (step < 60e6) return `${hm}:${p2(d.getSeconds())}`;
  if (step < 86400e6 && (d.getHours() || d.getMinutes())) return hm;
  return `${MONTHS[d.getMonth()]} ${d.getDate()}`;
}

// A candle's start in the tooltip: the date, and the time to the candle's precision.
function fmtStamp(us, iv) {
  const d = new Date(us / 1000);
  const time = `${p2(d.getHours())}:${p2(d.getMinutes())}${iv < 60e6 ? `:${p2(d.getSeconds())}` : ''}`;
  return `${MONTHS[d.getMonth()]} ${d.getDate()} ${time}`;
}

function load(key) {
  try { return JSON.parse(localStorage.getItem(key)); } catch { return null; }
}
function save(key, value) {
  try { localStorage.setItem(key, JSON.stringify(value)); } catch { /* ignore */ }
}
