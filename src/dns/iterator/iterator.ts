// The iterative resolution engine (RFC 1034 s5.3.3): from the closest cached zone cut (or the
// root hints, primed per RFC 8109) down referrals to an authoritative answer, caching what it learns.
// Called only by dns/resolver.ts, which adds in-flight merging of client queries, serve-stale and
// prefetch. It never answers clients itself and never reads the packet cache.
import type { Clock } from '../../util/clock.js';
import { MxError, describeError } from '../../util/errors.js';
import type { Logger } from '../../util/logger.js';
import { valueWithin } from '../../util/settled-within.js';
import type { InfraCache } from '../cache/infra-cache.js';
import { Trust, type RRsetCache } from '../cache/rrset-cache.js';
import type { Transport } from '../transport/transport.js';
import { canonicalName, isSubdomain, labelCount, nameToWire, parentName, suffixName } from '../wire/name.js';
import { rcodeToString, rdataNames, soaMinimum } from '../wire/rdata.js';
import { RRClass, RRType, Rcode, type Message, type Name, type ResourceRecord } from '../wire/types.js';
import type { IteratorConfig } from './iterator-config.js';
import { classifyResponse, synthesizeDnameTarget, type Classified } from './response-classifier.js';
import { sendWithFallbacks, type UpstreamContext } from './upstream-query.js';
import { aliasCount, rrsetRecords, withTtl } from './rrset.js';
import { addCutAddress, addressFromRdata, dropTried, isLoopbackAddress, keepQueryableOnce, nsTargets, pushFamilies, type ZoneCut } from './zone-cut.js';

/** Why a resolution ended in SERVFAIL; becomes ResolveResult.failure and a log line. */
export class ResolutionFailure extends MxError {
  /** For 'no-servers': what each server of the zone did ("127.53.4.1 REFUSED; 127.53.4.2 timed out"). */
  readonly detail: string | undefined;
  /** For 'no-servers': every server timed out or was held back after timing out (none answered at all). */
  readonly silent: boolean;
  constructor(readonly reason: string, message: string, servers?: NoServers) {
    super('DNS_ERR_RESOLUTION', servers ? `${message}: ${servers.detail}` : message);
    this.detail = servers?.detail;
    this.silent = servers?.silent ?? false;
  }
}

/** What the servers of a zone cut did when none gave a usable answer (ResolutionFailure 'no-servers'). */
export interface NoServers {
  /** Per server, as dig would show it: "127.53.4.1 REFUSED; 127.53.4.2 timed out". */
  detail: string;
  /** Every server timed out or is held back after timing out: the zone is silent, not refusing. */
  silent: boolean;
}

/** A server's outcome in NoServers.detail when it did not answer in time, or was not asked for that reason. */
const TIMED_OUT = 'timed out';
const HELD_BACK = 'held back after recent timeouts';

/** Per-client-query bookkeeping shared by the query and all its sub-queries. */
export interface ResolutionState {
  deadlineAtMs: number;
  upstreamQueries: number;
  subqueries: number;
  depth: number;
  /** "name|type" being resolved on the current path: loop detection for NS-name sub-queries. */
  active: Set<string>;
  /** True once any upstream query was sent (the answer is then not "from cache"). */
  wentUpstream: boolean;
  /**
   * "name|type" whose first cache lookup resolveChain skips: a prefetch refreshes it, and a
   * resolution started right after chainFromCache missed at that first link already knows.
   */
  bypassCacheFor?: string;
  /** Servers this host could not send to or connect to (no route, refused): not asked again in this resolution. */
  unreachable?: Set<string>;
  /** Set when queryServers gives up: what each server of that zone cut did, for the SERVFAIL's detail. */
  noServers?: NoServers;
}

/** Result of a chain resolution: the rcode plus answer and authority records, TTLs as remaining. */
export interface IterResult {
  rcode: number;
  answers: ResourceRecord[];
  authorities: ResourceRecord[];
}

type Step =
  | { kind: 'answer'; records: ResourceRecord[] }
  | { kind: 'alias'; records: ResourceRecord[]; target: Name }
  | { kind: 'negative'; rcode: number; records: ResourceRecord[]; soa: ResourceRecord | null };

