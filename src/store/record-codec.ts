// Encoding of everything the store keeps in LMDB: greylist records, replication log entries and
// cursors. Records and log entries are written in a small binary form (record-binary.ts); cursors,
// meta values and the records of stores written before it are versioned JSON arrays, still read.
// Called by lmdb-greylist-store.ts (and the replication code, for records received from peers). It
// never touches LMDB itself: decoding is pure, validates every field and throws
// StoreError(STORE_ERR_CORRUPT) instead of returning junk. Why not lmdb-js's msgpack: a decode error
// inside an lmdb-js range iterator aborts the whole scan, while decoding here lets one bad record be
// reported and skipped.
import { StoreError } from '../util/errors.js';
import { BINARY_MARK, readBinaryClient, readBinaryReplogEntry, readBinaryTriplet, writeBinaryClient, writeBinaryReplogEntry, writeBinaryTriplet } from './record-binary.js';
import type { ClientRecord, TripletRecord } from './greylist-types.js';
import { StoreErrorCode } from './store-error-code.js';

/** Version in the first element of every JSON value (cursors, meta, records of older stores). */
export const RECORD_SCHEMA_VERSION = 1;

/** Longest key accepted (UTF-8 bytes); lmdb-js's limit is 1978, a triplet needs ~600 at most. */
export const MAX_KEY_BYTES = 1000;

/** Longest node id (isNodeId): one ASCII byte per character. */
export const MAX_NODE_ID_LENGTH = 64;

/**
 * Most bytes a log entry's value adds to its record's (record-binary.ts): kind, key length and
 * key, origin length and id, atMs. The size guard reserves by it.
 */
export const REPLOG_OVERHEAD_BYTES = 1 + 2 + MAX_KEY_BYTES + 1 + MAX_NODE_ID_LENGTH + 8;

/** Most per-node counters one record may carry: a fleet is a handful of MX nodes. */
export const MAX_NODES_PER_RECORD = 256;

/** Which greylist database a key or record belongs to. */
export type RecordKind = 'triplet' | 'client';

/** One replication log entry: the full state of one record after a change (state-based merge). */
export type ReplogEntry = {
  /** Monotonically increasing per node; the log's key. */
  seq: number;
  key: string;
  /** Node whose decision (or whose peer update) produced this state. */
  originNode: string;
  /** Clock ms when this node logged the entry. */
  atMs: number;
} & ({ kind: 'triplet'; record: TripletRecord } | { kind: 'client'; record: ClientRecord });

type Code = typeof StoreErrorCode.CORRUPT | typeof StoreErrorCode.INVALID;

function fail(code: Code, what: string): never {
  throw new StoreError(code, what);
}

/** @internal Throws StoreError(code) unless `value` is a non-negative safe integer (a time in ms, a count). */
export function checkTime(value: unknown, field: string, code: Code): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) fail(code, `${field} is not a non-negative integer`);
  return value;
}

function checkPasses(value: unknown, code: Code): Record<string, number> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(code, 'passes is not an object');
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length > MAX_NODES_PER_RECORD) fail(code, `passes has ${entries.length} nodes (max ${MAX_NODES_PER_RECORD})`);
  const out: Record<string, number> = {};
  for (const [node, n] of entries) {
    if (!isNodeId(node)) fail(code, `passes has an invalid node id ${JSON.stringify(String(node).slice(0, 80))}`);
    out[node] = checkTime(n, `passes[${node}]`, code);
  }
  return out;
}

const NODE_ID = new RegExp(`^[A-Za-z0-9_.-]{1,${MAX_NODE_ID_LENGTH}}$`);

/** Node ids: 1-64 characters of [A-Za-z0-9_.-] (generated ids are 16 hex digits). */
export function isNodeId(value: unknown): value is string {
  return typeof value === 'string' && NODE_ID.test(value);
}

/**
 * Validates a triplet record from an untrusted source (a peer, a caller's decide function).
 * Throws StoreError with `code` (STORE_ERR_CORRUPT by default) when a field is missing or invalid.
 */
export function parseTriplet(value: unknown, code: Code = StoreErrorCode.CORRUPT): TripletRecord {
  if (typeof value !== 'object' || value === null) fail(code, 'triplet record is not an object');
  const v = value as Record<string, unknown>;
  const record: TripletRecord = {
    firstSeenMs: checkTime(v.firstSeenMs, 'firstSeenMs', code),
    lastSeenMs: checkTime(v.lastSeenMs, 'lastSeenMs', code),
    passedAtMs: checkTime(v.passedAtMs, 'passedAtMs', code),
    passes: checkPasses(v.passes, code),
  };
  // The generation of a restarted triplet (greylist-types.ts); absent means 0 and stays absent.
  if (v.epoch !== undefined) {
    const epoch = checkTime(v.epoch, 'epoch', code);
    if (epoch > 0) record.epoch = epoch;
  }
  // A tombstone's deletion time; absent (or 0) for a live triplet, and then left absent.
  if (v.deletedAtMs !== undefined) {
    const deletedAtMs = checkTime(v.deletedAtMs, 'deletedAtMs', code);
    if (deletedAtMs > 0) record.deletedAtMs = deletedAtMs;
  }
  return record;
}

