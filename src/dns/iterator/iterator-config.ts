// Settings and limits of the iterator, with Unbound's names in the comments so admins can map them.
// Defaults live in src/config; this file only defines the shapes. Pure types.
import type { Name } from '../wire/types.js';

export type QnameMinimisation = 'off' | 'relaxed' | 'strict';

/** Per-client-query limits; each ends the resolution in SERVFAIL with a log line. */
export interface IteratorLimits {
  /** CNAME/DNAME restarts (Unbound: MAX_RESTART_COUNT 11). */
  maxCnameChain: number;
  /** Referrals followed for one name (Unbound: MAX_REFERRAL_COUNT). */
  maxReferrals: number;
  /** Upstream queries sent for one client query, sub-queries included (Unbound: max-sent-count 32). */
  maxUpstreamQueries: number;
  /** Nesting of NS-name sub-resolutions (Unbound: target-fetch-policy depth). */
  maxSubqueryDepth: number;
  /** NS-name sub-resolutions started for one client query. */
  maxSubqueries: number;
}

export interface IteratorConfig {
  /** Unbound's do-not-query-localhost inverted: allow upstream servers on 127.0.0.0/8 and ::1. */
  queryLoopback: boolean;
  /** do-ip4 / do-ip6: address families used for upstream queries. */
  doIp4: boolean;
  doIp6: boolean;
  /** qname-minimisation (RFC 9156); 'relaxed' falls back to the full name on NXDOMAIN and errors. */
  qnameMinimisation: QnameMinimisation;
  /** No minimisation at or below these zones (DNSBL/DNSWL zones: rbldnsd answers NXDOMAIN for empty non-terminals). */
  noMinimisationZones: Name[];
  /** use-caps-for-id: 0x20 case randomisation of upstream query names. */
  useCapsForId: boolean;
  /** Destination port of upstream queries (53; a lab/test setting). */
  upstreamPort: number;
  limits: IteratorLimits;
}
