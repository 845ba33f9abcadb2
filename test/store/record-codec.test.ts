// Tests for the store's value codec: round trips, validation, and STORE_ERR_CORRUPT on junk.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { StoreError } from '../../src/util/errors.js';
import {
  MAX_KEY_BYTES,
  REPLOG_OVERHEAD_BYTES,
  RECORD_SCHEMA_VERSION,
  checkKey,
  decodeClient,
  decodeCursor,
  decodeMetaValue,
  decodeReplogEntry,
  decodeTriplet,
  encodeClient,
  encodeCursor,
  encodeMetaValue,
  encodeRecordJson,
  encodeReplogEntry,
  encodeReplogEntryJson,
  encodeTriplet,
  isNodeId,
  parseTriplet,
  type ReplogEntry,
} from '../../src/store/record-codec.js';
import { BINARY_MARK } from '../../src/store/record-binary.js';

const s = suite('store/record-codec');

const triplet = { firstSeenMs: 1_700_000_000_000, lastSeenMs: 1_700_000_060_000, passedAtMs: 1_700_000_060_000, passes: { a1b2c3d4e5f60718: 2, peer2: 1 } };
const client = { firstSeenMs: 1_700_000_000_000, lastSeenMs: 1_700_000_100_000, lastCountedMs: 1_700_000_100_000, passes: { a1b2c3d4e5f60718: 3 } };

function expectCode(fn: () => unknown, code: string): StoreError {
  try {
    fn();
  } catch (err) {
    assert.instance(err, StoreError);
    assert.is((err as StoreError).code, code);
    return err as StoreError;
  }
  assert.unreachable(`expected ${code}`);
  throw new Error('unreachable');
}

s('triplet and client records round-trip', () => {
  assert.equal(decodeTriplet(encodeTriplet(triplet)), triplet);
  assert.equal(decodeClient(encodeClient(client)), client);
  assert.is(encodeTriplet(triplet)[0], BINARY_MARK, 'written in the binary form');
  const first = JSON.parse(encodeRecordJson('triplet', triplet).toString('utf8'))[0];
  assert.is(first, RECORD_SCHEMA_VERSION);
});

s('values in the JSON form of older stores still decode, to the same records', () => {
  const restarted = { ...triplet, epoch: 3 };
  const deleted = { ...triplet, epoch: 2, deletedAtMs: 1_700_000_200_000 };
  for (const t of [triplet, restarted, deleted]) assert.equal(decodeTriplet(encodeRecordJson('triplet', t)), t);
  assert.equal(decodeClient(encodeRecordJson('client', client)), client);
  const e: ReplogEntry = { seq: 4, kind: 'triplet', key: '192.0.2/a@b.example/c@d.example', record: deleted, originNode: 'peer2', atMs: 9 };
  assert.equal(decodeReplogEntry(4, encodeReplogEntryJson(e)), e);
  assert.equal(decodeReplogEntry(4, encodeReplogEntry(e)), e);
});

s('the binary form is smaller than the JSON form', () => {
  assert.ok(encodeTriplet(triplet).length < encodeRecordJson('triplet', triplet).length);
  assert.ok(encodeClient(client).length < encodeRecordJson('client', client).length);
});

s('binary values: non-ASCII keys, 256 nodes, zero times and the largest safe integers round-trip', () => {
  const many: Record<string, number> = {};
  for (let i = 0; i < 256; i++) many[`node-${i}.example_${'x'.repeat(i % 40)}`] = i * 1000;
  const big = { firstSeenMs: 0, lastSeenMs: Number.MAX_SAFE_INTEGER, passedAtMs: 0, passes: many };
  assert.equal(decodeTriplet(encodeTriplet(big)), big);
  const e: ReplogEntry = { seq: 1, kind: 'client', key: 'ünïcödé-ключ', record: { ...client, passes: many }, originNode: 'n'.repeat(64), atMs: 0 };
  assert.equal(decodeReplogEntry(1, encodeReplogEntry(e)), e);
});

