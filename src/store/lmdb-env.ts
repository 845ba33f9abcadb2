// The one LMDB environment under <dataDir>/greylist and the one place lmdb errors become StoreErrors
// (translateLmdbError, after Knot Resolver's cdb_lmdb error translation). Opened by
// lmdb-greylist-store.ts; nothing outside src/store/ sees lmdb. It must not decide greylisting.
// Durability: lmdb-js's default batched async commits with overlappingSync. Every write of one event
// turn is one LMDB transaction run on lmdb's write thread; its fsync happens after the commit, off the
// main thread, so no policy decision waits for a disk flush. The last batch survives a process crash
// (the OS has the pages) and at most the last unflushed batch is lost on power loss. noSync is never
// used: it risks a corrupt file. flush() waits for the disk at shutdown.
import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import { join } from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { StoreError } from '../util/errors.js';
import { settledWithin } from '../util/settled-within.js';
import type { Logger } from '../util/logger.js';
import { makeDirs } from '../util/make-dirs.js';
import { encodeMetaValue } from './record-codec.js';
import { probeEnvironment } from './integrity-probe.js';
import { checkRoomToCreate, explainCommitFailure, filesystemFreeBytes } from './recovery-probe.js';
import { StoreErrorCode } from './store-error-code.js';
import { checkDataFile, checkEnvExists, checkLockFile, giveFilesToFolderOwner } from './store-files.js';
import { initMeta, STORE_SCHEMA_VERSION } from './store-meta.js';

/** Default size limit of the environment: 1 GiB (address space; the file grows as data is written). */
export const DEFAULT_MAP_SIZE_BYTES = 1024 * 1024 * 1024;

/** Smallest accepted size limit: the empty environment already uses a few pages. */
export const MIN_MAP_SIZE_BYTES = 64 * 1024;
const CLOSE_WAIT_MS = 5000; // longest wait at close for the last writes to be flushed and the environment closed

export { STORE_SCHEMA_VERSION } from './store-meta.js';

/**
 * Upper bound of new pages one small put can make the B-tree allocate (a split on every level of a
 * tree at most a few levels deep, a new root, free-list growth), before the value's own pages. Used
 * to skip the exact size measurement while the environment is far below its limit.
 */
const PAGE_BOUND_PER_PUT = 16;

/** Names of the databases in the environment (DESIGN.md s4). */
export type DbName = 'triplets' | 'clients' | 'replog' | 'cursors' | 'meta';

/** Thrown from inside a write callback to abort it and reject write() with `original`, untranslated. */
export class CallerError extends Error {
  constructor(readonly original: unknown) {
    super('caller callback failed');
  }
}

/** Options for LmdbEnv.open. */
export interface LmdbEnvOptions {
  /** The daemon's state directory; the environment lives in `<dataDir>/greylist`. */
  dataDir: string;
  logger: Logger;
  /**
   * Hard limit of the data in the environment, bytes (default 1 GiB, min 64 KiB). lmdb-js grows its
   * map on demand (its mdb_page_alloc resizes instead of returning MDB_MAP_FULL, and no option turns
   * that off), so the limit is enforced here: a write transaction that would leave more pages in use
   * than the limit is aborted with STORE_ERR_FULL, like MDB_MAP_FULL in plain LMDB. Deletes are
   * always allowed, so purging frees room.
   */
  mapSizeBytes?: number;
  /**
   * Create the environment when none exists (default true: the daemon starts with an empty store).
   * False for the admin's commands, which must act on the daemon's existing store, never on a new
   * empty one: a missing `<dataDir>/greylist/data.mdb` then rejects with STORE_ERR_NOT_FOUND.
   */
  create?: boolean;
  /**
   * Read the whole existing environment in a child process first (integrity-probe.ts) and refuse a
   * damaged one with STORE_ERR_OPEN, instead of letting LMDB abort this process on it (default
   * false; the daemon and the admin's commands set it). Costs a process start plus a full read.
   */
  verify?: boolean;
  /** Free bytes on the filesystem of a path (default: statfs); tests stand in a full disk. */
  freeBytes?: (path: string) => number | undefined;
  /**
   * Open with LMDB's read-only flag, for the admin's commands that only read (`check`, `greylist
   * list`): nothing done here can change data.mdb (lmdb-js gives a read-only database no write
   * methods, and write() rejects), the integrity probe reads without its write, and a missing node
   * id is not stored, and a named database the store lacks is read as the empty one a read-write
   * open would create. Implies `create: false`. LMDB still writes lock.mdb (its reader table).
   */
  readOnly?: boolean;
}