/** States of one iteration over zone cuts (Unbound's iter_state, reduced to what we need). */
const enum IterState {
  QueryTargets,
  Classify,
}

const MAX_MINIMISE_COUNT = 10; // RFC 9156 s2.3
/** Rounds over a zone's servers when they only time out, each with the doubled RTO (Unbound's outbound-msg-retry, 5): from a 50 ms RTO, an answer 0.7 s late arrives in the fifth. */
const MAX_SEND_ROUNDS = 5;
const STALE_NEG_TTL_FLOOR_SEC = 0;

export interface IteratorDeps {
  cache: RRsetCache;
  infra: InfraCache;
  transport: Transport;
  clock: Clock;
  logger: Logger;
  rootHints: ResourceRecord[];
  config: IteratorConfig;
}

/** Counters exported as metrics. */
export interface IteratorStats {
  upstreamQueries: number; upstreamTimeouts: number; caseMismatches: number; tcpRetries: number; ednsFallbacks: number;
  lameServers: number; scrubbedRecords: number; mergedUpstream: number; primings: number;
}

export class Iterator {
  readonly stats: IteratorStats = {
    upstreamQueries: 0, upstreamTimeouts: 0, caseMismatches: 0, tcpRetries: 0, ednsFallbacks: 0,
    lameServers: 0, scrubbedRecords: 0, mergedUpstream: 0, primings: 0,
  };
  private readonly inflight = new Map<string, Promise<Message | null>>();
  private priming: Promise<void> | null = null;
  /** The last priming failed: its warning was logged, later failures go to debug until one succeeds. */
  private primingFailing = false;
  private readonly hintNs: Name[];
  private readonly hintAddrs = new Map<string, string[]>();
  private readonly upstream: UpstreamContext;

  constructor(private readonly deps: IteratorDeps) {
    this.upstream = { deps, stats: this.stats };
    this.hintNs = [];
    for (const rr of deps.rootHints) {
      if (rr.type === RRType.NS && rr.name === '.') this.hintNs.push(rdataNames(RRType.NS, rr.rdata)[0] ?? '.');
      if (rr.type === RRType.A || rr.type === RRType.AAAA) {
        const key = canonicalName(rr.name);
        const list = this.hintAddrs.get(key) ?? [];
        list.push(addressFromRdata(rr.type, rr.rdata));
        this.hintAddrs.set(key, list);
      }
    }
    if (this.hintNs.length === 0) throw new MxError('DNS_ERR_ROOT_HINTS', 'root hints contain no NS records for "."');
    const hintAddresses = [...this.hintAddrs.values()].flat();
    if (!deps.config.queryLoopback && hintAddresses.length > 0 && hintAddresses.every(isLoopbackAddress)) {
      deps.logger.warn('every root hint address is on loopback and query-loopback is off: those servers are never asked (set query-loopback: yes, or --query-loopback, to ask them)');
    }
  }

  get config(): IteratorConfig {
    return this.deps.config;
  }

  /**
   * Resolves qname/qtype following CNAME and DNAME chains (cache first at every link).
   * Throws ResolutionFailure on limits, deadline or when no server gives a usable answer.
   */
  async resolveChain(qname: Name, qtype: number, st: ResolutionState): Promise<IterResult> {
    const chain: ResourceRecord[] = [];
    const seen = new Set<string>();
    let name = qname;
    for (let restarts = 0; restarts <= this.config.limits.maxCnameChain; restarts++) {
      const key = canonicalName(name);
      if (seen.has(key)) throw new ResolutionFailure('cname-loop', `CNAME/DNAME loop at ${name}`);
      seen.add(key);
      // Each link of a client query's chain gets the whole upstream budget, sub-queries included,
      // as Unbound's max-sent-count resets on query restarts: a long CNAME chain across zones whose
      // name servers need lookups of their own is not cut short. A sub-query's chain stays within
      // its link's budget. The chain limit and the deadline still bound the whole.
      if (restarts > 0 && st.depth === 0) st.upstreamQueries = 0;
      const bypass = restarts === 0 && st.bypassCacheFor === `${key}|${qtype}`;
      const step = (bypass ? undefined : this.fromCache(name, qtype)) ?? (await this.iterate(name, qtype, st));
      chain.push(...step.records);
      // The limit is on CNAME links, however many arrived in one response (as Unbound counts them).
      if (aliasCount(chain) > this.config.limits.maxCnameChain) break;
      if (step.kind === 'answer') return { rcode: Rcode.NOERROR, answers: chain, authorities: [] };
      if (step.kind === 'negative') {
        return { rcode: step.rcode, answers: chain, authorities: step.soa ? [step.soa] : [] };
      }
      name = step.target;
    }
    throw new ResolutionFailure('limit-cname', `CNAME chain longer than ${this.config.limits.maxCnameChain} from ${qname}`);
  }

