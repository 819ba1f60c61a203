// Invalid client input and per-connection limits (docs/protocol.md "Error", docs/config.md "limits").
// Every test runs its own server with the limits under test, plus a well-behaved observer client that must
// keep receiving updates throughout.
import { test, afterEach, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startTickerd, stopAll, connect, closeAllClients, metrics, waitFor, waitForSymbols, simConfig, updatesOf,
  hasSymbol, UpdateTracker, sleep,
} from './lib/harness.mjs';

const T = { timeout: 30000 };

afterEach(async () => {
  closeAllClients();
  await stopAll();
});
after(async () => {
  closeAllClients();
  await stopAll();
});

async function server(extra = {}) {
  const srv = await startTickerd({ config: simConfig({ rate: 2000, seed: 99, ...extra }) });
  await waitForSymbols(srv, ['BTC-USD', 'ETH-USD']);
  return srv;
}

/** A client subscribed to BTC-USD whose updates are tracked. */
async function observer(srv) {
  const c = await connect(srv);
  const tracker = new UpdateTracker(c);
  await c.subscribe(['BTC-USD']);
  await c.next((m) => hasSymbol(m, 'BTC-USD'), 3000, 'observer: first BTC-USD frame');
  return { c, tracker };
}

/** The observer is still connected and gets updates now (within 1.5 s). */
async function assertObserverHealthy(obs) {
  assert.ok(obs.c.isOpen, `observer was closed: ${JSON.stringify(obs.c.closeInfo)}`);
  const before = obs.tracker.updateFrames;
  await waitFor(() => obs.tracker.updateFrames > before, { timeoutMs: 1500, message: 'observer to receive updates' });
  assert.deepEqual(obs.tracker.violations, []);
  assert.ok(obs.c.isOpen, `observer was closed: ${JSON.stringify(obs.c.closeInfo)}`);
  obs.c.drain();
}

/** Next error frame (consuming). */
function nextError(c, timeoutMs = 2000) {
  return c.next((m) => m.op === 'error', timeoutMs, 'an error frame');
}

test('malformed JSON -> bad_json with id null, connection keeps working', T, async () => {
  const srv = await server();
  const obs = await observer(srv);
  const c = await connect(srv);
  for (const text of ['{"op":"ping",', '{op:ping}', 'not json at all', '{"op":"ping","id":1}}', '\u0000']) {
    c.send(text);
    const e = await nextError(c);
    assert.equal(e.code, 'bad_json', `for ${JSON.stringify(text)}: ${JSON.stringify(e)}`);
    assert.ok('id' in e, `error has no id key: ${JSON.stringify(e)}`);
    assert.equal(e.id, null);
    assert.equal(typeof e.message, 'string');
  }
  const ack = await c.request({ op: 'ping', id: 1 });
  assert.equal(ack.op, 'ack');
  assert.ok(c.isOpen);
  await assertObserverHealthy(obs);
});

test('JSON that is not an object -> bad_json', T, async () => {
  const srv = await server();
  const obs = await observer(srv);
  const c = await connect(srv);
  for (const text of ['[1,2,3]', '42', '"ping"', 'null', 'true', '[{"op":"ping","id":1}]']) {
    c.send(text);
    const e = await nextError(c);
    assert.equal(e.code, 'bad_json', `for ${text}: ${JSON.stringify(e)}`);
  }
  // the array-wrapped ping above must not have been executed
  const stray = c.drain().filter((m) => m.op === 'ack');
  assert.deepEqual(stray, []);
  assert.equal((await c.request({ op: 'ping', id: 2 })).op, 'ack');
  await assertObserverHealthy(obs);
});

test('missing or mistyped fields -> bad_request (id echoed when valid), nothing subscribed', T, async () => {
  const srv = await server();
  const obs = await observer(srv);
  const c = await connect(srv);
  const cases = [
    [{ symbols: ['BTC-USD'], id: 5 }, 5, 'missing op'],
    [{ op: 'subscribe', symbols: 'BTC-USD', id: 6 }, 6, 'symbols is a string'],
    [{ op: 'subscribe', id: 7 }, 7, 'symbols missing'],
    [{ op: 'subscribe', symbols: [1, 2], id: 8 }, 8, 'symbols not strings'],
    [{ op: 'subscribe', symbols: { 0: 'BTC-USD' }, id: 9 }, 9, 'symbols is an object'],
    [{ op: 42, id: 10 }, 10, 'op is a number'],
    [{ op: 'ping', id: { x: 1 } }, undefined, 'id is an object'],
    [{ op: 'ping', id: 1.5 }, undefined, 'id is not an integer'],
    [{ op: 'ping', id: 'x'.repeat(65) }, undefined, 'id string longer than 64 bytes'],
  ];
  for (const [msg, id, what] of cases) {
    c.send(msg);
    const e = await nextError(c);
    assert.equal(e.code, 'bad_request', `${what} (${JSON.stringify(msg).slice(0, 80)}): ${JSON.stringify(e)}`);
    if (id !== undefined) assert.equal(e.id, id, `${what}: id not echoed: ${JSON.stringify(e)}`);
  }
  // none of the rejected subscribes subscribed anything
  const data = (await c.collect(500)).filter((m) => m.op === 'update' || m.op === 'snapshot' || m.op === 'ack');
  assert.deepEqual(data.map((m) => JSON.stringify(m).slice(0, 100)), []);
  assert.equal((await c.request({ op: 'ping', id: 11 })).op, 'ack');
  await assertObserverHealthy(obs);
});

