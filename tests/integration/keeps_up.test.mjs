// A client that keeps up gets every value while the server is saturated (issue 13, docs/protocol.md
// "Delivery guarantees", docs/config.md broadcast.backlog_ms): thousands of other connections, opened by the C
// load tool (bench/tickerd-loadgen), ask for more than one core can write, so the fan-out has to batch; the
// observed Node client reads promptly and must see consecutive seqs of every symbol it follows (nothing
// conflated for it) while the loaded clients are conflated as designed. No timing thresholds: speed lives in
// the bench (docs/performance.md).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import {
  TICKERD_BIN, startTickerd, stopAll, connect, closeAllClients, metrics, waitForSymbolCount, simConfig, UpdateTracker,
  sleep, orAfter,
} from './lib/harness.mjs';

// ASan/UBSan builds run ~3x slower: half the connections there (the server is as saturated at 1,000).
const ASAN = /build-asan/.test(TICKERD_BIN);
const N = ASAN ? 1000 : 2000;
const RATE = 20000; // values/s offered upstream over 100 symbols (100/s per symbol after 10 ms coalescing)
const WATCH_MS = ASAN ? 6000 : 8000;
const LOADGEN = process.env.TICKERD_LOADGEN || path.join(path.dirname(TICKERD_BIN), 'bench', 'tickerd-loadgen');

const T = { timeout: 60000 };

let loadgen = null;
after(async () => {
  if (loadgen && loadgen.exitCode === null) loadgen.kill('SIGKILL');
  closeAllClients();
  await stopAll();
});

/** Start the load tool; resolves once every connection is up ("CONNECTED" on its stderr). */
function startLoad(srv, n, seconds) {
  const argv = ['--url', `ws://${srv.rawHost}:${srv.port}/ws`, '-n', String(n), '-k', '10', '-s', '100',
    '--warmup', '0', '--duration', String(seconds), '--wait-signal', '--json', '-q'];
  loadgen = spawn(LOADGEN, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  loadgen.stdout.setEncoding('utf8').on('data', (d) => { out += d; });
  const done = new Promise((resolve) => loadgen.once('exit', (code) => resolve({ code, out, err })));
  const connected = new Promise((resolve, reject) => {
    loadgen.stderr.setEncoding('utf8').on('data', (d) => {
      err += d;
      if (/CONNECTED/.test(err)) resolve();
    });
    done.then(({ code }) => reject(new Error(`tickerd-loadgen exited (${code}) before connecting: ${err}`)));
  });
  return { connected, done, proc: loadgen };
}

test(`a client that keeps up sees consecutive seqs while ${N} other connections saturate the server`, {
  ...T, skip: fs.existsSync(LOADGEN) ? false : `no load tool at ${LOADGEN} (TICKERD_BUILD_BENCH off?)`,
}, async (t) => {
  const srv = await startTickerd({
    config: simConfig({
      rate: 100, // the real rate once everyone is connected (an overloaded server accepts slowly)
      seed: 1313,
      feed: { include_defaults: false, generated_symbols: 100 },
      server: { max_connections: N + 100 },
      // Defaults otherwise: coalescing 10 ms, broadcast.backlog_ms and resume_depth as shipped.
    }),
  });
  await waitForSymbolCount(srv, 100, 10000);

  const load = startLoad(srv, N, WATCH_MS / 1000 + 60); // ended by us (SIGINT) once the watch is over
  await load.connected;

  // The observed client: ten symbols, like each loaded one, read as fast as Node can.
  const c = await connect(srv);
  const tr = new UpdateTracker(c);
  const symbols = Array.from({ length: 10 }, (_, i) => `G${String(i * 10 + 3).padStart(5, '0')}-USD`);
  await c.subscribe(symbols);
  const drain = setInterval(() => c.drain(), 100);
  try {
    // Full rate (SIGHUP applies a feed's rate at once), then let it settle before counting.
    srv.writeConfig(simConfig({
      rate: RATE,
      seed: 1313,
      feed: { include_defaults: false, generated_symbols: 100 },
      server: { max_connections: N + 100 },
    }));
    srv.signal('SIGHUP');
    load.proc.kill('SIGUSR1'); // the load tool measures from here (its report is diagnostic only)
    await sleep(1500);
    const m0 = await metrics(srv);
    const total0 = tr.total;
    const gaps0 = tr.gaps;
    const frames0 = tr.updateFrames;
    await sleep(WATCH_MS);
    const m1 = await metrics(srv);
    const got = tr.total - total0;
    const frames = tr.updateFrames - frames0;
    const conflated = m1.sum('tickerd_updates_conflated_total') - m0.sum('tickerd_updates_conflated_total');
    const published = m1.sum('tickerd_updates_published_total') - m0.sum('tickerd_updates_published_total');
    t.diagnostic(`observed client: ${got} values in ${frames} update frames over ${WATCH_MS} ms; `
      + `server: ${published} values published, ${conflated} conflated for the loaded clients`);

    assert.deepEqual(tr.violations, [], 'order per symbol');
    assert.ok(got > 0, 'the observed client received updates');
    // The point of the test: nothing conflated for the client that keeps up.
    assert.equal(tr.gaps - gaps0, 0, `seq gaps seen by the client that keeps up (${got} values received)`);
    assert.ok(srv.alive(), 'tickerd is still running');
  } finally {
    clearInterval(drain);
    load.proc.kill('SIGINT');
    const r = await orAfter(load.done, 10000, null);
    if (r?.out) {
      try {
        const j = JSON.parse(r.out.trim().split('\n').pop());
        t.diagnostic(`load tool: ${j.connected} connected, ${Math.round(j.updates_per_s)} updates/s in `
          + `${Math.round(j.frames_per_s)} frames/s, seq_skipped ${j.seq_skipped}, failed ${j.failed}`);
      } catch { /* diagnostic only */ }
    }
  }
});