  /**
   * The whole chain from the cache alone, synchronously, or undefined when any link is missing.
   * The resolver's fast path: a cached answer needs no promise, deadline timer or in-flight entry.
   * `miss.atFirstLink` tells a caller about to resolve whether the name itself missed.
   */
  chainFromCache(qname: Name, qtype: number, miss?: { atFirstLink: boolean }): IterResult | undefined {
    const answers: ResourceRecord[] = [];
    const seen = new Set<string>();
    let name = qname;
    for (let restarts = 0; restarts <= this.config.limits.maxCnameChain; restarts++) {
      const key = canonicalName(name);
      if (seen.has(key)) return undefined; // a loop: let the full resolution report it
      seen.add(key);
      const step = this.fromCache(name, qtype);
      if (!step) {
        if (miss) miss.atFirstLink = restarts === 0;
        return undefined;
      }
      answers.push(...step.records);
      if (aliasCount(answers) > this.config.limits.maxCnameChain) return undefined; // the resolution reports it
      if (step.kind === 'answer') return { rcode: Rcode.NOERROR, answers, authorities: [] };
      if (step.kind === 'negative') return { rcode: step.rcode, answers, authorities: step.soa ? [step.soa] : [] };
      name = step.target;
    }
    return undefined;
  }

  /** One link of a chain from the cache alone, or undefined on a miss. */
  private fromCache(name: Name, qtype: number): Step | undefined {
    const { cache } = this.deps;
    // RFC 2181 s5.4.1: glue and the NS set of a referral are never returned as answers; the
    // zone's own servers are asked and their authoritative answer replaces them in the cache.
    const hit = cache.getRRset(name, qtype);
    if (hit && hit.trust >= Trust.AnswerNonAuth) return { kind: 'answer', records: rrsetRecords(hit, hit.ttlSec) };
    const neg = cache.getNegative(name, qtype);
    if (neg) {
      const soa = neg.soa ? withTtl(neg.soa, Math.max(STALE_NEG_TTL_FLOOR_SEC, neg.ttlSec)) : null;
      return { kind: 'negative', rcode: neg.kind === 'nxdomain' ? Rcode.NXDOMAIN : Rcode.NOERROR, records: [], soa };
    }
    // A cached CNAME is followed, except for the types it answers itself (CNAME; ANY matches it).
    if (qtype !== RRType.CNAME && qtype !== RRType.ANY) {
      const cname = cache.getRRset(name, RRType.CNAME);
      if (cname && cname.rdatas[0]) {
        return { kind: 'alias', records: rrsetRecords(cname, cname.ttlSec), target: rdataNames(RRType.CNAME, cname.rdatas[0])[0] ?? '.' };
      }
    }
    // A cached DNAME at an ancestor redirects the whole subtree (RFC 6672 s3.2).
    if (!cache.mayHoldDname()) return undefined;
    for (let anc = parentName(name); anc && anc !== '.'; anc = parentName(anc)) {
      const dname = cache.getRRset(anc, RRType.DNAME);
      if (!dname || !dname.rdatas[0]) continue;
      const target = synthesizeDnameTarget(name, dname.name, rdataNames(RRType.DNAME, dname.rdatas[0])[0] ?? '.');
      if (!target) return { kind: 'negative', rcode: Rcode.YXDOMAIN, records: rrsetRecords(dname, dname.ttlSec), soa: null }; // RFC 6672 s2.2
      const synthesized: ResourceRecord = { name, type: RRType.CNAME, class: RRClass.IN, ttl: dname.ttlSec, rdata: nameToWire(target) };
      const records = [...rrsetRecords(dname, dname.ttlSec), synthesized];
      // The synthesized CNAME answers a CNAME query itself, as classifyResponse decides on the wire.
      if (qtype === RRType.CNAME) return { kind: 'answer', records };
      return { kind: 'alias', records, target };
    }
    return undefined;
  }

