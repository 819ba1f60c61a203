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

// sd_notify for real: a unix datagram socket as $NOTIFY_SOCKET (python3 receives; node has no AF_UNIX dgram).
const RECEIVER = `
import socket, sys, os
p = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(p)
print("bound", flush=True)
while True:
    m = s.recv(4096).decode()
    print(m.replace("\\n", " "), flush=True)
`;

describe('sd_notify', () => {
  test('READY=1 once listening, WATCHDOG=1 with WATCHDOG_USEC, RELOADING=1 on SIGHUP, STOPPING=1 on SIGTERM', T, async () => {
    const { spawn } = await import('node:child_process');
    const { startTickerd, waitFor, simConfig } = await import('./lib/harness.mjs');
    const sock = path.join(tempDir(), 'notify.sock');
    const rx = spawn('python3', ['-c', RECEIVER, sock], { stdio: ['ignore', 'pipe', 'inherit'] });
    let got = '';
    rx.stdout.setEncoding('utf8');
    rx.stdout.on('data', (d) => { got += d; });
    try {
      await waitFor(() => got.includes('bound'), { message: 'receiver bound' });
      const srv = await startTickerd({ config: simConfig(), env: { NOTIFY_SOCKET: sock, WATCHDOG_USEC: '200000' } });
      await waitFor(() => got.includes('READY=1'), { message: `READY=1 (got ${got})` });
      await waitFor(() => got.includes('WATCHDOG=1'), { message: `WATCHDOG=1 (got ${got})` });
      srv.signal('SIGHUP');
      await waitFor(() => got.includes('RELOADING=1'), { message: `RELOADING=1 (got ${got})` });
      const exited = srv.waitExit(10000);
      srv.signal('SIGTERM');
      assert.equal((await exited).code, 0);
      await waitFor(() => got.includes('STOPPING=1'), { message: `STOPPING=1 (got ${got})` });
    } finally {
      rx.kill();
    }
  });
});
