// Protocol hygiene against hostile bytes (issue 16): proper HTTP and WebSocket error answers, no
// amplification, receive buffers that grow only with what arrives, pings inside the message rate.
// Raw sockets throughout: a WebSocket or HTTP library would refuse to send these bytes.
import { test, afterEach, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import crypto from 'node:crypto';
import {
  startTickerd, stopAll, closeAllClients, connect, metrics, httpGet, waitFor, waitForSymbols, simConfig, sleep,
} from './lib/harness.mjs';

const T = { timeout: 60000 };

afterEach(async () => {
  closeAllClients();
  await stopAll();
});
after(async () => {
  closeAllClients();
  await stopAll();
});

async function server(extra = {}, feed = {}) {
  const srv = await startTickerd({ config: simConfig({ rate: 200, seed: 7, feed, ...extra }) });
  await waitForSymbols(srv, ['BTC-USD', 'ETH-USD']);
  return srv;
}

/** Send raw bytes, collect everything until the server closes (or timeoutMs). */
function rawExchange(srv, bytes, { timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(srv.port, '127.0.0.1');
    const chunks = [];
    const timer = setTimeout(() => { sock.destroy(); resolve({ data: Buffer.concat(chunks), closed: false }); }, timeoutMs);
    sock.on('connect', () => sock.write(bytes));
    sock.on('data', (c) => chunks.push(c));
    sock.on('error', (err) => { if (!chunks.length) { clearTimeout(timer); reject(err); } });
    sock.on('close', () => { clearTimeout(timer); resolve({ data: Buffer.concat(chunks), closed: true }); });
  });
}

function parseHttp(buf) {
  const text = buf.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  assert.ok(end > 0, `no HTTP head in the answer: ${JSON.stringify(text.slice(0, 200))}`);
  const [line, ...fields] = text.slice(0, end).split('\r\n');
  const headers = {};
  for (const f of fields) {
    const i = f.indexOf(':');
    headers[f.slice(0, i).trim().toLowerCase()] = f.slice(i + 1).trim();
  }
  return { status: Number(line.split(' ')[1]), line, headers, body: text.slice(end + 4) };
}

const upgradeHead = (path, fields = {}) => {
  const key = crypto.randomBytes(16).toString('base64');
  const all = { Host: 'localhost', Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Key': key, ...fields };
  return `GET ${path} HTTP/1.1\r\n${Object.entries(all).filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
};

// ---- HTTP: answers instead of a silent close ----

test('an 8 KB and a 64 KB URL get 414 URI Too Long with a JSON body, counted', T, async () => {
  const srv = await server();
  for (const n of [8192, 65536]) {
    const r = await rawExchange(srv, `GET /api/snapshot?symbols=${'A'.repeat(n)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    const h = parseHttp(r.data);
    assert.equal(h.status, 414, h.line);
    assert.equal(JSON.parse(h.body).error, 'uri_too_long');
    assert.equal(Number(h.headers['content-length']), Buffer.byteLength(h.body));
    assert.ok(r.closed, 'connection closed after the answer');
  }
  const m = await metrics(srv);
  assert.equal(m.value('tickerd_http_rejected_total', { status: 414, reason: 'uri_too_long' }), 2);
});

test('1 MB of header fields gets 431, and the server keeps serving', T, async () => {
  const srv = await server();
  const big = `GET /healthz HTTP/1.1\r\nHost: x\r\n${'X-Pad: '.concat('p'.repeat(1000), '\r\n').repeat(1000)}\r\n`;
  const h = parseHttp((await rawExchange(srv, big)).data);
  assert.equal(h.status, 431, h.line);
  assert.equal(JSON.parse(h.body).error, 'header_fields_too_large');
  // a head within limits, with many fields, still passes
  const ok = await httpGet(srv, '/healthz', { headers: Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`x-f${i}`, 'v'.repeat(100)])) });
  assert.equal(ok.status, 200);
  const m = await metrics(srv);
  assert.equal(m.value('tickerd_http_rejected_total', { status: 431, reason: 'header_fields_too_large' }), 1);
});