  /** Iterates from the closest known zone cut for one name (no chain following beyond one response). */
  private async iterate(qname: Name, qtype: number, st: ResolutionState): Promise<Step> {
    // RFC 4035 s4.2: the DS RRset of a zone lives on the parent side of the cut, so a DS query
    // starts at the closest cut above qname; the child's servers would answer NODATA.
    const parent = qtype === RRType.DS ? parentName(qname) : null;
    let cut = await this.findCut(parent ?? qname, st);
    let minimise = this.config.qnameMinimisation !== 'off';
    // Below a no-minimisation zone (a DNSBL's), names are minimised down to the zone and sent whole
    // to its servers: the root and TLD servers never see the client address in the name.
    const revealUpTo = this.minimisationLimit(qname);
    let minLabels = labelCount(cut.zone) + 1;
    let minimisedQueries = 0;
    let referrals = 0;
    let state = IterState.QueryTargets;
    let classified: Classified | null = null;
    let sendName = qname;
    let sendType = qtype;
    const total = labelCount(qname);

    for (;;) {
      switch (state) {
        case IterState.QueryTargets: {
          this.checkDeadline(st, qname);
          sendName = qname;
          sendType = qtype;
          if (minimise && minLabels < total && minLabels <= revealUpTo && minimisedQueries < MAX_MINIMISE_COUNT) {
            sendName = suffixName(qname, minLabels);
            sendType = RRType.A; // RFC 9156 s3: QTYPE A for the hidden labels' queries
          }
          classified = await this.queryServers(cut, sendName, sendType, st);
          if (!classified) {
            if (sendName !== qname && this.config.qnameMinimisation === 'relaxed') {
              minimise = false; // RFC 9156 s3: fall back to the full name when minimised queries fail
              break;
            }
            throw new ResolutionFailure('no-servers', `no server for ${cut.zone} answered ${qname}`, st.noServers);
          }
          state = IterState.Classify;
          break;
        }
        case IterState.Classify: {
          const c = classified!;
          const minimised = sendName !== qname;
          state = IterState.QueryTargets;
          if (c.kind === 'referral') {
            if (++referrals > this.config.limits.maxReferrals) {
              throw new ResolutionFailure('limit-referrals', `more than ${this.config.limits.maxReferrals} referrals for ${qname}`);
            }
            this.cacheReferral(c);
            cut = { zone: c.referralZone!, nsNames: nsTargets(c.ns!), fromHints: false };
            for (const g of c.glue) for (const rdata of g.rdatas) addCutAddress(cut, g.name, addressFromRdata(g.type, rdata));
            minLabels = labelCount(cut.zone) + 1;
            break;
          }
          if (minimised) {
            if (c.kind === 'answer' || c.kind === 'nodata') {
              // The hidden name exists (or is an empty non-terminal): reveal one more label.
              if (c.kind === 'answer') this.cacheAnswer(c);
              minLabels++;
              minimisedQueries++;
            } else if (c.kind === 'nxdomain' && this.config.qnameMinimisation === 'strict' && !Number.isFinite(revealUpTo)) {
              // RFC 8020: nothing exists below an NXDOMAIN name. Not for names in a list zone: its
              // servers (rbldnsd) answer NXDOMAIN for empty non-terminals, up to the list's own name.
              this.cacheNegative('nxdomain', sendName, sendType, c.soa);
              return { kind: 'negative', rcode: Rcode.NXDOMAIN, records: [], soa: this.negativeSoa(c.soa) };
            } else {
              minimise = false; // NXDOMAIN for an ENT from a broken server, or an alias above qname
            }
            break;
          }
          return this.finish(c, qname, qtype);
        }
      }
    }
  }

