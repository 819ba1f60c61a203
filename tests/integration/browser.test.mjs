// The dashboard in a real browser (Debian chromium driven by playwright-core) against a real tickerd:
// rows for the default symbols appear, prices move, add/remove change the server-side subscription,
// and the page reconnects by itself after tickerd restarts. Sparklines per row, filled from history on
// load; the chart dialog (candles from /api/history, range switch, live extension, keyboard, Escape); the
// stale badge for a symbol whose only feed (a `rest` feed on the fake exchange) stalls; frame rate with
// 200 rows at full rate. Saves screenshots to artifacts/.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  startTickerd, stopAll, metrics, waitFor, waitForSymbols, simConfig, sleep, startFake, httpGet, tempDir, launchChromium,
} from './lib/harness.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const ARTIFACTS = path.join(ROOT, 'artifacts');
const T = { timeout: 60000 };

let browser;
after(async () => {
  await browser?.close();
  await stopAll();
});

async function openPage(srv, { colorScheme = 'light', viewport = { width: 1280, height: 760 } } = {}) {
  browser ??= await launchChromium();
  const page = await browser.newPage({ viewport, colorScheme });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(srv.url);
  return { page, errors };
}

/** Wait until the store holds `n` 1-second candles of `symbol` (it writes once a second). */
async function historyHas(srv, n, symbol = 'BTC-USD') {
  await waitFor(async () => {
    const r = await httpGet(srv, `/api/history?symbol=${symbol}&interval=1s&limit=${n}`);
    return r.status === 200 && r.json().rows.length >= n;
  }, { timeoutMs: 15000, message: `${n} one-second candles of ${symbol} in the history` });
}

/**
 * Make the page show exactly `symbols`, the way a user's saved choice does: store them and reload. A fresh
 * page saves its own default list once /api/symbols answers; storing ours before that would be overwritten
 * (the race that made these tests flaky), so wait for the page's first save.
 */
async function showSymbols(page, symbols) {
  await page.waitForFunction(() => localStorage.getItem('tickerd.symbols') !== null);
  await page.evaluate((l) => localStorage.setItem('tickerd.symbols', JSON.stringify(l)), symbols);
  await page.reload();
}

const lastPrices = (page) => page.$$eval('#quotes tbody tr[data-symbol]',
  (rows) => Object.fromEntries(rows.map((r) => [r.dataset.symbol, r.querySelector('.c-last').textContent])));
// symbol -> the sparkline's points attribute (null: no sparkline element in the row)
const sparklines = (page) => page.$$eval('#quotes tbody tr[data-symbol]',
  (rows) => Object.fromEntries(rows.map((r) => [r.dataset.symbol,
    r.querySelector('.c-spark svg.spark polyline')?.getAttribute('points') ?? null])));
const pointCount = (pts) => (pts || '').trim().split(/\s+/).filter(Boolean).length;

test('rows for the default symbols appear within 2 s and their prices move', T, async () => {
  const srv = await startTickerd({ config: simConfig({ rate: 400 }) });
  const { page, errors } = await openPage(srv);
  const t0 = Date.now();
  await page.waitForFunction(() => document.querySelectorAll('#quotes tbody tr[data-symbol]').length >= 20
    && [...document.querySelectorAll('#quotes tbody .c-last')].every((c) => /\d/.test(c.textContent)),
  null, { timeout: 2000 });
  const appeared = Date.now() - t0;
  const before = await lastPrices(page);
  for (const s of ['BTC-USD', 'ETH-USD', 'AAPL-USD', 'EUR-USD', 'USD-JPY']) assert.ok(before[s], `row ${s}`);
  assert.equal(await page.getAttribute('#status', 'data-state'), 'live');

  await sleep(1500);
  const after1 = await lastPrices(page);
  const moved = Object.keys(before).filter((s) => after1[s] !== before[s]);
  assert.ok(moved.length >= 5, `only ${moved.length} prices changed in 1.5 s`);

  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard.png') });
  assert.deepEqual(errors, [], 'no page errors');
  console.log(`# rows appeared after ${appeared} ms; ${moved.length} prices moved`);
  await page.close();
});

