// Greylisting rules for policy step 10, following postgrey 1.37 (smtpd_access_policy,
// do_sender_substitutions, do_client_substitutions): triplet keys and the decision on stored
// records. Pure functions of their arguments; called by checks/greylist-check.ts inside the
// store's transaction. It must not do I/O, read a clock or keep state.
import { createHash } from 'node:crypto';
import { formatAddress, parseAddress } from '../util/cidr.js';
import { PolicyError } from '../util/errors.js';
import { isDeletedTriplet, isExpiredRecord, totalPasses, type ClientRecord, type GreylistUpdate, type TripletRecord } from '../store/greylist-types.js';

/** Greylisting parameters, named after postgrey's options. */
export interface GreylistConfig {
  /** --delay: seconds a new triplet must wait before a retry passes. */
  delaySec: number;
  /** --retry-window: a triplet not retried successfully within it starts over. */
  retryWindowSec: number;
  /** --max-age: triplets and clients not seen for longer are forgotten. */
  maxAgeSec: number;
  /** --auto-whitelist-clients: passes after which a client skips greylisting; 0 = off. */
  autoWhitelistClients: number;
  /** --lookup-by-host: key on the full client address instead of its network. */
  lookupByHost: boolean;
  /** --ipv4cidr: IPv4 network prefix of the triplet (default 24). */
  ipv4Prefix: number;
  /** --ipv6cidr: IPv6 network prefix of the triplet (default 64). */
  ipv6Prefix: number;
}

/** Defaults: postgrey's, except the 60 s delay of the user's setup (postgrey: 300 s). */
export const DEFAULT_GREYLIST_CONFIG: Readonly<GreylistConfig> = {
  delaySec: 60,
  retryWindowSec: 2 * 86_400,
  maxAgeSec: 35 * 86_400,
  autoWhitelistClients: 5,
  lookupByHost: false,
  ipv4Prefix: 24,
  ipv6Prefix: 64,
};

/** postgrey counts at most one pass per client per hour towards the auto-whitelist. */
export const CLIENT_COUNT_INTERVAL_MS = 3_600_000;

/**
 * A triplet that passed before is written again (last seen, its pass counted) at most once per
 * this interval, like the client counts: later passes within it change nothing, so mail from a
 * known sender needs no write and no commit wait. Last seen then lags by at most this much, next
 * to a max-age of days.
 */
export const TRIPLET_TOUCH_INTERVAL_MS = 3_600_000;

/** The outcome of one greylist decision and the records to write. */
export interface GreylistDecision {
  verdict: 'defer' | 'pass' | 'whitelisted';
  /** Seconds until a retry can pass (defer only; postgrey's %s), else 0. */
  retryAfterSec: number;
  /** Seconds the triplet was held back before this first pass, else 0. */
  delayedSec: number;
  /** True for the first accepted retry of a triplet (the moment for an X-Greylist header). */
  firstPass: boolean;
  /** The client's counted passes after this decision (towards autoWhitelistClients), for the log. */
  clientPasses: number;
  /** A defer of a triplet first seen now (unknown, forgotten or deleted), not an early retry. */
  newTriplet: boolean;
  update: GreylistUpdate;
}

/** Options for tripletKey; prefixes default to postgrey's /24 and /64. */
export interface TripletKeyOptions {
  lookupByHost: boolean;
  ipv4Prefix?: number;
  ipv6Prefix?: number;
}

/**
 * Longest triplet key in bytes kept as it is: the store's key limit (greylist-types.ts, GreylistStore).
 * Postfix accepts recipients far longer than any real mailbox, and such a key used to be refused.
 */
export const MAX_TRIPLET_KEY_BYTES = 1000;