  /** Final classification of a full-name response: cache it and turn it into a chain step. */
  private finish(c: Classified, qname: Name, qtype: number): Step {
    switch (c.kind) {
      case 'answer':
        this.cacheAnswer(c);
        return { kind: 'answer', records: this.chainRecords(c) };
      case 'nodata':
        this.cacheNegative('nodata', qname, qtype, c.soa);
        if (c.authorityNs) this.deps.cache.putRRset(c.authorityNs, c.authoritative ? Trust.AuthorityAuth : Trust.AuthorityNonAuth);
        return { kind: 'negative', rcode: Rcode.NOERROR, records: [], soa: this.negativeSoa(c.soa) };
      case 'nxdomain':
        this.cacheNegative('nxdomain', qname, qtype, c.soa);
        return { kind: 'negative', rcode: Rcode.NXDOMAIN, records: [], soa: this.negativeSoa(c.soa) };
      case 'yxdomain':
        // RFC 6672 s2.2: the DNAME is cached; from it the cache answers YXDOMAIN again (fromCache).
        this.cacheAnswer(c);
        return { kind: 'negative', rcode: Rcode.YXDOMAIN, records: this.chainRecords(c), soa: null };
      case 'cname': {
        this.cacheAnswer(c);
        const records = this.chainRecords(c);
        const target = c.chainTarget!;
        if (c.targetNegative) {
          this.cacheNegative(c.targetNegative, target, qtype, c.soa);
          return { kind: 'negative', rcode: c.targetNegative === 'nxdomain' ? Rcode.NXDOMAIN : Rcode.NOERROR, records, soa: this.negativeSoa(c.soa) };
        }
        return { kind: 'alias', records, target };
      }
      default:
        throw new ResolutionFailure('internal', `unexpected ${c.kind} for ${qname}`);
    }
  }

  /** The records of a fresh answer's chain, with the TTLs the cache clamps them to (cache-min-ttl, cache-max-ttl). */
  private chainRecords(c: Classified): ResourceRecord[] {
    return c.chain.flatMap((s) => rrsetRecords(s, this.deps.cache.clampTtl(s.ttl)));
  }

  /** The SOA of a fresh negative answer, with the negative TTL (RFC 2308 s3 and s5, cache-max-negative-ttl). */
  private negativeSoa(soa: ResourceRecord | undefined): ResourceRecord | null {
    return soa ? withTtl(soa, this.deps.cache.negativeTtl(soa)) : null;
  }

  /** Deepest cached zone cut at or above qname; primes the root when nothing is cached. */
  private async findCut(qname: Name, st: ResolutionState): Promise<ZoneCut> {
    const found = this.deps.cache.findZoneCut(qname);
    if (found) return { zone: found.zone, nsNames: nsTargets(found.ns), fromHints: false };
    await this.prime(st);
    const primed = this.deps.cache.findZoneCut(qname);
    if (primed) return { zone: primed.zone, nsNames: nsTargets(primed.ns), fromHints: false };
    return { zone: '.', nsNames: this.hintNs, fromHints: true };
  }

  /** RFC 8109 priming: ". NS" to the hints; concurrent callers share one priming query. */
  private prime(st: ResolutionState): Promise<void> {
    if (!this.priming) {
      this.stats.primings++;
      const run = async (): Promise<void> => {
        const hints: ZoneCut = { zone: '.', nsNames: this.hintNs, fromHints: true };
        const c = await this.queryServers(hints, '.', RRType.NS, st);
        if (c && c.kind === 'answer') {
          this.cacheAnswer(c);
          this.deps.logger.info({ servers: c.chain[0]?.rdatas.length ?? 0 }, 'root priming done');
          this.primingFailing = false;
        } else {
          // Unreachable roots: every client query primes again; warn once per outage, not per query.
          const level = this.primingFailing ? 'debug' : 'warn';
          this.deps.logger[level]({ result: c?.kind ?? 'no answer' }, 'root priming failed; using the root hints as they are');
          this.primingFailing = true;
        }
      };
      this.priming = run().finally(() => {
        this.priming = null;
      });
    }
    return this.priming;
  }

