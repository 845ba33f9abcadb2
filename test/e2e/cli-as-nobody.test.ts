// The CLI run by a user who may not read root's files (the real CLI as the user nobody; needs root:
// a printed skip otherwise, a failure under CI=true):
// - the cluster key file (root's, mode 0600, as the README asks) with the control commands and
//   --config: the file only finds the socket, so the unreadable key is no configuration error
//   (exit 2) and the command reaches the socket (here: no daemon, exit 3); a wrong key is listed,
//   and the socket asked all the same;
// - a greylist store this user may not read: every offline command exits 2, as `check` does, and
//   says to run it as root or the store's owner (check: or without the store, --no-greylist);
// - a store of nobody's opened by root keeps its files nobody's; a lock.mdb nobody may not write is
//   named as such, not taken for a damaged store;
// - `config check` as a user other than root: a data-dir of another user is refused, as serve
//   run by that user refuses it.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
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

/**
 * Runs `fn` as root with a fresh folder the user nobody may enter (mode 0755), removed after; a printed
 * skip when not root. `fn` returns false when the checkout itself is not readable by nobody.
 */
async function asRootWithFolder(testName: string, fn: (dir: string) => Promise<boolean>): Promise<void> {
  if (!requireRoot(testName)) return;
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-nobody-'));
  try {
    chmodSync(dir, 0o755);
    // The checkout under a folder nobody cannot read (e.g. /root): nothing of mxsentry to test.
    if (!(await fn(dir))) console.log(`  SKIP ${testName}: this checkout is not readable by the user nobody`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const checkoutUnreadable = (stderr: string): boolean => /Cannot find module|EACCES: permission denied, open .*(dist|bin)/.test(stderr);

s('stats and cache flush --config with a key file this user cannot read: no config error, the socket is asked', async () => {
  await asRootWithFolder('control commands with an unreadable key file', async (dir) => {
    const key = join(dir, 'cluster.key');
    writeFileSync(key, `${'ab'.repeat(32)}\n`, { mode: 0o600 });
    const conf = join(dir, 'mx.conf');
    writeFileSync(conf, `data-dir: ${join(dir, 'data')}\nnode-name: mxa\nreplication-listen: 127.0.0.1:7101\npeer: mxb=127.0.0.1:7102\nreplication-key-file: ${key}\n`, { mode: 0o644 });
    for (const args of [['stats', '--config', conf], ['cache', 'flush', '--config', conf]]) {
      const r = await asNobody(args);
      if (checkoutUnreadable(r.stderr)) return false;
      assert.not.match(r.stderr, /config error/, `${args.join(' ')}: ${r.stderr}`);
      assert.is(r.code, 3, `${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
    }
    // A key this user could read but that is wrong is still a configuration problem: listed, though
    // it does not move the socket, so the daemon is asked all the same (none here: exit 3).
    writeFileSync(key, 'not a key\n', { mode: 0o644 });
    chmodSync(key, 0o644);
    const bad = await asNobody(['stats', '--config', conf]);
    assert.is(bad.code, 3, bad.stderr);
    assert.match(bad.stderr, /config error: .*replication-key-file/);
    assert.match(bad.stderr, /asking the daemon on .* all the same/);
    return true;
  });
});

s('greylist list, clients and stats on a store this user may not read: exit 2, naming the store and who may open it', async () => {
  await asRootWithFolder('greylist commands on an unreadable store', async (dir) => {
    const data = join(dir, 'data');
    // A store made by root as serve makes it (its greylist folder is mode 0700), as under the unit.
    await (await LmdbGreylistStore.open({ dataDir: data, clock: systemClock, logger: createSilentLogger() })).close();
    chmodSync(data, 0o755);
    for (const args of [['greylist', 'list'], ['greylist', 'clients'], ['greylist', 'stats']]) {
      const r = await asNobody([...args, '--data-dir', data]);
      if (checkoutUnreadable(r.stderr)) return false;
      assert.is(r.code, 2, `${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
      assert.match(r.stderr, /cannot open the greylist store under .*(EACCES|EPERM)/);
      // It is the daemon's store: who may open it, not where another one is.
      assert.match(r.stderr, /this user \(uid 65534\) may not open the store \(it belongs to uid 0\): run the command as root\n/);
      assert.not.match(r.stderr, /--data-dir DIR/);
    }
    return true;
  });
});

s('check on root\'s store, which this user may not open: exit 2, run as root or without the store (--no-greylist)', async () => {
  await asRootWithFolder('check on an unreadable store', async (dir) => {
    const data = join(dir, 'data');
    await (await LmdbGreylistStore.open({ dataDir: data, clock: systemClock, logger: createSilentLogger() })).close();
    chmodSync(data, 0o755);
    const envelope = ['--client-address', '192.0.2.1', '--helo', 'mx.example.org', '--sender', 'a@example.org', '--recipient', 'b@example.com', '--data-dir', data];
    const advice = /this user \(uid 65534\) may not open the store \(it belongs to uid 0\): run the command as root; or add --no-greylist to run the other steps without the store/;
    // The greylist folder root's (mode 0700, as serve makes it), then open to all but with root's lock.mdb.
    for (const mode of [0o700, 0o777]) {
      chmodSync(join(data, 'greylist'), mode);
      const r = await asNobody(['check', ...envelope]);
      if (checkoutUnreadable(r.stderr)) return false;
      assert.is(r.code, 2, `mode ${mode.toString(8)}: ${r.stderr}`);
      assert.match(r.stderr, advice);
      assert.not.match(r.stderr, /--data-dir DIR|fails open/);
    }
    // The lock file is root's as the whole store is: not called a stray to chown.
    const lock = await asNobody(['check', ...envelope]);
    assert.match(lock.stderr, /lock\.mdb is not writable by this user .*: the store is uid 0's: open it as that user, or as root/);
    const without = await asNobody(['check', ...envelope, '--no-greylist']);
    assert.is(without.code, 0, without.stderr);
    assert.match(without.stdout, /^action=DUNNO\nstep: 11 /);
    return true;
  });
});

s('a store of the daemon user opened by root keeps its files; a lock.mdb that user may not write is named, not called damaged', async () => {
  await asRootWithFolder('lock.mdb ownership', async (dir) => {
    const data = join(dir, 'data');
    mkdirSync(data, { mode: 0o755 });
    // A store of the daemon's user (nobody here; the unit's DynamicUser in production).
    await (await LmdbGreylistStore.open({ dataDir: data, clock: systemClock, logger: createSilentLogger() })).close();
    for (const p of [data, join(data, 'greylist'), join(data, 'greylist', 'data.mdb')]) chownSync(p, 65534, 65534);
    rmSync(join(data, 'greylist', 'lock.mdb'));
    const first = await asNobody(['greylist', 'stats', '--data-dir', data]);
    if (checkoutUnreadable(first.stderr)) return false;
    assert.is(first.code, 0, first.stderr);
    // root's command (as the README says to run them) leaves lock.mdb and data.mdb to nobody.
    rmSync(join(data, 'greylist', 'lock.mdb'));
    await (await LmdbGreylistStore.open({ dataDir: data, clock: systemClock, logger: createSilentLogger() })).close();
    for (const f of ['lock.mdb', 'data.mdb']) assert.is(statSync(join(data, 'greylist', f)).uid, 65534, `${f} stays nobody's`);
    assert.is((await asNobody(['greylist', 'stats', '--data-dir', data])).code, 0);
    // A root-owned lock.mdb (left by an older command, or a restored backup): named for what it is.
    chownSync(join(data, 'greylist', 'lock.mdb'), 0, 0);
    chmodSync(join(data, 'greylist', 'lock.mdb'), 0o644);
    const r = await asNobody(['greylist', 'stats', '--data-dir', data]);
    assert.is(r.code, 2, r.stderr);
    assert.match(r.stderr, /lock\.mdb is not writable by this user \(EACCES; it belongs to uid 0, mode 644, this process runs as uid 65534\)/);
    assert.match(r.stderr, /is not damaged/);
    return true;
  });
});

s('config check by a non-root user: a data-dir of another user is a problem (exit 2), in serve\'s words', async () => {
  await asRootWithFolder('config check of another user\'s data-dir', async (dir) => {
    const data = join(dir, 'data');
    mkdirSync(data, { mode: 0o755 });
    chownSync(data, 1, 1);
    const conf = join(dir, 'mx.conf');
    writeFileSync(conf, `data-dir: ${data}\n`, { mode: 0o644 });
    const r = await asNobody(['config', 'check', conf]);
    if (checkoutUnreadable(r.stderr)) return false;
    assert.is(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`config error: ${conf}:1: data-dir: control socket folder ${data} belongs to uid 1, not to this user \\(uid 65534\\) or root`));
    return true;
  });
});

s.run();
