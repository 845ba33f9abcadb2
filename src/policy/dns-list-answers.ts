// What a DNS list's answers mean (DESIGN.md s3, RFC 5782): query names, error codes, the verdict of
// one list and the combined verdict of a tier. Pure functions of the resolver's answers, used by the
// DnsListChecker (dns-lists.ts) whether the answers came from its cache at once or after a lookup.
import type { ResolveResult } from '../dns/resolver-api.js';
import { PolicyError } from '../util/errors.js';
import { parseAddress } from '../util/cidr.js';
import { filterMatches, type DnsListSpec } from './dns-list-spec.js';

/** The three list tiers, in pipeline order: step 7 trusted DNSWL, step 8 DNSBL, step 9 DNSWL. */
export type DnsListTier = 'trusted' | 'block' | 'allow';

/** All tiers in pipeline order. */
export const DNS_LIST_TIERS: readonly DnsListTier[] = ['trusted', 'block', 'allow'];

/**
 * Outcome for one list and one address. Only 'listed' ever influences a decision. 'error': the list
 * answered with an error code (127.255.255.x, outside 127.0.0.0/8); 'failed': the lookup got no
 * answer from the list because its servers answered SERVFAIL or REFUSED or could not be reached
 * (another rcode; an exception); 'timeout': its servers are silent: no answer within the budget,
 * or, once the resolver holds silent servers back, a SERVFAIL at once that says so; 'skipped': the
 * list was not consulted (suspended by its self test, or before its first one finished).
 */
export type DnsListVerdict = 'listed' | 'not-listed' | 'error' | 'failed' | 'timeout' | 'skipped';

/** What one list said about one address. */
export interface DnsListResult {
  tier: DnsListTier;
  list: DnsListSpec;
  /** Absolute query name, e.g. "2.0.0.127.zen.spamhaus.org."; "" when the address is not an IP. */
  queryName: string;
  verdict: DnsListVerdict;
  /** DNS rcode of the A lookup, undefined when there was no answer. */
  rcode: number | undefined;
  /** Every A answer as received (also the ignored ones). */
  addresses: string[];
  /** The answers that counted: in 127.0.0.0/8, not an error code, matching the list's filter. */
  matched: string[];
  /** Error answers with their meaning ("127.255.255.254: query via a public resolver ..."). */
  errors: string[];
  /** TXT reason (for the reject text), when looked up and answered. */
  txt: string | undefined;
  /** Short human explanation of the verdict. */
  detail: string;
}

/** The combined verdict of one tier for one address. */
export interface DnsListTierResult {
  tier: DnsListTier;
  threshold: number;
  /** Sum of the weights of listing lists (absolute weights for the DNSWL tiers). */
  score: number;
  /** score >= threshold with at least one listing. */
  reached: boolean;
  /** Listing lists, in configuration order. */
  listed: DnsListResult[];
  /** All lists of the tier, in configuration order. */
  results: DnsListResult[];
}

/** What one lookup of a list produced. */
export type ZoneOutcome =
  | { kind: 'answer'; result: ResolveResult }
  | { kind: 'timeout'; failure: string }
  | { kind: 'error'; message: string };

const TXT_MAX_CHARS = 250;
/** The rcodes a list lookup can end with besides NOERROR and NXDOMAIN, by their dig names. */
export const RCODE_NAMES: Readonly<Record<number, string>> = { 1: 'FORMERR', 2: 'SERVFAIL', 4: 'NOTIMP', 5: 'REFUSED', 6: 'YXDOMAIN' };

/**
 * The query-name prefix for an address: IPv4 octets reversed (RFC 5782 s2.1); IPv6 as 32 reversed
 * nibbles (RFC 5782 s2.4). IPv4-mapped IPv6 was already turned into IPv4 by parseAddress.
 */