test('unknown op -> unknown_op with the id echoed', T, async () => {
  const srv = await server();
  const obs = await observer(srv);
  const c = await connect(srv);
  const e = await c.request({ op: 'frobnicate', id: 12, symbols: ['BTC-USD'] });
  assert.equal(e.op, 'error', JSON.stringify(e));
  assert.equal(e.code, 'unknown_op');
  assert.equal(e.id, 12);
  const e2 = await c.request({ op: 'SUBSCRIBE', id: 13, symbols: ['BTC-USD'] });
  assert.equal(e2.code, 'unknown_op', `op names are case-sensitive: ${JSON.stringify(e2)}`);
  assert.equal((await c.request({ op: 'ping', id: 14 })).op, 'ack');
  await assertObserverHealthy(obs);
});

test('binary frame -> binary_not_supported, frame not processed, connection keeps working', T, async () => {
  const srv = await server();
  const obs = await observer(srv);
  const c = await connect(srv);
  c.send(Buffer.from(JSON.stringify({ op: 'ping', id: 15 })));
  const e = await nextError(c);
  assert.equal(e.code, 'binary_not_supported', JSON.stringify(e));
  const stray = (await c.collect(300)).filter((m) => m.op === 'ack');
  assert.deepEqual(stray, [], 'the binary frame was executed');
  assert.equal((await c.request({ op: 'ping', id: 16 })).op, 'ack');
  assert.ok(c.isOpen);
  await assertObserverHealthy(obs);
});

test('oversized message -> message_too_large, discarded, connection keeps working', T, async () => {
  const srv = await server({ limits: { max_message_bytes: 256 } });
  const obs = await observer(srv);
  const c = await connect(srv);
  const big = JSON.stringify({ op: 'ping', id: 17, pad: 'x'.repeat(1000) });
  assert.ok(big.length > 1000);
  c.send(big);
  const e = await nextError(c);
  assert.equal(e.code, 'message_too_large', JSON.stringify(e));
  const stray = (await c.collect(300)).filter((m) => m.op === 'ack');
  assert.deepEqual(stray, [], 'the oversized message was executed');
  // below the limit still works
  const small = { op: 'ping', id: 18, pad: 'y'.repeat(150) };
  assert.ok(JSON.stringify(small).length < 256);
  assert.equal((await c.request(small)).op, 'ack');
  // and a subscribe after it works normally
  await c.subscribe(['ETH-USD']);
  await c.next((m) => hasSymbol(m, 'ETH-USD'), 3000, 'ETH-USD data after oversized message');
  assert.ok(c.isOpen);
  await assertObserverHealthy(obs);
});

test('too_many_subscriptions is atomic and re-subscribing does not count twice', T, async () => {
  const srv = await server({ limits: { max_subscriptions: 3 } });
  const obs = await observer(srv);
  const c = await connect(srv);
  await c.subscribe(['BTC-USD', 'ETH-USD', 'SOL-USD']);
  const e = await c.request({ op: 'subscribe', symbols: ['AAPL-USD'], id: 20 });
  assert.equal(e.op, 'error', JSON.stringify(e));
  assert.equal(e.code, 'too_many_subscriptions');
  assert.equal(e.id, 20);
  c.drain();
  const msgs = await c.collect(500);
  assert.ok(!msgs.some((m) => hasSymbol(m, 'AAPL-USD')), 'AAPL-USD delivered although the subscribe failed');
  assert.ok(msgs.some((m) => hasSymbol(m, 'BTC-USD')), 'earlier subscriptions stopped after the failed subscribe');

  // Already subscribed symbols do not add to the count.
  const again = await c.request({ op: 'subscribe', symbols: ['BTC-USD'], id: 21 });
  assert.equal(again.op, 'ack', `re-subscribe at the limit: ${JSON.stringify(again)}`);

  // Freeing one slot makes room for another symbol.
  await c.unsubscribe(['SOL-USD']);
  const ok = await c.request({ op: 'subscribe', symbols: ['AAPL-USD'], id: 22 });
  assert.equal(ok.op, 'ack', JSON.stringify(ok));

  // A fresh connection asking for 4 at once gets nothing.
  const d = await connect(srv);
  const e2 = await d.request({ op: 'subscribe', symbols: ['BTC-USD', 'ETH-USD', 'SOL-USD', 'AAPL-USD'], id: 23 });
  assert.equal(e2.code, 'too_many_subscriptions', JSON.stringify(e2));
  const dm = (await d.collect(500)).filter((m) => m.op === 'update' || m.op === 'snapshot');
  assert.equal(dm.length, 0, 'a failed 4-symbol subscribe subscribed something');

  // "*" counts as one subscription, although it covers all 20 symbols.
  const star = await d.request({ op: 'subscribe', symbols: ['*'], id: 24 });
  assert.equal(star.op, 'ack', `subscribe ["*"] with max_subscriptions 3: ${JSON.stringify(star)}`);
  await d.next((m) => hasSymbol(m, 'GBP-USD'), 3000, 'GBP-USD data via "*"');
  await assertObserverHealthy(obs);
});

