// Tests for the one-daemon-per-data-dir lock: a second holder is refused, release frees it, other
// directories are independent, and the same directory named by another path is the same lock.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LOCK_NAME_FILE, lockDataDir, type InstanceLock } from '../../src/util/instance-lock.js';

const s = suite('util/instance-lock');

let dir = '';
s.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'mxsentry-lock-'));
  mkdirSync(join(dir, 'a'));
  mkdirSync(join(dir, 'b'));
  symlinkSync(join(dir, 'a'), join(dir, 'a-link'));
});
s.after(() => {
  rmSync(dir, { recursive: true, force: true });
});

s('a held data dir is busy for a second taker, also by another path; release frees it', async () => {
  const first = await lockDataDir(join(dir, 'a'));
  assert.ok(first !== 'busy');
  assert.is(await lockDataDir(join(dir, 'a')), 'busy');
  assert.is(await lockDataDir(join(dir, 'a-link')), 'busy', 'a symlink to the same directory is the same lock');
  const other = await lockDataDir(join(dir, 'b'));
  assert.ok(other !== 'busy', 'another directory has its own lock');
  (first as InstanceLock).release();
  await new Promise((r) => setTimeout(r, 20));
  const again = await lockDataDir(join(dir, 'a'));
  assert.ok(again !== 'busy', 'free again after release');
  (again as InstanceLock).release();
  (other as InstanceLock).release();
});

s('another user cannot take the lock in advance: its name is not derived from the path', async () => {
  const data = join(dir, 'c');
  mkdirSync(data);
  // Abstract sockets have no permissions: anyone may bind any name. A squatter on a name computed
  // from the path (as the lock was named before) must not keep the daemon from starting.
  const squatter = net.createServer();
  const pathName = createHash('sha256').update(realpathSync(data)).digest('hex').slice(0, 32);
  await new Promise<void>((resolve, reject) => {
    squatter.once('error', reject);
    squatter.listen(`\0mxsentry-data-dir-${pathName}`, () => resolve());
  });
  try {
    const lock = await lockDataDir(data);
    assert.ok(lock !== 'busy', 'a socket named after the path does not hold the lock');
    const file = join(data, LOCK_NAME_FILE);
    assert.is(statSync(file).mode & 0o777, 0o600, 'the name is readable by the daemon\'s user only');
    const name = readFileSync(file, 'utf8');
    assert.match(name, /^[0-9a-f]{32}\n$/);
    assert.is(await lockDataDir(data), 'busy');
    (lock as InstanceLock).release();
    await new Promise((r) => setTimeout(r, 20));
    const again = await lockDataDir(data);
    assert.ok(again !== 'busy');
    assert.is(readFileSync(file, 'utf8'), name, 'the same name on every start');
    (again as InstanceLock).release();
  } finally {
    squatter.close();
  }
});

s.run();
