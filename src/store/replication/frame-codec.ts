// The replication wire protocol: length-prefixed, size-capped frames carrying one typed message each,
// and the validation of everything a peer sends (it is authenticated, but its bytes are still input).
// Used by replication-connection.ts on both ends of a link. It never touches sockets or the store:
// it turns messages into bytes and bytes into validated messages, or throws StoreError(STORE_ERR_REPL_*).
//
// Frame: u32 big-endian length of what follows, u8 message type, UTF-8 JSON body.
import { StoreError } from '../../util/errors.js';
import type { ClientRecord, TripletRecord } from '../greylist-types.js';
import { checkKey, isNodeId, parseClient, parseTriplet, type RecordKind } from '../record-codec.js';
import { ReplicationErrorCode } from './replication-error-code.js';

/** Version sent in HELLO; a peer with another version is refused (both ends log it). */
export const PROTOCOL_VERSION = 1;

/** Default cap on one frame (type byte and body): 4 MiB. Senders split batches well below it. */
export const DEFAULT_MAX_FRAME_BYTES = 4 * 1024 * 1024;

/** Bytes before the body: the length field and the type byte. */
export const FRAME_HEADER_BYTES = 5;

/** Most entries in one PUSH and records in one REPAIR a receiver accepts. */
export const MAX_BATCH_ITEMS = 10_000;

/** Bounds of the digest bucket count (a power of two). */
export const MAX_DIGEST_BUCKETS = 4096;

/** A record as carried on the wire, with its key and kind. */
export type WireRecord = { key: string } & ({ kind: 'triplet'; record: TripletRecord } | { kind: 'client'; record: ClientRecord });

/** One replication log entry as pushed to a peer. */
export type WireEntry = WireRecord & { originNode: string; atMs: number };

/** Every message of protocol version 1. */
export type ReplicationMessage =
  /** First frame of each side: who is speaking. The receiver checks `name` against the TLS-PSK identity. */
  | { type: 'hello'; version: number; nodeId: string; name: string; nowMs?: number; keying?: string; instanceId?: string }
  /** Log entries after the receiver's cursor; `upTo` is the last sequence covered (entries may be skipped). */
  | { type: 'push'; upTo: number; entries: WireEntry[] }
  /** Everything up to `upTo` is applied and committed by the receiver. */
  | { type: 'ack'; upTo: number }
  /** The sender's per-bucket hashes of its records with lastSeenMs in [fromMs, toMs) (both ends use this window). */
  | { type: 'digest'; id: number; buckets: number; fromMs: number; toMs: number; triplet: string[]; client: string[] }
  /** The buckets whose hashes differ at the receiver. */
  | { type: 'diff'; id: number; triplet: number[]; client: number[] }
  /** The sender's records of differing buckets, merged by the receiver like any update. */
  | { type: 'repair'; id: number; records: WireRecord[] }
  /** The REPAIR with this id is applied and committed. */
  | { type: 'repair-ack'; id: number }
  /** Liveness probe of an idle link, answered with pong. */
  | { type: 'ping' }
  | { type: 'pong' }
  /** The sender closes the session after this. */
  | { type: 'error'; code: string; message: string };

export type MessageType = ReplicationMessage['type'];

const TYPE_CODES: Readonly<Record<MessageType, number>> = {
  hello: 1,
  push: 2,
  ack: 3,
  digest: 4,
  diff: 5,
  repair: 6,
  'repair-ack': 7,
  ping: 8,
  pong: 9,
  error: 10,
};
const TYPE_BY_CODE = new Map<number, MessageType>(Object.entries(TYPE_CODES).map(([name, code]) => [code, name as MessageType]));

function protocolError(message: string, cause?: unknown): StoreError {
  return new StoreError(ReplicationErrorCode.PROTOCOL, message, cause === undefined ? undefined : { cause });
}

/** Encodes one message as a frame. Throws STORE_ERR_REPL_FRAME_TOO_LARGE when it exceeds `maxFrameBytes`. */
export function encodeFrame(msg: ReplicationMessage, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): Buffer {
  return frameOf(msg.type, JSON.stringify(toBody(msg)), maxFrameBytes);
}

