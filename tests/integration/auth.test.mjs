// auth.mode "token" and the Origin policy (docs/protocol.md#authentication, docs/config.md#auth,
// docs/api.md#authentication): tokens signed here with node:crypto (HS256, RS256, ES256), the real tickerd,
// real clients — ws at /ws, raw HTTP for SSE, long-polling and the APIs, the official socket.io-client.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { io } from 'socket.io-client';
import {
  startTickerd, runTickerd, stopAll, connect, httpGet, metrics, waitFor, waitForSymbols as waitOpen, simConfig, tempDir,
  withTimeout, sleep, updatesOf,
} from './lib/harness.mjs';

const T = { timeout: 60000 };
after(async () => { await stopAll(); });

const SECRET = 'test-secret-of-at-least-32-bytes-0123456789';
const now = () => Math.floor(Date.now() / 1000);
const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');

function sign(alg, claims, key, header = {}) {
  const h = b64({ alg, typ: 'JWT', ...header });
  const p = b64(claims);
  const data = `${h}.${p}`;
  let sig;
  if (alg === 'HS256') sig = crypto.createHmac('sha256', key).update(data).digest('base64url');
  else if (alg === 'RS256') sig = crypto.sign('sha256', Buffer.from(data), key).toString('base64url');
  else if (alg === 'ES256') sig = crypto.sign('sha256', Buffer.from(data), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url');
  else sig = '';
  return `${data}.${sig}`;
}
const claims = (extra = {}) => ({ sub: 'alice', exp: now() + 600, symbols: ['BTC-USD', 'ETH-USD'], ...extra });
const hs = (extra) => sign('HS256', claims(extra), SECRET);

function authConfig(auth = {}, rest = {}) {
  return simConfig({ rate: 400, auth: { mode: 'token', secret: SECRET, leeway_s: 0, ...auth }, ...rest });
}

/** A WebSocket upgrade by hand: the status and JSON body of a refusal (or 101). */
function upgrade(srv, urlPath, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get({
      host: '127.0.0.1', port: srv.port, path: urlPath, agent: false,
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': crypto.randomBytes(16).toString('base64'), ...headers },
    }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body, json: () => JSON.parse(body) }));
    });
    req.on('upgrade', (res, socket) => { socket.destroy(); resolve({ status: res.statusCode }); });
    req.on('error', reject);
  });
}

/** GET that resolves at the response head (a stream stays open until close()). */
function openGet(srv, urlPath, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: srv.port, path: urlPath, agent: false, headers }, (res) => {
      const s = { status: res.statusCode, headers: res.headers, body: '', close() { req.destroy(); } };
      res.setEncoding('utf8');
      res.on('data', (c) => { s.body += c; });
      s.ended = new Promise((r) => { res.on('end', r); res.on('close', r); });
      resolve(s);
    });
    req.on('error', reject);
  });
}
/** waitForSymbols for a token-gated /api/symbols. */
async function waitForSymbols(srv, names) {
  const tok = hs({ symbols: ['*'] });
  await waitFor(async () => {
    const r = await httpGet(srv, '/api/symbols', { headers: { Authorization: `Bearer ${tok}` } });
    const have = r.status === 200 ? new Set(r.json().symbols.filter((x) => typeof x.last === 'number').map((x) => x.symbol)) : new Set();
    return names.every((n) => have.has(n));
  }, { timeoutMs: 8000, message: `symbols ${names}` });
}
const bearer = (t) => ({ Authorization: `Bearer ${t}` });
const wsWith = (srv, token, more = {}) => connect(srv, { wsOptions: { headers: { ...(token ? bearer(token) : {}), ...more } } });

function connectIo(srv, opts = {}) {
  const s = io(`http://127.0.0.1:${srv.port}`, { reconnection: false, transports: ['websocket'], ...opts });
  return withTimeout(new Promise((resolve, reject) => {
    s.once('connect', () => resolve(s));
    s.once('connect_error', (e) => { s.close(); reject(e); });
  }), 10000, () => 'socket.io connect timed out');
}

// ---------------------------------------------------------------------------------------------------------

