// SSE (/sse) and long-poll (/api/poll), over raw node:http (docs/protocol.md "Server-Sent Events" and
// "Long-polling"): framing, ids, replay on Last-Event-ID, errors, CORS, holds and cursors, metrics.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startTickerd, stopAll, metrics, waitFor, waitForSymbols, simConfig, sleep } from './lib/harness.mjs';

const T = { timeout: 30000 };
let srv;

before(async () => {
  srv = await startTickerd({
    config: simConfig({ rate: 2000, api: { sse_heartbeat_s: 1, sse_retry_ms: 1234, poll_hold_s: 2, cors_origins: 'https://app.example' } }),
  });
  await waitForSymbols(srv, ['BTC-USD', 'ETH-USD']);
});
after(async () => { await stopAll(); });

/** Open an SSE stream; parses events as they arrive. */
function openSse(pathAndQuery, headers = {}) {
  const events = [];
  let raw = '';
  let buf = '';
  const req = http.get({ host: srv.host, port: srv.port, path: pathAndQuery, headers: { accept: 'text/event-stream', ...headers } });
  const res = new Promise((resolve, reject) => {
    req.on('error', reject);
    req.on('response', (r) => {
      r.setEncoding('utf8');
      r.on('data', (d) => {
        raw += d; buf += d;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i); buf = buf.slice(i + 2);
          const ev = { comment: false, lines: block.split('\n') };
          for (const l of ev.lines) {
            if (l.startsWith(':')) ev.comment = true;
            const m = /^(\w+): ?(.*)$/.exec(l);
            if (m) ev[m[1]] = m[1] === 'data' ? JSON.parse(m[2]) : m[2];
          }
          events.push(ev);
        }
      });
      resolve(r);
    });
  });
  return { req, res, events, raw: () => raw, close: () => req.destroy() };
}

function get(pathAndQuery, headers = {}) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    http.get({ host: srv.host, port: srv.port, path: pathAndQuery, headers }, (r) => {
      let body = ''; r.setEncoding('utf8');
      r.on('data', (d) => { body += d; });
      r.on('end', () => resolve({ status: r.statusCode, headers: r.headers, body, ms: Date.now() - t0 }));
    }).on('error', reject);
  });
}

const frames = (s) => s.events.filter((e) => e.event && e.data);

test('SSE: content type, retry, snapshot then updates with consecutive seq and ids, CORS', T, async () => {
  const s = openSse('/sse?symbols=BTC-USD', { origin: 'https://app.example' });
  const r = await s.res;
  assert.equal(r.statusCode, 200);
  assert.match(r.headers['content-type'], /^text\/event-stream/);
  assert.equal(r.headers['access-control-allow-origin'], 'https://app.example');
  await waitFor(() => frames(s).filter((e) => e.event === 'update').length >= 5, { message: '5 updates' });
  s.close();
  assert.ok(s.raw().startsWith('retry: 1234\n'), `stream starts with retry: ${JSON.stringify(s.raw().slice(0, 40))}`);
  const f = frames(s);
  const kinds = f.map((e) => e.event);
  assert.ok(kinds.includes('snapshot'), `kinds ${kinds}`);
  assert.ok(kinds.indexOf('snapshot') < kinds.indexOf('update'), 'snapshot before updates');
  const seqs = [];
  for (const e of f.filter((x) => x.event === 'update' || x.event === 'snapshot')) {
    assert.ok(e.id && e.id.length > 0, 'every frame carries an id');
    for (const u of (e.data.updates || [e.data])) if (u.symbol === 'BTC-USD' && u.seq !== undefined) seqs.push(u.seq);
  }
  assert.ok(seqs.length >= 3, `seqs ${seqs}`);
  for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i] > seqs[i - 1], `seq increasing ${seqs}`);
});

test('SSE: symbols=* streams several symbols; heartbeat comments when quiet', T, async () => {
  const s = openSse('/sse?symbols=*');
  await s.res;
  const syms = new Set();
  await waitFor(() => {
    for (const e of frames(s)) for (const u of (e.data.updates || [e.data])) if (u.symbol) syms.add(u.symbol);
    return syms.size >= 3;
  }, { message: 'several symbols' });
  s.close();
});

test('quiet market: SSE heartbeat comments per api.sse_heartbeat_s; long-poll holds for api.poll_hold_s', T, async () => {
  // rate 1 across 20 built-in symbols: one symbol updates about every 20 s, so streams are quiet.
  const q = await startTickerd({ config: simConfig({ rate: 1, api: { sse_heartbeat_s: 1, poll_hold_s: 2 } }) });
  await waitForSymbols(q, ['BTC-USD']);
  let raw = '';
  const req = http.get({ host: q.host, port: q.port, path: '/sse?symbols=BTC-USD' });
  await new Promise((resolve) => req.on('response', (r) => { r.setEncoding('utf8'); r.on('data', (d) => { raw += d; }); resolve(); }));
  await waitFor(() => (raw.match(/^: .*\n\n/gm) || []).length >= 2, { timeoutMs: 6000, message: `2 heartbeats in ${JSON.stringify(raw)}` });
  req.destroy();
  const first = await new Promise((resolve, reject) => http.get({ host: q.host, port: q.port, path: '/api/poll?symbols=BTC-USD' }, (r) => {
    let body = ''; r.on('data', (d) => { body += d; }); r.on('end', () => resolve(JSON.parse(body)));
  }).on('error', reject));
  const t0 = Date.now();
  const held = await new Promise((resolve, reject) => http.get({ host: q.host, port: q.port, path: `/api/poll?symbols=BTC-USD&since=${encodeURIComponent(first.cursor)}` }, (r) => {
    let body = ''; r.on('data', (d) => { body += d; }); r.on('end', () => resolve(JSON.parse(body)));
  }).on('error', reject));
  const ms = Date.now() - t0;
  if (held.timeout) {
    assert.ok(ms >= 1500, `held only ${ms} ms with poll_hold_s 2`);
    assert.equal(held.frames.length, 0);
    assert.equal(held.cursor, first.cursor, 'a timed-out poll keeps the cursor');
  } else {
    assert.ok(held.frames.length > 0, 'an early answer carries the new frame');
  }
  await q.stop();
});

