// Abuse limits at the listener (limits.*, server.trusted_proxies; docs/security.md): one address flooding
// connections, slowloris heads, a connection-rate burst, sessions that never subscribe, X-Forwarded-For from
// trusted and untrusted peers. In each, a well-behaved client from another loopback address (127.0.0.2:
// Linux routes all of 127/8 to lo) connects and receives updates meanwhile.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import net from 'node:net';
import WebSocket from 'ws';
import {
  startTickerd, stopAll, metrics, simConfig, sleep, waitFor, withTimeout, Client,
} from './lib/harness.mjs';

const T = { timeout: 60000 };
after(async () => { await stopAll(); });

// The per-address limits skip loopback by default (limits.exempt_addresses): these tests empty that list.
const server = (limits = {}, rest = {}) => startTickerd({
  config: simConfig({ rate: 200, seed: 99, limits: { exempt_addresses: [], ...limits }, ...rest }),
});

const UPGRADE = 'GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n';

/** A raw TCP connection from localAddress that writes payload; collects what comes back. */
function raw(port, payload, localAddress = '127.0.0.1') {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress });
    s.text = '';
    s.isClosed = false;
    s.gone = new Promise((r) => s.on('close', () => { s.isClosed = true; r(); }));
    s.on('data', (d) => { s.text += d.toString('latin1'); });
    s.on('error', () => {});
    s.on('connect', () => { if (payload) s.write(payload); resolve(s); });
    s.once('error', () => resolve(s));
  });
}

/** The well-behaved client: a ws from 127.0.0.2 that subscribes and must get updates. */
async function goodClient(srv, { symbols = ['BTC-USD'], localAddress = '127.0.0.2', headers } = {}) {
  const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/ws`, { localAddress, perMessageDeflate: false, handshakeTimeout: 5000, headers });
  const c = new Client(ws);
  await withTimeout(new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); }), 6000,
    () => 'the well-behaved client could not connect');
  await c.subscribe(symbols);
  await c.next((m) => m.op === 'update', 5000, 'an update for the well-behaved client');
  return c;
}

const refused = (m, reason) => m.value('tickerd_connections_refused_total', { reason });

test('5,000 connections from one address are held to limits.max_connections_per_address; another address is served', T, async () => {
  const CAP = 100, N = 5000;
  const srv = await server({ max_connections_per_address: CAP, new_connections_per_sec: 0 }, { server: { max_connections: 6000 } });
  const socks = [];
  const t0 = Date.now();
  let good;
  for (let i = 0; i < N; i += 500) {
    socks.push(...await Promise.all(Array.from({ length: 500 }, () => raw(srv.port, UPGRADE + '\r\n'))));
    if (i === 2000) good = await goodClient(srv); // in the middle of the flood
  }
  await waitFor(() => socks.filter((s) => s.isClosed).length >= N - CAP, { timeoutMs: 15000, message: 'refused connections closed' });
  const upgraded = socks.filter((s) => s.text.startsWith('HTTP/1.1 101'));
  const tooMany = socks.filter((s) => s.text.startsWith('HTTP/1.1 429'));
  assert.equal(upgraded.length, CAP, `upgraded ${upgraded.length}`);
  assert.ok(tooMany.length > N / 2, `a 429 was read by ${tooMany.length} of the refused (others may see only the close)`);
  assert.match(tooMany[0].text, /Retry-After: 1\r\n[\s\S]*"error":"too_many_connections"/);
  const m = await metrics(srv, { localAddress: '127.0.0.9' });
  // over the cap (per_address), or caught while more than 32 of its heads were unread (pending_per_address)
  const byCap = refused(m, 'per_address'), byPending = refused(m, 'pending_per_address');
  assert.equal(byCap + byPending, N - CAP, `per_address ${byCap} + pending_per_address ${byPending}`);
  assert.ok(byCap > 0);
  assert.equal(m.value('tickerd_connection_addresses'), 3, 'three addresses have connections open (flood, good, metrics)');
  // the good client kept receiving through the flood, and a new one from elsewhere still gets in
  const before = good.framesIn;
  await waitFor(() => good.framesIn > before, { message: 'updates keep coming' });
  const late = await goodClient(srv, { localAddress: '127.0.0.3', symbols: ['ETH-USD'] });
  // closing the held connections gives the address its room back
  for (const s of upgraded.slice(0, 10)) s.destroy();
  await waitFor(async () => {
    const s = await raw(srv.port, UPGRADE + '\r\n');
    await sleep(100);
    s.destroy();
    return s.text.startsWith('HTTP/1.1 101');
  }, { message: 'room again after closing' });
  for (const s of socks) s.destroy();
  good.close();
  late.close();
  console.log(`# flood: ${N} connections in ${Date.now() - t0} ms, ${upgraded.length} held, refused ${byCap} at the cap + ${byPending} pending`);
});

