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

/** Sections up to this many records are grouped by a scan of the sets so far, larger ones by a Map. */
const SCAN_LIMIT = 16;

/** Groups records into RRsets in first-seen order; duplicate rdata is dropped. */
export function groupRRsets(records: readonly ResourceRecord[]): RRset[] {
  const sets: RRset[] = [];
  // A section of a few records (most responses) costs no key strings and no Map.
  const byKey = records.length > SCAN_LIMIT ? new Map<string, RRset>() : undefined;
  for (const rr of records) {
    const key = byKey ? `${canonicalName(rr.name)}|${rr.type}|${rr.class}` : '';
    let set = byKey ? byKey.get(key) : findSet(sets, rr);
    if (!set) {
      set = { name: rr.name, type: rr.type, class: rr.class, ttl: rr.ttl, rdatas: [] };
      sets.push(set);
      byKey?.set(key, set);
    }
    set.ttl = Math.min(set.ttl, rr.ttl);
    if (!hasRdata(set.rdatas, rr.rdata)) set.rdatas.push(rr.rdata);
  }
  return sets;
}

/** The set of rr's owner (case-insensitively, as canonicalName), type and class, if any. */
function findSet(sets: readonly RRset[], rr: ResourceRecord): RRset | undefined {
  for (const s of sets) {
    if (s.type === rr.type && s.class === rr.class && (s.name === rr.name || (s.name.length === rr.name.length && canonicalName(s.name) === canonicalName(rr.name)))) return s;
  }
  return undefined;
}

function hasRdata(rdatas: readonly Buffer[], rdata: Buffer): boolean {
  for (const d of rdatas) if (d.equals(rdata)) return true;
  return false;
}

/** Expands an RRset back into records, all with the set's TTL. */
export function rrsetRecords(set: Omit<RRset, 'ttl'> & { ttl?: number }, ttl = set.ttl ?? 0): ResourceRecord[] {
  return set.rdatas.map((rdata) => ({ name: set.name, type: set.type, class: set.class, ttl, rdata }));
}

/**
 * A copy of a record with another TTL. Built field by field, not by spread: a spread copy of a
 * record in the resolution path made V8 define a new hidden class on every call (seen in perf).
 */
export function withTtl(rr: ResourceRecord, ttl: number): ResourceRecord {
  return { name: rr.name, type: rr.type, class: rr.class, ttl, rdata: rr.rdata };
}

/** CNAME records in a chain (a DNAME link counts by its synthesised CNAME). */
export function aliasCount(records: readonly ResourceRecord[]): number {
  let n = 0;
  for (const rr of records) if (rr.type === RRType.CNAME) n++;
  return n;
}
