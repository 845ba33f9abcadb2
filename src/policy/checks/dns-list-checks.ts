// Policy steps 7, 8 and 9 (DESIGN.md s3): trusted DNSWL -> DUNNO, DNSBL -> 554 reject, second-tier
// DNSWL -> DUNNO without greylisting. Built by the pipeline around one shared DnsListChecker, whose
// lookups for all tiers start in `prepare` and run in parallel; each step awaits only its tier, and
// decides at once when the checker had every answer in the resolver's cache.
// These checks never throw and never decide on an error answer or a timeout (the checker maps those
// to "not listed").
import type { Check, CheckContext, CheckResult } from '../types.js';
import type { DnsListChecker, DnsListResult, DnsListTierResult } from '../dns-lists.js';

/** Step 7: a client listed in the trusted DNSWL tier ends the pipeline with DUNNO. */
export function createTrustedDnswlCheck(checker: DnsListChecker): Check {
  return {
    step: 7,
    name: 'dnswl-trusted',
    prepare: (ctx) => checker.prepare(ctx),
    run(ctx: CheckContext): CheckResult | null | Promise<CheckResult | null> {
      if (checker.listsOf('trusted').length === 0) return null;
      return checker.withTier(ctx, 'trusted', (t) => (t.reached ? { action: 'DUNNO', reason: `trusted DNSWL ${listNames(t)}${scoreNote(t)}` } : null));
    },
  };
}

/**
 * Step 8: the sum of the weights of listing DNSBLs reaching the threshold rejects with Postfix's
 * reject_rbl_client wording and a 554 reply code ("554 5.7.1 Service unavailable; Client host [ip]
 * blocked using zone; TXT"), naming the listing list with the largest weight, as postscreen names
 * "the DNSBL with largest contribution" (postscreen_dnsbl.c); on a tie the first in configuration order.
 * A zone named in `replyNames` (dnsbl-reply-name, as postscreen_dnsbl_reply_map) is shown by that name.
 */
export function createDnsblCheck(checker: DnsListChecker, replyNames: ReadonlyMap<string, string> = new Map()): Check {
  return {
    step: 8,
    name: 'dnsbl',
    prepare: (ctx) => checker.prepare(ctx),
    run(ctx: CheckContext): CheckResult | null | Promise<CheckResult | null> {
      if (checker.listsOf('block').length === 0) return null;
      return checker.withTier(ctx, 'block', (t) => {
        if (!t.reached) return null;
        const named = largestContribution(t);
        // A zone may hold an access key (Spamhaus DQS): the reply shows its configured public name.
        const zone = named ? (replyNames.get(named.list.zone) ?? named.list.zone) : 'DNSBL';
        const reason = named?.txt ? `; ${named.txt}` : '';
        return {
          action: `554 5.7.1 Service unavailable; Client host [${ctx.clientAddress}] blocked using ${zone}${reason}`,
          reason: `DNSBL ${listNames(t)} (score ${t.score} >= ${t.threshold})`,
        };
      });
    },
  };
}

/** Step 9: a client listed in the second DNSWL tier skips greylisting (DUNNO). */
export function createDnswlCheck(checker: DnsListChecker): Check {
  return {
    step: 9,
    name: 'dnswl',
    prepare: (ctx) => checker.prepare(ctx),
    run(ctx: CheckContext): CheckResult | null | Promise<CheckResult | null> {
      if (checker.listsOf('allow').length === 0) return null;
      return checker.withTier(ctx, 'allow', (t) => (t.reached ? { action: 'DUNNO', reason: `DNSWL ${listNames(t)}${scoreNote(t)}, greylisting skipped` } : null));
    },
  };
}

/** Steps 7, 8 and 9 in pipeline order. */
export function createDnsListChecks(checker: DnsListChecker, replyNames: ReadonlyMap<string, string> = new Map()): Check[] {
  return [createTrustedDnswlCheck(checker), createDnsblCheck(checker, replyNames), createDnswlCheck(checker)];
}

/** The listing list with the largest weight; the first of equals in configuration order. */
function largestContribution(t: DnsListTierResult): DnsListResult | undefined {
  let best: DnsListResult | undefined;
  for (const r of t.listed) if (!best || r.list.weight > best.list.weight) best = r;
  return best;
}

function listNames(t: DnsListTierResult): string {
  return t.listed.map((r) => `${r.list.name} (${r.matched.join(', ')})`).join(', ');
}

function scoreNote(t: DnsListTierResult): string {
  return t.threshold > 1 ? ` (score ${t.score} >= ${t.threshold})` : '';
}
