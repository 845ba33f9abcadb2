// DNSBL/DNSWL lookups for policy steps 7-9 (checks/dns-list-checks.ts), `mxsentry rbl IP` (lookupAll)
// and the periodic RFC 5782 s5 self test. All lists of all three tiers are queried in parallel, once
// per request, through the injected ResolveFn with allowStale false; each step awaits only its tier.
// When the resolver's cache holds every answer a request needs (ResolveCachedFn), the tiers are
// decided at once from it instead: same answers, same verdicts, no timer and no promise.
// It must not treat list error codes, out-of-range answers, a failed lookup (SERVFAIL) or a timeout
// as a listing, and it never throws into the pipeline: every failure is a logged, counted "not listed".
import type { ResolveCachedFn, ResolveFn, ResolveResult } from '../dns/resolver-api.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/logger.js';
import { describeError, PolicyError } from '../util/errors.js';
import { parseAddress } from '../util/cidr.js';
import type { CheckContext } from './types.js';
import { parseDnsListSpec, type DnsListSpec } from './dns-list-spec.js';
import { realTimers, type Timers } from '../util/timers.js';
import { DnsListSilence } from './dns-list-silence.js';
import { DnsListCounters, type DnsListStats } from './dns-list-counters.js';
import {
  classify,
  combine,
  DNS_LIST_TIERS,
  evaluate,
  RCODE_NAMES,
  reverseName,
  txtOf,
  unqueried,
  type DnsListResult,
  type DnsListTier,
  type DnsListTierResult,
  type ZoneOutcome,
} from './dns-list-answers.js';

export type { DnsListStats } from './dns-list-counters.js';
export {
  DNS_LIST_TIERS,
  dnsListErrorMeaning,
  dnsListQueryName,
  reverseName,
  type DnsListResult,
  type DnsListTier,
  type DnsListTierResult,
  type DnsListVerdict,
} from './dns-list-answers.js';

/** RFC 5782 s5 test point outcome for one zone. */
export interface DnsListSelfTestResult {
  zone: string;
  tiers: DnsListTier[];
  ok: boolean;
  /** Empty when ok; otherwise what went wrong, one line each. */
  problems: string[];
  /**
   * The zone's answers are ignored: its last conclusive test of 127.0.0.1, the test point that must
   * never be listed, found it listed (the list answers every query: shut down or turned hostile).
   * Only a test that gets 127.0.0.1 answered as not listed lifts it; a timeout or error keeps it.
   */
  suspended: boolean;
}

export interface DnsListCheckerOptions {
  resolve: ResolveFn;
  /**
   * The resolver's synchronous cache look (same caches as `resolve`): when every answer a request
   * needs is cached, its tiers are decided at once, with no timer and no promise to wait for.
   */
  resolveCached?: ResolveCachedFn;
  clock: Clock;
  logger: Logger;
  /** Step 7 lists (e.g. `list.dnswl.org=127.0.[0..255].[2;3]`). */
  trusted?: readonly (string | DnsListSpec)[];
  /** Step 8 lists. */
  blocklists?: readonly (string | DnsListSpec)[];
  /** Step 9 lists. */
  allowlists?: readonly (string | DnsListSpec)[];
  /** Score at which step 8 rejects (postscreen_dnsbl_threshold); default 1. */
  blockThreshold?: number;
  /** Score at which step 7 trusts; default 1 (any hit). */
  trustedThreshold?: number;
  /** Score at which step 9 skips greylisting; default 1 (any hit). */
  allowThreshold?: number;
  /** Time budget for all lookups of one request (A and TXT), ms; also capped by the request deadline. */
  lookupBudgetMs: number;
  /** Budget for `lookupAll` and self tests, which are off the SMTP path; default 5000 ms. */
  diagnosticBudgetMs?: number;
  timers?: Timers;
}

const MEMO_KEY = 'policy.dns-lists';
/** One warning per list per minute at most; the rest are counted and summarised in the next one. */
const LOG_THROTTLE_MS = 60_000;

/** A request's tier results: at once (every answer came from the cache), or as the lookups settle. */
type Batch = { now: Record<DnsListTier, DnsListTierResult> } | { now?: undefined; tiers: Record<DnsListTier, Promise<DnsListTierResult>> };

