// DNSBL/DNSWL lookups for policy steps 7-9 (checks/dns-list-checks.ts), `mxsentry rbl IP` (lookupAll)
// and the periodic RFC 5782 s5 self test. All lists of all three tiers are queried in parallel, once
// per request, through the injected ResolveFn with allowStale false; each step awaits only its tier.
// It must not treat list error codes, out-of-range answers, SERVFAIL or a timeout as a listing, and it
// never throws into the pipeline: every failure is a logged, counted "not listed".
import type { ResolveFn, ResolveResult } from '../dns/resolver-api.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/logger.js';
import { describeError, PolicyError } from '../util/errors.js';
import { parseAddress } from '../util/cidr.js';
import type { CheckContext } from './types.js';
import { filterMatches, parseDnsListSpec, type DnsListSpec } from './dns-list-spec.js';

/** The three list tiers, in pipeline order: step 7 trusted DNSWL, step 8 DNSBL, step 9 DNSWL. */
export type DnsListTier = 'trusted' | 'block' | 'allow';

/** All tiers in pipeline order. */
export const DNS_LIST_TIERS: readonly DnsListTier[] = ['trusted', 'block', 'allow'];

/** Outcome for one list and one address. Only 'listed' ever influences a decision. */
export type DnsListVerdict = 'listed' | 'not-listed' | 'error' | 'timeout';

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

/** Per-list counters since start. */
export interface DnsListStats {
  tier: DnsListTier;
  list: string;
  queries: number;
  listed: number;
  errors: number;
  timeouts: number;
}

/** RFC 5782 s5 test point outcome for one zone. */
export interface DnsListSelfTestResult {
  zone: string;
  tiers: DnsListTier[];
  ok: boolean;
  /** Empty when ok; otherwise what went wrong, one line each. */
  problems: string[];
}