/**
 * The triplet key "client-net/sender/recipient" as postgrey builds it (lower case): the client's
 * /24 (IPv4) or /64 (IPv6) network address, or the full address with lookupByHost; the normalised
 * sender; the recipient. A key over MAX_TRIPLET_KEY_BYTES keeps its beginning (for `greylist list
 * --prefix`) and ends in "~sha256:" and the digest of the whole key, so it stays one key per
 * triplet, the same on every node. Throws POLICY_ERR_BAD_ADDRESS when clientAddress is not an IP address.
 */
export function tripletKey(clientAddress: string, sender: string, recipient: string, opts: TripletKeyOptions): string {
  const key = `${clientNetwork(clientAddress, opts)}/${normaliseSender(sender)}/${recipient.trim().toLowerCase()}`;
  if (key.length * 3 <= MAX_TRIPLET_KEY_BYTES || Buffer.byteLength(key, 'utf8') <= MAX_TRIPLET_KEY_BYTES) return key;
  const suffix = `~sha256:${createHash('sha256').update(key, 'utf8').digest('hex')}`;
  let headBytes = 0;
  let headEnd = 0;
  // Cut between characters, never inside a UTF-8 sequence.
  for (const ch of key) {
    const n = Buffer.byteLength(ch, 'utf8');
    if (headBytes + n > MAX_TRIPLET_KEY_BYTES - suffix.length) break;
    headBytes += n;
    headEnd += ch.length;
  }
  return `${key.slice(0, headEnd)}${suffix}`;
}

/** The client part of the triplet: network address (postgrey's do_client_substitutions) or host. */
export function clientNetwork(clientAddress: string, opts: TripletKeyOptions): string {
  const addr = parseAddress(clientAddress);
  if (!addr) throw new PolicyError('POLICY_ERR_BAD_ADDRESS', `not an IP address: "${clientAddress}"`);
  const prefix = opts.lookupByHost
    ? addr.family === 4 ? 32 : 128
    : addr.family === 4 ? opts.ipv4Prefix ?? 24 : opts.ipv6Prefix ?? 64;
  const bytes = Uint8Array.from(addr.bytes);
  for (let i = 0; i < bytes.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    bytes[i] = (bytes[i] ?? 0) & ((0xff << (8 - bits)) & 0xff);
  }
  return formatAddress(addr.family, bytes);
}

/** The client auto-whitelist key: the full address in canonical form (postgrey: $ip->addr). */
export function clientKey(clientAddress: string): string {
  const addr = parseAddress(clientAddress);
  if (!addr) throw new PolicyError('POLICY_ERR_BAD_ADDRESS', `not an IP address: "${clientAddress}"`);
  return formatAddress(addr.family, addr.bytes);
}

/**
 * Normalises an envelope sender so one sender keeps one triplet across messages:
 * SRS0/SRS1 forwarding addresses are unwrapped to the original sender; BATV (`prvs=`, `msprvs1=`,
 * `btv1==`) tags removed; a `+extension` stripped; whole numbers in the local part become '#'
 * (postgrey's `s/\b\d+\b/#/g`, for VERP and bounce ids: `bounce-123-456` -> `bounce-#-#`, while
 * `user2` stays distinct from `user3`); everything lower case. The null sender stays ''.
 */
export function normaliseSender(sender: string): string {
  const s = sender.trim();
  const at = s.lastIndexOf('@');
  if (at < 0) return s.toLowerCase();
  let local = s.slice(0, at);
  let domain = s.slice(at + 1);

  // SRS (Shevek's Sender Rewriting Scheme, as in libsrs2/postsrsd):
  //   SRS0=HHH=TT=orig-domain=orig-local@forwarder
  //   SRS1=HHH=first-forwarder==HHH=TT=orig-domain=orig-local@forwarder
  // The separator after SRS0/SRS1 may be '=', '+' or '-'; orig-local may itself contain '='.
  const srs1 = /^srs1[=+-][^=]+=[^=]+=[=+-]([^=]+)=([^=]+)=([^=]+)=(.+)$/i.exec(local);
  const srs0 = srs1 ? null : /^srs0[=+-]([^=]+)=([^=]+)=([^=]+)=(.+)$/i.exec(local);
  const srs = srs1 ?? srs0;
  if (srs && srs[3] && srs[4]) {
    domain = srs[3];
    local = srs[4];
  }

  local = stripBatv(local);
  // postgrey: "strip extension, used sometimes for mailing-list VERP".
  local = local.replace(/\+.*$/, '');
  local = local.replace(/\b\d+\b/g, '#');
  return `${local}@${domain}`.toLowerCase();
}

