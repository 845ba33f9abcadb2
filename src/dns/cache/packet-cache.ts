// The packet cache: whole encoded answers keyed by the client's question and EDNS facts, so the DNS
// server can answer a repeated query by copying bytes and patching ID, flags, qname case and TTLs.
// The server calls answer() before the resolver and the resolver's caller calls store() after it.
// It must never decode on the hot path, never serve stale data, and read time only from the Clock.
import type { Clock } from '../../util/clock.js';
import { describeError } from '../../util/errors.js';
import { createSilentLogger, type Logger } from '../../util/logger.js';
import { encodeMessage } from '../wire/message.js';
import { canonicalName, isSubdomain, wireLength } from '../wire/name.js';
import { Rcode, type Message, type Name, type QueryKey } from '../wire/types.js';
import { LruBudget } from './lru-budget.js';

/** The question handed to the prefetch hook. */
export interface PrefetchQuestion {
  /** Canonical (lower-case) qname. */
  name: Name;
  type: number;
  class: number;
}

/** Options of {@link PacketCache}. */
export interface PacketCacheOptions {
  clock: Clock;
  /** Memory budget in approximate bytes. */
  maxBytes: number;
  /**
   * Called (synchronously, at most once per stored answer) when a hit finds the answer in the last
   * `prefetchFraction` of its TTL and the answer has been hit at least twice. The resolver
   * rate-limits and refreshes it; the hook must not throw (a throw is logged and counted).
   */
  onNearExpiry?: (q: PrefetchQuestion) => void;
  /** Fraction of the original TTL that counts as near expiry. Default 0.1 (Unbound prefetch). */
  prefetchFraction?: number;
  /** For hook failures; default silent. */
  logger?: Logger;
}

/** Statistics of {@link PacketCache}. */
export interface PacketCacheStats {
  entries: number;
  bytes: number;
  maxBytes: number;
  hits: number;
  misses: number;
}

interface Packet {
  canonQname: Name;
  /** Other owner names in the answer section (a CNAME/DNAME chain's links), canonical: flushed with them. */
  chainOwners: Name[] | undefined;
  qtype: number;
  qclass: number;
  bytes: Buffer;
  ttlOffsets: number[];
  /** Answer RRsets of 2+ records (EncodedMessage.rrsetRuns), rotated on each hit; undefined when none. */
  rrsetRuns: number[][] | undefined;
  /** Where the qname sits: from byte 12 to qnameEnd. */
  qnameEnd: number;
  storedAtMs: number;
  expiresAtMs: number;
  originalTtlSec: number;
  hits: number;
  prefetchFired: boolean;
}

const HEADER = 12;
// Map slot, LRU slot, entry object, the encoded answer's Buffer object and the ttlOffsets array,
// beyond the bytes counted one by one. Measured on Node 20 (heap and external memory after a full
// GC, 50,000 one-address answers): ~750 bytes per entry, of which ~110 are those counted bytes.
const ENTRY_OVERHEAD_BYTES = 640;

/**
 * Encoded answers for the hot path. The key is the QueryKey's canonical question plus whether the
 * client sent EDNS, its DO bit and its CD bit, since each changes the answer's bytes or content.
 */
export class PacketCache {
  private readonly clock: Clock;
  private readonly lru: LruBudget<Packet>;
  private readonly onNearExpiry: ((q: PrefetchQuestion) => void) | undefined;
  private readonly prefetchFraction: number;
  private readonly logger: Logger;
  private hitCount = 0;
  private missCount = 0;
  private hookErrors = 0;

  constructor(opts: PacketCacheOptions) {
    this.clock = opts.clock;
    this.onNearExpiry = opts.onNearExpiry;
    this.prefetchFraction = Math.min(1, Math.max(0, opts.prefetchFraction ?? 0.1));
    this.logger = opts.logger ?? createSilentLogger();
    this.lru = new LruBudget<Packet>({
      maxBytes: opts.maxBytes,
      isExpired: (p) => this.clock.nowMs() >= p.expiresAtMs,
    });
  }

  /**
   * Stores a response for this query. Encodes once (no size limit), with the question in
   * canonical case and ID 0. Expires at now + the smallest TTL in the message. Not stored when that
   * is 0, when there are no records to take a TTL from, when the rcode is anything but NOERROR or
   * NXDOMAIN (SERVFAIL and refusals are per-moment decisions), when TC is set, when the response's
   * question is not the query's, or when the response has an OPT record and the query had none or
   * the other way round (RFC 6891 s7: OPT only in reply to OPT).
   */
  store(query: QueryKey, response: Message): void {
    this.put(query, response);
  }

