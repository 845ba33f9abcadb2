// The binary form of greylist records and replication log entries in LMDB, used by record-codec.ts
// (its only caller) for every record and log entry it writes. Decoding a JSON array and validating
// it was a sixth of a policy decision's store work; these fixed layouts are read in place. Every
// field is validated as the JSON form's are; anything else throws StoreError(STORE_ERR_CORRUPT).
//
// Layouts (numbers are float64 little-endian, all non-negative safe integers):
//   triplet:   02 't' flags firstSeen lastSeen passedAt [epoch if flags&1] [deletedAt if flags&2] passes
//   client:    02 'c' firstSeen lastSeen lastCounted passes
//   log entry: 02 'l' kind('t'|'c') u16 keyBytes key(UTF-8) u8 originBytes origin atMs <triplet or client body>
//   passes:    u16 count, then count x (u8 idBytes, id (ASCII [A-Za-z0-9_.-]), count)
// The first byte tells the forms apart: a JSON value starts with '['.
import { StoreError } from '../util/errors.js';
import type { ClientRecord, TripletRecord } from './greylist-types.js';
import { checkTime, MAX_KEY_BYTES, MAX_NODE_ID_LENGTH, MAX_NODES_PER_RECORD, type ReplogEntry } from './record-codec.js';
import { StoreErrorCode } from './store-error-code.js';

/** First byte of every binary value. */
export const BINARY_MARK = 0x02;
const TRIPLET = 0x74; // 't'
const CLIENT = 0x63; // 'c'
const LOG_ENTRY = 0x6c; // 'l'
const HAS_EPOCH = 1;
const HAS_DELETED = 2;
/** Keys are written as UTF-8; bytes that are not are damage, not a key with U+FFFD in it. */
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Node id bytes: [A-Za-z0-9_.-], as isNodeId. */
const NODE_ID_BYTE = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-') NODE_ID_BYTE[c.charCodeAt(0)] = 1;

function corrupt(what: string): never {
  throw new StoreError(StoreErrorCode.CORRUPT, what);
}

function passesBytes(passes: Record<string, number>): number {
  let n = 2;
  for (const id in passes) n += 1 + id.length + 8;
  return n;
}

function tripletBodyBytes(r: TripletRecord): number {
  return 1 + 24 + (r.epoch || r.deletedAtMs ? 8 : 0) + (r.deletedAtMs ? 8 : 0) + passesBytes(r.passes);
}

function clientBodyBytes(r: ClientRecord): number {
  return 24 + passesBytes(r.passes);
}

function writePasses(buf: Buffer, at: number, passes: Record<string, number>): number {
  const countAt = at;
  at += 2;
  let count = 0;
  for (const id in passes) {
    // Records reach the codec validated (parseTriplet / parseClient): ids are 1-64 ASCII characters.
    if (id.length === 0 || id.length > MAX_NODE_ID_LENGTH) throw new StoreError(StoreErrorCode.INVALID, `invalid node id ${JSON.stringify(id.slice(0, 80))}`);
    buf[at] = id.length;
    buf.write(id, at + 1, 'latin1');
    at = buf.writeDoubleLE(passes[id]!, at + 1 + id.length);
    count++;
  }
  buf.writeUInt16LE(count, countAt);
  return at;
}

function writeTripletBody(buf: Buffer, at: number, r: TripletRecord): number {
  // As in the JSON form: an epoch is written for a restarted triplet and for every tombstone.
  const flags = (r.epoch || r.deletedAtMs ? HAS_EPOCH : 0) | (r.deletedAtMs ? HAS_DELETED : 0);
  buf[at] = flags;
  at = buf.writeDoubleLE(r.firstSeenMs, at + 1);
  at = buf.writeDoubleLE(r.lastSeenMs, at);
  at = buf.writeDoubleLE(r.passedAtMs, at);
  if (flags & HAS_EPOCH) at = buf.writeDoubleLE(r.epoch ?? 0, at);
  if (flags & HAS_DELETED) at = buf.writeDoubleLE(r.deletedAtMs ?? 0, at);
  return writePasses(buf, at, r.passes);
}

