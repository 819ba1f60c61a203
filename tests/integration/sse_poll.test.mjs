// Server-Sent Events (/sse) and HTTP long-polling (/api/poll) against the real binary, with plain node:http
// clients (what a program without a WebSocket library has). Framing, resume through Last-Event-ID and cursors
// (replay, or an explicit reset after a restart: never a silent gap), heartbeats, CORS, errors with their
// counters, and a slow SSE reader that stays bounded and converges to the latest value.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import {
  startTickerd, stopAll, httpGet, metrics, waitFor, waitForSymbols, simConfig, sleep, BUILTIN_SYMBOL_COUNT,
} from './lib/harness.mjs';

after(stopAll);
const T = { timeout: 60000 };

/**
 * An SSE stream: parses events as they arrive (the text/event-stream rules: "field: value" lines, a blank
 * line ends an event, ":" lines are comments). `events` [{event, id, data}], `comments`, `retry`.
 */
function openSse(srv, query, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: srv.port, path: `/sse?${query}`, headers }, (res) => {
      const s = { res, req, status: res.statusCode, headers: res.headers, events: [], comments: [], retry: null,
        body: '', close() { req.destroy(); } };
      s.ended = new Promise((r) => { res.on('end', r); res.on('close', r); });
      let buf = '';
      let cur = {};
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        if (res.statusCode !== 200) { s.body += chunk; return; }
        buf += chunk;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line === '') {
            if (cur.data !== undefined) s.events.push({ event: cur.event || 'message', id: cur.id, data: JSON.parse(cur.data) });
            cur = {};
          } else if (line.startsWith(':')) {
            s.comments.push(line);
          } else {
            const c = line.indexOf(':');
            const field = c < 0 ? line : line.slice(0, c);
            const value = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
            if (field === 'retry') s.retry = Number(value);
            else if (field === 'data') cur.data = cur.data === undefined ? value : `${cur.data}\n${value}`;
            else cur[field] = value;
          }
        }
      });
      res.on('error', () => {});
      resolve(s);
    });
    req.on('error', reject);
  });
}

/** The price frames of a stream (the subscribe's ack and other replies left out). */
const frames = (s) => s.events.filter((e) => e.event !== 'ack');
const seqsOf = (events, symbol) => events.flatMap((e) => (e.data.updates || []).filter((u) => u.symbol === symbol)
  .map((u) => ({ event: e.event, seq: u.seq, reset: !!e.data.reset })));

const pollGet = async (srv, query, headers) => {
  const t0 = Date.now();
  const r = await httpGet(srv, `/api/poll?${query}`, { headers });
  return { ...r, ms: Date.now() - t0, j: r.status === 200 || r.body.startsWith('{') ? JSON.parse(r.body) : null };
};

test('SSE: text/event-stream, retry first, a snapshot then updates with ids and increasing seq', T, async () => {
  const srv = await startTickerd({ config: simConfig({ rate: 500, api: { sse_retry_ms: 1234 } }) });
  await waitForSymbols(srv, ['BTC-USD', 'ETH-USD']);
  const s = await openSse(srv, 'symbols=BTC-USD,ETH-USD');
  assert.equal(s.status, 200);
  assert.match(s.headers['content-type'], /^text\/event-stream/);
  assert.match(s.headers['cache-control'] || '', /no-cache|no-store/);
  await waitFor(() => s.events.filter((e) => e.event === 'update').length >= 20, { message: '20 update events' });
  s.close();
  assert.equal(s.retry, 1234, 'retry: carries api.sse_retry_ms');
  // The subscribe's ack first (it carries the epoch), then the snapshot.
  assert.equal(s.events[0].event, 'ack');
  assert.equal(typeof s.events[0].data.epoch, 'string');
  assert.equal(s.events[1].event, 'snapshot');
  assert.deepEqual(s.events[1].data.updates.map((u) => u.symbol).sort(), ['BTC-USD', 'ETH-USD']);
  for (const e of s.events.slice(1)) {
    assert.ok(['snapshot', 'update'].includes(e.event), `unexpected event ${e.event}`);
    assert.equal(e.data.op, e.event, 'the event name is the frame kind');
    // id: "EPOCH,SYM:seq,…" — the position a reconnecting EventSource hands back.
    assert.match(e.id, /^[^,]+(,[A-Z0-9.-]+:\d+)+$/, `id ${e.id}`);
  }
  for (const sym of ['BTC-USD', 'ETH-USD']) {
    const seqs = seqsOf(s.events, sym).map((x) => x.seq);
    assert.ok(seqs.length > 3, `${sym}: only ${seqs.length} values`);
    for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i] > seqs[i - 1], `${sym}: seq ${seqs[i - 1]} then ${seqs[i]}`);
  }
  // The last id names the last seq of each symbol.
  const last = s.events.at(-1).id.split(',').slice(1).map((p) => p.split(':'));
  for (const [sym, seq] of last) assert.equal(Number(seq), seqsOf(s.events, sym).at(-1).seq);
});