function frameOf(type: MessageType, json: string, maxFrameBytes: number): Buffer {
  const body = Buffer.from(json, 'utf8');
  const length = body.length + 1;
  if (length > maxFrameBytes) {
    throw new StoreError(ReplicationErrorCode.FRAME_TOO_LARGE, `${type} frame of ${length} bytes exceeds the cap of ${maxFrameBytes} bytes`);
  }
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  header.writeUInt32BE(length, 0);
  header.writeUInt8(TYPE_CODES[type], 4);
  return Buffer.concat([header, body]);
}

/**
 * One PUSH entry serialised as it appears in the frame. The sender serialises each entry once, sums
 * the lengths to stay below the cap, and joins them with encodePushFrame (the hot path of a sender).
 */
export function serializeEntry(entry: WireEntry): string {
  return JSON.stringify(entryToWire(entry));
}

/** A PUSH frame from entries serialised by serializeEntry; same bytes as encodeFrame of the message. */
export function encodePushFrame(upTo: number, serialized: readonly string[], maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): Buffer {
  if (!Number.isSafeInteger(upTo) || upTo < 0) throw new StoreError(ReplicationErrorCode.PROTOCOL, `invalid push upTo ${upTo}`);
  return frameOf('push', `{"upTo":${upTo},"entries":[${serialized.join(',')}]}`, maxFrameBytes);
}

function recordToWire(r: WireRecord): unknown[] {
  if (r.kind === 'triplet') {
    const t = r.record;
    // A sixth element only for tombstones: a live triplet has the form every version reads.
    const tuple = [t.firstSeenMs, t.lastSeenMs, t.passedAtMs, t.passes, t.epoch ?? 0];
    if (t.deletedAtMs) tuple.push(t.deletedAtMs);
    return ['t', r.key, tuple];
  }
  const c = r.record;
  return ['c', r.key, [c.firstSeenMs, c.lastSeenMs, c.lastCountedMs, c.passes]];
}

function entryToWire(e: WireEntry): unknown[] {
  return [...recordToWire(e), e.originNode, e.atMs];
}

function toBody(msg: ReplicationMessage): unknown {
  switch (msg.type) {
    case 'hello':
      return {
        v: msg.version,
        node: msg.nodeId,
        name: msg.name,
        ...(msg.nowMs === undefined ? {} : { now: msg.nowMs }),
        ...(msg.keying === undefined ? {} : { k: msg.keying }),
        ...(msg.instanceId === undefined ? {} : { i: msg.instanceId }),
      };
    case 'push':
      return { upTo: msg.upTo, entries: msg.entries.map(entryToWire) };
    case 'ack':
      return { upTo: msg.upTo };
    case 'digest':
      return { id: msg.id, buckets: msg.buckets, from: msg.fromMs, to: msg.toMs, t: msg.triplet, c: msg.client };
    case 'diff':
      return { id: msg.id, t: msg.triplet, c: msg.client };
    case 'repair':
      return { id: msg.id, records: msg.records.map(recordToWire) };
    case 'repair-ack':
      return { id: msg.id };
    case 'ping':
    case 'pong':
      return {};
    case 'error':
      return { code: msg.code, message: msg.message };
  }
}