/** How long the integrity check of `verify` may take before the open goes on without it. */
const VERIFY_TIMEOUT_MS = 60_000;

/** Node errno values lmdb reports as positive codes. */
const ENOSPC = 28;
const EDQUOT = 122;
/** LMDB's own error codes (lmdb.h). */
const MDB_MAP_FULL = -30792;
const MDB_CORRUPTED = -30796;
const MDB_PANIC = -30795;
const MDB_INVALID = -30793;
const MDB_VERSION_MISMATCH = -30794;

/**
 * The error boundary: maps anything lmdb (or the file system under it) throws to a StoreError.
 * StoreErrors pass through unchanged. `operation` names what was being done, for the message.
 */
export function translateLmdbError(err: unknown, operation: string): StoreError {
  if (err instanceof StoreError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const code = (err as { code?: unknown } | null)?.code;
  const what = `${operation}: ${message}`;
  if (code === MDB_MAP_FULL || code === ENOSPC || code === EDQUOT || code === 'ENOSPC' || code === 'EDQUOT' || /MDB_MAP_FULL/.test(message)) {
    return new StoreError(StoreErrorCode.FULL, what, { cause: err });
  }
  if (code === MDB_CORRUPTED || code === MDB_PANIC || code === MDB_INVALID || code === MDB_VERSION_MISMATCH) {
    return new StoreError(StoreErrorCode.CORRUPT, what, { cause: err });
  }
  if (/closed/i.test(message)) return new StoreError(StoreErrorCode.CLOSED, what, { cause: err });
  if (/key (is )?(larger|too large)|key size/i.test(message)) return new StoreError(StoreErrorCode.INVALID, what, { cause: err });
  return new StoreError(StoreErrorCode.IO, what, { cause: err });
}

/**
 * Waits (one event-loop turn at most) for lmdb-js's real reason behind "Commit failed": it rejects
 * the write's promise with a generic error whose `commitError` promise carries the LMDB error.
 * Handling that promise here also keeps it from becoming an unhandled rejection.
 */
async function commitFailureReason(err: unknown): Promise<unknown> {
  const inner = (err as { commitError?: unknown } | null)?.commitError;
  if (!inner || typeof (inner as Promise<unknown>).then !== 'function') return err;
  const reason = await Promise.race([
    (inner as Promise<unknown>).then(
      () => err,
      (e: unknown) => e,
    ),
    new Promise<unknown>((resolve) => setImmediate(() => resolve(err))),
  ]);
  return reason;
}

/** The open environment with its five databases; values are raw bytes (see record-codec.ts). */
export class LmdbEnv {
  private closed = false;
  private closing: Promise<void> | undefined;
  private readonly inflight = new Set<Promise<unknown>>();
  /** An observeBatchCommit() is scheduled for this event turn. */
  private observing = false;
  private readonly limitPages: number;
  private readonly pageSize: number;
  /** Device and inode of data.mdb when opened: a file at the path with others is not the open one. */
  private readonly fileId: { dev: number; ino: number };
  /** Pages in use at the last exact measurement, and the bound of what was added since. */
  private measuredPages = 0;
  private pagesSinceMeasure = 0;
  /** An older layout (store-meta.ts) to mark current in every write transaction until one commits. */
  private schemaMarkPending = false;

  private constructor(
    /** Absolute path of the environment directory. */
    readonly path: string,
    private readonly root: RootDatabase,
    readonly triplets: Database<Buffer, string>,
    readonly clients: Database<Buffer, string>,
    readonly replog: Database<Buffer, number>,
    readonly cursors: Database<Buffer, string>,
    readonly meta: Database<Buffer, string>,
    /** This node's id: random on first open, then kept in `meta`. */
    readonly nodeId: string,
    /** The enforced size limit, bytes. */
    readonly limitBytes: number,
    private readonly logger: Logger,
    /** Opened with LMDB's read-only flag (LmdbEnvOptions.readOnly): write() rejects. */
    readonly readOnly = false,
  ) {
    const stats = triplets.getStats() as { pageSize?: number };
    this.pageSize = stats.pageSize ?? 4096;
    this.limitPages = Math.floor(limitBytes / this.pageSize);
    this.measuredPages = this.measurePages();
    const st = statSync(join(path, 'data.mdb'));
    this.fileId = { dev: st.dev, ino: st.ino };
  }

  /**
   * Why the data file under the open environment is no longer what the next start will open, or
   * undefined when it is (and after close). LMDB keeps writing an open file that was removed or
   * replaced, so without this a `rm -rf` of the data dir loses the greylist silently at the next stop.
   */
  dataFileProblem(): string | undefined {
    if (this.closed) return undefined;
    const file = join(this.path, 'data.mdb');
    try {
      const st = statSync(file);
      if (st.dev !== this.fileId.dev || st.ino !== this.fileId.ino) {
        return `${file} was replaced while mxsentry runs: it still writes the old, replaced file, which is lost when it stops; restart mxsentry to use the new one`;
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        return `${file} was removed while mxsentry runs: greylisting goes on in the open, deleted file, and all of it is lost when mxsentry stops (restart it to start a new store there)`;
      }
      return `${file} can no longer be checked (${code ?? 'error'}): the running store goes on, but the next start may not open it`;
    }
    // A read-only open needs no writable store (one on a read-only filesystem is read as it is).
    const write = this.readOnly ? 0 : fsConstants.W_OK;
    try {
      accessSync(this.path, write | fsConstants.R_OK | fsConstants.X_OK);
      accessSync(file, write | fsConstants.R_OK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      return `${this.path} is no longer readable and writable (${code}): the running store goes on, but the next start cannot open it (greylisting then fails open)`;
    }
    return undefined;
  }

  /**
   * Opens (creating when needed, unless `create` is false) the environment. Rejects with
   * StoreError(STORE_ERR_OPEN) naming the directory when it cannot be created or written, or when the
   * files are not a usable environment; with STORE_ERR_NOT_FOUND when `create` is false and there is
   * no environment (nothing is created then, not even the directory).
   */
  static async open(opts: LmdbEnvOptions): Promise<LmdbEnv> {
    const limitBytes = opts.mapSizeBytes ?? DEFAULT_MAP_SIZE_BYTES;
    if (!Number.isSafeInteger(limitBytes) || limitBytes < MIN_MAP_SIZE_BYTES) {
      throw new StoreError(StoreErrorCode.OPEN, `mapSizeBytes must be an integer >= ${MIN_MAP_SIZE_BYTES}, got ${limitBytes}`);
    }
    const path = join(opts.dataDir, 'greylist');
    const readOnly = opts.readOnly === true;
    if (opts.create === false || readOnly) checkEnvExists(path);
    // Read-only on a read-only filesystem (a snapshot, a backup mounted ro), LMDB reads without its
    // lock file, which nothing can need there (no process can write the store): reading suffices.
    const readOnlyFs = readOnly && isReadOnlyFilesystem(path);
    try {
      makeDirs(path, 0o700);
      accessSync(path, (readOnlyFs ? 0 : fsConstants.W_OK) | fsConstants.R_OK | fsConstants.X_OK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      throw new StoreError(StoreErrorCode.OPEN, `greylist directory ${path} is not usable (${code}): create it writable for the mxsentry user`, {
        cause: err,
      });
    }
    const dataFile = join(path, 'data.mdb');
    checkLockFile(join(path, 'lock.mdb'), { readOnlyFs });
    const { bytes: dataBytes, shortOf, empty } = checkDataFile(dataFile);
    checkRoomToCreate(path, dataBytes === 0, opts.freeBytes ?? filesystemFreeBytes);
    // A file shorter than the last page its newest transaction counts must be read through: LMDB does
    // not write pages freed in the transaction that took them, so a sound file can end before that
    // page, and a file cut short (a full disk, a bad copy) makes LMDB read past its end (SIGBUS, this
    // process gone). Only reading it through in a child process tells the two apart.
    const short = shortOf === undefined ? undefined : `${dataBytes} bytes, its last transaction counts ${shortOf}`;
    // An unfinished check of a whole file is told only once the open succeeds: when the open fails,
    // its own error says more (and a retry every minute of an unopenable store would repeat it).
    let unverified: string | undefined;
    if (short !== undefined || (opts.verify && dataBytes > 0)) {
      const probe = await probeEnvironment(path, dataFile, VERIFY_TIMEOUT_MS, { readOnly }).catch((err: unknown) => {
        throw short !== undefined && err instanceof StoreError ? new StoreError(err.code, `${err.message} (truncated: ${short})`, { cause: err }) : err;
      });
      if (!probe.ok && short !== undefined) {
        // Not finished (a timeout, a permission, no process) is no verdict: the file may well be
        // sound, so it is refused for this attempt without telling the admin to throw it away.
        throw new StoreError(
          StoreErrorCode.OPEN,
          `${dataFile} ends before its last counted page (${short}), which a sound file may do, and reading it through to tell did not finish (${probe.reason}): not opened, to avoid a fault if it was cut short; fix that cause and retry`,
        );
      }
      if (!probe.ok) unverified = probe.reason;
      else if (short !== undefined) opts.logger.debug({ path, dataBytes, shortOf }, 'greylist data file ends before its last counted page; read through without fault');
    }
    let root: RootDatabase | undefined;
    try {
      root = open({ path, maxDbs: 8, mapSize: limitBytes, encoding: 'binary', ...(readOnly ? { readOnly: true } : {}) });
      const opened = root;
      // Read-write, a missing database is created; read-only, lmdb-js returns none for it: it is read
      // as the empty one the read-write open would make (a first start killed before making them).
      const db = <K extends string | number>(name: DbName): Database<Buffer, K> =>
        (opened.openDB<Buffer, K>({ name, encoding: 'binary' }) as Database<Buffer, K> | undefined) ?? emptyDatabase<K>();
      const dbs = { triplets: db<string>('triplets'), clients: db<string>('clients'), replog: db<number>('replog'), cursors: db<string>('cursors'), meta: db<string>('meta') };
      giveFilesToFolderOwner(path, ['lock.mdb', 'data.mdb']);
      const { nodeId, markSchema } = initMeta(dbs.meta, path, readOnly);
      const env = new LmdbEnv(path, root, dbs.triplets, dbs.clients, dbs.replog, dbs.cursors, dbs.meta, nodeId, limitBytes, opts.logger, readOnly);
      env.schemaMarkPending = markSchema;
      if (unverified !== undefined) opts.logger.warn({ path, reason: unverified }, 'greylist store integrity check did not finish; opened without it');
      // LMDB writes its meta pages when it creates the file, so a store never rests at 0 bytes: it was
      // cut to nothing (a full disk, a bad copy), or its first start was killed mid-creation. Told
      // after the open, like the warning above, so a failing open retried each minute does not repeat it.
      if (empty) opts.logger.warn({ file: dataFile }, 'greylist data file was empty (0 bytes): started a new, empty store; any greylist it held is lost (restore it from a backup to get it back)');
      opts.logger.info({ path, nodeId, limitBytes }, 'greylist store opened');
      return env;
    } catch (err) {
      if (root) {
        await root.close().catch((closeErr: unknown) => {
          opts.logger.warn({ path, err: closeErr }, 'closing a half-opened greylist environment failed');
        });
      }
      const translated = err instanceof StoreError ? err : translateLmdbError(err, `opening ${path}`);
      if (translated.code === StoreErrorCode.OPEN) throw translated;
      throw new StoreError(StoreErrorCode.OPEN, `cannot open greylist environment ${path}: ${translated.message}`, { cause: translated });
    }
  }

  /** True once close() was called. */
  isClosed(): boolean {
    return this.closed;
  }

  /**
   * Runs `fn` as one abortable child transaction of lmdb-js's next batched async write transaction
   * and resolves with its result once that transaction is committed. Callbacks run one at a time on
   * the main thread, so each sees the writes of those before it: two decisions on one key never lose
   * an update. Everything `fn` wrote is rolled back when it throws. A CallerError rejects with its
   * original error; anything else becomes a StoreError. With `grows`, the size limit is checked
   * before the transaction is allowed to commit (see LmdbEnvOptions.mapSizeBytes).
   */
  write<T>(operation: string, fn: (tx: WriteScope) => T, opts: { grows: boolean }): Promise<T> {
    if (this.closed) return Promise.reject(new StoreError(StoreErrorCode.CLOSED, `${operation}: the greylist store is closed`));
    if (this.readOnly) return Promise.reject(new StoreError(StoreErrorCode.INVALID, `${operation}: the greylist store was opened read-only`));
    const scope = new WriteScope(this);
    let pending: Promise<T>;
    try {
      pending = this.root.childTransaction(() => {
        if (this.schemaMarkPending) scope.put(this.meta, 'schemaVersion', encodeMetaValue(STORE_SCHEMA_VERSION));
        const result = fn(scope);
        if (opts.grows) this.enforceLimit(scope.pageBound);
        return result;
      });
    } catch (err) {
      return Promise.reject(translateLmdbError(err, operation));
    }
    this.observeBatchCommit();
    const settled = pending.then(
      (value) => {
        this.schemaMarkPending = false;
        return value;
      },
      async (err: unknown) => {
        if (err instanceof CallerError) throw err.original;
        const reason = await commitFailureReason(err);
        throw translateLmdbError(reason === err ? explainCommitFailure(err, this.path) : reason, operation);
      },
    );
    this.inflight.add(settled);
    const forget = (): void => {
      this.inflight.delete(settled);
    };
    settled.then(forget, forget);
    return settled;
  }

  /**
   * lmdb-js starts each event turn's write batch in a setImmediate that makes a commit promise no
   * one holds; when the commit fails (EIO, EPERM on a read-only or immutable data file) that promise
   * rejects unhandled and Node exits, taking DNS and the policy service down with the store. The
   * failure reaches each writer through its own promise (write()), so this one is only observed,
   * once per turn, after lmdb's setImmediate has made it.
   */
  private observeBatchCommit(): void {
    if (this.observing) return;
    this.observing = true;
    setImmediate(() => {
      this.observing = false;
      Promise.resolve(this.root.committed).catch(() => undefined);
    });
  }

  /** Runs synchronous reads, translating lmdb errors; rejects (throws) STORE_ERR_CLOSED after close(). */
  read<T>(operation: string, fn: () => T): T {
    if (this.closed) throw new StoreError(StoreErrorCode.CLOSED, `${operation}: the greylist store is closed`);
    try {
      return fn();
    } catch (err) {
      if (err instanceof CallerError) throw err.original;
      throw translateLmdbError(err, operation);
    }
  }

  /**
   * Checks, before a write is queued, that `pages` more pages (an upper bound, see putBound) fit
   * under the size limit: throws STORE_ERR_FULL when they do not, STORE_ERR_CLOSED after close().
   * The same accounting as a `grows` write, so a queued write fails here, at once, not in its batch.
   */
  reserve(pages: number): void {
    if (this.closed) throw new StoreError(StoreErrorCode.CLOSED, 'the greylist store is closed');
    try {
      this.enforceLimit(pages);
    } catch (err) {
      if (err instanceof StoreError) throw err;
      throw translateLmdbError(err, 'checking the size limit');
    }
  }

  /**
   * A dry run's reserve(): throws STORE_ERR_FULL when the pages in use now plus `pages` (an upper
   * bound) exceed the limit, measured at once; counts nothing. It errs towards "full" by at most
   * the bound, so `mxsentry check` shows the fail-open answer no later than the daemon gives it.
   */
  checkFits(pages: number): void {
    if (this.closed) throw new StoreError(StoreErrorCode.CLOSED, 'the greylist store is closed');
    const used = this.read('measuring the store', () => this.measurePages());
    if (used + pages > this.limitPages) throw this.fullError(used + pages);
  }

  /** Upper bound of the pages one put of a value of `valueBytes` may add (see PAGE_BOUND_PER_PUT). */
  putBound(valueBytes: number): number {
    return PAGE_BOUND_PER_PUT + Math.ceil(valueBytes / this.pageSize);
  }

  /** Bytes in pages currently in use by the databases (not the file size, which keeps freed pages). */
  usedBytes(): number {
    return this.read('measuring the environment', () => this.measurePages() * this.pageSize);
  }

  /** Resolves when everything written so far is committed and flushed to disk (for shutdown). */
  async flush(): Promise<void> {
    // Read-only, lmdb-js has no commits to wait for (nor the promises for them).
    if (this.closed || this.readOnly) return;
    try {
      await Promise.allSettled([...this.inflight]);
      await this.root.committed;
      await this.root.flushed;
    } catch (err) {
      throw translateLmdbError(err, 'flushing the greylist store');
    }
  }

  /** Waits for pending writes, flushes and closes the environment; idempotent. */
  close(): Promise<void> {
    if (!this.closing) {
      const problem = this.dataFileProblem();
      this.closed = true;
      this.closing = (async () => {
        await Promise.allSettled([...this.inflight]);
        // lmdb-js's flushed (which its close awaits too) never settles after a failed commit: bounded.
        const flushed = this.readOnly ? Promise.resolve() : this.root.flushed;
        const closed = flushed.then(() => this.root.close()).catch((err: unknown) => Promise.reject(translateLmdbError(err, `closing ${this.path}`)));
        if (!(await settledWithin(closed, CLOSE_WAIT_MS))) throw new StoreError(StoreErrorCode.IO, `closing ${this.path}: not done after ${CLOSE_WAIT_MS} ms (a write had failed); left open, as after a crash: LMDB reopens at the last commit`);
        // The problem says whether what the store held is lost (removed, replaced) or only hard to reopen.
        if (problem) this.logger.error({ path: this.path, problem }, 'greylist store closed with a problem at its data file');
        else this.logger.info({ path: this.path }, 'greylist store closed');
      })();
    }
    return this.closing;
  }

  /** Exact count of pages in use: the five databases, the main DB that names them, and the free list. */
  private measurePages(): number {
    let pages = 0;
    let extra = 0;
    for (const db of [this.triplets, this.clients, this.replog, this.cursors, this.meta]) {
      const s = db.getStats() as PageStats & { root?: PageStats; free?: PageStats };
      pages += pageCount(s);
      if (s.root && s.free) extra = pageCount(s.root) + pageCount(s.free);
    }
    return pages + extra;
  }

  private enforceLimit(addedPageBound: number): void {
    this.pagesSinceMeasure += addedPageBound;
    if (this.measuredPages + this.pagesSinceMeasure < this.limitPages) return;
    const used = this.measurePages();
    this.measuredPages = used;
    this.pagesSinceMeasure = 0;
    if (used > this.limitPages) throw this.fullError(used);
  }

  private fullError(usedPages: number): StoreError {
    return new StoreError(
      StoreErrorCode.FULL,
      `greylist store is full: ${usedPages * this.pageSize} bytes in use would exceed the limit of ${this.limitBytes} bytes (raise store-map-size and restart, or free room with 'mxsentry greylist purge --older-than 1d', which also removes records unseen for a day; 'mxsentry greylist stats' shows what the store holds)`,
    );
  }
}

/** Whether `path` is on a filesystem mounted read-only (access(2) says EROFS for a write). */
function isReadOnlyFilesystem(path: string): boolean {
  try {
    accessSync(path, fsConstants.W_OK);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EROFS';
  }
}

/**
 * A named database a read-only open did not find, read as the empty one a read-write open creates:
 * the reads LmdbEnv's users make (get, getRange, getKeys, getStats) find nothing. Never written:
 * a read-only environment's write() rejects before any database is touched.
 */
function emptyDatabase<K extends string | number>(): Database<Buffer, K> {
  const none = { get: () => undefined, getRange: () => [], getKeys: () => [], getStats: () => ({ entryCount: 0, treeBranchPageCount: 0, treeLeafPageCount: 0, overflowPages: 0 }) };
  return none as unknown as Database<Buffer, K>;
}

interface PageStats {
  treeBranchPageCount: number;
  treeLeafPageCount: number;
  overflowPages: number;
}

function pageCount(s: PageStats): number {
  return (s.treeBranchPageCount ?? 0) + (s.treeLeafPageCount ?? 0) + (s.overflowPages ?? 0);
}

/** What a write callback may do: puts and removes inside the current transaction, counted for the size guard. */
export class WriteScope {
  /** Upper bound of pages the puts so far may have added. */
  pageBound = 0;

  constructor(private readonly env: LmdbEnv) {}

  put<K extends string | number>(db: Database<Buffer, K>, key: K, value: Buffer): void {
    this.pageBound += this.env.putBound(value.byteLength);
    db.putSync(key, value);
  }

  remove<K extends string | number>(db: Database<Buffer, K>, key: K): boolean {
    return db.removeSync(key);
  }
}