export function reverseName(addr: { family: 4 | 6; bytes: Uint8Array } | null): string {
  if (!addr) throw new PolicyError('POLICY_ERR_BAD_ADDRESS', 'not an IP address');
  const b = addr.bytes;
  // Runs for every decision: a template instead of Array.from().reverse().join().
  if (addr.family === 4) return `${b[3] ?? 0}.${b[2] ?? 0}.${b[1] ?? 0}.${b[0] ?? 0}`;
  const nibbles: string[] = [];
  for (const byte of b) nibbles.push((byte >> 4).toString(16), (byte & 0x0f).toString(16));
  return nibbles.reverse().join('.');
}

/** The absolute DNS list query name for an address and zone, e.g. "2.0.0.127.zen.spamhaus.org.". */
export function dnsListQueryName(address: string, zone: string): string {
  const parsed = parseAddress(address);
  if (!parsed) throw new PolicyError('POLICY_ERR_BAD_ADDRESS', `not an IP address: "${address}"`);
  return `${reverseName(parsed)}.${zone.toLowerCase().replace(/\.$/, '')}.`;
}

/**
 * The meaning of an A answer that is not a listing, or undefined for a usable 127.0.0.0/8 code.
 * Spamhaus returns 127.255.255.0/24 for refused queries and dnswl.org 127.0.0.255; both say nothing
 * about the client (https://www.spamhaus.org/faqs/domain-blocklist/#291, dnswl.org "return codes").
 */
export function dnsListErrorMeaning(address: string): string | undefined {
  const o = address.split('.').map(Number);
  if (o.length !== 4 || o.some((v) => !Number.isInteger(v) || v < 0 || v > 255)) return 'not an IPv4 address';
  if (o[0] !== 127) return 'answer outside 127.0.0.0/8 (list shut down or wildcarding?)';
  if (o[1] === 255 && o[2] === 255) {
    if (o[3] === 252) return 'typo in the list name (Spamhaus 127.255.255.252)';
    if (o[3] === 254) return 'query via a public or open resolver (Spamhaus 127.255.255.254)';
    if (o[3] === 255) return 'excessive number of queries (Spamhaus 127.255.255.255)';
    return 'list error code in 127.255.255.0/24';
  }
  if (o[1] === 0 && o[2] === 0 && o[3] === 255) return 'over the query limit or public resolver blocked (dnswl.org 127.0.0.255)';
  return undefined;
}

interface Classified {
  addresses: string[];
  valid: number[][];
  errors: string[];
  /** Set when there was no usable answer at all (timeout, SERVFAIL, exception, odd rcode). */
  noAnswer: string | undefined;
  noAnswerKind: 'timeout' | 'failed' | undefined;
  rcode: number | undefined;
  emptyReason: string;
}

export function classify(outcome: ZoneOutcome): Classified {
  const base: Classified = { addresses: [], valid: [], errors: [], noAnswer: undefined, noAnswerKind: undefined, rcode: undefined, emptyReason: '' };
  if (outcome.kind === 'timeout') return { ...base, noAnswer: `no answer in time (${outcome.failure})`, noAnswerKind: 'timeout' };
  if (outcome.kind === 'error') return { ...base, noAnswer: `lookup failed: ${outcome.message}`, noAnswerKind: 'failed' };
  const r = outcome.result;
  base.rcode = r.rcode;
  if (r.rcode === 3) return { ...base, emptyReason: 'NXDOMAIN' };
  // A timeout is a list whose servers are silent: the resolver's deadline, or servers that all
  // timed out or are held back after timing out (a dead list, after its first lookups: the same
  // outage, counted the same). Any other SERVFAIL says what the servers did (SERVFAIL, REFUSED,
  // unreachable), as dig shows it.
  if (r.rcode === 2 && r.failure === 'deadline') return { ...base, noAnswer: 'no answer in time (SERVFAIL at the resolver\'s deadline)', noAnswerKind: 'timeout' };
  if (r.rcode === 2 && r.serversSilent) return { ...base, noAnswer: `no answer: the list's servers are silent (${r.failureDetail ?? 'no-servers'})`, noAnswerKind: 'timeout' };
  if (r.rcode !== 0) {
    const why = [r.failure, r.failureDetail].filter((x) => x !== undefined && x !== '').join(': ');
    return { ...base, noAnswer: `${RCODE_NAMES[r.rcode] ?? `rcode ${r.rcode}`}${why ? ` (${why})` : ''}`, noAnswerKind: 'failed' };
  }
  for (const rec of r.records) {
    if (rec.type !== 'A' || typeof rec.data !== 'string') continue;
    base.addresses.push(rec.data);
    const meaning = dnsListErrorMeaning(rec.data);
    if (meaning) base.errors.push(`${rec.data}: ${meaning}`);
    else base.valid.push(rec.data.split('.').map(Number));
  }
  base.emptyReason = base.addresses.length === 0 ? 'no A record' : '';
  return base;
}