  /**
   * Asks the servers of one zone cut in SRTT order until one gives a non-lame answer; null when none
   * does. A recursive resolver named as the zone's server (RA without AA: Unbound's REC_LAME) is
   * lame, and so is NODATA with neither AA nor an SOA, but when no server of the zone gives
   * anything better such an answer is taken as a last resort, as Unbound does, at the rank of
   * non-authoritative answer data.
   */
  private async queryServers(cut: ZoneCut, name: Name, type: number, st: ResolutionState): Promise<Classified | null> {
    let lastResort: { classified: Classified; server: string; reason: string } | undefined;
    const tried = new Set<string>(st.unreachable); // unreachable ones stay out (the priming's included)
    const timedOut = new Set<string>();
    // What each server did, as dig would show it (a SERVFAIL must say whether they answered REFUSED
    // or nothing); made at the first failure: most calls end with the first server's answer.
    let outcomes: Map<string, string> | undefined;
    const lookedUp = new Set<string>(); // NS names looked up in this call ("name|type"), see resolveNsTargets
    let round = 0;
    for (;;) {
      // An answer in hand is taken rather than lost to the deadline or the query budget.
      if (lastResort && (this.deps.clock.nowMs() >= st.deadlineAtMs || st.upstreamQueries >= this.config.limits.maxUpstreamQueries)) return this.takeLastResort(lastResort, cut, name);
      this.checkDeadline(st, name);
      let candidates = dropTried(this.addressesFor(cut), tried);
      // Root hints carry their addresses: resolving root server names would await the priming in progress.
      // A deadline or limit met looking up further names leaves an answer in hand to be taken (below).
      const more = (): Promise<boolean> => this.resolveNsTargets(cut, st, lookedUp).catch((err: unknown) => (lastResort && err instanceof ResolutionFailure ? false : Promise.reject(err)));
      while (candidates.length === 0 && !cut.fromHints && (await more())) candidates = dropTried(this.addressesFor(cut), tried);
      if (candidates.length === 0 && timedOut.size > 0 && !lastResort && ++round < MAX_SEND_ROUNDS) {
        // Unbound's outbound-msg-retry: servers that only timed out are asked again (backed-off RTO) while deadline
        // and budget last; lame ones are not, nor any once a last-resort answer is in hand (rounds outlast budgets).
        for (const a of timedOut) if (!st.unreachable?.has(a)) tried.delete(a);
        timedOut.clear();
        candidates = dropTried(this.addressesFor(cut), tried);
      }
      if (candidates.length === 0) return lastResort ? this.takeLastResort(lastResort, cut, name) : this.noServers(cut, outcomes, st);
      const notLame = candidates.filter((a) => !this.deps.infra.isLame(a, cut.zone));
      const ordered = this.deps.infra.selectOrder(notLame.length > 0 ? notLame : candidates, type, cut.zone);
      // A server that is down gets one probe per backoff period (isBackedOff takes that slot).
      const address = ordered.find((a) => !this.deps.infra.isBackedOff(a, type, cut.zone));
      if (!address) {
        for (const a of ordered) {
          tried.add(a);
          if (!outcomes?.has(a)) (outcomes ??= new Map()).set(a, HELD_BACK);
        }
        continue;
      }
      tried.add(address);
      if (st.upstreamQueries >= this.config.limits.maxUpstreamQueries) {
        throw new ResolutionFailure('limit-queries', `more than ${this.config.limits.maxUpstreamQueries} upstream queries for one client query`);
      }
      const msg = await this.exchange(address, cut.zone, name, type, st);
      if (!msg) {
        timedOut.add(address);
        (outcomes ??= new Map()).set(address, st.unreachable?.has(address) ? 'unreachable (network error)' : TIMED_OUT);
        continue;
      }
      const c = classifyResponse(msg, name, type, cut.zone);
      if (c.scrubbed > 0) {
        this.stats.scrubbedRecords += c.scrubbed;
        this.deps.logger.debug({ server: address, zone: cut.zone, qname: name, dropped: c.scrubbed }, 'out-of-bailiwick records dropped');
      }
      if (c.kind === 'lame') {
        this.stats.lameServers++;
        this.deps.infra.markLame(address, cut.zone);
        this.deps.logger.debug({ server: address, zone: cut.zone, qname: name, reason: c.lameReason }, 'lame server');
        (outcomes ??= new Map()).set(address, c.lameReason === rcodeToString(msg.rcode) ? c.lameReason : `lame (${c.lameReason ?? 'no reason'})`);
        if (c.lastResort && !lastResort) {
          const taken = classifyResponse(msg, name, type, cut.zone, { acceptLastResort: true });
          if (taken.kind !== 'lame') lastResort = { classified: taken, server: address, reason: c.lameReason ?? 'lame' };
        }
        continue;
      }
      return c;
    }
  }

