// Process lifecycle and operations surface (docs/config.md): signals, config validation, CLI, HTTP endpoints.
import { test, describe, afterEach, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startTickerd, runTickerd, stopAll, connect, closeAllClients, httpGet, metrics, waitFor, waitForSymbols,
  simConfig, hasSymbol, waitForSymbolCount, updatesOf, UpdateTracker, sleep, DEFAULT_SYMBOLS, BUILTIN_SYMBOL_COUNT,
} from './lib/harness.mjs';

const T = { timeout: 30000 };
const NEW_SYMBOL = { symbol: 'NEW-USD', price: 10, volatility: 0.5, spread_bps: 5, tick: 0.01 };

afterEach(async () => {
  closeAllClients();
  await stopAll();
});
after(async () => {
  closeAllClients();
  await stopAll();
});

async function feedRate(srv, ms = 1000) {
  const a = (await metrics(srv)).sum('tickerd_feed_updates_total', { feed: 'sim' });
  const t0 = Date.now();
  await sleep(ms);
  const b = (await metrics(srv)).sum('tickerd_feed_updates_total', { feed: 'sim' });
  return ((b - a) * 1000) / (Date.now() - t0);
}

// ------------------------------------------------------------------------------------------------ signals
describe('signals', () => {
  for (const sig of ['SIGTERM', 'SIGINT']) {
    test(`${sig}: every client gets close 1001 and the process exits 0 within 2 s`, T, async () => {
      const srv = await startTickerd({ config: simConfig({ rate: 5000 }) });
      await waitForSymbols(srv, ['BTC-USD']);
      const a = await connect(srv);
      const b = await connect(srv);
      const idle = await connect(srv); // connected, no subscription
      await a.subscribe(['*']);
      await b.subscribe(['BTC-USD']);
      await a.next((m) => m.op === 'update', 3000);
      const exited = srv.waitExit(10000);
      const t0 = Date.now();
      srv.signal(sig);
      const { code, signal } = await exited;
      const elapsed = Date.now() - t0;
      assert.equal(signal, null, `killed by ${signal}`);
      assert.equal(code, 0, `exit code ${code}; stderr:\n${srv.stderr().slice(-2000)}`);
      assert.ok(elapsed <= 2000, `exit took ${elapsed} ms`);
      for (const [name, c] of [['a', a], ['b', b], ['idle', idle]]) {
        const info = await c.waitClose(1000);
        assert.equal(info.code, 1001, `client ${name} closed with ${info.code} (${info.reason})`);
      }
    });
  }

  test('SIGHUP applies a new symbol and rate without dropping clients; "*" gets the new symbol', T, async () => {
    const cfg = simConfig({ rate: 200, seed: 5 });
    const srv = await startTickerd({ config: cfg });
    await waitForSymbols(srv, ['BTC-USD']);
    const btc = await connect(srv);
    const tBtc = new UpdateTracker(btc);
    await btc.subscribe(['BTC-USD']);
    const all = await connect(srv);
    const tAll = new UpdateTracker(all);
    await all.subscribe(['*']);

    const e = await btc.request({ op: 'subscribe', symbols: ['NEW-USD'] });
    assert.equal(e.code, 'unknown_symbol', `NEW-USD known before the reload: ${JSON.stringify(e)}`);
    const rateBefore = await feedRate(srv);

    const cfg2 = structuredClone(cfg);
    cfg2.feeds[0].rate = 5000;
    cfg2.feeds[0].symbols = [NEW_SYMBOL];
    srv.writeConfig(cfg2);
    const seqBefore = tBtc.latest.get('BTC-USD')?.seq ?? -1;
    srv.signal('SIGHUP');

    await waitForSymbols(srv, ['NEW-USD', 'BTC-USD'], 3000);
    // the existing connections survived and still get updates
    const framesAtReload = tBtc.updateFrames;
    await waitFor(() => tBtc.updateFrames > framesAtReload + 3, { timeoutMs: 3000, message: 'BTC-USD updates after reload' });
    assert.ok(btc.isOpen && all.isOpen, 'a client was dropped by the reload');
    assert.ok(tBtc.latest.get('BTC-USD').seq > seqBefore);
    assert.deepEqual(tBtc.violations, [], 'BTC-USD ordering across the reload');

    // the new symbol is subscribable, and its values are around its configured price
    const ack = await btc.request({ op: 'subscribe', symbols: ['NEW-USD'], id: 'new' });
    assert.equal(ack.op, 'ack', `subscribe NEW-USD after reload: ${JSON.stringify(ack)}`);
    const m = await btc.next((x) => hasSymbol(x, 'NEW-USD'), 3000, 'NEW-USD data');
    const u = updatesOf(m).find((x) => x.symbol === 'NEW-USD');
    assert.ok(u.last > 5 && u.last < 20, `NEW-USD last ${u.last}, configured price 10`);
    assert.ok(u.bid <= u.ask);

    // a fresh client can subscribe to it too
    const fresh = await connect(srv);
    await fresh.subscribe(['NEW-USD']);
    await fresh.next((x) => hasSymbol(x, 'NEW-USD'), 3000, 'NEW-USD data on a fresh connection');

    // "*" covers symbols that appear later
    await waitFor(() => tAll.latest.has('NEW-USD'), { timeoutMs: 3000, message: '"*" subscriber to get NEW-USD' });
    assert.deepEqual(tAll.violations, []);

    // the rate change applied
    const rateAfter = await feedRate(srv);
    assert.ok(rateAfter > 3 * rateBefore && rateAfter > 1000,
      `feed rate ${rateBefore.toFixed(0)}/s before, ${rateAfter.toFixed(0)}/s after reloading rate 200 -> 5000`);
    assert.ok(srv.alive());
  });

  test('SIGHUP with an invalid file keeps running on the old configuration', T, async () => {
    const cfg = simConfig({ rate: 1000, seed: 6 });
    const srv = await startTickerd({ config: cfg });
    await waitForSymbols(srv, ['BTC-USD']);
    const c = await connect(srv);
    const tc = new UpdateTracker(c);
    await c.subscribe(['BTC-USD']);
    const broken = [
      '{"feeds": [ {"type":"sim", ',                                          // invalid JSON
      JSON.stringify({ ...simConfig({ rate: 1000 }), bogus: 1 }),              // unknown key
      JSON.stringify(simConfig({ rate: 'fast', feed: { symbols: [NEW_SYMBOL] } })), // wrong type (+ a new symbol)
    ];
    for (const text of broken) {
      srv.writeConfig(text);
      srv.signal('SIGHUP');
      await sleep(500);
      assert.ok(srv.alive(), `tickerd exited after reloading ${text}; stderr:\n${srv.stderr().slice(-2000)}`);
      const h = await httpGet(srv, '/healthz');
      assert.equal(h.status, 200, `healthz after a bad reload: ${h.body}`);
      assert.ok(c.isOpen, 'client dropped by a failed reload');
      const before = tc.updateFrames;
      await waitFor(() => tc.updateFrames > before, { timeoutMs: 2000, message: 'updates after a failed reload' });
    }
    // nothing of the rejected file was applied
    const syms = (await httpGet(srv, '/api/symbols')).json().symbols.map((s) => s.symbol);
    assert.ok(!syms.includes('NEW-USD'), 'a symbol from a rejected config was applied');
    const rate = await feedRate(srv);
    assert.ok(rate > 500 && rate < 2000, `feed rate ${rate.toFixed(0)}/s, the kept config says 1000`);

    // and a later valid reload still works
    const good = structuredClone(cfg);
    good.feeds[0].symbols = [NEW_SYMBOL];
    srv.writeConfig(good);
    srv.signal('SIGHUP');
    await waitForSymbols(srv, ['NEW-USD'], 3000);
    assert.ok(c.isOpen);
    assert.deepEqual(tc.violations, []);
  });

  test('SIGHUP applies limits and max_connections at once; bind/port stay until restart', T, async () => {
    const cfg = simConfig({ rate: 1000, seed: 7, server: { max_connections: 100 } });
    const srv = await startTickerd({ config: cfg });
    await waitForSymbols(srv, ['BTC-USD', 'ETH-USD']);
    const c = await connect(srv);
    await c.subscribe(['BTC-USD']);
    const d = await connect(srv);

    const cfg2 = structuredClone(cfg);
    cfg2.limits = { max_subscriptions: 1 };
    cfg2.server.max_connections = 1;
    cfg2.server.port = 1;               // needs a restart: must keep listening where it is
    cfg2.server.bind = '127.0.0.2';
    srv.writeConfig(cfg2);
    srv.signal('SIGHUP');
    // the new subscription limit applies to the existing connection...
    const r = await waitFor(async () => {
      const x = await c.request({ op: 'subscribe', symbols: ['ETH-USD'] });
      return x.op === 'error' ? x : (await c.unsubscribe(['ETH-USD']), false);
    }, { timeoutMs: 3000, intervalMs: 200, message: 'max_subscriptions 1 to apply after SIGHUP' });
    assert.equal(r.code, 'too_many_subscriptions', JSON.stringify(r));

    // ...max_connections 1 refuses new connections but keeps the two already open
    const e = await connect(srv, { waitOpen: false });
    const info = await e.waitClose(3000);
    assert.equal(info.code, 1013, `new connection above the reloaded max_connections closed with ${info.code}`);
    assert.ok(c.isOpen && d.isOpen, 'a connection open before lowering max_connections was dropped');
    assert.equal((await d.request({ op: 'ping' })).op, 'ack');

    // still serving on the original address and port
    assert.equal((await httpGet(srv, '/healthz')).status, 200);
    assert.ok(srv.alive());
  });

  test('SIGHUP stops a feed removed from the file and starts a new one', T, async () => {
    const cfg = simConfig({ rate: 1000, seed: 8 });
    const srv = await startTickerd({ config: cfg });
    await waitForSymbols(srv, ['BTC-USD']);
    const c = await connect(srv);
    await c.subscribe(['BTC-USD']);
    const cfg2 = structuredClone(cfg);
    cfg2.feeds[0].name = 'sim2';
    srv.writeConfig(cfg2);
    srv.signal('SIGHUP');
    const h = await waitFor(async () => {
      const j = (await httpGet(srv, '/healthz')).json();
      const names = (j.feeds ?? []).map((f) => f.name);
      return names.includes('sim2') && !names.includes('sim') && j.feeds.find((f) => f.name === 'sim2').state === 'live' ? j : false;
    }, { timeoutMs: 3000, message: '/healthz to list feed sim2 (live) and no longer sim' });
    assert.equal(h.status, 'ok');
    const m = await metrics(srv);
    assert.equal(m.value('tickerd_feed_up', { feed: 'sim2' }), 1);
    assert.notEqual(m.value('tickerd_feed_up', { feed: 'sim' }), 1, 'removed feed "sim" still reported up');
    // the symbols are still served (now from sim2) to the client that was already subscribed
    const u = await c.next((x) => x.op === 'update' && updatesOf(x).some((v) => v.symbol === 'BTC-USD' && (v.src === undefined || v.src === 'sim2')),
      3000, 'a BTC-USD update from sim2');
    assert.ok(u);
    assert.ok(c.isOpen);
  });
});

