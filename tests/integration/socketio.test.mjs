// The Socket.IO endpoint at /socket.io/ (docs/protocol.md "Socket.IO"): the official socket.io-client (pinned in
// package-lock.json) unchanged, in its three transport modes, and the Engine.IO edge cases of the reference server
// (socketio/engine.io-protocol test-suite, ../shared/engineio-notes.md) over raw HTTP.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import {
  startTickerd, stopAll, metrics, waitForSymbols, simConfig, updatesOf, withTimeout, sleep, tempDir,
} from './lib/harness.mjs';

const T = { timeout: 60000 };
let srv;

before(async () => {
  srv = await startTickerd({ config: simConfig({ rate: 200, seed: 777 }) });
  await waitForSymbols(srv, ['BTC-USD', 'ETH-USD']);
});

after(async () => {
  await stopAll();
});

function connectIo(url, opts = {}) {
  const s = io(url, { reconnection: false, ...opts });
  return withTimeout(new Promise((resolve, reject) => {
    s.once('connect', () => resolve(s));
    s.once('connect_error', (e) => reject(new Error(`connect_error: ${e.message}`)));
  }), 10000, () => 'socket.io connect timed out');
}

const emitAck = (s, ev, arg) => withTimeout(new Promise((resolve) => s.emit(ev, arg, resolve)), 10000,
  () => `no ack for ${ev}`);

/** Collect snapshot/update events; checks seq per symbol. */
function track(s) {
  const t = { latest: new Map(), updates: 0, gaps: 0, violations: [], snapshots: [], resets: 0, replays: [] };
  const on = (m, kind) => {
    for (const u of updatesOf(m)) {
      const prev = t.latest.get(u.symbol);
      if (prev !== undefined && kind === 'update') {
        if (!(u.seq > prev)) t.violations.push(`${u.symbol}: seq ${u.seq} after ${prev}`);
        if (u.seq !== prev + 1) t.gaps++;
      }
      t.latest.set(u.symbol, u.seq);
      if (kind === 'update') t.updates++;
    }
  };
  s.on('snapshot', (m) => { t.snapshots.push(m); if (m.reset) t.resets++; on(m, 'snapshot'); });
  s.on('update', (m) => on(m, 'update'));
  s.on('replay', (m) => { t.replays.push(m); on(m, 'update'); });
  return t;
}

const MODES = [
  { name: 'default (polling, then upgrade)', opts: {}, transport: 'websocket' },
  { name: 'websocket only', opts: { transports: ['websocket'] }, transport: 'websocket' },
  { name: 'polling only', opts: { transports: ['polling'] }, transport: 'polling' },
];

for (const mode of MODES) {
  test(`socket.io-client ${mode.name}: subscribe ack, snapshot, updates with consecutive seq, error ack`, T, async () => {
    const s = await connectIo(srv.url, mode.opts);
    try {
      const t = track(s);
      const ack = await emitAck(s, 'subscribe', ['BTC-USD', 'ETH-USD']);
      assert.equal(ack.op, 'ack');
      assert.equal(ack.req, 'subscribe');
      assert.deepEqual(ack.symbols, ['BTC-USD', 'ETH-USD']);
      assert.match(ack.epoch, /^[0-9a-f]+$/);
      const bad = await emitAck(s, 'subscribe', ['NOPE-USD']);
      assert.equal(bad.error.code, 'unknown_symbol');
      assert.match(bad.error.message, /NOPE-USD/);
      // the transport the client ended on (the default mode upgrades)
      await withTimeout((async () => { while (t.updates < 20) await sleep(50); })(), 20000, () => 'too few updates');
      assert.ok(t.snapshots.length >= 1, 'a snapshot came first');
      assert.deepEqual(t.violations, []);
      assert.equal(t.gaps, 0, 'each symbol\'s updates carry consecutive seq');
      await withTimeout((async () => { while (s.io.engine.transport.name !== mode.transport) await sleep(50); })(),
        15000, () => `transport stayed ${s.io.engine.transport.name}`);
      const un = await emitAck(s, 'unsubscribe', ['ETH-USD']);
      assert.equal(un.req, 'unsubscribe');
      const m = await metrics(srv);
      assert.ok(m.value('tickerd_clients', { transport: 'socketio' }) >= 1);
    } finally {
      s.close();
    }
  });
}

