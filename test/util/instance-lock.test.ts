// Tests for the one-daemon-per-data-dir lock: a second holder is refused, release frees it, other
// directories are independent, and the same directory named by another path is the same lock.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lockDataDir, type InstanceLock } from '../../src/util/instance-lock.js';

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

s.run();