// ---------------------------------------------------------------------------------------------- keepalive
test('keepalive: an idle client is pinged after ping_interval_s; one that never pongs is closed', T, async (t) => {
  const srv = await startTickerd({ config: simConfig({ rate: 100, broadcast: { ping_interval_s: 1 } }) });
  const idle = await connect(srv);
  let pings = 0;
  idle.ws.on('ping', () => { pings++; });
  const mute = await connect(srv, { wsOptions: { autoPong: false } });
  let mutePings = 0;
  mute.ws.on('ping', () => { mutePings++; });
  const t0 = Date.now();
  const info = await mute.waitClose(5000);
  const closedAfter = Date.now() - t0;
  t.diagnostic(`client without pongs closed with ${info.code} after ${closedAfter} ms`);
  assert.ok(mutePings >= 1, 'the client was closed without having been pinged');
  assert.ok(closedAfter >= 1000, `closed after ${closedAfter} ms, before one ping interval of silence`);
  await sleep(Math.max(0, 3500 - (Date.now() - t0)));
  assert.ok(pings >= 1, 'an idle client got no WebSocket ping within 3.5 s at ping_interval_s 1');
  assert.ok(idle.isOpen, `a client that answers pings was closed: ${JSON.stringify(idle.closeInfo)}`);
  assert.equal((await idle.request({ op: 'ping' })).op, 'ack');
});

