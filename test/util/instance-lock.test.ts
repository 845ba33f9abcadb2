// Tests for the one-daemon-per-data-dir lock: a second holder is refused, release frees it, other
// directories are independent, the same directory named by another path is the same lock, and a
// socket file left by a killed daemon does not block the next start.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LOCK_SOCKET, lockDataDir, type InstanceLock } from '../../src/util/instance-lock.js';
import { loggedHook } from '../helpers/hook-errors.js';

const s = suite('util/instance-lock');

let dir = '';
s.before(loggedHook(() => {
  dir = mkdtempSync(join(tmpdir(), 'mxsentry-lock-'));
  mkdirSync(join(dir, 'a'));
  mkdirSync(join(dir, 'b'));
  symlinkSync(join(dir, 'a'), join(dir, 'a-link'));
}));
s.after(() => {
  rmSync(dir, { recursive: true, force: true });
});

s('a held data dir is busy for a second taker, also by another path; release frees it', async () => {
  const first = await lockDataDir(join(dir, 'a'));
  assert.ok(first !== 'busy');
  assert.ok(statSync(join(dir, 'a', LOCK_SOCKET)).isSocket(), 'a unix socket in the data dir, which only its writers can create');
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

s('the socket file of a killed holder is stale: the next taker replaces it', async () => {
  const data = join(dir, 'killed');
  mkdirSync(data);
  // Another process takes the lock and is killed with SIGKILL: its socket file stays behind.
  const script = `import(${JSON.stringify(new URL('../../src/util/instance-lock.js', import.meta.url).href)}).then(async (m) => { await m.lockDataDir(${JSON.stringify(data)}); process.kill(process.pid, 'SIGKILL'); });`;
  let signal: string | undefined;
  try {
    execFileSync(process.execPath, ['-e', script], { stdio: 'ignore' });
  } catch (err) {
    signal = (err as { signal?: string }).signal;
  }
  assert.is(signal, 'SIGKILL', 'the holder ended by SIGKILL');
  assert.ok(existsSync(join(data, LOCK_SOCKET)), 'the killed holder left its socket file');
  const lock = await lockDataDir(data);
  assert.ok(lock !== 'busy', 'a stale socket file does not block the start');
  assert.is(await lockDataDir(data), 'busy');
  (lock as InstanceLock).release();
});

s('two takers at once on a stale socket file: exactly one gets the lock', async () => {
  const data = join(dir, 'race');
  mkdirSync(data);
  const script = `import(${JSON.stringify(new URL('../../src/util/instance-lock.js', import.meta.url).href)}).then(async (m) => { await m.lockDataDir(${JSON.stringify(data)}); process.kill(process.pid, 'SIGKILL'); });`;
  try {
    execFileSync(process.execPath, ['-e', script], { stdio: 'ignore' });
  } catch {
    // The holder ends by SIGKILL, as in the test above; its socket file stays behind.
  }
  assert.ok(existsSync(join(data, LOCK_SOCKET)), 'stale socket file left');
  const got = await Promise.all([lockDataDir(data), lockDataDir(data), lockDataDir(data)]);
  const held = got.filter((l): l is InstanceLock => l !== 'busy');
  assert.is(held.length, 1, 'one holder, the others busy: neither removes the socket of the one that won');
  assert.is(await lockDataDir(data), 'busy', 'the winner still holds a socket file that answers');
  for (const l of held) l.release();
});

s('a data dir too long for a unix socket path is an error, not a socket created elsewhere', async () => {
  const top = join(dir, 'long');
  let data = top;
  while (Buffer.byteLength(join(data, LOCK_SOCKET)) <= 107) data = join(data, 'a-rather-long-directory-name');
  mkdirSync(data, { recursive: true });
  let error: unknown;
  try {
    await lockDataDir(data);
  } catch (err) {
    error = err;
  }
  assert.match(String(error), /longer than 107 bytes \(the unix socket limit\): use a shorter data-dir/);
  // Node would bind a path cut at 107 bytes: some shorter name inside this tree.
  const sockets = (readdirSync(top, { recursive: true }) as string[]).filter((f) => statSync(join(top, f)).isSocket());
  assert.equal(sockets, []);
});

s.run();