function writeClientBody(buf: Buffer, at: number, r: ClientRecord): number {
  at = buf.writeDoubleLE(r.firstSeenMs, at);
  at = buf.writeDoubleLE(r.lastSeenMs, at);
  at = buf.writeDoubleLE(r.lastCountedMs, at);
  return writePasses(buf, at, r.passes);
}

/** A value of `bytes` after the mark and type bytes, those two written. */
function valueBuffer(type: number, bytes: number): Buffer {
  const buf = Buffer.allocUnsafe(2 + bytes);
  buf[0] = BINARY_MARK;
  buf[1] = type;
  return buf;
}

/** The binary value of a (validated) triplet record. */
export function writeBinaryTriplet(r: TripletRecord): Buffer {
  const buf = valueBuffer(TRIPLET, tripletBodyBytes(r));
  writeTripletBody(buf, 2, r);
  return buf;
}

/** The binary value of a (validated) client record. */
export function writeBinaryClient(r: ClientRecord): Buffer {
  const buf = valueBuffer(CLIENT, clientBodyBytes(r));
  writeClientBody(buf, 2, r);
  return buf;
}

/** The binary value of a replication log entry (the seq is its key, not part of the value). */
export function writeBinaryReplogEntry(e: ReplogEntry): Buffer {
  const keyBytes = Buffer.byteLength(e.key, 'utf8');
  if (keyBytes === 0 || keyBytes > MAX_KEY_BYTES) throw new StoreError(StoreErrorCode.INVALID, `log entry key of ${keyBytes} bytes`);
  if (e.originNode.length === 0 || e.originNode.length > MAX_NODE_ID_LENGTH) throw new StoreError(StoreErrorCode.INVALID, 'log entry has an invalid origin node');
  const body = e.kind === 'triplet' ? tripletBodyBytes(e.record) : clientBodyBytes(e.record);
  const buf = valueBuffer(LOG_ENTRY, 1 + 2 + keyBytes + 1 + e.originNode.length + 8 + body);
  buf[2] = e.kind === 'triplet' ? TRIPLET : CLIENT;
  buf.writeUInt16LE(keyBytes, 3);
  let at = 5 + buf.write(e.key, 5, 'utf8');
  buf[at] = e.originNode.length;
  at += 1 + buf.write(e.originNode, at + 1, 'latin1');
  at = buf.writeDoubleLE(e.atMs, at);
  if (e.kind === 'triplet') writeTripletBody(buf, at, e.record);
  else writeClientBody(buf, at, e.record);
  return buf;
}

/** A read position in one value; every read checks the bounds. */
class Reader {
  at: number;
  constructor(
    readonly buf: Buffer,
    readonly what: string,
    start: number,
  ) {
    this.at = start;
  }

  need(n: number): void {
    if (this.at + n > this.buf.length) corrupt(`${this.what} is truncated (${this.buf.length} bytes)`);
  }