test('1,000 slowloris heads are reaped at limits.header_timeout_ms while another address is served', T, async () => {
  const N = 1000;
  const srv = await server({ header_timeout_ms: 1500, max_pending_heads_per_address: 2000, new_connections_per_sec: 0, max_connections_per_address: 5000 });
  const slow = [];
  for (let i = 0; i < N; i += 250)
    slow.push(...await Promise.all(Array.from({ length: 250 }, () => raw(srv.port, 'GET /ws HTTP/1.1\r\nHost: x\r\nX-Slow: '))));
  const t0 = Date.now();
  await waitFor(async () => (await metrics(srv, { localAddress: '127.0.0.2' })).value('tickerd_http_heads_pending') >= N, { message: 'heads pending' });
  const good = await goodClient(srv);
  // trickling bytes does not extend the deadline
  const trickle = setInterval(() => { for (const s of slow.slice(0, 100)) if (!s.isClosed) s.write('a'); }, 200);
  try {
    await waitFor(() => slow.every((s) => s.isClosed), { timeoutMs: 6000, message: 'slowloris connections reaped' });
  } finally {
    clearInterval(trickle);
  }
  assert.ok(Date.now() - t0 < 5000, `reaped after ${Date.now() - t0} ms`);
  const m = await metrics(srv, { localAddress: '127.0.0.2' });
  assert.ok(m.value('tickerd_http_head_timeouts_total') >= N, `head timeouts ${m.value('tickerd_http_head_timeouts_total')}`);
  assert.equal(m.value('tickerd_http_heads_pending'), 0);
  const before = good.framesIn;
  await waitFor(() => good.framesIn > before, { message: 'the good client still receives' });
  good.close();
});

test('limits.max_pending_heads_per_address refuses unfinished heads beyond it at once (503/429 counted)', T, async () => {
  const srv = await server({ max_pending_heads_per_address: 32, new_connections_per_sec: 0 });
  const slow = await Promise.all(Array.from({ length: 200 }, () => raw(srv.port, 'GET / HTTP/1.1\r\n')));
  await waitFor(() => slow.filter((s) => s.isClosed).length >= 200 - 32, { message: 'over the pending cap refused' });
  const m = await metrics(srv, { localAddress: '127.0.0.2' });
  assert.equal(refused(m, 'pending_per_address'), 200 - 32);
  const good = await goodClient(srv);
  for (const s of slow) s.destroy();
  good.close();
});