test('HS256: a good token in the header subscribes; bad signature, alg none, expired and nbf are 401 before the upgrade', T, async () => {
  const srv = await startTickerd({ config: authConfig() });
  await waitForSymbols(srv, ['BTC-USD']);
  const c = await wsWith(srv, hs());
  const ack = await c.subscribe(['BTC-USD']);
  assert.deepEqual(ack.symbols, ['BTC-USD']);
  await c.nextOp('snapshot', 5000);
  c.close();

  const good = hs();
  const [h, p] = good.split('.');
  const cases = {
    bad_signature: `${h}.${p}.${crypto.createHmac('sha256', 'another-secret-of-32-bytes-or-more!!').update(`${h}.${p}`).digest('base64url')}`,
    bad_alg: sign('none', claims(), null),
    expired: hs({ exp: now() - 5 }),
    not_yet_valid: hs({ nbf: now() + 300 }),
    malformed: 'not.a-jwt',
    bad_claims: sign('HS256', { sub: 'alice', exp: now() + 60 }, SECRET), // no "symbols"
  };
  for (const [reason, token] of Object.entries(cases)) {
    const r = await upgrade(srv, '/ws', bearer(token));
    assert.equal(r.status, 401, `${reason}: ${r.body}`);
    assert.equal(r.json().code, 'unauthorized');
    assert.equal(r.json().reason, reason, r.body);
    assert.match(r.headers['www-authenticate'], /^Bearer/);
  }
  // the token= query parameter is the same check
  assert.equal((await upgrade(srv, `/ws?token=${cases.expired}`)).status, 401);
  assert.equal((await upgrade(srv, `/ws?token=${good}`)).status, 101);
  const m = await metrics(srv);
  for (const reason of Object.keys(cases))
    assert.ok(m.get(`tickerd_auth_failures_total{reason="${reason}"}`) >= 1, reason);
});

test('forbidden subscribe lists the symbols and changes nothing; "*" expands to the entitled symbols only', T, async () => {
  const srv = await startTickerd({ config: authConfig() });
  await waitForSymbols(srv, ['BTC-USD', 'ETH-USD', 'USD-JPY']);
  const c = await wsWith(srv, hs({ symbols: ['BTC-*', '*-USD'] }));
  await c.subscribe(['BTC-USD']);
  const err = await c.request({ op: 'subscribe', symbols: ['ETH-USD', 'USD-JPY', 'NOPE-EUR'] });
  assert.equal(err.op, 'error');
  assert.equal(err.code, 'forbidden');
  assert.deepEqual(err.symbols.sort(), ['NOPE-EUR', 'USD-JPY']);
  assert.deepEqual(err.allowed, ['BTC-*', '*-USD']);
  // nothing changed: ETH-USD (entitled, in the refused request) was not subscribed
  await c.collect(300);
  const seen = new Set((await c.collect(800)).flatMap((msg) => updatesOf(msg).map((u) => u.symbol)));
  assert.deepEqual([...seen], ['BTC-USD']);

  const star = await c.subscribe(['*']);
  assert.ok(star.symbols.length >= 3, JSON.stringify(star.symbols));
  assert.ok(star.symbols.includes('ETH-USD') && star.symbols.includes('BTC-USD'));
  assert.ok(!star.symbols.includes('USD-JPY'), 'USD-JPY is not entitled');
  for (const s of star.symbols) assert.ok(s.startsWith('BTC-') || s.endsWith('-USD'), s);
  const snap = await c.nextOp('snapshot', 5000);
  for (const u of updatesOf(snap)) assert.ok(u.symbol.startsWith('BTC-') || u.symbol.endsWith('-USD'), u.symbol);
  c.close();
  const m = await metrics(srv);
  assert.ok(m.get('tickerd_auth_forbidden_subscribes_total') >= 1);
  assert.ok(m.get('tickerd_client_errors_total{code="forbidden"}') >= 1);
});

