// The RRset and negative (RFC 2308) cache of the recursive resolver. The iterator stores what it
// learns and reads answers, zone cuts and negative answers back; the CLI flushes and dumps it.
// It decides credibility (RFC 2181 s5.4.1), TTL clamps, expiry and the serve-stale window, but never
// judges bailiwick (the iterator scrubs before storing) and never reads time except through the Clock.
import type { Clock } from '../../util/clock.js';
import { canonicalName, isSubdomain, parentName } from '../wire/name.js';
import { soaMinimum } from '../wire/rdata.js';
import { RRClass, RRType, type Name, type ResourceRecord } from '../wire/types.js';
import { LruBudget } from './lru-budget.js';

/**
 * Credibility of cached data, RFC 2181 s5.4.1, lowest first. Data from additional sections (glue)
 * ranks lowest; an authoritative answer highest among network data; locally configured data above all.
 */
export enum Trust {
  Glue = 1,
  AuthorityNonAuth = 2,
  AnswerNonAuth = 3,
  AuthorityAuth = 4,
  AnswerAuth = 5,
  Local = 6,
}

/** An RRset to store: every record of one owner, type and class. */
export interface RRsetInput {
  name: Name;
  type: number;
  class: number;
  /** TTL in seconds as received (the smallest of the set's records, RFC 2181 s5.2). */
  ttl: number;
  rdatas: Buffer[];
}

/** An RRset read from the cache. Its buffers are shared with the cache: never mutate them. */
export interface CachedRRset {
  /** Owner name with the letter case first received. */
  name: Name;
  type: number;
  class: number;
  rdatas: Buffer[];
  trust: Trust;
  /** Remaining seconds, >= 0; 0 only when `stale`. */
  ttlSec: number;
  /** TTL stored after clamping. */
  originalTtlSec: number;
  /** Expired, served within the serve-stale window (RFC 8767). */
  stale: boolean;
  expiresAtMs: number;
  /** Lookups answered by this entry (including this one). */
  hits: number;
}

/** A cached NXDOMAIN or NODATA answer. */
export interface CachedNegative {
  kind: 'nxdomain' | 'nodata';
  name: Name;
  /** The query type that had no data; for NXDOMAIN the type first stored (it answers all types). */
  type: number;
  /** The SOA from the authority section, to put into the answer's authority section. */
  soa: ResourceRecord | null;
  /** Remaining seconds, >= 0; 0 only when `stale`. */
  ttlSec: number;
  stale: boolean;
  expiresAtMs: number;
}

/** Options of {@link RRsetCache}. */
export interface RRsetCacheOptions {
  clock: Clock;
  /** Memory budget (approximate bytes) for all positive and negative entries together. */
  maxBytes: number;
  /** Positive TTLs below this are raised to it (Unbound cache-min-ttl). */
  minTtlSec: number;
  /** Positive TTLs above this are lowered to it (Unbound cache-max-ttl). */
  maxTtlSec: number;
  /** Cap of negative TTLs (Unbound cache-max-negative-ttl). */
  maxNegativeTtlSec: number;
  /** How long past expiry an entry may still be served stale; 0 = never (RFC 8767 s4). */
  staleTtlSec: number;
}

/** Statistics of {@link RRsetCache}. */
export interface RRsetCacheStats {
  entries: number;
  bytes: number;
  maxBytes: number;
  hits: number;
  misses: number;
  evictions: number;
  staleServed: number;
}

/** One row of {@link RRsetCache.dump}. */
export interface RRsetCacheDumpRow {
  key: string;
  name: Name;
  type: number;
  kind: 'rrset' | 'nxdomain' | 'nodata';
  /** Remaining seconds; 0 when expired. */
  ttlSec: number;
  trust?: Trust;
  rdatas?: Buffer[];
}

interface RRsetEntry {
  kind: 'rrset';
  canon: Name;
  name: Name;
  type: number;
  class: number;
  rdatas: Buffer[];
  trust: Trust;
  originalTtlSec: number;
  expiresAtMs: number;
  hits: number;
}