test('SSE: unknown symbol and missing symbols are refused with a JSON error', T, async () => {
  const a = await get('/sse?symbols=NOPE-XYZ');
  assert.equal(a.status, 404);
  assert.equal(JSON.parse(a.body).code, 'unknown_symbol');
  const b = await get('/sse');
  assert.equal(b.status, 400);
  assert.equal(JSON.parse(b.body).op, 'error');
});

test('SSE: Last-Event-ID reconnect gets replay (no silent gap); bogus id gets reset or error', T, async () => {
  const s = openSse('/sse?symbols=BTC-USD');
  await s.res;
  await waitFor(() => frames(s).filter((e) => e.event === 'update').length >= 3);
  s.close();
  const last = frames(s).filter((e) => e.id).at(-1);
  await sleep(500);
  const r = openSse('/sse?symbols=BTC-USD', { 'last-event-id': last.id });
  const res = await r.res;
  assert.equal(res.statusCode, 200);
  await waitFor(() => frames(r).some((e) => e.event === 'replay' || e.event === 'reset' || e.event === 'update'));
  r.close();
  const first = frames(r).find((e) => ['replay', 'reset', 'snapshot', 'update'].includes(e.event));
  assert.ok(first.event === 'replay' || first.event === 'reset', `first frame after resume is ${first.event}`);
  // A foreign epoch: must be an explicit reset (or a 400), never a quiet stream of updates.
  const epochless = last.id.replace(/^[^,:]+/, 'deadbeef');
  const z = openSse('/sse?symbols=BTC-USD', { 'last-event-id': epochless });
  const zr = await z.res;
  if (zr.statusCode === 200) {
    await waitFor(() => frames(z).some((e) => e.event !== 'ack'));
    z.close();
    const fz = frames(z).find((e) => e.event !== 'ack');
    assert.equal(fz.event, 'reset', `foreign epoch -> ${fz.event}`);
  } else {
    z.close();
    assert.equal(zr.statusCode, 400);
  }
});

test('SSE: a reader that stops reading stays bounded and converges to the latest value', T, async () => {
  const base = srv.rssKiB();
  const s = http.get({ host: srv.host, port: srv.port, path: '/sse?symbols=*' });
  const r = await new Promise((resolve) => s.on('response', resolve));
  r.pause();
  await sleep(4000);
  const grown = srv.rssKiB() - base;
  assert.ok(grown < 20000, `RSS grew ${grown} KiB while a reader stalled`);
  let raw = '';
  r.setEncoding('utf8');
  r.on('data', (d) => { raw += d; });
  r.resume();
  await waitFor(() => /event: update/.test(raw.slice(-20000)), { message: 'updates after resume' });
  s.destroy();
});

test('long-poll: immediate when newer data exists, holds otherwise, cursor chains, errors are 400 JSON', T, async () => {
  const a = await get('/api/poll?symbols=BTC-USD');
  assert.equal(a.status, 200, a.body);
  const ja = JSON.parse(a.body);
  assert.ok(typeof ja.cursor === 'string' && ja.cursor.length > 0, a.body);
  const b = await get(`/api/poll?symbols=BTC-USD&since=${encodeURIComponent(ja.cursor)}`);
  assert.equal(b.status, 200, b.body);
  const jb = JSON.parse(b.body);
  assert.ok(jb.cursor !== undefined);
  // An epoch alone is a valid (if foreign) cursor: explicit reset, never a silent gap.
  const foreign = JSON.parse((await get('/api/poll?symbols=BTC-USD&since=deadbeef,BTC-USD:5')).body);
  assert.ok(foreign.frames.some((f) => f.op === 'reset' || f.reset === true), JSON.stringify(foreign));
  assert.notEqual(foreign.cursor.split(',')[0], 'deadbeef', 'the answer carries the current epoch');
  // Idle symbol set: a cursor that is up to date is held for about api.poll_hold_s (2 s), then times out.
  const bad = await get('/api/poll?symbols=BTC-USD&since=abc,BTC-USD');
  assert.equal(bad.status, 400, bad.body);
  assert.equal(JSON.parse(bad.body).op, 'error');
  const none = await get('/api/poll');
  assert.equal(none.status, 400);
  const unk = await get('/api/poll?symbols=NOPE-XYZ');
  assert.ok(unk.status === 404 || unk.status === 400);
  assert.equal(JSON.parse(unk.body).code, 'unknown_symbol');
});

test('metrics: sse clients and transport errors are counted', T, async () => {
  const s = openSse('/sse?symbols=BTC-USD');
  await s.res;
  await waitFor(async () => {
    const m = await metrics(srv);
    return [...m.keys()].some((k) => /tickerd_clients\{[^}]*transport="sse"/.test(k) && m.get(k) >= 1);
  }, { message: 'tickerd_clients sse >= 1' });
  s.close();
  const m = await metrics(srv);
  const errs = [...m.keys()].filter((k) => /transport_errors_total\{[^}]*transport="(sse|poll)"/.test(k));
  assert.ok(errs.length > 0 && errs.some((k) => m.get(k) > 0), `errors: ${errs}`);
});