/**
 * Incremental frame decoder for one connection. `push` returns every message completed by the chunk.
 * Throws StoreError and stays failed (every later push throws the same error) with
 * STORE_ERR_REPL_FRAME_TOO_LARGE as soon as a length field announces more than the cap (before
 * buffering it), or STORE_ERR_REPL_PROTOCOL for an empty frame, an unknown type or an invalid body.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private failure: StoreError | undefined;

  constructor(private readonly maxFrameBytes = DEFAULT_MAX_FRAME_BYTES) {}

  push(chunk: Buffer): ReplicationMessage[] {
    if (this.failure) throw this.failure;
    try {
      return this.take(chunk);
    } catch (err) {
      this.failure = err instanceof StoreError ? err : protocolError(`undecodable frame: ${String(err)}`, err);
      this.chunks = [];
      this.buffered = 0;
      throw this.failure;
    }
  }

  /** Bytes buffered of an incomplete frame. */
  pendingBytes(): number {
    return this.buffered;
  }

  private take(chunk: Buffer): ReplicationMessage[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const out: ReplicationMessage[] = [];
    for (;;) {
      if (this.buffered < 4) break;
      const head = this.chunks.length === 1 ? this.chunks[0]! : this.flatten();
      const length = head.readUInt32BE(0);
      if (length === 0) throw protocolError('empty frame (length 0)');
      if (length > this.maxFrameBytes) {
        throw new StoreError(ReplicationErrorCode.FRAME_TOO_LARGE, `frame of ${length} bytes announced; the cap is ${this.maxFrameBytes} bytes`);
      }
      if (this.buffered < 4 + length) break;
      const all = this.chunks.length === 1 ? this.chunks[0]! : this.flatten();
      const frame = all.subarray(4, 4 + length);
      const rest = all.subarray(4 + length);
      this.chunks = rest.length > 0 ? [rest] : [];
      this.buffered = rest.length;
      out.push(decodeBody(frame[0]!, frame.subarray(1)));
    }
    return out;
  }

  private flatten(): Buffer {
    const all = Buffer.concat(this.chunks, this.buffered);
    this.chunks = [all];
    return all;
  }
}

/** Decodes and validates one frame's type byte and body. Throws STORE_ERR_REPL_PROTOCOL. */
export function decodeBody(typeCode: number, body: Buffer): ReplicationMessage {
  const type = TYPE_BY_CODE.get(typeCode);
  if (type === undefined) throw protocolError(`unknown frame type ${typeCode}`);
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw protocolError(`${type} frame body is not JSON (${body.length} bytes)`, err);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw protocolError(`${type} frame body is not an object`);
  const b = json as Record<string, unknown>;
  switch (type) {
    case 'hello': {
      const version = b.v;
      if (!Number.isSafeInteger(version) || (version as number) < 1) throw protocolError('hello has no protocol version');
      if (!isNodeId(b.node)) throw protocolError('hello has an invalid node id');
      if (!isNodeId(b.name)) throw protocolError('hello has an invalid node name');
      // The sender's clock (absent from older nodes; not trusted for anything but the skew warning).
      const nowMs = typeof b.now === 'number' && Number.isSafeInteger(b.now) && b.now >= 0 ? b.now : undefined;
      // The greylist settings every node must share (absent from older nodes; only compared and shown).
      const keying = typeof b.k === 'string' && /^[\x20-\x7e]{1,300}$/.test(b.k) ? b.k : undefined;
      // The sending process's random id (absent from older nodes): tells a node from a copy of its data dir.
      const instanceId = typeof b.i === 'string' && /^[0-9a-f]{16}$/.test(b.i) ? b.i : undefined;
      return {
        type,
        version: version as number,
        nodeId: b.node,
        name: b.name,
        ...(nowMs === undefined ? {} : { nowMs }),
        ...(keying === undefined ? {} : { keying }),
        ...(instanceId === undefined ? {} : { instanceId }),
      };
    }
    case 'push': {
      const upTo = seqOf(b.upTo, 'push upTo');
      return { type, upTo, entries: listOf(b.entries, 'push entries').map((e, i) => entryFromWire(e, i)) };
    }
    case 'ack':
      return { type, upTo: seqOf(b.upTo, 'ack upTo') };
    case 'digest': {
      const id = seqOf(b.id, 'digest id');
      const buckets = b.buckets;
      if (!Number.isSafeInteger(buckets) || (buckets as number) < 1 || (buckets as number) > MAX_DIGEST_BUCKETS || ((buckets as number) & ((buckets as number) - 1)) !== 0) {
        throw protocolError('digest bucket count is not a power of two in 1..4096');
      }
      const hashes = (v: unknown, what: string): string[] => {
        if (!Array.isArray(v) || v.length !== buckets) throw protocolError(`digest ${what} does not hold ${String(buckets)} hashes`);
        for (const h of v) if (typeof h !== 'string' || !/^[0-9a-f]{32}$/.test(h)) throw protocolError(`digest ${what} holds an invalid hash`);
        return v as string[];
      };
      const fromMs = seqOf(b.from, 'digest window start');
      const toMs = seqOf(b.to, 'digest window end');
      if (toMs < fromMs) throw protocolError('digest window ends before it starts');
      return { type, id, buckets: buckets as number, fromMs, toMs, triplet: hashes(b.t, 'triplet'), client: hashes(b.c, 'client') };
    }
    case 'diff': {
      const indexes = (v: unknown, what: string): number[] => {
        if (!Array.isArray(v) || v.length > MAX_DIGEST_BUCKETS) throw protocolError(`diff ${what} is not a bucket list`);
        for (const n of v) if (!Number.isSafeInteger(n) || n < 0 || n >= MAX_DIGEST_BUCKETS) throw protocolError(`diff ${what} holds an invalid bucket`);
        return v as number[];
      };
      return { type, id: seqOf(b.id, 'diff id'), triplet: indexes(b.t, 'triplet'), client: indexes(b.c, 'client') };
    }
    case 'repair':
      return { type, id: seqOf(b.id, 'repair id'), records: listOf(b.records, 'repair records').map((r, i) => recordFromWire(r, i, 'repair record')) };
    case 'repair-ack':
      return { type, id: seqOf(b.id, 'repair-ack id') };
    case 'ping':
    case 'pong':
      return { type };
    case 'error': {
      const code = typeof b.code === 'string' ? b.code.slice(0, 80) : 'unknown';
      const message = typeof b.message === 'string' ? b.message.slice(0, 500) : '';
      return { type, code, message };
    }
  }
}