// ------------------------------------------------------------------------------------------ configuration
describe('invalid configuration exits 2 naming the key, before listening', () => {
  async function expectConfigError(opts, keyRe) {
    const r = await runTickerd({ args: ['--port', '0'], ...opts, timeoutMs: 5000 });
    const out = `exit ${r.code} signal ${r.signal}; stderr:\n${r.stderr}\nstdout:\n${r.stdout}`;
    assert.equal(r.timedOut, false, `tickerd kept running (${out})`);
    assert.equal(r.code, 2, out);
    assert.match(r.stderr, keyRe, out);
    assert.equal((r.stderr.match(/config error:/g) ?? []).length, 1, `expected exactly one "config error:" line (${out})`);
    assert.doesNotMatch(r.stderr + r.stdout, /listening on/, out);
  }

  test('unknown key', T, () => expectConfigError({ config: { server: { prot: 1 } } }, /config error: server\.prot\b/));
  test('unknown top-level key', T, () => expectConfigError({ config: { sever: {} } }, /config error: sever\b/));
  test('wrong type', T, () => expectConfigError({ config: { normalizer: { flush_interval_ms: 'x' } } },
    /config error: normalizer\.flush_interval_ms\b/));
  test('out of range', T, () => expectConfigError({ config: { limits: { max_subscriptions: 0 } } },
    /config error: limits\.max_subscriptions\b/));
  test('out of range above the maximum', T, () => expectConfigError({ config: { normalizer: { flush_interval_ms: 60001 } } },
    /config error: normalizer\.flush_interval_ms\b/));
  test('bad value inside a feed', T, () => expectConfigError({ config: simConfig({ rate: 0 }) },
    /config error: feeds\S*rate\b/));
  test('bad log level', T, () => expectConfigError({ config: { log: { level: 'loud' } } }, /config error: log\.level\b/));
  test('unreadable file', T, () => expectConfigError({ configPath: '/nonexistent/dir/tickerd.json' }, /config error:/));
  test('invalid JSON', T, () => expectConfigError({ config: '{"server": {"port": 8080,}' }, /config error:/));
  test('bad --port value', T, () => expectConfigError({ config: {}, args: ['--port', '70000'] }, /config error:.*port/));
  test('bad --log-level value', T, () => expectConfigError({ config: {}, args: ['--port', '0', '--log-level', 'loud'] },
    /config error:.*level/));
});

