// The resolver facade: the one entry point to recursion, for the DNS server (answerQuery) and for
// in-process callers such as the policy service (resolve), so both share one cache and one set of
// in-flight queries. Flow of a DNS query (DESIGN.md s1):
//   listener -> decode (FORMERR on garbage) -> ACL (REFUSED) -> local zones -> packet cache hit
//   (copy, patch ID/TTLs/case, send) -> resolver -> iterator: init -> pick zone cut -> query targets
//   -> send -> classify response (answer, referral, CNAME, NXDOMAIN/NODATA, lame, error) -> cache what
//   was learned -> finish -> encode -> truncate to the client's EDNS size (TC) -> send.
// This file owns: merging identical client queries, deadlines, the concurrency limit, serve-stale
// (RFC 8767) and prefetch. It never touches sockets.
import type { Clock } from '../util/clock.js';
import { describeError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { RateLimitedLog } from '../util/rate-limited-log.js';
import { Trust, type RRsetCache } from './cache/rrset-cache.js';
import { Iterator, ResolutionFailure, type ResolutionState } from './iterator/iterator.js';
import { rrsetRecords, withTtl } from './iterator/rrset.js';
import type { AnswerSource, QueryAnswer, Recursor, ResolveCachedFn, ResolveOptions, ResolveResult, TypedRecord } from './resolver-api.js';
import { canonicalName, isSubdomain, parseName } from './wire/name.js';
import { rdataNames, rdataToData, typeFromString, typeToString } from './wire/rdata.js';
import { RRClass, RRType, Rcode, type Name, type Question, type ResourceRecord } from './wire/types.js';

export interface ResolverConfig {
  /** Budget of one client query; SERVFAIL when it runs out. */
  clientDeadlineMs: number;
  /** Resolutions running at once (client queries and in-process calls); beyond: SERVFAIL at once. */
  maxConcurrentResolutions: number;
  /** serve-expired (RFC 8767): fresh resolution first, stale data only when it fails or is slow. */
  serveExpired: boolean;
  /** TTL given to a stale answer (RFC 8767 s4: 30 s). */
  serveExpiredReplyTtlSec: number;
  /** serve-expired-client-timeout: answer stale after this long while resolution goes on (0: only on failure). */
  serveExpiredClientTimeoutMs: number;
  /** Zones never answered stale (DNSBL/DNSWL zones: a stale listing is wrong data). */
  noStaleZones: Name[];
  /** prefetch: refresh hot names shortly before they expire. */
  prefetch: boolean;
  /** Remaining-TTL fraction under which a hit triggers a prefetch (Unbound: 10 %). */
  prefetchFraction: number;
  /** Upper bound of prefetches started per second. */
  prefetchPerSec: number;
}

interface Outcome {
  rcode: number;
  answers: ResourceRecord[];
  authorities: ResourceRecord[];
  source: AnswerSource;
  failure?: string;
  /** What the servers did, for a 'no-servers' failure (ResolveResult.failureDetail, serversSilent). */
  failureDetail?: string;
  serversSilent?: boolean;
  /**
   * Set on a resolution's SERVFAIL: counts and logs it, once per origin however many callers of
   * that origin share it. A caller calls it when it answers that SERVFAIL, not when it answers
   * stale instead (RFC 8767).
   */
  report?: (origin: Origin) => void;
}

/**
 * Who asked: a DNS client (answerQuery, through the DNS server) or an in-process caller (resolve:
 * the policy service's DNS list and HELO lookups, the CLI). Their SERVFAILs are counted apart, so
 * the causes shown for DNS clients are the clients' own.
 */
export type Origin = 'client' | 'in-process';

/** What resolve() asks before recursing: the local zones the DNS server answers from (LocalZones). */
export interface LocalAnswerSource {
  lookup(qname: Name, qtype: number): { rcode: number; answers: ResourceRecord[]; authorities: ResourceRecord[]; drop: boolean; zone: Name } | null;
}

export interface ResolverStats {
  resolutions: number;
  merged: number;
  servfail: number;
  staleServed: number;
  prefetches: number;
  prefetchDropped: number;
  concurrencyRejected: number;
  inFlight: number;
  /** SERVFAIL causes of DNS clients' queries (answerQuery). */
  failures: Record<string, number>;
  /** SERVFAIL causes of in-process lookups (resolve: the policy service's own DNS list and HELO lookups). */
  inProcessFailures: Record<string, number>;
}

export class Resolver implements Recursor {
  readonly stats: ResolverStats = {
    resolutions: 0, merged: 0, servfail: 0, staleServed: 0, prefetches: 0, prefetchDropped: 0,
    concurrencyRejected: 0, inFlight: 0, failures: {}, inProcessFailures: {},
  };
  /** Resolutions in flight by "name|type", which identical client queries join. */
  private readonly inflight = new Map<string, InflightResolution>();
  /** Runs while resolutions are in flight: releases one that hangs past its deadline (see run()). */
  private hungSweep: NodeJS.Timeout | undefined;
  private readonly prefetching = new Set<string>();
  private prefetchWindowMs = 0;
  private prefetchInWindow = 0;
  private readonly failLog: RateLimitedLog;
  private localZones: LocalAnswerSource | undefined;

  constructor(
    private readonly iterator: Iterator,
    private readonly cache: RRsetCache,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private config: ResolverConfig,
  ) {
    this.failLog = new RateLimitedLog(logger, clock);
  }

  /**
   * The local zones resolve() answers from first, as the DNS server does for its clients, so the
   * policy service, `lookup` and `rbl` see what `dig` sees (and never send a local name upstream).
   * Replaced on reload; answerQuery() does not use them (the server looks them up itself).
   */
  setLocalZones(zones: LocalAnswerSource | undefined): void {
    this.localZones = zones;
  }

  /** Replaces the settings (SIGHUP reload); caches and in-flight work are kept. */
  reconfigure(config: ResolverConfig): void {
    this.config = config;
  }

  /**
   * The in-process API (policy service, CLI `lookup`). Accepts presentation names and type
   * mnemonics or numbers. Never rejects: failures are SERVFAIL with `failure` set.
   */
  resolve = async (name: string, type: string | number, opts: ResolveOptions = {}): Promise<ResolveResult> => {
    let qname: Name;
    let qtype: number;
    try {
      qname = parseName(name);
      qtype = typeof type === 'number' ? type : typeFromString(type);
    } catch (err) {
      return { rcode: Rcode.FORMERR, records: [], answers: [], authorities: [], ttlSec: 0, source: 'recursion', failure: describeError(err) };
    }
    const local = this.localAnswer(qname, qtype);
    if (local) return local;
    const out = await this.run(qname, qtype, opts.deadlineMs ?? this.config.clientDeadlineMs, opts.allowStale ?? true, 'in-process');
    if (out.source === 'cache') this.maybePrefetch(qname, qtype);
    return resultOf(out, qtype);
  };

  /**
   * The in-process API's synchronous half (ResolveCachedFn): what resolve() answers without
   * waiting, from the local zones or the cache, so a caller whose answers are cached (the policy
   * service's DNS list lookups of a repeat client) needs no promise and no timer.
   */
  resolveCached: ResolveCachedFn = (name, type) => {
    let qname: Name;
    let qtype: number;
    try {
      qname = parseName(name);
      qtype = typeof type === 'number' ? type : typeFromString(type);
    } catch {
      return undefined; // resolve() reports it as FORMERR
    }
    const local = this.localAnswer(qname, qtype);
    if (local) return local;
    const cached = this.iterator.chainFromCache(qname, qtype);
    if (!cached) return undefined;
    // Only a cached RRset of the name and type is prefetched: a negative answer needs no second look.
    if (cached.answers.length > 0) this.maybePrefetch(qname, qtype);
    return resultOf({ rcode: cached.rcode, answers: cached.answers, authorities: cached.authorities, source: 'cache' }, qtype);
  };

  private localAnswer(qname: Name, qtype: number): ResolveResult | undefined {
    const local = this.localZones?.lookup(qname, qtype);
    if (!local) return undefined;
    // deny/refuse zones: the server drops or refuses such queries; in process that is REFUSED.
    if (local.drop) return resultOf({ rcode: Rcode.REFUSED, answers: [], authorities: [], source: 'local', failure: `local zone ${local.zone} refuses this name` }, qtype);
    return resultOf({ rcode: local.rcode, answers: local.answers, authorities: local.authorities, source: 'local' }, qtype);
  }

  /** Recursor contract for the DNS server: never rejects; SERVFAIL and stale answers are not packet-cached. */
  async answerQuery(question: Question, opts: { recursionDesired: boolean } = { recursionDesired: true }): Promise<QueryAnswer> {
    if (question.class !== RRClass.IN) {
      return { rcode: Rcode.REFUSED, answers: [], authorities: [], additionals: [], source: 'recursion', cacheable: false };
    }
    if (!opts.recursionDesired) {
      // RFC 1034 s4.3.1: without RD the answer comes from the cache alone, never from recursion, and
      // a miss is REFUSED: Unbound's allow_snoop, so `dig +norec` shows what is cached. (Unbound's
      // plain `allow` refuses every RD=0 query that local data does not answer.)
      const cached = this.iterator.chainFromCache(question.name, question.type);
      if (!cached) return { rcode: Rcode.REFUSED, answers: [], authorities: [], additionals: [], source: 'cache', cacheable: false };
      return { rcode: cached.rcode, answers: cached.answers, authorities: cached.authorities, additionals: [], source: 'cache', cacheable: true };
    }
    const out = await this.run(question.name, question.type, this.config.clientDeadlineMs, true, 'client');
    if (out.source === 'cache') this.maybePrefetch(question.name, question.type);
    return {
      rcode: out.rcode,
      answers: out.answers,
      authorities: out.authorities,
      additionals: [],
      source: out.source,
      cacheable: out.rcode !== Rcode.SERVFAIL && out.source !== 'stale',
    };
  }

  /** Refreshes a name before it expires (called by the packet cache and on near-expiry cache hits). */
  prefetch(q: { name: Name; type: number }): void {
    if (!this.config.prefetch) return;
    const key = `${canonicalName(q.name)}|${q.type}`;
    if (this.prefetching.has(key)) return;
    const now = this.clock.nowMs();
    if (now - this.prefetchWindowMs >= 1000) {
      this.prefetchWindowMs = now;
      this.prefetchInWindow = 0;
    }
    if (this.prefetchInWindow >= this.config.prefetchPerSec) {
      this.stats.prefetchDropped++;
      return;
    }
    this.prefetchInWindow++;
    this.stats.prefetches++;
    this.prefetching.add(key);
    const st = this.newState(this.config.clientDeadlineMs);
    st.bypassCacheFor = key;
    this.iterator
      .resolveChain(q.name, q.type, st)
      .catch((err: unknown) => this.logger.debug({ qname: q.name, qtype: q.type, err: describeError(err) }, 'prefetch failed'))
      .finally(() => this.prefetching.delete(key));
  }

  /** Shared resolution with per-caller deadline and serve-stale. */
  private async run(qname: Name, qtype: number, deadlineMs: number, callerAllowsStale: boolean, origin: Origin): Promise<Outcome> {
    const miss = { atFirstLink: false };
    const cached = this.iterator.chainFromCache(qname, qtype, miss);
    if (cached) return { rcode: cached.rcode, answers: cached.answers, authorities: cached.authorities, source: 'cache' };
    const staleOk = callerAllowsStale && this.config.serveExpired && !this.config.noStaleZones.some((z) => isSubdomain(qname, z));
    const key = `${canonicalName(qname)}|${qtype}`;
    const joined = this.inflight.get(key);
    let shared: Promise<Outcome>;
    if (joined) {
      shared = joined.promise;
      this.stats.merged++;
      // The shared resolution runs until the latest deadline of those waiting on it: a client that
      // asks while a shorter lookup (a DNS list's, a stub's first try) is in flight keeps its own
      // budget. Each caller still stops waiting at its own deadline (raceWithTimers below).
      const until = this.clock.nowMs() + deadlineMs;
      if (until > joined.state.deadlineAtMs) {
        joined.state.deadlineAtMs = until;
        joined.releaseAtMs = Math.max(joined.releaseAtMs, performance.now() + deadlineMs + HUNG_RESOLUTION_GRACE_MS);
        joined.deadlineMs = Math.max(joined.deadlineMs, deadlineMs);
      }
    } else {
      if (this.stats.inFlight >= this.config.maxConcurrentResolutions) {
        this.stats.concurrencyRejected++;
        this.failLog.log('warn', { qname, qtype, limit: this.config.maxConcurrentResolutions }, 'concurrent resolution limit reached: SERVFAIL');
        return this.fail('limit-concurrency', origin);
      }
      // Started in this same turn: the cache cannot have changed since the miss above.
      const state = this.newState(deadlineMs);
      const mine = this.resolveNow(qname, qtype, state, miss.atFirstLink ? key : undefined);
      shared = mine;
      // The iterator ends every resolution by its deadline; should one ever hang (a bug), the sweep
      // releases it some time after, so later queries for the name neither join it nor count it
      // against the concurrency limit for ever. One interval timer for all, not one timer each.
      const entry: InflightResolution = { promise: mine, state, releaseAtMs: performance.now() + deadlineMs + HUNG_RESOLUTION_GRACE_MS, qname, qtype, deadlineMs, released: false };
      this.inflight.set(key, entry);
      this.stats.inFlight++;
      this.hungSweep ??= setInterval(() => this.sweepHung(), HUNG_SWEEP_INTERVAL_MS).unref();
      // then, not finally: one promise instead of three, and mine never rejects (resolveNow catches).
      const release = (): void => this.release(key, entry);
      void mine.then(release, release);
    }

    const staleTimerMs = staleOk && this.config.serveExpiredClientTimeoutMs > 0 ? this.config.serveExpiredClientTimeoutMs : 0;
    const first = await raceWithTimers(shared, deadlineMs, staleTimerMs);
    if (first === 'stale-timer') {
      // RFC 8767 s5 "client response timer": answer stale now if there is something, keep resolving.
      const stale = this.staleAnswer(qname, qtype);
      if (stale) return stale;
      const later = await raceWithTimers(shared, Math.max(1, deadlineMs - staleTimerMs), 0);
      return later === 'deadline' || later === 'stale-timer' ? this.callerDeadline(shared, qname, qtype, origin) : this.orStale(later, staleOk, qname, qtype, origin);
    }
    if (first === 'deadline') return (staleOk && this.staleAnswer(qname, qtype)) || this.callerDeadline(shared, qname, qtype, origin);
    return this.orStale(first, staleOk, qname, qtype, origin);
  }

  private release(key: string, entry: InflightResolution): void {
    if (entry.released) return;
    entry.released = true;
    if (this.inflight.get(key) === entry) this.inflight.delete(key);
    this.stats.inFlight--;
    if (this.inflight.size === 0 && this.hungSweep) {
      clearInterval(this.hungSweep);
      this.hungSweep = undefined;
    }
  }

  private sweepHung(): void {
    const now = performance.now();
    for (const [key, entry] of this.inflight) {
      if (now < entry.releaseAtMs) continue;
      this.failLog.log('warn', { qname: entry.qname, qtype: entry.qtype, deadlineMs: entry.deadlineMs }, 'a resolution did not end by its deadline: released (a bug; please report it)');
      this.release(key, entry);
    }
  }

  /**
   * SERVFAIL for a caller whose deadline passed before the resolution it waits on ended. When that
   * resolution fails too (it runs under the same deadline, or the longer one it was started with),
   * its own failure is the one counted and logged; only when it ends without SERVFAIL after all is
   * the caller's counted here, so a query that fails is one log line and one count, not two.
   */
  private callerDeadline(shared: Promise<Outcome>, qname: Name, qtype: number, origin: Origin): Outcome {
    void shared.then((out) => {
      if (out.rcode !== Rcode.SERVFAIL) this.fail('deadline', origin, qname, qtype);
      else out.report?.(origin);
    });
    return { rcode: Rcode.SERVFAIL, answers: [], authorities: [], source: 'recursion', failure: 'deadline' };
  }

  /** The resolution's outcome, or a stale answer in place of its SERVFAIL; a SERVFAIL answered is reported. */
  private orStale(out: Outcome, staleOk: boolean, qname: Name, qtype: number, origin: Origin): Outcome {
    const stale = out.rcode === Rcode.SERVFAIL && staleOk ? this.staleAnswer(qname, qtype) : undefined;
    if (stale) return stale;
    out.report?.(origin);
    return out;
  }

  private async resolveNow(qname: Name, qtype: number, st: ResolutionState, knownMissKey?: string): Promise<Outcome> {
    this.stats.resolutions++;
    if (knownMissKey !== undefined) st.bypassCacheFor = knownMissKey;
    try {
      const r = await this.iterator.resolveChain(qname, qtype, st);
      // Field by field: a spread of r here made V8 define a new hidden class per resolution (perf).
      return { rcode: r.rcode, answers: r.answers, authorities: r.authorities, source: st.wentUpstream ? 'recursion' : 'cache' };
    } catch (err) {
      const reason = err instanceof ResolutionFailure ? err.reason : 'internal';
      if (!(err instanceof ResolutionFailure)) this.logger.error({ qname, qtype, err: describeError(err) }, 'resolver error');
      // Counted and logged only by a caller that answers this SERVFAIL (orStale, callerDeadline):
      // one that answers stale instead has not failed.
      // Once per origin (a client and the policy service may share it), logged once.
      const reported = new Set<Origin>();
      const report = (origin: Origin): void => {
        if (reported.has(origin)) return;
        reported.add(origin);
        this.fail(reason, origin, reported.size === 1 ? qname : undefined, qtype, err);
      };
      const out: Outcome = { rcode: Rcode.SERVFAIL, answers: [], authorities: [], source: 'recursion', failure: reason, report };
      if (err instanceof ResolutionFailure && err.detail) {
        out.failureDetail = err.detail;
        if (err.silent) out.serversSilent = true;
      }
      return out;
    }
  }

  /** Counts a SERVFAIL answered to `origin`, and logs it when qname is given. */
  private fail(reason: string, origin: Origin, qname?: Name, qtype?: number, err?: unknown): Outcome {
    this.stats.servfail++;
    const causes = origin === 'client' ? this.stats.failures : this.stats.inProcessFailures;
    causes[reason] = (causes[reason] ?? 0) + 1;
    if (qname !== undefined) {
      this.failLog.log('info', { qname, qtype: typeToString(qtype ?? 0), reason, origin, detail: err ? describeError(err) : undefined }, 'SERVFAIL');
    }
    return { rcode: Rcode.SERVFAIL, answers: [], authorities: [], source: 'recursion', failure: reason };
  }

  /** A stale answer from the cache (RFC 8767), following cached CNAMEs; TTLs set to the reply TTL. */
  private staleAnswer(qname: Name, qtype: number): Outcome | null {
    const ttl = this.config.serveExpiredReplyTtlSec;
    const answers: ResourceRecord[] = [];
    let name = qname;
    // The chain limit holds here too: a chain refused as too long is not served as stale data.
    for (let i = 0; i <= this.iterator.config.limits.maxCnameChain; i++) {
      const hit = this.cache.getRRset(name, qtype, RRClass.IN, { allowStale: true });
      if (hit && hit.trust >= Trust.AnswerNonAuth) {
        answers.push(...rrsetRecords(hit, hit.stale ? ttl : hit.ttlSec));
        return this.served({ rcode: Rcode.NOERROR, answers, authorities: [], source: 'stale' });
      }
      const neg = this.cache.getNegative(name, qtype, { allowStale: true });
      if (neg) {
        const authorities = neg.soa ? [withTtl(neg.soa, ttl)] : [];
        return this.served({ rcode: neg.kind === 'nxdomain' ? Rcode.NXDOMAIN : Rcode.NOERROR, answers, authorities, source: 'stale' });
      }
      const cname = qtype === RRType.CNAME || qtype === RRType.ANY ? undefined : this.cache.getRRset(name, RRType.CNAME, RRClass.IN, { allowStale: true });
      if (!cname || !cname.rdatas[0]) return null;
      answers.push(...rrsetRecords(cname, cname.stale ? ttl : cname.ttlSec));
      name = rdataNames(RRType.CNAME, cname.rdatas[0])[0] ?? '.';
    }
    return null;
  }

  private served(out: Outcome): Outcome {
    this.stats.staleServed++;
    return out;
  }

  private maybePrefetch(qname: Name, qtype: number): void {
    if (!this.config.prefetch) return;
    const hit = this.cache.getRRset(qname, qtype);
    if (hit && hit.hits >= 2 && hit.ttlSec < hit.originalTtlSec * this.config.prefetchFraction) this.prefetch({ name: qname, type: qtype });
  }

  private newState(deadlineMs: number): ResolutionState {
    // Every field from the start (the optional ones undefined): one hidden class for every state.
    return { deadlineAtMs: this.clock.nowMs() + deadlineMs, upstreamQueries: 0, subqueries: 0, depth: 0, active: new Set(), wentUpstream: false, bypassCacheFor: undefined, unreachable: undefined };
  }
}

/** How long after its deadline a resolution that has not ended is released (see run()), give or take the sweep interval. */
export const HUNG_RESOLUTION_GRACE_MS = 1000;
const HUNG_SWEEP_INTERVAL_MS = 250;

/** One resolution in flight; releaseAtMs on performance.now()'s scale (the sweep is a real timer). */
interface InflightResolution {
  promise: Promise<Outcome>;
  /** The resolution's state: a caller joining with a later deadline extends its deadlineAtMs. */
  state: ResolutionState;
  releaseAtMs: number;
  qname: Name;
  qtype: number;
  deadlineMs: number;
  released: boolean;
}

/** Waits for the promise, or a deadline, or an earlier "stale" timer when one is given; the timer is always cleared. */
function raceWithTimers<T>(p: Promise<T>, deadlineMs: number, staleMs: number): Promise<T | 'deadline' | 'stale-timer'> {
  return new Promise((resolve) => {
    // One timer: the stale timer comes first when there is one, and its caller races the rest of
    // the deadline anew, so a deadline timer beside it would never fire first.
    const timer = staleMs > 0 && staleMs < deadlineMs ? setTimeout(() => done('stale-timer'), staleMs) : setTimeout(() => done('deadline'), deadlineMs);
    function done(v: T | 'deadline' | 'stale-timer'): void {
      clearTimeout(timer);
      resolve(v);
    }
    p.then(done, () => done('deadline'));
  });
}

function minTtl(out: Outcome): number {
  const ttls = (out.answers.length > 0 ? out.answers : out.authorities).map((r) => r.ttl);
  return ttls.length > 0 ? Math.min(...ttls) : 0;
}

/** The in-process API's view of an outcome: its records of the asked type typed, and the lowest TTL. */
function resultOf(out: Outcome, qtype: number): ResolveResult {
  const result: ResolveResult = {
    rcode: out.rcode,
    records: out.answers.filter((rr) => matchesType(rr, qtype)).map(toTyped),
    answers: out.answers,
    authorities: out.authorities,
    ttlSec: minTtl(out),
    source: out.source,
  };
  if (out.failure) result.failure = out.failure;
  if (out.failureDetail) result.failureDetail = out.failureDetail;
  if (out.serversSilent) result.serversSilent = true;
  return result;
}

/** Whether a record answers qtype: its own type, or any type for ANY (whose answer is never a chain). */
function matchesType(rr: ResourceRecord, qtype: number): boolean {
  return rr.type === qtype || qtype === RRType.ANY;
}

function toTyped(rr: ResourceRecord): TypedRecord {
  return { name: rr.name, type: typeToString(rr.type), ttl: rr.ttl, data: rdataToData(rr.type, rr.rdata) };
}