test('reconnect after a tickerd restart: resume gives a replay or an explicit reset', T, async () => {
  const dir = tempDir();
  let a = await startTickerd({ config: simConfig({ rate: 200, seed: 11 }), stateDir: dir });
  await waitForSymbols(a, ['BTC-USD']);
  const port = a.port;
  const s = io(a.url, { reconnectionDelay: 100, reconnectionDelayMax: 500 });
  try {
    const t = track(s);
    let epoch;
    let reconnected = 0;
    const subscribe = () => s.emit('subscribe', epoch
      ? { symbols: ['BTC-USD'], epoch, resume: { 'BTC-USD': t.latest.get('BTC-USD') } }
      : ['BTC-USD'], (ack) => { epoch = ack.epoch; });
    s.on('connect', () => { reconnected++; subscribe(); });
    await withTimeout((async () => { while (!epoch || t.updates < 5) await sleep(50); })(), 15000, () => 'no updates');
    const before = { replays: t.replays.length, resets: t.resets };
    await a.stop();
    a = await startTickerd({ config: simConfig({ rate: 200, seed: 11 }), stateDir: dir, args: ['--port', String(port)] });
    await withTimeout((async () => {
      while (reconnected < 2 || (t.replays.length === before.replays && t.resets === before.resets)) await sleep(50);
    })(), 30000, () => 'the reconnecting client got neither a replay nor a reset');
    assert.ok(t.replays.length > before.replays || t.resets > before.resets);
  } finally {
    s.close();
    await a.stop();
  }
});

// ---- raw Engine.IO over HTTP: the reference server's answers ----

const eio = (q = '') => `${srv.url}socket.io/?EIO=4&transport=polling${q}`;

async function handshake() {
  const r = await fetch(eio());
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/plain/);
  const body = await r.text();
  assert.equal(body[0], '0');
  const open = JSON.parse(body.slice(1));
  assert.deepEqual(Object.keys(open).sort(), ['maxPayload', 'pingInterval', 'pingTimeout', 'sid', 'upgrades']);
  assert.deepEqual(open.upgrades, ['websocket']);
  assert.match(open.sid, /^[A-Za-z0-9_-]{20}$/);
  return open;
}

const post = (sid, body) => fetch(eio(`&sid=${sid}`), {
  method: 'POST', body, headers: { 'content-type': 'text/plain;charset=UTF-8' },
});

async function expectError(res, status, code) {
  assert.equal(res.status, status);
  assert.match(res.headers.get('content-type'), /^application\/json/);
  const j = await res.json();
  assert.equal(j.code, code);
  assert.equal(typeof j.message, 'string');
}

test('engine.io: bad EIO version, bad transport, unknown sid, POST handshake -> 400 with the reference codes', T, async () => {
  await expectError(await fetch(`${srv.url}socket.io/?EIO=3&transport=polling`), 400, 5);
  await expectError(await fetch(`${srv.url}socket.io/?transport=polling`), 400, 5);
  await expectError(await fetch(`${srv.url}socket.io/?EIO=4&transport=carrier-pigeon`), 400, 0);
  await expectError(await fetch(eio('&sid=AAAAAAAAAAAAAAAAAAAA')), 400, 1);
  await expectError(await fetch(eio(), { method: 'POST', body: '40' }), 400, 2);
  const a = await handshake();
  const b = await handshake();
  assert.notEqual(a.sid, b.sid);
  const m = await metrics(srv);
  assert.ok(m.value('tickerd_transport_errors_total', { transport: 'socketio', reason: 'unknown_sid' }) >= 1);
  assert.ok(m.value('tickerd_transport_errors_total', { transport: 'socketio', reason: 'bad_version' }) >= 2);
});

test('engine.io: a duplicate GET gets 400, the pending one a close packet, and the session is gone', T, async () => {
  const { sid } = await handshake();
  const first = fetch(eio(`&sid=${sid}`));
  await sleep(200); // the first GET is held (nothing due yet)
  const second = await fetch(eio(`&sid=${sid}`));
  assert.equal(second.status, 400);
  const r1 = await first;
  assert.equal(r1.status, 200);
  assert.equal(await r1.text(), '1');
  await expectError(await fetch(eio(`&sid=${sid}`)), 400, 1);
});

test('engine.io: an oversize POST gets 413; an invalid packet closes the session', T, async () => {
  const { sid, maxPayload } = await handshake();
  const big = await post(sid, '4' + 'x'.repeat(maxPayload + 10));
  assert.equal(big.status, 413);
  await expectError(await fetch(eio(`&sid=${sid}`)), 400, 1);

  const s2 = (await handshake()).sid;
  const bad = await post(s2, '9garbage');
  assert.equal(bad.status, 200); // the reference answers "ok", then closes the session
  await expectError(await fetch(eio(`&sid=${s2}`)), 400, 1);

  // an EVENT before CONNECT, and a non-digit ack id, are Socket.IO decoding errors: the session closes
  const s3 = (await handshake()).sid;
  assert.equal((await post(s3, '40')).status, 200);
  assert.equal((await post(s3, '42abc["subscribe"]')).status, 200);
  await expectError(await fetch(eio(`&sid=${s3}`)), 400, 1);

  const m = await metrics(srv);
  assert.ok(m.value('tickerd_transport_errors_total', { transport: 'socketio', reason: 'payload_too_large' }) >= 1);
  assert.ok(m.value('tickerd_transport_errors_total', { transport: 'socketio', reason: 'invalid_packet' }) >= 2);
});

