// Tests for the store's value codec: round trips, validation, and STORE_ERR_CORRUPT on junk.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { StoreError } from '../../src/util/errors.js';
import {
  MAX_KEY_BYTES,
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
  encodeReplogEntry,
  encodeTriplet,
  isNodeId,
  parseTriplet,
  type ReplogEntry,
} from '../../src/store/record-codec.js';

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
  const first = JSON.parse(encodeTriplet(triplet).toString('utf8'))[0];
  assert.is(first, RECORD_SCHEMA_VERSION);
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
  assert.is(JSON.parse(encodeTriplet(triplet).toString('utf8')).length, 5, 'a live triplet without epoch: version and 4 fields');
  assert.is(JSON.parse(encodeTriplet({ ...triplet, epoch: 3 }).toString('utf8')).length, 6, 'with an epoch: one more');
  assert.equal(parseTriplet({ ...triplet, deletedAtMs: 0 }), triplet, 'deletedAtMs 0 is the same as none');
  expectCode(() => parseTriplet({ ...triplet, deletedAtMs: -5 }), 'STORE_ERR_CORRUPT');
  const t: ReplogEntry = { seq: 9, kind: 'triplet', key: '192.0.2/a@b.example/c@d.example', record: deleted, originNode: 'peer2', atMs: 7 };
  assert.equal(decodeReplogEntry(9, encodeReplogEntry(t)), t);
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