test('SSE: symbols=* streams every symbol; a quiet stream gets comment heartbeats', T, async () => {
  // 1 update/s over 20 symbols: one symbol is quiet for ~20 s on average, so heartbeats must fill in.
  const srv = await startTickerd({ config: simConfig({ rate: 1, api: { sse_heartbeat_s: 1 } }) });
  // Every symbol with a value: a symbol declared but not yet quoted has nothing to snapshot (its first
  // value comes as an update, docs/protocol.md).
  await waitFor(async () => {
    const syms = (await httpGet(srv, '/api/symbols')).json().symbols || [];
    return syms.length === BUILTIN_SYMBOL_COUNT && syms.every((x) => x.seq > 0);
  }, { timeoutMs: 10000, message: 'every symbol quoted' });
  const all = await openSse(srv, 'symbols=*');
  await waitFor(() => frames(all).length >= 1, { message: 'the snapshot' });
  assert.equal(frames(all)[0].event, 'snapshot');
  assert.equal(frames(all)[0].data.updates.length, BUILTIN_SYMBOL_COUNT);
  all.close();
  const one = await openSse(srv, 'symbols=USD-JPY');
  await waitFor(() => one.comments.length >= 2, { timeoutMs: 8000, message: 'two heartbeats within ~2 s' });
  one.close();
  assert.ok(one.comments.every((c) => c.startsWith(':')));
});

test('SSE: unknown symbol -> 404, no symbols or a bad Last-Event-ID -> 400, with the JSON error; counted', T, async () => {
  const srv = await startTickerd({ config: simConfig() });
  await waitForSymbols(srv, ['BTC-USD']);
  const unknown = await openSse(srv, 'symbols=BTC-USD,NOPE-XYZ');
  await unknown.ended;
  assert.equal(unknown.status, 404);
  const err = JSON.parse(unknown.body);
  assert.equal(err.code, 'unknown_symbol');
  assert.deepEqual(err.symbols, ['NOPE-XYZ']);
  const none = await httpGet(srv, '/sse');
  assert.equal(none.status, 400);
  assert.equal(none.json().code, 'bad_request');
  const badId = await httpGet(srv, '/sse?symbols=BTC-USD', { headers: { 'Last-Event-ID': 'garbage,no-colon' } });
  assert.equal(badId.status, 400);
  assert.match(badId.json().message, /Last-Event-ID/);
  const m = await metrics(srv);
  assert.ok(m.get('tickerd_transport_errors_total{transport="sse",reason="unknown_symbol"}') >= 1, m.text.match(/.*transport="sse".*/g)?.join('\n'));
  assert.ok(m.get('tickerd_transport_errors_total{transport="sse",reason="bad_request"}') >= 2);
});