function stripBatv(local: string): string {
  // Barracuda: btv1==tag==user
  const btv = /^btv1==[^=]+==(.+)$/i.exec(local);
  if (btv && btv[1]) return btv[1];
  // BATV (draft-levine-smtp-batv-01 s4.1) is prvs=tag-val=loc-core, but some senders write
  // prvs=loc-core=tag-val; like postgrey, pick the part that does not look like a 10-char tag.
  const m = /^(?:prvs|msprvs1)=/i.exec(local);
  if (!m) return local;
  const parts = local.split('=');
  if (parts.length !== 3) return local;
  const a = parts[1] ?? '';
  const b = parts[2] ?? '';
  const tag = /^[0-9a-z]{10}/i;
  if (tag.test(a) && !tag.test(b)) return b;
  if (tag.test(b) && !tag.test(a)) return a;
  return b;
}

/**
 * postgrey's decision on the stored records (smtpd_access_policy), at time nowMs. `triplet` and
 * `client` are what the store holds (undefined when unknown); the returned update holds the
 * records to write (absent = leave as is). nodeId names this node's per-node pass counters.
 *
 * - A client with >= autoWhitelistClients counted passes is 'whitelisted' (its count grows by one
 *   per hour of activity, as postgrey's "for statistics").
 * - A triplet unseen, or not seen for maxAge, or never passed and first seen (or last seen) more than
 *   retryWindow ago, starts over: first = last = now, 'defer'.
 * - Otherwise 'defer' while now - first < delay (last updated), and 'pass' once the delay is over.
 *   The first pass of a triplet counts one pass for the client, at most one per hour. A later pass
 *   updates the triplet (last seen, its pass count) at most once per TRIPLET_TOUCH_INTERVAL_MS.
 */
