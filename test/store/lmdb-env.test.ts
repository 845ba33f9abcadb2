// Tests for the LMDB environment: opening (directories, node id, schema version, bad files), the
// write boundary (rollback, caller errors, closed environment) and lmdb error translation.
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { open as openLmdb } from 'lmdb';
import { makeImmutable } from '../helpers/immutable-file.js';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { StoreError } from '../../src/util/errors.js';
import { createSilentLogger } from '../../src/util/logger.js';
import { CallerError, LmdbEnv, translateLmdbError } from '../../src/store/lmdb-env.js';
import { encodeMetaValue } from '../../src/store/record-codec.js';
import { capturingLogger } from '../helpers/capturing-logger.js';

const s = suite('store/lmdb-env');
const logger = createSilentLogger();
const dirs: string[] = [];
const envs: LmdbEnv[] = [];

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'mxsentry-env-'));
  dirs.push(d);
  return d;
}

async function openEnv(dataDir: string, mapSizeBytes?: number): Promise<LmdbEnv> {
  const env = await LmdbEnv.open({ dataDir, logger, mapSizeBytes });
  envs.push(env);
  return env;
}

/** Creates a store in dataDir holding `records` (one write transaction) and closes it; returns its data file's path. */
async function closedStoreWith(dataDir: string, records: readonly (readonly [string, Buffer])[]): Promise<string> {
  const env = await openEnv(dataDir);
  await env.write('test', (tx) => {
    for (const [key, value] of records) tx.put(env.triplets, key, value);
  }, { grows: true });
  await env.close();
  return join(dataDir, 'greylist', 'data.mdb');
}

/** The one record `k` = `v`. */
const ONE_RECORD = [['k', Buffer.from('v')]] as const;

async function rejectsWith(p: Promise<unknown>, code: string): Promise<StoreError> {
  try {
    await p;
  } catch (err) {
    assert.instance(err, StoreError, String(err));
    assert.is((err as StoreError).code, code);
    return err as StoreError;
  }
  assert.unreachable(`expected ${code}`);
  throw new Error('unreachable');
}

