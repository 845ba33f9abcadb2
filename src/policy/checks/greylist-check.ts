// Policy step 10 (DESIGN.md s3): postgrey-style greylisting. Whitelisted client or recipient ->
// DUNNO; otherwise one store transaction runs decideGreylist (greylist.ts) and the verdict becomes the
// greylist action (DEFER_IF_PERMIT), DUNNO or a once-per-message PREPEND X-Greylist. Built by the pipeline.
// It must not throw or hold mail back when the store fails: that is DUNNO ("fail open"), logged and
// counted, like Postfix's smtpd_policy_service_default_action = DUNNO.
import type { Logger } from '../../util/logger.js';
import { describeError } from '../../util/errors.js';
import { systemClock, type Clock } from '../../util/clock.js';
import { RateLimitedLog } from '../../util/rate-limited-log.js';
import { parseAddress } from '../../util/cidr.js';
import type { Decided, GreylistStore } from '../../store/greylist-types.js';
import type { Check, CheckContext, CheckResult } from '../types.js';
import { clientKey, decideGreylist, tripletKey, type GreylistConfig, type GreylistDecision } from '../greylist.js';
import { PostgreyWhitelist } from '../tables/postgrey-whitelist.js';
import { clipLogValue } from '../../util/log-value.js';

export interface GreylistCheckOptions {
  store: GreylistStore;
  logger: Logger;
  config: GreylistConfig;
  /** This node's id for the per-node pass counters (replication). */
  nodeId: string | (() => string);
  /** mxsentry version for the X-Greylist header. */
  version: string;
  /** This host's name for the X-Greylist header (which MX delayed the mail), as postgrey's %h. */
  hostname?: string;
  whitelist?: PostgreyWhitelist;
  /** Add `X-Greylist: delayed N seconds by mxsentry-<version> at <hostname>; <date>` on a triplet's first pass. */
  xGreylistHeader?: boolean;
  /** The deferral's action and text (default DEFAULT_GREYLIST_REPLY). */
  reply?: GreylistReply;
  /** Message instances remembered to prepend the header once per message; default 1024. */
  instanceCacheSize?: number;
  /** Clock of the fail-open warning's rate limit (default the system clock). */
  clock?: Clock;
}

/** Counters since start. */
export interface GreylistCheckStats {
  deferred: number;
  passed: number;
  autoWhitelisted: number;
  whitelisted: number;
  skipped: number;
  storeFailures: number;
}

const FAIL_OPEN_REASON = 'greylist store unavailable: fail open';

/** postgrey's --greylist-action and --greylist-text. */
export interface GreylistReply {
  /** A deferring Postfix access(5) action: DEFER_IF_PERMIT, DEFER_IF_REJECT, DEFER or 4NN. */
  action: string;
  /** %s: seconds left; %r: the recipient's domain. */
  text: string;
}

export const DEFAULT_GREYLIST_REPLY: Readonly<GreylistReply> = { action: 'DEFER_IF_PERMIT', text: 'Greylisted by mxsentry, try again in %s seconds' };

/**
 * The action of a deferral, as postgrey builds it: the text with %s (seconds left) and %r (the
 * recipient's domain, reduced to the characters of a domain or address literal, since it is the
 * client's input going into an SMTP reply) replaced, after "4.2.0 " unless the configured text
 * starts with a digit (its own status code). Like postgrey, that is decided on the text as written,
 * before the substitutions: "%s seconds left" gets "4.2.0 " although its reply starts with a digit.
 * postgrey replaces the first %s and %r only; every one is replaced here.
 */
export function greylistAction(reply: GreylistReply, retryAfterSec: number, recipient: string): string {
  const domain = recipient.slice(recipient.lastIndexOf('@') + 1).replace(/[^A-Za-z0-9.:[\]-]/g, '');
  const text = reply.text.replace(/%s/g, String(retryAfterSec)).replace(/%r/g, domain);
  return `${reply.action} ${/^[0-9]/.test(reply.text) ? '' : '4.2.0 '}${text}`;
}