export function decideGreylist(
  triplet: TripletRecord | undefined,
  client: ClientRecord | undefined,
  nowMs: number,
  cfg: GreylistConfig,
  nodeId: string,
): GreylistDecision {
  const delayMs = cfg.delaySec * 1000;
  const maxAgeMs = cfg.maxAgeSec * 1000;
  const liveClient = client && !isExpiredRecord('client', client, nowMs, maxAgeMs, Infinity) ? client : undefined;
  const clientPasses = liveClient ? totalPasses(liveClient.passes) : 0;

  if (cfg.autoWhitelistClients > 0 && liveClient && clientPasses >= cfg.autoWhitelistClients) {
    const update: GreylistUpdate = {};
    // postgrey: count on for statistics at most hourly; also repair a last-counted in the future.
    if (nowMs >= liveClient.lastCountedMs + CLIENT_COUNT_INTERVAL_MS || liveClient.lastCountedMs > nowMs) {
      update.client = countPass(liveClient, nowMs, nodeId);
    }
    const after = update.client ? clientPasses + 1 : clientPasses;
    return { verdict: 'whitelisted', retryAfterSec: 0, delayedSec: 0, firstPass: false, clientPasses: after, newTriplet: false, update };
  }

  let current = triplet;
  // A triplet that starts over gets the next epoch, so replicas holding the old generation cannot
  // merge its first-seen or passed-at back (greylist-types.ts mergeTriplet).
  const nextEpoch = (triplet?.epoch ?? 0) + 1;
  // A triplet an admin deleted is forgotten: the next attempt starts over, in a new epoch.
  if (current && isDeletedTriplet(current)) current = undefined;
  // max-age applies to every triplet; the retry window only to triplets that never passed
  // (postgrey's maintenance rules, the same the expiry sweep applies: "now - last"). A decision
  // also starts a never-passed triplet over when the retry comes more than the window after it was
  // first seen, as postgrey decides ("now - first"), however recent its early retries were.
  const retryWindowMs = cfg.retryWindowSec * 1000;
  if (current && isExpiredRecord('triplet', current, nowMs, maxAgeMs, retryWindowMs)) current = undefined;
  if (current && current.passedAtMs === 0 && nowMs - current.firstSeenMs > retryWindowMs) current = undefined;

  // Unknown or forgotten: a fresh record, first = last = now; with a zero delay it passes at once.
  const newTriplet = current === undefined;
  current ??= triplet ? { firstSeenMs: nowMs, lastSeenMs: nowMs, passedAtMs: 0, passes: {}, epoch: nextEpoch } : { firstSeenMs: nowMs, lastSeenMs: nowMs, passedAtMs: 0, passes: {} };

  // postgrey: "correcting date for first seen in the future".
  const firstSeenMs = Math.min(current.firstSeenMs, nowMs);
  const waitedMs = nowMs - firstSeenMs;
  if (current.passedAtMs === 0 && waitedMs < delayMs) {
    return {
      verdict: 'defer',
      // postgrey's %s: seconds still missing (at least 1 while deferring).
      retryAfterSec: Math.max(1, Math.ceil((delayMs - waitedMs) / 1000)),
      delayedSec: 0,
      firstPass: false,
      clientPasses,
      newTriplet,
      update: { triplet: { ...current, firstSeenMs, lastSeenMs: Math.max(current.lastSeenMs, nowMs) } },
    };
  }

  const firstPass = current.passedAtMs === 0;
  // A last seen ahead of this clock (another node's, clamped on receipt) counts as recent too.
  if (!firstPass && firstSeenMs === current.firstSeenMs && nowMs - current.lastSeenMs < TRIPLET_TOUCH_INTERVAL_MS) {
    return { verdict: 'pass', retryAfterSec: 0, delayedSec: 0, firstPass, clientPasses, newTriplet: false, update: {} };
  }
  const update: GreylistUpdate = {
    triplet: {
      // The generation is kept: without it the pass would merge as epoch 0 and lose to the stored one.
      ...(current.epoch ? { epoch: current.epoch } : {}),
      firstSeenMs,
      lastSeenMs: Math.max(current.lastSeenMs, nowMs),
      passedAtMs: firstPass ? nowMs : current.passedAtMs,
      passes: { ...current.passes, [nodeId]: (current.passes[nodeId] ?? 0) + 1 },
    },
  };
  let newClientPasses = clientPasses;
  if (cfg.autoWhitelistClients > 0 && firstPass) {
    if (!liveClient || nowMs >= liveClient.lastCountedMs + CLIENT_COUNT_INTERVAL_MS) {
      update.client = liveClient ? countPass(liveClient, nowMs, nodeId) : { firstSeenMs: nowMs, lastSeenMs: nowMs, lastCountedMs: nowMs, passes: { [nodeId]: 1 } };
      newClientPasses++;
    }
  }
  return {
    verdict: 'pass',
    retryAfterSec: 0,
    delayedSec: firstPass ? Math.round(waitedMs / 1000) : 0,
    firstPass,
    clientPasses: newClientPasses,
    newTriplet: false,
    update,
  };
}

function countPass(c: ClientRecord, nowMs: number, nodeId: string): ClientRecord {
  return {
    firstSeenMs: c.firstSeenMs,
    lastSeenMs: Math.max(c.lastSeenMs, nowMs),
    lastCountedMs: nowMs,
    passes: { ...c.passes, [nodeId]: (c.passes[nodeId] ?? 0) + 1 },
  };
}