  /**
   * store(), then the answer for the client whose query this response answers, made from the
   * stored bytes as a hit makes it (ID, RD and CD, the qname's case), so a fresh answer is encoded
   * once, not once for the client and again for the cache. Not counted as a hit. Null when nothing
   * was stored or the answer is larger than maxUdpSize: the caller encodes the response itself.
   */
  storeAndAnswer(raw: Uint8Array, query: QueryKey, response: Message, maxUdpSize: number): Buffer | null {
    const p = this.put(query, response);
    if (p === undefined || p.bytes.length > maxUdpSize || p.qnameEnd !== query.qnameEnd || raw.length < query.qnameEnd) return null;
    return render(p, raw, query, 0);
  }

  private put(query: QueryKey, response: Message): Packet | undefined {
    if (response.rcode !== Rcode.NOERROR && response.rcode !== Rcode.NXDOMAIN) return undefined;
    if (response.flags.tc) return undefined;
    if ((query.ednsUdpSize !== null) !== (response.edns !== null)) return undefined;
    const q = response.questions[0];
    if (q === undefined || response.questions.length !== 1) return undefined;
    const canonQname = canonicalName(q.name);
    if (`${canonQname}|${q.type}|${q.class}` !== query.key) return undefined;

    let minTtl = Infinity;
    for (const list of [response.answers, response.authorities, response.additionals]) {
      for (const rr of list) minTtl = Math.min(minTtl, wireTtl(rr.ttl));
    }
    if (!Number.isFinite(minTtl) || minTtl <= 0) return undefined;

    const stored: Message = {
      id: 0,
      flags: response.flags,
      rcode: response.rcode,
      questions: [{ name: canonQname, type: q.type, class: q.class }],
      answers: response.answers,
      authorities: response.authorities,
      additionals: response.additionals,
      edns: response.edns,
    };
    const encoded = encodeMessage(stored, { rotatable: true });
    if (encoded.truncated) return undefined;
    const now = this.clock.nowMs();
    const key = query.cacheKey;
    let chainOwners: Name[] | undefined;
    let chainOwnerChars = 0;
    for (const rr of response.answers) {
      const owner = canonicalName(rr.name);
      if (owner === canonQname || chainOwners?.includes(owner)) continue;
      (chainOwners ??= []).push(owner);
      chainOwnerChars += owner.length;
    }
    const packet: Packet = {
      canonQname,
      chainOwners,
      qtype: q.type,
      qclass: q.class,
      bytes: encoded.bytes,
      ttlOffsets: encoded.ttlOffsets,
      rrsetRuns: encoded.rrsetRuns !== undefined && encoded.rrsetRuns.length > 0 ? encoded.rrsetRuns : undefined,
      qnameEnd: HEADER + wireLength(canonQname),
      storedAtMs: now,
      expiresAtMs: now + minTtl * 1000,
      originalTtlSec: minTtl,
      hits: 0,
      prefetchFired: false,
    };
    const runOffsets = packet.rrsetRuns?.reduce((n, run) => n + run.length, 0) ?? 0;
    const cost = ENTRY_OVERHEAD_BYTES + encoded.bytes.length + (encoded.ttlOffsets.length + runOffsets) * 8 + key.length + canonQname.length + chainOwnerChars;
    this.lru.set(key, packet, cost);
    return packet;
  }

  /**
   * Hot path. Returns a ready-to-send response for this raw client query, or null (miss, expired,
   * or larger than maxUdpSize). Copies the stored bytes, sets the client's ID, copies the RD and CD
   * bits from the query, overwrites the qname bytes with the client's bytes (so the client's
   * letter case comes back, RFC 1035 s7.3 / 0x20 clients), and lowers every TTL by the seconds
   * elapsed since storing. No full decode. Each answer RRset of several records starts one record
   * later than on the previous hit (Unbound's rrset-roundrobin, on by default since 1.17).
   */
  answer(raw: Uint8Array, query: QueryKey, maxUdpSize: number): Buffer | null {
    const key = query.cacheKey;
    const held = this.lru.entry(key);
    const now = this.clock.nowMs();
    if (held === undefined) {
      this.missCount++;
      return null;
    }
    const p = held.value;
    if (now >= p.expiresAtMs) {
      this.lru.delete(key);
      this.missCount++;
      return null;
    }
    // Same canonical qname means the same wire length; anything else would be a caller bug, and
    // patching the wrong bytes must never happen.
    if (p.bytes.length > maxUdpSize || p.qnameEnd !== query.qnameEnd || raw.length < query.qnameEnd) {
      this.missCount++;
      return null;
    }
    this.lru.touch(held);
    this.hitCount++;
    p.hits++;

    const out = render(p, raw, query, Math.floor((now - p.storedAtMs) / 1000));

    const remainingMs = p.expiresAtMs - now;
    if (!p.prefetchFired && p.hits >= 2 && this.onNearExpiry !== undefined &&
        remainingMs < this.prefetchFraction * p.originalTtlSec * 1000) {
      p.prefetchFired = true;
      this.firePrefetch(p);
    }
    return out;
  }