s('binary values: truncation, trailing bytes, bad flags, ids, times and kinds are STORE_ERR_CORRUPT', () => {
  const t = encodeTriplet({ ...triplet, epoch: 2 });
  for (let n = 0; n < t.length; n++) expectCode(() => decodeTriplet(t.subarray(0, n)), 'STORE_ERR_CORRUPT');
  expectCode(() => decodeTriplet(Buffer.concat([t, Buffer.from([0])])), 'STORE_ERR_CORRUPT');
  const mutate = (buf: Buffer, at: number, byte: number): Buffer => {
    const copy = Buffer.from(buf);
    copy[at] = byte;
    return copy;
  };
  expectCode(() => decodeTriplet(mutate(t, 2, 7)), 'STORE_ERR_CORRUPT'); // unknown flags
  expectCode(() => decodeTriplet(mutate(t, 2, 2)), 'STORE_ERR_CORRUPT'); // a deletion without an epoch
  expectCode(() => decodeTriplet(mutate(t, 1, 0x63)), 'STORE_ERR_CORRUPT'); // a client's type byte
  expectCode(() => decodeClient(t), 'STORE_ERR_CORRUPT');
  const negative = Buffer.from(t);
  negative.writeDoubleLE(-1, 3);
  expectCode(() => decodeTriplet(negative), 'STORE_ERR_CORRUPT');
  const fraction = Buffer.from(t);
  fraction.writeDoubleLE(1.5, 11);
  expectCode(() => decodeTriplet(fraction), 'STORE_ERR_CORRUPT');
  const nan = Buffer.from(t);
  nan.writeDoubleLE(Number.NaN, 19);
  expectCode(() => decodeTriplet(nan), 'STORE_ERR_CORRUPT');
  // The first node id of the passes starts after flags, four times and the u16 count.
  const idAt = 3 + 4 * 8 + 2;
  expectCode(() => decodeTriplet(mutate(t, idAt + 1, 0x20)), 'STORE_ERR_CORRUPT'); // a space in the id
  expectCode(() => decodeTriplet(mutate(t, idAt, 0)), 'STORE_ERR_CORRUPT'); // an empty id
  const tooMany = Buffer.from(t);
  tooMany.writeUInt16LE(257, idAt - 2);
  expectCode(() => decodeTriplet(tooMany), 'STORE_ERR_CORRUPT');
  const e = encodeReplogEntry({ seq: 3, kind: 'triplet', key: 'k', record: triplet, originNode: 'peer2', atMs: 1 });
  expectCode(() => decodeReplogEntry(3, mutate(e, 2, 0x78)), 'STORE_ERR_CORRUPT'); // unknown kind
  expectCode(() => decodeReplogEntry(3, mutate(e, 3, 0)), 'STORE_ERR_CORRUPT'); // an empty key
  expectCode(() => decodeReplogEntry(3, t), 'STORE_ERR_CORRUPT');
});

s('binary values the writer never makes are STORE_ERR_CORRUPT, not a different record', () => {
  const idAt = 3 + 3 * 8 + 2; // flags, three times, the u16 count
  // Two counters of one node (the second id "ab" made "aa"): not one of them silently kept.
  const two = Buffer.from(encodeTriplet({ ...triplet, passes: { aa: 1, ab: 2 } }));
  two[idAt + 1 + 2 + 8 + 2] = 0x61;
  expectCode(() => decodeTriplet(two), 'STORE_ERR_CORRUPT');
  // "__proto__" passes the id check, but a plain object cannot hold it as a counter.
  const proto = Buffer.concat([encodeTriplet({ ...triplet, passes: {} }).subarray(0, idAt - 2), Buffer.from([1, 0, 9]), Buffer.from('__proto__', 'latin1'), Buffer.alloc(8)]);
  proto.writeDoubleLE(5, proto.length - 8);
  expectCode(() => decodeTriplet(proto), 'STORE_ERR_CORRUPT');
  // A tombstone flag with no deletion time, an epoch flag with epoch 0.
  const tomb = Buffer.from(encodeTriplet({ ...triplet, deletedAtMs: 5 }));
  tomb.writeDoubleLE(0, 3 + 4 * 8);
  expectCode(() => decodeTriplet(tomb), 'STORE_ERR_CORRUPT');
  const epoch = Buffer.from(encodeTriplet({ ...triplet, epoch: 2 }));
  epoch.writeDoubleLE(0, 3 + 3 * 8);
  expectCode(() => decodeTriplet(epoch), 'STORE_ERR_CORRUPT');
  // A log entry key that is not UTF-8.
  const e = Buffer.from(encodeReplogEntry({ seq: 3, kind: 'client', key: 'ab', record: client, originNode: 'peer2', atMs: 1 }));
  e[5] = 0xff;
  expectCode(() => decodeReplogEntry(3, e), 'STORE_ERR_CORRUPT');
});

