// Tests for RecoveryProbe: after a store failure it restores health by a small committed write,
// but not while the filesystem holding the store is (nearly) full, where that write would commit
// (it reuses pages the file has) while every decision needing a new page still fails.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { LmdbEnv } from '../../src/store/lmdb-env.js';
import { explainCommitFailure, filesystemFreeBytes, RECOVERY_MIN_FREE_BYTES, RecoveryProbe } from '../../src/store/recovery-probe.js';
import { translateLmdbError } from '../../src/store/lmdb-env.js';
import { ManualScheduler } from '../../src/store/scheduler.js';
import { ManualClock } from '../../src/util/clock.js';
import { capturingLogger } from '../helpers/capturing-logger.js';

const s = suite('store/recovery-probe');

s('no health back while the filesystem has less than 1 MiB free; back once it has room', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-probe-'));
  const { logger, lines } = capturingLogger();
  const env = await LmdbEnv.open({ dataDir: dir, logger });
  try {
    const clock = new ManualClock(1_700_000_000_000);
    const scheduler = new ManualScheduler(clock);
    let healthy = false;
    let free = 200 * 1024;
    const probe = new RecoveryProbe({
      env, clock, scheduler, logger, decisionPages: 8,
      isDone: () => healthy,
      tracked: (p) => p.then((v) => ((healthy = true), v)),
      freeBytes: () => free,
    });
    probe.start();
    for (let i = 0; i < 4; i++) {
      scheduler.advanceMs(30_000);
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.not.ok(healthy, 'a full disk keeps it failed');
    // What the store asks before any other committed write (a peer's merge, the sweep) restores health.
    assert.match(probe.roomProblem() ?? '', /has 200 KiB free: the store stays failed \(open\) until there is room/);
    assert.ok(lines().some((l) => String(l['err']).includes('has 200 KiB free')), JSON.stringify(lines()));
    // The reason is said once at info (it used to be debug only: nothing told the admin why), then at debug.
    const failing = lines().filter((l) => l['msg'] === 'greylist store still failing');
    assert.ok(failing.length >= 3, JSON.stringify(failing));
    assert.equal(failing.map((l) => l['level']), ['info', ...failing.slice(1).map(() => 'debug')]);
    free = RECOVERY_MIN_FREE_BYTES * 10;
    for (let i = 0; i < 4 && !healthy; i++) {
      scheduler.advanceMs(30_000);
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(healthy, 'room again: the probe write restores health');
    assert.is(probe.roomProblem(), undefined);
    probe.stop();
  } finally {
    await env.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

s('filesystemFreeBytes reads statfs; undefined for a path that is not there', () => {
  const free = filesystemFreeBytes(tmpdir());
  assert.ok(free !== undefined && free > 0);
  assert.is(filesystemFreeBytes('/nonexistent/mxsentry'), undefined);
});

s('lmdb-js\'s bare "Commit failed" gets its likely cause: a full filesystem, else the pointer to LMDB\'s logged Write error line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-explain-'));
  try {
    const bare = new Error('Commit failed (see commitError for details)');
    // The data file missing: it cannot be written (ENOENT), said with the file's path.
    assert.match(String((explainCommitFailure(bare, dir, () => 1 << 30) as Error).message), /data\.mdb cannot be written \(ENOENT\)/);
    writeFileSync(join(dir, 'data.mdb'), '');
    const full = explainCommitFailure(bare, dir, () => 4096);
    assert.is(translateLmdbError(full, 'greylist decisions').code, 'STORE_ERR_FULL', 'a full filesystem is a full store');
    assert.match((full as Error).message, /filesystem holding .* is full \(4096 bytes free\)/);
    const other = explainCommitFailure(bare, dir, () => 1 << 30) as Error;
    assert.is(translateLmdbError(other, 'greylist decisions').code, 'STORE_ERR_IO');
    assert.match(other.message, /LMDB's "Write error" line, logged by the daemon as "a library wrote to the console"/);
    // Errors with a reason of their own pass unchanged.
    const specific = Object.assign(new Error('MDB_MAP_FULL: Environment mapsize limit reached'), { code: -30792 });
    assert.is(explainCommitFailure(specific, dir, () => 0), specific);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

s.run();