interface BatchMode {
  countStats: boolean;
  /**
   * Diagnostics (lookupAll) wait longer than the daemon, to show what a slow list answers; an A
   * answer that came after this many ms is taken as the daemon takes it: no answer in time.
   */
  daemonBudgetMs?: number;
  /** Which listings get a TXT lookup: the listings of a DNSBL tier that rejects (request path) or any A answer (diagnostics). */
  txt: 'block' | 'all';
}

/**
 * Looks clients up in the configured DNS lists. One instance per configuration; safe for
 * concurrent requests. See the file header for the guarantees.
 */
export class DnsListChecker {
  private readonly resolve: ResolveFn;
  private readonly resolveCached: ResolveCachedFn | undefined;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly timers: Timers;
  private readonly lists: Record<DnsListTier, DnsListSpec[]>;
  private readonly thresholds: Record<DnsListTier, number>;
  private readonly lookupBudgetMs: number;
  private readonly diagnosticBudgetMs: number;
  private readonly counters: DnsListCounters;
  private readonly throttle = new Map<string, { lastMs: number; suppressed: number }>();
  private readonly silence = new DnsListSilence();
  private lastSelfTestResults: DnsListSelfTestResult[] | undefined;
  /** Zones whose last conclusive self test found 127.0.0.1 listed: their answers count as errors, never listings. */
  private readonly suspended = new Set<string>();
  /** Zones whose 127.0.0.1 test point got a conclusive answer (listed or not) at least once. */
  private readonly tested = new Set<string>();
  /**
   * Zones not consulted until the first self test of startSelfTests has finished: a list that
   * answers every query must not reject mail in the moments after a start or a reload.
   */
  private readonly untested = new Set<string>();

  constructor(opts: DnsListCheckerOptions) {
    this.resolve = opts.resolve;
    this.resolveCached = opts.resolveCached;
    this.clock = opts.clock;
    this.logger = opts.logger;
    this.timers = opts.timers ?? realTimers;
    const toSpec = (s: string | DnsListSpec): DnsListSpec => (typeof s === 'string' ? parseDnsListSpec(s) : s);
    this.lists = {
      trusted: (opts.trusted ?? []).map(toSpec),
      block: (opts.blocklists ?? []).map(toSpec),
      allow: (opts.allowlists ?? []).map(toSpec),
    };
    this.thresholds = {
      trusted: checkThreshold('trustedThreshold', opts.trustedThreshold ?? 1),
      block: checkThreshold('blockThreshold', opts.blockThreshold ?? 1),
      allow: checkThreshold('allowThreshold', opts.allowThreshold ?? 1),
    };
    if (!Number.isFinite(opts.lookupBudgetMs) || opts.lookupBudgetMs <= 0) {
      throw new PolicyError('POLICY_ERR_BAD_LIST_CONFIG', `lookupBudgetMs must be a positive number of ms, got ${opts.lookupBudgetMs}`);
    }
    this.lookupBudgetMs = opts.lookupBudgetMs;
    this.diagnosticBudgetMs = opts.diagnosticBudgetMs ?? 5000;
    this.counters = new DnsListCounters(DNS_LIST_TIERS.map((t) => [t, this.lists[t]] as const));
  }

  /** The parsed lists of a tier, in configuration order. */
  listsOf(tier: DnsListTier): readonly DnsListSpec[] {
    return this.lists[tier];
  }

  thresholdOf(tier: DnsListTier): number {
    return this.thresholds[tier];
  }

  /**
   * Starts the lookups of all tiers for this request, once (the result is kept in ctx.memo).
   * Called from each DNS list check's `prepare`, so the first call starts everything.
   */
  prepare(ctx: CheckContext): void {
    this.batchFor(ctx);
  }

  /** The verdict of one tier for the request's client; starts the lookups if prepare was skipped. */
  tier(ctx: CheckContext, tier: DnsListTier): Promise<DnsListTierResult> {
    return tierOf(this.batchFor(ctx), tier);
  }

  /** `decide` applied to tier(): at once when the tier's answers were all cached, else when they come. */
  withTier<R>(ctx: CheckContext, tier: DnsListTier, decide: (t: DnsListTierResult) => R): R | Promise<R> {
    const batch = this.batchFor(ctx);
    return batch.now ? decide(batch.now[tier]) : batch.tiers[tier].then(decide);
  }