s('binary values: 20,000 random mutations decode to a valid record or STORE_ERR_CORRUPT, nothing else', () => {
  const seeds = [encodeTriplet({ ...triplet, epoch: 2, deletedAtMs: 5 }), encodeClient(client), encodeReplogEntry({ seq: 1, kind: 'triplet', key: 'a/b@c/d@e', record: triplet, originNode: 'peer2', atMs: 1 })];
  let x = 987654321;
  const rnd = (n: number): number => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x % n;
  };
  let decoded = 0;
  for (let i = 0; i < 20_000; i++) {
    const seed = seeds[i % 3]!;
    const buf = Buffer.from(seed);
    for (let k = 1 + rnd(3); k > 0; k--) buf[rnd(buf.length)] = rnd(256);
    const cut = rnd(4) === 0 ? buf.subarray(0, rnd(buf.length + 1)) : buf;
    try {
      if (i % 3 === 0) parseTriplet(decodeTriplet(cut));
      else if (i % 3 === 1) decodeClient(cut);
      else decodeReplogEntry(1, cut);
      decoded++;
    } catch (err) {
      assert.instance(err, StoreError);
      assert.is((err as StoreError).code, 'STORE_ERR_CORRUPT');
    }
  }
  assert.ok(decoded > 0 && decoded < 20_000, `decoded ${decoded}`);
});

s('a triplet epoch round-trips; epoch 0 and a negative epoch are handled', () => {
  const restarted = { ...triplet, epoch: 3 };
  assert.equal(decodeTriplet(encodeTriplet(restarted)), restarted);
  assert.equal(parseTriplet({ ...triplet, epoch: 0 }), triplet, 'epoch 0 is the same as none');
  expectCode(() => parseTriplet({ ...triplet, epoch: -1 }), 'STORE_ERR_CORRUPT');
});

s('a tombstone round-trips with and without an epoch; live records keep their old form', () => {
  const deleted = { ...triplet, deletedAtMs: 1_700_000_200_000 };
  assert.equal(decodeTriplet(encodeTriplet(deleted)), deleted);
  const deletedRestarted = { ...deleted, epoch: 2 };
  assert.equal(decodeTriplet(encodeTriplet(deletedRestarted)), deletedRestarted);
  assert.is(JSON.parse(encodeRecordJson('triplet', triplet).toString('utf8')).length, 5, 'a live triplet without epoch: version and 4 fields');
  assert.is(JSON.parse(encodeRecordJson('triplet', { ...triplet, epoch: 3 }).toString('utf8')).length, 6, 'with an epoch: one more');
  assert.is(encodeTriplet(triplet)[2], 0, 'binary: no flags for a live triplet without epoch');
  assert.is(encodeTriplet({ ...triplet, epoch: 3 })[2], 1, 'binary: the epoch flag');
  assert.is(encodeTriplet(deleted)[2], 3, 'binary: a tombstone carries an epoch (0) and its deletion time');
  assert.equal(parseTriplet({ ...triplet, deletedAtMs: 0 }), triplet, 'deletedAtMs 0 is the same as none');
  expectCode(() => parseTriplet({ ...triplet, deletedAtMs: -5 }), 'STORE_ERR_CORRUPT');
  const t: ReplogEntry = { seq: 9, kind: 'triplet', key: '192.0.2/a@b.example/c@d.example', record: deleted, originNode: 'peer2', atMs: 7 };
  assert.equal(decodeReplogEntry(9, encodeReplogEntry(t)), t);
});

s('a log entry adds at most REPLOG_OVERHEAD_BYTES to its record (the size guard reserves by it)', () => {
  const key = 'k'.repeat(MAX_KEY_BYTES - 2) + 'é';
  for (const e of [
    { seq: 1, kind: 'triplet', key, record: { ...triplet, epoch: 2, deletedAtMs: 9 }, originNode: 'n'.repeat(64), atMs: 1 },
    { seq: 2, kind: 'client', key, record: client, originNode: 'n'.repeat(64), atMs: 1 },
  ] as ReplogEntry[]) {
    const added = encodeReplogEntry(e).length - (e.kind === 'triplet' ? encodeTriplet(e.record) : encodeClient(e.record)).length;
    assert.ok(added <= REPLOG_OVERHEAD_BYTES, `${e.kind}: ${added} bytes`);
  }
});

