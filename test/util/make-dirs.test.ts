// makeDirs: mkdir -p for the data dir and the store's folder, which ends (with an error) where
// Node's recursive mkdirSync loops for ever (a path under /proc).
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { makeDirs } from '../../src/util/make-dirs.js';

const s = suite('util/make-dirs');
let dir = '';
s.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'mxsentry-dirs-'));
});
s.after.each(() => rmSync(dir, { recursive: true, force: true }));

s('makes the missing parents, with the mode asked for, and accepts a directory that exists', () => {
  const deep = join(dir, 'a', 'b', 'c');
  makeDirs(deep, 0o700);
  assert.ok(statSync(deep).isDirectory());
  assert.is(statSync(join(dir, 'a')).mode & 0o777, 0o700);
  makeDirs(deep, 0o700);
  makeDirs(`${deep}/`);
  makeDirs(join(deep, '..', 'c2'));
  assert.ok(statSync(join(dir, 'a', 'b', 'c2')).isDirectory());
});

s('a file in the way is ENOTDIR, whether it is the path or a parent', () => {
  const file = join(dir, 'f');
  writeFileSync(file, 'x');
  for (const target of [file, join(file, 'sub')]) {
    try {
      makeDirs(target);
      assert.unreachable(`${target} was made`);
    } catch (err) {
      assert.is((err as NodeJS.ErrnoException).code, 'ENOTDIR', String(err));
    }
  }
});

s('a path under /proc, where nothing can be made, fails with ENOENT instead of looping', () => {
  if (!existsSync('/proc/self')) {
    console.log('  SKIP makeDirs under /proc: no /proc on this system');
    return;
  }
  try {
    makeDirs(`/proc/mxsentry-test-${process.pid}/x/y`);
    assert.unreachable('made under /proc');
  } catch (err) {
    assert.is((err as NodeJS.ErrnoException).code, 'ENOENT', String(err));
  }
});

s.run();