/** Validates a client record from an untrusted source; see parseTriplet. */
export function parseClient(value: unknown, code: Code = StoreErrorCode.CORRUPT): ClientRecord {
  if (typeof value !== 'object' || value === null) fail(code, 'client record is not an object');
  const v = value as Record<string, unknown>;
  return {
    firstSeenMs: checkTime(v.firstSeenMs, 'firstSeenMs', code),
    lastSeenMs: checkTime(v.lastSeenMs, 'lastSeenMs', code),
    lastCountedMs: checkTime(v.lastCountedMs, 'lastCountedMs', code),
    passes: checkPasses(v.passes, code),
  };
}

/** Validates a record of the given kind; see parseTriplet. */
export function parseRecord(kind: RecordKind, value: unknown, code: Code = StoreErrorCode.CORRUPT): TripletRecord | ClientRecord {
  return kind === 'triplet' ? parseTriplet(value, code) : parseClient(value, code);
}

/** Throws StoreError(STORE_ERR_INVALID) unless `key` is a non-empty string of at most MAX_KEY_BYTES. */
export function checkKey(key: unknown, what: string): string {
  if (typeof key !== 'string' || key.length === 0) fail(StoreErrorCode.INVALID, `${what} key is empty or not a string`);
  if (Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) fail(StoreErrorCode.INVALID, `${what} key is longer than ${MAX_KEY_BYTES} bytes`);
  return key;
}

function tripletTuple(r: TripletRecord): unknown[] {
  // A fifth element only for restarted triplets and a sixth only for tombstones, so records without
  // them keep their old form.
  const t: unknown[] = [r.firstSeenMs, r.lastSeenMs, r.passedAtMs, r.passes];
  if (r.deletedAtMs) t.push(r.epoch ?? 0, r.deletedAtMs);
  else if (r.epoch) t.push(r.epoch);
  return t;
}

function clientTuple(r: ClientRecord): unknown[] {
  return [r.firstSeenMs, r.lastSeenMs, r.lastCountedMs, r.passes];
}

function tripletFromTuple(t: unknown, code: Code): TripletRecord {
  if (!Array.isArray(t) || t.length < 4 || t.length > 6) fail(code, 'triplet tuple has the wrong shape');
  return parseTriplet({ firstSeenMs: t[0], lastSeenMs: t[1], passedAtMs: t[2], passes: t[3], epoch: t[4], deletedAtMs: t[5] }, code);
}

function clientFromTuple(t: unknown, code: Code): ClientRecord {
  if (!Array.isArray(t) || t.length !== 4) fail(code, 'client tuple has the wrong shape');
  return parseClient({ firstSeenMs: t[0], lastSeenMs: t[1], lastCountedMs: t[2], passes: t[3] }, code);
}

function encode(value: unknown[]): Buffer {
  return Buffer.from(JSON.stringify([RECORD_SCHEMA_VERSION, ...value]), 'utf8');
}

/** Parses the envelope: JSON array whose first element is the schema version; returns the rest. */
function decodeEnvelope(bytes: Uint8Array, what: string): unknown[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (err) {
    throw new StoreError(StoreErrorCode.CORRUPT, `${what} is not decodable (${bytes.byteLength} bytes)`, { cause: err });
  }
  if (!Array.isArray(parsed) || parsed.length === 0) fail(StoreErrorCode.CORRUPT, `${what} is not a versioned array`);
  if (parsed[0] !== RECORD_SCHEMA_VERSION) fail(StoreErrorCode.CORRUPT, `${what} has unknown schema version ${JSON.stringify(parsed[0])}`);
  return parsed.slice(1);
}

/** Encodes a triplet record for the `triplets` database (binary form). */
export function encodeTriplet(r: TripletRecord): Buffer {
  return writeBinaryTriplet(r);
}

/** Decodes and validates a `triplets` value (binary or JSON form); throws StoreError(STORE_ERR_CORRUPT). */
export function decodeTriplet(bytes: Uint8Array): TripletRecord {
  if (bytes[0] === BINARY_MARK) return readBinaryTriplet(bytes);
  const body = decodeEnvelope(bytes, 'triplet record');
  return tripletFromTuple(body, StoreErrorCode.CORRUPT);
}