  /**
   * Looks an address up in every list of every tier, for `mxsentry rbl IP`: per tier (pipeline
   * order) the score and whether it reaches the threshold, as steps 7-9 would decide, and per list
   * the raw answers, TXT (for any answer) and verdict. Not counted in the stats. Throws
   * POLICY_ERR_BAD_ADDRESS for a string that is not an IP address.
   */
  async lookupAll(ip: string): Promise<DnsListTierResult[]> {
    if (!parseAddress(ip)) throw new PolicyError('POLICY_ERR_BAD_ADDRESS', `not an IP address: "${ip}"`);
    const batch = this.startBatch(ip, this.clock.nowMs() + this.diagnosticBudgetMs, { countStats: false, txt: 'all', daemonBudgetMs: this.lookupBudgetMs });
    return Promise.all(DNS_LIST_TIERS.map((tier) => tierOf(batch, tier)));
  }

  /**
   * RFC 5782 s5 test points for every configured zone: 127.0.0.2 must be listed (any valid
   * 127.0.0.0/8 answer, the list's filter is not applied) and 127.0.0.1 must not be. A zone that
   * fails either, answers with an error code or does not answer is reported with its problems.
   * Returns one result per distinct zone, configuration order.
   */
  async selfTest(): Promise<DnsListSelfTestResult[]> {
    const zones = new Map<string, DnsListTier[]>();
    for (const tier of DNS_LIST_TIERS) {
      for (const spec of this.lists[tier]) {
        const tiers = zones.get(spec.zone) ?? [];
        if (!tiers.includes(tier)) tiers.push(tier);
        zones.set(spec.zone, tiers);
      }
    }
    const budgetEndMs = this.clock.nowMs() + this.diagnosticBudgetMs;
    const deadline = this.deadlineAt(budgetEndMs);
    try {
      const results = await Promise.all(
        [...zones].map(async ([zone, tiers]): Promise<DnsListSelfTestResult> => {
          const [pos, neg] = await Promise.all([
            this.queryZone(`${reverseName(parseAddress('127.0.0.2'))}.${zone}.`, 'A', budgetEndMs, deadline.promise),
            this.queryZone(`${reverseName(parseAddress('127.0.0.1'))}.${zone}.`, 'A', budgetEndMs, deadline.promise),
          ]);
          const problems: string[] = [];
          const p = classify(pos);
          if (p.errors.length > 0) problems.push(`test point 127.0.0.2: error answer ${p.errors.join(', ')}`);
          else if (p.noAnswer) problems.push(`test point 127.0.0.2: ${p.noAnswer}`);
          else if (p.valid.length === 0) problems.push(`test point 127.0.0.2 is not listed (${p.emptyReason}); RFC 5782 s5 requires it`);
          const n = classify(neg);
          if (n.errors.length > 0) problems.push(`test point 127.0.0.1: error answer ${n.errors.join(', ')}`);
          else if (n.noAnswer) problems.push(`test point 127.0.0.1: ${n.noAnswer}`);
          else if (n.valid.length > 0) {
            problems.push(`test point 127.0.0.1 is listed (${n.valid.map((o) => o.join('.')).join(', ')}); the list answers every query: its answers are ignored until it passes again`);
          }
          const conclusive = n.errors.length === 0 && !n.noAnswer;
          if (conclusive) {
            this.tested.add(zone);
            this.setSuspended(zone, n.valid.length > 0);
          } else if (this.suspended.has(zone)) {
            problems.push('the list stays suspended until 127.0.0.1 is answered as not listed');
          }
          this.untested.delete(zone);
          return { zone, tiers, ok: problems.length === 0, problems, suspended: this.suspended.has(zone) };
        }),
      );
      this.lastSelfTestResults = results;
      return results;
    } finally {
      deadline.cancel();
    }
  }

