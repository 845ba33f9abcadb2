// Per-bucket digests of the live greylist records, and the records of chosen buckets, for the
// anti-entropy repair that heals what the replication log no longer holds (trimmed log, restored disk,
// brand-new node). Used by replicator.ts on both ends of a link. Read-only: it never writes the store.
// A bucket's hash is the XOR of its records' hashes, so it does not depend on scan order, and a scan
// that races with writes only causes a spurious difference that the next round clears.
import { createHash } from 'node:crypto';
import { isRetryExpired, type ClientRecord, type TripletRecord } from '../greylist-types.js';
import type { KeyedRecord, ListOptions } from '../lmdb-greylist-store.js';
import type { RecordKind } from '../record-codec.js';
import type { WireRecord } from './frame-codec.js';

/** Buckets per record kind: 256 keeps a digest at ~9 KB and a repair at 1/256 of the records. */
export const DEFAULT_DIGEST_BUCKETS = 256;

/** Records read per store call; the scan yields to the event loop between pages (~5 ms of work each). */
const PAGE_SIZE = 250;

/** What the digest reads: the listing half of LmdbGreylistStore. */
export interface DigestSource {
  listTriplets(opts?: ListOptions): Promise<KeyedRecord<TripletRecord>[]>;
  listClients(opts?: ListOptions): Promise<KeyedRecord<ClientRecord>[]>;
}

/** Hex hashes (32 digits) per bucket and kind. */
export interface BucketDigest {
  buckets: number;
  triplet: string[];
  client: string[];
}

/** Buckets whose hashes differ, per kind. */
export interface DigestDiff {
  triplet: number[];
  client: number[];
}

/** Bucket of a key: the first two bytes of its SHA-256 modulo the (power of two) bucket count. */
export function bucketOf(key: string, buckets: number): number {
  const h = createHash('sha256').update(key, 'utf8').digest();
  return h.readUInt16BE(0) & (buckets - 1);
}

/**
 * Canonical form of a record: fixed field order, counters sorted by node id, epoch 0 when absent, a
 * tombstone's deletion time last.
 * Two nodes holding the same state produce the same text whatever order their counters were added in.
 */
export function canonicalRecord(kind: RecordKind, record: TripletRecord | ClientRecord): string {
  const passes = Object.entries(record.passes).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  if (kind === 'triplet') {
    const t = record as TripletRecord;
    // A tombstone's deletion time only when set, so a live record hashes as it always did.
    const fields: unknown[] = [t.epoch ?? 0, t.firstSeenMs, t.lastSeenMs, t.passedAtMs, passes];
    if (t.deletedAtMs) fields.push(t.deletedAtMs);
    return JSON.stringify(fields);
  }
  const c = record as ClientRecord;
  return JSON.stringify([c.firstSeenMs, c.lastSeenMs, c.lastCountedMs, passes]);
}

/** 16-byte hash of one keyed record. */
export function recordHash(kind: RecordKind, key: string, record: TripletRecord | ClientRecord): Buffer {
  return createHash('sha256').update(`${kind}\0${key}\0${canonicalRecord(kind, record)}`, 'utf8').digest().subarray(0, 16);
}

/**
 * Which records a digest round covers: lastSeenMs in [fromMs, toMs). Before `fromMs` they are expired
 * (the expiry sweep deletes them; repairing them would bring deleted records back); from `toMs` on they
 * changed so recently that the log is still carrying them, and hashing them would only report
 * differences that close by themselves. The sender chooses the window and the receiver uses the same.
 */
export interface DigestWindow {
  fromMs: number;
  toMs: number;
  /**
   * This node's retry window (never sent: every node has the same one, like max-age): a triplet that
   * never passed and was last seen more than this before `toMs` is expired too (isRetryExpired).
   */
  retryWindowMs?: number;
}

/** True when the record's lastSeenMs falls in the window and it is not a retry-expired triplet. */
export function inWindow(kind: RecordKind, record: TripletRecord | ClientRecord, window: DigestWindow): boolean {
  if (record.lastSeenMs < window.fromMs || record.lastSeenMs >= window.toMs) return false;
  return kind !== 'triplet' || window.retryWindowMs === undefined || !isRetryExpired(record as TripletRecord, window.toMs, window.retryWindowMs);
}

const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function* pages(source: DigestSource, kind: RecordKind): AsyncGenerator<KeyedRecord<TripletRecord | ClientRecord>[]> {
  let after: string | undefined;
  for (;;) {
    const opts: ListOptions = after === undefined ? { limit: PAGE_SIZE } : { limit: PAGE_SIZE, startAfter: after };
    const page = kind === 'triplet' ? await source.listTriplets(opts) : await source.listClients(opts);
    if (page.length === 0) return;
    yield page;
    if (page.length < PAGE_SIZE) return;
    after = page[page.length - 1]!.key;
    await yieldToLoop();
  }
}

/** Computes the digest of the records in the window, page by page. */
export async function computeDigest(source: DigestSource, window: DigestWindow, buckets = DEFAULT_DIGEST_BUCKETS): Promise<BucketDigest> {
  const out: BucketDigest = { buckets, triplet: [], client: [] };
  for (const kind of ['triplet', 'client'] as const) {
    const acc = Array.from({ length: buckets }, () => Buffer.alloc(16));
    for await (const page of pages(source, kind)) {
      for (const { key, record } of page) {
        if (!inWindow(kind, record, window)) continue;
        const h = recordHash(kind, key, record);
        const slot = acc[bucketOf(key, buckets)]!;
        for (let i = 0; i < 16; i++) slot[i]! ^= h[i]!;
      }
    }
    out[kind] = acc.map((b) => b.toString('hex'));
  }
  return out;
}

/** Buckets whose hashes differ between two digests of the same bucket count. */
export function diffDigests(a: BucketDigest, b: BucketDigest): DigestDiff {
  if (a.buckets !== b.buckets) throw new Error(`digest bucket counts differ (${a.buckets} vs ${b.buckets})`);
  const differing = (x: string[], y: string[]): number[] => x.flatMap((h, i) => (h === y[i] ? [] : [i]));
  return { triplet: differing(a.triplet, b.triplet), client: differing(a.client, b.client) };
}

/**
 * The records of the given buckets in the window, in batches of at most `batchSize`, kind by kind. Each batch
 * is produced on demand, so a large repair never holds the whole store in memory.
 */
export async function* recordsInBuckets(
  source: DigestSource,
  diff: DigestDiff,
  buckets: number,
  window: DigestWindow,
  batchSize: number,
): AsyncGenerator<WireRecord[]> {
  let batch: WireRecord[] = [];
  for (const kind of ['triplet', 'client'] as const) {
    const wanted = new Set(diff[kind]);
    if (wanted.size === 0) continue;
    for await (const page of pages(source, kind)) {
      for (const { key, record } of page) {
        if (!wanted.has(bucketOf(key, buckets)) || !inWindow(kind, record, window)) continue;
        batch.push(kind === 'triplet' ? { kind, key, record: record as TripletRecord } : { kind, key, record: record as ClientRecord });
        if (batch.length >= batchSize) {
          yield batch;
          batch = [];
        }
      }
    }
  }
  if (batch.length > 0) yield batch;
}