test('adding and removing a symbol changes the subscription on the server', T, async () => {
  const srv = await startTickerd({ config: simConfig({ rate: 400 }) });
  const { page } = await openPage(srv);
  await showSymbols(page, ['BTC-USD']);
  await page.waitForSelector('#quotes tr[data-symbol="BTC-USD"]');
  const subs = async () => (await metrics(srv)).sum('tickerd_subscriptions');
  await waitFor(async () => (await subs()) === 1, { timeoutMs: 10000, message: 'one subscription' });

  await page.fill('#add-symbol', 'EUR-USD');
  await page.click('#add-btn');
  await page.waitForSelector('#quotes tr[data-symbol="EUR-USD"] .c-last:not(:empty)');
  await waitFor(async () => (await subs()) === 2, { timeoutMs: 10000, message: 'two subscriptions' });

  await page.click('#quotes tr[data-symbol="BTC-USD"] button.remove');
  await waitFor(async () => (await subs()) === 1, { timeoutMs: 10000, message: 'back to one subscription' });
  assert.equal(await page.locator('#quotes tr[data-symbol="BTC-USD"]').count(), 0);
  // The choice survives a reload.
  await page.reload();
  await page.waitForSelector('#quotes tr[data-symbol="EUR-USD"]');
  assert.equal(await page.locator('#quotes tbody tr[data-symbol]').count(), 1);
  await page.close();
});

test('after tickerd stops the page shows reconnecting, and recovers with the same symbols', T, async () => {
  let srv = await startTickerd({ config: simConfig({ rate: 400 }) });
  const port = srv.port;
  const { page } = await openPage(srv);
  await showSymbols(page, ['ETH-USD', 'SOL-USD']);
  await page.waitForSelector('#status[data-state="live"]');
  await srv.stop('SIGTERM');
  await page.waitForSelector('#status[data-state="reconnecting"]', { timeout: 5000 });

  srv = await startTickerd({ config: simConfig({ rate: 400 }), args: ['--port', String(port)] });
  await page.waitForSelector('#status[data-state="live"]', { timeout: 35000 });
  // The page may first have reached the old server in its last moments (and been sent 1001), so allow it
  // one more backoff step.
  await waitFor(async () => (await metrics(srv)).sum('tickerd_subscriptions') === 2,
    { timeoutMs: 20000, message: 'the page re-subscribed its two symbols' });
  const rows = await page.$$eval('#quotes tbody tr[data-symbol]', (r) => r.map((x) => x.dataset.symbol).sort());
  assert.deepEqual(rows, ['ETH-USD', 'SOL-USD']);
  await page.close();
});

test('every row has a sparkline that follows its price', T, async () => {
  const srv = await startTickerd({ config: simConfig({ rate: 400 }) });
  const started = Date.now();
  const { page, errors } = await openPage(srv);
  await page.waitForFunction(() => document.querySelectorAll('#quotes tbody tr[data-symbol]').length >= 20, null,
    { timeout: 5000 });
  await sleep(1200);
  const a = await sparklines(page);
  assert.ok(Object.keys(a).length >= 20);
  for (const [sym, pts] of Object.entries(a)) assert.notEqual(pts, null, `${sym}: no sparkline`);
  await sleep(2500);
  const b = await sparklines(page);
  const changed = Object.keys(b).filter((s) => b[s] !== a[s]);
  assert.ok(changed.length >= 10, `only ${changed.length} sparklines changed in 2.5 s`);
  // one point per second of the values' time (history, then live): no more than tickerd has had seconds
  // (and every point inside the box)
  const seconds = Math.ceil((Date.now() - started) / 1000);
  for (const s of changed) {
    const n = pointCount(b[s]);
    assert.ok(n >= 2 && n <= seconds + 1, `${s}: ${n} points after ${seconds} s: ${b[s]}`);
    for (const p of b[s].trim().split(/\s+/)) {
      const [x, y] = p.split(',').map(Number);
      assert.ok(x >= 0 && x <= 100 && y >= 0 && y <= 20, `${s}: point ${p} outside the viewBox`);
    }
  }
  const dirs = await page.$$eval('#quotes tbody svg.spark', (l) => l.map((e) => e.dataset.dir));
  assert.ok(dirs.filter((d) => d === 'up' || d === 'down').length >= 5, `directions: ${dirs}`);
  assert.deepEqual(errors, []);
  await page.close();
});