/** Timer functions, injectable so tests drive deadlines without sleeping. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Real timers, unref'd so a pending lookup deadline or self test never keeps the process alive. */
export const realTimers: Timers = {
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout(handle) {
    clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
};

export interface DnsListCheckerOptions {
  resolve: ResolveFn;
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
const TXT_MAX_CHARS = 250;

type ZoneOutcome =
  | { kind: 'answer'; result: ResolveResult }
  | { kind: 'timeout'; failure: string }
  | { kind: 'error'; message: string };

interface Batch {
  tiers: Record<DnsListTier, Promise<DnsListTierResult>>;
}

interface Counters {
  queries: number;
  listed: number;
  errors: number;
  timeouts: number;
}

interface BatchMode {
  countStats: boolean;
  /** Which listings get a TXT lookup: only DNSBL listings (request path) or any A answer (diagnostics). */
  txt: 'block' | 'all';
}

/**
 * Looks clients up in the configured DNS lists. One instance per configuration; safe for
 * concurrent requests. See the file header for the guarantees.
 */
export class DnsListChecker {
  private readonly resolve: ResolveFn;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly timers: Timers;
  private readonly lists: Record<DnsListTier, DnsListSpec[]>;
  private readonly thresholds: Record<DnsListTier, number>;
  private readonly lookupBudgetMs: number;
  private readonly diagnosticBudgetMs: number;
  private readonly counters = new Map<string, Counters>();
  private readonly throttle = new Map<string, { lastMs: number; suppressed: number }>();
  private lastSelfTestResults: DnsListSelfTestResult[] | undefined;

  constructor(opts: DnsListCheckerOptions) {
    this.resolve = opts.resolve;
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
    for (const tier of DNS_LIST_TIERS) {
      for (const spec of this.lists[tier]) {
        this.counters.set(statsKey(tier, spec), { queries: 0, listed: 0, errors: 0, timeouts: 0 });
      }
    }
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
    return this.batchFor(ctx).tiers[tier];
  }

  /**
   * Looks an address up in every list of every tier, for `mxsentry rbl IP`: per tier (pipeline
   * order) the score and whether it reaches the threshold, as steps 7-9 would decide, and per list
   * the raw answers, TXT (for any answer) and verdict. Not counted in the stats. Throws
   * POLICY_ERR_BAD_ADDRESS for a string that is not an IP address.
   */
  async lookupAll(ip: string): Promise<DnsListTierResult[]> {
    if (!parseAddress(ip)) throw new PolicyError('POLICY_ERR_BAD_ADDRESS', `not an IP address: "${ip}"`);
    const batch = this.startBatch(ip, this.clock.nowMs() + this.diagnosticBudgetMs, { countStats: false, txt: 'all' });
    return Promise.all(DNS_LIST_TIERS.map((tier) => batch.tiers[tier]));
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
            problems.push(`test point 127.0.0.1 is listed (${n.valid.map((o) => o.join('.')).join(', ')}); the list may answer every query`);
          }
          return { zone, tiers, ok: problems.length === 0, problems };
        }),
      );
      this.lastSelfTestResults = results;
      return results;
    } finally {
      deadline.cancel();
    }
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
    const out: DnsListStats[] = [];
    const seen = new Set<string>();
    for (const tier of DNS_LIST_TIERS) {
      for (const spec of this.lists[tier]) {
        // An entry given twice (it weighs twice, as in postscreen) shares one counter: one row.
        const key = statsKey(tier, spec);
        if (seen.has(key)) continue;
        seen.add(key);
        const c = this.counters.get(key) ?? { queries: 0, listed: 0, errors: 0, timeouts: 0 };
        out.push({ tier, list: spec.text, ...c });
      }
    }
    return out;
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
    const deadline = this.deadlineAt(budgetEndMs);
    const aByZone = new Map<string, Promise<ZoneOutcome>>();
    const txtByZone = new Map<string, Promise<string | undefined>>();
    const zoneA = (zone: string): Promise<ZoneOutcome> => {
      let p = aByZone.get(zone);
      if (!p) {
        p = this.queryZone(`${prefix}.${zone}.`, 'A', budgetEndMs, deadline.promise);
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
    const evaluateTier = async (tier: DnsListTier): Promise<DnsListTierResult> => {
      const results = await Promise.all(
        this.lists[tier].map(async (list) => {
          const queryName = `${prefix}.${list.zone}.`;
          const result = evaluate(tier, list, queryName, await zoneA(list.zone));
          const wantTxt = mode.txt === 'all' ? result.addresses.length > 0 : tier === 'block' && result.verdict === 'listed';
          if (wantTxt) result.txt = await zoneTxt(list.zone);
          if (mode.countStats) this.account(tier, result, address);
          return result;
        }),
      );
      return combine(tier, this.thresholds[tier], results);
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

  private account(tier: DnsListTier, r: DnsListResult, clientAddress: string): void {
    const c = this.counters.get(statsKey(tier, r.list));
    if (c) {
      c.queries++;
      if (r.verdict === 'listed') c.listed++;
      else if (r.verdict === 'error') c.errors++;
      else if (r.verdict === 'timeout') c.timeouts++;
    }
    if (r.verdict === 'error') {
      this.logThrottled('warn', `${tier}:${r.list.text}:error`, { list: r.list.name, tier, clientAddress, detail: r.detail }, `DNS list ${r.list.zone} answered with an error: not a listing`);
    } else if (r.verdict === 'timeout') {
      this.logThrottled('info', `${tier}:${r.list.text}:timeout`, { list: r.list.name, tier, clientAddress, detail: r.detail }, `DNS list ${r.list.zone}: no answer in time, treated as not listed`);
    }
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

/**
 * The query-name prefix for an address: IPv4 octets reversed (RFC 5782 s2.1); IPv6 as 32 reversed
 * nibbles (RFC 5782 s2.4). IPv4-mapped IPv6 was already turned into IPv4 by parseAddress.
 */
export function reverseName(addr: { family: 4 | 6; bytes: Uint8Array } | null): string {
  if (!addr) throw new PolicyError('POLICY_ERR_BAD_ADDRESS', 'not an IP address');
  if (addr.family === 4) return Array.from(addr.bytes.subarray(0, 4)).reverse().join('.');
  const nibbles: string[] = [];
  for (const b of addr.bytes) nibbles.push((b >> 4).toString(16), (b & 0x0f).toString(16));
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
  noAnswerKind: 'timeout' | 'error' | undefined;
  rcode: number | undefined;
  emptyReason: string;
}

function classify(outcome: ZoneOutcome): Classified {
  const base: Classified = { addresses: [], valid: [], errors: [], noAnswer: undefined, noAnswerKind: undefined, rcode: undefined, emptyReason: '' };
  if (outcome.kind === 'timeout') return { ...base, noAnswer: `no answer in time (${outcome.failure})`, noAnswerKind: 'timeout' };
  if (outcome.kind === 'error') return { ...base, noAnswer: `lookup failed: ${outcome.message}`, noAnswerKind: 'error' };
  const r = outcome.result;
  base.rcode = r.rcode;
  if (r.rcode === 3) return { ...base, emptyReason: 'NXDOMAIN' };
  if (r.rcode === 2) return { ...base, noAnswer: `no answer in time (SERVFAIL${r.failure ? `: ${r.failure}` : ''})`, noAnswerKind: 'timeout' };
  if (r.rcode !== 0) return { ...base, noAnswer: `unexpected rcode ${r.rcode}`, noAnswerKind: 'error' };
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

function evaluate(tier: DnsListTier, list: DnsListSpec, queryName: string, outcome: ZoneOutcome): DnsListResult {
  const c = classify(outcome);
  const result: DnsListResult = {
    tier, list, queryName, verdict: 'not-listed', rcode: c.rcode, addresses: c.addresses,
    matched: [], errors: c.errors, txt: undefined, detail: '',
  };
  if (c.noAnswer) {
    result.verdict = c.noAnswerKind === 'timeout' ? 'timeout' : 'error';
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

function unqueried(tier: DnsListTier, list: DnsListSpec): DnsListResult {
  return {
    tier, list, queryName: '', verdict: 'not-listed', rcode: undefined, addresses: [], matched: [],
    errors: [], txt: undefined, detail: 'client address is not an IP address',
  };
}

function combine(tier: DnsListTier, threshold: number, results: DnsListResult[]): DnsListTierResult {
  const listed = results.filter((r) => r.verdict === 'listed');
  // postscreen syntax puts DNSWLs in dnsbl_sites with negative weights; in our DNSWL tiers only the
  // magnitude matters, so such entries can be pasted as they are. In the DNSBL tier a negative
  // weight subtracts, as in postscreen.
  const score = listed.reduce((sum, r) => sum + (tier === 'block' ? r.list.weight : Math.abs(r.list.weight)), 0);
  return { tier, threshold, score, reached: listed.length > 0 && score >= threshold, listed, results };
}

function txtOf(outcome: ZoneOutcome): string | undefined {
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

function statsKey(tier: DnsListTier, spec: DnsListSpec): string {
  return `${tier}\u0000${spec.text}`;
}

function checkThreshold(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1) {
    throw new PolicyError('POLICY_ERR_BAD_LIST_CONFIG', `${name} must be an integer >= 1, got ${v}`);
  }
  return v;
}
