// The write queue of the LMDB greylist store (lmdb-greylist-store.ts, its only caller): decisions
// and peers' records queued and written together, one child transaction of lmdb-js's next batched
// write for everything queued until it runs, plus the replication log appender those writes and the
// store share. It never decides greylisting and never checks the size limit (the store reserves
// pages before it queues).
import type { Clock } from '../util/clock.js';
import { describeError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { mergeClient, mergeTriplet, type ClientRecord, type TripletRecord } from './greylist-types.js';
import type { LmdbEnv, WriteScope } from './lmdb-env.js';
import { decodeMetaValue, encodeMetaValue, encodeRecord, encodeReplogEntry, type RecordKind, type ReplogEntry } from './record-codec.js';

/** What the queue needs from its store. */
export interface WriteQueueDeps {
  env: LmdbEnv;
  clock: Clock;
  logger: Logger;
  /** The committed record of a key, read in the current transaction (corrupt: reported, absent). */
  readRecord(kind: RecordKind, key: string): TripletRecord | ClientRecord | undefined;
  /** The store's health bookkeeping around a write's promise. */
  track<T>(p: Promise<T>): Promise<T>;
  /** Called with the log entries of each batch that committed, in commit order. */
  logCommitted(entries: readonly ReplogEntry[]): void;
}

/** A validated record to queue, with its encoding (which the caller made for the size guard). */
export interface RecordWrite {
  kind: RecordKind;
  key: string;
  record: TripletRecord | ClientRecord;
  /** encodeRecord(kind, record): written as is when no record of the key is stored yet. */
  bytes: Buffer;
}

/** One record of a decision, or one record from a peer. */
interface QueuedWrite extends RecordWrite {
  /**
   * Set for a peer's record: the count of its call's records that changed local state. Decisions
   * are logged for replication; peers' records are not (their origin sends them).
   */
  changes: { n: number } | undefined;
}

/** One write transaction of queued records (taken when it runs); `committed` settles once it has committed. */
interface WriteBatch {
  writes: QueuedWrite[];
  /** The log entries its transaction appended (set when it runs). */
  logged: readonly ReplogEntry[];
  committed: Promise<void>;
}

/**
 * Queued records are written by the next batch: its write callback takes everything queued so far
 * and merges each record (mergeTriplet / mergeClient) into the one committed by then, so neither
 * a decision nor a peer's record overwrites the other. Until the batch commits, `pending()` gives a
 * decision's queued record, so later decisions and reads see it. A failed batch is logged with the
 * number of records it lost.
 */
export class WriteQueue {
  private queue: QueuedWrite[] = [];
  /** The batch whose write callback has not run yet: what is queued now commits with it. */
  private openBatch: WriteBatch | undefined;
  /** Decisions' records queued and not yet committed, by kind and key. */
  private readonly pendingByKind: Record<RecordKind, Map<string, QueuedWrite>> = { triplet: new Map(), client: new Map() };

  constructor(private readonly deps: WriteQueueDeps) {}

  /** The newest queued, uncommitted record a decision wrote for the key, if any. */
  pending(kind: RecordKind, key: string): TripletRecord | ClientRecord | undefined {
    return this.pendingByKind[kind].get(key)?.record;
  }

  /** Queues a decision's records (validated by the caller); resolves once they are committed. */
  queueDecision(records: readonly RecordWrite[]): Promise<void> {
    for (const r of records) {
      const write: QueuedWrite = { kind: r.kind, key: r.key, record: r.record, bytes: r.bytes, changes: undefined };
      this.queue.push(write);
      this.pendingByKind[r.kind].set(r.key, write);
    }
    return (this.openBatch ?? this.startBatch()).committed;
  }

  /**
   * Queues peers' records (validated by the caller) into the next batch; resolves once committed,
   * with how many of them changed local state.
   */
  queueRemote(records: readonly RecordWrite[]): Promise<number> {
    const changes = { n: 0 };
    for (const r of records) this.queue.push({ kind: r.kind, key: r.key, record: r.record, bytes: r.bytes, changes });
    return (this.openBatch ?? this.startBatch()).committed.then(() => changes.n);
  }

  private startBatch(): WriteBatch {
    const { env, clock, logger } = this.deps;
    const batch: WriteBatch = { writes: [], logged: [], committed: Promise.resolve() };
    this.openBatch = batch;
    let ran = false;
    const written = env.write(
      'greylist decisions',
      (tx) => {
        ran = true;
        if (this.openBatch === batch) this.openBatch = undefined;
        batch.writes = this.queue;
        this.queue = [];
        const nowMs = clock.nowMs();
        const log = logAppender(env, tx);
        for (const w of batch.writes) {
          const stored = this.deps.readRecord(w.kind, w.key);
          const record = stored === undefined ? w.record : mergeRecord(w.kind, stored, w.record);
          const bytes = stored === undefined ? w.bytes : encodeRecord(w.kind, record);
          if (w.changes && stored !== undefined && bytes.equals(encodeRecord(w.kind, stored))) continue;
          tx.put(w.kind === 'triplet' ? env.triplets : env.clients, w.key, bytes);
          // A peer's record is not logged: every node pushes only its own changes over a full mesh
          // of links, so a merged remote record is never sent on (its origin sends it to everyone).
          if (w.changes) w.changes.n++;
          else log.append({ kind: w.kind, key: w.key, record, originNode: env.nodeId, atMs: nowMs } as Omit<ReplogEntry, 'seq'>);
        }
        batch.logged = log.finish();
      },
      { grows: true },
    );
    batch.committed = this.deps.track(written.then(() => this.deps.logCommitted(batch.logged))).finally(() => {
      if (!ran) {
        // Failed before its callback ran: everything queued since it opened was its.
        batch.writes = this.queue;
        this.queue = [];
      }
      if (this.openBatch === batch) this.openBatch = undefined;
      for (const w of batch.writes) {
        const pending = this.pendingByKind[w.kind];
        if (pending.get(w.key) === w) pending.delete(w.key);
      }
    });
    batch.committed.catch((err: unknown) => {
      // A peer's records are not lost: unacknowledged, its origin sends them again.
      const fromPeers = batch.writes.filter((w) => w.changes !== undefined).length;
      const decisions = batch.writes.length - fromPeers;
      logger.error(
        { records: decisions, peerRecords: fromPeers, err: describeError(err) },
        decisions > 0 ? 'greylist decisions could not be written: their records are lost' : 'records from a peer could not be written: the peer sends them again',
      );
    });
    return batch;
  }
}

/** mergeTriplet or mergeClient, by kind. */
function mergeRecord(kind: RecordKind, a: TripletRecord | ClientRecord, b: TripletRecord | ClientRecord): TripletRecord | ClientRecord {
  return kind === 'triplet' ? mergeTriplet(a as TripletRecord, b as TripletRecord) : mergeClient(a as ClientRecord, b as ClientRecord);
}

/** `meta` key of the last replication log sequence number. */
const REPLOG_SEQ_KEY = 'replog-seq';

/**
 * Appends to the replication log inside one write transaction. The last sequence number is kept
 * in `meta`, read once per transaction (a point read instead of a reverse cursor scan, measured at
 * a third of a write's cost) and written back once by finish(), which returns the entries appended;
 * LMDB serialises writers, so a CLI process writing the same store stays correct.
 */
export function logAppender(env: LmdbEnv, tx: WriteScope): { append(entry: Omit<ReplogEntry, 'seq'>): void; finish(): ReplogEntry[] } {
  // Read at the first append: a transaction of peers' records alone appends nothing.
  let seq = -1;
  const appended: ReplogEntry[] = [];
  return {
    append: (entry) => {
      if (seq < 0) seq = storedLastSeq(env) ?? lastSeqIn(env);
      seq++;
      const logged = { ...entry, seq } as ReplogEntry;
      tx.put(env.replog, seq, encodeReplogEntry(logged));
      appended.push(logged);
    },
    finish: () => {
      if (seq >= 0) tx.put(env.meta, REPLOG_SEQ_KEY, encodeMetaValue(seq));
      return appended;
    },
  };
}

/** The last sequence number appended to the log, from `meta` (undefined before the first append). */
export function storedLastSeq(env: LmdbEnv): number | undefined {
  const stored = env.meta.get(REPLOG_SEQ_KEY);
  return stored ? Number(decodeMetaValue(stored, REPLOG_SEQ_KEY)) : undefined;
}

/** The highest sequence number in the replication log (0 when empty), by a reverse cursor. */
export function lastSeqIn(env: LmdbEnv): number {
  let last: unknown;
  for (const k of env.replog.getKeys({ reverse: true, limit: 1 })) last = k;
  return typeof last === 'number' ? last : 0;
}