interface NegativeEntry {
  kind: 'nxdomain' | 'nodata';
  canon: Name;
  name: Name;
  type: number;
  soa: ResourceRecord | null;
  originalTtlSec: number;
  expiresAtMs: number;
}

type Entry = RRsetEntry | NegativeEntry;

// Fixed cost per entry: the Map slot, the LRU slot object, the entry object with its fields and the
// rdatas array; per rdata: one Buffer view object over its copy. Strings count one byte per
// character (Latin-1 in V8). Measured on Node 20 (heap and external memory after a full GC, 100,000
// entries): an A RRset of one rdata takes ~690 bytes, each further rdata ~107, an NXDOMAIN with its
// SOA ~560. With these figures the byte budget (cache-size) is what the cache really holds.
const ENTRY_OVERHEAD_BYTES = 540;
const NEGATIVE_ENTRY_OVERHEAD_BYTES = 340;
const RDATA_OVERHEAD_BYTES = 100;

/**
 * Positive RRsets and negative answers under one byte budget. Each entry is keyed by its canonical
 * owner name and a numeric sub-key built in one place (`rrsetSub`/`nodataSub`/`NXDOMAIN_SUB`);
 * stored owners keep their case.
 */
export class RRsetCache {
  private readonly clock: Clock;
  private readonly lru: LruBudget<Entry>;
  private readonly minTtlSec: number;
  private readonly maxTtlSec: number;
  private readonly maxNegativeTtlSec: number;
  private readonly staleMs: number;
  private hitCount = 0;
  private missCount = 0;
  private evictionCount = 0;
  private staleServedCount = 0;
  /** DNAME RRsets stored since the cache was made or last flushed whole (evicted ones still count). */
  private dnameStores = 0;

  constructor(opts: RRsetCacheOptions) {
    this.clock = opts.clock;
    this.minTtlSec = Math.max(0, Math.floor(opts.minTtlSec));
    this.maxTtlSec = Math.max(this.minTtlSec, Math.floor(opts.maxTtlSec));
    this.maxNegativeTtlSec = Math.max(0, Math.floor(opts.maxNegativeTtlSec));
    this.staleMs = Math.max(0, Math.floor(opts.staleTtlSec)) * 1000;
    this.lru = new LruBudget<Entry>({
      maxBytes: opts.maxBytes,
      // Only entries past the serve-stale window are dead; stale-servable ones are live LRU data.
      isExpired: (e) => this.isUnusable(e, this.clock.nowMs()),
      onEvict: () => {
        this.evictionCount++;
      },
    });
  }

  /**
   * Stores an RRset with the given credibility. RFC 2181 s5.4.1: an unexpired cached RRset is
   * replaced only by data of equal or higher trust; returns false when refused. Equal trust with
   * the same rdatas refreshes the TTL (and keeps the hit count). TTL 0 data is not cached (RFC 1035
   * s3.2.1) but counts as accepted, unless cache-min-ttl raises it (as Unbound's does). Positive data of answer rank or better removes a cached NXDOMAIN
   * of the name and a NODATA of the type, since the name and type evidently exist now.
   */
  putRRset(rr: RRsetInput, trust: Trust): boolean {
    const ttl = normaliseTtl(rr.ttl);
    if (ttl === 0 && this.minTtlSec === 0) return true;
    const now = this.clock.nowMs();
    const canon = canonicalName(rr.name);
    const sub = rrsetSub(rr.type, rr.class);
    const existing = this.lru.peek(canon, sub);
    const old = existing?.kind === 'rrset' ? existing : undefined;
    if (old !== undefined && now < old.expiresAtMs && trust < old.trust) return false;

    const rdatas = uniqueRdatas(rr.rdatas);
    if (rr.type === RRType.DNAME) this.dnameStores++;
    const clamped = Math.min(this.maxTtlSec, Math.max(this.minTtlSec, ttl));
    const refresh = old !== undefined && old.trust === trust && sameRdatas(old.rdatas, rdatas);
    const entry: RRsetEntry = {
      kind: 'rrset',
      canon,
      name: rr.name,
      type: rr.type,
      class: rr.class,
      rdatas: refresh ? old.rdatas : copyRdatas(rdatas),
      trust,
      originalTtlSec: clamped,
      expiresAtMs: now + clamped * 1000,
      hits: refresh ? old.hits : 0,
    };
    let cost = ENTRY_OVERHEAD_BYTES + canon.length + rr.name.length + entry.rdatas.length * RDATA_OVERHEAD_BYTES;
    for (const rd of entry.rdatas) cost += rd.length;
    this.lru.set(canon, entry, cost, sub);

    if (trust >= Trust.AnswerNonAuth && rr.class === RRClass.IN) {
      this.lru.delete(canon, NXDOMAIN_SUB);
      this.lru.delete(canon, nodataSub(rr.type));
    }
    return true;
  }

