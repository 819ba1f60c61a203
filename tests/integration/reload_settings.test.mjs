// SIGHUP applies limits, CORS origins and the log level live (docs/config.md, docs/operations.md#reload):
// each checked by its effect on the running server, not by the log saying so.
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import {
  startTickerd, stopAll, connect, closeAllClients, waitFor, waitForSymbols, httpGet, simConfig, sleep,
} from './lib/harness.mjs';

const T = { timeout: 40000 };
afterEach(async () => { closeAllClients(); await stopAll(); });

const base = (extra = {}) => simConfig({ rate: 200, seed: 3, ...extra });

async function reload(srv, config) {
  const before = (srv.stderr().match(/configuration reloaded|reload failed/g) || []).length;
  srv.writeConfig(config);
  srv.signal('SIGHUP');
  // the reload is done when the next line about it appears (or, at level warn, after a moment)
  await waitFor(() => (srv.stderr().match(/configuration reloaded|reload failed/g) || []).length > before,
    { timeoutMs: 1500 }).catch(() => sleep(500));
}

test('limits.max_messages_per_sec applies to connected clients after a reload', T, async () => {
  const srv = await startTickerd({ config: base({ limits: { max_messages_per_sec: 1000 } }) });
  await waitForSymbols(srv, ['BTC-USD']);
  const c = await connect(srv);
  const burst = async () => {
    for (let i = 0; i < 10; i++) c.send({ op: 'ping', id: i });
    await sleep(500);
    return c.drain().filter((m) => m.op === 'error' && m.code === 'rate_limited').length;
  };
  assert.equal(await burst(), 0, 'no rate limit at 1000/s');
  await reload(srv, base({ limits: { max_messages_per_sec: 2 } }));
  await sleep(1100); // let the bucket refill to the new (lower) size
  assert.ok(await burst() >= 5, 'the same burst is rate-limited at 2/s on the same connection');
});

test('api.cors_origins applies to the next requests after a reload', T, async () => {
  const srv = await startTickerd({ config: base({ api: { cors_origins: '' } }) });
  await waitForSymbols(srv, ['BTC-USD']);
  const origin = 'https://desk.example';
  const ask = async () => (await httpGet(srv, '/api/snapshot?symbols=BTC-USD', { headers: { Origin: origin } }))
    .headers['access-control-allow-origin'];
  assert.equal(await ask(), undefined);
  await reload(srv, base({ api: { cors_origins: origin } }));
  assert.equal(await ask(), origin);
  await reload(srv, base({ api: { cors_origins: 'https://other.example' } }));
  assert.equal(await ask(), undefined);
});

test('log.level applies at once: a reload to warn silences info lines, back to info restores them', T, async () => {
  const srv = await startTickerd({ config: base({ log: { level: 'info' } }), logLevel: null });
  await waitForSymbols(srv, ['BTC-USD']);
  const count = () => (srv.stderr().match(/configuration reloaded/g) || []).length;
  srv.writeConfig(base({ log: { level: 'warn' } }));
  srv.signal('SIGHUP');
  await sleep(1000);
  assert.equal(count(), 0, 'the reload to warn logged no info line');
  srv.writeConfig(base({ log: { level: 'warn' }, limits: { max_errors: 7 } }));
  srv.signal('SIGHUP');
  await sleep(1000);
  assert.equal(count(), 0, 'still warn');
  srv.writeConfig(base({ log: { level: 'info' } }));
  srv.signal('SIGHUP');
  await waitFor(() => count() === 1, { message: 'info lines again after the reload to info' });
  assert.ok(srv.alive());
});
