// Tests for the replication frame codec: every message round-trips, frames split at any byte or
// packed together decode the same, and oversized, malformed or invalid frames are refused with a
// typed error (the decoder then stays failed) before anything reaches the store.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { StoreError } from '../../../src/util/errors.js';
import {
  decodeBody,
  encodeFrame,
  encodePushFrame,
  FrameDecoder,
  MAX_BATCH_ITEMS,
  PROTOCOL_VERSION,
  type ReplicationMessage,
  serializeEntry,
  type WireEntry,
} from '../../../src/store/replication/frame-codec.js';
import { ReplicationErrorCode } from '../../../src/store/replication/replication-error-code.js';

const s = suite('store/replication/frame-codec');

const T = 1_700_000_000_000;
const entry: WireEntry = {
  kind: 'triplet',
  key: '192.0.2/a@example.org/b@example.net',
  record: { firstSeenMs: T, lastSeenMs: T + 5, passedAtMs: 0, passes: { n1: 2 }, epoch: 3 },
  originNode: 'n1',
  atMs: T + 5,
};
const clientEntry: WireEntry = {
  kind: 'client',
  key: '192.0.2.7',
  record: { firstSeenMs: T, lastSeenMs: T, lastCountedMs: T, passes: { n1: 1, n2: 4 } },
  originNode: 'n2',
  atMs: T,
};

const samples: ReplicationMessage[] = [
  { type: 'hello', version: PROTOCOL_VERSION, nodeId: 'abcdef0123456789', name: 'mx1' },
  { type: 'hello', version: PROTOCOL_VERSION, nodeId: 'abcdef0123456789', name: 'mx1', nowMs: 5, keying: 'lookup-by-host=no ipv4cidr=24' },
  { type: 'hello', version: PROTOCOL_VERSION, nodeId: 'abcdef0123456789', name: 'mx1', instanceId: '0123456789abcdef' },
  { type: 'push', upTo: 42, entries: [entry, clientEntry] },
  { type: 'push', upTo: 7, entries: [] },
  { type: 'ack', upTo: 42 },
  { type: 'digest', id: 1, buckets: 2, fromMs: 5, toMs: 10, triplet: ['0'.repeat(32), 'f'.repeat(32)], client: ['a'.repeat(32), 'b'.repeat(32)] },
  { type: 'diff', id: 1, triplet: [0], client: [] },
  { type: 'repair', id: 2, records: [{ kind: entry.kind, key: entry.key, record: entry.record } as never] },
  { type: 'repair-ack', id: 2 },
  { type: 'ping' },
  { type: 'pong' },
  { type: 'error', code: 'STORE_ERR_REPL_AUTH', message: 'no' },
];

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    assert.instance(err, StoreError);
    return (err as StoreError).code;
  }
  return undefined;
}

function frame(type: number, body: string | Buffer): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  const h = Buffer.alloc(5);
  h.writeUInt32BE(b.length + 1, 0);
  h[4] = type;
  return Buffer.concat([h, b]);
}

s('every message type round-trips through encode and decode', () => {
  for (const msg of samples) {
    const [out, ...rest] = new FrameDecoder().push(encodeFrame(msg));
    assert.equal(rest, []);
    assert.equal(out, msg, msg.type);
  }
});

s('a tombstone travels with its deletion time; a live triplet keeps the 5-field tuple older nodes read', () => {
  const tomb: WireEntry = { ...entry, record: { ...entry.record, deletedAtMs: T + 9 } } as WireEntry;
  const [out] = new FrameDecoder().push(encodeFrame({ type: 'push', upTo: 3, entries: [tomb] }));
  assert.equal(out, { type: 'push', upTo: 3, entries: [tomb] });
  const live = JSON.parse(serializeEntry(entry)) as unknown[];
  assert.is((live[2] as unknown[]).length, 5);
  const dead = JSON.parse(serializeEntry(tomb)) as unknown[];
  assert.equal((dead[2] as unknown[]).slice(4), [3, T + 9]);
  const bad = frame(2, JSON.stringify({ upTo: 1, entries: [['t', 'k', [T, T, 0, {}, 0, -1], 'n1', T]] }));
  assert.is(codeOf(() => new FrameDecoder().push(bad)), ReplicationErrorCode.PROTOCOL);
});

s('a PUSH built from serialised entries is byte-identical to encodeFrame of the message', () => {
  const msg: ReplicationMessage = { type: 'push', upTo: 42, entries: [entry, clientEntry] };
  assert.equal(encodePushFrame(42, msg.entries.map(serializeEntry)), encodeFrame(msg));
  assert.equal(encodePushFrame(7, []), encodeFrame({ type: 'push', upTo: 7, entries: [] }));
});

s('frames split at every byte, or packed into one chunk, decode identically', () => {
  const bytes = Buffer.concat(samples.map((m) => encodeFrame(m)));
  const d = new FrameDecoder();
  const got: ReplicationMessage[] = [];
  for (let i = 0; i < bytes.length; i++) got.push(...d.push(bytes.subarray(i, i + 1)));
  assert.equal(got, samples);
  assert.is(d.pendingBytes(), 0);
  assert.equal(new FrameDecoder().push(bytes), samples);
});

