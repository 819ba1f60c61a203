// Real Chromium EventSource against /sse: updates arrive; after tickerd restarts on the same port the
// EventSource reconnects by itself, sends Last-Event-ID, and the new server (new epoch) answers with an
// explicit reset (or a replay) before any update — never a silent gap.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startTickerd, stopAll, waitForSymbols, simConfig, tempDir, launchChromium } from './lib/harness.mjs';

const T = { timeout: 60000 };

// Every event in window.log as {type, id}; opens counted in window.opens.
const PAGE = `<!doctype html><meta charset="utf-8"><title>sse</title>
<script>
  window.log = []; window.opens = 0;
  const es = new EventSource('/sse?symbols=BTC-USD');
  es.onopen = () => { window.opens++; };
  for (const t of ['snapshot', 'update', 'replay', 'reset', 'error', 'ack'])
    es.addEventListener(t, (e) => { window.log.push({ type: t, id: e.lastEventId, data: e.data || '' }); });
</script>`;

let browser;
after(async () => {
  await browser?.close();
  await stopAll();
});

test('Chromium EventSource: updates, then reconnect after a restart gets reset/replay', T, async () => {
  const root = tempDir();
  fs.writeFileSync(path.join(root, 'index.html'), PAGE);
  const config = simConfig({ rate: 200, server: { web_root: root }, api: { sse_retry_ms: 300 } });
  let srv = await startTickerd({ config });
  const port = srv.port;
  await waitForSymbols(srv, ['BTC-USD']);
  browser = await launchChromium();
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(srv.url);
  await page.waitForFunction(() => window.log.filter((e) => e.type === 'update').length >= 5, null, { timeout: 15000 });
  const before = await page.evaluate(() => window.log.length);
  const lastId = await page.evaluate(() => window.log.at(-1).id);
  assert.ok(lastId.length > 0, 'events carry ids');

  assert.deepEqual(await srv.stop(), { code: 0, signal: null });
  srv = await startTickerd({ config, args: ['--port', String(port)] });
  await waitForSymbols(srv, ['BTC-USD']);
  await page.waitForFunction((n) => window.log.slice(n).some((e) => e.type === 'update'), before, { timeout: 20000 });
  const afterRestart = await page.evaluate((n) => window.log.slice(n), before);
  // (A native connection-error event has no data; the server's error events do.)
  const first = afterRestart.find((e) => e.type !== 'ack' && e.data);
  assert.ok(first.type === 'reset' || first.type === 'replay', `first event after the restart: ${first.type}`);
  assert.ok(await page.evaluate(() => window.opens) >= 2, 'the EventSource reopened');
  assert.notEqual(afterRestart.at(-1).id.split(',')[0], lastId.split(',')[0], 'ids carry the new epoch');
  assert.deepEqual(errors, []);
  await page.close();
  await srv.stop();
});