test('a path with %00, a control byte or a malformed request line gets 400', T, async () => {
  const srv = await server();
  const bad = [
    'GET /api/snapshot%00 HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /api/snap\x01shot HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /healthz HTTP/1.1\r\nNo colon here\r\n\r\n',
    'GET /healthz HTTP/1.1\r\nHost: x\r\n folded: line\r\n\r\n',
    '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03', // a TLS ClientHello on the plain port
  ];
  for (const b of bad) {
    const h = parseHttp((await rawExchange(srv, Buffer.from(b, 'latin1'))).data);
    assert.equal(h.status, 400, `${JSON.stringify(b)} -> ${h.line}`);
    assert.equal(JSON.parse(h.body).error, 'bad_request');
  }
  const m = await metrics(srv);
  assert.equal(m.value('tickerd_http_rejected_total', { status: 400, reason: 'bad_request' }), bad.length);
  assert.equal((await httpGet(srv, '/healthz')).status, 200);
});

test('a head sent in pieces and a request pipelined with its body still work', T, async () => {
  const srv = await server();
  const head = 'GET /api/snapshot?symbols=BTC-USD HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
  const r = await new Promise((resolve) => {
    const sock = net.connect(srv.port, '127.0.0.1');
    const chunks = [];
    sock.on('connect', async () => {
      for (const c of head.match(/.{1,7}/gs)) { sock.write(c); await sleep(5); }
    });
    sock.on('data', (c) => chunks.push(c));
    sock.on('close', () => resolve(Buffer.concat(chunks)));
  });
  const h = parseHttp(r);
  assert.equal(h.status, 200, h.line);
  assert.equal(JSON.parse(h.body).updates[0].symbol, 'BTC-USD');
});

// ---- WebSocket handshake version ----

test('an upgrade with Sec-WebSocket-Version 8 or none gets 426 naming version 13; 13 gets 101', T, async () => {
  const srv = await server();
  for (const version of ['8', undefined]) {
    const h = parseHttp((await rawExchange(srv, upgradeHead('/ws', { 'Sec-WebSocket-Version': version }))).data);
    assert.equal(h.status, 426, `version ${version}: ${h.line}`);
    assert.equal(h.headers['sec-websocket-version'], '13');
  }
  const r = await rawExchange(srv, upgradeHead('/ws', { 'Sec-WebSocket-Version': '13' }), { timeoutMs: 500 });
  assert.equal(parseHttp(r.data).status, 101);
  const m = await metrics(srv);
  assert.equal(m.value('tickerd_http_rejected_total', { status: 426, reason: 'upgrade_required' }), 2);
});

// ---- raw WebSocket client ----