  u8(): number {
    this.need(1);
    return this.buf[this.at++]!;
  }

  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16LE(this.at);
    this.at += 2;
    return v;
  }

  time(field: string): number {
    this.need(8);
    const v = this.buf.readDoubleLE(this.at);
    this.at += 8;
    return checkTime(v, field, StoreErrorCode.CORRUPT);
  }

  nodeId(field: string): string {
    const len = this.u8();
    if (len === 0 || len > MAX_NODE_ID_LENGTH) corrupt(`${this.what} has an invalid ${field}`);
    this.need(len);
    const end = this.at + len;
    for (let i = this.at; i < end; i++) if (NODE_ID_BYTE[this.buf[i]!] !== 1) corrupt(`${this.what} has an invalid ${field}`);
    const id = this.buf.toString('latin1', this.at, end);
    this.at = end;
    return id;
  }

  passes(): Record<string, number> {
    const count = this.u16();
    if (count > MAX_NODES_PER_RECORD) corrupt(`${this.what}: passes has ${count} nodes (max ${MAX_NODES_PER_RECORD})`);
    const out: Record<string, number> = {};
    for (let i = 0; i < count; i++) {
      const id = this.nodeId('node id in passes');
      if (Object.hasOwn(out, id)) corrupt(`${this.what} has two counters of node ${id}`);
      out[id] = this.time(`passes[${id}]`);
      // "__proto__" is a valid id that a plain object does not keep as a property.
      if (!Object.hasOwn(out, id)) corrupt(`${this.what} has a counter of node ${id}, which no record holds`);
    }
    return out;
  }

  end(): void {
    if (this.at !== this.buf.length) corrupt(`${this.what} has ${this.buf.length - this.at} trailing bytes`);
  }

  triplet(): TripletRecord {
    const flags = this.u8();
    if (flags > (HAS_EPOCH | HAS_DELETED) || flags === HAS_DELETED) corrupt(`${this.what} has unknown flags ${flags}`);
    const record: TripletRecord = { firstSeenMs: this.time('firstSeenMs'), lastSeenMs: this.time('lastSeenMs'), passedAtMs: this.time('passedAtMs'), passes: {} };
    // The writer sets a flag only for a non-zero field (a tombstone's epoch, which it always carries,
    // may be 0): any other zero is not a value it wrote.
    const epoch = flags & HAS_EPOCH ? this.time('epoch') : 0;
    const deletedAtMs = flags & HAS_DELETED ? this.time('deletedAtMs') : 0;
    if (flags === HAS_EPOCH && epoch === 0) corrupt(`${this.what} has the epoch flag with epoch 0`);
    if (flags & HAS_DELETED && deletedAtMs === 0) corrupt(`${this.what} has the deletion flag with deletedAtMs 0`);
    record.passes = this.passes();
    if (epoch > 0) record.epoch = epoch;
    if (deletedAtMs > 0) record.deletedAtMs = deletedAtMs;
    return record;
  }

  client(): ClientRecord {
    return { firstSeenMs: this.time('firstSeenMs'), lastSeenMs: this.time('lastSeenMs'), lastCountedMs: this.time('lastCountedMs'), passes: this.passes() };
  }
}

function reader(bytes: Uint8Array, tag: number, what: string): Reader {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 2 || buf[0] !== BINARY_MARK) corrupt(`${what} is not a binary value`);
  if (buf[1] !== tag) corrupt(`${what} has the type byte ${buf[1]}, not ${tag}`);
  return new Reader(buf, what, 2);
}

/** Decodes and validates a binary triplet value. */
export function readBinaryTriplet(bytes: Uint8Array): TripletRecord {
  const r = reader(bytes, TRIPLET, 'triplet record');
  const record = r.triplet();
  r.end();
  return record;
}

/** Decodes and validates a binary client value. */
export function readBinaryClient(bytes: Uint8Array): ClientRecord {
  const r = reader(bytes, CLIENT, 'client record');
  const record = r.client();
  r.end();
  return record;
}

/** Decodes and validates a binary log entry stored under `seq`. */
export function readBinaryReplogEntry(seq: number, bytes: Uint8Array): ReplogEntry {
  const what = `replication log entry ${seq}`;
  const r = reader(bytes, LOG_ENTRY, what);
  const kind = r.u8();
  if (kind !== TRIPLET && kind !== CLIENT) corrupt(`${what} has unknown kind ${kind}`);
  const keyBytes = r.u16();
  if (keyBytes === 0 || keyBytes > MAX_KEY_BYTES) corrupt(`${what} has no key or an over-long one`);
  r.need(keyBytes);
  let key: string;
  try {
    key = UTF8.decode(r.buf.subarray(r.at, r.at + keyBytes));
  } catch (err) {
    throw new StoreError(StoreErrorCode.CORRUPT, `${what} has a key that is not UTF-8`, { cause: err });
  }
  r.at += keyBytes;
  const originNode = r.nodeId('origin node');
  const atMs = r.time('atMs');
  const entry: ReplogEntry =
    kind === TRIPLET ? { seq, kind: 'triplet', key, record: r.triplet(), originNode, atMs } : { seq, kind: 'client', key, record: r.client(), originNode, atMs };
  r.end();
  return entry;
}
