// SIGHUP adding and removing a feed while clients are subscribed (docs/operations.md#reload): no restart,
// the streams continue with their seq, what cannot change live is named in the log, a bad file changes nothing.
import { test, describe, afterEach } from 'node:test';
import assert from 'node:assert/strict';
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
});
