// The SDK's fallback (web/tickerd-client.js + tickerd-http.js) against the real tickerd, behind a loopback
// proxy like the ones that break WebSocket: it forwards plain HTTP (streamed, so SSE passes) but refuses
// every Upgrade, and can refuse /sse too. Also the page in real Chromium behind the same proxy.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import WebSocket from 'ws';
import { startTickerd, stopAll, waitFor, waitForSymbols, simConfig, launchChromium } from './lib/harness.mjs';
import { TickerdClient } from '../../web/tickerd-client.js';


const T = { timeout: 90000 };
const proxies = [];
let browser;
after(async () => { await browser?.close(); for (const p of proxies) p.close(); await stopAll(); });

/** A proxy to srv; blocked: {upgrade: true} refuses WebSocket upgrades, {sse: true} answers /sse with 502. */
async function startProxy(srv, blocked) {
  const counts = { upgrades: 0, sse: 0, poll: 0 };
  const server = http.createServer((req, res) => {
    if (req.url.startsWith('/sse')) counts.sse++;
    if (req.url.startsWith('/api/poll')) counts.poll++;
    if (blocked.sse && req.url.startsWith('/sse')) { res.writeHead(502).end('no streams here'); return; }
    const up = http.request({ host: '127.0.0.1', port: srv.port, path: req.url, method: req.method,
      headers: { ...req.headers, host: `127.0.0.1:${srv.port}` } }, (r) => {
      res.writeHead(r.statusCode, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    res.on('close', () => up.destroy());
    req.pipe(up);
  });
  server.on('upgrade', (req, socket) => {
    counts.upgrades++;
    if (blocked.upgrade) { socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n'); return; }
    socket.destroy();
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const p = { port: server.address().port, counts, blocked, close: () => { server.closeAllConnections?.(); server.close(); } };
  proxies.push(p);
  return p;
}

function client(url, opts = {}) {
  const c = new TickerdClient(url, { WebSocket, fallback: true, baseDelay: 100, ...opts });
  const transports = [];
  c.on('transport', ({ transport }) => transports.push(transport));
  const values = [];
  c.on('data', (d) => values.push(d));
  return { c, transports, values };
}

test('WebSocket refused: the SDK goes on over SSE with the same subscriptions, acks and errors', T, async () => {
  const srv = await startTickerd({ config: simConfig({ rate: 400 }) });
  await waitForSymbols(srv, ['BTC-USD', 'ETH-USD']);
  const proxy = await startProxy(srv, { upgrade: true });
  const { c, transports, values } = client(`ws://127.0.0.1:${proxy.port}/ws`);
  c.connect();
  await c.ready({ timeout: 10000 });
  assert.equal(c.transport, 'sse');
  assert.deepEqual(transports, ['sse']);
  assert.ok(proxy.counts.upgrades >= 1, 'a WebSocket was tried first');
  const ack = await c.subscribe(['BTC-USD']);
  assert.deepEqual(ack.symbols, ['BTC-USD']);
  await waitFor(() => c.lastSeq('BTC-USD') > 0, { message: 'BTC-USD values over SSE' });
  // A second symbol reopens the stream from its last position: BTC-USD goes on without a reset.
  await c.subscribe(['ETH-USD']);
  const before = c.lastSeq('BTC-USD');
  await waitFor(() => c.lastSeq('ETH-USD') > 0 && c.lastSeq('BTC-USD') > before + 5, { message: 'both symbols moving' });
  assert.equal(values.filter((v) => v.reset).length, 0, 'no reset while changing subscriptions');
  assert.equal(c.skippedFor('BTC-USD'), 0, 'no value lost when the stream was reopened');
  await assert.rejects(c.subscribe(['NOPE-XYZ']), (e) => e.code === 'unknown_symbol' && e.symbols.includes('NOPE-XYZ'));
  const after = c.lastSeq('ETH-USD');
  await waitFor(() => c.lastSeq('ETH-USD') > after, { message: 'the old set goes on after a refused subscribe' });
  await c.unsubscribe(['ETH-USD']);
  const eth = c.lastSeq('ETH-USD');
  await waitFor(() => c.lastSeq('BTC-USD') > before + 20, { message: 'BTC-USD still moving' });
  assert.equal(c.lastSeq('ETH-USD'), eth, 'no ETH-USD after unsubscribe');
  c.close();
});

test('WebSocket and SSE refused: long-polling, with every value of a symbol', T, async () => {
  const srv = await startTickerd({ config: simConfig({ rate: 400, api: { poll_hold_s: 2 } }) });
  await waitForSymbols(srv, ['BTC-USD']);
  const proxy = await startProxy(srv, { upgrade: true, sse: true });
  const { c, transports } = client(`ws://127.0.0.1:${proxy.port}/ws`);
  c.subscribe(['BTC-USD']);
  c.connect();
  await c.ready({ timeout: 10000 });
  assert.equal(c.transport, 'poll');
  assert.deepEqual(transports, ['sse', 'poll']);
  await waitFor(() => c.lastSeq('BTC-USD') > 20, { message: 'BTC-USD values over long-polling' });
  assert.ok(proxy.counts.poll >= 2);
  assert.equal(c.skippedFor('BTC-USD'), 0, 'every value of one symbol at 20/s arrives over polling');
  c.close();
});

test('a wanted symbol the server does not know does not keep the fallback from opening', T, async () => {
  const srv = await startTickerd({ config: simConfig({ rate: 200 }) });
  await waitForSymbols(srv, ['BTC-USD']);
  const proxy = await startProxy(srv, { upgrade: true });
  const { c } = client(`ws://127.0.0.1:${proxy.port}/ws`);
  const rejected = [];
  c.on('rejected', (r) => rejected.push(r));
  c.subscribe(['BTC-USD', 'NOPE-XYZ']);
  c.connect();
  await c.ready({ timeout: 10000 });
  assert.equal(c.transport, 'sse');
  await waitFor(() => c.lastSeq('BTC-USD') > 0, { message: 'BTC-USD over SSE' });
  await waitFor(() => rejected.length > 0, { message: 'NOPE-XYZ announced as rejected' });
  assert.deepEqual(rejected[0].symbols, ['NOPE-XYZ']);
  assert.equal(rejected[0].waiting, true, 'kept and retried, as over WebSocket');
  c.close();
});

test('on a fallback the SDK moves back to WebSocket once the upgrade works again', T, async () => {
  const srv = await startTickerd({ config: simConfig({ rate: 200 }) });
  await waitForSymbols(srv, ['BTC-USD']);
  // The proxy refuses upgrades; the WebSocket URL the client probes is tickerd's own once unblocked.
  const proxy = await startProxy(srv, { upgrade: true });
  const { c, transports } = client(`ws://127.0.0.1:${proxy.port}/ws`, { upgradeInterval: 500 });
  c.subscribe(['BTC-USD']);
  c.connect();
  await c.ready({ timeout: 10000 });
  assert.equal(c.transport, 'sse');
  proxy.blocked.upgrade = false;
  proxy.close();
  // Stand a plain forwarding proxy up on the same port: upgrades now pass.
  const fwd = http.createServer();
  fwd.on('upgrade', (req, socket, head) => {
    const net = socket.constructor;
    const up = new net();
    up.connect(srv.port, '127.0.0.1', () => {
      up.write(`${req.method} ${req.url} HTTP/1.1\r\n${Object.entries(req.headers).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n`);
      up.write(head);
      socket.pipe(up).pipe(socket);
    });
    up.on('error', () => socket.destroy());
    socket.on('error', () => up.destroy());
  });
  fwd.on('request', (req, res) => {
    const up = http.request({ host: '127.0.0.1', port: srv.port, path: req.url, method: req.method, headers: req.headers },
      (r) => { res.writeHead(r.statusCode, r.headers); r.pipe(res); });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise((r) => fwd.listen(proxy.port, '127.0.0.1', r));
  proxies.push({ close: () => { fwd.closeAllConnections?.(); fwd.close(); } });
  await waitFor(() => c.transport === 'ws' && c.state === 'open', { timeoutMs: 20000, message: 'back on WebSocket' });
  assert.equal(transports[0], 'sse');
  assert.equal(transports.at(-1), 'ws');
  const s = c.lastSeq('BTC-USD');
  await waitFor(() => c.lastSeq('BTC-USD') > s, { message: 'values over WebSocket again' });
  c.close();
});

// A fresh page has no symbols when it connects: the fallback must prove its way through on the endpoint
// itself, or a proxy that refuses /sse would leave it "live" over a stream that cannot carry anything.
for (const [blocked, says, transport] of [[{ upgrade: true }, 'SSE', 'sse'], [{ upgrade: true, sse: true }, 'long-polling', 'poll']]) {
test(`the page behind a proxy that refuses ${blocked.sse ? 'WebSocket and SSE' : 'WebSocket'} shows live prices over ${says} and says so`, T, async () => {
  const srv = await startTickerd({ config: simConfig({ rate: 400 }) });
  await waitForSymbols(srv, ['BTC-USD']);
  browser ??= await launchChromium();
  const proxy = await startProxy(srv, blocked);
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`http://127.0.0.1:${proxy.port}/`);
  await page.waitForFunction((want) => document.getElementById('status-text').textContent === `live · ${want}`,
    says, { timeout: 20000 }).catch(async (e) => {
    throw new Error(`${e.message}; status: ${await page.textContent('#status-text')}, transport ${await page.evaluate(() => window.tickerd?.client.transport)}`);
  });
  // Prices move in the table: a row's last price changes.
  const row = 'tr[data-symbol="BTC-USD"] td.c-last .v';
  await page.waitForSelector(row, { timeout: 10000 });
  const first = await page.textContent(row);
  await page.waitForFunction(([sel, was]) => document.querySelector(sel)?.textContent !== was, [row, first], { timeout: 10000 });
  assert.equal(await page.evaluate(() => window.tickerd.client.transport), transport);
  assert.ok(proxy.counts.upgrades >= 1, 'the page tried WebSocket first');
  assert.deepEqual(errors, []);
  await page.close();
  proxy.close();
});
}