s('replication log entries round-trip for both kinds', () => {
  const t: ReplogEntry = { seq: 7, kind: 'triplet', key: '192.0.2/a@b.example/c@d.example', record: triplet, originNode: 'a1b2c3d4e5f60718', atMs: 5 };
  const c: ReplogEntry = { seq: 8, kind: 'client', key: '192.0.2.1', record: client, originNode: 'peer2', atMs: 6 };
  assert.equal(decodeReplogEntry(7, encodeReplogEntry(t)), t);
  assert.equal(decodeReplogEntry(8, encodeReplogEntry(c)), c);
});

s('cursors and meta values round-trip', () => {
  assert.is(decodeCursor(encodeCursor(12345)), 12345);
  assert.is(decodeMetaValue(encodeMetaValue('abc'), 'nodeId'), 'abc');
  assert.is(decodeMetaValue(encodeMetaValue(1), 'schemaVersion'), 1);
});

s('garbage bytes are STORE_ERR_CORRUPT, never junk values', () => {
  for (const bytes of [Buffer.from([0xc1, 0xff, 0x00]), Buffer.from('5'), Buffer.from('[]'), Buffer.from('{"a":1}'), Buffer.alloc(0)]) {
    expectCode(() => decodeTriplet(bytes), 'STORE_ERR_CORRUPT');
    expectCode(() => decodeClient(bytes), 'STORE_ERR_CORRUPT');
    expectCode(() => decodeReplogEntry(1, bytes), 'STORE_ERR_CORRUPT');
    expectCode(() => decodeCursor(bytes), 'STORE_ERR_CORRUPT');
  }
});

s('an unknown schema version or a wrong shape is corrupt', () => {
  expectCode(() => decodeTriplet(Buffer.from(JSON.stringify([99, 1, 2, 0, {}]))), 'STORE_ERR_CORRUPT');
  expectCode(() => decodeTriplet(Buffer.from(JSON.stringify([1, 1, 2, 0]))), 'STORE_ERR_CORRUPT');
  expectCode(() => decodeTriplet(Buffer.from(JSON.stringify([1, 1, -2, 0, {}]))), 'STORE_ERR_CORRUPT');
  expectCode(() => decodeTriplet(Buffer.from(JSON.stringify([1, 1, 2.5, 0, {}]))), 'STORE_ERR_CORRUPT');
  expectCode(() => decodeTriplet(Buffer.from(JSON.stringify([1, 1, 2, 0, { node: -1 }]))), 'STORE_ERR_CORRUPT');
  expectCode(() => decodeTriplet(Buffer.from(JSON.stringify([1, 1, 2, 0, { 'bad node': 1 }]))), 'STORE_ERR_CORRUPT');
  expectCode(() => decodeReplogEntry(3, Buffer.from(JSON.stringify([1, 'x', 'k', [1, 2, 0, {}], 'n', 1]))), 'STORE_ERR_CORRUPT');
});

s('parseTriplet validates untrusted records with the requested code', () => {
  assert.equal(parseTriplet(triplet), triplet);
  expectCode(() => parseTriplet({ ...triplet, lastSeenMs: Number.NaN }, 'STORE_ERR_INVALID'), 'STORE_ERR_INVALID');
  expectCode(() => parseTriplet({ ...triplet, passes: [] }), 'STORE_ERR_CORRUPT');
  expectCode(() => parseTriplet(null), 'STORE_ERR_CORRUPT');
  const many: Record<string, number> = {};
  for (let i = 0; i < 300; i++) many[`n${i}`] = 1;
  expectCode(() => parseTriplet({ ...triplet, passes: many }), 'STORE_ERR_CORRUPT');
});

s('keys: empty and over-long keys are STORE_ERR_INVALID', () => {
  assert.is(checkKey('k', 'triplet'), 'k');
  expectCode(() => checkKey('', 'triplet'), 'STORE_ERR_INVALID');
  expectCode(() => checkKey('x'.repeat(MAX_KEY_BYTES + 1), 'client'), 'STORE_ERR_INVALID');
  expectCode(() => checkKey('é'.repeat(MAX_KEY_BYTES / 2 + 1), 'client'), 'STORE_ERR_INVALID');
});

s('node ids', () => {
  assert.ok(isNodeId('a1b2c3d4e5f60718'));
  assert.ok(isNodeId('mx2.example.org'));
  assert.not.ok(isNodeId(''));
  assert.not.ok(isNodeId('a b'));
  assert.not.ok(isNodeId('x'.repeat(65)));
  assert.not.ok(isNodeId(5));
});

s.run();