  /**
   * The TTL a positive record of this TTL is kept for: raised to cache-min-ttl (TTL 0 too, as in
   * Unbound; with the default 0 such data stays uncached), lowered to cache-max-ttl. Fresh answers
   * carry it too, so no client and no packet cache keeps data longer than this cache does (as
   * Unbound's replies do).
   */
  clampTtl(ttlSec: number): number {
    return Math.min(this.maxTtlSec, Math.max(this.minTtlSec, normaliseTtl(ttlSec)));
  }

  /**
   * The negative TTL an NXDOMAIN/NODATA answer with this SOA gets: RFC 2308 s5, the smaller of the
   * SOA's TTL and its MINIMUM field, capped by cache-max-negative-ttl. The TTL the SOA goes to
   * clients with (RFC 2308 s3), and the one putNegative stores.
   * @throws DnsError DNS_ERR_FORMERR when the SOA rdata is malformed (decoded rdata never is).
   */
  negativeTtl(soa: ResourceRecord): number {
    return Math.min(normaliseTtl(soa.ttl), normaliseTtl(soaMinimum(soa.rdata)), this.maxNegativeTtlSec);
  }

  /**
   * False when no DNAME RRset was stored since the cache was made or flushed whole: then no
   * ancestor of a name needs a DNAME lookup (a cold name's miss would cost one per label). True
   * may be out of date (the DNAMEs evicted since), which costs only those lookups.
   */
  mayHoldDname(): boolean {
    return this.dnameStores > 0;
  }

  /**
   * Looks up an RRset. Expired entries are returned only with `allowStale` while within the
   * serve-stale window, flagged `stale` with ttlSec 0 (RFC 8767 s4); later ones are dropped.
   */
  getRRset(name: Name, type: number, cls: number = RRClass.IN, opts?: { allowStale?: boolean }): CachedRRset | undefined {
    const canon = canonicalName(name);
    const sub = rrsetSub(type, cls);
    const now = this.clock.nowMs();
    const held = this.lru.entry(canon, sub);
    const entry = held?.value;
    if (held === undefined || entry === undefined || entry.kind !== 'rrset') {
      this.missCount++;
      return undefined;
    }
    if (now < entry.expiresAtMs) {
      this.lru.touch(held);
      this.hitCount++;
      entry.hits++;
      return viewRRset(entry, remainingSec(entry.expiresAtMs, now), false);
    }
    if (this.isUnusable(entry, now)) this.lru.delete(canon, sub);
    else if (opts?.allowStale === true) {
      this.hitCount++;
      this.staleServedCount++;
      entry.hits++;
      return viewRRset(entry, 0, true);
    }
    this.missCount++;
    return undefined;
  }

