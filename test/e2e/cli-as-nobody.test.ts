// The CLI run by a user who may not read root's files (the real CLI as the user nobody; needs root:
// a printed skip otherwise, a failure under CI=true):
// - the cluster key file (root's, mode 0600, as the README asks) with the control commands and
//   --config: the file only finds the socket, so the unreadable key is no configuration error
//   (exit 2) and the command reaches the socket (here: no daemon, exit 3);
// - a greylist store this user may not read: every offline command exits 2, as `check` does.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LmdbGreylistStore } from '../../src/store/lmdb-greylist-store.js';
import { systemClock } from '../../src/util/clock.js';
import { createSilentLogger } from '../../src/util/logger.js';
import { MXSENTRY_BIN } from '../helpers/daemon.js';
import { requireRoot } from '../helpers/peers.js';

const s = suite('e2e/cli-as-nobody');

function asNobody(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, [MXSENTRY_BIN, ...args], { timeout: 15_000, cwd: '/', uid: 65534, gid: 65534 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      done({ code, stdout, stderr });
    });
  });
}

s('stats and cache flush --config with a key file this user cannot read: no config error, the socket is asked', async () => {
  if (!requireRoot('control commands with an unreadable key file')) return;
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-keyuser-'));
  try {
    chmodSync(dir, 0o755);
    const key = join(dir, 'cluster.key');
    writeFileSync(key, `${'ab'.repeat(32)}\n`, { mode: 0o600 });
    const conf = join(dir, 'mx.conf');
    writeFileSync(conf, `data-dir: ${join(dir, 'data')}\nnode-name: mxa\nreplication-listen: 127.0.0.1:7101\npeer: mxb=127.0.0.1:7102\nreplication-key-file: ${key}\n`, { mode: 0o644 });
    for (const args of [['stats', '--config', conf], ['cache', 'flush', '--config', conf]]) {
      const r = await asNobody(args);
      if (/Cannot find module|EACCES: permission denied, open .*(dist|bin)/.test(r.stderr)) {
        // The checkout itself is not readable by nobody (e.g. under /root): nothing of mxsentry to test.
        console.log('  SKIP unreadable key file: this checkout is not readable by the user nobody');
        return;
      }
      assert.not.match(r.stderr, /config error/, `${args.join(' ')}: ${r.stderr}`);
      assert.is(r.code, 3, `${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
    }
    // A key this user could read but that is wrong is still a configuration problem.
    writeFileSync(key, 'not a key\n', { mode: 0o644 });
    chmodSync(key, 0o644);
    const bad = await asNobody(['stats', '--config', conf]);
    assert.is(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /replication-key-file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

s('greylist list, clients and stats on a store this user may not read: exit 2, naming the store', async () => {
  if (!requireRoot('greylist commands on an unreadable store')) return;
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-keyuser-'));
  try {
    chmodSync(dir, 0o755);
    const data = join(dir, 'data');
    // A store made by root as serve makes it (its greylist folder is mode 0700), as under the unit.
    await (await LmdbGreylistStore.open({ dataDir: data, clock: systemClock, logger: createSilentLogger() })).close();
    chmodSync(data, 0o755);
    for (const args of [['greylist', 'list'], ['greylist', 'clients'], ['greylist', 'stats']]) {
      const r = await asNobody([...args, '--data-dir', data]);
      if (/Cannot find module|EACCES: permission denied, open .*(dist|bin)/.test(r.stderr)) {
        console.log('  SKIP unreadable store: this checkout is not readable by the user nobody');
        return;
      }
      assert.is(r.code, 2, `${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
      assert.match(r.stderr, /cannot open the greylist store under .*(EACCES|EPERM)/);
      assert.match(r.stderr, /--data-dir DIR/);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

s.run();
