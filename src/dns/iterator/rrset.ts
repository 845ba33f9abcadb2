// Grouping of resource records into RRsets (RFC 2181 s5: records with the same owner, class and
// type form one set and share one TTL, the smallest seen). Used by the iterator when scrubbing
// and caching a response. Pure.
import { canonicalName } from '../wire/name.js';
import { RRType, type Name, type ResourceRecord } from '../wire/types.js';

export interface RRset {
  name: Name;
  type: number;
  class: number;
  /** RFC 2181 s5.2: the TTL of the set is the smallest TTL of its records. */
  ttl: number;
  rdatas: Buffer[];
}

/** Groups records into RRsets in first-seen order; duplicate rdata is dropped. */
export function groupRRsets(records: readonly ResourceRecord[]): RRset[] {
  const byKey = new Map<string, RRset>();
  for (const rr of records) {
    const key = `${canonicalName(rr.name)}|${rr.type}|${rr.class}`;
    let set = byKey.get(key);
    if (!set) {
      set = { name: rr.name, type: rr.type, class: rr.class, ttl: rr.ttl, rdatas: [] };
      byKey.set(key, set);
    }
    set.ttl = Math.min(set.ttl, rr.ttl);
    if (!set.rdatas.some((d) => d.equals(rr.rdata))) set.rdatas.push(rr.rdata);
  }
  return [...byKey.values()];
}

/** Expands an RRset back into records, all with the set's TTL. */
export function rrsetRecords(set: Omit<RRset, 'ttl'> & { ttl?: number }, ttl = set.ttl ?? 0): ResourceRecord[] {
  return set.rdatas.map((rdata) => ({ name: set.name, type: set.type, class: set.class, ttl, rdata }));
}

/** CNAME records in a chain (a DNAME link counts by its synthesised CNAME). */
export function aliasCount(records: readonly ResourceRecord[]): number {
  let n = 0;
  for (const rr of records) if (rr.type === RRType.CNAME) n++;
  return n;
}