  /**
   * Stores an NXDOMAIN or NODATA answer. RFC 2308 s5: the negative TTL is the smaller of the SOA's
   * TTL and its MINIMUM field; here also at most `ttlSec` (the caller's own bound, the only TTL when
   * the response carried no SOA) and capped by maxNegativeTtlSec. A result of 0 is not cached.
   * NODATA replaces a cached positive RRset of that type unless it is local data.
   * @throws DnsError DNS_ERR_FORMERR when the SOA rdata is malformed (decoded rdata never is).
   */
  putNegative(kind: 'nxdomain' | 'nodata', name: Name, type: number, soa: ResourceRecord | null, ttlSec: number): void {
    let ttl = Math.min(normaliseTtl(ttlSec), this.maxNegativeTtlSec);
    if (soa !== null) ttl = Math.min(ttl, this.negativeTtl(soa));
    if (ttl === 0) return;
    const now = this.clock.nowMs();
    const canon = canonicalName(name);
    const sub = kind === 'nxdomain' ? NXDOMAIN_SUB : nodataSub(type);
    const storedSoa: ResourceRecord | null =
      soa === null ? null : { name: soa.name, type: soa.type, class: soa.class, ttl: soa.ttl, rdata: Buffer.from(soa.rdata) };
    const entry: NegativeEntry = {
      kind, canon, name, type, soa: storedSoa, originalTtlSec: ttl, expiresAtMs: now + ttl * 1000,
    };
    let cost = NEGATIVE_ENTRY_OVERHEAD_BYTES + canon.length + name.length;
    if (storedSoa !== null) cost += RDATA_OVERHEAD_BYTES + storedSoa.name.length + storedSoa.rdata.length;
    this.lru.set(canon, entry, cost, sub);

    if (kind === 'nodata') {
      const posSub = rrsetSub(type, RRClass.IN);
      const pos = this.lru.peek(canon, posSub);
      if (pos?.kind === 'rrset' && pos.trust < Trust.Local) this.lru.delete(canon, posSub);
    }
  }

  /**
   * Looks up a negative answer for name and type. A cached NXDOMAIN answers every type of the name
   * (RFC 2308 s5); NODATA is per type. Names below an NXDOMAIN are not inferred (RFC 8020) because
   * DNSBL servers such as rbldnsd answer NXDOMAIN for empty non-terminals.
   */
  getNegative(name: Name, type: number, opts?: { allowStale?: boolean }): CachedNegative | undefined {
    const canon = canonicalName(name);
    const now = this.clock.nowMs();
    let staleCandidate: NegativeEntry | undefined;
    for (let i = 0; i < 2; i++) {
      const sub = i === 0 ? NXDOMAIN_SUB : nodataSub(type);
      const held = this.lru.entry(canon, sub);
      const entry = held?.value;
      if (held === undefined || entry === undefined || entry.kind === 'rrset') continue;
      if (now < entry.expiresAtMs) {
        this.lru.touch(held);
        this.hitCount++;
        return viewNegative(entry, remainingSec(entry.expiresAtMs, now), false);
      }
      if (this.isUnusable(entry, now)) this.lru.delete(canon, sub);
      else staleCandidate ??= entry;
    }
    if (staleCandidate !== undefined && opts?.allowStale === true) {
      this.hitCount++;
      this.staleServedCount++;
      return viewNegative(staleCandidate, 0, true);
    }
    this.missCount++;
    return undefined;
  }

  /**
   * The deepest zone cut known for a name: the closest enclosing owner (the name itself included)
   * with an unexpired NS RRset of class IN. Stale NS sets are never used to iterate.
   */
  findZoneCut(name: Name): { zone: Name; ns: CachedRRset } | undefined {
    const now = this.clock.nowMs();
    let canon: Name | null = canonicalName(name);
    while (canon !== null) {
      const held = this.lru.entry(canon, NS_IN_SUB);
      const entry = held?.value;
      if (entry?.kind === 'rrset' && now < entry.expiresAtMs) {
        this.lru.touch(held!);
        return { zone: entry.name, ns: viewRRset(entry, remainingSec(entry.expiresAtMs, now), false) };
      }
      canon = parentName(canon);
    }
    return undefined;
  }

  /** Removes every entry (all types and classes, positive and negative) owned by exactly `name`. */
  flushName(name: Name): number {
    const canon = canonicalName(name);
    return this.lru.deleteWhere((e) => e.canon === canon);
  }

  /** Removes every entry at or below `zone`. */
  flushZone(zone: Name): number {
    const canonZone = canonicalName(zone);
    return this.lru.deleteWhere((e) => isSubdomain(e.canon, canonZone));
  }

  flushAll(): void {
    this.lru.clear();
    this.dnameStores = 0;
  }

