// TLS on the listener (server.tls.*, docs/security.md, docs/operations.md#tls): every transport over https/wss
// with a certificate the test makes with the openssl CLI, TLS 1.2+ only, startup errors (exit 2 naming the
// key), SIGHUP certificate reload (new handshakes see the new certificate, a client already up keeps
// receiving), client certificates (server.tls.ca), the http→https redirect listener, the handshake deadline.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import WebSocket from 'ws';
import { io } from 'socket.io-client';
import {
  startTickerd, runTickerd, stopAll, metrics, simConfig, sleep, tempDir, waitFor, withTimeout, Client,
  updatesOf, launchChromium,
} from './lib/harness.mjs';

const T = { timeout: 60000 };
after(async () => { await stopAll(); });

const dir = tempDir();
const openssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });

/** A self-signed certificate for 127.0.0.1/localhost: {cert, key, pem}. */
function makeCert(name, { cn = 'localhost', days = 2 } = {}) {
  const cert = path.join(dir, `${name}.crt`), key = path.join(dir, `${name}.key`);
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key,
    '-out', cert, '-days', String(days), '-subj', `/CN=${cn}`, '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1');
  return { cert, key, pem: fs.readFileSync(cert) };
}

/** A certificate valid only in January 2020 (openssl ca lets the dates be set). */
function makeExpiredCert(name) {
  const d = path.join(dir, `ca-${name}`);
  fs.mkdirSync(d);
  fs.writeFileSync(path.join(d, 'index.txt'), '');
  fs.writeFileSync(path.join(d, 'serial'), '01\n');
  fs.writeFileSync(path.join(d, 'ca.cnf'), '[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\nnew_certs_dir=.\n' +
    'serial=serial\ndefault_md=sha256\npolicy=p\nunique_subject=no\n[p]\ncommonName=supplied\n');
  const run = (...a) => execFileSync('openssl', a, { cwd: d, stdio: ['ignore', 'pipe', 'pipe'] });
  run('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'k.pem',
    '-out', 'c.csr', '-subj', '/CN=localhost');
  run('ca', '-batch', '-config', 'ca.cnf', '-selfsign', '-keyfile', 'k.pem', '-in', 'c.csr', '-out', 'c.pem',
    '-startdate', '20200101000000Z', '-enddate', '20200102000000Z', '-notext');
  return { cert: path.join(d, 'c.pem'), key: path.join(d, 'k.pem') };
}

function tlsConfig(files, extra = {}, rest = {}) {
  return simConfig({ rate: 200, seed: 4242, server: { tls: { cert: files.cert, key: files.key, ...extra } }, ...rest });
}

/** GET over https trusting ca. Resolves {status, headers, body}. */
function httpsGet(srv, urlPath, { ca, headers = {}, timeoutMs = 5000, ...more } = {}) {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port: srv.port, path: urlPath, ca, agent: false, headers: { Connection: 'close', ...headers }, ...more }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${urlPath} timed out`)));
    req.on('error', reject);
  });
}

/** A wss client (the harness' Client) trusting ca; resolves once open. */
async function connectWss(srv, ca, opts = {}) {
  const ws = new WebSocket(`wss://127.0.0.1:${srv.port}/ws`, { ca, perMessageDeflate: false, handshakeTimeout: 5000, ...opts });
  const c = new Client(ws);
  await withTimeout(new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  }), 6000, () => 'wss open timed out');
  return c;
}

/** The SHA-256 fingerprint of the certificate a new handshake gets. */
function peerFingerprint(srv, ca) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: srv.port, ca, servername: 'localhost' }, () => {
      const fp = s.getPeerCertificate().fingerprint256;
      s.end();
      resolve(fp);
    });
    s.on('error', reject);
  });
}

const fingerprintOf = (certPath) => new crypto.X509Certificate(fs.readFileSync(certPath)).fingerprint256;