test('rate limit: a burst beyond max_messages_per_sec gets rate_limited, the rest acked', T, async () => {
  const srv = await server({ limits: { max_messages_per_sec: 5 } });
  const obs = await observer(srv);
  const c = await connect(srv);
  const replies = [];
  c.onMessage((m) => { if (m.op === 'ack' || m.op === 'error') replies.push(m); });
  for (let i = 1; i <= 20; i++) c.send({ op: 'ping', id: 100 + i });
  // every message is answered exactly once: an ack or an error
  await waitFor(() => replies.length >= 20, { timeoutMs: 3000, message: `20 replies (have ${replies.length})` });
  await sleep(200);
  const acks = replies.filter((m) => m.op === 'ack');
  const limited = replies.filter((m) => m.op === 'error' && m.code === 'rate_limited');
  const other = replies.filter((m) => !(m.op === 'ack' || (m.op === 'error' && m.code === 'rate_limited')));
  assert.deepEqual(other, [], 'unexpected replies');
  assert.equal(replies.length, 20, `expected exactly 20 replies, got ${replies.length}`);
  assert.ok(limited.length >= 1, 'no rate_limited error for 20 messages at max_messages_per_sec=5');
  assert.ok(acks.length >= 1, 'no message was acked');
  assert.ok(acks.length <= 10, `${acks.length} of 20 burst messages acked at max_messages_per_sec=5`);
  // the limit is per second: after a pause requests go through again
  await sleep(1200);
  assert.equal((await c.request({ op: 'ping', id: 200 })).op, 'ack');
  assert.ok(c.isOpen);
  await assertObserverHealthy(obs);
});

test('repeated errors beyond max_errors close the connection with 1008', T, async () => {
  const srv = await server({ limits: { max_errors: 5 } });
  const obs = await observer(srv);
  const m0 = await metrics(srv);
  const c = await connect(srv);
  let errors = 0;
  c.onMessage((m) => { if (m.op === 'error') errors++; });
  for (let i = 0; i < 20; i++) c.send('{bad json');
  const info = await c.waitClose(3000);
  assert.equal(info.code, 1008, `close code ${info.code} (${info.reason})`);
  assert.ok(errors >= 5, `only ${errors} error frames before the close`);
  const m1 = await waitFor(async () => {
    const m = await metrics(srv);
    return m.sum('tickerd_abuse_closes_total') >= 1 ? m : false;
  }, { timeoutMs: 2000, message: 'tickerd_abuse_closes_total >= 1' });
  assert.ok(m1.sum('tickerd_client_errors_total', { code: 'bad_json' }) - m0.sum('tickerd_client_errors_total', { code: 'bad_json' }) >= 5,
    'tickerd_client_errors_total{code="bad_json"} did not count the errors');
  await assertObserverHealthy(obs);
});

test('max_connections: the connection above the limit is closed with 1013 and counted', T, async () => {
  const srv = await server({ server: { max_connections: 2 } });
  const obs = await observer(srv); // connection 1
  const c2 = await connect(srv);   // connection 2
  assert.equal((await c2.request({ op: 'ping', id: 30 })).op, 'ack');

  const c3 = await connect(srv, { waitOpen: false });
  const info = await c3.waitClose(3000);
  assert.equal(info.code, 1013,
    `third connection closed with ${info.code}${c3.unexpectedStatus ? ` (upgrade refused with HTTP ${c3.unexpectedStatus})` : ''}`);

  // HTTP is not a WebSocket connection: /metrics still answers at the limit.
  const m = await waitFor(async () => {
    const x = await metrics(srv);
    return x.sum('tickerd_connections_rejected_total') >= 1 ? x : false;
  }, { timeoutMs: 2000, message: 'tickerd_connections_rejected_total >= 1' });
  assert.equal(m.sum('tickerd_clients_connected'), 2);

  // A freed slot can be used again.
  c2.close();
  await c2.waitClose(2000);
  await waitFor(async () => (await metrics(srv)).sum('tickerd_clients_connected') === 1,
    { timeoutMs: 2000, message: 'tickerd_clients_connected to drop to 1' });
  const c4 = await connect(srv);
  assert.equal((await c4.request({ op: 'ping', id: 31 })).op, 'ack');
  assert.ok(c4.isOpen);
  await assertObserverHealthy(obs);
});