  /** null for queryServers, with st.noServers saying what each of the cut's servers did (unreachable ones from earlier included). */
  private noServers(cut: ZoneCut, found: Map<string, string> | undefined, st: ResolutionState): null {
    const outcomes = found ?? new Map<string, string>();
    for (const a of this.addressesFor(cut)) if (!outcomes.has(a) && st.unreachable?.has(a)) outcomes.set(a, 'unreachable (network error)');
    if (outcomes.size === 0) {
      st.noServers = { detail: `no address known for a server of ${cut.zone}`, silent: false };
      return null;
    }
    const silent = [...outcomes.values()].every((what) => what === TIMED_OUT || what === HELD_BACK);
    st.noServers = { detail: [...outcomes].map(([a, what]) => `${a} ${what}`).join('; '), silent };
    return null;
  }

  private takeLastResort(lastResort: { classified: Classified; server: string; reason: string }, cut: ZoneCut, name: Name): Classified {
    this.deps.logger.debug({ server: lastResort.server, zone: cut.zone, qname: name, reason: lastResort.reason }, 'no server of the zone answered better: a last-resort answer is taken');
    return lastResort.classified;
  }

  /** Usable upstream addresses of a cut's name servers, from the cache (answers or in-bailiwick glue). */
  private addressesFor(cut: ZoneCut): string[] {
    const found: string[] = [];
    const { doIp4, doIp6 } = this.config;
    for (const ns of cut.nsNames) {
      const before = found.length;
      if (doIp4) this.pushCached(found, ns, RRType.A);
      if (doIp6) this.pushCached(found, ns, RRType.AAAA);
      // Nothing cached: the cut's own glue, and for the root the hints.
      if (found.length === before && !pushFamilies(found, cut.addrs?.get(canonicalName(ns)), doIp4, doIp6) && cut.zone === '.') pushFamilies(found, this.hintAddrs.get(canonicalName(ns)), doIp4, doIp6);
    }
    return keepQueryableOnce(found, this.config.queryLoopback);
  }

  /** Appends the addresses of a cached A or AAAA RRset of `ns`. */
  private pushCached(out: string[], ns: Name, type: number): void {
    const set = this.deps.cache.getRRset(ns, type);
    if (set) for (const rdata of set.rdatas) out.push(addressFromRdata(type, rdata));
  }

  /**
   * Looks up addresses of the cut's NS names without any (out of bailiwick, no glue), A then AAAA as
   * do-ip4/do-ip6 allow, one name and type not yet in `lookedUp` after another until one yields an
   * address; false when none is left. Called again when the servers found so far all failed (as
   * Unbound's target queries go on). Sub-queries have loop detection and limits.
   */
  private async resolveNsTargets(cut: ZoneCut, st: ResolutionState, lookedUp: Set<string>): Promise<boolean> {
    const types = [...(this.config.doIp4 ? [RRType.A] : []), ...(this.config.doIp6 ? [RRType.AAAA] : [])];
    for (const ns of cut.nsNames) {
      // An in-bailiwick NS name without glue can only be found through the very servers we lack.
      if (isSubdomain(ns, cut.zone) && cut.zone !== '.') continue;
      for (const type of types) {
        const key = `${canonicalName(ns)}|${type}`;
        if (lookedUp.has(key)) continue;
        lookedUp.add(key);
        // Active: a loop, we are already resolving this name further up.
        if (st.active.has(key) || this.deps.cache.getNegative(ns, type)) continue;
        if (st.depth >= this.config.limits.maxSubqueryDepth) {
          this.deps.logger.debug({ ns, zone: cut.zone }, 'sub-query depth limit reached');
          return false;
        }
        if (++st.subqueries > this.config.limits.maxSubqueries) {
          throw new ResolutionFailure('limit-subqueries', `more than ${this.config.limits.maxSubqueries} NS-name sub-queries`);
        }
        st.active.add(key);
        st.depth++;
        try {
          const r = await this.resolveChain(ns, type, st);
          const found = r.answers.filter((rr) => rr.type === type);
          for (const rr of found) addCutAddress(cut, ns, addressFromRdata(type, rr.rdata));
          if (found.length > 0) return true;
        } catch (err) {
          if (err instanceof ResolutionFailure && (err.reason === 'deadline' || err.reason.startsWith('limit-'))) throw err;
          this.deps.logger.debug({ ns, zone: cut.zone, err: describeError(err) }, 'NS name did not resolve');
        } finally {
          st.depth--;
          st.active.delete(key);
        }
      }
    }
    return false;
  }