const sparkCounts = async (page) => Object.fromEntries(Object.entries(await sparklines(page))
  .map(([sym, pts]) => [sym, pointCount(pts)]));

// In the page: all default rows are there, and each sparkline has at least n points.
const everySparkHas = (n) => {
  const rows = [...document.querySelectorAll('#quotes tbody tr[data-symbol]')];
  return rows.length >= 20 && rows.every((r) =>
    (r.querySelector('polyline')?.getAttribute('points') || '').trim().split(/\s+/).filter(Boolean).length >= n);
};

test('sparklines are filled from history as soon as the page loads, then extended live', T, async () => {
  const srv = await startTickerd({ config: simConfig({ rate: 400 }) });
  await historyHas(srv, 6);
  const { page, errors } = await openPage(srv); // resolves at the load event
  // Live values give one point per second: 5 points within 1 s of load can only come from history.
  await page.waitForFunction(everySparkHas, 5, { timeout: 1000 });
  const first = await sparkCounts(page);
  assert.ok(await page.evaluate(() => window.tickerd.client.counts.histories) >= 20, 'a history frame per row');
  await sleep(2500);
  const later = await sparkCounts(page);
  const grown = Object.keys(later).filter((s) => later[s] > first[s]);
  assert.ok(grown.length >= 15, `only ${grown.length} sparklines got new points in 2.5 s: ${JSON.stringify(later)}`);
  for (const n of Object.values(later)) assert.ok(n <= 60, `${n} points: at most one per second over 60 s`);
  assert.deepEqual(errors, []);
  console.log(`# sparkline points: ${Math.min(...Object.values(first))}+ at load, ${later['BTC-USD']} 2.5 s later`);
  await page.close();
});

// "Restarting tickerd keeps yesterday's chart": the history of an earlier run (seq 0 in the history frame:
// nothing of this run in it) still fills the sparklines and the chart. A chart left open reloads when the
// page reconnects and goes on with the new run's values (whose seqs start again from 1).
test('after tickerd restarts on the same state directory, sparklines and chart show the earlier history', T,
  async () => {
    const stateDir = tempDir();
    let srv = await startTickerd({ config: simConfig({ rate: 400 }), stateDir });
    const port = srv.port;
    await historyHas(srv, 8);
    const { page, errors } = await openPage(srv);
    const requests = [];
    page.on('request', (r) => { if (r.url().includes('/api/history')) requests.push(r.url()); });
    await page.waitForFunction(() => /\d/.test(document.querySelector('#quotes tr[data-symbol="BTC-USD"] .c-last')?.textContent));
    await page.click('#quotes tr[data-symbol="BTC-USD"] .c-last');
    await page.waitForSelector('#chart[data-state="ready"]', { timeout: 5000 });

    await srv.stop('SIGTERM');
    srv = await startTickerd({ config: simConfig({ rate: 400 }), stateDir, args: ['--port', String(port)] });
    await page.waitForSelector('#status[data-state="live"]', { timeout: 35000 });
    await waitFor(() => requests.length === 2, { timeoutMs: 5000, message: 'the chart reloads after the reconnect' });
    await page.waitForSelector('#chart[open][data-state="ready"]', { timeout: 5000 });
    const p0 = Number(await page.getAttribute('#chart', 'data-points'));
    assert.ok(p0 >= 8, `${p0} candles: the earlier run's`);
    await page.waitForFunction((n) => Number(document.querySelector('#chart').dataset.points) >= n + 2, p0,
      { timeout: 5000 }); // and new ones from this run's values
    assert.deepEqual(errors, []);
    await page.close();

    // A page opened now: at least 6 points per sparkline within 2 s, more than this run has had seconds.
    const fresh = await openPage(srv);
    await fresh.page.waitForFunction(everySparkHas, 6, { timeout: 2000 });
    assert.deepEqual(fresh.errors, []);
    await fresh.page.close();
  });

