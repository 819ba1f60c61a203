#!/usr/bin/env node
// Print live prices from tickerd with the client SDK (web/tickerd-client.js). Node >= 20.
//
//   node examples/node-client.mjs ws://127.0.0.1:8080/ws BTC-USD ETH-USD
//
// One line per value on stdout; connection status and errors on stderr. Reconnects by itself (and
// re-subscribes) if tickerd goes away. Ctrl-C closes the connection and prints a summary.
// Node 22+ has a global WebSocket; on Node 20 the `ws` package is used (installed in tests/node_modules by
// `cd tests && npm ci`, or anywhere Node resolves 'ws' from here).
import { connect } from '../web/tickerd-client.js';

const [url, ...symbols] = process.argv.slice(2);
if (!url || !/^wss?:\/\//.test(url) || !symbols.length) {
  console.error('usage: node examples/node-client.mjs ws://HOST:PORT/ws SYMBOL... (or * for every symbol)');
  process.exit(2);
}

async function webSocketClass() {
  if (typeof globalThis.WebSocket === 'function') return globalThis.WebSocket;
  for (const spec of ['ws', new URL('../tests/node_modules/ws/wrapper.mjs', import.meta.url).href]) {
    try { return (await import(spec)).default; } catch { /* next */ }
  }
  console.error('no WebSocket: use Node >= 22, or install the ws package (cd tests && npm ci)');
  process.exit(2);
}

const p2 = (n, w = 2) => String(n).padStart(w, '0');
const time = (us) => { // local HH:MM:SS.mmm of the upstream timestamp (µs)
  const d = new Date(us / 1000);
  return `${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())}.${p2(d.getMilliseconds(), 3)}`;
};
const client = connect(url, { WebSocket: await webSocketClass() });

client.on('status', ({ status, attempt, delay }) => {
  console.error(status === 'reconnecting' && delay ? `# reconnecting in ${Math.round(delay)} ms (attempt ${attempt})`
    : `# ${status}`);
});
client.on('error', (e) => {
  // transport errors repeat on every failed attempt while tickerd is down: the status line says enough
  // (unknown symbols are reported by 'rejected' below)
  if (e.source === 'server' && e.code !== 'unknown_symbol') console.error(`# server error ${e.code}: ${e.message}`);
});
client.on('rejected', ({ symbols: bad }) => console.error(`# unknown symbol(s), dropped: ${bad.join(', ')}`));

const lastSkipped = new Map();
const print = (kind) => (u) => {
  const skipped = client.skippedFor(u.symbol);
  const gap = skipped - (lastSkipped.get(u.symbol) ?? 0);
  lastSkipped.set(u.symbol, skipped);
  console.log(`${time(u.ts)} ${kind.padEnd(8)} ${u.symbol.padEnd(10)} last ${String(u.last).padStart(12)}  ` +
    `bid ${u.bid} ask ${u.ask}  seq ${u.seq}${gap ? ` (+${gap} skipped)` : ''}${u.stale === true ? '  STALE' : ''}`);
};
client.on('snapshot', print('snapshot'));
client.on('update', print('update'));

// Ask once connected, so an unknown symbol is reported; after a reconnect the client re-subscribes itself.
client.ready().then(() => client.subscribe(symbols, { partial: true })).then(({ symbols: ok }) => {
  if (ok.length) console.error(`# subscribed: ${ok.join(', ')}`);
}).catch((e) => console.error(`# subscribe failed: ${e.code}: ${e.message}`));

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    const s = client.stats();
    client.close();
    console.error(`# ${s.snapshots} snapshot and ${s.updates} update values, ${s.skipped} skipped by conflation, ` +
      `${s.reconnects} reconnects`);
  });
}
