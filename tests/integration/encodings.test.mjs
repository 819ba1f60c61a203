// Encodings (docs/protocol.md, "Binary encoding"): the subprotocol tickerd.bin gets update frames as binary
// WebSocket messages with the documented byte layout, control replies stay JSON text, and a binary client sees
// exactly the values a JSON client sees; tickerd.json or no subprotocol gets JSON. permessage-deflate is
// negotiated only when broadcast.permessage_deflate is on (and a reload applies to new connections).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startTickerd, stopAll, connect, closeAllClients, metrics, waitFor, waitForSymbols, simConfig, sleep, updatesOf,
} from './lib/harness.mjs';

const T = { timeout: 60000 };
const SYMS = ['BTC-USD', 'ETH-USD', 'EUR-USD'];
const KINDS = { 1: 'snapshot', 2: 'reset', 3: 'replay', 4: 'update' };

/**
 * Decode one binary frame by the layout in docs/protocol.md into the shape of a JSON frame:
 * {op, reset?, updates: [{symbol, last, bid, ask, volume, open, seq, ts, src, stale?}]}, plus `kind` and `raw`
 * (the exact float64s). Throws on any byte not accounted for.
 */
function decodeFrame(buf) {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.length);
  const kind = v.getUint8(0);
  assert.ok(KINDS[kind], `unknown frame kind ${kind}`);
  assert.equal(v.getUint8(1), 0, 'reserved header byte');
  const count = v.getUint16(2, true);
  const updates = [];
  let o = 4;
  for (let i = 0; i < count; i++) {
    const end = o + 1 + v.getUint8(o);
    assert.ok(end <= buf.length, `record ${i} runs past the frame`);
    const flags = v.getUint8(o + 1);
    const f64 = (k) => v.getFloat64(o + 18 + 8 * k, true);
    let p = o + 58;
    const symbol = buf.toString('latin1', p + 1, p + 1 + v.getUint8(p));
    p += 1 + v.getUint8(p);
    const src = buf.toString('latin1', p + 1, p + 1 + v.getUint8(p));
    p += 1 + v.getUint8(p);
    assert.ok(p <= end, `record ${i}: names run past its length`);
    const u = {
      symbol, seq: Number(v.getBigUint64(o + 2, true)), ts: Number(v.getBigInt64(o + 10, true)),
      last: f64(0), bid: f64(1), ask: f64(2), volume: f64(3), open: f64(4), src,
    };
    if (flags & 1) u.stale = true;
    else if (flags & 2) u.stale = false;
    updates.push(u);
    o = end; // a later version's extra fields would be skipped here
  }
  assert.equal(o, buf.length, 'bytes after the last record');
  const op = kind === 2 ? 'snapshot' : KINDS[kind];
  return { kind, op, ...(kind === 2 ? { reset: true } : {}), updates };
}

/** Every binary frame the client receives, decoded, in order. */
function binaryFrames(client) {
  const frames = [];
  client.ws.on('message', (data, isBinary) => { if (isBinary) frames.push(decodeFrame(data)); });
  return frames;
}

/** What a JSON client would read for this binary update: the server prints %.10g (change_pct %.6g). */
function asJson(u) {
  const g = (x, digits = 10) => Number(x.toPrecision(digits));
  const change = u.last - u.open;
  const out = {
    symbol: u.symbol, last: g(u.last), bid: g(u.bid), ask: g(u.ask), volume: g(u.volume), open: g(u.open),
    change: g(change), change_pct: g(100 * change / u.open, 6), seq: u.seq, ts: u.ts, src: u.src,
  };
  if ('stale' in u) out.stale = u.stale;
  return out;
}

after(async () => {
  closeAllClients();
  await stopAll();
});

let srv;
before(async () => {
  srv = await startTickerd({ config: simConfig({ rate: 400, seed: 77, normalizer: { flush_interval_ms: 50 } }) });
  await waitForSymbols(srv, SYMS);
});

test('tickerd.bin: replies stay JSON text, data frames are binary and carry what a JSON client reads', T, async () => {
  const j = await connect(srv);
  const b = await connect(srv, { protocols: ['tickerd.bin'] });
  assert.equal(b.protocol, 'tickerd.bin');
  const frames = binaryFrames(b);
  const jsonSeen = new Map();
  j.onMessage((m) => { for (const u of updatesOf(m)) jsonSeen.set(`${u.symbol}/${u.seq}`, u); });
  await j.subscribe(SYMS);
  const ack = await b.subscribe(SYMS, 'bin-1');
  assert.equal(ack.op, 'ack');
  assert.equal(ack.id, 'bin-1');
  await sleep(1500);

  assert.ok(frames.length > 3, `only ${frames.length} binary frames`);
  assert.equal(frames[0].op, 'snapshot', 'the first frame after the ack is the snapshot');
  assert.deepEqual(new Set(frames[0].updates.map((u) => u.symbol)), new Set(SYMS));
  assert.equal(b.textFrames, 1, 'only the ack came as text');
  assert.equal(b.binaryFrames, frames.length);
  assert.equal(j.binaryFrames, 0, 'the JSON client got binary frames');

  // Same seqs, same values: every (symbol, seq) both clients saw is equal once rounded as the JSON is.
  let compared = 0;
  const lastSeq = new Map();
  for (const f of frames) {
    for (const u of f.updates) {
      if (f.op === 'update') assert.ok(u.seq > (lastSeq.get(u.symbol) ?? 0), `${u.symbol} seq ${u.seq} went back`);
      lastSeq.set(u.symbol, u.seq);
      assert.equal(u.src, 'sim');
      const other = jsonSeen.get(`${u.symbol}/${u.seq}`);
      if (!other) continue;
      assert.deepEqual(asJson(u), other);
      compared++;
    }
  }
  assert.ok(compared >= 20, `only ${compared} values seen by both clients`);

  const m = await metrics(srv);
  assert.equal(m.value('tickerd_clients_binary'), 1);
  j.close();
  b.close();
});

