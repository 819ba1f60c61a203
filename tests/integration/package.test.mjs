// The .deb (docs/operations.md#the-debian-package): built by CPack, extracted with dpkg -x, control checked,
// and the extracted binary serves the embedded default with the extracted page.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { TICKERD_BIN, tempDir, startTickerd, stopAll, httpGet, waitForSymbols, connect, closeAllClients } from './lib/harness.mjs';

const BUILD = path.dirname(path.resolve(TICKERD_BIN));
const haveTools = ['dpkg-deb', 'dpkg-shlibdeps'].every((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status === 0);
after(async () => { closeAllClients(); await stopAll(); });

describe('debian package', { skip: haveTools ? false : 'dpkg-dev is not installed' }, () => {
  let deb;
  let root;
  test('cmake --build --target package makes a .deb', { timeout: 170000 }, () => {
    execFileSync('cmake', ['--build', BUILD, '--target', 'package'], { stdio: ['ignore', 'pipe', 'pipe'] });
    deb = fs.readdirSync(BUILD).filter((f) => /^tickerd_.*\.deb$/.test(f)).map((f) => path.join(BUILD, f))[0];
    assert.ok(deb, `no .deb in ${BUILD}`);
    root = tempDir();
    execFileSync('dpkg', ['-x', deb, root]);
    for (const f of ['usr/bin/tickerd', 'usr/share/tickerd/web/index.html', 'etc/tickerd/tickerd.json',
      'lib/systemd/system/tickerd.service']) {
      assert.ok(fs.existsSync(path.join(root, f)), `${f} missing from the package`);
    }
    assert.ok(fs.statSync(path.join(root, 'var/lib/tickerd')).isDirectory(), '/var/lib/tickerd missing');
    assert.ok(fs.statSync(path.join(root, 'usr/bin/tickerd')).mode & 0o111, 'tickerd not executable');
  });

  test('control: Depends from the linked libraries; the config is a conffile; maintainer scripts make the user', () => {
    assert.ok(deb, 'no package (previous test failed)');
    const depends = execFileSync('dpkg-deb', ['-f', deb, 'Depends'], { encoding: 'utf8' });
    for (const lib of ['libc6', 'libwebsockets17', 'libjansson4', 'libcurl4', 'libsqlite3-0', 'adduser']) {
      assert.match(depends, new RegExp(`(^|, )${lib}( |,|$)`), `Depends lacks ${lib}: ${depends}`);
    }
    const ctl = tempDir();
    execFileSync('sh', ['-c', `dpkg-deb --ctrl-tarfile "${deb}" | tar -x -C "${ctl}"`]);
    assert.equal(fs.readFileSync(path.join(ctl, 'conffiles'), 'utf8').trim(), '/etc/tickerd/tickerd.json');
    const postinst = fs.readFileSync(path.join(ctl, 'postinst'), 'utf8');
    assert.match(postinst, /adduser --system --group .*tickerd/s);
    assert.ok(fs.statSync(path.join(ctl, 'postinst')).mode & 0o111, 'postinst not executable');
  });

  test('the extracted binary checks the shipped config and serves the embedded default with the extracted page', { timeout: 30000 }, async () => {
    assert.ok(root, 'no extracted package (previous test failed)');
    const bin = path.join(root, 'usr/bin/tickerd');
    const conf = path.join(root, 'etc/tickerd/tickerd.json');
    // A state directory that does not exist yet (a fresh machine's ~/.local/state):
    // tickerd creates it on start, so the check accepts it.
    const state = path.join(tempDir(), 'not-yet', 'state');
    const chk = spawnSync(bin, ['--check-config', conf, '--running'],
      { encoding: 'utf8', env: { ...process.env, XDG_STATE_HOME: state, STATE_DIRECTORY: '' } });
    assert.equal(chk.status, 0, chk.stderr);
    const config = JSON.parse(fs.readFileSync(conf, 'utf8'));
    config.server = { ...config.server, bind: '127.0.0.1', port: 0, web_root: path.join(root, 'usr/share/tickerd/web') };
    const srv = await startTickerd({ bin, config });
    const page = await httpGet(srv, '/');
    assert.equal(page.status, 200);
    assert.equal(page.body, fs.readFileSync(path.join(root, 'usr/share/tickerd/web/index.html'), 'utf8'));
    await waitForSymbols(srv, ['BTC-USD']);
    const c = await connect(srv);
    await c.subscribe(['BTC-USD']);
    const m = await c.next((x) => x.op === 'update' || x.op === 'snapshot', 5000);
    assert.ok(m, 'no price from the packaged binary');
  });
});
