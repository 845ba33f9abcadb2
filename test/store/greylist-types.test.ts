// Merge laws of the greylist records (commutative, associative, idempotent) over random records,
// tombstones included, the epoch rule that keeps a restarted triplet from being merged back to its
// old state, and the tombstone rule that keeps a deleted one from coming back.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { isDeletedTriplet, mergeClient, mergeTriplet, type ClientRecord, type TripletRecord } from '../../src/store/greylist-types.js';
import { decideGreylist, DEFAULT_GREYLIST_CONFIG } from '../../src/policy/greylist.js';

const s = suite('store/greylist-types merge');

function prng(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x / 2 ** 32;
  };
}

function randomTriplet(r: () => number): TripletRecord {
  const first = Math.floor(r() * 1e6);
  const passes: Record<string, number> = {};
  for (const node of ['a', 'b', 'c']) if (r() < 0.5) passes[node] = Math.floor(r() * 5);
  const rec: TripletRecord = { firstSeenMs: first, lastSeenMs: first + Math.floor(r() * 1e5), passedAtMs: r() < 0.5 ? 0 : first + Math.floor(r() * 1e5), passes };
  if (r() < 0.4) rec.epoch = 1 + Math.floor(r() * 2);
  if (r() < 0.3) rec.deletedAtMs = first + Math.floor(r() * 1e5);
  return rec;
}

function randomClient(r: () => number): ClientRecord {
  const first = Math.floor(r() * 1e6);
  const passes: Record<string, number> = {};
  for (const node of ['a', 'b', 'c']) if (r() < 0.5) passes[node] = Math.floor(r() * 5);
  return { firstSeenMs: first, lastSeenMs: first + Math.floor(r() * 1e5), lastCountedMs: first + Math.floor(r() * 1e5), passes };
}

const norm = (x: unknown): string => JSON.stringify(x, (_k, v: unknown) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort()) : v));

s('triplet merge is commutative, associative and idempotent (2,000 random cases)', () => {
  const r = prng(20261125);
  for (let i = 0; i < 2000; i++) {
    const a = randomTriplet(r);
    const b = randomTriplet(r);
    const c = randomTriplet(r);
    assert.is(norm(mergeTriplet(a, b)), norm(mergeTriplet(b, a)), 'commutative');
    assert.is(norm(mergeTriplet(mergeTriplet(a, b), c)), norm(mergeTriplet(a, mergeTriplet(b, c))), 'associative');
    assert.is(norm(mergeTriplet(a, a)), norm(a), 'idempotent');
  }
});

s('client merge is commutative, associative and idempotent (2,000 random cases)', () => {
  const r = prng(7);
  for (let i = 0; i < 2000; i++) {
    const a = randomClient(r);
    const b = randomClient(r);
    const c = randomClient(r);
    assert.is(norm(mergeClient(a, b)), norm(mergeClient(b, a)));
    assert.is(norm(mergeClient(mergeClient(a, b), c)), norm(mergeClient(a, mergeClient(b, c))));
    assert.is(norm(mergeClient(a, a)), norm(a));
  }
});

s('a triplet that starts over is not merged back to its old generation', () => {
  const cfg = { ...DEFAULT_GREYLIST_CONFIG, delaySec: 60 };
  const t0 = 1_000_000_000;
  const old: TripletRecord = { firstSeenMs: t0, lastSeenMs: t0 + 1000, passedAtMs: 0, passes: {} };
  const later = t0 + 3 * 86_400_000; // past the 2-day retry window, never passed
  const d = decideGreylist(old, undefined, later, cfg, 'node-a');
  assert.is(d.verdict, 'defer');
  const restarted = d.update.triplet!;
  assert.is(restarted.epoch, 1);
  const merged = mergeTriplet(old, restarted);
  assert.is(merged.firstSeenMs, later, 'the replica holding the old record cannot revive its first-seen');
  const retry = decideGreylist(merged, undefined, later + 5_000, cfg, 'node-a');
  assert.is(retry.verdict, 'defer', 'an early retry after the restart is still deferred');
});

s('a tombstone absorbs live state of its epoch, loses to a newer epoch, and a decision on it starts over', () => {
  const cfg = { ...DEFAULT_GREYLIST_CONFIG, delaySec: 60 };
  const t0 = 1_000_000_000;
  const live: TripletRecord = { firstSeenMs: t0, lastSeenMs: t0 + 120_000, passedAtMs: t0 + 120_000, passes: { a: 1 } };
  const tomb: TripletRecord = { ...live, lastSeenMs: t0 + 200_000, deletedAtMs: t0 + 200_000 };
  // A replica that saw a later retry in the same epoch, before it learnt of the deletion.
  const lagging: TripletRecord = { ...live, lastSeenMs: t0 + 300_000, passes: { a: 1, b: 1 } };
  const merged = mergeTriplet(lagging, tomb);
  assert.ok(isDeletedTriplet(merged), 'still deleted');
  assert.is(merged.lastSeenMs, t0 + 300_000);
  const d = decideGreylist(merged, undefined, t0 + 400_000, cfg, 'b');
  assert.is(d.verdict, 'defer', 'the deleted triplet is greylisted again although it had passed');
  assert.is(d.update.triplet!.epoch, 1);
  assert.is(d.update.triplet!.firstSeenMs, t0 + 400_000);
  assert.is(d.update.triplet!.deletedAtMs, undefined);
  const after = mergeTriplet(merged, d.update.triplet!);
  assert.not.ok(isDeletedTriplet(after), 'the new epoch wins over the tombstone');
  assert.is(after.firstSeenMs, t0 + 400_000);
  assert.is(after.passedAtMs, 0);
});

s('a deletion also removes a newer epoch begun before it (a restart the deleting node had not seen yet)', () => {
  const t0 = 1_000_000_000;
  const DAY = 86_400_000;
  // A still holds epoch 0 and deletes it; B, cut off, had started the triplet over (epoch 1) earlier.
  const tombAtA: TripletRecord = { firstSeenMs: t0, lastSeenMs: t0 + 3 * DAY + 3_600_000, passedAtMs: 0, passes: {}, deletedAtMs: t0 + 3 * DAY + 3_600_000 };
  const restartedAtB: TripletRecord = { epoch: 1, firstSeenMs: t0 + 3 * DAY, lastSeenMs: t0 + 3 * DAY + 61_000, passedAtMs: t0 + 3 * DAY + 61_000, passes: { b: 1 } };
  const healed = mergeTriplet(tombAtA, restartedAtB);
  assert.is(healed.epoch, 1);
  assert.is(healed.deletedAtMs, tombAtA.deletedAtMs);
  assert.ok(isDeletedTriplet(healed), 'the generation B began before the deletion is deleted too');
  // A generation begun after the deletion lives, whatever the epoch numbers.
  const newLife: TripletRecord = { epoch: 1, firstSeenMs: t0 + 4 * DAY, lastSeenMs: t0 + 4 * DAY, passedAtMs: 0, passes: {} };
  assert.not.ok(isDeletedTriplet(mergeTriplet(tombAtA, newLife)));
  assert.not.ok(isDeletedTriplet(mergeTriplet(healed, { ...newLife, epoch: 2 })));
});

s.run();