  /** Starts or ends ignoring a zone's answers, with a log line at each change. */
  private setSuspended(zone: string, suspend: boolean): void {
    if (suspend === this.suspended.has(zone)) return;
    if (suspend) {
      this.suspended.add(zone);
      this.logger.error({ zone }, `DNS list ${zone} lists the RFC 5782 test point 127.0.0.1, so it answers every query: its answers are ignored (not listed) until a self test passes`);
    } else {
      this.suspended.delete(zone);
      this.logger.warn({ zone }, `DNS list ${zone} no longer lists 127.0.0.1: its answers count again`);
    }
  }

  /**
   * `result` as evaluated, or 'skipped' when its zone is suspended (see setSuspended) or not yet
   * self-tested: the list was not consulted, which is neither an error answer nor a failed lookup.
   */
  private unlessSuspended(result: DnsListResult): DnsListResult {
    const zone = result.list.zone;
    if (this.suspended.has(zone)) return { ...result, verdict: 'skipped', matched: [], detail: 'list suspended: its self test found 127.0.0.1 listed (it answers every query)' };
    if (this.untested.has(zone)) return { ...result, verdict: 'skipped', matched: [], detail: 'not consulted until its first self test (RFC 5782 test points) has finished' };
    return result;
  }

  /**
   * Takes over what an earlier checker's self tests found (a reload builds a new checker): its
   * suspended zones stay suspended and its tested zones need no first test before they count.
   * Call before startSelfTests.
   */
  adoptSelfTestState(previous: DnsListChecker): void {
    const zones = new Set(DNS_LIST_TIERS.flatMap((t) => this.lists[t].map((l) => l.zone)));
    for (const zone of previous.suspended) if (zones.has(zone)) this.suspended.add(zone);
    for (const zone of previous.tested) if (zones.has(zone)) this.tested.add(zone);
  }

  /** The results of the most recent self test, if any ran. */
  lastSelfTest(): readonly DnsListSelfTestResult[] | undefined {
    return this.lastSelfTestResults;
  }

  /**
   * Runs selfTest now and then every intervalMs (never two at once), logging failing zones at warn.
   * Timers are unref'd; call stop() on shutdown or reload.
   */
  startSelfTests(intervalMs: number): { stop(): void } {
    if (!Number.isFinite(intervalMs) || intervalMs <= 0) {
      throw new PolicyError('POLICY_ERR_BAD_LIST_CONFIG', `self test interval must be a positive number of ms, got ${intervalMs}`);
    }
    let stopped = false;
    let handle: unknown;
    for (const tier of DNS_LIST_TIERS) for (const list of this.lists[tier]) if (!this.tested.has(list.zone)) this.untested.add(list.zone);
    const runOnce = (): void => {
      handle = undefined;
      this.selfTest()
        .then((results) => {
          for (const r of results) {
            if (r.ok) this.logger.debug({ zone: r.zone }, 'DNS list self test passed');
            else this.logger.warn({ zone: r.zone, tiers: r.tiers, problems: r.problems }, `DNS list ${r.zone} fails its RFC 5782 test points`);
          }
        })
        .catch((err: unknown) => {
          this.logger.error({ err: describeError(err) }, 'DNS list self test failed to run');
        })
        .finally(() => {
          // Whatever the first test found, no list waits for it any longer.
          this.untested.clear();
          if (!stopped) handle = this.timers.setTimeout(runOnce, intervalMs);
        });
    };
    runOnce();
    return {
      stop: () => {
        stopped = true;
        if (handle !== undefined) this.timers.clearTimeout(handle);
        handle = undefined;
      },
    };
  }

  /** Per-list counters, tiers in pipeline order. */
  stats(): DnsListStats[] {
    return this.counters.rows();
  }

  private batchFor(ctx: CheckContext): Batch {
    const existing = ctx.memo.get(MEMO_KEY) as Batch | undefined;
    if (existing) return existing;
    const budgetEndMs = Math.min(this.clock.nowMs() + this.lookupBudgetMs, ctx.deadlineAtMs);
    const batch = this.startBatch(ctx.clientAddress, budgetEndMs, { countStats: true, txt: 'block' });
    ctx.memo.set(MEMO_KEY, batch);
    return batch;
  }