test('socket.io: CONNECT to another namespace gets CONNECT_ERROR; "/" gets its sid', T, async () => {
  const { sid } = await handshake();
  assert.equal((await post(sid, '40/admin,')).status, 200);
  const r = await fetch(eio(`&sid=${sid}`));
  assert.equal(await r.text(), '44/admin,{"message":"Invalid namespace"}');
  assert.equal((await post(sid, '40')).status, 200);
  const r2 = await (await fetch(eio(`&sid=${sid}`))).text();
  assert.match(r2, /^40\{"sid":"[^"]+"\}$/);
  await post(sid, '1');
});

test('a stalled polling client stays conflated and converges when it polls again', T, async () => {
  const { sid } = await handshake();
  await post(sid, '40');
  assert.match(await (await fetch(eio(`&sid=${sid}`))).text(), /^40/);
  await post(sid, '420["subscribe",["*"]]');
  // no GET for a while: the feed keeps publishing meanwhile
  await sleep(1500);
  const body = await (await fetch(eio(`&sid=${sid}`))).text();
  const packets = body.split('\x1e');
  const events = packets.filter((p) => p.startsWith('42')).map((p) => JSON.parse(p.slice(2)));
  const acks = packets.filter((p) => p.startsWith('430'));
  assert.equal(acks.length, 1, 'the subscribe ack');
  // one payload: at most one entry per symbol per frame, whatever the stall's length (no queue)
  for (const [, frame] of events) {
    const seen = new Set();
    for (const u of updatesOf(frame)) {
      assert.ok(!seen.has(u.symbol), `${u.symbol} twice in one frame`);
      seen.add(u.symbol);
    }
  }
  assert.ok(events.some(([name]) => name === 'snapshot'));
  // converges: polling on reaches the values the server holds now
  const now = JSON.parse((await (await fetch(`${srv.url}api/snapshot?symbols=BTC-USD`)).text()));
  const target = now.updates[0].seq;
  assert.ok(Number.isInteger(target));
  let latest = 0;
  for (const [, f] of events) for (const u of updatesOf(f)) if (u.symbol === 'BTC-USD') latest = Math.max(latest, u.seq);
  const deadline = Date.now() + 10000;
  while (latest < target && Date.now() < deadline) {
    const b = await (await fetch(eio(`&sid=${sid}`))).text();
    for (const p of b.split('\x1e')) {
      if (!p.startsWith('42')) continue;
      for (const u of updatesOf(JSON.parse(p.slice(2))[1])) if (u.symbol === 'BTC-USD') latest = Math.max(latest, u.seq);
    }
  }
  assert.ok(latest >= target, `BTC-USD reached seq ${latest} of ${target}`);
  await post(sid, '1');
});

test('heartbeat: the server pings at pingInterval; a session that stops answering (or polling) is reaped', T, async () => {
  const s2 = await startTickerd({ config: simConfig({ rate: 50, socketio: { ping_interval_ms: 300, ping_timeout_ms: 200 } }) });
  const url = (q = '') => `${s2.url}socket.io/?EIO=4&transport=polling${q}`;
  const open = JSON.parse((await (await fetch(url())).text()).slice(1));
  assert.equal(open.pingInterval, 300);
  assert.equal(open.pingTimeout, 200);
  // a held GET returns with the server's ping; answering it keeps the session
  assert.equal(await (await fetch(url(`&sid=${open.sid}`))).text(), '2');
  assert.equal((await fetch(url(`&sid=${open.sid}`), { method: 'POST', body: '3' })).status, 200);
  assert.equal(await (await fetch(url(`&sid=${open.sid}`))).text(), '2');
  // now never poll or pong again: the session is closed after the pong deadline
  await waitForGone(url(`&sid=${open.sid}`));
  const m = await metrics(s2);
  assert.ok(m.value('tickerd_transport_errors_total', { transport: 'socketio', reason: 'ping_timeout' }) >= 1);
  // the stock client stays connected across many heartbeats (it answers the pings)
  const s = await connectIo(s2.url, { transports: ['websocket'] });
  let disconnected = false;
  s.on('disconnect', () => { disconnected = true; });
  let pings = 0;
  s.io.engine.on('ping', () => { pings++; });
  await withTimeout((async () => { while (pings < 5) await sleep(50); })(), 15000, () => `only ${pings} pings`);
  assert.equal(disconnected, false);
  s.close();
  await s2.stop();
});

async function waitForGone(u) {
  await withTimeout((async () => {
    for (;;) {
      await sleep(200);
      // probe with a POST noop: it does not hold, and 400 code 1 means the session is gone
      const r = await fetch(u, { method: 'POST', body: '6' });
      if (r.status === 400) { assert.equal((await r.json()).code, 1); return; }
    }
  })(), 15000, () => 'the silent session was never reaped');
}