test('SSE: Last-Event-ID replays exactly what was missed; from a restarted server it is an explicit reset', T, async () => {
  const cfg = simConfig({ rate: 200 });
  const srv = await startTickerd({ config: cfg });
  await waitForSymbols(srv, ['BTC-USD']);
  const a = await openSse(srv, 'symbols=BTC-USD');
  await waitFor(() => a.events.length >= 5, { message: 'a few events' });
  a.close();
  const lastId = a.events.at(-1).id;
  const lastSeq = seqsOf(a.events, 'BTC-USD').at(-1).seq;
  await sleep(400); // values go by while the client is away
  const b = await openSse(srv, 'symbols=BTC-USD', { 'Last-Event-ID': lastId });
  await waitFor(() => frames(b).length >= 1, { message: 'the resumed stream' });
  b.close();
  assert.equal(frames(b)[0].event, 'replay', `resumed with ${frames(b)[0].event}`);
  const seqs = seqsOf(b.events, 'BTC-USD').map((x) => x.seq);
  assert.equal(seqs[0], lastSeq + 1, 'the replay starts right after the last seen seq');
  for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i] > seqs[i - 1]);
  // The same id against another server (another epoch): an explicit reset, not a silent jump.
  const srv2 = await startTickerd({ config: cfg });
  await waitForSymbols(srv2, ['BTC-USD']);
  const c = await openSse(srv2, 'symbols=BTC-USD', { 'Last-Event-ID': lastId });
  await waitFor(() => frames(c).length >= 1, { message: 'the stream from the other server' });
  c.close();
  assert.equal(frames(c)[0].event, 'reset');
  assert.equal(frames(c)[0].data.reset, true);
  assert.equal(c.events.filter((e) => e.event === 'replay').length, 0);
});

test('SSE: CORS from api.cors_origins (listed origin echoed, others not)', T, async () => {
  const srv = await startTickerd({ config: simConfig({ api: { cors_origins: 'https://desk.example' } }) });
  await waitForSymbols(srv, ['BTC-USD']);
  const ok = await openSse(srv, 'symbols=BTC-USD', { Origin: 'https://desk.example' });
  ok.close();
  assert.equal(ok.headers['access-control-allow-origin'], 'https://desk.example');
  const other = await openSse(srv, 'symbols=BTC-USD', { Origin: 'https://evil.example' });
  other.close();
  assert.equal(other.headers['access-control-allow-origin'], undefined);
});

test('SSE: a reader that stops reading stays bounded and converges to the latest value when it reads again', T, async (t) => {
  const srv = await startTickerd({ config: simConfig({ rate: 20000 }) });
  await waitForSymbols(srv, ['BTC-USD']);
  const s = await openSse(srv, 'symbols=*');
  await waitFor(() => s.events.length >= 10, { message: 'the stream running' });
  const before = srv.rssKiB();
  s.res.pause(); // the socket fills, then the server has to hold what is due
  await sleep(3000);
  const during = srv.rssKiB();
  const m = await metrics(srv);
  assert.equal(m.get('tickerd_clients{transport="sse"}'), 1);
  const target = (await httpGet(srv, '/api/snapshot?symbols=BTC-USD')).json().updates[0].seq;
  s.res.resume();
  await waitFor(() => (seqsOf(s.events, 'BTC-USD').at(-1)?.seq ?? 0) >= target,
    { timeoutMs: 10000, message: `BTC-USD reaching seq ${target}` });
  s.close();
  t.diagnostic(`RSS ${before} KiB -> ${during} KiB while paused (3 s at 20,000 updates/s)`);
  // At 20k updates/s a queue would grow by tens of MB in 3 s; conflation keeps one value per symbol.
  assert.ok(during - before < 16 * 1024, `RSS grew ${during - before} KiB while the reader was paused`);
});