s.after.each(async () => {
  for (const e of envs.splice(0)) await e.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

s('translateLmdbError maps lmdb and errno codes to stable StoreError codes', () => {
  const withCode = (message: string, code: number | string): Error => Object.assign(new Error(message), { code });
  const cases: Array<[unknown, string]> = [
    [withCode('MDB_MAP_FULL: Environment mapsize limit reached', -30792), 'STORE_ERR_FULL'],
    [withCode('No space left on device', 28), 'STORE_ERR_FULL'],
    [withCode('MDB_CORRUPTED: Located page was wrong type', -30796), 'STORE_ERR_CORRUPT'],
    [withCode('MDB_PANIC: Update of meta page failed or environment had fatal error', -30795), 'STORE_ERR_CORRUPT'],
    [withCode('MDB_INVALID: File is not an LMDB file', -30793), 'STORE_ERR_CORRUPT'],
    [new Error('The environment is already closed.'), 'STORE_ERR_CLOSED'],
    [new Error('Can not renew a transaction from a closed database'), 'STORE_ERR_CLOSED'],
    [new Error('Key is larger than maximum key size (1978)'), 'STORE_ERR_INVALID'],
    [withCode('Input/output error', 5), 'STORE_ERR_IO'],
    ['a string', 'STORE_ERR_IO'],
  ];
  for (const [input, code] of cases) {
    const out = translateLmdbError(input, 'testing');
    assert.instance(out, StoreError);
    assert.is(out.code, code, String(input));
    assert.is(out.cause, input);
    assert.match(out.message, /^testing: /);
  }
  const own = new StoreError('STORE_ERR_FULL', 'x');
  assert.is(translateLmdbError(own, 'testing'), own, 'StoreErrors pass through unchanged');
});

s('open creates <dataDir>/greylist (mkdir -p) and keeps the node id', async () => {
  const dataDir = join(tempDir(), 'var', 'lib', 'mxsentry');
  const env = await openEnv(dataDir);
  assert.is(env.path, join(dataDir, 'greylist'));
  assert.ok(existsSync(join(dataDir, 'greylist', 'data.mdb')));
  const id = env.nodeId;
  await env.close();
  const again = await openEnv(dataDir);
  assert.is(again.nodeId, id);
});

s('a full filesystem: a new store (or a missing lock file) is refused with a message, not a SIGBUS; an existing one opens', async () => {
  const dataDir = tempDir();
  const full = (): number => 200 * 1024;
  // LMDB would map a sparse lock file and fault on its first write: refused before that, with the cause.
  const err = await rejectsWith(LmdbEnv.open({ dataDir, logger, freeBytes: full }), 'STORE_ERR_OPEN');
  assert.match(err.message, 'has 200 KiB free');
  assert.match(err.message, 'data and lock files');
  assert.not.ok(existsSync(join(dataDir, 'greylist', 'data.mdb')), 'nothing was made');
  // A store made while there was room opens on the full disk (its lock file has its blocks).
  await closedStoreWith(dataDir, ONE_RECORD);
  const env = await LmdbEnv.open({ dataDir, logger, freeBytes: full });
  envs.push(env);
  assert.ok(env.triplets.get('k'));
  await env.close();
  // Its lock file moved aside: LMDB would make a new sparse one, so it is refused again.
  rmSync(join(dataDir, 'greylist', 'lock.mdb'));
  assert.match((await rejectsWith(LmdbEnv.open({ dataDir, logger, freeBytes: full }), 'STORE_ERR_OPEN')).message, 'its lock file');
  assert.ok(await LmdbEnv.open({ dataDir, logger, freeBytes: () => 10 << 20 }).then((e) => (envs.push(e), true)));
});

s('create: false opens an existing environment but never makes one (STORE_ERR_NOT_FOUND, nothing on disk)', async () => {
  const dataDir = join(tempDir(), 'data');
  const err = await rejectsWith(LmdbEnv.open({ dataDir, logger, create: false }), 'STORE_ERR_NOT_FOUND');
  assert.match(err.message, join(dataDir, 'greylist'));
  assert.not.ok(existsSync(dataDir), 'not even the directory was created');
  mkdirSync(join(dataDir, 'greylist'), { recursive: true });
  writeFileSync(join(dataDir, 'greylist', 'data.mdb'), '');
  await rejectsWith(LmdbEnv.open({ dataDir, logger, create: false }), 'STORE_ERR_NOT_FOUND');
  const created = await openEnv(join(dataDir, 'fresh'));
  const id = created.nodeId;
  await created.close();
  const reopened = await LmdbEnv.open({ dataDir: join(dataDir, 'fresh'), logger, create: false });
  assert.is(reopened.nodeId, id);
  await reopened.close();
});

s('open refuses an environment written by a newer schema', async () => {
  const dataDir = tempDir();
  const env = await openEnv(dataDir);
  await env.write('test: future schema', (tx) => tx.put(env.meta, 'schemaVersion', encodeMetaValue(99)), { grows: true });
  await env.close();
  const err = await rejectsWith(LmdbEnv.open({ dataDir, logger }), 'STORE_ERR_OPEN');
  assert.match(err.message, 'schema version 99');
});

s('open reports a file that is not an LMDB environment as STORE_ERR_OPEN', async () => {
  const dataDir = tempDir();
  mkdirSync(join(dataDir, 'greylist'));
  writeFileSync(join(dataDir, 'greylist', 'data.mdb'), Buffer.alloc(16384, 0x5a));
  const err = await rejectsWith(LmdbEnv.open({ dataDir, logger }), 'STORE_ERR_OPEN');
  assert.match(err.message, join(dataDir, 'greylist'));
});

s('open refuses truncated or damaged data files (which crash lmdb-js natively) with STORE_ERR_OPEN', async () => {
  const dataDir = tempDir();
  const file = await closedStoreWith(dataDir, ONE_RECORD);
  const good = readFileSync(file);
  const pageSize = good.readUInt32LE(48);
  const damagedSecondMeta = Buffer.from(good);
  damagedSecondMeta.writeUInt32LE(0, pageSize + 24);
  const variants: Array<[string, Buffer]> = [
    ['100 bytes', good.subarray(0, 100)],
    ['one page', good.subarray(0, pageSize)],
    ['bad second meta', damagedSecondMeta],
    ['wrong version', Buffer.concat([good.subarray(0, 28), Buffer.from([9, 0, 0, 0]), good.subarray(32)])],
  ];
  for (const [what, bytes] of variants) {
    writeFileSync(file, bytes);
    const err = await rejectsWith(LmdbEnv.open({ dataDir, logger }), 'STORE_ERR_OPEN');
    assert.match(err.message, file, what);
  }
  writeFileSync(file, good);
  const restored = await openEnv(dataDir);
  assert.equal(restored.read('test', () => restored.triplets.get('k')), Buffer.from('v'));
});

s('open refuses a data file cut short of the pages its last transaction uses (SIGBUS otherwise)', async () => {
  const dataDir = tempDir();
  const file = await closedStoreWith(dataDir, Array.from({ length: 2000 }, (_, i) => [`key-${i}-${'x'.repeat(40)}`, Buffer.alloc(100, i % 256)] as const));
  const good = readFileSync(file);
  const pageSize = good.readUInt32LE(48);
  assert.ok(good.length > 20 * pageSize, `a store of ${good.length} bytes`);
  writeFileSync(file, good.subarray(0, good.length - 2 * pageSize));
  const err = await rejectsWith(LmdbEnv.open({ dataDir, logger }), 'STORE_ERR_OPEN');
  assert.match(err.message, 'truncated');
  assert.match(err.message, 'move it away to start empty');
  writeFileSync(file, good);
  const restored = await openEnv(dataDir);
  assert.ok(restored.read('test', () => restored.triplets.get(`key-1999-${'x'.repeat(40)}`)));
});

/**
 * A store of 500 triplets whose newer meta page counts three pages more than its data file holds:
 * the state LMDB leaves when pages taken and freed in one transaction stay unwritten (seen on a live
 * store). Nothing the trees use is missing. Returns the data file's path.
 */
async function soundShortStore(dataDir: string): Promise<string> {
  const file = await closedStoreWith(dataDir, Array.from({ length: 500 }, (_, i) => [`key-${i}`, Buffer.alloc(100, i % 256)] as const));
  const bytes = readFileSync(file);
  const pageSize = bytes.readUInt32LE(48);
  const newer = bytes.readBigUInt64LE(152) >= bytes.readBigUInt64LE(pageSize + 152) ? 0 : pageSize;
  const lastPage = bytes.readBigUInt64LE(newer + 144);
  assert.is(BigInt(bytes.length), (lastPage + 1n) * BigInt(pageSize), 'a fresh file ends at its last page');
  bytes.writeBigUInt64LE(lastPage + 3n, newer + 144);
  writeFileSync(file, bytes);
  return file;
}

s('open accepts a sound data file that ends before its last counted page (pages freed unwritten)', async () => {
  // The read-through must find nothing missing, and the store must open, read and take a write.
  const dataDir = tempDir();
  await soundShortStore(dataDir);
  const reopened = await openEnv(dataDir);
  assert.equal(reopened.read('test', () => reopened.triplets.get('key-499')), Buffer.alloc(100, 499 % 256));
  await reopened.write('test', (tx) => tx.put(reopened.triplets, 'after', Buffer.from('w')), { grows: true });
  assert.equal(reopened.read('test', () => reopened.triplets.get('after')), Buffer.from('w'));
  await reopened.close();
});

/** Makes `file` (or a directory) unwritable even for root (chattr +i there); returns the undo, or null after a printed skip (a failure under CI=true) when it cannot. */
function makeUnwritable(file: string, testName: string): (() => void) | null {
  if (process.getuid?.() !== 0) {
    const mode = statSync(file).mode & 0o7777;
    chmodSync(file, mode & ~0o222);
    return () => chmodSync(file, mode);
  }
  return makeImmutable(file, testName);
}

s('a data file ending before its last counted page that cannot be read through is not called unusable', async () => {
  // Measured: a sound short file (as in the test above) the check process could not open for
  // writing was refused as "not a usable LMDB data file (truncated ...): restore it or move it away
  // to start empty", i.e. the admin was told to throw a sound greylist away over a permission.
  const dataDir = tempDir();
  const file = await soundShortStore(dataDir);
  const undo = makeUnwritable(file, 'lmdb-env short file not read through');
  if (!undo) return;
  let err: StoreError;
  try {
    err = await rejectsWith(LmdbEnv.open({ dataDir, logger, create: false, verify: true }), 'STORE_ERR_OPEN');
  } finally {
    undo();
  }
  assert.match(err.message, 'did not finish');
  assert.not.match(err.message, 'not a usable');
  assert.not.match(err.message, 'move it away');
  const reopened = await openEnv(dataDir);
  assert.equal(reopened.read('test', () => reopened.triplets.get('key-499')), Buffer.alloc(100, 499 % 256));
});

s('verify: a store with damaged pages is refused (STORE_ERR_OPEN) instead of aborting this process in LMDB', async () => {
  const dataDir = tempDir();
  const file = await closedStoreWith(dataDir, Array.from({ length: 3000 }, (_, i) => [`192.0.2.0/s${i}@example.org/r${i}@example.com`, Buffer.alloc(60, i % 256)] as const));
  // A healthy store passes the check.
  const checked = await LmdbEnv.open({ dataDir, logger, verify: true });
  await checked.close();
  // 80 KiB of pseudo-random bytes over the pages after the two meta pages and the first data pages.
  const bytes = Buffer.concat(Array.from({ length: 2560 }, (_, n) => createHash('sha256').update(`damage-${n}`).digest()));
  const damaged = readFileSync(file);
  bytes.copy(damaged, 3 * damaged.readUInt32LE(48));
  writeFileSync(file, damaged);
  const err = await rejectsWith(LmdbEnv.open({ dataDir, logger, verify: true }), 'STORE_ERR_OPEN');
  assert.match(err.message, `${file} is damaged`);
  assert.match(err.message, 'move it away to start empty');
});

s('open names a data.mdb or lock.mdb that is not a regular file, and never calls a sound data file damaged', async () => {
  const dataDir = tempDir();
  const file = await closedStoreWith(dataDir, ONE_RECORD);
  const dir = join(dataDir, 'greylist');
  const lock = join(dir, 'lock.mdb');
  // lock.mdb a directory: measured, the check process died (SIGSEGV) and the message told the
  // admin to move the sound data file away, i.e. to throw the greylist away.
  rmSync(lock);
  mkdirSync(lock);
  const lockErr = await rejectsWith(LmdbEnv.open({ dataDir, logger, verify: true }), 'STORE_ERR_OPEN');
  assert.match(lockErr.message, `${lock} is not a regular file`);
  assert.not.match(lockErr.message, 'damaged');
  assert.not.match(lockErr.message, 'move it away');
  rmSync(lock, { recursive: true });
  const good = readFileSync(file);
  // data.mdb a directory: measured "EISDIR: illegal operation on a directory, read", no path.
  rmSync(file);
  mkdirSync(file);
  const dataErr = await rejectsWith(LmdbEnv.open({ dataDir, logger, verify: true }), 'STORE_ERR_OPEN');
  assert.match(dataErr.message, `${file} is not a regular file`);
  rmSync(file, { recursive: true });
  writeFileSync(file, good);
  const restored = await openEnv(dataDir);
  assert.equal(restored.read('test', () => restored.triplets.get('k')), Buffer.from('v'));
});

s('open says a meta page is damaged when it counts pages beyond its own map size (not "truncated")', async () => {
  const dataDir = tempDir();
  const file = await closedStoreWith(dataDir, ONE_RECORD);
  const bytes = readFileSync(file);
  const pageSize = bytes.readUInt32LE(48);
  const newer = bytes.readBigUInt64LE(152) >= bytes.readBigUInt64LE(pageSize + 152) ? 0 : pageSize;
  // Random bytes over the last-page field, as measured: "truncated: 1122304 bytes, its last
  // transaction counts 21374528692378314997760".
  bytes.writeBigUInt64LE(0x1234_5678_9abc_def0n, newer + 144);
  writeFileSync(file, bytes);
  const err = await rejectsWith(LmdbEnv.open({ dataDir, logger, verify: true }), 'STORE_ERR_OPEN');
  assert.match(err.message, `meta page ${newer === 0 ? 0 : 1} is damaged`);
  assert.not.match(err.message, 'truncated');
});

s('dataFileProblem: the data file removed, replaced or its directory made unusable under the open environment', async () => {
  // Measured: `rm -rf` of the data dir under the running daemon logged nothing; it went on writing
  // to the deleted file, and the greylist was gone after the next restart.
  const dataDir = tempDir();
  const { logger: captured, lines } = capturingLogger();
  const env = await LmdbEnv.open({ dataDir, logger: captured });
  envs.push(env);
  await env.write('test', (tx) => tx.put(env.triplets, 'k', Buffer.from('v')), { grows: true });
  assert.is(env.dataFileProblem(), undefined);
  const dir = join(dataDir, 'greylist');
  const file = join(dir, 'data.mdb');
  // Replaced: a copy put in its place is another file; the environment still writes the old one.
  copyFileSync(file, join(dir, 'copy'));
  renameSync(join(dir, 'copy'), file);
  assert.match(env.dataFileProblem() ?? '', `${file} was replaced`);
  rmSync(dir, { recursive: true });
  assert.match(env.dataFileProblem() ?? '', `${file} was removed`);
  // The open environment keeps working (decisions go on), and closing it says what is lost.
  await env.write('test', (tx) => tx.put(env.triplets, 'k2', Buffer.from('v')), { grows: true });
  await env.close();
  assert.is(env.dataFileProblem(), undefined, 'nothing to report once closed');
  const last = lines().filter((l) => l.level === 'error').pop();
  assert.match(String(last?.msg), 'greylist store closed');
  assert.match(String(last?.problem), 'was removed');
  assert.match(String(last?.problem), 'lost');
});

s('dataFileProblem: a directory the daemon can no longer write is reported (the next start would fail)', async () => {
  if (process.getuid?.() === 0) {
    // root ignores permission bits; simulate with a directory swapped for a non-directory instead.
    const dataDir = tempDir();
    const env = await openEnv(dataDir);
    rmSync(join(dataDir, 'greylist'), { recursive: true });
    writeFileSync(join(dataDir, 'greylist'), 'not a directory');
    assert.match(env.dataFileProblem() ?? '', 'was removed');
    return;
  }
  const dataDir = tempDir();
  const env = await openEnv(dataDir);
  const dir = join(dataDir, 'greylist');
  chmodSync(dir, 0o500);
  try {
    assert.match(env.dataFileProblem() ?? '', /not writable|EACCES/);
  } finally {
    chmodSync(dir, 0o700);
  }
  assert.is(env.dataFileProblem(), undefined);
});

s('closing with a data dir it can no longer write says so, without calling the greylist lost', async () => {
  // Measured: the close line read "its data file was gone from its path, so what it held is lost"
  // for a directory made unwritable, whose data file is whole and opens again once writable.
  const dataDir = tempDir();
  const { logger: captured, lines } = capturingLogger();
  const env = await LmdbEnv.open({ dataDir, logger: captured });
  await env.write('test', (tx) => tx.put(env.triplets, 'k', Buffer.from('v')), { grows: true });
  const dir = join(dataDir, 'greylist');
  const undo = makeUnwritable(dir, 'lmdb-env unwritable data dir at close');
  if (!undo) {
    await env.close();
    return;
  }
  try {
    assert.match(env.dataFileProblem() ?? '', 'no longer readable and writable');
    await env.close();
  } finally {
    undo();
  }
  const closing = lines().filter((l) => String(l.msg).startsWith('greylist store closed')).pop();
  assert.is(closing?.level, 'error');
  assert.match(String(closing?.problem), 'no longer readable and writable');
  assert.not.match(String(closing?.msg), 'lost');
  const reopened = await openEnv(dataDir);
  assert.equal(reopened.read('test', () => reopened.triplets.get('k')), Buffer.from('v'));
});

s('an empty (0-byte) data file is started over with a warning, not silently', async () => {
  // Measured: a data.mdb truncated to 0 bytes under a stopped daemon came back as a new empty store
  // with a new node id and only "greylist store opened" in the log.
  const dataDir = tempDir();
  const file = await closedStoreWith(dataDir, ONE_RECORD);
  writeFileSync(file, Buffer.alloc(0));
  const { logger: captured, lines } = capturingLogger();
  const fresh = await LmdbEnv.open({ dataDir, logger: captured, verify: true });
  envs.push(fresh);
  const warning = lines().find((l) => l.level === 'warn');
  assert.ok(warning, 'a warning line');
  assert.match(String(warning?.msg), 'empty');
  assert.is(warning?.file, file);
  // An empty file the open then fails on (here: unwritable, so LMDB cannot write its meta pages)
  // gets the open's error only, not "started a new, empty store", which did not happen.
  const failing = tempDir();
  mkdirSync(join(failing, 'greylist'), { recursive: true });
  const emptyFile = join(failing, 'greylist', 'data.mdb');
  writeFileSync(emptyFile, Buffer.alloc(0));
  const undo = makeUnwritable(emptyFile, 'lmdb-env empty file that cannot be written');
  if (undo) {
    const { logger: failLogger, lines: failLines } = capturingLogger();
    try {
      await rejectsWith(LmdbEnv.open({ dataDir: failing, logger: failLogger, verify: true }), 'STORE_ERR_OPEN');
    } finally {
      undo();
    }
    assert.equal(failLines().filter((l) => String(l.msg).includes('empty')), []);
  }
  // A first start (no file at all) is no reason to warn.
  const { logger: quiet, lines: quietLines } = capturingLogger();
  envs.push(await LmdbEnv.open({ dataDir: tempDir(), logger: quiet, verify: true }));
  assert.is(quietLines().filter((l) => l.level === 'warn').length, 0);
});

s('open reports an unusable directory as STORE_ERR_OPEN with the path and reason', async () => {
  const base = tempDir();
  writeFileSync(join(base, 'plain-file'), 'x');
  const err = await rejectsWith(LmdbEnv.open({ dataDir: join(base, 'plain-file'), logger }), 'STORE_ERR_OPEN');
  assert.match(err.message, join(base, 'plain-file', 'greylist'));
  assert.match(err.message, /ENOTDIR|EEXIST/);
});

s('write: a throwing callback rolls back everything it wrote; CallerError passes the original through', async () => {
  const env = await openEnv(tempDir());
  const original = new Error('decide failed');
  try {
    await env.write(
      'test',
      (tx) => {
        tx.put(env.triplets, 'k', Buffer.from('v'));
        tx.put(env.replog, 1, Buffer.from('v'));
        throw new CallerError(original);
      },
      { grows: true },
    );
    assert.unreachable('should reject');
  } catch (err) {
    assert.is(err, original);
  }
  assert.is(env.read('test', () => env.triplets.get('k')), undefined);
  assert.is(env.read('test', () => env.replog.get(1)), undefined);
  const ok = await env.write('test', (tx) => {
    tx.put(env.triplets, 'k', Buffer.from('v'));
    return 'written';
  }, { grows: true });
  assert.is(ok, 'written');
  assert.equal(env.read('test', () => env.triplets.get('k')), Buffer.from('v'));
});

s('usedBytes grows with data and shrinks when it is deleted', async () => {
  const env = await openEnv(tempDir());
  const empty = env.usedBytes();
  await env.write('test', (tx) => {
    for (let i = 0; i < 2000; i++) tx.put(env.triplets, `key-${i}`, Buffer.alloc(100, 1));
  }, { grows: true });
  const full = env.usedBytes();
  assert.ok(full > empty + 100_000, `${full} > ${empty}`);
  await env.write('test', (tx) => {
    for (let i = 0; i < 2000; i++) tx.remove(env.triplets, `key-${i}`);
  }, { grows: false });
  assert.ok(env.usedBytes() < full / 4);
  await env.flush();
});

s('a write over the size limit is rolled back with STORE_ERR_FULL', async () => {
  const env = await openEnv(tempDir(), 64 * 1024);
  await rejectsWith(
    env.write('test', (tx) => {
      for (let i = 0; i < 1000; i++) tx.put(env.triplets, `key-${i}`, Buffer.alloc(100, 1));
    }, { grows: true }),
    'STORE_ERR_FULL',
  );
  assert.is(env.read('test', () => env.triplets.get('key-0')), undefined);
  assert.ok(env.usedBytes() <= 64 * 1024);
});

/** What a change to a file shows: its bytes, size and modification time. */
function fingerprint(file: string): string {
  const st = statSync(file, { bigint: true });
  return `${createHash('sha256').update(readFileSync(file)).digest('hex')} ${st.size} ${st.mtimeNs}`;
}

s('readOnly: a verified store is read and data.mdb left as it was; writes rejected; a missing node id not stored', async () => {
  const dataDir = tempDir();
  const file = await closedStoreWith(dataDir, ONE_RECORD);
  const before = fingerprint(file);
  const env = await LmdbEnv.open({ dataDir, logger, verify: true, readOnly: true });
  envs.push(env);
  assert.equal(env.read('test', () => env.triplets.get('k')), Buffer.from('v'));
  assert.ok(env.usedBytes() > 0);
  const refused = await rejectsWith(env.write('test', (tx) => tx.put(env.triplets, 'k2', Buffer.from('w')), { grows: true }), 'STORE_ERR_INVALID');
  assert.match(refused.message, 'opened read-only');
  await env.close();
  assert.is(fingerprint(file), before, 'data.mdb unchanged (bytes, size, mtime)');
  // Never a new store.
  const none = join(tempDir(), 'none');
  await rejectsWith(LmdbEnv.open({ dataDir: none, logger, readOnly: true }), 'STORE_ERR_NOT_FOUND');
  assert.not.ok(existsSync(none));
  // A store without a node id (as the first open stores one, only a hand-made one lacks it).
  const rw = await openEnv(dataDir);
  await rw.write('test', (tx) => tx.remove(rw.meta, 'nodeId'), { grows: false });
  await rw.close();
  const bare = fingerprint(file);
  const ids: string[] = [];
  for (let i = 0; i < 2; i++) {
    const ro = await LmdbEnv.open({ dataDir, logger, verify: true, readOnly: true });
    ids.push(ro.nodeId);
    await ro.close();
  }
  assert.match(ids[0]!, /^[0-9a-f]{16}$/);
  assert.is.not(ids[0], ids[1], 'an id for one open only');
  assert.is(fingerprint(file), bare);
});

s('readOnly: a store whose named databases were never all created reads as empty there, as the read-write open did, and is left as it was', async () => {
  // A first start killed between LMDB's open (which writes data.mdb's meta pages) and the creation
  // of its databases: the read-write open made them; read-only they are missing. Built with lmdb
  // itself, since LmdbEnv always makes all five.
  const none = tempDir();
  mkdirSync(join(none, 'greylist'), { mode: 0o700 });
  await openLmdb({ path: join(none, 'greylist'), maxDbs: 8 }).close();
  // Killed after the first database: it holds a record, the other four are missing.
  const some = tempDir();
  mkdirSync(join(some, 'greylist'), { mode: 0o700 });
  const root = openLmdb({ path: join(some, 'greylist'), maxDbs: 8 });
  const triplets = root.openDB<Buffer, string>({ name: 'triplets', encoding: 'binary' });
  await triplets.put('k', Buffer.from('v'));
  await root.close();
  for (const [dataDir, records] of [[none, 0], [some, 1]] as const) {
    const file = join(dataDir, 'greylist', 'data.mdb');
    const before = fingerprint(file);
    const env = await LmdbEnv.open({ dataDir, logger, verify: true, readOnly: true });
    envs.push(env);
    assert.match(env.nodeId, /^[0-9a-f]{16}$/);
    assert.is(env.read('test', () => Array.from(env.triplets.getRange({})).length), records);
    assert.is(env.read('test', () => env.clients.get('x')), undefined);
    assert.equal(env.read('test', () => Array.from(env.replog.getKeys({ reverse: true, limit: 1 }))), []);
    assert.ok(env.usedBytes() >= 0);
    await rejectsWith(env.write('test', (tx) => tx.put(env.meta, 'x', Buffer.from('y')), { grows: false }), 'STORE_ERR_INVALID');
    await env.close();
    assert.is(fingerprint(file), before, 'data.mdb unchanged');
  }
});

s('after close, writes and reads fail with STORE_ERR_CLOSED without touching lmdb', async () => {
  const env = await openEnv(tempDir());
  await env.close();
  assert.ok(env.isClosed());
  await rejectsWith(env.write('test', (tx) => tx.put(env.triplets, 'k', Buffer.from('v')), { grows: true }), 'STORE_ERR_CLOSED');
  try {
    env.read('test', () => env.triplets.get('k'));
    assert.unreachable('should throw');
  } catch (err) {
    assert.is((err as StoreError).code, 'STORE_ERR_CLOSED');
  }
  await env.close();
  await env.flush();
});

s.run();
