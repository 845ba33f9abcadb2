// Assembles the 11-step decision pipeline (the user's order: HELO, sender, recipients, known
// networks, SASL, trusted DNSWL, DNSBL, DNSWL, greylisting, accept) from plain settings.
// Called by src/main.ts at start and on reload; it reads table files but opens no sockets.
import type { ResolveCachedFn, ResolveFn } from '../dns/resolver-api.js';
import type { GreylistStore } from '../store/greylist-types.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/logger.js';
import { moduleLogger } from '../util/logger.js';
import { createHeloChecks } from './checks/helo-check.js';
import { createDnsListChecks } from './checks/dns-list-checks.js';
import { createGreylistCheck, type GreylistCheck, type GreylistReply } from './checks/greylist-check.js';
import { KnownNetworksCheck } from './checks/known-networks-check.js';
import { RecipientCheck } from './checks/recipient-check.js';
import { SaslCheck } from './checks/sasl-check.js';
import { SenderCheck } from './checks/sender-check.js';
import { DnsListChecker } from './dns-lists.js';
import type { GreylistConfig } from './greylist.js';
import { PolicyPipeline } from './pipeline.js';
import { CidrTable } from './tables/cidr-table.js';
import { PostgreyWhitelist } from './tables/postgrey-whitelist.js';
import { RecipientTable } from './tables/recipient-table.js';
import type { Check } from './types.js';
import { parseReplyName } from './dns-list-spec.js';

export interface PolicySettings {
  budgetMs: number;
  heloMustResolve: boolean;
  /** Step 2 rejects single-label HELO names (Postfix reject_non_fqdn_helo_hostname). */
  heloRequireFqdn: boolean;
  recipientFiles: string[];
  recipientDelimiter: string;
  knownNetworks: string[];
  knownNetworkFiles: string[];
  dnswlTrusted: string[];
  dnsbl: string[];
  /** ZONE=SHOWN: the name a reject shows for a DNSBL zone (postscreen_dnsbl_reply_map). */
  dnsblReplyNames?: string[];
  dnsblThreshold: number;
  dnswl: string[];
  dnsListBudgetMs: number;
  greylist: boolean;
  greylistConfig: GreylistConfig;
  /** --greylist-action and --greylist-text (default DEFAULT_GREYLIST_REPLY). */
  greylistReply?: GreylistReply;
  whitelistClientFiles: string[];
  whitelistRecipientFiles: string[];
  xGreylistHeader: boolean;
}

export interface PolicyDeps {
  resolve: ResolveFn;
  /** The resolver's synchronous cache look, for DNS list answers that are cached (optional). */
  resolveCached?: ResolveCachedFn;
  store: GreylistStore;
  clock: Clock;
  logger: Logger;
  /** This node's id, or a getter when it is known only once the store opens. */
  nodeId: string | (() => string);
  version: string;
  /** This host's name, for the X-Greylist header. */
  hostname?: string;
}

export interface PolicyService {
  pipeline: PolicyPipeline;
  dnsLists: DnsListChecker;
  greylistCheck: GreylistCheck | null;
  checks: Check[];
}

/** Builds every step from the settings; table files are read here (errors carry file:line). */
export async function createPolicyService(s: PolicySettings, deps: PolicyDeps): Promise<PolicyService> {
  const log = (m: string): Logger => moduleLogger(deps.logger, m);
  const recipientTables = s.recipientFiles.length > 0 ? [await RecipientTable.load(s.recipientFiles)] : [];
  const inline = CidrTable.parse(s.knownNetworks.map((c) => `${c} OK`).join('\n'), 'known-network');
  const fromFiles = s.knownNetworkFiles.length > 0 ? await CidrTable.load(s.knownNetworkFiles) : null;
  // One table, inline values first, each entry keeping its own source and line for the log.
  const known = fromFiles ? new CidrTable([...inline.list(), ...fromFiles.list()]) : inline;

  const lookupBudgetMs = effectiveListBudgetMs(s.dnsListBudgetMs, s.budgetMs);
  if (lookupBudgetMs < s.dnsListBudgetMs) {
    log('policy.dns-lists').warn({ dnsListBudgetMs: s.dnsListBudgetMs, policyBudgetMs: s.budgetMs, effectiveMs: lookupBudgetMs }, 'dns-list-budget-ms does not fit within policy-budget-ms (less 100 ms): the DNS lists get less time');
  }
  const dnsLists = new DnsListChecker({
    resolve: deps.resolve,
    ...(deps.resolveCached ? { resolveCached: deps.resolveCached } : {}),
    clock: deps.clock,
    logger: log('policy.dns-lists'),
    trusted: s.dnswlTrusted,
    blocklists: s.dnsbl,
    allowlists: s.dnswl,
    blockThreshold: s.dnsblThreshold,
    lookupBudgetMs,
  });
  const whitelist = s.greylist ? await PostgreyWhitelist.load(s.whitelistClientFiles, s.whitelistRecipientFiles) : null;
  // Lines postgrey would also skip: said once per load (start and every reload), with file:line.
  for (const w of whitelist?.warnings ?? []) log('policy.greylist').warn({ file: w.source, line: w.line }, `whitelist ${w.source}:${w.line}: ${w.message}; line ignored`);
  const greylistCheck = whitelist
    ? createGreylistCheck({
        store: deps.store,
        logger: log('policy.greylist'),
        config: s.greylistConfig,
        nodeId: deps.nodeId,
        version: deps.version,
        ...(deps.hostname ? { hostname: deps.hostname } : {}),
        whitelist,
        xGreylistHeader: s.xGreylistHeader,
        ...(s.greylistReply ? { reply: s.greylistReply } : {}),
        clock: deps.clock,
      })
    : null;
  const checks: Check[] = [
    // The HELO lookup runs beside the DNS lists (both start in prepare) and within the same budget.
    ...createHeloChecks({ mustResolve: s.heloMustResolve, requireFqdn: s.heloRequireFqdn, resolve: deps.resolve, logger: log('policy.helo'), lookupBudgetMs }),
    new SenderCheck(),
    new RecipientCheck(recipientTables, { delimiter: s.recipientDelimiter }),
    new KnownNetworksCheck(known),
    new SaslCheck(),
    ...createDnsListChecks(dnsLists, replyNames(s.dnsblReplyNames ?? [])),
    ...(greylistCheck ? [greylistCheck] : []),
  ];
  const pipeline = new PolicyPipeline(checks, deps.clock, log('policy'), { budgetMs: s.budgetMs });
  return { pipeline, dnsLists, greylistCheck, checks };
}

/** The time the DNS lists get: dns-list-budget-ms, within the decision's budget less 100 ms for the rest of it (at least 50 ms). */
export function effectiveListBudgetMs(listBudgetMs: number, policyBudgetMs: number): number {
  return Math.min(listBudgetMs, Math.max(50, policyBudgetMs - 100));
}

/** dnsbl-reply-name values (validated ZONE=SHOWN) as a map from the canonical zone to the name shown. */
function replyNames(values: readonly string[]): Map<string, string> {
  return new Map(values.map((v) => {
    const { zone, shown } = parseReplyName(v);
    return [zone, shown];
  }));
}