/** The step 10 check with its counters. */
export interface GreylistCheck extends Check {
  stats(): GreylistCheckStats;
}

/** Builds step 10 ('greylist'). */
export function createGreylistCheck(opts: GreylistCheckOptions): GreylistCheck {
  const whitelist = opts.whitelist ?? PostgreyWhitelist.empty();
  const instances = new InstanceSet(opts.instanceCacheSize ?? 1024);
  const stats: GreylistCheckStats = { deferred: 0, passed: 0, autoWhitelisted: 0, whitelisted: 0, skipped: 0, storeFailures: 0 };
  const { store, logger, config } = opts;
  // The node id may only be known once the store has opened (it lives in the store's meta table).
  const nodeIdOf = typeof opts.nodeId === 'function' ? opts.nodeId : (): string => opts.nodeId as string;

  // The decision line already says so for each request; this one carries the cause, at most once a
  // second (with the number left out), so a store down on a busy MX does not double the log.
  const failOpenLog = new RateLimitedLog(logger, opts.clock ?? systemClock, 1);
  // Postfix always sends the client's address: a request without one is malformed (DESIGN: DUNNO
  // and a warning), at most once a second as well.
  const badClientLog = new RateLimitedLog(logger, opts.clock ?? systemClock, 1);
  const failOpen = (ctx: CheckContext, err: unknown): CheckResult => {
    stats.storeFailures++;
    failOpenLog.log('warn', { clientAddress: ctx.clientAddress, err: err === undefined ? 'store reports unhealthy' : describeError(err) }, FAIL_OPEN_REASON);
    return { action: 'DUNNO', reason: FAIL_OPEN_REASON };
  };

  // `mxsentry check` (record false) looks without remembering, so it changes nothing.
  const isNewInstance = (instance: string | undefined, record: boolean): boolean => {
    if (instance === undefined || instance === '') return true;
    return record ? instances.add(instance) : !instances.has(instance);
  };

  return {
    step: 10,
    name: 'greylist',
    stats: () => ({ ...stats }),
    // Synchronous when recording a decision that changes nothing (most repeats), so it never
    // waits for a timer or a commit.
    run(ctx: CheckContext): CheckResult | Promise<CheckResult> {
      const req = ctx.request;
      const clientName = req['client_name'] ?? '';
      const recipient = req['recipient'] ?? '';
      const sender = req['sender'] ?? '';
      if (!parseAddress(ctx.clientAddress)) {
        stats.skipped++;
        badClientLog.log('warn', { clientAddress: clipLogValue(req['client_address']) ?? null, queueId: clipLogValue(req['queue_id']) ?? null }, 'policy request whose client_address is not an IP address (Postfix sends "unknown" when an XCLIENT or proxy client withheld it): greylisting skipped, DUNNO');
        return { action: 'DUNNO', reason: 'greylisting skipped: no client IP address' };
      }
      if (recipient === '') {
        stats.skipped++;
        return { action: 'DUNNO', reason: 'greylisting skipped: no recipient' };
      }
      const wlClient = whitelist.matchClient(clientName, ctx.clientAddress);
      if (wlClient !== undefined) {
        stats.whitelisted++;
        return { action: 'DUNNO', reason: `greylist client whitelist: ${wlClient}` };
      }
      const wlRecipient = whitelist.matchRecipient(recipient);
      if (wlRecipient !== undefined) {
        stats.whitelisted++;
        return { action: 'DUNNO', reason: `greylist recipient whitelist: ${wlRecipient}` };
      }
      if (!store.isHealthy()) return failOpen(ctx, undefined);

      const tKey = tripletKey(ctx.clientAddress, sender, recipient, config);
      const cKey = clientKey(ctx.clientAddress);
      let decided: Decided<GreylistDecision>;
      try {
        // Not recording (`mxsentry check`): a dry run, which fails (open) where the decision would.
        decided = store.decideNow(tKey, cKey, (triplet, client) => {
          const d = decideGreylist(triplet, client, ctx.nowMs, config, nodeIdOf());
          return { update: d.update, result: d };
        }, { dryRun: !ctx.record });
      } catch (err) {
        return failOpen(ctx, err);
      }
      // An answer that changed the greylist waits for its commit (shared with every decision of the
      // same moment), so no answered decision is lost in a crash; one that changed nothing does not.
      if (!decided.written) return verdictOf(ctx, tKey, cKey, decided.result);
      return decided.written.then(
        () => verdictOf(ctx, tKey, cKey, decided.result),
        (err: unknown) => failOpen(ctx, err),
      );
    },
  };

  function verdictOf(ctx: CheckContext, tKey: string, cKey: string, decision: GreylistDecision): CheckResult {
    const req = ctx.request;
    if (decision.verdict === 'whitelisted') {
      stats.autoWhitelisted++;
      return { action: 'DUNNO', reason: `greylist client auto-whitelisted (${decision.clientPasses} passes)` };
    }
    if (decision.verdict === 'defer') {
      stats.deferred++;
      return {
        action: greylistAction(opts.reply ?? DEFAULT_GREYLIST_REPLY, decision.retryAfterSec, req['recipient'] ?? ''),
        // postgrey's reasons: "new" for a first sight, "early-retry" for a retry within the delay.
        reason: `greylisted ${tKey} (${decision.newTriplet ? 'new' : 'early retry'}, ${decision.retryAfterSec}s to wait)`,
      };
    }
    stats.passed++;
    // postgrey logs "whitelisted: name[ip]" when a client reaches the count: here it ends the reason.
    const reached = config.autoWhitelistClients > 0 && decision.update.client !== undefined && decision.clientPasses === config.autoWhitelistClients;
    const whitelistedNow = reached ? `; client ${cKey} auto-whitelisted after ${decision.clientPasses} passes` : '';
    // postgrey adds the header once per message (is_new_instance): a message to several
    // recipients has one `instance` value; a missing instance counts as new, as in postgrey.
    if (opts.xGreylistHeader && decision.firstPass && isNewInstance(req['instance'], ctx.record)) {
      return {
        action: `PREPEND X-Greylist: delayed ${decision.delayedSec} seconds by mxsentry-${opts.version}${opts.hostname ? ` at ${opts.hostname}` : ''}; ${rfc5322Date(ctx.nowMs)}`,
        reason: `greylist passed ${tKey} after ${decision.delayedSec}s${whitelistedNow}`,
      };
    }
    return {
      action: 'DUNNO',
      reason: decision.firstPass ? `greylist passed ${tKey} after ${decision.delayedSec}s${whitelistedNow}` : `greylist triplet known ${tKey}`,
    };
  }
}

/** A bounded set of recent message instances (insertion order, oldest evicted). */
class InstanceSet {
  private readonly seen = new Set<string>();
  constructor(private readonly capacity: number) {}

  has(instance: string): boolean {
    return this.seen.has(instance);
  }

  /** Adds the instance; false when it was already there. */
  add(instance: string): boolean {
    if (this.seen.has(instance)) return false;
    // A copy: the parser's values may be slices of a whole read, which a kept slice would hold alive.
    this.seen.add(Buffer.from(instance, 'utf8').toString('utf8'));
    if (this.seen.size > this.capacity) {
      const oldest = this.seen.values().next();
      if (!oldest.done) this.seen.delete(oldest.value);
    }
    return true;
  }
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** RFC 5322 s3.3 date-time in UTC, e.g. "Tue, 14 Nov 2023 22:13:20 +0000". */
export function rfc5322Date(ms: number): string {
  const d = new Date(ms);
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${DAYS[d.getUTCDay()]}, ${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ` +
    `${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}
