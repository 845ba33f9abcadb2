// Public types of the in-process resolver API (`Resolver.resolve`), kept apart from the
// implementation so the policy service and the CLI can depend on the contract alone.
import type { Name, Question, ResourceRecord } from './wire/types.js';

/** One answer record in typed form (rdata decoded through dns/wire). */
export interface TypedRecord {
  /** Owner name, escaped presentation form with trailing dot. */
  name: Name;
  /** Mnemonic type ("A", "TXT", "TYPE65534"). */
  type: string;
  ttl: number;
  /**
   * Decoded rdata: A/AAAA -> address string; TXT -> string[] (one per character-string, latin1);
   * NS/CNAME/PTR/DNAME -> name string; MX -> { preference, exchange }; SOA -> { mname, rname,
   * serial, refresh, retry, expire, minimum }; SRV -> { priority, weight, port, target };
   * other types -> the presentation text of the rdata.
   */
  data: unknown;
}

/** Where an answer came from. */
export type AnswerSource = 'cache' | 'recursion' | 'local' | 'stale';

export interface ResolveOptions {
  /** Total time budget for this resolution in milliseconds; SERVFAIL with reason 'deadline' after it. */
  deadlineMs?: number;
  /** false: never answer from stale data for this call (DNSBL/DNSWL lookups). Default: config. */
  allowStale?: boolean;
}

/**
 * Result of a resolution. NXDOMAIN and NODATA are values (rcode 3, or rcode 0 with no records of
 * the type), never exceptions. On failure rcode is SERVFAIL (2) and `failure` says why.
 */
export interface ResolveResult {
  rcode: number;
  /** Records of the asked type at the end of any CNAME/DNAME chain, typed (for ANY: every record at the name). */
  records: TypedRecord[];
  /** The whole answer section (CNAME/DNAME chain included), wire form. */
  answers: ResourceRecord[];
  /** Authority section for negative answers (the SOA), wire form. */
  authorities: ResourceRecord[];
  /** Smallest TTL in the answer (negative TTL for NXDOMAIN/NODATA), seconds. */
  ttlSec: number;
  source: AnswerSource;
  /** Why the answer is SERVFAIL: 'deadline', 'limit-cname', 'limit-referrals', 'limit-queries', 'no-servers', 'lame', ... */
  failure?: string;
  /**
   * With failure 'no-servers': what each server of the zone that failed did, as dig would show it
   * ("127.53.4.1 SERVFAIL; 127.53.4.2 timed out"; also REFUSED, unreachable, lame, held back).
   */
  failureDetail?: string;
  /**
   * With failure 'no-servers': every server of that zone timed out or is held back after timing out
   * (none answered, refused or was unreachable): the zone is silent. A DNS list counts it as a timeout.
   */
  serversSilent?: boolean;
}

/** The function shape the policy service depends on. */
export type ResolveFn = (name: string, type: string | number, opts?: ResolveOptions) => Promise<ResolveResult>;

/**
 * A synchronous look into the same local zones and caches: the answer `resolve` would give at
 * once (source 'local' or 'cache'), or undefined when `resolve` would have to wait (a miss, an
 * expired entry, a name that does not parse). Never starts a resolution; a hit may start a prefetch.
 */
export type ResolveCachedFn = (name: string, type: string | number) => ResolveResult | undefined;

/** What the DNS server gets back for one client question. */
export interface QueryAnswer {
  rcode: number;
  answers: ResourceRecord[];
  authorities: ResourceRecord[];
  additionals: ResourceRecord[];
  source: AnswerSource;
  /** May go into the packet cache: false for SERVFAIL, stale answers and errors. */
  cacheable: boolean;
}

/**
 * The recursion contract the DNS server depends on. `answerQuery` never rejects (failures are
 * SERVFAIL) and enforces its own deadline; with `recursionDesired` false (a client query with RD
 * clear) it answers from the cache only and REFUSED on a miss. `prefetch` refreshes a name near
 * expiry (best effort).
 */
export interface Recursor {
  answerQuery(question: Question, opts: { dnssecOk: boolean; checkingDisabled: boolean; recursionDesired: boolean }): Promise<QueryAnswer>;
  prefetch?(q: { name: Name; type: number }): void;
}
