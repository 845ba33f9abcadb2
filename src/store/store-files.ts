// Checks of the greylist store's files before and after LMDB opens them (lmdb-env.ts is the only
// caller): that a store exists, that lock.mdb is a file this user can write, that data.mdb's meta
// pages are sound (lmdb-js crashes the process on a damaged one), and after a root open, that the
// files LMDB made belong to the store folder's owner.
import { accessSync, chownSync, closeSync, constants as fsConstants, fstatSync, openSync, readSync, statSync, type Stats } from 'node:fs';
import { dirname, join } from 'node:path';
import { StoreError } from '../util/errors.js';
import { StoreErrorCode } from './store-error-code.js';

/**
 * Throws STORE_ERR_NOT_FOUND unless `path` holds a non-empty data file (LMDB writes its meta pages
 * at creation, so an empty file was never an environment). A directory that cannot be searched is
 * STORE_ERR_OPEN, so "permission denied" is not reported as "no store here".
 */
export function checkEnvExists(path: string): void {
  const file = join(path, 'data.mdb');
  try {
    if (statSync(file).size === 0) throw Object.assign(new Error(`${file} is empty`), { code: 'ENOENT' });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new StoreError(StoreErrorCode.NOT_FOUND, `no greylist store at ${path} (no ${file})`, { cause: err });
    }
    throw new StoreError(StoreErrorCode.OPEN, `cannot read ${file} (${code ?? 'error'})`, { cause: err });
  }
}

/** LMDB's meta page layout (mdb.c, MDB_meta after the 24-byte page header of lmdb-js's LMDB 1.0). */
const MDB_MAGIC = 0xbeefc0de;
const MDB_DATA_VERSION = 2;
const META_MAGIC_OFFSET = 24;
const META_VERSION_OFFSET = 28;
const META_MAP_SIZE_OFFSET = 40;
const META_PAGE_SIZE_OFFSET = 48;
/** mm_last_pg and mm_txnid of a meta page (u64 LE), after the free and main DB records. */
const META_LAST_PAGE_OFFSET = 144;
const META_TXNID_OFFSET = 152;

/**
 * Refuses a lock.mdb that is not a regular file (LMDB's native code faults on a directory there,
 * which the read-through would report as damage to the sound data file). The lock file holds no
 * greylist data: LMDB rebuilds it when no process has the environment open. `readOnlyFs`: a
 * read-only open on a read-only filesystem, which LMDB makes without writing the lock file.
 */