  private startBatch(address: string, budgetEndMs: number, mode: BatchMode): Batch {
    const parsed = parseAddress(address);
    if (!parsed) {
      this.logger.debug({ clientAddress: address }, 'client address is not an IP address: DNS lists not consulted');
      const empty = (tier: DnsListTier): Promise<DnsListTierResult> =>
        Promise.resolve(combine(tier, this.thresholds[tier], this.lists[tier].map((list) => unqueried(tier, list))));
      return { tiers: { trusted: empty('trusted'), block: empty('block'), allow: empty('allow') } };
    }
    const prefix = reverseName(parsed);
    const now = this.cachedTiers(prefix, address, mode);
    if (now) return { now };
    const deadline = this.deadlineAt(budgetEndMs);
    const aByZone = new Map<string, Promise<ZoneOutcome>>();
    const txtByZone = new Map<string, Promise<string | undefined>>();
    const zoneA = (zone: string): Promise<ZoneOutcome> => {
      let p = aByZone.get(zone);
      if (!p) {
        const startedMs = this.clock.nowMs();
        p = this.queryZone(`${prefix}.${zone}.`, 'A', budgetEndMs, deadline.promise);
        const daemonMs = mode.daemonBudgetMs;
        if (daemonMs !== undefined) {
          p = p.then((o): ZoneOutcome => {
            const tookMs = this.clock.nowMs() - startedMs;
            if (o.kind !== 'answer' || tookMs <= daemonMs) return o;
            // Only NOERROR and NXDOMAIN are the list's answers; a SERVFAIL is the resolver giving up.
            const r = o.result;
            const what = r.rcode === 0 || r.rcode === 3 ? `answered after ${tookMs} ms, beyond the daemon's ${daemonMs} ms (dns-list-budget-ms)`
              : `${RCODE_NAMES[r.rcode] ?? `rcode ${r.rcode}`} (${[r.failure, r.failureDetail].filter((x) => x).join(': ')}) after ${tookMs} ms, no answer within the daemon's ${daemonMs} ms (dns-list-budget-ms)`;
            return { kind: 'timeout', failure: `${what}: the daemon takes it as not listed` };
          });
        }
        aByZone.set(zone, p);
      }
      return p;
    };
    const zoneTxt = (zone: string): Promise<string | undefined> => {
      let p = txtByZone.get(zone);
      if (!p) {
        p = this.queryZone(`${prefix}.${zone}.`, 'TXT', budgetEndMs, deadline.promise).then(txtOf);
        txtByZone.set(zone, p);
      }
      return p;
    };
    const silenceNoted = new Set<string>();
    const evaluateTier = async (tier: DnsListTier): Promise<DnsListTierResult> => {
      const results = await Promise.all(
        this.lists[tier].map(async (list) => {
          const queryName = `${prefix}.${list.zone}.`;
          if (this.notAsked(mode, list)) return this.unlessSuspended({ ...unqueried(tier, list), queryName });
          const result = this.unlessSuspended(evaluate(tier, list, queryName, await zoneA(list.zone)));
          if (this.wantsTxtAtOnce(mode, tier, result)) result.txt = await zoneTxt(list.zone);
          return result;
        }),
      );
      if (mode.countStats) this.accountTier(tier, results, address, silenceNoted);
      const combined = combine(tier, this.thresholds[tier], results);
      // On the request path only a reject shows a reason: TXT is asked for the DNSBL listings of a
      // tier that rejects (at once for a listing that rejects alone, above), not for a listing below
      // the threshold or a DNSWL's: each TXT query is one more for the list operator's quota.
      if (mode.txt === 'block' && tier === 'block' && combined.reached) {
        await Promise.all(combined.listed.filter((r) => r.list.weight > 0).map(async (r) => {
          r.txt = await zoneTxt(r.list.zone);
        }));
      }
      return combined;
    };
    const failOpen = (tier: DnsListTier) => (err: unknown): DnsListTierResult => {
      this.logger.error({ tier, err: describeError(err) }, 'DNS list evaluation failed: treated as not listed');
      return combine(tier, this.thresholds[tier], []);
    };
    const tiers = {
      trusted: evaluateTier('trusted').catch(failOpen('trusted')),
      block: evaluateTier('block').catch(failOpen('block')),
      allow: evaluateTier('allow').catch(failOpen('allow')),
    };
    void Promise.all([tiers.trusted, tiers.block, tiers.allow]).then(() => deadline.cancel());
    return { tiers };
  }