const chartData = (page) => page.$eval('#chart', (d) => ({ open: d.open, ...d.dataset }));
// Pixels drawn on the chart canvas (not transparent).
const inked = (page) => page.$eval('#chart canvas.chart-main', (c) => {
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
  return n;
});
const focused = (page) => page.evaluate(() => {
  const e = document.activeElement;
  return { inChart: !!e?.closest('#chart'), cls: e?.className, text: e?.textContent, row: e?.closest('tr')?.dataset.symbol };
});

test('a click on a row opens its chart: candles from /api/history, live, range switch, keyboard, Escape', T,
  async () => {
    const srv = await startTickerd({ config: simConfig({ rate: 400 }) });
    await historyHas(srv, 8);
    const { page, errors } = await openPage(srv);
    const requests = [];
    page.on('request', (r) => { if (r.url().includes('/api/history')) requests.push(new URL(r.url()).searchParams); });
    await page.waitForFunction(() => /\d/.test(document.querySelector('#quotes tr[data-symbol="BTC-USD"] .c-last')?.textContent));

    await page.click('#quotes tr[data-symbol="BTC-USD"] .c-last');
    await page.waitForSelector('#chart[data-state="ready"]', { timeout: 5000 });
    let c = await chartData(page);
    assert.equal(c.open, true);
    assert.deepEqual([c.symbol, c.range, c.interval, c.kind], ['BTC-USD', '15m', '1s', 'candles']);
    assert.ok(Number(c.points) >= 8, `${c.points} candles`);
    assert.equal(requests.length, 1);
    assert.deepEqual([requests[0].get('symbol'), requests[0].get('interval')], ['BTC-USD', '1s']);
    assert.ok((await focused(page)).inChart, 'focus moves into the dialog');
    assert.ok(await inked(page) > 2000, 'candles are drawn');

    // Extended live: new 1-second candles appear while it is open.
    const p0 = Number(c.points);
    await page.waitForFunction((n) => Number(document.querySelector('#chart').dataset.points) >= n + 2, p0,
      { timeout: 5000 });

    // The seam: candles the store has completed since match the chart's, which joined its history to the
    // values the page received by seq: a value counted twice, or one missing, would change a count.
    await sleep(2500);
    const chart = await page.evaluate(() => window.tickerd.chart.candles.map((k) => ({ ...k })));
    const stored = (await httpGet(srv, `/api/history?symbol=BTC-USD&interval=1s&from=${chart[0].t}&limit=2000`)).json();
    const complete = stored.rows.slice(0, -1); // the newest may still be filling
    const byT = new Map(chart.map((k) => [k.t, k]));
    let compared = 0;
    for (const [t, o, h, l, cl, n] of complete) {
      const k = byT.get(t);
      if (!k) continue;
      assert.deepEqual([k.o, k.h, k.l, k.c, k.n], [o, h, l, cl, n], `candle ${t}`);
      compared++;
    }
    assert.ok(compared >= complete.length - 1 && compared >= 8, `${compared} of ${complete.length} candles compared`);
    console.log(`# chart: ${compared} one-second candles equal to the store's across the history/live seam`);

    // Another range fetches again, with its own interval; the line is drawn as well.
    await page.check('#chart input[name="chart-range"][value="1h"]');
    await page.waitForSelector('#chart[data-state="ready"][data-range="1h"]', { timeout: 5000 });
    // The 1 min candles come from the file (flushed every second): wait for the first rather than race it.
    await page.waitForFunction(() => Number(document.querySelector('#chart').dataset.points) >= 1, null, { timeout: 5000 });
    c = await chartData(page);
    assert.equal(c.interval, '1m');
    assert.ok(Number(c.points) >= 1);
    assert.equal(requests.length, 2);
    assert.deepEqual([requests[1].get('symbol'), requests[1].get('interval')], ['BTC-USD', '1m']);
    await page.check('#chart input[name="chart-kind"][value="line"]');
    await page.waitForSelector('#chart[data-kind="line"]');
    await page.check('#chart input[name="chart-range"][value="15m"]');
    await page.waitForSelector('#chart[data-state="ready"][data-range="15m"]', { timeout: 5000 });
    await sleep(300);
    assert.ok(await inked(page) > 1000, 'the line is drawn');
    // the crosshair: hovering shows the candle under the pointer
    const box = await page.locator('#chart canvas.chart-over').boundingBox();
    await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.5);
    await page.waitForSelector('#chart .chart-tip:not([hidden])');
    assert.match(await page.textContent('#chart .chart-tip'), /O [\d,.]+ {2}H [\d,.]+\nL [\d,.]+ {2}C [\d,.]+/);
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-chart.png') });

    // Escape closes it and gives focus back to the row's symbol.
    await page.keyboard.press('Escape');
    await page.waitForFunction(() => !document.querySelector('#chart').open);
    assert.deepEqual(await focused(page).then((f) => [f.inChart, f.row, f.cls]), [false, 'BTC-USD', 'sym']);

    // The keyboard alone: down to the next row, Enter opens its chart (in the kind chosen before), the
    // arrow keys walk its candles, Escape closes.
    await page.keyboard.press('ArrowDown');
    assert.equal((await focused(page)).row, 'ETH-USD');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#chart[open][data-symbol="ETH-USD"][data-state="ready"]', { timeout: 5000 });
    assert.equal((await chartData(page)).kind, 'line');
    await page.focus('#chart canvas.chart-over');
    await page.keyboard.press('End');
    await page.keyboard.press('ArrowLeft');
    assert.match(await page.textContent('#chart .chart-live'), /O [\d,.]+/);
    await page.keyboard.press('Escape');
    await page.waitForFunction(() => !document.querySelector('#chart').open);
    assert.equal((await focused(page)).row, 'ETH-USD');
    assert.deepEqual(errors, []);
    await page.close();
  });