describe('command line', () => {
  for (const flag of ['--help', '-h']) {
    test(`${flag} exits 0 and lists the flags`, T, async () => {
      const r = await runTickerd({ args: [flag] });
      assert.equal(r.timedOut, false, 'tickerd kept running');
      assert.equal(r.code, 0, `exit ${r.code}; stderr:\n${r.stderr}`);
      const out = r.stdout + r.stderr;
      for (const f of ['--config', '--bind', '--port', '--log-level']) assert.ok(out.includes(f), `${flag} output lacks ${f}:\n${out}`);
      assert.doesNotMatch(out, /listening on/);
    });
  }

  test('--version exits 0 and prints something', T, async () => {
    const r = await runTickerd({ args: ['--version'] });
    assert.equal(r.timedOut, false);
    assert.equal(r.code, 0, `exit ${r.code}; stderr:\n${r.stderr}`);
    assert.ok((r.stdout + r.stderr).trim().length > 0);
  });

  test('flags win over the file', T, async () => {
    // server.port 1 would be refused (privileged) / server.bind 0.0.0.0 would listen everywhere
    const srv = await startTickerd({ config: { server: { port: 1, bind: '0.0.0.0' } }, args: ['--bind', '127.0.0.1'] });
    assert.equal(srv.host, '127.0.0.1');
    assert.notEqual(srv.port, 1);
    assert.equal((await httpGet(srv, '/healthz')).status, 200);
  });
});

