// SIGHUP adding and removing a feed while clients are subscribed (docs/operations.md#reload): no restart,
// the streams continue with their seq, what cannot change live is named in the log, a bad file changes nothing.
import { test, describe, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { io } from 'socket.io-client';
import {
  startTickerd, stopAll, connect, closeAllClients, waitFor, waitForSymbols, UpdateTracker, httpGet,
} from './lib/harness.mjs';

const T = { timeout: 40000 };
afterEach(async () => { closeAllClients(); await stopAll(); });

const sym = (symbol, price) => ({ symbol, price, volatility: 0.5, spread_bps: 5, tick: 0.01 });
const feedA = { type: 'sim', name: 'a', rate: 500, seed: 1, symbols: [sym('AAA-USD', 10)] };
const feedB = { type: 'sim', name: 'b', rate: 500, seed: 2, symbols: [sym('BBB-USD', 20)] };

async function feedsOf(srv) {
  const r = await httpGet(srv, '/healthz');
  return JSON.parse(r.body).feeds.map((f) => f.name).sort();
}

describe('SIGHUP reload of feeds', () => {
  test('a feed added then removed while clients are subscribed', T, async () => {
    const srv = await startTickerd({ config: { feeds: [feedA] } });
    const pid = srv.pid ?? srv.proc?.pid;
    await waitForSymbols(srv, ['AAA-USD']);
    const ca = await connect(srv);
    const ta = new UpdateTracker(ca);
    await ca.subscribe(['AAA-USD']);
    await waitFor(() => ta.counts.get('AAA-USD') > 2, { message: 'AAA-USD updates' });

    // add feed b (and try to move the bind address: named in the log, kept)
    srv.writeConfig({ server: { bind: '127.0.0.2' }, feeds: [feedA, feedB] });
    srv.signal('SIGHUP');
    await waitForSymbols(srv, ['BBB-USD'], 5000);
    assert.deepEqual(await feedsOf(srv), ['a', 'b']);
    assert.match(srv.stderr(), /server\.bind cannot change live; keeping/);
    const seqAtAdd = ta.latest.get('AAA-USD').seq;
    const cb = await connect(srv); // still on the old address
    const tb = new UpdateTracker(cb);
    await cb.subscribe(['BBB-USD']);
    await waitFor(() => tb.counts.get('BBB-USD') > 2, { message: 'BBB-USD updates after the reload' });
    await waitFor(() => ta.latest.get('AAA-USD').seq > seqAtAdd + 2, { message: 'AAA-USD continues' });

    // remove feed b: a's subscribers carry on, b's feed is gone, nobody is disconnected
    srv.writeConfig({ feeds: [feedA] });
    srv.signal('SIGHUP');
    await waitFor(async () => (await feedsOf(srv)).join() === 'a', { message: 'feed b removed' });
    assert.match(srv.stderr(), /feed b stopped \(removed from the configuration\)/);
    const seqAtRemove = ta.latest.get('AAA-USD').seq;
    await waitFor(() => ta.latest.get('AAA-USD').seq > seqAtRemove + 2, { message: 'AAA-USD continues after removal' });
    assert.deepEqual(ta.violations, []);

    // a bad file changes nothing
    srv.writeConfig({ feeds: [feedA, { type: 'nope' }] });
    srv.signal('SIGHUP');
    await waitFor(() => /reload failed, keeping the running configuration: config error: feeds\[1\]\.type/.test(srv.stderr()),
      { message: 'reload failure logged' });
    assert.deepEqual(await feedsOf(srv), ['a']);
    const seqAtBad = ta.latest.get('AAA-USD').seq;
    await waitFor(() => ta.latest.get('AAA-USD').seq > seqAtBad + 2, { message: 'AAA-USD continues after a bad reload' });
    assert.ok(srv.alive(), 'tickerd restarted or died');
    void pid;
  });

  test('a removed feed\'s symbols end with symbol_removed on every transport and come back with their seq', T, async () => {
    const srv = await startTickerd({ config: { feeds: [feedA, feedB] } });
    await waitForSymbols(srv, ['AAA-USD', 'BBB-USD']);
    const both = await connect(srv); // AAA-USD and BBB-USD: keeps AAA-USD
    const tBoth = new UpdateTracker(both);
    await both.subscribe(['AAA-USD', 'BBB-USD']);
    const star = await connect(srv); // "*"
    await star.subscribe(['*']);
    const onlyA = await connect(srv); // never hears of it
    const errorsOfA = [];
    onlyA.onMessage((m) => { if (m.op === 'error') errorsOfA.push(m); });
    await onlyA.subscribe(['AAA-USD']);
    // SSE, raw: the event stream's text
    let sseText = '';
    const sseReq = http.get({ host: '127.0.0.1', port: srv.port, path: '/sse?symbols=BBB-USD' }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (c) => { sseText += c; });
      res.on('error', () => {});
    });
    sseReq.on('error', () => {});
    // Socket.IO, the official client
    const sio = io(`http://127.0.0.1:${srv.port}`, { reconnection: false });
    const sioErrors = [];
    sio.on('error', (e) => sioErrors.push(e));
    await new Promise((resolve, reject) => { sio.on('connect', resolve); sio.on('connect_error', reject); });
    const sioAck = await sio.timeout(3000).emitWithAck('subscribe', ['BBB-USD']);
    assert.ok(!sioAck.error, JSON.stringify(sioAck));
    await waitFor(() => tBoth.counts.get('BBB-USD') > 2 && /event: ?update/.test(sseText), { message: 'BBB-USD flowing' });
    const lastSeq = tBoth.latest.get('BBB-USD').seq;

    srv.writeConfig({ feeds: [feedA] });
    srv.signal('SIGHUP');
    const notice = await both.next((m) => m.op === 'error', 5000);
    assert.equal(notice.code, 'symbol_removed');
    assert.equal(notice.id, null);
    assert.deepEqual(notice.symbols, ['BBB-USD']);
    const starNotice = await star.next((m) => m.op === 'error', 5000);
    assert.deepEqual([starNotice.code, starNotice.symbols], ['symbol_removed', ['BBB-USD']]);
    await waitFor(() => /event: ?error\n(id:[^\n]*\n)?data: ?\{[^\n]*"code":"symbol_removed"/.test(sseText),
      { message: 'SSE error event symbol_removed' });
    await waitFor(() => sioErrors.length > 0, { message: 'Socket.IO error event' });
    assert.equal(sioErrors[0].error.code, 'symbol_removed');
    assert.deepEqual(sioErrors[0].error.symbols, ['BBB-USD']);
    assert.match(srv.stderr(), /1 symbol\(s\) no longer served \(BBB-USD\); 4 client\(s\) told symbol_removed/);

    // the room is closed: no more BBB-USD, AAA-USD continues for everyone, the symbol is unknown now
    const countAfter = tBoth.counts.get('BBB-USD');
    const seqA = tBoth.latest.get('AAA-USD').seq;
    await waitFor(() => tBoth.latest.get('AAA-USD').seq > seqA + 3, { message: 'AAA-USD continues' });
    assert.equal(tBoth.counts.get('BBB-USD'), countAfter, 'BBB-USD updates after its removal');
    assert.deepEqual(errorsOfA, []);
    const again = await both.request({ op: 'subscribe', symbols: ['BBB-USD'] });
    assert.equal(again.code, 'unknown_symbol');
    const syms = JSON.parse((await httpGet(srv, '/api/symbols')).body).symbols.map((x) => x.symbol);
    assert.ok(syms.includes('AAA-USD') && !syms.includes('BBB-USD'), syms.join());
    const health = JSON.parse((await httpGet(srv, '/healthz')).body);
    assert.equal(health.symbols, syms.length);
    assert.match((await httpGet(srv, '/metrics')).body, /tickerd_client_errors_total\{code="symbol_removed"\} 4/);

    // feed b back: BBB-USD is offered again, "*" takes it back, its seq continues
    srv.writeConfig({ feeds: [feedA, feedB] });
    srv.signal('SIGHUP');
    await waitForSymbols(srv, ['BBB-USD'], 5000);
    // first its snapshot (the value kept from before, seq >= what was last seen), then new values after it
    const back = await star.next((m) => (m.updates || []).some((u) => u.symbol === 'BBB-USD'), 5000);
    assert.equal(back.op, 'snapshot');
    const snapSeq = back.updates.find((u) => u.symbol === 'BBB-USD').seq;
    assert.ok(snapSeq >= lastSeq, `snapshot seq ${snapSeq} >= ${lastSeq}`);
    const next = await star.next((m) => m.op === 'update' && (m.updates || []).some((u) => u.symbol === 'BBB-USD'), 5000);
    assert.ok(next.updates.find((u) => u.symbol === 'BBB-USD').seq > snapSeq, 'seq continues');
    await both.subscribe(['BBB-USD']);
    assert.match(srv.stderr(), /BBB-USD is served again/);
    sio.close();
    sseReq.destroy();
  });
});
