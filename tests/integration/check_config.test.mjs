// tickerd --check-config FILE (docs/operations.md): every shipped config passes, broken ones name each problem.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTickerd, stopAll, tempDir } from './lib/harness.mjs';

const T = { timeout: 30000 };
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
after(stopAll);

function writeTemp(obj) {
  const f = path.join(tempDir(), 'check.json');
  fs.writeFileSync(f, typeof obj === 'string' ? obj : JSON.stringify(obj));
  return f;
}
const check = (file, args = []) => runTickerd({ args: ['--check-config', file, ...args] });

describe('--check-config', () => {
  const shipped = ['etc/tickerd.json', ...fs.readdirSync(path.join(ROOT, 'etc/examples')).map((f) => `etc/examples/${f}`)];
  for (const rel of shipped) {
    test(`shipped ${rel} is ok`, T, async () => {
      // port 0: the check must not depend on 8080 being free on this shared machine
      const cfg = JSON.parse(fs.readFileSync(path.join(ROOT, rel), 'utf8'));
      cfg.server = { ...(cfg.server || {}), port: 0 };
      const r = await check(writeTemp(cfg));
      assert.equal(r.code, 0, `exit ${r.code}; stderr:\n${r.stderr}`);
      assert.match(r.stdout, /: ok\n$/);
    });
  }

  test('the shipped file itself, unchanged, passes the file checks', T, async () => {
    const r = await check(path.join(ROOT, 'etc/tickerd.json'), ['--running']);
    assert.equal(r.code, 0, r.stderr);
  });

  test('a broken file: every problem named by its key path, exit 2', T, async () => {
    const f = writeTemp({
      server: { port: 99999, bogus: 1 },
      log: { level: 'loud' },
      feeds: [{ type: 'sim', rate: -5 }, { type: 'nope' }, { type: 'rest', venue: 'nosuchvenue' }],
      limits: { max_subscriptions: 'x' },
    });
    const r = await check(f);
    assert.equal(r.code, 2, r.stderr);
    for (const key of ['server.port:', 'server.bogus: unknown key', 'log.level:', 'feeds[0].rate:',
      'feeds[1].type: unknown feed type', 'feeds[2].venue:', 'limits.max_subscriptions:']) {
      assert.ok(r.stderr.includes(`${f}: ${key}`), `missing "${key}" in:\n${r.stderr}`);
    }
    assert.match(r.stderr, /7 problems/);
    assert.equal(r.stdout, '');
  });

  test('invalid JSON names the line', T, async () => {
    const r = await check(writeTemp('{"server": {"port": 1,}}'));
    assert.equal(r.code, 2);
    assert.match(r.stderr, /:1:\d+: invalid JSON/);
  });

  test('a missing file', T, async () => {
    const r = await check('/nonexistent/tickerd.json');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /cannot read/);
  });

  test('files it would open: a web_root without index.html, a history directory that cannot be created', T, async () => {
    // A regular file where a directory of history.path should be: no mkdir -p gets past
    // it, not even as root (the suite may run as root, so permissions cannot show this).
    const blocker = path.join(tempDir(), 'a-file');
    fs.writeFileSync(blocker, '');
    const r = await check(writeTemp({
      server: { port: 0, web_root: '/nonexistent/web' },
      history: { path: path.join(blocker, 'dir', 'history.db') },
    }));
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /server\.web_root: no readable index\.html in \/nonexistent\/web/);
    assert.match(r.stderr, /history\.path: directory \S*a-file\/dir: Not a directory/);
  });

  test('a history directory that does not exist yet is fine: tickerd creates it on start', T, async () => {
    const r = await check(writeTemp({
      server: { port: 0 },
      history: { path: path.join(tempDir(), 'new', 'deeper', 'history.db') },
    }));
    assert.equal(r.code, 0, r.stderr);
  });

  test('a port already taken is a problem, except with --running (before a reload)', T, async () => {
    const srv = net.createServer();
    await new Promise((res) => srv.listen(0, '127.0.0.1', res));
    const port = srv.address().port;
    try {
      const f = writeTemp({ server: { bind: '127.0.0.1', port } });
      const r = await check(f);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`server\\.port: cannot bind 127\\.0\\.0\\.1:${port}: Address already in use`));
      const r2 = await check(f, ['--running']);
      assert.equal(r2.code, 0, r2.stderr);
    } finally {
      srv.close();
    }
  });
});
