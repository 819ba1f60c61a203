// The stock Socket.IO client bundle (tests/node_modules/socket.io-client/dist/socket.io.min.js, pinned) in real
// Chromium against a real tickerd: a page on tickerd's origin connects to /socket.io/ (default upgrade, and
// polling only), subscribes, and shows rows whose prices update.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTickerd, stopAll, waitForSymbols, simConfig, tempDir, launchChromium } from './lib/harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BUNDLE = path.join(HERE, '../node_modules/socket.io-client/dist/socket.io.min.js');
const T = { timeout: 60000 };

// The page: rows per symbol, updated from "snapshot" / "update" events; the transport in use in #transport.
const PAGE = (opts) => `<!doctype html><meta charset="utf-8"><title>sio</title>
<script src="/socket.io.min.js"></script>
<div id="transport"></div><div id="ack"></div><table id="rows"></table>
<script>
  const socket = io(${JSON.stringify(opts)});
  const rows = {};
  function show(m) {
    for (const u of m.updates) {
      let r = rows[u.symbol];
      if (!r) { r = rows[u.symbol] = document.createElement('tr'); r.dataset.symbol = u.symbol; document.getElementById('rows').append(r); }
      r.dataset.seq = u.seq; r.dataset.changes = String(Number(r.dataset.changes || 0) + 1);
      r.textContent = u.symbol + ' ' + u.last;
    }
  }
  socket.on('connect', () => socket.emit('subscribe', ['BTC-USD', 'ETH-USD'], (ack) => {
    document.getElementById('ack').textContent = ack.op + ':' + ack.symbols.join(',');
  }));
  socket.on('snapshot', show);
  socket.on('update', show);
  setInterval(() => { document.getElementById('transport').textContent = socket.io.engine?.transport?.name || ''; }, 50);
</script>`;

let browser;
after(async () => {
  await browser?.close();
  await stopAll();
});

for (const [name, opts, transport] of [['default (upgrade)', {}, 'websocket'], ['polling only', { transports: ['polling'] }, 'polling']]) {
  test(`Chromium + socket.io.min.js, ${name}: rows update`, T, async () => {
    // tickerd serves the page and the bundle itself (server.web_root): Chromium refuses a WebSocket from a
    // page that only the test's router fulfilled (local network access checks).
    const root = tempDir();
    fs.writeFileSync(path.join(root, 'index.html'), PAGE(opts));
    fs.copyFileSync(BUNDLE, path.join(root, 'socket.io.min.js'));
    const srv = await startTickerd({ config: simConfig({ rate: 200, server: { web_root: root } }) });
    await waitForSymbols(srv, ['BTC-USD', 'ETH-USD']);
    browser ??= await launchChromium();
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(srv.url);
    await page.waitForFunction(() => document.getElementById('ack').textContent === 'ack:BTC-USD,ETH-USD',
      null, { timeout: 15000 });
    await page.waitForFunction(() => [...document.querySelectorAll('#rows tr')]
      .filter((r) => Number(r.dataset.changes) >= 5).length === 2, null, { timeout: 20000 });
    await page.waitForFunction((t) => document.getElementById('transport').textContent === t, transport,
      { timeout: 15000 });
    const seqs = await page.$$eval('#rows tr', (rs) => rs.map((r) => Number(r.dataset.seq)));
    assert.ok(seqs.every((s) => s > 0));
    assert.deepEqual(errors, []);
    await page.close();
    await srv.stop();
  });
}
