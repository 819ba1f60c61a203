// etc/tickerd.service (docs/operations.md): the hardened unit passes systemd-analyze verify and stays "OK" or better.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TICKERD_BIN, tempDir, stopAll } from './lib/harness.mjs';

const T = { timeout: 60000 };
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const UNIT = fs.readFileSync(path.join(ROOT, 'etc/tickerd.service'), 'utf8');
const analyze = spawnSync('systemd-analyze', ['--version']).status === 0;
after(stopAll);

// The unit names the package's /usr/bin/tickerd; verify checks that commands exist, so a copy points at the build.
function unitForBuild() {
  const dir = tempDir();
  const f = path.join(dir, 'tickerd.service');
  fs.writeFileSync(f, UNIT.replaceAll('/usr/bin/tickerd', path.resolve(TICKERD_BIN)));
  return f;
}

describe('systemd unit', { skip: analyze ? false : 'systemd-analyze is not installed' }, () => {
  test('has the hardening the issue asks for', () => {
    for (const line of ['Type=notify', 'User=tickerd', 'StateDirectory=tickerd', 'ProtectSystem=strict',
      'ProtectHome=yes', 'PrivateTmp=yes', 'NoNewPrivileges=yes', 'Restart=on-failure', 'WatchdogSec=',
      'ExecStartPre=/usr/bin/tickerd --check-config /etc/tickerd/tickerd.json',
      'ExecReload=/bin/kill -HUP $MAINPID', 'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX', 'LimitNOFILE=65536']) {
      assert.ok(UNIT.includes(line), `unit lacks ${line}`);
    }
  });

  test('systemd-analyze verify passes', T, () => {
    const r = spawnSync('systemd-analyze', ['verify', unitForBuild()], { encoding: 'utf8' });
    assert.equal(r.status, 0, `verify failed:\n${r.stdout}${r.stderr}`);
    assert.doesNotMatch(r.stderr, /tickerd\.service:/, r.stderr);
  });

  test('systemd-analyze security --offline: exposure "OK" or better', T, () => {
    const out = execFileSync('systemd-analyze', ['security', '--offline=yes', unitForBuild()], { encoding: 'utf8' });
    const m = out.match(/Overall exposure level for tickerd\.service: ([\d.]+) (\w+)/);
    assert.ok(m, out.slice(-500));
    assert.ok(['OK', 'SAFE'].includes(m[2]), `exposure ${m[1]} ${m[2]}`);
    assert.ok(Number(m[1]) <= 3.9, `exposure ${m[1]}`);
  });
});