  /** Changes the memory budget (config reload) without dropping what fits. */
  resize(maxBytes: number): void {
    this.lru.resize(maxBytes);
  }

  stats(): RRsetCacheStats {
    return {
      entries: this.lru.size,
      bytes: this.lru.bytes,
      maxBytes: this.lru.maxBytes,
      hits: this.hitCount,
      misses: this.missCount,
      evictions: this.evictionCount,
      staleServed: this.staleServedCount,
    };
  }

  /** Every entry, least recently used first, expired ones included with ttlSec 0. */
  *dump(): IterableIterator<RRsetCacheDumpRow> {
    const now = this.clock.nowMs();
    for (const e of this.lru.values()) {
      const ttlSec = now < e.expiresAtMs ? remainingSec(e.expiresAtMs, now) : 0;
      if (e.kind === 'rrset') {
        yield { key: `${e.canon}|${e.type}|${e.class}`, name: e.name, type: e.type, kind: 'rrset', ttlSec, trust: e.trust, rdatas: e.rdatas.slice() };
      } else {
        const key = e.kind === 'nxdomain' ? `${e.canon}|nxdomain` : `${e.canon}|${e.type}|nodata`;
        yield { key, name: e.name, type: e.type, kind: e.kind, ttlSec };
      }
    }
  }

  private isUnusable(e: Entry, now: number): boolean {
    return now >= e.expiresAtMs + this.staleMs;
  }

}

// Sub-keys under the canonical owner name: an RRset's is class * 65536 + type (never negative);
// NXDOMAIN is -1 and a type's NODATA -2 - type, so none of them collide.
function rrsetSub(type: number, cls: number): number {
  return cls * 65536 + type;
}
const NS_IN_SUB = rrsetSub(RRType.NS, RRClass.IN);
const NXDOMAIN_SUB = -1;
function nodataSub(type: number): number {
  return -2 - type;
}

// RFC 2181 s8: a TTL with the top bit set is treated as zero; negative or fractional input is
// a caller error we tolerate the same way.
function normaliseTtl(ttl: number): number {
  if (!Number.isFinite(ttl) || ttl <= 0 || ttl > 0x7fffffff) return 0;
  return Math.floor(ttl);
}

function remainingSec(expiresAtMs: number, now: number): number {
  // Rounded up so a live entry never shows TTL 0, which is reserved for stale data.
  return Math.ceil((expiresAtMs - now) / 1000);
}

// RFC 2181 s5: an RRset never holds duplicate records.
function uniqueRdatas(rdatas: Buffer[]): Buffer[] {
  const out: Buffer[] = [];
  for (const rd of rdatas) if (!out.some((o) => o.equals(rd))) out.push(rd);
  return out;
}

// Order-insensitive: an RRset is a set, and servers rotate record order.
function sameRdatas(a: Buffer[], b: Buffer[]): boolean {
  if (a.length !== b.length) return false;
  return b.every((rd) => a.some((o) => o.equals(rd)));
}

// One copy for the whole set so the cache never pins the (much larger) packet buffer the decoder
// sliced these from, and accounting matches what is really held.
function copyRdatas(rdatas: Buffer[]): Buffer[] {
  const block = Buffer.concat(rdatas);
  const out: Buffer[] = [];
  let off = 0;
  for (const rd of rdatas) {
    out.push(block.subarray(off, off + rd.length));
    off += rd.length;
  }
  return out;
}

function viewRRset(e: RRsetEntry, ttlSec: number, stale: boolean): CachedRRset {
  return {
    name: e.name, type: e.type, class: e.class, rdatas: e.rdatas.slice(), trust: e.trust, ttlSec,
    originalTtlSec: e.originalTtlSec, stale, expiresAtMs: e.expiresAtMs, hits: e.hits,
  };
}

function viewNegative(e: NegativeEntry, ttlSec: number, stale: boolean): CachedNegative {
  return { kind: e.kind, name: e.name, type: e.type, soa: e.soa, ttlSec, stale, expiresAtMs: e.expiresAtMs };
}
