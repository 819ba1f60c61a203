// Log formats (docs/operations.md#logs): journald-friendly under systemd, and log.format "json".
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { TICKERD_BIN, tempDir, startTickerd, stopAll, simConfig, LISTEN_RE } from './lib/harness.mjs';

const T = { timeout: 30000 };
after(stopAll);

// Runs tickerd until SIGTERM after its start; `journal`: JOURNAL_STREAM names the real stderr (as systemd sets it).
function runFor(config, { journal = false, env = {} } = {}) {
  const dir = tempDir();
  const cfgFile = path.join(dir, 'tickerd.json');
  fs.writeFileSync(cfgFile, JSON.stringify(config));
  const bin = path.resolve(TICKERD_BIN);
  const js = journal ? 'JOURNAL_STREAM=$(stat -L -c %d:%i /dev/stderr); export JOURNAL_STREAM; ' : '';
  const r = spawnSync('sh', ['-c', `${js}exec timeout -s TERM 3 "${bin}" -c "${cfgFile}" --port 0 --bind 127.0.0.1`],
    { encoding: 'utf8', env: { ...process.env, XDG_STATE_HOME: dir, ...env } });
  return r.stderr.split('\n').filter(Boolean);
}

describe('logs', () => {
  test('under the journal: "<N>" priority prefixes, no timestamps of our own', T, () => {
    const lines = runFor(simConfig(), { journal: true });
    assert.ok(lines.some((l) => /^<6>listening on http:\/\/127\.0\.0\.1:\d+\//.test(l)), lines.join('\n'));
    for (const l of lines) {
      assert.match(l, /^<[3467]>/, `no priority prefix: ${l}`);
      assert.doesNotMatch(l, /^<\d>\d{4}-\d\d-\d\dT/, `own timestamp: ${l}`);
    }
    assert.ok(lines.some((l) => l.startsWith('<6>stopped')), lines.join('\n'));
  });

  test('JOURNAL_STREAM inherited but stderr elsewhere: plain timestamped lines', T, () => {
    const srvLines = runFor(simConfig(), { env: { JOURNAL_STREAM: '1:1' } });
    assert.ok(srvLines.length > 0);
    assert.ok(srvLines.every((l) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (error|warn |info |debug) /.test(l)), srvLines.join('\n'));
  });

  test('log.format json: one object per line with ts, level, msg', T, async () => {
    const srv = await startTickerd({ config: simConfig({ log: { format: 'json' } }) });
    const lines = srv.stderr().split('\n').filter(Boolean);
    assert.ok(lines.length > 0);
    for (const l of lines) {
      const o = JSON.parse(l);
      assert.match(o.ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.ok(['error', 'warn', 'info', 'debug'].includes(o.level), l);
      assert.equal(typeof o.msg, 'string');
    }
    assert.ok(lines.some((l) => LISTEN_RE.test(JSON.parse(l).msg)));
  });

  test('log.format json under the journal: prefix, then JSON without ts', T, () => {
    const lines = runFor(simConfig({ log: { format: 'json' } }), { journal: true });
    const listen = lines.find((l) => l.startsWith('<6>{') && LISTEN_RE.test(JSON.parse(l.slice(3)).msg));
    assert.ok(listen, lines.join('\n'));
    assert.equal(JSON.parse(listen.slice(3)).ts, undefined);
  });
});