// --------------------------------------------------------------------------------------------------- HTTP
describe('HTTP endpoints', () => {
  test('/healthz is 200 with the sim feed live, client and symbol counts', T, async () => {
    const srv = await startTickerd({ config: simConfig({ rate: 1000 }) });
    await waitForSymbolCount(srv, BUILTIN_SYMBOL_COUNT);
    const c1 = await connect(srv);
    const c2 = await connect(srv);
    const body = await waitFor(async () => {
      const r = await httpGet(srv, '/healthz');
      if (r.status !== 200) return false;
      const j = r.json();
      return j.feeds?.[0]?.state === 'live' && j.clients === 2 ? j : false;
    }, { timeoutMs: 3000, message: '/healthz 200 with feed live and clients 2' });
    const r = await httpGet(srv, '/healthz');
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'] ?? '', /application\/json/);
    assert.equal(body.status, 'ok');
    assert.ok(Array.isArray(body.feeds));
    const sim = body.feeds.find((f) => f.name === 'sim');
    assert.ok(sim, `no feed named sim: ${JSON.stringify(body.feeds)}`);
    assert.equal(sim.type, 'sim');
    assert.equal(sim.state, 'live');
    assert.equal(body.clients, 2);
    assert.equal(body.symbols, BUILTIN_SYMBOL_COUNT);
    c1.close();
    c2.close();
    await waitFor(async () => (await httpGet(srv, '/healthz')).json().clients === 0,
      { timeoutMs: 2000, message: '/healthz clients to drop to 0' });
  });

  test('/api/symbols lists every symbol with last and seq', T, async () => {
    const srv = await startTickerd({ config: simConfig({ rate: 2000 }) });
    const list = await waitForSymbols(srv, DEFAULT_SYMBOLS);
    const r = await httpGet(srv, '/api/symbols');
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'] ?? '', /application\/json/);
    assert.equal(list.length, BUILTIN_SYMBOL_COUNT);
    for (const s of list) {
      assert.match(s.symbol, /^[A-Z0-9]+-[A-Z0-9]+$/);
      assert.ok(typeof s.last === 'number' && s.last > 0, JSON.stringify(s));
      assert.ok(Number.isInteger(s.seq) && s.seq >= 0, JSON.stringify(s));
    }
    assert.equal(new Set(list.map((s) => s.symbol)).size, list.length, 'duplicate symbols');
  });

  test('/metrics exposes the documented metrics with consistent values', T, async () => {
    const srv = await startTickerd({ config: simConfig({ rate: 2000 }) });
    await waitForSymbols(srv, DEFAULT_SYMBOLS);
    const c = await connect(srv);
    await c.subscribe(['BTC-USD', 'ETH-USD']);
    await c.next((m) => m.op === 'update', 3000);
    c.send('{oops');
    await c.next((m) => m.op === 'error', 2000);
    const m1 = await metrics(srv);
    assert.match(m1.headers['content-type'] ?? '', /text\/plain/);
    const names = [
      'tickerd_clients_connected', 'tickerd_subscriptions', 'tickerd_symbols', 'tickerd_updates_in_total',
      'tickerd_updates_rejected_total', 'tickerd_updates_coalesced_total', 'tickerd_updates_published_total',
      'tickerd_updates_out_total', 'tickerd_updates_conflated_total', 'tickerd_frames_out_total',
      'tickerd_bytes_out_total', 'tickerd_slow_client_closes_total', 'tickerd_client_errors_total',
      'tickerd_abuse_closes_total', 'tickerd_connections_rejected_total', 'tickerd_feed_up',
      'tickerd_feed_updates_total',
    ];
    const missing = names.filter((n) => !m1.has(n));
    assert.deepEqual(missing, [], `missing metrics; got:\n${m1.text}`);
    assert.equal(m1.value('tickerd_clients_connected'), 1);
    assert.equal(m1.value('tickerd_subscriptions'), 2);
    assert.equal(m1.value('tickerd_symbols'), BUILTIN_SYMBOL_COUNT);
    assert.equal(m1.value('tickerd_feed_up', { feed: 'sim' }), 1);
    assert.ok(m1.value('tickerd_feed_updates_total', { feed: 'sim' }) > 0);
    assert.ok(m1.sum('tickerd_client_errors_total', { code: 'bad_json' }) >= 1);
    assert.ok(m1.value('tickerd_frames_out_total') > 0);
    assert.ok(m1.value('tickerd_bytes_out_total') > 0);
    assert.ok(m1.value('tickerd_updates_out_total') > 0);
    assert.ok(m1.value('tickerd_updates_published_total') <= m1.value('tickerd_updates_in_total'),
      'more values published than updates accepted');
    await sleep(500);
    const m2 = await metrics(srv);
    assert.ok(m2.value('tickerd_updates_in_total') > m1.value('tickerd_updates_in_total'), 'updates_in_total not increasing');
    assert.ok(m2.value('tickerd_updates_out_total') > m1.value('tickerd_updates_out_total'), 'updates_out_total not increasing');
  });

  test('/healthz is 503 "down" when no feed is live', T, async () => {
    const srv = await startTickerd({ config: { feeds: [] } });
    const r = await httpGet(srv, '/healthz');
    assert.equal(r.status, 503, r.body);
    assert.equal(r.json().status, 'down');
  });

  test('GET / serves the dashboard HTML', T, async () => {
    const srv = await startTickerd({ config: simConfig({ rate: 100 }) });
    const r = await httpGet(srv, '/');
    assert.equal(r.status, 200, r.body.slice(0, 200));
    assert.match(r.headers['content-type'] ?? '', /text\/html/);
    assert.match(r.body, /<!doctype html|<html/i);
  });

  test('normalizer.max_symbols bounds the symbol table; the excess is rejected and counted', T, async () => {
    const srv = await startTickerd({ config: simConfig({ rate: 2000, normalizer: { max_symbols: 5 } }) });
    const m = await waitFor(async () => {
      const x = await metrics(srv);
      return x.sum('tickerd_updates_rejected_total') > 0 ? x : false;
    }, { timeoutMs: 3000, message: 'tickerd_updates_rejected_total > 0' });
    assert.equal(m.value('tickerd_symbols'), 5);
    const list = (await httpGet(srv, '/api/symbols')).json().symbols;
    assert.equal(list.length, 5);
    assert.ok(srv.alive());
  });
});
