// A Map-based least-recently-used container with a byte budget, shared by the rrset, packet and infra
// caches. It knows nothing about DNS data: callers give each entry's approximate cost in bytes and a
// predicate telling which values are expired. It must not read the clock itself (the predicate does)
// and must stay O(1) amortised per operation: eviction only ever scans a bounded window.
import { DnsError } from '../../util/errors.js';

/** Why an entry left the container, for the owner's statistics. */
export type EvictReason = 'expired' | 'lru';

/** Construction options of {@link LruBudget}. */
export interface LruBudgetOptions<V> {
  /** Budget in bytes; `set` evicts until the total is at or below it. */
  maxBytes: number;
  /** True when a value is no longer useful; such values are evicted before live ones. */
  isExpired: (value: V) => boolean;
  /** Called for every entry removed by eviction (never for delete/clear/replacement). */
  onEvict?: (key: string, value: V, reason: EvictReason) => void;
  /**
   * How many entries from the LRU end one eviction pass inspects for expired values before it falls
   * back to plain LRU order. Bounds the cost of a `set`. Default 32.
   */
  expiredScanLimit?: number;
}

interface Slot<V> {
  value: V;
  bytes: number;
}

/**
 * LRU map with a byte budget. The constructor throws DnsError DNS_ERR_CACHE_SIZE for a negative or
 * non-numeric budget. Iteration order (and `keys()`/`entries()`) is least recently used
 * first. `get` promotes an entry to most recently used; `peek` does not.
 */
export class LruBudget<V> implements Iterable<[string, V]> {
  // A JS Map iterates in insertion order, so delete + re-insert moves a key to the MRU end and the
  // first key is always the LRU one.
  private readonly map = new Map<string, Slot<V>>();
  private totalBytes = 0;
  private budget: number;
  private readonly isExpired: (value: V) => boolean;
  private readonly onEvict: ((key: string, value: V, reason: EvictReason) => void) | undefined;
  private readonly scanLimit: number;

  constructor(opts: LruBudgetOptions<V>) {
    this.budget = checkBudget(opts.maxBytes);
    this.isExpired = opts.isExpired;
    this.onEvict = opts.onEvict;
    this.scanLimit = Math.max(1, Math.floor(opts.expiredScanLimit ?? 32));
  }

  /** Number of entries. */
  get size(): number {
    return this.map.size;
  }

  /** Sum of the byte costs of all entries. */
  get bytes(): number {
    return this.totalBytes;
  }

  /** Current budget in bytes. */
  get maxBytes(): number {
    return this.budget;
  }

  /**
   * Changes the budget (config reload) and evicts down to it at once.
   * @throws DnsError DNS_ERR_CACHE_SIZE when maxBytes is negative or not a number.
   */
  resize(maxBytes: number): void {
    this.budget = checkBudget(maxBytes);
    this.evictToBudget();
  }

  /** Returns the value and marks it most recently used. */
  get(key: string): V | undefined {
    const slot = this.map.get(key);
    if (slot === undefined) return undefined;
    this.map.delete(key);
    this.map.set(key, slot);
    return slot.value;
  }

  /** Returns the value without changing its recency. */
  peek(key: string): V | undefined {
    return this.map.get(key)?.value;
  }

  has(key: string): boolean {
    return this.map.has(key);
  }

  /**
   * Inserts or replaces an entry as most recently used, then evicts (expired first, then LRU) until
   * the total is within budget. Returns false, storing nothing and removing any previous value of
   * the key, when the entry alone is larger than the whole budget (or was itself already expired
   * and went in that eviction).
   */
  set(key: string, value: V, bytes: number): boolean {
    const cost = Math.max(0, Math.ceil(bytes));
    this.delete(key);
    if (cost > this.budget) return false;
    this.map.set(key, { value, bytes: cost });
    this.totalBytes += cost;
    if (this.totalBytes > this.budget) {
      this.evictToBudget();
      return this.map.has(key);
    }
    return true;
  }

  /** Removes an entry; true when it existed. */
  delete(key: string): boolean {
    const slot = this.map.get(key);
    if (slot === undefined) return false;
    this.map.delete(key);
    this.totalBytes -= slot.bytes;
    return true;
  }

  /** Removes everything without calling onEvict. */
  clear(): void {
    this.map.clear();
    this.totalBytes = 0;
  }

  /**
   * Removes expired entries among the `limit` least recently used ones; returns how many went.
   * Lets an owner sweep opportunistically without a timer.
   */
  evictExpired(limit = this.scanLimit): number {
    let removed = 0;
    let seen = 0;
    for (const [key, slot] of this.map) {
      if (seen++ >= limit) break;
      if (this.isExpired(slot.value)) {
        this.removeEvicted(key, slot, 'expired');
        removed++;
      }
    }
    return removed;
  }

  /** Entries from least to most recently used. */
  *entries(): IterableIterator<[string, V]> {
    for (const [key, slot] of this.map) yield [key, slot.value];
  }

  *keys(): IterableIterator<string> {
    yield* this.map.keys();
  }

  *values(): IterableIterator<V> {
    for (const slot of this.map.values()) yield slot.value;
  }

  [Symbol.iterator](): IterableIterator<[string, V]> {
    return this.entries();
  }

  private evictToBudget(): void {
    while (this.totalBytes > this.budget && this.map.size > 0) {
      // One bounded pass for expired entries near the LRU end; only when it frees nothing (or not
      // enough) does the live LRU entry go. Each pass removes at least one entry, so the loop ends.
      if (this.evictExpired() > 0) continue;
      const first = this.map.entries().next();
      if (first.done === true) break;
      const [key, slot] = first.value;
      this.removeEvicted(key, slot, 'lru');
    }
  }

  private removeEvicted(key: string, slot: Slot<V>, reason: EvictReason): void {
    this.map.delete(key);
    this.totalBytes -= slot.bytes;
    this.onEvict?.(key, slot.value, reason);
  }
}

function checkBudget(maxBytes: number): number {
  if (!(maxBytes >= 0)) throw new DnsError('DNS_ERR_CACHE_SIZE', `cache budget must be a number >= 0, got ${maxBytes}`);
  return maxBytes;
}
