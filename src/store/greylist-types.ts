// The greylist store contract: the records the policy service keeps and the interface it reaches
// the store through. Records are mergeable state (DESIGN.md s4), so replicas converge whatever the
// order, duplication or replay of updates: first = min, last = max, per-node counters = max per node.

/** Greylist triplet state (client net, normalised sender, recipient). Times are Clock ms. */
export interface TripletRecord {
  /** Earliest time any node saw this triplet (merge: min). */
  firstSeenMs: number;
  /** Latest time any node saw this triplet (merge: max). */
  lastSeenMs: number;
  /** Earliest time a retry was accepted after the delay, or 0 when never (merge: min over non-zero). */
  passedAtMs: number;
  /** Accepted retries counted per node id (merge: max per node); total = sum. */
  passes: Record<string, number>;
  /**
   * Generation of the triplet: bumped when a triplet starts over (retry window missed, max age
   * passed), so an older generation held by a replica can never bring the old first-seen or
   * passed-at back. Merge: the higher epoch wins whole; equal epochs merge field by field. Absent = 0.
   */
  epoch?: number;
  /**
   * When an admin last deleted the triplet (`greylist delete`), or absent/0 when never. Merge: max,
   * across epochs too. The record is a tombstone (isDeletedTriplet) while its generation began at
   * or before that time: a replica's copy begun earlier, of this epoch or a higher one made before
   * the deletion reached it, cannot bring the triplet back. A generation begun after it (the next
   * decision starts one, first seen then) lives. Replicated, and expires after max-age, like any record.
   */
  deletedAtMs?: number;
}

/** Client auto-whitelist state, per full client IP. */
export interface ClientRecord {
  firstSeenMs: number;
  lastSeenMs: number;
  /** Last time this node counted a pass for this client (postgrey counts at most one per hour), merge: max. */
  lastCountedMs: number;
  /** Passes counted per node id (merge: max per node); auto-whitelisted when the sum reaches N. */
  passes: Record<string, number>;
}

/** What one decision wants to write; both optional. */
export interface GreylistUpdate {
  triplet?: TripletRecord;
  client?: ClientRecord;
}

/** What decideNow returns: decide's result, and the write it queued (none when nothing changed). */
export interface Decided<T> {
  result: T;
  /** Settles once the queued update is committed; rejects with a StoreError when it could not be. */
  written: Promise<void> | undefined;
}

/** Options of GreylistStore.decideNow. */
export interface DecideOptions {
  /** Decide and check the update as a real decision would, but write nothing (`written` is undefined). */
  dryRun?: boolean;
}

/**
 * The policy service's view of the store. Contract: `decideNow` reads both records (the newest
 * state: a decision queued and not yet committed counts), calls `decide` once, synchronously, and
 * queues what it returns (plus the replication log entries) for the next write transaction, which
 * merges each record into the stored one and takes every decision queued meanwhile. It returns
 * decide's result at once and `written`, to wait on before the answer is given: an answered
 * decision is committed, so a crash (kill -9) loses none. `transact` is the same as a promise. An
 * update that only moves last-seen forward by under a minute may not be written (`written` is then
 * undefined). Any store failure (cannot open, map full, I/O error) throws (rejects) a StoreError
 * (STORE_ERR_*): the caller fails open. Writes are durable at the next background sync, never
 * fsync'd per decision. With `dryRun` (`mxsentry check`), decideNow validates the update and checks
 * that it fits, so it throws what a real decision would throw, and queues nothing. Keys are at most
 * 1000 bytes of UTF-8 (STORE_ERR_INVALID beyond: record-codec.ts MAX_KEY_BYTES).
 */
export interface GreylistStore {
  decideNow<T>(
    tripletKey: string,
    clientKey: string,
    decide: (triplet: TripletRecord | undefined, client: ClientRecord | undefined) => { update: GreylistUpdate; result: T },
    opts?: DecideOptions,
  ): Decided<T>;
  transact<T>(
    tripletKey: string,
    clientKey: string,
    decide: (triplet: TripletRecord | undefined, client: ClientRecord | undefined) => { update: GreylistUpdate; result: T },
  ): Promise<T>;
  /** True while the store is open and healthy; false after a failure until it recovers. */
  isHealthy(): boolean;
}