test('with history off: live-only sparklines, and the chart says why and follows live values (phone, dark)', T,
  async () => {
    const srv = await startTickerd({ config: simConfig({ rate: 400, history: { enabled: false } }) });
    const { page, errors } = await openPage(srv, { viewport: { width: 390, height: 800 }, colorScheme: 'dark' });
    await page.waitForFunction(() => /\d/.test(document.querySelector('#quotes tr[data-symbol="BTC-USD"] .c-last')?.textContent));
    await page.click('#quotes tr[data-symbol="BTC-USD"] .c-last');
    await page.waitForSelector('#chart[data-state="unavailable"]', { timeout: 5000 });
    assert.match(await page.textContent('#chart .chart-msg'), /History unavailable: .*live values only/);
    await page.waitForFunction(() => Number(document.querySelector('#chart').dataset.points) >= 2, null,
      { timeout: 5000 });
    const box = await page.locator('#chart').boundingBox();
    assert.ok(box.width >= 385 && box.height >= 790, `the chart fills the phone's screen: ${JSON.stringify(box)}`);
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-chart-phone.png') });
    await page.keyboard.press('Escape');
    await page.waitForFunction(() => !document.querySelector('#chart').open);
    // no history: no toast either (the history frames carry the error, they are not error replies)
    assert.equal(await page.isVisible('#toast'), false);
    assert.deepEqual(errors, []);
    await page.close();
  });

