// The dashboard in a real browser (Debian chromium driven by playwright-core) against a real tickerd:
// rows for the default symbols appear, prices move, add/remove change the server-side subscription,
// and the page reconnects by itself after tickerd restarts. Saves a screenshot to artifacts/.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startTickerd, stopAll, metrics, waitFor, simConfig, sleep } from './lib/harness.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const ARTIFACTS = path.join(ROOT, 'artifacts');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// Flags from the machine doc: no sandbox as root, and no background traffic to a closed network.
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const T = { timeout: 60000 };

let browser;
after(async () => {
  await browser?.close();
  await stopAll();
});

async function openPage(srv) {
  browser ??= await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
  const page = await browser.newPage({ viewport: { width: 1280, height: 760 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(srv.url);
  return { page, errors };
}

const lastPrices = (page) => page.$$eval('#quotes tbody tr[data-symbol]',
  (rows) => Object.fromEntries(rows.map((r) => [r.dataset.symbol, r.querySelector('.c-last').textContent])));

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
  await page.evaluate(() => localStorage.setItem('tickerd.symbols', JSON.stringify(['BTC-USD'])));
  await page.reload();
  await page.waitForSelector('#quotes tr[data-symbol="BTC-USD"]');
  const subs = async () => (await metrics(srv)).sum('tickerd_subscriptions');
  await waitFor(async () => (await subs()) === 1, { timeoutMs: 3000, message: 'one subscription' });

  await page.fill('#add-symbol', 'EUR-USD');
  await page.click('#add-btn');
  await page.waitForSelector('#quotes tr[data-symbol="EUR-USD"] .c-last:not(:empty)');
  await waitFor(async () => (await subs()) === 2, { timeoutMs: 3000, message: 'two subscriptions' });

  await page.click('#quotes tr[data-symbol="BTC-USD"] button.remove');
  await waitFor(async () => (await subs()) === 1, { timeoutMs: 3000, message: 'back to one subscription' });
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
  await page.evaluate(() => localStorage.setItem('tickerd.symbols', JSON.stringify(['ETH-USD', 'SOL-USD'])));
  await page.reload();
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