test('every transport over https/wss: page, APIs, /ws, /sse, /api/poll, /socket.io/', T, async () => {
  const c1 = makeCert('main');
  const srv = await startTickerd({ config: tlsConfig(c1) });
  assert.equal(srv.tls, true, 'logs listening on https://');
  const ca = c1.pem;

  const page = await httpsGet(srv, '/', { ca });
  assert.equal(page.status, 200);
  assert.match(page.body, /<html/i);
  const health = await httpsGet(srv, '/healthz', { ca });
  assert.equal(health.status, 200);
  const syms = await httpsGet(srv, '/api/symbols', { ca });
  assert.equal(syms.status, 200);
  assert.ok(JSON.parse(syms.body).symbols.some((s) => (s.symbol || s) === 'BTC-USD'));
  const snap = await httpsGet(srv, '/api/snapshot?symbols=BTC-USD', { ca });
  assert.equal(snap.status, 200);

  // wss: subscribe, snapshot then updates
  const c = await connectWss(srv, ca);
  const ack = await c.subscribe(['BTC-USD']);
  assert.deepEqual(ack.symbols, ['BTC-USD']);
  await c.next((m) => m.op === 'snapshot', 5000, 'snapshot');
  await c.next((m) => m.op === 'update', 5000, 'update over wss');

  // SSE over https: the stream's first events
  const sse = await new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port: srv.port, path: '/sse?symbols=BTC-USD', ca, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        text += d;
        if (/event: update/.test(text)) { req.destroy(); resolve({ status: res.statusCode, type: res.headers['content-type'], text }); }
      });
    });
    req.on('error', (e) => { if (!/socket hang up|aborted/.test(e.message)) reject(e); });
    setTimeout(() => reject(new Error('no SSE update over https')), 8000);
  });
  assert.equal(sse.status, 200);
  assert.match(sse.type, /text\/event-stream/);
  assert.match(sse.text, /event: snapshot/);

  // long-polling over https
  const poll = await httpsGet(srv, '/api/poll?symbols=BTC-USD', { ca });
  assert.equal(poll.status, 200);
  assert.ok(JSON.parse(poll.body).frames.some((f) => updatesOf(f).length), poll.body.slice(0, 200));

  // the official socket.io client over https (polling, then the websocket upgrade)
  const s = io(`https://127.0.0.1:${srv.port}`, { ca, reconnection: false });
  try {
    await withTimeout(new Promise((resolve, reject) => {
      s.once('connect', resolve);
      s.once('connect_error', (e) => reject(new Error(`connect_error: ${e.message}`)));
    }), 10000, () => 'socket.io over https: no connect');
    const got = new Promise((resolve) => s.on('update', resolve));
    const sack = await withTimeout(new Promise((resolve) => s.emit('subscribe', ['ETH-USD'], resolve)), 5000, () => 'no ack');
    assert.deepEqual(sack.symbols, ['ETH-USD']);
    await withTimeout(got, 8000, () => 'no socket.io update over https');
    await waitFor(() => s.io.engine.transport.name === 'websocket', { timeoutMs: 5000, message: 'upgraded to websocket (wss)' });
  } finally {
    s.close();
  }
  c.close();
});