export function checkLockFile(file: string, opts: { readOnlyFs?: boolean } = {}): void {
  let kind: string;
  try {
    const st = statSync(file);
    if (st.isFile()) {
      // On a read-only filesystem a read-only open goes without the lock file (lmdb-env.ts).
      if (!opts.readOnlyFs) checkLockFileAccess(file, st);
      return;
    }
    kind = nonFileKind(st);
  } catch (err) {
    if (err instanceof StoreError) throw err;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new StoreError(StoreErrorCode.OPEN, `cannot check ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
  }
  throw new StoreError(
    StoreErrorCode.OPEN,
    `${file} is not a regular file (${kind}): remove it while no mxsentry runs; it holds no greylist data (data.mdb does) and LMDB makes a new one`,
  );
}

/**
 * LMDB writes its lock file to open a store, and a lock file this user may not write makes it fail
 * in ways that look like a damaged data file (the check process dies). Said for what it is: a
 * lock.mdb left by a command run as another user (root), or a store of another user altogether.
 */
function checkLockFileAccess(file: string, st: Stats): void {
  try {
    accessSync(file, fsConstants.R_OK | fsConstants.W_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    const uid = process.getuid?.();
    // A lock file of the store folder's owner is no stray: the whole store is that user's (a command
    // run as another user than the daemon's), and giving the lock file away would not help.
    const folderUid = statSync(dirname(file), { throwIfNoEntry: false })?.uid;
    const fix = folderUid === st.uid ? `the store is uid ${st.uid}'s: open it as that user, or as root` : 'give lock.mdb to the mxsentry user (chown), or remove it while nothing uses the store';
    throw new StoreError(
      StoreErrorCode.OPEN,
      `${file} is not writable by this user (${code}; it belongs to uid ${st.uid}, mode ${(st.mode & 0o777).toString(8)}${uid === undefined ? '' : `, this process runs as uid ${uid}`}): LMDB must write it to open the store. The greylist (data.mdb) is not damaged: ${fix}`,
      { cause: err },
    );
  }
}

/**
 * After root opened a store that belongs to another user (an mxsentry command run by root beside
 * the daemon's DynamicUser), the files LMDB created go to the store folder's owner, so the daemon
 * can still open the store. Best effort: a failure here is no reason to fail the open.
 */
export function giveFilesToFolderOwner(path: string, files: readonly string[]): void {
  if (process.getuid?.() !== 0) return;
  try {
    const dir = statSync(path);
    if (dir.uid === 0) return;
    for (const name of files) {
      const st = statSync(join(path, name), { throwIfNoEntry: false });
      if (st && st.uid !== dir.uid) chownSync(join(path, name), dir.uid, dir.gid);
    }
  } catch {
    // Left as LMDB made them; the daemon's open then names a lock.mdb it cannot write.
  }
}

/** What a path that should be a regular file is instead, for the error naming it. */
function nonFileKind(st: Stats): string {
  return st.isDirectory() ? 'a directory' : 'a special file';
}

/**
 * Refuses a data file lmdb-js cannot open safely: its native code crashes the whole process
 * (SIGSEGV, measured with lmdb 3.5.6) on a truncated file or a damaged meta page, instead of
 * returning MDB_INVALID. Checks both meta pages' magic and version and that the file holds them.
 * A missing or empty file is fine (LMDB initialises it). Returns the file's size (0: missing or
 * empty, with `empty` set for an existing 0-byte file) and, when the file ends before the newest
 * transaction's last page, the bytes that page needs.
 */
export function checkDataFile(file: string): { bytes: number; shortOf?: bigint; empty?: true } {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { bytes: 0 };
    throw new StoreError(StoreErrorCode.OPEN, `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) {
      throw new StoreError(StoreErrorCode.OPEN, `${file} is not a regular file (${nonFileKind(st)}): put the store's data file back there, or remove it to start empty`);
    }
    if (st.size === 0) return { bytes: 0, empty: true };
    const bad = (why: string): never => {
      throw new StoreError(StoreErrorCode.OPEN, `${file} is not a usable LMDB data file (${why}): restore it or move it away to start empty`);
    };
    const head = Buffer.alloc(META_TXNID_OFFSET + 8);
    if (readSync(fd, head, 0, head.length, 0) < head.length) bad(`only ${fstatSync(fd).size} bytes`);
    const readMeta = (buf: Buffer, where: string): number => {
      if (buf.readUInt32LE(META_MAGIC_OFFSET) !== MDB_MAGIC) bad(`bad magic in ${where}`);
      if (buf.readUInt32LE(META_VERSION_OFFSET) !== MDB_DATA_VERSION) bad(`unsupported version ${buf.readUInt32LE(META_VERSION_OFFSET)} in ${where}`);
      return buf.readUInt32LE(META_PAGE_SIZE_OFFSET);
    };
    const pageSize = readMeta(head, 'meta page 0');
    if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) bad(`bad page size ${pageSize}`);
    const second = Buffer.alloc(META_TXNID_OFFSET + 8);
    if (readSync(fd, second, 0, second.length, pageSize) < second.length) bad(`truncated to ${fstatSync(fd).size} bytes`);
    readMeta(second, 'meta page 1');
    // The size is taken after the meta pages: a daemon writing the store meanwhile (the CLI reads a
    // live store) grows the file before it commits a meta page that needs the new pages, so a
    // size taken first could be older than the meta and look truncated.
    const size = fstatSync(fd).size;
    // The newer meta page counts the pages the data may use; a file ending before them may be cut short.
    const newer = head.readBigUInt64LE(META_TXNID_OFFSET) >= second.readBigUInt64LE(META_TXNID_OFFSET) ? 0 : 1;
    const current = newer === 0 ? head : second;
    const counted = (current.readBigUInt64LE(META_LAST_PAGE_OFFSET) + 1n) * BigInt(pageSize);
    // LMDB never allocates a page outside the map, so a meta page counting more is itself damaged
    // (random bytes over it), not a sign of a file cut short.
    const mapBytes = current.readBigUInt64LE(META_MAP_SIZE_OFFSET);
    if (counted > mapBytes) bad(`meta page ${newer} is damaged: its last transaction counts ${counted} bytes of pages, beyond its own map size of ${mapBytes}`);
    return BigInt(size) < counted ? { bytes: size, shortOf: counted } : { bytes: size };
  } finally {
    closeSync(fd);
  }
}