/** A WebSocket over a raw socket: frames built by hand, masked as a client must. */
class RawWs {
  static open(srv, path = '/ws') {
    return new Promise((resolve, reject) => {
      const ws = new RawWs();
      ws.sock = net.connect(srv.port, '127.0.0.1');
      ws.sock.on('error', reject);
      ws.sock.on('connect', () => ws.sock.write(upgradeHead(path, { 'Sec-WebSocket-Version': '13' })));
      let head = Buffer.alloc(0);
      const onHead = (c) => {
        head = Buffer.concat([head, c]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        ws.sock.off('data', onHead);
        if (!head.subarray(0, end).toString().startsWith('HTTP/1.1 101')) return reject(new Error(head.toString()));
        ws.sock.on('data', (d) => ws.onData(d));
        ws.sock.on('close', () => { ws.closed = true; });
        ws.onData(head.subarray(end + 4));
        resolve(ws);
      };
      ws.sock.on('data', onHead);
    });
  }

  constructor() { this.buf = Buffer.alloc(0); this.frames = []; this.closed = false; }

  send(opcode, payload = Buffer.alloc(0), fin = true) {
    this.sock.write(RawWs.frame(opcode, payload, fin));
  }

  static frame(opcode, payload, fin = true) {
    payload = Buffer.from(payload);
    const mask = crypto.randomBytes(4);
    const n = payload.length;
    const head = n < 126 ? Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | n])
      : Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | 126, n >> 8, n & 255]);
    const body = Buffer.from(payload.map((b, i) => b ^ mask[i & 3]));
    return Buffer.concat([head, mask, body]);
  }

  onData(d) {
    this.buf = Buffer.concat([this.buf, d]);
    for (;;) {
      if (this.buf.length < 2) return;
      let n = this.buf[1] & 127, off = 2;
      if (n === 126) { if (this.buf.length < 4) return; n = this.buf.readUInt16BE(2); off = 4; }
      if (n === 127) { if (this.buf.length < 10) return; n = Number(this.buf.readBigUInt64BE(2)); off = 10; }
      if (this.buf.length < off + n) return;
      this.frames.push({ opcode: this.buf[0] & 15, payload: this.buf.subarray(off, off + n) });
      this.buf = this.buf.subarray(off + n);
    }
  }

  texts() { return this.frames.filter((f) => f.opcode === 1).map((f) => JSON.parse(f.payload.toString())); }
  closeFrame() {
    const f = this.frames.find((x) => x.opcode === 8);
    return f && { code: f.payload.readUInt16BE(0), reason: f.payload.subarray(2).toString() };
  }
  destroy() { this.sock.destroy(); }
}

test('invalid UTF-8 in a text frame: the error reply, then close 1007, counted', T, async () => {
  const srv = await server();
  const ws = await RawWs.open(srv);
  // valid UTF-8 split across two fragments (é = C3 A9) is fine
  const msg = Buffer.from('{"op":"ping","id":"é"}');
  const cut = msg.indexOf(0xc3) + 1;
  ws.send(1, msg.subarray(0, cut), false);
  ws.send(0, msg.subarray(cut), true);
  await waitFor(() => ws.texts().some((m) => m.op === 'pong' || m.req === 'ping' || m.op === 'ack'), { message: 'reply to the split message' });
  assert.equal(ws.closeFrame(), undefined);
  ws.send(1, Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d])); // {"\xff\xfe"}
  await waitFor(() => ws.closeFrame(), { message: 'a close frame' });
  assert.equal(ws.closeFrame().code, 1007);
  const err = ws.texts().find((m) => m.op === 'error');
  assert.ok(err, 'the error reply came before the close');
  assert.equal(err.code, 'bad_json');
  assert.match(err.message, /UTF-8/);
  assert.ok(ws.frames.findIndex((f) => f.opcode === 1 && f.payload.includes('UTF-8')) < ws.frames.findIndex((f) => f.opcode === 8));
  const m = await metrics(srv);
  assert.equal(m.value('tickerd_invalid_utf8_closes_total'), 1);
  assert.equal(m.value('tickerd_transport_errors_total', { transport: 'ws', reason: 'bad_utf8' }), 1);
  ws.destroy();
});

// ---- amplification ----

test('a snapshot of one symbol repeated 480 times is the snapshot of that symbol once', T, async () => {
  // a slow feed, so both requests usually see the same seq (retried if not)
  const srv = await server({}, { rate: 1 });
  const one = '/api/snapshot?symbols=BTC-USD';
  const many = `/api/snapshot?symbols=${Array(480).fill('BTC-USD').join(',')}`;
  for (let attempt = 0; ; attempt++) {
    const a = await httpGet(srv, one);
    const b = await httpGet(srv, many);
    const c = await httpGet(srv, one);
    assert.equal(b.status, 200);
    assert.equal(b.json().updates.length, 1);
    if (a.body !== c.body && attempt < 10) continue; // a value changed in between
    assert.equal(b.body.length, a.body.length, 'the repeated list answers no more than the single one');
    assert.equal(b.body, a.body);
    break;
  }
  // also subscribes: the ack lists each symbol once, the snapshot holds it once
  const cl = await connect(srv);
  const ack = await cl.subscribe(['ETH-USD', 'BTC-USD', 'ETH-USD', 'ETH-USD', 'BTC-USD']);
  assert.deepEqual(ack.symbols, ['ETH-USD', 'BTC-USD']);
  const snap = await cl.next((m) => m.op === 'snapshot', 3000, 'snapshot');
  assert.deepEqual(snap.updates.map((u) => u.symbol).sort(), ['BTC-USD', 'ETH-USD']);
});

