// Clock skew on replicated records: times later than the receiving node's clock allows are clamped
// before a merge. Called by the replicator for every incoming record; it never drops a record (expiry
// is the replicator's own decision).
import type { ClientRecord, TripletRecord } from '../greylist-types.js';

/** Clamps a record's times to at most `maxMs` (RFC-free rule of issue 4: future timestamps are clamped). */
export function clampFutureTimes<R extends TripletRecord | ClientRecord>(record: R, maxMs: number): R {
  const r = record as TripletRecord & ClientRecord;
  const over =
    r.firstSeenMs > maxMs || r.lastSeenMs > maxMs || (r.passedAtMs ?? 0) > maxMs || (r.lastCountedMs ?? 0) > maxMs || (r.deletedAtMs ?? 0) > maxMs;
  if (!over) return record;
  const out: Record<string, unknown> = { ...record, firstSeenMs: Math.min(r.firstSeenMs, maxMs), lastSeenMs: Math.min(r.lastSeenMs, maxMs) };
  if ('passedAtMs' in record) out.passedAtMs = Math.min(r.passedAtMs, maxMs);
  if ('lastCountedMs' in record) out.lastCountedMs = Math.min(r.lastCountedMs, maxMs);
  // A deletion time from the future would keep every new generation of the triplet a tombstone
  // (isDeletedTriplet: first seen <= deleted at) until that time: the sender is deferred forever.
  if ('deletedAtMs' in record && r.deletedAtMs !== undefined) out.deletedAtMs = Math.min(r.deletedAtMs, maxMs);
  return out as R;
}
