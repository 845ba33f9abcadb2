// The LMDB-backed GreylistStore: greylist triplets, the client auto-whitelist, the replication log
// and peer cursors in one environment (DESIGN.md s4). Called by the policy service (transact/read),
// the CLI (list, delete, whitelist, purge) and replication (applyRemote, readLog, cursors). It never
// decides greylisting itself and never talks to peers; lmdb errors reach callers only as StoreErrors.
import type { Clock } from '../util/clock.js';
import { describeError, StoreError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import {
  isDeletedTriplet,
  isRefreshOnly,
  totalPasses,
  type ClientRecord,
  type Decided,
  type DecideOptions,
  type GreylistStore,
  type GreylistUpdate,
  type TripletRecord,
} from './greylist-types.js';
import { LmdbEnv } from './lmdb-env.js';
import {
  checkKey,
  decodeClient,
  decodeCursor,
  decodeRecord,
  decodeReplogEntry,
  decodeTriplet,
  encodeClient,
  encodeCursor,
  encodeRecord,
  encodeTriplet,
  isNodeId,
  parseClient,
  parseRecord,
  parseTriplet,
  REPLOG_OVERHEAD_BYTES,
  type RecordKind,
  type ReplogEntry,
} from './record-codec.js';
import { ExpirySweep, purgeExpired, SWEEP_BATCH, type ExpiryHandle, type PurgeResult } from './expiry.js';
import { RecoveryProbe } from './recovery-probe.js';
import { TimerScheduler, type Scheduler } from './scheduler.js';
import { StoreErrorCode } from './store-error-code.js';
import { LogTail } from './log-tail.js';
import { lastSeqIn, logAppender, storedLastSeq, WriteQueue, type RecordWrite } from './write-queue.js';

/** Options for LmdbGreylistStore.open. */
export interface LmdbGreylistStoreOptions {
  /** State directory; the environment is `<dataDir>/greylist`. */
  dataDir: string;
  clock: Clock;
  logger: Logger;
  /** Size limit in bytes (default 1 GiB); see LmdbEnvOptions.mapSizeBytes. */
  mapSizeBytes?: number;
  /** Create the store when none exists (default true); see LmdbEnvOptions.create. */
  create?: boolean;
  /** Check the existing store in a child process first (default false); see LmdbEnvOptions.verify. */
  verify?: boolean;
  /** Open an existing store only to read it, changing nothing (default false); see LmdbEnvOptions.readOnly. */
  readOnly?: boolean;
  /** Timers for the expiry sweep (default: unref'd Node timers). */
  scheduler?: Scheduler;
}

/** A record from a peer for applyRemoteBatch: untrusted until validated there. */
export interface RemoteRecord {
  kind: RecordKind;
  key: string;
  record: TripletRecord | ClientRecord;
  /** The node whose decision made it (validated, not stored: a peer's record is not logged). */
  originNode: string;
}

/** One stored record with its key, as listed for the CLI. */
export interface KeyedRecord<R> {
  key: string;
  record: R;
}

/** Options for listTriplets / listClients. */
export interface ListOptions {
  /** Only keys starting with this string. */
  prefix?: string;
  /** Only keys sorting strictly after this one (paging: pass the last key of the previous page). */
  startAfter?: string;
  /** Most records returned (default 1000). */
  limit?: number;
  /** Leave out tombstones (deleted triplets), as an admin's listing does; replication needs them. */
  liveOnly?: boolean;
}

/** Sizes for metrics. */
export interface StoreCounts {
  triplets: number;
  clients: number;
  replogEntries: number;
  peers: number;
  /** Bytes in pages in use, and the enforced limit. */
  usedBytes: number;
  limitBytes: number;
  /** Undecodable records met since open (each is logged once per meeting with STORE_ERR_CORRUPT). */
  corruptRecords: number;
}

/** Default number of passes `whitelistClient` guarantees: postgrey's --auto-whitelist-clients default. */
export const DEFAULT_WHITELIST_PASSES = 5;

/** Default and maximum page size for listings and log reads. */
const DEFAULT_LIST_LIMIT = 1000;
const MAX_READ_LIMIT = 100_000;

/**
 * GreylistStore on LMDB. `decideNow`/`transact` decide on the newest state and hand the records to
 * the WriteQueue (write-queue.ts), whose one child transaction of lmdb-js's batched async write
 * takes every decision and peer record queued until it runs: commits (and their fsync) run on
 * lmdb's write thread and the decisions of one moment share one commit, while each decision sees
 * the queued records of those before it, so concurrent decisions on one key lose nothing.
 */
export class LmdbGreylistStore implements GreylistStore {
  private healthy = true;
  /** The failure that made the store unhealthy, until it is healthy again. */
  private failure: StoreError | undefined;
  private corruptSeen = 0;
  /** Decisions' and peers' records waiting for their batched write transaction. */
  private readonly writes: WriteQueue;
  /** The log entries this process committed lately, for readLog. */
  private readonly logTail = new LogTail();
  private readonly expiry: ExpirySweep;
  private readonly recovery: RecoveryProbe;

  private constructor(
    private readonly env: LmdbEnv,
    private readonly clock: Clock,
    private readonly logger: Logger,
    scheduler: Scheduler,
  ) {
    this.writes = new WriteQueue({
      env,
      clock,
      logger,
      readRecord: (kind, key) => this.getRecord(kind, key),
      track: (p) => this.tracked(p),
      logCommitted: (entries) => this.logTail.committed(entries),
    });
    this.expiry = new ExpirySweep({ scheduler, clock, logger, isClosed: () => env.isClosed(), purge: (now, maxAge, retryWindow) => this.purge(now, maxAge, retryWindow) });
    const decisionPages = 4 * env.putBound(2 * REPLOG_OVERHEAD_BYTES); // two records and their log entries, as decideNow reserves
    this.recovery = new RecoveryProbe({ env, clock, scheduler, logger, decisionPages, isDone: () => this.healthy || env.isClosed(), tracked: (p) => this.tracked(p) });
  }

  /**
   * Opens (or creates, unless `create` is false) the store; rejects with StoreError(STORE_ERR_OPEN)
   * when it cannot, STORE_ERR_NOT_FOUND when there is none and `create` is false.
   */
  static async open(opts: LmdbGreylistStoreOptions): Promise<LmdbGreylistStore> {
    const env = await LmdbEnv.open({
      dataDir: opts.dataDir,
      logger: opts.logger,
      mapSizeBytes: opts.mapSizeBytes,
      ...(opts.create === undefined ? {} : { create: opts.create }),
      ...(opts.verify === undefined ? {} : { verify: opts.verify }),
      ...(opts.readOnly === undefined ? {} : { readOnly: opts.readOnly }),
    });
    return new LmdbGreylistStore(env, opts.clock, opts.logger, opts.scheduler ?? new TimerScheduler());
  }

  /** {@inheritDoc GreylistStore.transact} A corrupt stored record is logged and passed to decide as absent. */
  transact<T>(
    tripletKey: string,
    clientKey: string,
    decide: (triplet: TripletRecord | undefined, client: ClientRecord | undefined) => { update: GreylistUpdate; result: T },
  ): Promise<T> {
    let decided: Decided<T>;
    try {
      decided = this.decideNow(tripletKey, clientKey, decide);
    } catch (err) {
      return Promise.reject(err);
    }
    return decided.written ? decided.written.then(() => decided.result) : Promise.resolve(decided.result);
  }

  /**
   * Decides on the newest state (a queued, uncommitted record of the key wins over the committed
   * one) and queues what decide returned for the next batch. Most decisions for known triplets and
   * clients only move last-seen forward; while that move is under LAST_SEEN_REFRESH_MS nothing is
   * queued (last-seen only matters at the scale of the retry window and max-age). Throws what decide
   * threw, STORE_ERR_INVALID for an unusable update, STORE_ERR_FULL when the size limit is reached.
   * A dry run stops before the queue. A corrupt stored record is logged and passed to decide as absent.
   */
  decideNow<T>(
    tripletKey: string,
    clientKey: string,
    decide: (triplet: TripletRecord | undefined, client: ClientRecord | undefined) => { update: GreylistUpdate; result: T },
    opts?: DecideOptions,
  ): Decided<T> {
    const dryRun = opts?.dryRun === true;
    const current = this.newest('greylist transaction', tripletKey, clientKey);
    const decision = decide(current.triplet, current.client);
    const { update } = decision;
    if (isRefreshOnly(current.triplet, update.triplet) && isRefreshOnly(current.client, update.client)) {
      return { result: decision.result, written: undefined };
    }
    const records: RecordWrite[] = [];
    if (update.triplet) {
      const record = parseTriplet(update.triplet, StoreErrorCode.INVALID);
      records.push({ kind: 'triplet', key: tripletKey, record, bytes: encodeTriplet(record) });
    }
    if (update.client) {
      const record = parseClient(update.client, StoreErrorCode.INVALID);
      records.push({ kind: 'client', key: clientKey, record, bytes: encodeClient(record) });
    }
    try {
      // Record and log entry per record; a record's encoding bounds the merged one's within a page.
      let pages = 0;
      for (const r of records) pages += 2 * this.env.putBound(r.bytes.byteLength + REPLOG_OVERHEAD_BYTES);
      if (dryRun) this.env.checkFits(pages);
      else this.env.reserve(pages);
    } catch (err) {
      if (!dryRun) this.noteFailure(err);
      throw err;
    }
    return { result: decision.result, written: dryRun ? undefined : this.writes.queueDecision(records) };
  }

  /** The newest records of both keys (a corrupt record is logged and returned as absent). */
  async read(tripletKey: string, clientKey: string): Promise<{ triplet: TripletRecord | undefined; client: ClientRecord | undefined }> {
    return this.newest('greylist read', tripletKey, clientKey);
  }

  /** A queued, uncommitted record of a key wins over the committed one. */
  private newest(operation: string, tripletKey: string, clientKey: string): { triplet: TripletRecord | undefined; client: ClientRecord | undefined } {
    checkKey(tripletKey, 'triplet');
    checkKey(clientKey, 'client');
    return this.env.read(operation, () => ({
      triplet: (this.writes.pending('triplet', tripletKey) ?? this.getRecord('triplet', tripletKey)) as TripletRecord | undefined,
      client: (this.writes.pending('client', clientKey) ?? this.getRecord('client', clientKey)) as ClientRecord | undefined,
    }));
  }

  /** False after a store failure (map full, I/O error) until a write (or the recovery probe's) commits. */
  isHealthy(): boolean {
    return this.healthy && !this.env.isClosed();
  }

  /** Why the store is unhealthy (the failure that made it so), for stats; undefined while healthy. */
  lastFailure(): StoreError | undefined {
    return this.isHealthy() ? undefined : this.failure;
  }

  /** See LmdbEnv.dataFileProblem (the data file removed or replaced under the open store); null once closed. */
  dataFileProblem(): string | undefined | null {
    return this.env.isClosed() ? null : this.env.dataFileProblem();
  }

  /** This node's id (random on first open, kept in the environment); the key of its pass counters. */
  getNodeId(): string {
    return this.env.nodeId;
  }

  /** Triplets in key order, skipping (and logging) undecodable ones. */
  async listTriplets(opts: ListOptions = {}): Promise<KeyedRecord<TripletRecord>[]> {
    return this.list('triplet', opts) as Promise<KeyedRecord<TripletRecord>[]>;
  }

  /** Auto-whitelist client records in key order, skipping (and logging) undecodable ones. */
  async listClients(opts: ListOptions = {}): Promise<KeyedRecord<ClientRecord>[]> {
    return this.list('client', opts) as Promise<KeyedRecord<ClientRecord>[]>;
  }

  /**
   * Deletes one triplet (admin `greylist delete`): resolves true when a live one existed. The record
   * becomes a tombstone (deletedAtMs, last seen now), logged for replication like any change, so
   * every node forgets it and no replica's copy of a generation begun before it brings it back; it
   * expires after max-age like any record. The next decision on the key starts over.
   */
  deleteTriplet(key: string): Promise<boolean> {
    return this.editRecord<TripletRecord>('deleting a triplet', 'triplet', key, (current, nowMs) => {
      if (!current || isDeletedTriplet(current)) return null;
      // Not before the record's first sight (another node's clock may run ahead of this one's):
      // the tombstone must cover the generation it deletes.
      const deletedAtMs = Math.max(nowMs, current.firstSeenMs);
      return { ...current, lastSeenMs: Math.max(current.lastSeenMs, nowMs), deletedAtMs };
    }).then((record) => record !== null);
  }

  /**
   * Makes the auto-whitelist apply to a client at once: raises this node's pass counter so the total
   * reaches `passes` (default 5, postgrey's default threshold; pass the configured value). Logged for
   * replication like any change. Resolves with the stored record.
   */
  whitelistClient(clientKey: string, passes = DEFAULT_WHITELIST_PASSES): Promise<ClientRecord> {
    if (!Number.isSafeInteger(passes) || passes < 1) return Promise.reject(new StoreError(StoreErrorCode.INVALID, `passes must be a positive integer, got ${passes}`));
    const node = this.env.nodeId;
    return this.editRecord<ClientRecord>('whitelisting a client', 'client', clientKey, (current, nowMs) => {
      const base: ClientRecord = current ?? { firstSeenMs: nowMs, lastSeenMs: nowMs, lastCountedMs: 0, passes: {} };
      const missing = Math.max(0, passes - totalPasses(base.passes));
      return {
        firstSeenMs: base.firstSeenMs,
        lastSeenMs: Math.max(base.lastSeenMs, nowMs),
        lastCountedMs: Math.max(base.lastCountedMs, nowMs),
        passes: { ...base.passes, [node]: (base.passes[node] ?? 0) + missing },
      };
    }) as Promise<ClientRecord>;
  }

  /**
   * An admin's change to one record, outside the decisions' write queue: `change` maps the stored
   * record (corrupt: absent) to the new one, or to null to write nothing. The new record is stored
   * and logged for replication in one transaction; resolves with it (null when nothing was written).
   */
  private editRecord<R extends TripletRecord | ClientRecord>(what: string, kind: RecordKind, key: string, change: (current: R | undefined, nowMs: number) => R | null): Promise<R | null> {
    try {
      checkKey(key, kind);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.tracked(
      this.env.write(
        what,
        (tx) => {
          const nowMs = this.clock.nowMs();
          const record = change(this.getRecord(kind, key) as R | undefined, nowMs);
          if (record === null) return null;
          tx.put(kind === 'triplet' ? this.env.triplets : this.env.clients, key, encodeRecord(kind, record));
          const log = logAppender(this.env, tx);
          log.append({ kind, key, record, originNode: this.env.nodeId, atMs: nowMs } as Omit<ReplogEntry, 'seq'>);
          log.finish();
          return record;
        },
        { grows: true },
      ),
    );
  }

  /** See purgeExpired (expiry.ts). */
  purge(nowMs: number, maxAgeMs: number, retryWindowMs = Infinity): Promise<PurgeResult> {
    return purgeExpired({ env: this.env, tracked: (p) => this.tracked(p), reportCorrupt: (...a) => this.reportCorrupt(...a) }, nowMs, maxAgeMs, retryWindowMs);
  }

  /** See ExpirySweep.start (expiry.ts): purge every `intervalMs` on the store's scheduler. */
  startExpiry(intervalMs: number, maxAgeMs: number, retryWindowMs = Infinity): ExpiryHandle {
    return this.expiry.start(intervalMs, maxAgeMs, retryWindowMs);
  }

  /** Stops the expiry sweep started by startExpiry (a sweep already running finishes). */
  stopExpiry(): void {
    this.expiry.stop();
  }

  /** Sizes for metrics. */
  async count(): Promise<StoreCounts> {
    return this.env.read('counting records', () => ({
      triplets: entryCount(this.env.triplets),
      clients: entryCount(this.env.clients),
      replogEntries: entryCount(this.env.replog),
      peers: entryCount(this.env.cursors),
      usedBytes: this.env.usedBytes(),
      limitBytes: this.env.limitBytes,
      corruptRecords: this.corruptSeen,
    }));
  }

  /** One peer's record; see applyRemoteBatch. Resolves true when it changed local state. */
  applyRemote(kind: RecordKind, key: string, record: TripletRecord | ClientRecord, originNode: string): Promise<boolean> {
    return this.applyRemoteBatch([{ kind, key, record, originNode }]).then((changed) => changed > 0);
  }

  /**
   * Merges peers' records into the local ones (mergeTriplet / mergeClient: a corrupt local record
   * counts as absent), without log entries, all in the next batch of writes, with the queued
   * decisions. Idempotent. Every record is validated and the size guard checked before any
   * is queued: a bad one (STORE_ERR_CORRUPT, STORE_ERR_INVALID) or a full store (STORE_ERR_FULL)
   * rejects the call and writes none of them. Resolves once committed, with how many of the records
   * changed local state.
   */
  applyRemoteBatch(records: readonly RemoteRecord[]): Promise<number> {
    const writes: RecordWrite[] = [];
    let pages = 0;
    try {
      for (const { kind, key, record, originNode } of records) {
        if (kind !== 'triplet' && kind !== 'client') throw new StoreError(StoreErrorCode.INVALID, `unknown record kind ${String(kind)}`);
        checkKey(key, kind);
        if (!isNodeId(originNode)) throw new StoreError(StoreErrorCode.CORRUPT, 'remote update has an invalid origin node id');
        const remote = parseRecord(kind, record, StoreErrorCode.CORRUPT);
        const bytes = encodeRecord(kind, remote);
        pages += this.env.putBound(bytes.byteLength);
        writes.push({ kind, key, record: remote, bytes });
      }
    } catch (err) {
      return Promise.reject(err);
    }
    if (writes.length === 0) return Promise.resolve(0);
    try {
      this.env.reserve(pages);
    } catch (err) {
      this.noteFailure(err);
      return Promise.reject(err);
    }
    return this.writes.queueRemote(writes);
  }

  /**
   * Replication log entries with seq > afterSeq, ascending, at most `limit`; corrupt entries are
   * logged and skipped. Entries this process committed lately come from memory (LogTail), shared
   * between callers: read only.
   */
  async readLog(afterSeq: number, limit: number): Promise<ReplogEntry[]> {
    const max = Math.min(Math.max(1, Math.floor(limit)), MAX_READ_LIMIT);
    return this.env.read('reading the replication log', () => {
      const last = storedLastSeq(this.env);
      const recent = last === undefined ? undefined : this.logTail.read(afterSeq, max, last);
      if (recent) return recent;
      const out: ReplogEntry[] = [];
      for (const { key, value } of this.env.replog.getRange({ start: afterSeq + 1 })) {
        if (out.length >= max) break;
        if (typeof key !== 'number' || key <= afterSeq) continue;
        try {
          out.push(decodeReplogEntry(key, value));
        } catch (err) {
          this.reportCorrupt('replog', String(key), err, 'reading the replication log');
        }
      }
      return out;
    });
  }

  /** Highest sequence number logged so far (0 for an empty log). */
  async getLastSeq(): Promise<number> {
    return this.env.read('reading the replication log', () => lastSeqIn(this.env));
  }

  /** Records the last sequence `peer` acknowledged. */
  setCursor(peer: string, seq: number): Promise<void> {
    try {
      if (!isNodeId(peer)) throw new StoreError(StoreErrorCode.INVALID, `invalid peer id ${JSON.stringify(String(peer).slice(0, 80))}`);
      if (!Number.isSafeInteger(seq) || seq < 0) throw new StoreError(StoreErrorCode.INVALID, `invalid cursor ${seq}`);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.tracked(this.env.write('saving a peer cursor', (tx) => tx.put(this.env.cursors, peer, encodeCursor(seq)), { grows: true }));
  }

  /** Last sequence `peer` acknowledged, 0 when none (or when the stored cursor is corrupt: resend all). */
  async getCursor(peer: string): Promise<number> {
    return this.env.read('reading a peer cursor', () => {
      const bytes = this.env.cursors.get(peer);
      if (bytes === undefined) return 0;
      try {
        return decodeCursor(bytes);
      } catch (err) {
        this.reportCorrupt('cursor', peer, err, 'reading a peer cursor');
        return 0;
      }
    });
  }

  /**
   * Deletes log entries with seq < beforeSeq, in batches; resolves with the number deleted. The newest
   * entry is always kept: it carries the sequence high-water mark, so numbering never restarts.
   */
  async trimLog(beforeSeq: number): Promise<number> {
    let deleted = 0;
    for (;;) {
      const last = await this.getLastSeq();
      const end = Math.min(beforeSeq, last);
      const keys = this.env.read('scanning the replication log', () =>
        Array.from(this.env.replog.getKeys({ end, limit: SWEEP_BATCH })).filter((k): k is number => typeof k === 'number'),
      );
      if (keys.length === 0) return deleted;
      deleted += await this.tracked(
        this.env.write(
          'trimming the replication log',
          (tx) => {
            let n = 0;
            for (const k of keys) if (tx.remove(this.env.replog, k)) n++;
            return n;
          },
          { grows: false },
        ),
      );
      this.logTail.trimmed(keys[keys.length - 1]!);
      if (keys.length < SWEEP_BATCH) return deleted;
    }
  }

  /** Resolves when every write so far is committed and flushed to disk. */
  flush(): Promise<void> {
    return this.env.flush();
  }

  /** Stops the expiry sweep, waits for pending writes, flushes and closes; later calls reject with STORE_ERR_CLOSED. */
  async close(): Promise<void> {
    this.stopExpiry();
    this.recovery.stop();
    await this.env.close();
  }

  /** Reads and decodes one record in the current transaction; a corrupt one is reported and treated as absent. */
  private getRecord(kind: RecordKind, key: string): TripletRecord | ClientRecord | undefined {
    const bytes = (kind === 'triplet' ? this.env.triplets : this.env.clients).get(key);
    if (bytes === undefined) return undefined;
    try {
      return kind === 'triplet' ? decodeTriplet(bytes) : decodeClient(bytes);
    } catch (err) {
      this.reportCorrupt(kind, key, err, 'reading');
      return undefined;
    }
  }

  private list(kind: RecordKind, opts: ListOptions): Promise<KeyedRecord<TripletRecord | ClientRecord>[]> {
    const limit = Math.min(Math.max(1, Math.floor(opts.limit ?? DEFAULT_LIST_LIMIT)), MAX_READ_LIMIT);
    const prefix = opts.prefix ?? '';
    const db = kind === 'triplet' ? this.env.triplets : this.env.clients;
    // Compare as LMDB orders keys (UTF-8 bytes), not as JS orders strings (UTF-16 units).
    const start = opts.startAfter !== undefined && byteCompare(opts.startAfter, prefix) > 0 ? opts.startAfter : prefix;
    return Promise.resolve(
      this.env.read(`listing ${kind}s`, () => {
        const out: KeyedRecord<TripletRecord | ClientRecord>[] = [];
        const range = start === '' ? db.getRange({}) : db.getRange({ start });
        for (const { key, value } of range) {
          if (out.length >= limit) break;
          if (typeof key !== 'string') continue;
          // Keys sharing the prefix are contiguous from `start` on: the first other key ends the scan.
          if (!key.startsWith(prefix)) break;
          if (key === opts.startAfter) continue;
          try {
            const record = decodeRecord(kind, value);
            if (opts.liveOnly && kind === 'triplet' && isDeletedTriplet(record as TripletRecord)) continue;
            out.push({ key, record });
          } catch (err) {
            this.reportCorrupt(kind, key, err, `listing ${kind}s`);
          }
        }
        return out;
      }),
    );
  }

  private reportCorrupt(what: string, key: string, err: unknown, during: string): void {
    this.corruptSeen++;
    this.logger.error(
      { code: StoreErrorCode.CORRUPT, db: what, key, err: describeError(err) },
      `undecodable ${what} record while ${during}: treated as absent`,
    );
  }

  /** Keeps the health flag: any store failure clears it, any committed write sets it again. */
  private tracked<T>(p: Promise<T>): Promise<T> {
    return p.then(
      (value) => {
        if (!this.healthy && this.recovery.roomProblem() === undefined) {
          this.healthy = true;
          this.failure = undefined;
          this.logger.info('greylist store healthy again');
        }
        return value;
      },
      (err: unknown) => {
        this.noteFailure(err);
        throw err;
      },
    );
  }

  /** Clears the health flag on a store failure (logged once per failure period). */
  private noteFailure(err: unknown): void {
    // INVALID is the caller's mistake and CLOSED is shutdown (isHealthy checks that itself); CORRUPT
    // records inside transactions are handled as absent, so a CORRUPT here is a damaged file.
    if (err instanceof StoreError && err.code !== StoreErrorCode.INVALID && err.code !== StoreErrorCode.CLOSED) {
      if (this.healthy) this.logger.error({ code: err.code, err: err.message }, 'greylist store failure: failing open until it recovers');
      this.healthy = false;
      this.failure = err;
      this.recovery.start(); // decisions stop writing now: the probe notices when writes work again
    }
  }
}

function entryCount(db: { getStats(): unknown }): number {
  const n = (db.getStats() as { entryCount?: unknown }).entryCount;
  return typeof n === 'number' ? n : 0;
}

function byteCompare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