test('tickerd.json or no subprotocol gets JSON; of several, the first the client names wins', T, async () => {
  for (const [protocols, want] of [[undefined, ''], [['tickerd.json'], 'tickerd.json'],
    [['tickerd.json', 'tickerd.bin'], 'tickerd.json'], [['tickerd.bin', 'tickerd.json'], 'tickerd.bin']]) {
    const c = await connect(srv, { protocols });
    assert.equal(c.protocol, want, `offered ${JSON.stringify(protocols)}`);
    await c.subscribe(['BTC-USD']);
    await waitFor(() => c.framesIn >= 2, { message: 'a data frame' });
    if (want === 'tickerd.bin') {
      assert.ok(c.binaryFrames >= 1 && c.parseErrors.length === c.binaryFrames);
    } else {
      assert.equal(c.binaryFrames, 0, `binary frames for ${JSON.stringify(protocols)}`);
      assert.deepEqual(c.parseErrors, []);
    }
    c.close();
  }
});

test('tickerd.bin: a binary message from the client is still binary_not_supported', T, async () => {
  const c = await connect(srv, { protocols: ['tickerd.bin'] });
  c.send(Buffer.from([1, 2, 3]));
  const e = await c.nextOp('error');
  assert.equal(e.code, 'binary_not_supported');
  const ack = await c.request({ op: 'ping' });
  assert.equal(ack.op, 'ack');
  c.close();
});

test('tickerd.bin: resume replays the missed values from the binary ring, then live updates', T, async () => {
  const first = await connect(srv, { protocols: ['tickerd.bin'] });
  const seen = binaryFrames(first);
  const { epoch } = await first.subscribe(['BTC-USD']);
  await waitFor(() => seen.length >= 3, { message: 'three frames' });
  first.terminate();
  await first.waitClose();
  const last = seen.flatMap((f) => f.updates).at(-1).seq;
  await sleep(400); // away: a few values of BTC-USD published meanwhile

  const c = await connect(srv, { protocols: ['tickerd.bin'] });
  const frames = binaryFrames(c);
  await c.ok({ op: 'subscribe', symbols: ['BTC-USD'], resume: { 'BTC-USD': last }, epoch });
  await waitFor(() => frames.some((f) => f.op === 'update'), { message: 'an update after the replay' });
  assert.equal(frames[0].op, 'replay', `first frame: ${JSON.stringify(frames[0])}`);
  const seqs = frames.flatMap((f) => f.updates.map((u) => u.seq));
  seqs.forEach((s, i) => assert.equal(s, last + 1 + i, `seq ${s} at ${i}: ${seqs.join(',')}`));
  c.close();
});

test('permessage-deflate: off by default, negotiated when enabled, a reload applies to new connections', T, async () => {
  const offer = { wsOptions: { perMessageDeflate: { threshold: 0 } } }; // compress even the small requests
  const plain = await connect(srv, offer);
  assert.equal(plain.ws.extensions, '', 'deflate negotiated with broadcast.permessage_deflate off');
  plain.close();

  const cfg = simConfig({ rate: 400, seed: 78, broadcast: { permessage_deflate: true } });
  const own = await startTickerd({ config: cfg });
  await waitForSymbols(own, SYMS);
  const j = await connect(own, offer);
  const b = await connect(own, { protocols: ['tickerd.bin'], ...offer });
  for (const c of [j, b]) assert.match(c.ws.extensions, /^permessage-deflate/);
  const frames = binaryFrames(b);
  await j.subscribe(SYMS); // a compressed request
  await b.subscribe(SYMS);
  await waitFor(() => j.framesIn > 5 && frames.length > 5, { message: 'compressed frames on both' });
  assert.deepEqual(j.parseErrors, []);
  assert.equal(frames[0].op, 'snapshot');

  own.writeConfig({ ...cfg, broadcast: { permessage_deflate: false } });
  own.signal('SIGHUP');
  await waitFor(() => /configuration reloaded/.test(own.stderr()), { message: 'the reload' });
  const after = await connect(own, offer);
  assert.equal(after.ws.extensions, '', 'deflate negotiated after the reload turned it off');
  await after.subscribe(['BTC-USD']);
  const before = j.framesIn;
  await waitFor(() => j.framesIn > before + 3, { message: 'frames on the connection opened before the reload' });
  for (const c of [j, b, after]) c.close();
  await own.stop();
});