  /** One upstream exchange with fallbacks; identical in-flight queries (server, name, type) are merged. */
  private exchange(address: string, zone: Name, name: Name, type: number, st: ResolutionState): Promise<Message | null> {
    const key = `${address}|${canonicalName(name)}|${type}`;
    const pending = this.inflight.get(key);
    if (pending) {
      this.stats.mergedUpstream++;
      // It runs on its first asker's deadline: one with a shorter deadline stops waiting at its own (null: no answer).
      return valueWithin(pending, st.deadlineAtMs - this.deps.clock.nowMs(), null);
    }
    const p = sendWithFallbacks(this.upstream, address, zone, name, type, st);
    this.inflight.set(key, p);
    // then, not finally: one promise per exchange instead of three (finally's own, its callback's, its value's).
    const forget = (): void => void (this.inflight.get(key) === p && this.inflight.delete(key));
    p.then(forget, forget);
    return p;
  }

  /**
   * Most labels of qname a minimised query may show: all of them, or for a name at or below a
   * no-minimisation zone the zone's own (the outermost such zone's), beyond which the name goes whole.
   */
  private minimisationLimit(qname: Name): number {
    let limit = Number.POSITIVE_INFINITY;
    for (const z of this.config.noMinimisationZones) {
      if (isSubdomain(qname, z)) limit = Math.min(limit, labelCount(z));
    }
    return limit;
  }

  private checkDeadline(st: ResolutionState, name: Name): void {
    if (this.deps.clock.nowMs() >= st.deadlineAtMs) throw new ResolutionFailure('deadline', `deadline reached resolving ${name}`);
  }

  private cacheReferral(c: Classified): void {
    const { cache } = this.deps;
    if (c.ns) cache.putRRset(c.ns, Trust.AuthorityNonAuth);
    for (const g of c.glue) cache.putRRset(g, Trust.Glue);
  }

  private cacheAnswer(c: Classified): void {
    const { cache } = this.deps;
    c.chain.forEach((set, i) => {
      // A CNAME synthesised from the DNAME before it is not cached; the DNAME is (RFC 6672 s3.4).
      if (set.type === RRType.CNAME && c.chain[i - 1]?.type === RRType.DNAME) return;
      cache.putRRset(set, c.authoritative ? Trust.AnswerAuth : Trust.AnswerNonAuth);
    });
    if (c.authorityNs) cache.putRRset(c.authorityNs, c.authoritative ? Trust.AuthorityAuth : Trust.AuthorityNonAuth);
    for (const g of c.glue) cache.putRRset(g, Trust.Glue);
  }

  /** RFC 2308 s5: negative TTL = min(SOA TTL, SOA MINIMUM); without an SOA nothing is cached. */
  private cacheNegative(kind: 'nxdomain' | 'nodata', name: Name, type: number, soa: ResourceRecord | undefined): void {
    if (!soa) return;
    const ttl = Math.min(soa.ttl, soaMinimum(soa.rdata));
    this.deps.cache.putNegative(kind, name, type, soa, ttl);
  }
}