/** Encodes a client record for the `clients` database (binary form). */
export function encodeClient(r: ClientRecord): Buffer {
  return writeBinaryClient(r);
}

/** Decodes and validates a `clients` value (binary or JSON form); throws StoreError(STORE_ERR_CORRUPT). */
export function decodeClient(bytes: Uint8Array): ClientRecord {
  if (bytes[0] === BINARY_MARK) return readBinaryClient(bytes);
  const body = decodeEnvelope(bytes, 'client record');
  return clientFromTuple(body, StoreErrorCode.CORRUPT);
}

/** @internal The JSON form of a record, as stores before the binary form wrote it (tests of old stores). */
export function encodeRecordJson(kind: RecordKind, r: TripletRecord | ClientRecord): Buffer {
  return encode(kind === 'triplet' ? tripletTuple(r as TripletRecord) : clientTuple(r as ClientRecord));
}

/** @internal The JSON form of a log entry, as stores before the binary form wrote it (tests of old stores). */
export function encodeReplogEntryJson(e: ReplogEntry): Buffer {
  const record = e.kind === 'triplet' ? tripletTuple(e.record) : clientTuple(e.record);
  return encode([e.kind === 'triplet' ? 't' : 'c', e.key, record, e.originNode, e.atMs]);
}

/** Encodes a record of either kind. */
export function encodeRecord(kind: RecordKind, r: TripletRecord | ClientRecord): Buffer {
  return kind === 'triplet' ? encodeTriplet(r as TripletRecord) : encodeClient(r as ClientRecord);
}

/** Decodes a record of either kind; throws StoreError(STORE_ERR_CORRUPT). */
export function decodeRecord(kind: RecordKind, bytes: Uint8Array): TripletRecord | ClientRecord {
  return kind === 'triplet' ? decodeTriplet(bytes) : decodeClient(bytes);
}

/** Encodes a replication log value, binary form (the seq is the key, not part of the value). */
export function encodeReplogEntry(e: ReplogEntry): Buffer {
  return writeBinaryReplogEntry(e);
}

/** Decodes and validates a `replog` value stored under `seq` (binary or JSON form); throws StoreError(STORE_ERR_CORRUPT). */
export function decodeReplogEntry(seq: number, bytes: Uint8Array): ReplogEntry {
  if (bytes[0] === BINARY_MARK) return readBinaryReplogEntry(seq, bytes);
  const body = decodeEnvelope(bytes, `replication log entry ${seq}`);
  const C = StoreErrorCode.CORRUPT;
  if (body.length !== 5) fail(C, `replication log entry ${seq} has the wrong shape`);
  const [kindCode, key, record, originNode, atMs] = body;
  if (typeof key !== 'string' || key.length === 0) fail(C, `replication log entry ${seq} has no key`);
  if (!isNodeId(originNode)) fail(C, `replication log entry ${seq} has an invalid origin node`);
  const at = checkTime(atMs, 'atMs', C);
  if (kindCode === 't') return { seq, kind: 'triplet', key, record: tripletFromTuple(record, C), originNode, atMs: at };
  if (kindCode === 'c') return { seq, kind: 'client', key, record: clientFromTuple(record, C), originNode, atMs: at };
  return fail(C, `replication log entry ${seq} has unknown kind ${JSON.stringify(kindCode)}`);
}

/** Encodes a peer cursor (last sequence the peer acknowledged). */
export function encodeCursor(seq: number): Buffer {
  return encode([seq]);
}

/** Decodes a peer cursor; throws StoreError(STORE_ERR_CORRUPT). */
export function decodeCursor(bytes: Uint8Array): number {
  const body = decodeEnvelope(bytes, 'peer cursor');
  if (body.length !== 1) fail(StoreErrorCode.CORRUPT, 'peer cursor has the wrong shape');
  return checkTime(body[0], 'cursor', StoreErrorCode.CORRUPT);
}

/** Encodes a `meta` value (node id, schema version). */
export function encodeMetaValue(value: string | number): Buffer {
  return encode([value]);
}

/** Decodes a `meta` value; throws StoreError(STORE_ERR_CORRUPT). */
export function decodeMetaValue(bytes: Uint8Array, name: string): string | number {
  const body = decodeEnvelope(bytes, `meta value ${name}`);
  const v = body[0];
  if (body.length !== 1 || (typeof v !== 'string' && typeof v !== 'number')) fail(StoreErrorCode.CORRUPT, `meta value ${name} has the wrong shape`);
  return v;
}