  /**
   * Removes every answer whose qname is exactly `name`, or whose CNAME/DNAME chain passes through it
   * (as unbound-control flush, after which an alias is answered with the fresh target); returns how many.
   */
  flushName(name: Name): number {
    const canon = canonicalName(name);
    return this.lru.deleteWhere((p) => p.canonQname === canon || (p.chainOwners?.includes(canon) ?? false));
  }

  /** Removes every answer whose qname, or a link of whose chain, is at or below `zone`; returns how many. */
  flushZone(zone: Name): number {
    const canon = canonicalName(zone);
    return this.lru.deleteWhere((p) => isSubdomain(p.canonQname, canon) || (p.chainOwners?.some((o) => isSubdomain(o, canon)) ?? false));
  }

  flushAll(): void {
    this.lru.clear();
  }

  /** Changes the memory budget (config reload) without dropping what fits. */
  resize(maxBytes: number): void {
    this.lru.resize(maxBytes);
  }

  stats(): PacketCacheStats {
    return { entries: this.lru.size, bytes: this.lru.bytes, maxBytes: this.lru.maxBytes, hits: this.hitCount, misses: this.missCount };
  }

  /** Number of prefetch hook calls that threw. */
  get prefetchHookErrors(): number {
    return this.hookErrors;
  }

  private firePrefetch(p: Packet): void {
    const hook = this.onNearExpiry;
    if (hook === undefined) return;
    try {
      hook({ name: p.canonQname, type: p.qtype, class: p.qclass });
    } catch (err) {
      // The hook belongs to the resolver; a bug there must not fail an answer that is ready.
      this.hookErrors++;
      this.logger.error({ qname: p.canonQname, qtype: p.qtype, err: describeError(err) }, 'packet cache prefetch hook failed');
    }
  }
}

/**
 * A client's answer from a stored packet: a copy with the client's ID, RD and CD bits and qname
 * bytes (its letter case), every TTL lowered by elapsedSec (the whole seconds it was stored), and each
 * answer RRset of several records rotated by the packet's hit count.
 */
function render(p: Packet, raw: Uint8Array, query: QueryKey, elapsedSec: number): Buffer {
  const out = Buffer.from(p.bytes);
  out.writeUInt16BE(query.id, 0);
  out[2] = ((out[2] as number) & ~0x01) | (query.rd ? 0x01 : 0);
  out[3] = ((out[3] as number) & ~0x10) | (query.cd ? 0x10 : 0);
  out.set(raw.subarray(HEADER, query.qnameEnd), HEADER);
  if (elapsedSec > 0) {
    for (const off of p.ttlOffsets) {
      out.writeUInt32BE(Math.max(0, p.bytes.readUInt32BE(off) - elapsedSec), off);
    }
  }
  if (p.rrsetRuns !== undefined) rotateRuns(out, p.rrsetRuns, p.hits);
  return out;
}

/**
 * Rotates each RRset run of an answer (start offsets of its records, then its end) so that record
 * `turn mod count` comes first; the TTLs already patched move with their records.
 */
function rotateRuns(out: Buffer, runs: readonly number[][], turn: number): void {
  for (const run of runs) {
    const count = run.length - 1;
    const first = run[turn % count] as number;
    const start = run[0] as number;
    if (first === start) continue;
    const end = run[count] as number;
    const head = Buffer.from(out.subarray(start, first));
    out.copy(out, start, first, end);
    head.copy(out, start + (end - first));
  }
}

// RFC 2181 s8: TTLs with the top bit set count as 0; the encoder writes floor(ttl) clamped.
function wireTtl(ttl: number): number {
  if (!Number.isFinite(ttl) || ttl <= 0 || ttl > 0x7fffffff) return 0;
  return Math.floor(ttl);
}