  /**
   * Every tier decided from answers the resolver has at once (resolveCached), as the lookups below
   * would decide them; undefined as soon as one answer (A, or TXT of a listing) is not cached, and
   * then nothing was counted: the lookups count it.
   */
  private cachedTiers(prefix: string, address: string, mode: BatchMode): Record<DnsListTier, DnsListTierResult> | undefined {
    if (!this.resolveCached) return undefined;
    const byZone = new Map<string, ZoneOutcome>();
    const results: Record<DnsListTier, DnsListResult[]> = { trusted: [], block: [], allow: [] };
    for (const tier of DNS_LIST_TIERS) {
      for (const list of this.lists[tier]) {
        const queryName = `${prefix}.${list.zone}.`;
        if (this.notAsked(mode, list)) {
          results[tier].push(this.unlessSuspended({ ...unqueried(tier, list), queryName }));
          continue;
        }
        let outcome = byZone.get(list.zone);
        if (!outcome) {
          const answer = this.resolveCached(queryName, 'A');
          if (!answer) return undefined;
          outcome = { kind: 'answer', result: answer };
          byZone.set(list.zone, outcome);
        }
        const result = this.unlessSuspended(evaluate(tier, list, queryName, outcome));
        if (this.wantsTxtAtOnce(mode, tier, result) && !this.cachedTxt(result, queryName)) return undefined;
        results[tier].push(result);
      }
    }
    const combined = {
      trusted: combine('trusted', this.thresholds.trusted, results.trusted),
      block: combine('block', this.thresholds.block, results.block),
      allow: combine('allow', this.thresholds.allow, results.allow),
    };
    // As in the lookups: TXT only for the listings of a DNSBL tier that rejects.
    if (mode.txt === 'block' && combined.block.reached) {
      for (const r of combined.block.listed) if (r.list.weight > 0 && r.txt === undefined && !this.cachedTxt(r, `${prefix}.${r.list.zone}.`)) return undefined;
    }
    const silenceNoted = new Set<string>();
    if (mode.countStats) for (const t of DNS_LIST_TIERS) this.accountTier(t, results[t], address, silenceNoted);
    return combined;
  }

  /**
   * A list not consulted (suspended, or before its first self test) is not asked on the request
   * path: its answer would be ignored, and a list that answers every query may be a lapsed domain
   * in other hands, which would learn each client's address. Diagnostics (lookupAll) still ask it,
   * to show what it answers.
   */
  private notAsked(mode: BatchMode, list: DnsListSpec): boolean {
    return mode.countStats && (this.suspended.has(list.zone) || this.untested.has(list.zone));
  }

  /**
   * Whether a result gets its TXT lookup at once, beside the other lists' A lookups: any A answer in
   * diagnostics; on the request path a DNSBL listing whose weight alone reaches the threshold.
   */
  private wantsTxtAtOnce(mode: BatchMode, tier: DnsListTier, result: DnsListResult): boolean {
    if (mode.txt === 'all') return result.addresses.length > 0;
    return tier === 'block' && result.verdict === 'listed' && result.list.weight >= this.thresholds.block;
  }

  /** Counts a tier's results; an entry given twice weighs twice (as in postscreen) but is one list: counted once. */
  private accountTier(tier: DnsListTier, results: readonly DnsListResult[], clientAddress: string, silenceNoted: Set<string>): void {
    const counted = new Set<string>();
    for (const r of results) {
      if (counted.has(r.list.text)) continue;
      counted.add(r.list.text);
      this.account(tier, r, clientAddress, silenceNoted);
    }
  }

  /** Sets result.txt from the resolver's cache; false when the TXT answer is not cached. */
  private cachedTxt(result: DnsListResult, queryName: string): boolean {
    const txt = this.resolveCached?.(queryName, 'TXT');
    if (!txt) return false;
    result.txt = txtOf({ kind: 'answer', result: txt });
    return true;
  }

  /** One shared deadline per batch: resolves when the budget is spent; cancel() clears the timer. */
  private deadlineAt(budgetEndMs: number): { promise: Promise<void>; cancel(): void } {
    let handle: unknown;
    let fire: () => void = () => undefined;
    const promise = new Promise<void>((resolve) => {
      fire = resolve;
    });
    const remaining = budgetEndMs - this.clock.nowMs();
    if (remaining <= 0) {
      fire();
    } else {
      handle = this.timers.setTimeout(() => {
        handle = undefined;
        fire();
      }, remaining);
    }
    return {
      promise,
      cancel: () => {
        if (handle !== undefined) this.timers.clearTimeout(handle);
        handle = undefined;
      },
    };
  }