test('the auth op on /ws: first message; anything else first, or nothing in time, closes 4002', T, async () => {
  const srv = await startTickerd({ config: authConfig({ auth_timeout_ms: 800 }) });
  await waitForSymbols(srv, ['BTC-USD']);
  const c = await connect(srv);
  const ack = await c.ok({ op: 'auth', token: hs() });
  assert.equal(ack.req, 'auth');
  assert.equal(ack.sub, 'alice');
  assert.deepEqual(ack.symbols, ['BTC-USD', 'ETH-USD']);
  assert.ok(Math.abs(ack.expires_at - (now() + 600) * 1000) < 5000);
  await c.subscribe(['ETH-USD']);
  c.close();

  const early = await connect(srv);
  const e = await early.request({ op: 'subscribe', symbols: ['BTC-USD'] });
  assert.equal(e.code, 'unauthorized');
  assert.equal((await early.waitClose(3000)).code, 4002);

  const bad = await connect(srv);
  const be = await bad.request({ op: 'auth', token: hs({ exp: now() - 1 }) });
  assert.equal(be.code, 'unauthorized');
  assert.equal(be.reason, 'expired');
  assert.equal((await bad.waitClose(3000)).code, 4002);

  const idle = await connect(srv);
  const to = await idle.nextOp('error', 3000);
  assert.equal(to.code, 'unauthorized');
  assert.equal((await idle.waitClose(3000)).code, 4002);
  const m = await metrics(srv);
  assert.ok(m.get('tickerd_auth_unauthenticated_closes_total') >= 3);
});

test('expiry: reauth before it, token_expired and close 4001 at it; a new auth op extends without a gap', T, async () => {
  const srv = await startTickerd({ config: authConfig({ reauth_before_s: 2 }) });
  await waitForSymbols(srv, ['BTC-USD']);
  const c = await wsWith(srv, hs({ exp: now() + 3 }));
  await c.subscribe(['BTC-USD']);
  const re = await c.nextOp('reauth', 5000);
  assert.ok(re.in_ms <= 2000 && re.in_ms > 0, JSON.stringify(re));
  const ex = await c.nextOp('error', 5000, (m) => m.code === 'token_expired');
  assert.equal(ex.code, 'token_expired');
  const closed = await c.waitClose(3000);
  assert.equal(closed.code, 4001);

  const d = await wsWith(srv, hs({ exp: now() + 3 }));
  await d.subscribe(['BTC-USD']);
  await d.nextOp('reauth', 5000);
  const ack = await d.ok({ op: 'auth', token: hs({ exp: now() + 120, symbols: ['ETH-USD'] }) });
  assert.deepEqual(ack.revoked, ['BTC-USD'], 'a narrower token drops what it no longer entitles');
  await d.subscribe(['ETH-USD']);
  await sleep(3500); // past the first token's expiry
  assert.ok(d.isOpen, 'still open after the first token expired');
  const u = await d.nextOp('update', 3000);
  assert.deepEqual([...new Set(updatesOf(u).map((x) => x.symbol))], ['ETH-USD']);
  d.close();
  const m = await metrics(srv);
  assert.ok(m.get('tickerd_auth_reauth_sent_total') >= 2);
  assert.equal(m.get('tickerd_auth_expired_closes_total'), 1);
});

test('max_conns: concurrent sessions per sub (the next upgrade is 429; a closed one frees its place)', T, async () => {
  const srv = await startTickerd({ config: authConfig() });
  const tok = hs({ max_conns: 2 });
  const a = await wsWith(srv, tok);
  const b = await wsWith(srv, tok);
  const r = await upgrade(srv, '/ws', bearer(tok));
  assert.equal(r.status, 429, r.body);
  assert.equal(r.json().reason, 'max_conns');
  // another sub is not affected
  assert.equal((await upgrade(srv, '/ws', bearer(hs({ sub: 'bob', max_conns: 1 })))).status, 101);
  a.close();
  await a.waitClose();
  await waitFor(async () => (await upgrade(srv, '/ws', bearer(tok))).status === 101, { message: 'a place again' });
  b.close();
});

