// Tests for the LMDB greylist store: round trips, transaction atomicity and concurrency, persistence,
// purge and expiry, merging remote updates, the replication log and cursors, the size limit
// (STORE_ERR_FULL and recovery) and corrupt records. Each test uses a fresh temp directory.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ManualClock } from '../../src/util/clock.js';
import { StoreError } from '../../src/util/errors.js';
import { createSilentLogger, type Logger } from '../../src/util/logger.js';
import { totalPasses, type ClientRecord, type TripletRecord } from '../../src/store/greylist-types.js';
import { LmdbEnv } from '../../src/store/lmdb-env.js';
import { LmdbGreylistStore } from '../../src/store/lmdb-greylist-store.js';
import { ManualScheduler } from '../../src/store/scheduler.js';
import { capturingLogger } from '../helpers/capturing-logger.js';
import { makeImmutable } from '../helpers/immutable-file.js';

const s = suite('store/lmdb-greylist-store');

const T0 = 1_700_000_000_000;
const DAY_MS = 86_400_000;

const dirs: string[] = [];
const open: LmdbGreylistStore[] = [];

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'mxsentry-store-'));
  dirs.push(d);
  return d;
}

async function openStore(
  dataDir: string,
  clock = new ManualClock(T0),
  extra: { logger?: Logger; mapSizeBytes?: number; scheduler?: ManualScheduler } = {},
): Promise<LmdbGreylistStore> {
  const store = await LmdbGreylistStore.open({ dataDir, clock, logger: extra.logger ?? createSilentLogger(), ...extra });
  open.push(store);
  return store;
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<StoreError> {
  try {
    await p;
  } catch (err) {
    assert.instance(err, StoreError, `expected StoreError ${code}, got ${String(err)}`);
    assert.is((err as StoreError).code, code);
    return err as StoreError;
  }
  assert.unreachable(`expected rejection with ${code}`);
  throw new Error('unreachable');
}

function newTriplet(nowMs: number): TripletRecord {
  return { firstSeenMs: nowMs, lastSeenMs: nowMs, passedAtMs: 0, passes: {} };
}

function newClient(nowMs: number): ClientRecord {
  return { firstSeenMs: nowMs, lastSeenMs: nowMs, lastCountedMs: 0, passes: {} };
}

s.after.each(async () => {
  for (const st of open.splice(0)) await st.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

s('a decision that only refreshes last-seen by under a minute writes nothing; a larger move is written', async () => {
  const store = await openStore(tempDir());
  const node = store.getNodeId();
  const triplet: TripletRecord = { firstSeenMs: T0, lastSeenMs: T0, passedAtMs: T0, passes: { [node]: 1 } };
  await store.transact('t', 'c', () => ({ update: { triplet }, result: null }));
  const before = await store.getLastSeq();
  await store.transact('t', 'c', (t) => ({ update: { triplet: { ...t!, lastSeenMs: T0 + 30_000 } }, result: null }));
  assert.is(await store.getLastSeq(), before, 'no log entry, no write');
  assert.is((await store.read('t', 'c')).triplet?.lastSeenMs, T0);
  await store.transact('t', 'c', (t) => ({ update: { triplet: { ...t!, lastSeenMs: T0 + 61_000 } }, result: null }));
  assert.is((await store.read('t', 'c')).triplet?.lastSeenMs, T0 + 61_000);
  await store.transact('t', 'c', (t) => ({ update: { triplet: { ...t!, lastSeenMs: T0 + 62_000, passes: { [node]: 2 } } }, result: null }));
  assert.equal((await store.read('t', 'c')).triplet?.passes, { [node]: 2 }, 'any other change is written at once');
  await store.close();
});

s('round trip: transact writes triplet and client, read and list return them, the log has both', async () => {
  const store = await openStore(tempDir());
  const node = store.getNodeId();
  const triplet: TripletRecord = { firstSeenMs: T0, lastSeenMs: T0 + 61_000, passedAtMs: T0 + 61_000, passes: { [node]: 1 } };
  const client: ClientRecord = { firstSeenMs: T0, lastSeenMs: T0 + 61_000, lastCountedMs: T0 + 61_000, passes: { [node]: 1 } };
  const seen: unknown[] = [];
  const result = await store.transact('192.0.2/s@a.example/r@b.example', '192.0.2.7', (t, c) => {
    seen.push(t, c);
    return { update: { triplet, client }, result: 'pass' };
  });
  assert.is(result, 'pass');
  // decide runs once, on the newest state; the write transaction merges what it returned.
  assert.equal(seen, [undefined, undefined]);
  const got = await store.read('192.0.2/s@a.example/r@b.example', '192.0.2.7');
  assert.equal(got, { triplet, client });
  assert.equal(await store.listTriplets(), [{ key: '192.0.2/s@a.example/r@b.example', record: triplet }]);
  assert.equal(await store.listClients(), [{ key: '192.0.2.7', record: client }]);
  const log = await store.readLog(0, 10);
  assert.is(log.length, 2);
  assert.equal(
    log.map((e) => [e.seq, e.kind, e.key, e.originNode, e.atMs]),
    [
      [1, 'triplet', '192.0.2/s@a.example/r@b.example', node, T0],
      [2, 'client', '192.0.2.7', node, T0],
    ],
  );
  assert.equal(log[0]?.record, triplet);
  assert.equal(log[1]?.record, client);
  const counts = await store.count();
  assert.is(counts.triplets, 1);
  assert.is(counts.clients, 1);
  assert.is(counts.replogEntries, 2);
  assert.ok(counts.usedBytes > 0 && counts.usedBytes < counts.limitBytes);
  assert.ok(store.isHealthy());
});

s('an update with only a triplet writes only the triplet and one log entry', async () => {
  const store = await openStore(tempDir());
  await store.transact('t1', 'c1', () => ({ update: { triplet: newTriplet(T0) }, result: null }));
  const got = await store.read('t1', 'c1');
  assert.equal(got.triplet, newTriplet(T0));
  assert.is(got.client, undefined);
  assert.is((await store.readLog(0, 10)).length, 1);
});

s('atomicity: decide throwing writes nothing and rejects with its own error', async () => {
  const store = await openStore(tempDir());
  const boom = new Error('decide failed');
  try {
    await store.transact('t1', 'c1', () => {
      throw boom;
    });
    assert.unreachable('should reject');
  } catch (err) {
    assert.is(err, boom);
  }
  assert.equal(await store.read('t1', 'c1'), { triplet: undefined, client: undefined });
  assert.equal(await store.readLog(0, 10), []);
  assert.is(await store.getLastSeq(), 0);
  assert.ok(store.isHealthy(), 'a caller error is not a store failure');
});

s('atomicity: an invalid record from decide is STORE_ERR_INVALID and nothing of that decision is written', async () => {
  const store = await openStore(tempDir());
  const bad = { ...newClient(T0), lastSeenMs: Number.NaN };
  await rejectsWith(
    store.transact('t1', 'c1', () => ({ update: { triplet: newTriplet(T0), client: bad }, result: 1 })),
    'STORE_ERR_INVALID',
  );
  assert.equal(await store.read('t1', 'c1'), { triplet: undefined, client: undefined });
  assert.is(await store.getLastSeq(), 0);
});

s('atomicity: a failing decision in a batch of concurrent ones rolls back only itself', async () => {
  const store = await openStore(tempDir());
  const results = await Promise.allSettled([
    store.transact('a', 'ca', () => ({ update: { triplet: newTriplet(T0), client: newClient(T0) }, result: 'a' })),
    store.transact('b', 'cb', () => {
      throw new Error('b fails');
    }),
    store.transact('c', 'cc', () => ({ update: { triplet: newTriplet(T0) }, result: 'c' })),
  ]);
  assert.equal(
    results.map((r) => r.status),
    ['fulfilled', 'rejected', 'fulfilled'],
  );
  assert.ok((await store.read('a', 'ca')).client);
  assert.equal(await store.read('b', 'cb'), { triplet: undefined, client: undefined });
  assert.ok((await store.read('c', 'cc')).triplet);
  const log = await store.readLog(0, 10);
  assert.equal(
    log.map((e) => [e.seq, e.key]),
    [
      [1, 'a'],
      [2, 'ca'],
      [3, 'c'],
    ],
  );
});

s('concurrency: 50 simultaneous transacts on one triplet each see the previous write (none lost)', async () => {
  const store = await openStore(tempDir());
  const node = store.getNodeId();
  const clock = new ManualClock(T0);
  const seenPasses: number[] = [];
  const all = [];
  for (let i = 0; i < 50; i++) {
    all.push(
      store.transact('hot', 'client', (t, c) => {
        const before = t?.passes[node] ?? 0;
        seenPasses.push(before);
        const triplet: TripletRecord = { ...(t ?? newTriplet(clock.nowMs())), passes: { [node]: before + 1 } };
        const client: ClientRecord = { ...(c ?? newClient(clock.nowMs())), passes: { [node]: (c?.passes[node] ?? 0) + 1 } };
        return { update: { triplet, client }, result: before };
      }),
    );
  }
  const results = await Promise.all(all);
  assert.equal(results, Array.from({ length: 50 }, (_, i) => i));
  const got = await store.read('hot', 'client');
  assert.is(got.triplet?.passes[node], 50);
  assert.is(got.client?.passes[node], 50);
  const log = await store.readLog(0, 1000);
  assert.is(log.length, 100);
  for (let i = 1; i < log.length; i++) assert.ok(log[i]!.seq > log[i - 1]!.seq, 'sequence strictly increasing');
});

s('decideNow decides at once; later decisions and read() see the queued record; one transaction writes them all', async () => {
  const store = await openStore(tempDir());
  const node = store.getNodeId();
  const bump = (t: TripletRecord | undefined): { update: { triplet: TripletRecord }; result: number } => {
    const before = t?.passes[node] ?? 0;
    return { update: { triplet: { ...(t ?? newTriplet(T0)), passes: { [node]: before + 1 } } }, result: before };
  };
  const first = store.decideNow('t', 'c', bump);
  const second = store.decideNow('t', 'c', bump);
  const third = store.decideNow('u', 'c', bump);
  assert.equal([first.result, second.result, third.result], [0, 1, 0], 'the second decision sees the first, still uncommitted');
  assert.is((await store.read('t', 'c')).triplet?.passes[node], 2, 'read() sees the queued record');
  assert.is(await store.getLastSeq(), 0, 'nothing committed yet');
  assert.ok(first.written && first.written === third.written, 'one transaction writes all three');
  await first.written;
  assert.is(await store.getLastSeq(), 3, 'committed when written settles');
  const unchanged = store.decideNow('t', 'c', (t) => ({ update: { triplet: t }, result: 0 }));
  assert.is(unchanged.written, undefined, 'a decision that changes nothing queues nothing');
  assert.is((await store.read('t', 'c')).triplet?.passes[node], 2);
  const log = await store.readLog(0, 10);
  assert.equal(log.map((e) => [e.seq, e.key, e.record.passes[node]]), [[1, 't', 1], [2, 't', 2], [3, 'u', 1]]);
});

s('a remote update written before a decision\'s batch is merged with the decided record, not overwritten by it', async () => {
  const store = await openStore(tempDir());
  const node = store.getNodeId();
  const remote: TripletRecord = { firstSeenMs: T0 - 5000, lastSeenMs: T0, passedAtMs: T0, passes: { peerb: 3 } };
  // The remote update is queued first; the decision, made before it is written, does not see it.
  const applied = store.applyRemote('triplet', 't', remote, 'peerb');
  const seen = store.decideNow('t', 'c', (t) => ({ update: { triplet: { ...newTriplet(T0 + 1000), passes: { [node]: 1 } } }, result: t }));
  assert.is(seen.result, undefined);
  assert.is(await applied, true);
  await seen.written;
  const got = (await store.read('t', 'c')).triplet;
  assert.equal(got, { firstSeenMs: T0 - 5000, lastSeenMs: T0 + 1000, passedAtMs: T0, passes: { peerb: 3, [node]: 1 } });
  const log = await store.readLog(0, 10);
  assert.equal(log.map((e) => e.record), [got], 'the log carries the merged record');
});

s('decideNow: a store closed, an invalid update or a throwing decide throws at once and queues nothing', async () => {
  const store = await openStore(tempDir());
  assert.throws(() => store.decideNow('t', 'c', () => { throw new Error('decide failed'); }), /decide failed/);
  assert.throws(
    () => store.decideNow('t', 'c', () => ({ update: { triplet: { firstSeenMs: -1 } as unknown as TripletRecord }, result: 0 })),
    (err: unknown) => err instanceof StoreError && err.code === 'STORE_ERR_INVALID',
  );
  await store.flush();
  assert.is(await store.getLastSeq(), 0);
  await store.close();
  assert.throws(
    () => store.decideNow('t', 'c', () => ({ update: { triplet: newTriplet(T0) }, result: 0 })),
    (err: unknown) => err instanceof StoreError && err.code === 'STORE_ERR_CLOSED',
  );
});

s('persistence: node id, records, log sequence and cursors survive close and reopen', async () => {
  const dir = tempDir();
  const first = await openStore(dir);
  const node = first.getNodeId();
  assert.match(node, /^[0-9a-f]{16}$/);
  await first.transact('t1', 'c1', () => ({ update: { triplet: newTriplet(T0), client: newClient(T0) }, result: 0 }));
  await first.setCursor('peer-b', 2);
  await first.setCursor('peer-c', 1);
  await first.flush();
  await first.close();
  const second = await openStore(dir);
  assert.is(second.getNodeId(), node);
  assert.equal(await second.read('t1', 'c1'), { triplet: newTriplet(T0), client: newClient(T0) });
  assert.is(await second.getCursor('peer-b'), 2);
  assert.is(await second.getCursor('peer-c'), 1);
  assert.is(await second.getCursor('peer-unknown'), 0);
  assert.equal(
    (await second.readLog(0, 10)).map((e) => e.seq),
    [1, 2],
  );
  await second.transact('t2', 'c2', () => ({ update: { triplet: newTriplet(T0) }, result: 0 }));
  assert.is(await second.getLastSeq(), 3, 'numbering continues after reopen');
  assert.equal(
    (await second.readLog(2, 10)).map((e) => [e.seq, e.key]),
    [[3, 't2']],
  );
  const other = await openStore(tempDir());
  assert.is.not(other.getNodeId(), node, 'each environment gets its own random node id');
});

s('purge removes records whose lastSeen is older than maxAge and keeps the rest', async () => {
  const clock = new ManualClock(T0);
  const store = await openStore(tempDir(), clock);
  await store.transact('old', 'old-client', () => ({ update: { triplet: newTriplet(T0), client: newClient(T0) }, result: 0 }));
  clock.advanceMs(20 * DAY_MS);
  const now = clock.nowMs();
  await store.transact('new', 'new-client', () => ({ update: { triplet: newTriplet(now), client: newClient(now) }, result: 0 }));
  const result = await store.purge(clock.nowMs(), 10 * DAY_MS);
  assert.equal(result, { triplets: 1, clients: 1, corrupt: 0 });
  assert.equal(
    (await store.listTriplets()).map((r) => r.key),
    ['new'],
  );
  assert.equal(
    (await store.listClients()).map((r) => r.key),
    ['new-client'],
  );
  assert.equal(await store.purge(clock.nowMs(), 10 * DAY_MS), { triplets: 0, clients: 0, corrupt: 0 });
  const counts = await store.count();
  assert.is(counts.triplets, 1);
  assert.is(counts.clients, 1);
});

s('purge also removes triplets that never passed and were not seen within the retry window, as postgrey maintenance does', async () => {
  const clock = new ManualClock(T0);
  const store = await openStore(tempDir(), clock);
  const at = (ms: number): number => T0 + ms;
  await store.transact('never-passed-old', 'c1', () => ({ update: { triplet: newTriplet(at(0)) }, result: 0 }));
  await store.transact('passed-old', 'c2', () => ({ update: { triplet: { ...newTriplet(at(0)), passedAtMs: at(60_000), lastSeenMs: at(60_000) } }, result: 0 }));
  await store.transact('deleted-old', 'c3', () => ({ update: { triplet: { ...newTriplet(at(0)), deletedAtMs: at(1) } }, result: 0 }));
  await store.transact('never-passed-recent', 'c4', () => ({ update: { triplet: newTriplet(at(2 * DAY_MS)) }, result: 0 }));
  clock.setMs(at(3 * DAY_MS));
  const result = await store.purge(clock.nowMs(), 35 * DAY_MS, 2 * DAY_MS);
  assert.is(result.triplets, 1);
  // A passed triplet lives for max-age; a tombstone too (it must outlive every copy it deletes).
  assert.equal((await store.listTriplets()).map((r) => r.key).sort(), ['deleted-old', 'never-passed-recent', 'passed-old']);
  // Without a retry window (the CLI's purge --older-than) only max-age applies.
  await store.transact('never-passed-old2', 'c5', () => ({ update: { triplet: newTriplet(at(0)) }, result: 0 }));
  assert.is((await store.purge(clock.nowMs(), 35 * DAY_MS)).triplets, 0);
});

s('purge works through more records than one sweep batch', async () => {
  const clock = new ManualClock(T0);
  const store = await openStore(tempDir(), clock);
  const writes = [];
  for (let i = 0; i < 1200; i++) {
    const key = `t${String(i).padStart(5, '0')}`;
    const at = i % 2 === 0 ? T0 : T0 + 15 * DAY_MS;
    writes.push(store.transact(key, `c${i}`, () => ({ update: { triplet: newTriplet(at) }, result: 0 })));
  }
  await Promise.all(writes);
  clock.advanceMs(20 * DAY_MS);
  const result = await store.purge(clock.nowMs(), 10 * DAY_MS);
  assert.is(result.triplets, 600);
  assert.is((await store.count()).triplets, 600);
});

s('startExpiry sweeps on its schedule and stop() ends it', async () => {
  const clock = new ManualClock(T0);
  const scheduler = new ManualScheduler(clock);
  const store = await openStore(tempDir(), clock, { scheduler });
  await store.transact('t1', 'c1', () => ({ update: { triplet: newTriplet(T0), client: newClient(T0) }, result: 0 }));
  const handle = store.startExpiry(60_000, DAY_MS);
  assert.is(scheduler.pendingCount(), 1);
  assert.is(scheduler.advanceMs(60_000), 1);
  await handle.whenIdle();
  assert.is((await store.count()).triplets, 1, 'not yet expired');
  assert.is(scheduler.pendingCount(), 1, 'the next sweep is scheduled when one finishes');
  clock.advanceMs(2 * DAY_MS);
  assert.is(scheduler.advanceMs(60_000), 1);
  await handle.whenIdle();
  const counts = await store.count();
  assert.is(counts.triplets, 0);
  assert.is(counts.clients, 0);
  handle.stop();
  assert.is(scheduler.pendingCount(), 0);
  assert.is(scheduler.advanceMs(10 * 60_000), 0, 'no sweep after stop');
});

s('applyRemote merges: older firstSeen wins, newer lastSeen wins, counters max per node; idempotent', async () => {
  const store = await openStore(tempDir());
  const me = store.getNodeId();
  const local: TripletRecord = { firstSeenMs: T0 + 1000, lastSeenMs: T0 + 5000, passedAtMs: T0 + 5000, passes: { [me]: 3, peerb: 1 } };
  await store.transact('t', 'c', () => ({ update: { triplet: local }, result: 0 }));
  const remote: TripletRecord = { firstSeenMs: T0, lastSeenMs: T0 + 9000, passedAtMs: T0 + 7000, passes: { [me]: 1, peerb: 4, peerc: 2 } };
  const lastSeq = await store.getLastSeq();
  assert.is(await store.applyRemote('triplet', 't', remote, 'peerb'), true);
  const merged = (await store.read('t', 'c')).triplet;
  assert.equal(merged, { firstSeenMs: T0, lastSeenMs: T0 + 9000, passedAtMs: T0 + 5000, passes: { [me]: 3, peerb: 4, peerc: 2 } });
  assert.is(await store.getLastSeq(), lastSeq, 'a remote merge is not logged: each origin pushes its own changes');
  assert.is(await store.applyRemote('triplet', 't', remote, 'peerb'), false, 'second apply changes nothing');
  assert.is(await store.applyRemote('triplet', 't', merged!, 'peerc'), false, 'applying the merged state changes nothing');
  assert.is(await store.getLastSeq(), lastSeq, 'no log entry for a no-op merge');
});

s('applyRemote inserts unknown records, handles clients, and rejects malformed ones', async () => {
  const store = await openStore(tempDir());
  const remoteClient: ClientRecord = { firstSeenMs: T0, lastSeenMs: T0 + 10, lastCountedMs: T0 + 10, passes: { peerb: 5 } };
  assert.is(await store.applyRemote('client', '198.51.100.4', remoteClient, 'peerb'), true);
  assert.equal((await store.read('x', '198.51.100.4')).client, remoteClient);
  const older: ClientRecord = { firstSeenMs: T0 + 5, lastSeenMs: T0 + 8, lastCountedMs: T0, passes: { peerb: 2 } };
  assert.is(await store.applyRemote('client', '198.51.100.4', older, 'peerb'), false, 'a dominated record changes nothing');
  await rejectsWith(store.applyRemote('triplet', 't', { firstSeenMs: -1 } as unknown as TripletRecord, 'peerb'), 'STORE_ERR_CORRUPT');
  await rejectsWith(store.applyRemote('triplet', 't', newTriplet(T0), 'bad node id'), 'STORE_ERR_CORRUPT');
  await rejectsWith(store.applyRemote('triplet', '', newTriplet(T0), 'peerb'), 'STORE_ERR_INVALID');
  assert.is((await store.read('t', 'c')).triplet, undefined);
  assert.ok(store.isHealthy());
});

s('applyRemoteBatch counts the records that changed state, and writes none of a batch with a bad record', async () => {
  const store = await openStore(tempDir());
  const a = newTriplet(T0);
  const client: ClientRecord = { firstSeenMs: T0, lastSeenMs: T0 + 10, lastCountedMs: T0 + 10, passes: { peerb: 1 } };
  await store.applyRemote('triplet', 'a', a, 'peerb');
  const changed = await store.applyRemoteBatch([
    { kind: 'triplet', key: 'a', record: a, originNode: 'peerb' },
    { kind: 'triplet', key: 'b', record: newTriplet(T0 + 1), originNode: 'peerb' },
    { kind: 'client', key: '192.0.2.1', record: client, originNode: 'peerc' },
    { kind: 'triplet', key: 'b', record: newTriplet(T0 + 2), originNode: 'peerb' },
  ]);
  assert.is(changed, 3, 'a is unchanged; b twice (the second moves last-seen on) and the client changed');
  assert.equal((await store.read('b', '192.0.2.1')).triplet, { ...newTriplet(T0 + 1), lastSeenMs: newTriplet(T0 + 2).lastSeenMs });
  assert.equal((await store.read('b', '192.0.2.1')).client, client);
  assert.is(await store.applyRemoteBatch([]), 0);
  await rejectsWith(
    store.applyRemoteBatch([
      { kind: 'triplet', key: 'c', record: newTriplet(T0), originNode: 'peerb' },
      { kind: 'triplet', key: 'd', record: { firstSeenMs: -1 } as unknown as TripletRecord, originNode: 'peerb' },
    ]),
    'STORE_ERR_CORRUPT',
  );
  assert.is((await store.read('c', 'x')).triplet, undefined, 'the valid record of a rejected batch is not written');
  assert.ok(store.isHealthy());
});

s('whitelistClient raises passes to the auto-whitelist threshold and logs the change', async () => {
  const store = await openStore(tempDir());
  const me = store.getNodeId();
  await store.applyRemote('client', '192.0.2.9', { firstSeenMs: T0 - 100, lastSeenMs: T0 - 50, lastCountedMs: T0 - 50, passes: { peerb: 2 } }, 'peerb');
  const record = await store.whitelistClient('192.0.2.9');
  assert.is(totalPasses(record.passes), 5);
  assert.equal(record.passes, { peerb: 2, [me]: 3 });
  assert.is(record.firstSeenMs, T0 - 100);
  assert.is(record.lastSeenMs, T0);
  const again = await store.whitelistClient('192.0.2.9');
  assert.equal(again.passes, { peerb: 2, [me]: 3 }, 'already whitelisted: unchanged counters');
  const fresh = await store.whitelistClient('192.0.2.10', 10);
  assert.equal(fresh.passes, { [me]: 10 });
  const log = await store.readLog(0, 10);
  assert.equal(
    log.map((e) => [e.kind, e.key]),
    [
      ['client', '192.0.2.9'],
      ['client', '192.0.2.9'],
      ['client', '192.0.2.10'],
    ],
  );
  await rejectsWith(store.whitelistClient('192.0.2.11', 0), 'STORE_ERR_INVALID');
});

s('deleteTriplet leaves a logged tombstone that listings hide and the next decision starts over from', async () => {
  const store = await openStore(tempDir());
  await store.transact('t1', 'c1', () => ({ update: { triplet: { ...newTriplet(T0), passedAtMs: T0, passes: { n: 1 } } }, result: 0 }));
  await store.transact('t2', 'c1', () => ({ update: { triplet: newTriplet(T0) }, result: 0 }));
  const before = await store.getLastSeq();
  assert.is(await store.deleteTriplet('t1'), true);
  assert.is(await store.deleteTriplet('t1'), false, 'already deleted');
  assert.is(await store.deleteTriplet('nothing'), false);
  const stored = (await store.read('t1', 'c1')).triplet;
  assert.ok(stored && stored.deletedAtMs !== undefined && stored.deletedAtMs > 0, 'a tombstone is kept');
  const log = await store.readLog(before, 10);
  assert.equal(log.map((e) => [e.key, e.record.lastSeenMs >= T0]), [['t1', true]], 'the deletion is logged for the peers');
  assert.equal((await store.listTriplets({ liveOnly: true })).map((r) => r.key), ['t2']);
  assert.equal((await store.listTriplets()).map((r) => r.key), ['t1', 't2'], 'replication lists tombstones');
  // A peer's copy of the same epoch, seen later, does not bring it back.
  await store.applyRemote('triplet', 't1', { ...newTriplet(T0), lastSeenMs: T0 + 5000, passedAtMs: T0, passes: { peer: 2 } }, 'peer');
  assert.ok((await store.read('t1', 'c1')).triplet?.deletedAtMs);
});

s('listTriplets filters by prefix, pages with startAfter and honours limit', async () => {
  const store = await openStore(tempDir());
  const keys = ['192.0.2/a@x/r@y', '192.0.2/b@x/r@y', '192.0.2/c@x/r@y', '198.51.100/a@x/r@y', '10.0.0/a@x/r@y'];
  await Promise.all(keys.map((k) => store.transact(k, 'c', () => ({ update: { triplet: newTriplet(T0) }, result: 0 }))));
  const names = async (o: Parameters<LmdbGreylistStore['listTriplets']>[0]): Promise<string[]> => (await store.listTriplets(o)).map((r) => r.key);
  assert.equal(await names({ prefix: '192.0.2/' }), ['192.0.2/a@x/r@y', '192.0.2/b@x/r@y', '192.0.2/c@x/r@y']);
  assert.equal(await names({ prefix: '192.0.2/', limit: 2 }), ['192.0.2/a@x/r@y', '192.0.2/b@x/r@y']);
  assert.equal(await names({ prefix: '192.0.2/', startAfter: '192.0.2/b@x/r@y' }), ['192.0.2/c@x/r@y']);
  assert.equal(await names({ limit: 2 }), ['10.0.0/a@x/r@y', '192.0.2/a@x/r@y']);
  assert.equal(await names({ prefix: '203.0.113/' }), []);
  assert.equal((await names({})).length, 5);
});

s('readLog gives the same entries from memory (lately committed) as from LMDB after a reopen, across a gap', async () => {
  const dir = tempDir();
  const store = await openStore(dir);
  for (let i = 0; i < 4; i++) await store.transact(`t${i}`, `192.0.2.${i}`, () => ({ update: { triplet: newTriplet(T0 + i), client: newClient(T0 + i) }, result: 0 }));
  await store.whitelistClient('192.0.2.77'); // logged by its own transaction, not by the write queue
  await Promise.all([0, 1, 2].map((i) => store.transact(`u${i}`, 'c', () => ({ update: { triplet: newTriplet(T0 + 10 + i) }, result: 0 }))));
  const fromMemory = await Promise.all([0, 3, 8, 9, 12, 40].map((after) => store.readLog(after, 5)));
  assert.equal(fromMemory[0]!.map((e) => e.seq), [1, 2, 3, 4, 5]);
  assert.equal(fromMemory[2]!.map((e) => e.key), ['192.0.2.77', 'u0', 'u1', 'u2']);
  await store.flush();
  await store.close();
  const reopened = await openStore(dir);
  const fromDisk = await Promise.all([0, 3, 8, 9, 12, 40].map((after) => reopened.readLog(after, 5)));
  assert.equal(fromMemory, fromDisk);
});

s('trimLog deletes old entries but keeps the newest, so numbering continues', async () => {
  const store = await openStore(tempDir());
  for (let i = 0; i < 5; i++) await store.transact(`t${i}`, 'c', () => ({ update: { triplet: newTriplet(T0) }, result: 0 }));
  assert.is(await store.trimLog(3), 2);
  assert.equal(
    (await store.readLog(0, 10)).map((e) => e.seq),
    [3, 4, 5],
  );
  assert.is(await store.trimLog(1000), 2);
  assert.equal(
    (await store.readLog(0, 10)).map((e) => e.seq),
    [5],
  );
  await store.transact('t9', 'c', () => ({ update: { triplet: newTriplet(T0) }, result: 0 }));
  assert.is(await store.getLastSeq(), 6);
});

s('cursors: set, overwrite, validate', async () => {
  const store = await openStore(tempDir());
  await store.setCursor('mx2', 10);
  await store.setCursor('mx2', 12);
  assert.is(await store.getCursor('mx2'), 12);
  await rejectsWith(store.setCursor('mx2', -1), 'STORE_ERR_INVALID');
  await rejectsWith(store.setCursor('no spaces', 1), 'STORE_ERR_INVALID');
  assert.is((await store.count()).peers, 1);
});

s('dry run: decides on the newest state, writes and queues nothing', async () => {
  const store = await openStore(tempDir());
  await store.transact('t', 'c', () => ({ update: { triplet: newTriplet(T0) }, result: 0 }));
  let seen: unknown;
  const decided = store.decideNow('t', 'c', (triplet) => {
    seen = triplet;
    return { update: { triplet: { ...newTriplet(T0), lastSeenMs: T0 + 3_600_000 }, client: newClient(T0) }, result: 'r' };
  }, { dryRun: true });
  assert.equal(decided, { result: 'r', written: undefined });
  assert.equal(seen, newTriplet(T0));
  assert.equal(await store.read('t', 'c'), { triplet: newTriplet(T0), client: undefined }, 'nothing queued');
  await store.flush();
  assert.equal(await store.read('t', 'c'), { triplet: newTriplet(T0), client: undefined }, 'nothing written');
  assert.is((await store.readLog(0, 10)).length, 1, 'no log entry');
  // An update a real decision refuses is refused in a dry run too.
  assert.throws(() => store.decideNow('t', 'c', () => ({ update: { triplet: { ...newTriplet(T0), firstSeenMs: -1 } }, result: 0 }), { dryRun: true }),
    (err: unknown) => err instanceof StoreError && err.code === 'STORE_ERR_INVALID');
});

s('size limit: writes fail with STORE_ERR_FULL, reads still work, purge recovers health', async () => {
  const clock = new ManualClock(T0);
  const store = await openStore(tempDir(), clock, { mapSizeBytes: 64 * 1024 });
  let written = 0;
  let full: StoreError | undefined;
  let failedKey = '';
  for (let i = 0; i < 5000 && !full; i++) {
    failedKey = `192.0.2/sender${i}@example.org/recipient@example.net`;
    try {
      await store.transact(failedKey, `192.0.2.${i % 250}`, () => ({
        update: { triplet: newTriplet(T0), client: newClient(T0) },
        result: 0,
      }));
      written++;
    } catch (err) {
      assert.instance(err, StoreError);
      full = err as StoreError;
    }
  }
  assert.ok(full, 'the limit was reached');
  assert.is(full!.code, 'STORE_ERR_FULL');
  assert.ok(written > 10, `some writes fit first (${written})`);
  assert.not.ok(store.isHealthy());
  // Why, for stats (it used to say NOT HEALTHY with no reason while the store was open).
  assert.is(store.lastFailure()?.code, 'STORE_ERR_FULL');
  const counts = await store.count();
  assert.is(counts.triplets, written, 'the failed transaction wrote nothing');
  assert.ok(counts.usedBytes <= 64 * 1024);
  const firstKey = '192.0.2/sender0@example.org/recipient@example.net';
  assert.equal((await store.read(firstKey, '192.0.2.0')).triplet, newTriplet(T0), 'reads still answer');
  await rejectsWith(
    store.transact(failedKey, '192.0.2.1', () => ({ update: { triplet: newTriplet(T0), client: newClient(T0) }, result: 0 })),
    'STORE_ERR_FULL',
  );
  assert.is((await store.read(failedKey, '192.0.2.1')).triplet, undefined);
  // `mxsentry check` decides in a dry run: it fails where the decision would (the daemon then fails open).
  const dry = (): unknown => store.decideNow(failedKey, '192.0.2.1', () => ({ update: { triplet: newTriplet(T0), client: newClient(T0) }, result: 0 }), { dryRun: true });
  assert.throws(dry, (err: unknown) => err instanceof StoreError && err.code === 'STORE_ERR_FULL');
  clock.advanceMs(10 * DAY_MS);
  const purged = await store.purge(clock.nowMs(), DAY_MS);
  assert.is(purged.triplets, written);
  await store.trimLog(Number.MAX_SAFE_INTEGER);
  assert.ok(store.isHealthy(), 'a committed purge transaction restores health');
  assert.is(store.lastFailure(), undefined);
  const now = clock.nowMs();
  await store.transact('after-purge', 'client', () => ({ update: { triplet: newTriplet(now) }, result: 0 }));
  assert.ok(store.isHealthy());
  assert.equal((await store.read('after-purge', 'client')).triplet, newTriplet(now));
});

s('corrupt records: reported as STORE_ERR_CORRUPT, treated as absent, skipped in lists, healed by the next write', async () => {
  const dir = tempDir();
  const first = await openStore(dir);
  await first.transact('good', 'c-good', () => ({ update: { triplet: newTriplet(T0), client: newClient(T0) }, result: 0 }));
  await first.close();
  // Raw binary puts of garbage into the databases, through the environment itself.
  const env = await LmdbEnv.open({ dataDir: dir, logger: createSilentLogger() });
  await env.write(
    'test: corrupting records',
    (tx) => {
      tx.put(env.triplets, 'bad', Buffer.from([0xc1, 0xff, 0x00, 0x13]));
      tx.put(env.clients, 'c-bad', Buffer.from('[1,"x"]'));
      tx.put(env.replog, 2, Buffer.from('not json'));
      tx.put(env.cursors, 'mx2', Buffer.from([0]));
    },
    { grows: true },
  );
  await env.close();

  const { logger, lines } = capturingLogger();
  const store = await openStore(dir, new ManualClock(T0), { logger });
  assert.equal(await store.read('bad', 'c-bad'), { triplet: undefined, client: undefined });
  const corruptLines = lines().filter((l) => l.code === 'STORE_ERR_CORRUPT');
  assert.is(corruptLines.length, 2);
  assert.equal(
    corruptLines.map((l) => [l.db, l.key]),
    [
      ['triplet', 'bad'],
      ['client', 'c-bad'],
    ],
  );
  assert.equal(
    (await store.listTriplets()).map((r) => r.key),
    ['good'],
  );
  assert.equal(
    (await store.readLog(0, 10)).map((e) => e.seq),
    [1],
    'the corrupt log entry is skipped',
  );
  assert.is(await store.getCursor('mx2'), 0, 'a corrupt cursor means resend everything');
  assert.ok(store.isHealthy(), 'a corrupt record is handled, not a store failure');
  assert.ok((await store.count()).corruptRecords >= 5);

  const seen = await store.transact('bad', 'c-bad', (t, c) => ({
    update: { triplet: newTriplet(T0), client: newClient(T0) },
    result: [t, c],
  }));
  assert.equal(seen, [undefined, undefined], 'decide sees the corrupt records as absent');
  assert.equal(await store.read('bad', 'c-bad'), { triplet: newTriplet(T0), client: newClient(T0) }, 'healed');
});

s('an expiry sweep restores health after a failure even when nothing expires', async () => {
  const clock = new ManualClock(T0);
  const scheduler = new ManualScheduler(clock);
  const store = await openStore(tempDir(), clock, { mapSizeBytes: 64 * 1024, scheduler });
  // Fill the limit with peer cursors, which purge never touches: triplets and clients stay empty.
  let full: unknown;
  for (let round = 0; round < 50 && !full; round++) {
    const batch = Array.from({ length: 100 }, (_, i) => store.setCursor(`peer-${round}-${i}`, i));
    for (const r of await Promise.allSettled(batch)) if (r.status === 'rejected') full = r.reason;
  }
  assert.instance(full, StoreError);
  assert.is((full as StoreError).code, 'STORE_ERR_FULL');
  assert.not.ok(store.isHealthy());
  assert.is((await store.count()).triplets, 0);
  const handle = store.startExpiry(60_000, DAY_MS);
  scheduler.advanceMs(60_000);
  await handle.whenIdle();
  assert.ok(store.isHealthy(), 'the sweep committed, so the store is usable again');
  handle.stop();
});

s('after a failed write the store probes until writes work again, without waiting for the hourly sweep', async () => {
  // The policy stops writing to an unhealthy store, and a store without peers may have nothing left
  // to trim: a transient I/O error must not switch greylisting off until the next expiry sweep.
  const clock = new ManualClock(T0);
  const scheduler = new ManualScheduler(clock);
  const dir = tempDir();
  const store = await openStore(dir, clock, { scheduler });
  await store.transact('before', 'c', () => ({ update: { triplet: newTriplet(T0) }, result: 0 }));
  // Advances the scheduler by stepMs at a time, letting each step's commit settle on lmdb's thread.
  const advanceUntilHealthy = async (limitMs: number, stepMs: number): Promise<void> => {
    for (let waited = 0; waited < limitMs && !store.isHealthy(); waited += stepMs) {
      scheduler.advanceMs(stepMs);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const undo = makeImmutable(join(dir, 'greylist', 'data.mdb'), 'store: probing after a failed write');
  if (!undo) return;
  try {
    const err = await rejectsWith(store.transact('during', 'c', () => ({ update: { triplet: newTriplet(T0) }, result: 0 })), 'STORE_ERR_IO');
    // lmdb-js says only "Commit failed"; the store names the file and the system's refusal.
    assert.match(err.message, /the commit failed: .*data\.mdb cannot be written \(EPERM/);
    assert.match(store.lastFailure()?.message ?? '', /cannot be written \(EPERM/);
    assert.not.ok(store.isHealthy());
    await advanceUntilHealthy(15_000, 5000);
    assert.not.ok(store.isHealthy(), 'probes fail while the file cannot be written');
  } finally {
    undo();
  }
  await advanceUntilHealthy(60_000, 1000);
  assert.ok(store.isHealthy(), 'healthy again within a minute of the cause going away, no sweep needed');
  await store.transact('after', 'c', () => ({ update: { triplet: newTriplet(T0) }, result: 0 }));
  assert.equal((await store.read('after', 'c')).triplet, newTriplet(T0));
});

s('a purge that writes nothing does not report a store healthy while its file still cannot be written', async () => {
  // An empty write transaction commits without touching the file: it proved the store usable while
  // every decision still failed, and the log said "greylist store healthy again" once an hour.
  const clock = new ManualClock(T0);
  const dir = tempDir();
  const store = await openStore(dir, clock);
  await store.transact('kept', 'c', () => ({ update: { triplet: newTriplet(T0) }, result: 0 }));
  const undo = makeImmutable(join(dir, 'greylist', 'data.mdb'), 'store: a purge of nothing while the file is unwritable');
  if (!undo) return;
  try {
    await rejectsWith(store.transact('during', 'c', () => ({ update: { triplet: newTriplet(T0) }, result: 0 })), 'STORE_ERR_IO');
    assert.not.ok(store.isHealthy());
    await store.purge(T0, DAY_MS).catch(() => undefined);
    assert.not.ok(store.isHealthy(), 'nothing expired, nothing written: not a sign of health');
  } finally {
    undo();
  }
  assert.equal(await store.purge(T0, DAY_MS), { triplets: 0, clients: 0, corrupt: 0 });
  assert.ok(store.isHealthy(), 'once the file can be written, the purge proves it');
  assert.equal((await store.read('kept', 'c')).triplet, newTriplet(T0));
});

s('close after a failed write finishes (bounded) while the file still cannot be written', async () => {
  // lmdb-js's flushed promise never settles after a failed commit: close waited on it for ever, so
  // SIGTERM left the daemon without its "stopped" line and its instance lock.
  const dir = tempDir();
  const store = await openStore(dir);
  await store.transact('kept', 'c', () => ({ update: { triplet: newTriplet(T0) }, result: 0 }));
  const undo = makeImmutable(join(dir, 'greylist', 'data.mdb'), 'store: close after a failed write');
  if (!undo) return;
  try {
    await rejectsWith(store.transact('during', 'c', () => ({ update: { triplet: newTriplet(T0) }, result: 0 })), 'STORE_ERR_IO');
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      store.close().then(() => 'closed', () => 'rejected'),
      new Promise<string>((resolve) => (timer = setTimeout(() => resolve('still waiting'), 15_000))),
    ]);
    clearTimeout(timer);
    assert.ok(outcome === 'closed' || outcome === 'rejected', outcome);
    open.splice(open.indexOf(store), 1);
  } finally {
    undo();
  }
  const again = await openStore(dir);
  assert.equal((await again.read('kept', 'c')).triplet, newTriplet(T0), 'what was committed before is intact');
});

s('purge removes undecodable records', async () => {
  const dir = tempDir();
  const env = await LmdbEnv.open({ dataDir: dir, logger: createSilentLogger() });
  await env.write('test: corrupting', (tx) => tx.put(env.triplets, 'junk', Buffer.from('{')), { grows: true });
  await env.close();
  const store = await openStore(dir);
  assert.equal(await store.purge(T0, DAY_MS), { triplets: 0, clients: 0, corrupt: 1 });
  assert.is((await store.count()).triplets, 0);
});

s('after close every call rejects with STORE_ERR_CLOSED and nothing crashes', async () => {
  const store = await openStore(tempDir());
  await store.close();
  assert.not.ok(store.isHealthy());
  await rejectsWith(store.transact('t', 'c', () => ({ update: { triplet: newTriplet(T0) }, result: 0 })), 'STORE_ERR_CLOSED');
  await rejectsWith(store.read('t', 'c'), 'STORE_ERR_CLOSED');
  await rejectsWith(store.applyRemote('triplet', 't', newTriplet(T0), 'peerb'), 'STORE_ERR_CLOSED');
  await rejectsWith(store.purge(T0, DAY_MS), 'STORE_ERR_CLOSED');
  await store.close();
});

s('close waits for transactions already queued', async () => {
  const dir = tempDir();
  const store = await openStore(dir);
  const pending = store.transact('t', 'c', () => ({ update: { triplet: newTriplet(T0) }, result: 'done' }));
  const closing = store.close();
  assert.is(await pending, 'done');
  await closing;
  const reopened = await openStore(dir);
  assert.equal((await reopened.read('t', 'c')).triplet, newTriplet(T0));
});

s('open fails with STORE_ERR_OPEN naming the path when the directory cannot be created', async () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'file'), 'x');
  const err = await rejectsWith(
    LmdbGreylistStore.open({ dataDir: join(dir, 'file', 'state'), clock: new ManualClock(T0), logger: createSilentLogger() }),
    'STORE_ERR_OPEN',
  );
  assert.match(err.message, join(dir, 'file', 'state', 'greylist'));
  assert.match(err.message, 'ENOTDIR');
  await rejectsWith(
    LmdbGreylistStore.open({ dataDir: tempDir(), clock: new ManualClock(T0), logger: createSilentLogger(), mapSizeBytes: 1000 }),
    'STORE_ERR_OPEN',
  );
});

s.run();