export function evaluate(tier: DnsListTier, list: DnsListSpec, queryName: string, outcome: ZoneOutcome): DnsListResult {
  const c = classify(outcome);
  const result: DnsListResult = {
    tier, list, queryName, verdict: 'not-listed', rcode: c.rcode, addresses: c.addresses,
    matched: [], errors: c.errors, txt: undefined, detail: '',
  };
  if (c.noAnswer) {
    result.verdict = c.noAnswerKind ?? 'failed';
    result.detail = c.noAnswer;
    return result;
  }
  // An error code means the list refused to look at this query: nothing in the answer is about the client.
  if (c.errors.length > 0) {
    result.verdict = 'error';
    result.detail = c.errors.join('; ');
    return result;
  }
  result.matched = c.valid.filter((o) => filterMatches(list, o)).map((o) => o.join('.'));
  if (result.matched.length > 0) {
    result.verdict = 'listed';
    result.detail = `listed: ${result.matched.join(', ')}`;
  } else if (c.valid.length > 0) {
    result.detail = `answer ${c.addresses.join(', ')} does not match the filter`;
  } else {
    result.detail = c.emptyReason;
  }
  return result;
}

export function unqueried(tier: DnsListTier, list: DnsListSpec): DnsListResult {
  return {
    tier, list, queryName: '', verdict: 'not-listed', rcode: undefined, addresses: [], matched: [],
    errors: [], txt: undefined, detail: 'client address is not an IP address',
  };
}

export function combine(tier: DnsListTier, threshold: number, results: DnsListResult[]): DnsListTierResult {
  const listed = results.filter((r) => r.verdict === 'listed');
  // postscreen syntax puts DNSWLs in dnsbl_sites with negative weights; in our DNSWL tiers only the
  // magnitude matters, so such entries can be pasted as they are. In the DNSBL tier a negative
  // weight subtracts, as in postscreen.
  const score = listed.reduce((sum, r) => sum + (tier === 'block' ? r.list.weight : Math.abs(r.list.weight)), 0);
  return { tier, threshold, score, reached: listed.length > 0 && score >= threshold, listed, results };
}

export function txtOf(outcome: ZoneOutcome): string | undefined {
  if (outcome.kind !== 'answer' || outcome.result.rcode !== 0) return undefined;
  const texts: string[] = [];
  for (const rec of outcome.result.records) {
    if (rec.type !== 'TXT') continue;
    const parts = Array.isArray(rec.data) ? rec.data.map(String) : [String(rec.data)];
    texts.push(parts.join(''));
  }
  if (texts.length === 0) return undefined;
  // The text goes into an SMTP reply line: printable ASCII only, one line, bounded.
  const clean = texts.join('; ').replace(/[^\x20-\x7e]/g, '?').replace(/\s+/g, ' ').trim();
  if (clean === '') return undefined;
  return clean.length > TXT_MAX_CHARS ? `${clean.slice(0, TXT_MAX_CHARS - 3)}...` : clean;
}