// ---- memory ----

test('2,000 connections each holding an unfinished 3-byte fragment under a 1 MiB limit cost a few MB', { timeout: 120000 }, async () => {
  const srv = await server({ limits: { max_message_bytes: 1048576 }, server: { max_connections: 2100 } });
  const N = 2000;
  const conns = [];
  for (let i = 0; i < N; i += 100) {
    conns.push(...await Promise.all(Array.from({ length: 100 }, () => RawWs.open(srv))));
  }
  await sleep(500);
  const before = srv.rssKiB();
  // a text frame without FIN whose 3 bytes begin a message announced nowhere as short
  for (const c of conns) c.send(1, Buffer.from('{"o'), false);
  await waitFor(async () => (await metrics(srv)).value('tickerd_ws_rx_buffer_bytes') > 0, { message: 'buffers held' });
  await sleep(500);
  const m = await metrics(srv);
  const held = m.value('tickerd_ws_rx_buffer_bytes');
  const grewKiB = srv.rssKiB() - before;
  assert.ok(held >= 3 * N && held <= 64 * N, `bytes held ${held} for ${N} 3-byte fragments`);
  assert.ok(grewKiB < 4096, `RSS grew ${grewKiB} KiB for ${N} unfinished fragments (1 MiB each would be 2 GB)`);
  // finishing the messages releases every buffer
  for (const c of conns) c.send(0, Buffer.from('p":"ping"}'), true);
  await waitFor(async () => (await metrics(srv)).value('tickerd_ws_rx_buffer_bytes') === 0, { timeoutMs: 10000, message: 'buffers released' });
  for (const c of conns) c.destroy();
});

// ---- pings ----

test('pings beyond limits.max_messages_per_sec get rate_limited, then the 1008 close', T, async () => {
  const srv = await server({ limits: { max_messages_per_sec: 20, max_errors: 3 } });
  // a client pinging within the rate is left alone
  const calm = await RawWs.open(srv);
  const calmTimer = setInterval(() => calm.send(9, Buffer.from('hi')), 200);
  const flood = await RawWs.open(srv);
  const timer = setInterval(() => { for (let i = 0; i < 20; i++) flood.send(9); }, 20); // 1,000 pings/s
  try {
    await waitFor(() => flood.closeFrame() || flood.closed, { timeoutMs: 15000, message: 'the flooding client closed' });
  } finally {
    clearInterval(timer);
  }
  const errors = flood.texts().filter((m) => m.op === 'error');
  assert.ok(errors.some((e) => e.code === 'rate_limited'), `errors: ${JSON.stringify(errors)}`);
  if (flood.closeFrame()) assert.equal(flood.closeFrame().code, 1008);
  const pongs = flood.frames.filter((f) => f.opcode === 10).length;
  assert.ok(pongs < 5000, `pongs answered: ${pongs}`);
  const m = await metrics(srv);
  assert.ok(m.value('tickerd_control_frames_in_total') >= 100);
  assert.equal(m.value('tickerd_abuse_closes_total'), 1);
  clearInterval(calmTimer);
  assert.ok(!calm.closed && !calm.closeFrame(), 'the calm client is still connected');
  assert.equal(calm.texts().filter((x) => x.op === 'error').length, 0);
  assert.ok(calm.frames.filter((f) => f.opcode === 10).length > 5, 'the calm client got its pongs');
  calm.destroy();
  flood.destroy();
});