test('the dashboard in Chromium over https: the page loads, its WebSocket is wss, prices tick', T, async () => {
  const c = makeCert('browser');
  const srv = await startTickerd({ config: tlsConfig(c) });
  // the certificate is the test's own: Chromium is told to accept it (nothing else differs from a CA's)
  const browser = await launchChromium(['--ignore-certificate-errors']);
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    const sockets = [];
    page.on('websocket', (w) => sockets.push(w.url()));
    await page.goto(srv.url);
    assert.match(page.url(), /^https:/);
    await page.waitForSelector('#status[data-state="live"]', { timeout: 15000 });
    await page.waitForSelector('#quotes tr[data-symbol="BTC-USD"] .c-last:not(:empty)', { timeout: 15000 });
    const first = await page.textContent('#quotes tr[data-symbol="BTC-USD"] .c-last');
    await page.waitForFunction((v) => document.querySelector('#quotes tr[data-symbol="BTC-USD"] .c-last').textContent !== v,
      first, { timeout: 15000 });
    assert.ok(sockets.length >= 1 && sockets.every((u) => u.startsWith('wss://')), sockets.join());
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('TLS 1.2 at least, no weak ciphers, no plain HTTP on the TLS port', T, async () => {
  const c1 = makeCert('proto');
  const srv = await startTickerd({ config: tlsConfig(c1) });
  const hs = (opts) => new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port: srv.port, ca: c1.pem, servername: 'localhost', ...opts }, () => {
      const r = { ok: true, protocol: s.getProtocol(), cipher: s.getCipher().name };
      s.end();
      resolve(r);
    });
    s.on('error', (e) => resolve({ ok: false, error: e.message }));
  });
  const modern = await hs({});
  assert.equal(modern.ok, true);
  assert.equal(modern.protocol, 'TLSv1.3');
  const v12 = await hs({ maxVersion: 'TLSv1.2' });
  assert.equal(v12.ok, true, JSON.stringify(v12));
  assert.match(v12.cipher, /ECDHE.*(GCM|CHACHA20)/, 'TLS 1.2 negotiates ECDHE with an AEAD cipher');
  // TLS 1.1 and 1.0 are refused (Node itself needs its floor lowered to try)
  const v11 = await hs({ minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' });
  assert.equal(v11.ok, false, `TLS 1.1 accepted: ${JSON.stringify(v11)}`);
  for (const weak of ['AES128-SHA', 'AES256-GCM-SHA384', 'ECDHE-RSA-AES128-SHA', 'DHE-RSA-AES128-GCM-SHA256']) {
    const r = await hs({ maxVersion: 'TLSv1.2', ciphers: weak });
    assert.equal(r.ok, false, `${weak} accepted`);
  }
  // a plain request to the TLS port gets no HTTP answer
  const plain = await new Promise((resolve) => {
    const s = net.connect(srv.port, '127.0.0.1', () => s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'));
    let got = '';
    s.on('data', (d) => { got += d.toString('latin1'); });
    s.on('close', () => resolve(got));
    s.on('error', () => resolve(got));
    setTimeout(() => { s.destroy(); resolve(got); }, 3000);
  });
  assert.doesNotMatch(plain, /^HTTP\/1\.1 200/);
});

test('a key that does not match the certificate exits 2 naming server.tls.key (also --check-config)', T, async () => {
  const a = makeCert('pair-a'), b = makeCert('pair-b');
  const bad = tlsConfig({ cert: a.cert, key: b.key });
  const r = await runTickerd({ config: bad });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /server\.tls\.key: .*does not match the certificate/);
  const cfgPath = path.join(dir, 'mismatch.json');
  fs.writeFileSync(cfgPath, JSON.stringify(bad));
  const chk = await runTickerd({ args: ['--check-config', cfgPath] });
  assert.equal(chk.code, 2);
  assert.match(chk.stderr, /server\.tls\.key: .*does not match/);
});

test('an expired certificate, an unreadable file, a key without a cert: exit 2 naming the key', T, async () => {
  const e = makeExpiredCert('old');
  let r = await runTickerd({ config: tlsConfig(e) });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /server\.tls\.cert: .*expired at 2020-01-02T00:00:00Z/);
  const cfgPath = path.join(dir, 'expired.json');
  fs.writeFileSync(cfgPath, JSON.stringify(tlsConfig(e)));
  const chk = await runTickerd({ args: ['--check-config', cfgPath] });
  assert.equal(chk.code, 2);
  assert.match(chk.stderr, /server\.tls\.cert: .*expired/);

  const ok = makeCert('unreadable');
  r = await runTickerd({ config: tlsConfig({ cert: path.join(dir, 'missing.crt'), key: ok.key }) });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /server\.tls\.cert: cannot read .*missing\.crt/);
  r = await runTickerd({ config: tlsConfig({ cert: ok.cert, key: path.join(dir, 'missing.key') }) });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /server\.tls\.key: cannot read/);
  r = await runTickerd({ config: tlsConfig({ cert: ok.cert, key: ok.cert }) });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /server\.tls\.key: .*no unencrypted PEM private key/);
  r = await runTickerd({ config: simConfig({ server: { tls: { cert: ok.cert } } }) });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /server\.tls\.key: required with server\.tls\.cert/);
  r = await runTickerd({ config: tlsConfig(ok, { ca: path.join(dir, 'missing-ca.pem') }) });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /server\.tls\.ca: cannot read/);
});