test('limits.new_connections_per_sec / _burst: a burst beyond the bucket is refused and counted; the rate refills', T, async () => {
  const srv = await server({ new_connections_per_sec: 10, new_connections_burst: 20 });
  const burst = await Promise.all(Array.from({ length: 100 }, () => raw(srv.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')));
  await waitFor(() => burst.every((s) => s.isClosed), { message: 'burst answered' });
  const ok = burst.filter((s) => / 200 /.test(s.text.split('\r\n')[0])).length;
  const limited = burst.filter((s) => s.text.startsWith('HTTP/1.1 429')).length;
  assert.ok(ok >= 20 && ok <= 23, `served ${ok} of the burst (bucket 20, +10/s)`);
  assert.ok(limited >= 60, `429 read by ${limited}`);
  const m = await metrics(srv, { localAddress: '127.0.0.2' });
  assert.equal(refused(m, 'rate') + ok, 100);
  // another address has its own bucket
  const good = await goodClient(srv);
  await sleep(1100);
  const later = await raw(srv.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  await later.gone;
  assert.match(later.text, /^HTTP\/1\.1 200/, 'a second later the bucket has refilled');
  good.close();
});

test('limits.subscribe_timeout_ms closes a /ws or Socket.IO session that subscribes to nothing (1008, reason names the key)', T, async () => {
  const srv = await server({ subscribe_timeout_ms: 1000 });
  const idle = new Client(new WebSocket(`ws://127.0.0.1:${srv.port}/ws`, { perMessageDeflate: false }));
  const busy = await goodClient(srv, { localAddress: '127.0.0.1' });
  const closed = await withTimeout(idle.closed, 5000, () => 'idle session not closed');
  assert.equal(closed.code, 1008);
  assert.match(closed.reason, /limits\.subscribe_timeout_ms/);
  await sleep(500);
  assert.equal(busy.closeInfo, null, 'a subscribed session stays');
  const m = await metrics(srv);
  assert.equal(m.value('tickerd_subscribe_timeout_closes_total'), 1);
  assert.equal(m.value('tickerd_transport_errors_total', { transport: 'ws', reason: 'subscribe_timeout' }), 1);
  busy.close();

  // the same deadline for a Socket.IO session (the session layer keeps it for every transport)
  const sio = io(`http://127.0.0.1:${srv.port}`, { reconnection: false, transports: ['websocket'] });
  const why = await withTimeout(new Promise((resolve) => sio.on('disconnect', resolve)), 5000,
    () => 'idle Socket.IO session not disconnected');
  assert.equal(why, 'io server disconnect');
  sio.close();
  const m2 = await metrics(srv);
  assert.equal(m2.value('tickerd_subscribe_timeout_closes_total'), 2);
  assert.equal(m2.value('tickerd_transport_errors_total', { transport: 'socketio', reason: 'subscribe_timeout' }), 1);
});

test('X-Forwarded-For is believed only from server.trusted_proxies: limits then apply to the forwarded address', T, async () => {
  const srv = await server({ max_connections_per_address: 3, new_connections_per_sec: 0 }, { server: { trusted_proxies: ['127.0.0.1'] } });
  const via = (client, localAddress = '127.0.0.1', extra = '') => raw(srv.port,
    `${UPGRADE}X-Forwarded-For: ${extra}${client}\r\n\r\n`, localAddress);
  const a = await Promise.all(Array.from({ length: 3 }, () => via('203.0.113.7')));
  await waitFor(() => a.every((s) => s.text.startsWith('HTTP/1.1 101')), { message: 'three through the proxy' });
  // the fourth from the same client is refused; the proxy itself is not capped (others pass through it)
  const fourth = await via('203.0.113.7');
  await fourth.gone;
  assert.match(fourth.text, /^HTTP\/1\.1 429/);
  // the client part left of a trusted hop is what counts; a spoofed leftmost entry changes nothing
  const spoof = await via('203.0.113.7', '127.0.0.1', '198.51.100.1, ');
  await spoof.gone;
  assert.match(spoof.text, /^HTTP\/1\.1 429/);
  const other = await Promise.all(Array.from({ length: 3 }, () => via('203.0.113.8')));
  await waitFor(() => other.every((s) => s.text.startsWith('HTTP/1.1 101')), { message: 'another forwarded client' });
  // from a peer not trusted the header is not believed: it counts as itself (127.0.0.2)
  const untrusted = await Promise.all(Array.from({ length: 4 }, (_, i) => via(`203.0.113.${20 + i}`, '127.0.0.2')));
  await waitFor(() => untrusted.filter((s) => s.isClosed || s.text).length === 4, { message: 'untrusted answered' });
  assert.equal(untrusted.filter((s) => s.text.startsWith('HTTP/1.1 101')).length, 3);
  const m = await metrics(srv, { localAddress: '127.0.0.9' });
  assert.equal(m.value('tickerd_forwarded_connections_total'), 6);
  assert.ok(m.value('tickerd_forwarded_ignored_total') >= 3);
  assert.equal(refused(m, 'per_address'), 3);
  for (const s of [...a, ...other, ...untrusted]) s.destroy();
});

test('limits.max_header_bytes: a head over it is answered 431', T, async () => {
  const srv = await server({ max_header_bytes: 2048 });
  const s = await raw(srv.port, `GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(3000)}\r\n\r\n`);
  await s.gone;
  assert.match(s.text, /^HTTP\/1\.1 431[\s\S]*over 2048 bytes/);
  const fine = await raw(srv.port, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(1500)}\r\nConnection: close\r\n\r\n`);
  await fine.gone;
  assert.match(fine.text, /^HTTP\/1\.1 200/);
});