test('long-poll: the first poll answers at once, the next holds until something newer, then returns it with a cursor', T, async () => {
  const srv = await startTickerd({ config: simConfig({ rate: 100 }) });
  await waitForSymbols(srv, ['BTC-USD', 'ETH-USD']);
  const first = await pollGet(srv, 'symbols=BTC-USD,ETH-USD');
  assert.equal(first.status, 200);
  assert.match(first.headers['content-type'], /application\/json/);
  assert.equal(first.j.timeout, false);
  assert.equal(first.j.frames[0].op, 'snapshot');
  assert.deepEqual(first.j.frames[0].updates.map((u) => u.symbol).sort(), ['BTC-USD', 'ETH-USD']);
  let cursor = first.j.cursor;
  let last = Object.fromEntries(first.j.frames[0].updates.map((u) => [u.symbol, u.seq]));
  for (let i = 0; i < 5; i++) {
    const r = await pollGet(srv, `symbols=BTC-USD,ETH-USD&since=${encodeURIComponent(cursor)}`);
    assert.equal(r.status, 200);
    assert.ok(r.j.frames.length > 0 || r.j.timeout);
    for (const f of r.j.frames) {
      assert.ok(['update', 'replay'].includes(f.op), `frame ${f.op} after a cursor`);
      for (const u of f.updates) {
        assert.ok(u.seq > last[u.symbol], `${u.symbol}: ${u.seq} after ${last[u.symbol]}`);
        last[u.symbol] = u.seq;
      }
    }
    assert.notEqual(r.j.cursor, cursor);
    cursor = r.j.cursor;
  }
});

test('long-poll: nothing newer -> held for api.poll_hold_s, then an empty answer with timeout:true', T, async () => {
  const srv = await startTickerd({ config: simConfig({ rate: 1, api: { poll_hold_s: 1 } }) });
  await waitForSymbols(srv, ['USD-JPY']);
  const first = await pollGet(srv, 'symbols=USD-JPY');
  // One symbol of twenty at 1 update/s: usually quiet for the whole hold; retry a few times if not.
  let r;
  let cursor = first.j.cursor;
  for (let i = 0; i < 5; i++) {
    r = await pollGet(srv, `symbols=USD-JPY&since=${encodeURIComponent(cursor)}`);
    if (r.j.timeout) break;
    cursor = r.j.cursor;
  }
  assert.equal(r.status, 200);
  assert.equal(r.j.timeout, true, `the held poll timed out: ${r.body.slice(0, 300)}`);
  assert.deepEqual(r.j.frames, []);
  assert.ok(r.ms >= 900 && r.ms < 5000, `held ${r.ms} ms for a 1 s hold`);
  assert.equal(r.j.cursor, cursor, 'nothing delivered: the cursor did not move');
  // A held poll is a client session of its own, counted while it waits.
  const held = pollGet(srv, `symbols=USD-JPY&since=${encodeURIComponent(r.j.cursor)}`);
  await waitFor(async () => (await metrics(srv)).value('tickerd_clients', { transport: 'poll' }) === 1,
    { message: 'tickerd_clients{transport="poll"} 1 while a poll is held' });
  await held;
  assert.equal((await metrics(srv)).value('tickerd_clients', { transport: 'poll' }), 0);
});

test('long-poll: bad cursor -> 400, unknown symbol -> 404, no symbols -> 400; a cursor from another server -> reset', T, async () => {
  const srv = await startTickerd({ config: simConfig() });
  await waitForSymbols(srv, ['BTC-USD']);
  const bad = await pollGet(srv, 'symbols=BTC-USD&since=not-a-cursor,x');
  assert.equal(bad.status, 400);
  assert.equal(bad.j.code, 'bad_request');
  const unknown = await pollGet(srv, 'symbols=NOPE-XYZ');
  assert.equal(unknown.status, 404);
  assert.equal(unknown.j.code, 'unknown_symbol');
  const none = await pollGet(srv, '');
  assert.equal(none.status, 400);
  const m = await metrics(srv);
  assert.ok(m.get('tickerd_transport_errors_total{transport="poll",reason="bad_request"}') >= 2);
  assert.ok(m.get('tickerd_transport_errors_total{transport="poll",reason="unknown_symbol"}') >= 1);

  const first = await pollGet(srv, 'symbols=BTC-USD');
  const srv2 = await startTickerd({ config: simConfig() });
  await waitForSymbols(srv2, ['BTC-USD']);
  const other = await pollGet(srv2, `symbols=BTC-USD&since=${encodeURIComponent(first.j.cursor)}`);
  assert.equal(other.status, 200);
  assert.equal(other.j.frames[0].op, 'snapshot');
  assert.equal(other.j.frames[0].reset, true, 'another epoch: an explicit reset');
});