test('SIGHUP re-reads the certificate: new handshakes see it, a client already up keeps receiving', T, async () => {
  const first = makeCert('reload-1'), second = makeCert('reload-2');
  // the files tickerd reads are replaced in place, as a renewal does
  const live = { cert: path.join(dir, 'live.crt'), key: path.join(dir, 'live.key') };
  fs.copyFileSync(first.cert, live.cert);
  fs.copyFileSync(first.key, live.key);
  const cfg = tlsConfig(live);
  const srv = await startTickerd({ config: cfg });
  const both = Buffer.concat([first.pem, second.pem]);
  assert.equal(await peerFingerprint(srv, both), fingerprintOf(first.cert));

  const old = await connectWss(srv, both);
  await old.subscribe(['BTC-USD']);
  await old.next((m) => m.op === 'update', 5000, 'update before the reload');

  fs.copyFileSync(second.cert, live.cert);
  fs.copyFileSync(second.key, live.key);
  srv.signal('SIGHUP');
  await waitFor(() => /TLS certificate re-read/.test(srv.stderr()), { message: 'reload logged' });
  assert.equal(await peerFingerprint(srv, both), fingerprintOf(second.cert), 'a new handshake gets the new certificate');
  const fresh = await connectWss(srv, second.pem);
  await fresh.subscribe(['ETH-USD']);
  await fresh.next((m) => m.op === 'update', 5000, 'update on a connection with the new certificate');

  // the old connection was not dropped and still gets updates
  const before = old.framesIn;
  await waitFor(() => old.framesIn > before + 2, { timeoutMs: 5000, message: 'old client keeps receiving' });
  assert.equal(old.closeInfo, null);

  // a broken file on the next SIGHUP: refused, the certificate in use kept, counted
  fs.writeFileSync(live.key, 'not a key\n');
  srv.signal('SIGHUP');
  await waitFor(() => /server\.tls\.key: .*keeping the certificate in use/.test(srv.stderr()), { message: 'refused reload logged' });
  assert.equal(await peerFingerprint(srv, both), fingerprintOf(second.cert));
  const m = await (async () => { const r = await httpsGet(srv, '/metrics', { ca: both }); return r.body; })();
  assert.match(m, /^tickerd_tls_reloads_total 1$/m);
  assert.match(m, /^tickerd_tls_reload_failures_total 1$/m);
  assert.match(m, /^tickerd_tls_cert_not_after_seconds [1-9]\d+$/m);
  old.close();
  fresh.close();
});