test('HTTP APIs: 401 without a token, 403 outside it, only entitled symbols listed', T, async () => {
  const srv = await startTickerd({ config: authConfig() });
  await waitForSymbols(srv, ['BTC-USD', 'ETH-USD']);
  const none = await httpGet(srv, '/api/symbols');
  assert.equal(none.status, 401);
  assert.equal(none.json().error, 'unauthorized');
  assert.equal(none.json().reason, 'missing');
  assert.match(none.headers['www-authenticate'], /^Bearer/);
  assert.equal((await httpGet(srv, '/api/symbols', { headers: bearer(hs({ exp: now() - 1 })) })).json().reason, 'expired');

  const tok = hs({ symbols: ['BTC-USD'] });
  const syms = await httpGet(srv, `/api/symbols?token=${tok}`);
  assert.equal(syms.status, 200);
  assert.deepEqual(syms.json().symbols.map((s) => s.symbol), ['BTC-USD']);
  const all = await httpGet(srv, '/api/snapshot', { headers: bearer(tok) });
  assert.deepEqual(all.json().updates.map((u) => u.symbol), ['BTC-USD']);
  const forb = await httpGet(srv, '/api/snapshot?symbols=BTC-USD,ETH-USD', { headers: bearer(tok) });
  assert.equal(forb.status, 403);
  assert.equal(forb.json().error, 'forbidden');
  assert.deepEqual(forb.json().symbols, ['ETH-USD']);
  const hist = await httpGet(srv, `/api/history?symbol=ETH-USD&token=${tok}`);
  assert.equal(hist.status, 403);
  const ok = await httpGet(srv, `/api/history?symbol=BTC-USD&interval=tick&token=${tok}`);
  assert.equal(ok.status, 200, ok.body);
  // /metrics and /healthz are not token-gated (address lists are theirs)
  assert.equal((await httpGet(srv, '/healthz')).status === 401, false);
  assert.ok((await metrics(srv)).get('tickerd_auth_forbidden_requests_total') >= 2);
});

test('SSE and long-polling: token in the query, 401 without, 403 outside it', T, async () => {
  const srv = await startTickerd({ config: authConfig() });
  await waitForSymbols(srv, ['BTC-USD', 'ETH-USD']);
  const tok = hs({ symbols: ['BTC-USD'] });
  const no = await openGet(srv, '/sse?symbols=BTC-USD');
  await no.ended;
  assert.equal(no.status, 401);
  assert.equal(JSON.parse(no.body).reason, 'missing');
  const fb = await openGet(srv, `/sse?symbols=BTC-USD,ETH-USD&token=${tok}`);
  await fb.ended;
  assert.equal(fb.status, 403);
  assert.equal(JSON.parse(fb.body).code, 'forbidden');
  assert.deepEqual(JSON.parse(fb.body).symbols, ['ETH-USD']);
  const s = await openGet(srv, `/sse?symbols=*&token=${tok}`);
  assert.equal(s.status, 200);
  await waitFor(() => /event: snapshot/.test(s.body), { message: 'a snapshot event' });
  const data = s.body.split('\n').filter((l) => l.startsWith('data: ')).map((l) => JSON.parse(l.slice(6)));
  for (const f of data) for (const u of updatesOf(f)) assert.equal(u.symbol, 'BTC-USD');
  s.close();

  const pn = await httpGet(srv, '/api/poll?symbols=BTC-USD');
  assert.equal(pn.status, 401);
  const pf = await httpGet(srv, `/api/poll?symbols=ETH-USD&token=${tok}`);
  assert.equal(pf.status, 403);
  const pk = await httpGet(srv, '/api/poll?symbols=BTC-USD', { headers: bearer(tok) });
  assert.equal(pk.status, 200, pk.body);
  assert.ok(pk.json().frames.length >= 1);
});