s('an announced length over the cap fails at once, before the body is buffered', () => {
  const d = new FrameDecoder(1024);
  const h = Buffer.alloc(4);
  h.writeUInt32BE(1025, 0);
  assert.is(codeOf(() => d.push(h)), ReplicationErrorCode.FRAME_TOO_LARGE);
  // Stays failed: a good frame afterwards is not accepted either.
  assert.is(codeOf(() => d.push(encodeFrame({ type: 'ping' }))), ReplicationErrorCode.FRAME_TOO_LARGE);
  const huge = Buffer.alloc(4);
  huge.writeUInt32BE(0xffffffff, 0);
  assert.is(codeOf(() => new FrameDecoder().push(huge)), ReplicationErrorCode.FRAME_TOO_LARGE);
});

s('encoding a message over the cap throws instead of sending it', () => {
  const big: ReplicationMessage = { type: 'push', upTo: 1, entries: Array.from({ length: 50 }, () => entry) };
  assert.is(codeOf(() => encodeFrame(big, 512)), ReplicationErrorCode.FRAME_TOO_LARGE);
});

s('malformed frames are protocol errors', () => {
  const cases: Array<[string, Buffer]> = [
    ['zero length', Buffer.from([0, 0, 0, 0])],
    ['unknown type', frame(99, '{}')],
    ['not JSON', frame(3, '{"upTo":')],
    ['binary garbage', frame(2, Buffer.from([0xff, 0xfe, 0x00, 0x01]))],
    ['array body', frame(3, '[1]')],
    ['negative ack', frame(3, '{"upTo":-1}')],
    ['fractional ack', frame(3, '{"upTo":1.5}')],
    ['hello without version', frame(1, '{"node":"abc","name":"mx1"}')],
    ['hello with bad node id', frame(1, '{"v":1,"node":"a b","name":"mx1"}')],
    ['push entries not a list', frame(2, '{"upTo":1,"entries":{}}')],
    ['push entry of unknown kind', frame(2, '{"upTo":1,"entries":[["x","k",[1,1,0,{},0],"n1",1]]}')],
    ['push entry with negative time', frame(2, '{"upTo":1,"entries":[["t","k",[-1,1,0,{},0],"n1",1]]}')],
    ['push entry with empty key', frame(2, '{"upTo":1,"entries":[["t","",[1,1,0,{},0],"n1",1]]}')],
    ['push entry with bad origin', frame(2, '{"upTo":1,"entries":[["t","k",[1,1,0,{},0],"no way",1]]}')],
    ['push entry with bad counters', frame(2, '{"upTo":1,"entries":[["t","k",[1,1,0,{"n1":"x"},0],"n1",1]]}')],
    ['push entry with bad epoch', frame(2, '{"upTo":1,"entries":[["t","k",[1,1,0,{},-2],"n1",1]]}')],
    ['push entry with long key', frame(2, JSON.stringify({ upTo: 1, entries: [['t', 'k'.repeat(1001), [1, 1, 0, {}, 0], 'n1', 1]] }))],
    ['digest with bad bucket count', frame(4, JSON.stringify({ id: 1, buckets: 3, from: 0, to: 1, t: [], c: [] }))],
    ['digest with short hash list', frame(4, JSON.stringify({ id: 1, buckets: 2, from: 0, to: 1, t: ['0'.repeat(32)], c: ['0'.repeat(32), '0'.repeat(32)] }))],
    ['digest with inverted window', frame(4, JSON.stringify({ id: 1, buckets: 1, from: 5, to: 1, t: ['0'.repeat(32)], c: ['0'.repeat(32)] }))],
    ['diff with bad bucket', frame(5, '{"id":1,"t":[-1],"c":[]}')],
  ];
  for (const [name, bytes] of cases) {
    assert.is(codeOf(() => new FrameDecoder().push(bytes)), ReplicationErrorCode.PROTOCOL, name);
  }
});

s('batches over the item limit are refused', () => {
  const entries = Array.from({ length: MAX_BATCH_ITEMS + 1 }, () => ['c', 'k', [1, 1, 1, {}], 'n1', 1]);
  assert.is(codeOf(() => decodeBody(2, Buffer.from(JSON.stringify({ upTo: 1, entries })))), ReplicationErrorCode.PROTOCOL);
});

s('error frames are cut to a bounded size and never throw for odd fields', () => {
  const msg = decodeBody(10, Buffer.from(JSON.stringify({ code: 5, message: 'x'.repeat(5000) })));
  assert.equal(msg.type, 'error');
  if (msg.type === 'error') {
    assert.is(msg.code, 'unknown');
    assert.is(msg.message.length, 500);
  }
});

s('a HELLO keying that is not a short line of printable ASCII is left out, not refused (it is only compared)', () => {
  const hello = (k: unknown): ReplicationMessage => decodeBody(1, Buffer.from(JSON.stringify({ v: 1, node: 'abcdef0123456789', name: 'mx1', k })));
  assert.is((hello('ipv4cidr=24') as { keying?: string }).keying, 'ipv4cidr=24');
  for (const bad of [42, '', 'x'.repeat(301), 'a\nb', 'caf\u00e9']) assert.is((hello(bad) as { keying?: string }).keying, undefined, JSON.stringify(bad));
});

s('a HELLO process id that is not 16 hex digits is left out, not refused (older nodes send none)', () => {
  const hello = (i: unknown): ReplicationMessage => decodeBody(1, Buffer.from(JSON.stringify({ v: 1, node: 'abcdef0123456789', name: 'mx1', i })));
  assert.is((hello('0123456789abcdef') as { instanceId?: string }).instanceId, '0123456789abcdef');
  for (const bad of [42, '', '0123456789ABCDEF', '0123456789abcdef0', 'x'.repeat(16)]) assert.is((hello(bad) as { instanceId?: string }).instanceId, undefined, JSON.stringify(bad));
});

s.run();