test('server.tls.ca: client certificates signed by it are required', T, async () => {
  const srvCert = makeCert('mtls-server');
  const caKey = path.join(dir, 'ca.key'), caCert = path.join(dir, 'ca.crt');
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', caKey, '-out', caCert,
    '-days', '2', '-subj', '/CN=test client CA');
  const cliKey = path.join(dir, 'client.key'), cliCsr = path.join(dir, 'client.csr'), cliCert = path.join(dir, 'client.crt');
  openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', cliKey, '-out', cliCsr, '-subj', '/CN=trader');
  openssl('x509', '-req', '-in', cliCsr, '-CA', caCert, '-CAkey', caKey, '-CAcreateserial', '-out', cliCert, '-days', '2');
  const other = makeCert('stranger'); // self-signed: not from the CA

  const srv = await startTickerd({ config: tlsConfig(srvCert, { ca: caCert }) });
  const ca = srvCert.pem;
  const withCert = await httpsGet(srv, '/healthz', { ca, cert: fs.readFileSync(cliCert), key: fs.readFileSync(cliKey) });
  assert.equal(withCert.status, 200);
  await assert.rejects(httpsGet(srv, '/healthz', { ca }), 'no client certificate: refused');
  await assert.rejects(httpsGet(srv, '/healthz', { ca, cert: other.pem, key: fs.readFileSync(other.key) }), 'a certificate from elsewhere: refused');
  const c = await connectWss(srv, ca, { cert: fs.readFileSync(cliCert), key: fs.readFileSync(cliKey) });
  await c.subscribe(['BTC-USD']);
  c.close();
});

test('server.tls.redirect_port answers 301 to https with the path and query', T, async () => {
  const c1 = makeCert('redirect');
  const probe = net.createServer();
  await new Promise((r) => probe.listen(0, '127.0.0.1', r));
  const rport = probe.address().port;
  await new Promise((r) => probe.close(r));
  const srv = await startTickerd({ config: tlsConfig(c1, { redirect_port: rport }) });
  const r = await new Promise((resolve, reject) => {
    const s = net.connect(rport, '127.0.0.1', () => s.write('GET /api/snapshot?symbols=BTC-USD HTTP/1.1\r\nHost: 127.0.0.1:' + rport + '\r\n\r\n'));
    let got = '';
    s.on('data', (d) => { got += d; if (/\r\n\r\n/.test(got)) { s.destroy(); resolve(got); } });
    s.on('error', reject);
  });
  assert.match(r, /^HTTP\/1\.1 301/);
  assert.match(r, new RegExp(`location: https://127\\.0\\.0\\.1:${srv.port}/api/snapshot\\?symbols=BTC-USD\\r\\n`, 'i'));
});

test('the TLS handshake and first head have limits.header_timeout_ms; idle sockets are reaped, others served', T, async () => {
  const c1 = makeCert('slow');
  const srv = await startTickerd({ config: tlsConfig(c1, {}, { limits: { header_timeout_ms: 1000 } }) });
  const N = 50;
  const idle = [];
  for (let i = 0; i < N; i++) {
    const s = net.connect(srv.port, '127.0.0.1');
    s.on('error', () => {});
    s.closedAt = null;
    s.on('close', () => { s.closedAt = Date.now(); });
    idle.push(s);
  }
  // half a TLS session: a finished handshake and no request
  const half = tls.connect({ host: '127.0.0.1', port: srv.port, ca: c1.pem, servername: 'localhost' });
  half.on('error', () => {});
  const halfClosed = new Promise((r) => half.on('close', r));
  await waitFor(async () => (await httpsGet(srv, '/metrics', { ca: c1.pem })).body.match(/^tickerd_http_heads_pending (\d+)/m)[1] >= N, { message: 'pending counted' });
  const c = await connectWss(srv, c1.pem);
  await c.subscribe(['BTC-USD']);
  const t0 = Date.now();
  await waitFor(() => idle.every((s) => s.closedAt), { timeoutMs: 5000, message: 'idle sockets reaped' });
  await withTimeout(halfClosed, 5000, () => 'a handshake without a request was not reaped');
  assert.ok(Date.now() - t0 < 4000);
  const before = c.framesIn;
  await waitFor(() => c.framesIn > before, { message: 'the served client still receives' });
  const m = (await httpsGet(srv, '/metrics', { ca: c1.pem })).body;
  assert.ok(Number(m.match(/^tickerd_http_head_timeouts_total (\d+)/m)[1]) >= N + 1, m.match(/^tickerd_http_head.*$/gm).join('\n'));
  assert.match(m, /^tickerd_http_heads_pending [01]$/m);
  c.close();
});