  private queryZone(qname: string, qtype: 'A' | 'TXT', budgetEndMs: number, deadline: Promise<void>): Promise<ZoneOutcome> {
    const remaining = budgetEndMs - this.clock.nowMs();
    if (remaining <= 0) return Promise.resolve({ kind: 'timeout', failure: 'lookup budget already spent' });
    let answer: Promise<ResolveResult>;
    try {
      // A stale listing is wrong data (DESIGN.md s2 serve-stale): never accept one here.
      answer = this.resolve(qname, qtype, { deadlineMs: remaining, allowStale: false });
    } catch (err) {
      answer = Promise.reject(err);
    }
    const settled = answer.then(
      (result): ZoneOutcome => ({ kind: 'answer', result }),
      (err: unknown): ZoneOutcome => ({ kind: 'error', message: describeError(err) }),
    );
    const timedOut = deadline.then((): ZoneOutcome => ({ kind: 'timeout', failure: 'deadline' }));
    return Promise.race([settled, timedOut]);
  }

  /** Counts and logs one result; `silenceNoted` holds the zones of this request already noted (one lookup each, however many entries). */
  private account(tier: DnsListTier, r: DnsListResult, clientAddress: string, silenceNoted: Set<string>): void {
    this.counters.count(r);
    // Not consulted: its suspension was logged once, and its answer says nothing about its servers.
    // Before the first self test nothing else says why clients pass unchecked: said once a minute.
    if (r.verdict === 'skipped') {
      if (this.untested.has(r.list.zone)) this.logThrottled('info', `${r.list.zone}:untested`, { list: r.list.zone, tier, clientAddress }, `DNS list ${r.list.zone} not consulted: its first self test has not ended`);
      return;
    }
    if (r.verdict === 'error') {
      this.logThrottled('warn', `${tier}:${r.list.text}:error`, { list: r.list.name, tier, clientAddress, detail: r.detail }, `DNS list ${r.list.zone} answered with an error: not a listing`);
    } else if (r.verdict === 'timeout' || r.verdict === 'failed') {
      this.logThrottled('info', `${tier}:${r.list.text}:${r.verdict}`, { list: r.list.name, tier, clientAddress, detail: r.detail }, `DNS list ${r.list.zone}: ${r.detail}, treated as not listed`);
    }
    if (silenceNoted.has(r.list.zone)) return;
    silenceNoted.add(r.list.zone);
    const silent = this.silence.note(r.list.zone, r.verdict !== 'timeout' && r.verdict !== 'failed', this.clock.nowMs());
    if (silent) this.logThrottled('warn', `${r.list.zone}:silent`, { list: r.list.zone, silentMinutes: Math.floor(silent.silentMs / 60_000), lookups: silent.lookups }, `DNS list ${r.list.zone} has not answered for ${Math.floor(silent.silentMs / 60_000)} minutes: every client counts as not listed there; check that its servers answer this host (an operator may block or rate-limit it)`);
  }

  private logThrottled(level: 'warn' | 'info', key: string, fields: Record<string, unknown>, msg: string): void {
    const now = this.clock.nowMs();
    const t = this.throttle.get(key);
    if (t && now - t.lastMs < LOG_THROTTLE_MS) {
      t.suppressed++;
      return;
    }
    const suppressed = t?.suppressed ?? 0;
    this.throttle.set(key, { lastMs: now, suppressed: 0 });
    this.logger[level](suppressed > 0 ? { ...fields, suppressedSinceLast: suppressed } : fields, msg);
  }
}

function tierOf(batch: Batch, tier: DnsListTier): Promise<DnsListTierResult> {
  return batch.now ? Promise.resolve(batch.now[tier]) : batch.tiers[tier];
}

function checkThreshold(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1) {
    throw new PolicyError('POLICY_ERR_BAD_LIST_CONFIG', `${name} must be an integer >= 1, got ${v}`);
  }
  return v;
}
