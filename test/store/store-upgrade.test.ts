// Tests for opening a greylist store written before the binary record form (schema version 1, JSON
// values): its records, log entries and cursors are read as they are, its first write marks it
// version 2 (a read-only open does not), new writes are binary, and decisions, merges, listing and
// the log work on the mix.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ManualClock } from '../../src/util/clock.js';
import { createSilentLogger } from '../../src/util/logger.js';
import type { ClientRecord, TripletRecord } from '../../src/store/greylist-types.js';
import { LmdbEnv, STORE_SCHEMA_VERSION } from '../../src/store/lmdb-env.js';
import { LmdbGreylistStore } from '../../src/store/lmdb-greylist-store.js';
import { BINARY_MARK } from '../../src/store/record-binary.js';
import { decodeMetaValue, encodeMetaValue, encodeRecordJson, encodeReplogEntryJson, type ReplogEntry } from '../../src/store/record-codec.js';

const s = suite('store/store-upgrade');
const T0 = 1_700_000_000_000;
const logger = createSilentLogger();
const dirs: string[] = [];

s.after.each(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A version 1 environment: JSON records, two JSON log entries, the log's high-water mark. */
async function writeVersion1Store(dataDir: string): Promise<{ nodeId: string; triplet: TripletRecord; client: ClientRecord }> {
  const env = await LmdbEnv.open({ dataDir, logger });
  const nodeId = env.nodeId;
  const triplet: TripletRecord = { firstSeenMs: T0, lastSeenMs: T0 + 1000, passedAtMs: 0, passes: {}, epoch: 2 };
  const client: ClientRecord = { firstSeenMs: T0, lastSeenMs: T0, lastCountedMs: T0, passes: { [nodeId]: 3, peer2: 1 } };
  const entries: ReplogEntry[] = [
    { seq: 1, kind: 'triplet', key: '192.0.2/a@b.example/c@d.example', record: triplet, originNode: nodeId, atMs: T0 },
    { seq: 2, kind: 'client', key: '192.0.2.1', record: client, originNode: nodeId, atMs: T0 },
  ];
  await env.write(
    'test: a version 1 store',
    (tx) => {
      tx.put(env.meta, 'schemaVersion', encodeMetaValue(1));
      tx.put(env.triplets, '192.0.2/a@b.example/c@d.example', encodeRecordJson('triplet', triplet));
      tx.put(env.clients, '192.0.2.1', encodeRecordJson('client', client));
      for (const e of entries) tx.put(env.replog, e.seq, encodeReplogEntryJson(e));
      tx.put(env.meta, 'replog-seq', encodeMetaValue(2));
    },
    { grows: true },
  );
  await env.close();
  return { nodeId, triplet, client };
}

async function storedVersion(dataDir: string): Promise<unknown> {
  const env = await LmdbEnv.open({ dataDir, logger });
  try {
    return decodeMetaValue(env.meta.get('schemaVersion')!, 'schemaVersion');
  } finally {
    await env.close();
  }
}

s('a version 1 store opened only to read (as `check` does) stays version 1, readable by the release that wrote it', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'mxsentry-upgrade-'));
  dirs.push(dataDir);
  const old = await writeVersion1Store(dataDir);
  const store = await LmdbGreylistStore.open({ dataDir, clock: new ManualClock(T0 + 5000), logger });
  try {
    assert.equal((await store.read('192.0.2/a@b.example/c@d.example', '192.0.2.1')).client, old.client);
    assert.is((await store.listTriplets()).length, 1);
  } finally {
    await store.close();
  }
  assert.is(await storedVersion(dataDir), 1);
});

s('a version 1 store opens, its JSON values read back, and its first write marks it version 2', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'mxsentry-upgrade-'));
  dirs.push(dataDir);
  const old = await writeVersion1Store(dataDir);
  const clock = new ManualClock(T0 + 5000);
  const store = await LmdbGreylistStore.open({ dataDir, clock, logger });
  try {
    assert.is(store.getNodeId(), old.nodeId);
    const got = await store.read('192.0.2/a@b.example/c@d.example', '192.0.2.1');
    assert.equal(got.triplet, old.triplet);
    assert.equal(got.client, old.client);
    const log = await store.readLog(0, 10);
    assert.equal(log.map((e) => [e.seq, e.kind, e.key]), [[1, 'triplet', '192.0.2/a@b.example/c@d.example'], [2, 'client', '192.0.2.1']]);
    assert.equal(log[0]!.record, old.triplet);

    // A decision on the old triplet and a peer's record for a new one: both written binary, next to the JSON client.
    await store.transact('192.0.2/a@b.example/c@d.example', '192.0.2.1', (t) => ({
      update: { triplet: { ...t!, lastSeenMs: T0 + 5000, passedAtMs: T0 + 5000, passes: { [old.nodeId]: 1 } } },
      result: null,
    }));
    const merged = await store.applyRemoteBatch([{ kind: 'triplet', key: '198.51.100/x@y.example/z@w.example', record: { firstSeenMs: T0, lastSeenMs: T0, passedAtMs: 0, passes: {} }, originNode: 'peer2' }]);
    assert.is(merged, 1);
    const triplets = await store.listTriplets();
    assert.equal(triplets.map((t) => t.key), ['192.0.2/a@b.example/c@d.example', '198.51.100/x@y.example/z@w.example']);
    assert.is(triplets[0]!.record.passedAtMs, T0 + 5000);
    assert.is(triplets[0]!.record.epoch, 2, 'the epoch read from JSON is kept');
    assert.equal((await store.listClients()).map((c) => c.record), [old.client]);
    const newLog = await store.readLog(2, 10);
    assert.is(newLog.length, 1, 'the decision was logged after the old entries');
    assert.is(newLog[0]!.seq, 3);
  } finally {
    await store.close();
  }
  assert.is(await storedVersion(dataDir), STORE_SCHEMA_VERSION);
  assert.is(STORE_SCHEMA_VERSION, 2);
  const env = await LmdbEnv.open({ dataDir, logger });
  try {
    assert.is(env.triplets.get('192.0.2/a@b.example/c@d.example')![0], BINARY_MARK, 'the rewritten triplet is binary');
    assert.is(env.triplets.get('198.51.100/x@y.example/z@w.example')![0], BINARY_MARK);
    assert.is(env.clients.get('192.0.2.1')![0], '['.charCodeAt(0), 'the untouched client keeps its JSON value');
    assert.is(env.replog.get(3)![0], BINARY_MARK);
  } finally {
    await env.close();
  }
});

s.run();