test('SSE: reauth event before expiry, then the error and the end of the stream', T, async () => {
  const srv = await startTickerd({ config: authConfig({ reauth_before_s: 1 }) });
  await waitForSymbols(srv, ['BTC-USD']);
  const s = await openGet(srv, `/sse?symbols=BTC-USD&token=${hs({ exp: now() + 2 })}`);
  assert.equal(s.status, 200);
  await withTimeout(s.ended, 6000, () => 'the stream did not end at expiry');
  assert.match(s.body, /event: reauth\n/);
  assert.match(s.body, /event: error\ndata: \{"op":"error","id":null,"code":"token_expired"/);
});

test('Socket.IO: the CONNECT auth payload; CONNECT_ERROR without or with a bad token; forbidden as an error ack', T, async () => {
  const srv = await startTickerd({ config: authConfig() });
  await waitForSymbols(srv, ['BTC-USD', 'ETH-USD']);
  for (const transports of [['websocket'], ['polling']]) {
    const e1 = await connectIo(srv, { transports }).catch((e) => e);
    assert.equal(e1.message, 'unauthorized');
    assert.equal(e1.data.reason, 'missing');
    const e2 = await connectIo(srv, { transports, auth: { token: hs({ exp: now() - 10 }) } }).catch((e) => e);
    assert.equal(e2.data.reason, 'expired');
    const s = await connectIo(srv, { transports, auth: { token: hs({ symbols: ['BTC-USD'] }) } });
    const ack = await withTimeout(new Promise((r) => s.emit('subscribe', ['BTC-USD'], r)), 5000);
    assert.equal(ack.op, 'ack');
    const err = await withTimeout(new Promise((r) => s.emit('subscribe', ['ETH-USD'], r)), 5000);
    assert.equal(err.error.code, 'forbidden', JSON.stringify(err));
    assert.deepEqual(err.error.symbols, ['ETH-USD']);
    const re = await withTimeout(new Promise((r) => s.emit('auth', { token: hs() }, r)), 5000);
    assert.equal(re.op, 'ack');
    s.close();
  }
});

test('RS256: a good token; alg confusion (HS256 signed with the public key as secret) and alg none refused', T, async () => {
  const dir = tempDir();
  const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = publicKey.export({ type: 'spki', format: 'pem' });
  const keyFile = path.join(dir, 'rsa.pub.pem');
  fs.writeFileSync(keyFile, pem);
  const srv = await startTickerd({ config: authConfig({ secret: '', public_key_file: keyFile }) });
  const good = sign('RS256', claims(), privateKey);
  assert.equal((await upgrade(srv, '/ws', bearer(good))).status, 101);
  const confused = await upgrade(srv, '/ws', bearer(sign('HS256', claims(), pem)));
  assert.equal(confused.status, 401);
  assert.equal(confused.json().reason, 'bad_alg');
  assert.equal((await upgrade(srv, '/ws', bearer(sign('none', claims(), null)))).json().reason, 'bad_alg');
  const other = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  assert.equal((await upgrade(srv, '/ws', bearer(sign('RS256', claims(), other)))).json().reason, 'bad_signature');
});

test('ES256: a good token; another key and a tampered payload refused', T, async () => {
  const dir = tempDir();
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const keyFile = path.join(dir, 'ec.pub.pem');
  fs.writeFileSync(keyFile, publicKey.export({ type: 'spki', format: 'pem' }));
  const srv = await startTickerd({ config: authConfig({ secret: '', public_key_file: keyFile }) });
  const good = sign('ES256', claims(), privateKey);
  const c = await wsWith(srv, good);
  await c.subscribe(['BTC-USD']);
  c.close();
  const other = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  assert.equal((await upgrade(srv, '/ws', bearer(sign('ES256', claims(), other)))).json().reason, 'bad_signature');
  const [h, , sig] = good.split('.');
  const tampered = `${h}.${b64(claims({ symbols: ['*'] }))}.${sig}`;
  assert.equal((await upgrade(srv, '/ws', bearer(tampered))).json().reason, 'bad_signature');
  assert.equal((await upgrade(srv, '/ws', bearer(sign('RS256', claims(), other)))).json().reason, 'bad_alg');
});

test('config: a bad key or a bad list exits 2 naming the key; --check-config says the same', T, async () => {
  const dir = tempDir();
  const cases = [
    [{ auth: { mode: 'token', secret: 'short' } }, /auth\.secret: at least 32 bytes/],
    [{ auth: { mode: 'token', public_key_file: path.join(dir, 'missing.pem') } }, /auth\.public_key_file: .*missing\.pem/],
    [{ auth: { mode: 'token' } }, /auth: mode "token" needs exactly one of/],
    [{ auth: { mode: 'tokens' } }, /auth\.mode: must be "none" or "token"/],
    [{ auth: { mode: 'token', secret: SECRET, algorithm: 'RS256' } }, /auth\.algorithm/],
    [{ server: { allowed_origins: 'evil.example' } }, /server\.allowed_origins: "evil\.example" is not an origin/],
    [{ server: { metrics_allowed_addresses: '10.0.0.0/33' } }, /server\.metrics_allowed_addresses/],
  ];
  const notKey = path.join(dir, 'not-a-key.pem');
  fs.writeFileSync(notKey, 'hello\n');
  cases.push([{ auth: { mode: 'token', public_key_file: notKey } }, /auth\.public_key_file: .*not a PEM public key/]);
  for (const [cfg, re] of cases) {
    const r = await runTickerd({ config: cfg });
    assert.equal(r.code, 2, `${JSON.stringify(cfg)}: ${r.stderr}`);
    assert.match(r.stderr, re);
    const file = path.join(dir, 'c.json');
    fs.writeFileSync(file, JSON.stringify(cfg));
    const chk = await runTickerd({ args: ['--check-config', file] });
    assert.equal(chk.code, 2);
    assert.match(chk.stderr, re);
  }
});

// ---- Origin policy -----------------------------------------------------------------------------------------

test('Origin: refused before the upgrade on /ws, /socket.io/, /sse and /api/poll; same origin, localhost and no Origin allowed', T, async () => {
  const srv = await startTickerd({ config: simConfig({ rate: 200 }) });
  await waitOpen(srv, ['BTC-USD']);
  const evil = { Origin: 'https://evil.example' };
  const ws = await upgrade(srv, '/ws', evil);
  assert.equal(ws.status, 403);
  assert.equal(ws.json().code, 'forbidden_origin');
  assert.equal((await upgrade(srv, '/socket.io/?EIO=4&transport=websocket', evil)).status, 403);
  const sioPoll = await httpGet(srv, '/socket.io/?EIO=4&transport=polling', { headers: evil });
  assert.equal(sioPoll.status, 403);
  assert.deepEqual(sioPoll.json(), { code: 4, message: 'Forbidden' });
  const sse = await openGet(srv, '/sse?symbols=BTC-USD', evil);
  await sse.ended;
  assert.equal(sse.status, 403);
  assert.equal(JSON.parse(sse.body).code, 'forbidden_origin');
  assert.equal((await httpGet(srv, '/api/poll?symbols=BTC-USD', { headers: evil })).status, 403);
  assert.equal((await upgrade(srv, '/ws', { Origin: 'null' })).status, 403);

  // allowed: no Origin (not a browser), localhost on any port, the server's own origin (Host)
  assert.equal((await upgrade(srv, '/ws')).status, 101);
  assert.equal((await upgrade(srv, '/ws', { Origin: 'http://localhost:3000' })).status, 101);
  assert.equal((await upgrade(srv, '/ws', { Origin: 'http://[::1]:9' })).status, 101);
  assert.equal((await upgrade(srv, '/ws', { Origin: 'https://ticker.example', Host: 'ticker.example' })).status, 101);
  assert.equal((await upgrade(srv, '/ws', { Origin: 'https://ticker.example:8443', Host: 'ticker.example' })).status, 403);
  const ok = await openGet(srv, '/sse?symbols=BTC-USD', { Origin: `http://127.0.0.1:${srv.port}` });
  assert.equal(ok.status, 200);
  ok.close();
  const c = await connect(srv, { wsOptions: { origin: `http://127.0.0.1:${srv.port}` } });
  await c.subscribe(['BTC-USD']);
  c.close();
  const m = await metrics(srv);
  assert.ok(m.get('tickerd_origin_refused_total{transport="ws"}') >= 2);
  assert.ok(m.get('tickerd_origin_refused_total{transport="socketio"}') >= 2);
  assert.equal(m.get('tickerd_origin_refused_total{transport="sse"}'), 1);
  assert.equal(m.get('tickerd_origin_refused_total{transport="poll"}'), 1);
});

test('Origin: server.allowed_origins lists and wildcards, api.cors_origins counts, and SIGHUP applies a new list', T, async () => {
  const cfg = (origins) => simConfig({ rate: 200, server: { allowed_origins: origins }, api: { cors_origins: 'https://cors.example' } });
  const srv = await startTickerd({ config: cfg('https://desk.example, https://*.trading.example') });
  assert.equal((await upgrade(srv, '/ws', { Origin: 'https://desk.example' })).status, 101);
  assert.equal((await upgrade(srv, '/ws', { Origin: 'https://a.trading.example' })).status, 101);
  assert.equal((await upgrade(srv, '/ws', { Origin: 'https://trading.example' })).status, 403);
  assert.equal((await upgrade(srv, '/ws', { Origin: 'http://desk.example' })).status, 403, 'scheme matters');
  assert.equal((await upgrade(srv, '/ws', { Origin: 'https://cors.example' })).status, 101, 'api.cors_origins');
  assert.equal((await upgrade(srv, '/ws', { Origin: 'http://localhost:1' })).status, 403, 'localhost only when listed');
  srv.writeConfig(cfg('https://other.example'));
  srv.signal('SIGHUP');
  await waitFor(async () => (await upgrade(srv, '/ws', { Origin: 'https://desk.example' })).status === 403,
    { message: 'the reloaded list' });
  assert.equal((await upgrade(srv, '/ws', { Origin: 'https://other.example' })).status, 101);
});

test('/metrics and /healthz limited to address lists', T, async () => {
  const srv = await startTickerd({ config: simConfig({ rate: 200, server: { metrics_allowed_addresses: '10.0.0.0/8', health_allowed_addresses: '127.0.0.0/8, ::1' } }) });
  const m = await httpGet(srv, '/metrics');
  assert.equal(m.status, 403);
  assert.equal(m.json().error, 'forbidden');
  assert.notEqual((await httpGet(srv, '/healthz')).status, 403);
  srv.writeConfig(simConfig({ rate: 200, server: { metrics_allowed_addresses: '127.0.0.1' } }));
  srv.signal('SIGHUP');
  await waitFor(async () => (await httpGet(srv, '/metrics')).status === 200, { message: 'metrics allowed after reload' });
  assert.equal((await metrics(srv)).get('tickerd_address_refused_total{endpoint="metrics"}'), 1);
});

test('edges: "*" with nothing entitled acks []; a "*" token keeps the wildcard; a narrower re-auth revokes; another sub is refused', T, async () => {
  const none = await startTickerd({ config: simConfig({ rate: 100 }) });
  const n = await connect(none);
  assert.equal((await n.ok({ op: 'auth', token: 'anything' })).mode, 'none', 'auth.mode none acks the op');
  n.close();
  const srv = await startTickerd({ config: authConfig() });
  await waitForSymbols(srv, ['BTC-USD', 'ETH-USD']);
  const c = await wsWith(srv, hs({ sub: 'a', symbols: ['NOPE-*'] }));
  assert.deepEqual((await c.subscribe(['*'])).symbols, []);
  const all = await wsWith(srv, hs({ sub: 'b', symbols: ['*'] }));
  assert.deepEqual((await all.subscribe(['*'])).symbols, ['*']);
  const r = await all.ok({ op: 'auth', token: hs({ sub: 'b', symbols: ['BTC-USD'] }) });
  assert.ok(r.revoked.length >= 5 && !r.revoked.includes('BTC-USD'), JSON.stringify(r));
  const e = await all.request({ op: 'auth', token: hs({ sub: 'zed', symbols: ['*'] }) });
  assert.equal(e.code, 'unauthorized');
  assert.equal(e.reason, 'subject_changed');
  await sleep(300);
  assert.ok(all.isOpen, 'a refused refresh keeps the session');
  const m = await metrics(srv);
  assert.ok(m.get('tickerd_auth_revoked_subscriptions_total') >= 5);
  c.close();
  all.close();
});