/** Merge two triplet records (commutative, associative, idempotent). */
export function mergeTriplet(a: TripletRecord, b: TripletRecord): TripletRecord {
  const ea = a.epoch ?? 0;
  const eb = b.epoch ?? 0;
  const deletedAtMs = Math.max(a.deletedAtMs ?? 0, b.deletedAtMs ?? 0);
  let merged: TripletRecord;
  if (ea !== eb) {
    merged = { ...(ea > eb ? a : b) };
    delete merged.deletedAtMs;
  } else {
    merged = {
      ...(ea !== 0 ? { epoch: ea } : {}),
      firstSeenMs: Math.min(a.firstSeenMs, b.firstSeenMs),
      lastSeenMs: Math.max(a.lastSeenMs, b.lastSeenMs),
      passedAtMs: minNonZero(a.passedAtMs, b.passedAtMs),
      passes: mergeCounters(a.passes, b.passes),
    };
  }
  if (deletedAtMs > 0) merged.deletedAtMs = deletedAtMs;
  return merged;
}

/**
 * True for a tombstone: a triplet whose generation began at or before its last deletion by an
 * admin; kept until it expires so that replicas agree.
 */
export function isDeletedTriplet(t: TripletRecord): boolean {
  return t.deletedAtMs !== undefined && t.deletedAtMs > 0 && t.firstSeenMs <= t.deletedAtMs;
}

/**
 * True for a triplet that never passed and was last seen more than `retryWindowMs` ago: postgrey's
 * maintenance deletes it, and a decision treats it as unknown (policy/greylist.ts), so the sweep may
 * delete it and replication neither sends nor takes it. Tombstones are not: they live for max-age.
 */
export function isRetryExpired(t: TripletRecord, nowMs: number, retryWindowMs: number): boolean {
  return t.passedAtMs === 0 && nowMs - t.lastSeenMs > retryWindowMs && !isDeletedTriplet(t);
}

/**
 * The expiry rule, one for the sweep, replication and decisions: a record not seen for max-age, or a
 * retry-expired triplet (isRetryExpired), is gone.
 */
export function isExpiredRecord(kind: 'triplet' | 'client', r: TripletRecord | ClientRecord, nowMs: number, maxAgeMs: number, retryWindowMs: number): boolean {
  return nowMs - r.lastSeenMs > maxAgeMs || (kind === 'triplet' && isRetryExpired(r as TripletRecord, nowMs, retryWindowMs));
}

/** Merge two client records (commutative, associative, idempotent). */
export function mergeClient(a: ClientRecord, b: ClientRecord): ClientRecord {
  return {
    firstSeenMs: Math.min(a.firstSeenMs, b.firstSeenMs),
    lastSeenMs: Math.max(a.lastSeenMs, b.lastSeenMs),
    lastCountedMs: Math.max(a.lastCountedMs, b.lastCountedMs),
    passes: mergeCounters(a.passes, b.passes),
  };
}

/** Sum of per-node counters. */
export function totalPasses(passes: Record<string, number>): number {
  let sum = 0;
  for (const n of Object.values(passes)) sum += n;
  return sum;
}

function minNonZero(a: number, b: number): number {
  if (a === 0) return b;
  if (b === 0) return a;
  return Math.min(a, b);
}

function mergeCounters(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = { ...a };
  for (const [node, n] of Object.entries(b)) out[node] = Math.max(out[node] ?? 0, n);
  return out;
}

/** Last-seen moves smaller than this are not written (see LmdbGreylistStore.transact). */
export const LAST_SEEN_REFRESH_MS = 60_000;

/**
 * True when `next` is absent, or differs from `current` only by a last-seen time less than
 * LAST_SEEN_REFRESH_MS later: writing it would change nothing that any decision depends on.
 */
export function isRefreshOnly<R extends TripletRecord | ClientRecord>(current: R | undefined, next: R | undefined): boolean {
  if (next === undefined) return true;
  if (current === undefined) return false;
  if (next.lastSeenMs - current.lastSeenMs >= LAST_SEEN_REFRESH_MS) return false;
  const a = current as Partial<TripletRecord & ClientRecord>;
  const b = next as Partial<TripletRecord & ClientRecord>;
  return (
    a.firstSeenMs === b.firstSeenMs &&
    a.passedAtMs === b.passedAtMs &&
    a.lastCountedMs === b.lastCountedMs &&
    (a.epoch ?? 0) === (b.epoch ?? 0) &&
    sameCounters(current.passes, next.passes)
  );
}

function sameCounters(a: Record<string, number>, b: Record<string, number>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => a[k] === b[k]);
}