// BTC-USDT and ETH-USDT come only from a `rest` feed on the fake exchange (the sim has no USDT pairs). When
// that venue stalls, no feed quotes them within normalizer.stale_after_ms: the server republishes their last
// value with "stale":true, and the page badges those rows (and only those) until a fresh value arrives.
test('a symbol whose only feed stalls gets the stale badge, cleared by the next fresh value', T, async () => {
  const fx = await startFake({ seed: 3, tickMs: 100 });
  const srv = await startTickerd({
    config: {
      normalizer: { stale_after_ms: 1000 },
      feeds: [
        { type: 'sim', name: 'sim', rate: 200, seed: 12345 },
        { type: 'rest', name: 'cb', venue: 'coinbase', base_url: fx.httpUrl, symbols: ['BTC-USDT', 'ETH-USDT'],
          poll_interval_ms: 200, timeout_ms: 5000, max_backoff_ms: 500 },
      ],
    },
  });
  await waitForSymbols(srv, ['BTC-USDT', 'ETH-USDT'], 10000); // known once the rest feed has polled
  const { page, errors } = await openPage(srv, { colorScheme: 'dark' });
  const list = ['BTC-USD', 'BTC-USDT', 'ETH-USD', 'ETH-USDT', 'SOL-USD', 'XRP-USD', 'ADA-USD', 'DOGE-USD',
    'AAPL-USD', 'MSFT-USD', 'NVDA-USD', 'AMZN-USD', 'TSLA-USD', 'SPY-USD', 'EUR-USD', 'GBP-USD', 'USD-JPY',
    'AUD-USD', 'USD-CHF', 'USD-CAD'];
  await showSymbols(page, list);
  const badge = (sym) => `#quotes tr[data-symbol="${sym}"] .badge-stale`;
  await page.waitForFunction(() => ['BTC-USDT', 'ETH-USDT'].every((s) =>
    /\d/.test(document.querySelector(`#quotes tr[data-symbol="${s}"] .c-last`)?.textContent)), null,
  { timeout: 20000 }); // the page retries a subscribe it could not confirm every 5 s
  assert.equal(await page.locator('#quotes tbody .badge-stale:visible').count(), 0, 'no badge while fresh');
  await sleep(10000); // some sparkline history for the screenshot

  fx.fault({ venue: 'coinbase', kind: 'stall', transport: 'rest' });
  for (const s of ['BTC-USDT', 'ETH-USDT']) await page.waitForSelector(`${badge(s)}:visible`, { timeout: 8000 });
  const staleRows = await page.$$eval('#quotes tbody tr[data-stale]', (r) => r.map((x) => x.dataset.symbol).sort());
  assert.deepEqual(staleRows, ['BTC-USDT', 'ETH-USDT'], 'only the stalled feed\'s symbols');
  assert.equal(await page.locator('#quotes tbody .badge-stale:visible').count(), 2);
  // what the page got from the server
  assert.equal(await page.evaluate(() => window.tickerd.client.latest.get('BTC-USDT').stale), true);
  await sleep(1200); // one stats tick; some flashes settle
  assert.match(await page.textContent('#stats'), /\(2 stale\)/);
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-stale.png') });

  // The badge follows the latest value only: a value without the key (a slow client may skip the
  // "stale":false one) clears it, "stale":true sets it again. Synthetic values through the page's client.
  const inject = (extra) => page.evaluate((x) => {
    const c = window.tickerd.client;
    const { stale, ...u } = c.latest.get('ETH-USDT');
    c.dispatchEvent(new CustomEvent('data', { detail: { kind: 'update', updates: [{ ...u, ...x }] } }));
  }, extra);
  await inject({});
  await page.waitForSelector(`${badge('ETH-USDT')}:not(:visible)`, { state: 'attached', timeout: 2000 });
  await inject({ stale: true });
  await page.waitForSelector(`${badge('ETH-USDT')}:visible`, { timeout: 2000 });

  // The venue answers again: the next value says "stale":false and the badges go.
  fx.fault({ venue: 'coinbase', kind: 'clear' });
  for (const s of ['BTC-USDT', 'ETH-USDT']) {
    await page.waitForSelector(`${badge(s)}:not(:visible)`, { state: 'attached', timeout: 8000 });
  }
  assert.equal(await page.locator('#quotes tbody tr[data-stale]').count(), 0);
  assert.notEqual(await page.evaluate(() => window.tickerd.client.latest.get('BTC-USDT').stale), true);
  assert.deepEqual(errors, [], 'no page errors');
  await page.close();
});

