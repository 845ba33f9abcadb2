// Tests for the per-bucket digests: independent of insertion order and counter order, one changed
// record changes exactly its bucket, the window leaves out expired and just-changed records, and
// recordsInBuckets yields exactly the records of the asked buckets, batched.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { ClientRecord, TripletRecord } from '../../../src/store/greylist-types.js';
import type { KeyedRecord, ListOptions } from '../../../src/store/lmdb-greylist-store.js';
import { bucketOf, canonicalRecord, computeDigest, diffDigests, recordsInBuckets, type DigestSource } from '../../../src/store/replication/bucket-digest.js';

const s = suite('store/replication/bucket-digest');

const T = 1_700_000_000_000;
const WINDOW = { fromMs: 0, toMs: T + 1_000_000 };

/** An in-memory DigestSource paging like the LMDB store (key order, startAfter, limit). */
function source(triplets: Map<string, TripletRecord>, clients = new Map<string, ClientRecord>()): DigestSource {
  const page = <R>(m: Map<string, R>, o: ListOptions = {}): Promise<KeyedRecord<R>[]> => {
    const keys = [...m.keys()].sort().filter((k) => o.startAfter === undefined || k > o.startAfter);
    return Promise.resolve(keys.slice(0, o.limit ?? 1000).map((key) => ({ key, record: m.get(key)! })));
  };
  return { listTriplets: (o) => page(triplets, o), listClients: (o) => page(clients, o) };
}

function triplet(i: number, extra: Partial<TripletRecord> = {}): TripletRecord {
  return { firstSeenMs: T + i, lastSeenMs: T + i, passedAtMs: 0, passes: {}, ...extra };
}

function records(n: number): Map<string, TripletRecord> {
  const m = new Map<string, TripletRecord>();
  for (let i = 0; i < n; i++) m.set(`198.51.100/s${i}@example.org/r@example.net`, triplet(i));
  return m;
}

s('the digest does not depend on insertion order nor on counter order', async () => {
  const a = records(2500);
  const b = new Map([...a.entries()].reverse());
  a.set('k', triplet(1, { passes: { n1: 1, n2: 2 } }));
  b.set('k', triplet(1, { passes: { n2: 2, n1: 1 } }));
  const da = await computeDigest(source(a), WINDOW, 64);
  const db = await computeDigest(source(b), WINDOW, 64);
  assert.equal(diffDigests(da, db), { triplet: [], client: [] });
  assert.is(canonicalRecord('triplet', a.get('k')!), canonicalRecord('triplet', b.get('k')!));
});

s('one changed or missing record shows up as exactly its bucket', async () => {
  const a = records(300);
  const b = new Map(a);
  const key = [...a.keys()][17]!;
  b.set(key, { ...a.get(key)!, lastSeenMs: T + 99 });
  const diff = diffDigests(await computeDigest(source(a), WINDOW, 256), await computeDigest(source(b), WINDOW, 256));
  assert.equal(diff, { triplet: [bucketOf(key, 256)], client: [] });
  const c = new Map(a);
  c.delete(key);
  assert.equal(diffDigests(await computeDigest(source(a), WINDOW, 256), await computeDigest(source(c), WINDOW, 256)).triplet, [bucketOf(key, 256)]);
  const epochOnly = new Map(a);
  epochOnly.set(key, { ...a.get(key)!, epoch: 2 });
  assert.equal(diffDigests(await computeDigest(source(a), WINDOW, 256), await computeDigest(source(epochOnly), WINDOW, 256)).triplet, [bucketOf(key, 256)]);
  const deleted = new Map(a);
  deleted.set(key, { ...a.get(key)!, deletedAtMs: T + 50 });
  assert.equal(diffDigests(await computeDigest(source(a), WINDOW, 256), await computeDigest(source(deleted), WINDOW, 256)).triplet, [bucketOf(key, 256)]);
  // A live record's canonical form has no deletion field: nodes that never deleted hash as before.
  assert.is(canonicalRecord('triplet', triplet(3)), JSON.stringify([0, T + 3, T + 3, 0, []]));
});

s('records outside the window (expired, or changed within the settle time) are left out', async () => {
  const a = records(10);
  const b = new Map(a);
  b.set('old', triplet(-5000));
  b.set('fresh', triplet(500));
  const window = { fromMs: T - 1000, toMs: T + 100 };
  assert.equal(diffDigests(await computeDigest(source(a), window, 16), await computeDigest(source(b), window, 16)), { triplet: [], client: [] });
});

s('client records are digested apart from triplets', async () => {
  const clients = new Map<string, ClientRecord>([['192.0.2.1', { firstSeenMs: T, lastSeenMs: T, lastCountedMs: T, passes: { n1: 1 } }]]);
  const d1 = await computeDigest(source(new Map(), clients), WINDOW, 8);
  const d2 = await computeDigest(source(new Map(), new Map()), WINDOW, 8);
  assert.equal(diffDigests(d1, d2), { triplet: [], client: [bucketOf('192.0.2.1', 8)] });
});

s('recordsInBuckets yields exactly the records of the asked buckets, in batches', async () => {
  const a = records(3000);
  const wanted = [1, 5, 9];
  const batches: number[] = [];
  const got: string[] = [];
  for await (const batch of recordsInBuckets(source(a), { triplet: wanted, client: [] }, 16, WINDOW, 100)) {
    batches.push(batch.length);
    got.push(...batch.map((r) => r.key));
  }
  const expected = [...a.keys()].filter((k) => wanted.includes(bucketOf(k, 16))).sort();
  assert.equal(got.sort(), expected);
  assert.ok(batches.every((n) => n <= 100));
  assert.ok(expected.length > 100);
});

s('mismatched bucket counts are refused', () => {
  assert.throws(() => diffDigests({ buckets: 2, triplet: ['a', 'b'], client: ['a', 'b'] }, { buckets: 4, triplet: [], client: [] }));
});

s.run();