function seqOf(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw protocolError(`${what} is not a non-negative integer`);
  return v;
}

function listOf(v: unknown, what: string): unknown[] {
  if (!Array.isArray(v)) throw protocolError(`${what} is not a list`);
  if (v.length > MAX_BATCH_ITEMS) throw protocolError(`${what} holds ${v.length} items (max ${MAX_BATCH_ITEMS})`);
  return v;
}

function recordFromWire(v: unknown, index: number, what: string): WireRecord {
  if (!Array.isArray(v) || v.length < 3) throw protocolError(`${what} ${index} has the wrong shape`);
  const [kindCode, key, tuple] = v as [unknown, unknown, unknown];
  let kind: RecordKind;
  if (kindCode === 't') kind = 'triplet';
  else if (kindCode === 'c') kind = 'client';
  else throw protocolError(`${what} ${index} has an unknown kind`);
  try {
    checkKey(key, kind);
    if (kind === 'triplet') {
      if (!Array.isArray(tuple) || (tuple.length !== 5 && tuple.length !== 6)) throw protocolError(`${what} ${index}: triplet tuple has the wrong shape`);
      const epoch: unknown = tuple[4];
      if (typeof epoch !== 'number' || !Number.isSafeInteger(epoch) || epoch < 0) throw protocolError(`${what} ${index}: invalid epoch`);
      const record = parseTriplet({ firstSeenMs: tuple[0], lastSeenMs: tuple[1], passedAtMs: tuple[2], passes: tuple[3], epoch, deletedAtMs: tuple[5] });
      return { kind, key: key as string, record };
    }
    if (!Array.isArray(tuple) || tuple.length !== 4) throw protocolError(`${what} ${index}: client tuple has the wrong shape`);
    return { kind, key: key as string, record: parseClient({ firstSeenMs: tuple[0], lastSeenMs: tuple[1], lastCountedMs: tuple[2], passes: tuple[3] }) };
  } catch (err) {
    if (err instanceof StoreError && err.code === ReplicationErrorCode.PROTOCOL) throw err;
    throw protocolError(`${what} ${index} is invalid: ${err instanceof Error ? err.message : String(err)}`, err);
  }
}

function entryFromWire(v: unknown, index: number): WireEntry {
  const record = recordFromWire(v, index, 'push entry');
  const [, , , originNode, atMs] = v as unknown[];
  if (!isNodeId(originNode)) throw protocolError(`push entry ${index} has an invalid origin node`);
  if (typeof atMs !== 'number' || !Number.isSafeInteger(atMs) || atMs < 0) throw protocolError(`push entry ${index} has an invalid time`);
  // The record object is this call's own: completed in place rather than copied (one per entry received).
  const entry = record as WireEntry;
  entry.originNode = originNode;
  entry.atMs = atMs;
  return entry;
}