// 200 generated symbols at 20,000 updates/s (each symbol at the server's 10 ms coalescing limit), all 200 on
// the page: frames per second counted with requestAnimationFrame over 5 s. The page renders on animation
// frames only, only rows on screen, each at most every 50 ms (more under load).
test('200 rows updating at full rate: the page keeps animating', T, async () => {
  const srv = await startTickerd({
    config: simConfig({ rate: 20000, feed: { include_defaults: false, generated_symbols: 200 } }),
  });
  const { page, errors } = await openPage(srv);
  const syms = Array.from({ length: 200 }, (_, i) => `G${String(i + 1).padStart(5, '0')}-USD`);
  await showSymbols(page, syms);
  await page.waitForFunction(() => document.querySelectorAll('#quotes tbody tr[data-symbol]').length === 200
    && [...document.querySelectorAll('#quotes tbody .c-last')].slice(0, 20).every((c) => /\d/.test(c.textContent)),
  null, { timeout: 20000 }).catch(async (e) => {
    const state = await page.evaluate(() => ({
      rows: document.querySelectorAll('#quotes tbody tr[data-symbol]').length,
      first: [...document.querySelectorAll('#quotes tbody .c-last')].slice(0, 20).map((c) => c.textContent).join(' '),
      status: document.getElementById('status').dataset.state,
      stats: document.getElementById('stats').textContent,
      client: window.tickerd?.client.stats(),
      render: window.tickerd?.renderStats(),
    }));
    throw new Error(`${e.message}; page: ${JSON.stringify(state)}`);
  });
  await waitFor(async () => (await metrics(srv)).sum('tickerd_subscriptions') === 200,
    { timeoutMs: 5000, message: '200 subscriptions' });
  await sleep(1500);
  const m0 = await metrics(srv);
  const r = await page.evaluate(() => new Promise((resolve) => {
    const c = window.tickerd.client;
    const u0 = c.counts.updates;
    const gaps = [];
    let t0 = 0, last = 0;
    const f = (t) => {
      if (!t0) t0 = last = t;
      else { gaps.push(t - last); last = t; }
      if (t - t0 < 5000) { requestAnimationFrame(f); return; }
      gaps.sort((a, b) => a - b);
      resolve({ fps: gaps.length / ((t - t0) / 1000), p95: gaps[Math.floor(gaps.length * 0.95)],
        worst: gaps.at(-1), updates: (c.counts.updates - u0) / ((t - t0) / 1000), ...window.tickerd.renderStats() });
    };
    requestAnimationFrame(f);
  }));
  const m1 = await metrics(srv);
  const out = (m1.sum('tickerd_updates_out_total') - m0.sum('tickerd_updates_out_total')) / 5;
  console.log(`# 200 rows: ${r.fps.toFixed(1)} fps (p95 frame ${r.p95.toFixed(1)} ms, ` +
    `worst ${r.worst.toFixed(1)} ms), ` +
    `${Math.round(r.updates)} updates/s received by the page (server sent ~${Math.round(out)}/s), ` +
    `row interval ${Math.round(r.rowInterval)} ms`);
  // Behaviour, not speed (speed is bench's job, figures in docs/performance.md): the page keeps receiving,
  // its main thread is never frozen for long, and it keeps painting. CI boxes are shared: one run there
  // measured 7 fps at p95 367 ms where the dev VM measures 37-55 fps; a page that repaints the whole table
  // per message freezes for seconds and fails these.
  assert.ok(r.updates > 500, `the page received only ${Math.round(r.updates)} updates/s`);
  assert.ok(r.worst < 2000, `a frame took ${r.worst.toFixed(0)} ms: the page froze`);
  assert.ok(r.fps >= 2, `${r.fps.toFixed(1)} fps`);
  const moving = await lastPrices(page);
  await sleep(500);
  const moved = await lastPrices(page);
  assert.ok(syms.slice(0, 20).filter((s) => moved[s] !== moving[s]).length >= 10, 'visible rows keep changing');
  assert.deepEqual(errors, []);
  await page.close();
});
