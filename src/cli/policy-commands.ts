// `mxsentry check`, `mxsentry rbl` and `mxsentry greylist ...`: the admin's tools for "why was this
// mail rejected?". They run the same pipeline, resolver and store code as the daemon, in-process, on
// the daemon's configuration and store (daemon-config.ts); they never create a store, and `check`
// never writes to it. LMDB allows this next to a running daemon.
import type { LmdbGreylistStore } from '../store/lmdb-greylist-store.js';
import { hostname } from 'node:os';
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { createPolicyService } from '../policy/policy-service.js';
import { clientKey, tripletKey } from '../policy/greylist.js';
import type { KeyedRecord, ListOptions } from '../store/lmdb-greylist-store.js';
import { totalPasses, type GreylistStore } from '../store/greylist-types.js';
import { systemClock } from '../util/clock.js';
import { describeError } from '../util/errors.js';
import type { CliDeps } from './cli.js';
import { formatDuration } from '../config/format-value.js';
import { parseValue } from '../config/load.js';
import type { KeyDef } from '../config/schema.js';
import { parseAddress } from '../util/cidr.js';
import type { DnsListTier, DnsListTierResult } from '../policy/dns-lists.js';
import { addConfigFlags } from './config-flags.js';
import { EXIT_FAILED, usageError } from './control-cli.js';
import { commandLogger, loadDaemonConfig, offlineDnsStack, openDaemonStore } from './daemon-config.js';

interface CheckArgs {
  'client-address': string;
  helo: string;
  sender: string;
  recipient: string;
  'client-name'?: string;
  'sasl-username'?: string;
  json?: boolean;
}

export function checkCommand(deps: CliDeps): CommandModule<object, CheckArgs> {
  return {
    command: 'check',
    describe: 'Run the policy pipeline for one envelope and print the decision, the step and the reason (writes nothing)',
    builder: (y: Argv) =>
      addConfigFlags(
        y
          .option('client-address', { type: 'string', demandOption: true, describe: 'SMTP client IP address' })
          .option('helo', { type: 'string', default: '', describe: 'HELO/EHLO name ("" = none given)' })
          .option('sender', { type: 'string', default: '', describe: 'MAIL FROM address ("" or "<>" = null sender; <addr> as in the mail log)' })
          .option('recipient', { type: 'string', demandOption: true, describe: 'RCPT TO address (<addr> as in the mail log)' })
          .option('client-name', { type: 'string', describe: 'Reverse DNS name of the client (for whitelists)' })
          .option('sasl-username', { type: 'string', describe: 'SASL login name, if authenticated' })
          .option('json', { type: 'boolean', describe: 'Print JSON' }),
        { listed: false, shown: ['data-dir', 'root-hints', 'query-loopback'] },
      ) as unknown as Argv<CheckArgs>,
    handler: async (argv: ArgumentsCamelCase<CheckArgs>) => {
      // Postfix always sends an address; anything else would skip the DNS lists and greylisting.
      if (!parseAddress(argv['client-address'])) return usageError(`--client-address must be an IP address, got "${argv['client-address']}"`);
      const cfg = loadDaemonConfig(argv as Record<string, unknown>);
      if (!cfg) return;
      const v = cfg.values;
      const logger = commandLogger(argv as Record<string, unknown>);
      const settings = deps.policySettings(v);
      // Answering from no store (or a new empty one) would show every triplet as new: refuse instead.
      // One that is there but cannot be opened is answered as the daemon does: failing open.
      const opened = settings.greylist ? await openDaemonStore(cfg, logger, undefined, { failOpen: true, readOnly: true }) : null;
      if (settings.greylist && !opened) return;
      const storeProblem = opened !== null && 'failedOpen' in opened ? (opened as { failedOpen: string }).failedOpen : undefined;
      const store = storeProblem === undefined ? (opened as LmdbGreylistStore | null) : null;
      const dns = offlineDnsStack(() => deps.createDnsStack(v, logger, systemClock, { listZones: deps.listZonesOf(v) }));
      if (!dns) {
        await store?.close();
        return;
      }
      const policy = await createPolicyService(settings, {
        resolve: dns.resolver.resolve,
        resolveCached: dns.resolver.resolveCached,
        store: store ?? unavailableStore(storeProblem ?? 'greylisting is off'),
        clock: systemClock,
        logger,
        nodeId: store?.getNodeId() ?? 'cli',
        version: deps.version(),
        // As the daemon on this host: its X-Greylist header names the host.
        hostname: hostname(),
      });
      const request: Record<string, string> = {
        request: 'smtpd_access_policy',
        protocol_state: 'RCPT',
        protocol_name: 'ESMTP',
        client_address: argv['client-address'],
        client_name: argv['client-name'] ?? 'unknown',
        reverse_client_name: argv['client-name'] ?? 'unknown',
        helo_name: argv.helo,
        sender: envelopeAddress(argv.sender),
        recipient: envelopeAddress(argv.recipient),
        sasl_username: argv['sasl-username'] ?? '',
        instance: 'mxsentry-check',
      };
      // The daemon's self test at start: a list that lists 127.0.0.1 is ignored there, so here too
      // (and not when the daemon runs none: dns-list-selftest-interval 0).
      if ((v['dns-list-selftest-interval'] as number) > 0) await policy.dnsLists.selfTest();
      const d = await policy.pipeline.decide(request, { record: false });
      await store?.close();
      if (argv.json) process.stdout.write(`${JSON.stringify(d, null, 2)}\n`);
      else process.stdout.write(`action=${d.action}\nstep: ${d.step} (${d.stepName})\nreason: ${d.reason}\ntime: ${d.elapsedMs} ms\n`);
      // Exit codes: 0 accepted (DUNNO/OK/PREPEND), 1 rejected, 3 deferred.
      process.exitCode = /^(REJECT|5\d\d)/i.test(d.action) ? 1 : /^(DEFER|4\d\d)/i.test(d.action) ? 3 : 0;
    },
  };
}

/**
 * An address as Postfix hands it to the policy service: without the angle brackets of MAIL FROM /
 * RCPT TO and of its log's from=<...>, so "<>" is the null sender (sender=, empty).
 */
function envelopeAddress(text: string): string {
  const t = text.trim();
  return t.startsWith('<') && t.endsWith('>') ? t.slice(1, -1) : t;
}

interface RblArgs {
  ip: string;
  json?: boolean;
}

export function rblCommand(deps: CliDeps): CommandModule<object, RblArgs> {
  return {
    command: 'rbl <ip>',
    describe: 'Look an address up in every configured DNSWL/DNSBL: raw answers, TXT reason and verdict per list, score per tier',
    builder: (y: Argv) =>
      addConfigFlags(y.positional('ip', { type: 'string', demandOption: true, describe: 'The client IP address to look up' }).option('json', { type: 'boolean', describe: 'Print every list\'s result as JSON' }), { listed: false, shown: ['root-hints', 'query-loopback'] }) as unknown as Argv<RblArgs>,
    handler: async (argv: ArgumentsCamelCase<RblArgs>) => {
      if (!parseAddress(argv.ip)) return usageError(`rbl takes an IP address, got "${argv.ip}"`);
      const cfg = loadDaemonConfig(argv as Record<string, unknown>);
      if (!cfg) return;
      const v = cfg.values;
      // Nothing to ask is a configuration problem (2), not "not listed" (0): a script must not read it
      // as clean. Known from the configuration alone, before a resolver is built.
      const listZones = deps.listZonesOf(v);
      if (listZones.length === 0) return usageError('no DNSBL/DNSWL configured (dnsbl, dnswl-trusted, dnswl): nothing to look the address up in');
      const logger = commandLogger(argv as Record<string, unknown>);
      const dns = offlineDnsStack(() => deps.createDnsStack(v, logger, systemClock, { listZones }));
      if (!dns) return;
      const policy = await createPolicyService({ ...deps.policySettings(v), greylist: false }, { resolve: dns.resolver.resolve, store: unavailableStore('unused'), clock: systemClock, logger, nodeId: 'cli', version: deps.version() });
      // As the daemon: a list whose self test finds 127.0.0.1 listed is suspended (its answers
      // ignored), unless the daemon runs no self tests (dns-list-selftest-interval 0).
      if ((v['dns-list-selftest-interval'] as number) > 0) await policy.dnsLists.selfTest();
      const tiers = await policy.dnsLists.lookupAll(argv.ip);
      const results = tiers.flatMap((t) => t.results);
      const passedAtStep7 = tiers.some((t) => t.tier === 'trusted' && t.reached);
      if (argv.json) {
        process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
      } else {
        for (const r of results) {
          process.stdout.write(`${r.tier.padEnd(8)} ${r.list.name}\n  query:   ${r.queryName}\n  answers: ${r.addresses.join(' ') || '-'}${r.errors.length ? `\n  errors:  ${r.errors.join('; ')}` : ''}\n  txt:     ${r.txt ?? '-'}\n  verdict: ${r.verdict} (${r.detail})\n`);
        }
        for (const t of tiers) if (t.results.length > 0) process.stdout.write(`${tierSummary(t, passedAtStep7)}\n`);
      }
      // 1: the DNSBLs reject it (step 8: the weights of the listing lists reach dnsbl-threshold, as
      // postscreen_dnsbl_threshold) and no trusted DNSWL passed it at step 7 first; 3: they do not,
      // but some list could not be asked (a script must not read that as "clean"); 0: every list
      // answered and step 8 would not reject.
      const rejected = !passedAtStep7 && tiers.some((t) => t.tier === 'block' && t.reached);
      const unanswered = results.some((r) => r.verdict !== 'listed' && r.verdict !== 'not-listed');
      process.exitCode = rejected ? 1 : unanswered ? 3 : 0;
    },
  };
}

const TIER_OUTCOME: Record<DnsListTier, string> = {
  trusted: 'step 7 passes the client',
  block: 'step 8 rejects the client',
  allow: 'step 9 skips greylisting',
};

/**
 * One line per tier of `rbl`: the combined score against its threshold and what the step does; the
 * later tiers never act on a client a trusted DNSWL passed at step 7.
 */
export function tierSummary(t: DnsListTierResult, passedAtStep7 = false): string {
  const outcome = !t.reached ? 'below the threshold' : passedAtStep7 && t.tier !== 'trusted' ? `${TIER_OUTCOME[t.tier]}, but step 7 passed it first` : TIER_OUTCOME[t.tier];
  // Only step 8's threshold is a setting; the DNSWL tiers act on a total weight of 1 or more.
  const threshold = t.tier === 'block' ? `dnsbl-threshold ${t.threshold}` : `acts at ${t.threshold}`;
  return `${t.tier.padEnd(8)} score ${t.score} (${threshold}): ${outcome}`;
}

interface GreylistArgs {
  action: string;
  target?: string;
  prefix?: string;
  limit?: string;
  'older-than'?: string;
  json?: boolean;
}

/** Rows `greylist list|clients` print unless --limit says otherwise. */
export const DEFAULT_LIST_ROWS = 100;

/** Page size when reading more rows than that (the store caps one read). */
const LIST_PAGE = 10_000;

/**
 * Reads up to `limit` rows page by page and whether more exist beyond them (one row more is read
 * to know it).
 */
export async function listUpTo<R>(
  read: (opts: ListOptions) => Promise<KeyedRecord<R>[]>,
  opts: { prefix?: string; limit: number },
): Promise<{ rows: KeyedRecord<R>[]; more: boolean }> {
  const rows: KeyedRecord<R>[] = [];
  let startAfter: string | undefined;
  for (;;) {
    const want = Math.min(opts.limit + 1 - rows.length, LIST_PAGE);
    const page = await read({ ...(opts.prefix ? { prefix: opts.prefix } : {}), ...(startAfter !== undefined ? { startAfter } : {}), limit: want });
    rows.push(...page);
    if (page.length < want || rows.length > opts.limit) break;
    startAfter = page[page.length - 1]!.key;
  }
  const more = rows.length > opts.limit;
  return { rows: more ? rows.slice(0, opts.limit) : rows, more };
}

/** --older-than of `greylist purge`: a duration like max-age's (bare number: days), at least a minute. */
const OLDER_THAN: KeyDef = { key: 'older-than', kind: 'duration', unit: 'd', min: 60, max: 3650 * 86400, default: 0, group: 'greylist', description: '' };

/** The stderr note when a listing was cut off: how many were shown and how to see more. */
export function truncationNote(what: 'triplets' | 'clients', shown: number, total: number | undefined, prefix: string | undefined): string {
  const of = total !== undefined ? ` of ${total}` : prefix ? ` matching --prefix ${prefix}, and there are more` : ', and there are more';
  return `mxsentry: listed the first ${shown} ${what}${of}; --limit N lists more${prefix ? '' : ', --prefix P narrows'}\n`;
}

export function greylistCommand(): CommandModule<object, GreylistArgs> {
  return {
    command: 'greylist <action> [target]',
    describe: 'Greylist store of the daemon: list [--prefix P], clients, stats, purge (what max-age and retry-window expired, or --older-than), whitelist <ip>, delete <triplet-key> (on every node, through replication)',
    builder: (y: Argv) =>
      addConfigFlags(
        y
          .positional('action', { type: 'string', choices: ['list', 'clients', 'stats', 'purge', 'whitelist', 'delete'], demandOption: true })
          .positional('target', { type: 'string', describe: 'IP for whitelist, key for delete' })
          .option('prefix', { type: 'string', describe: 'Only keys starting with this (list, clients)' })
          .option('older-than', { type: 'string', nargs: 1, describe: 'purge: also records unseen this long (e.g. 12h, 7d; a bare number is days), when shorter than max-age' })
          .option('limit', { type: 'string', default: String(DEFAULT_LIST_ROWS), describe: 'At most this many rows (list, clients); a note on stderr says when there are more' })
          .option('json', { type: 'boolean', describe: 'Print JSON (one object, or one array for list and clients)' }),
        // The store is opened in its data folder, not reached through the daemon's control socket.
        { listed: false, shown: ['data-dir'] },
      ) as unknown as Argv<GreylistArgs>,
    handler: async (argv: ArgumentsCamelCase<GreylistArgs>) => {
      // A string, so a bad value is shown as typed ("abc", not yargs' NaN).
      const limitText = String(argv.limit ?? DEFAULT_LIST_ROWS).trim();
      const limit = /^\d+$/.test(limitText) ? Number(limitText) : NaN;
      if (!(Number.isSafeInteger(limit) && limit >= 1)) return usageError(`--limit must be a whole number of 1 or more, got "${limitText}"`);
      // A missing or unusable target is bad usage (exit 2), found before the store is opened.
      const targetProblem = greylistTargetProblem(argv.action, argv.target);
      if (targetProblem) return usageError(targetProblem);
      const cfg = loadDaemonConfig(argv as Record<string, unknown>);
      if (!cfg) return;
      const v = cfg.values;
      // list, clients and stats only read: the store is opened read-only, data.mdb left as it was.
      const readOnly = ['list', 'clients', 'stats'].includes(argv.action);
      const store = await openDaemonStore(cfg, commandLogger(argv as Record<string, unknown>), undefined, { readOnly });
      if (!store) return;
      const out = (x: unknown, text: string): void => {
        process.stdout.write(argv.json ? `${JSON.stringify(x, null, 2)}\n` : text);
      };
      // On stderr, so stdout stays the rows: an empty listing says so, a cut one how to see more.
      const listingNotes = (what: 'triplets' | 'clients', shown: number, more: boolean, total: number | undefined): void => {
        const matching = argv.prefix ? ` matching --prefix ${argv.prefix}` : '';
        if (shown === 0 && !argv.json) process.stderr.write(`no ${what === 'clients' ? 'client records' : what}${matching} in ${cfg.dataDir}\n`);
        if (more) process.stderr.write(truncationNote(what, shown, total, argv.prefix));
      };
      try {
        const listOpts = { ...(argv.prefix ? { prefix: argv.prefix } : {}), limit };
        switch (argv.action) {
          case 'list': {
            const { rows, more } = await listUpTo((o) => store.listTriplets({ ...o, liveOnly: true }), listOpts);
            out(rows, rows.map((r) => `${r.key}\tfirst ${iso(r.record.firstSeenMs)}\tlast ${iso(r.record.lastSeenMs)}\t${r.record.passedAtMs ? `passed ${iso(r.record.passedAtMs)}` : 'waiting'}\n`).join(''));
            // No total: the store's count includes tombstones (deleted triplets), which are not listed.
            listingNotes('triplets', rows.length, more, undefined);
            break;
          }
          case 'clients': {
            const { rows, more } = await listUpTo((o) => store.listClients(o), listOpts);
            out(rows, rows.map((r) => `${r.key}\tpasses ${totalPasses(r.record.passes)}\tlast ${iso(r.record.lastSeenMs)}\n`).join(''));
            listingNotes('clients', rows.length, more, more && !argv.prefix ? (await store.count()).clients : undefined);
            break;
          }
          case 'stats': {
            const c = await store.count();
            // Deleted triplets stay as tombstones (for the peers) until max-age: counted here, not listed.
            // The limit is store-map-size as this command read it; a daemon started with another
            // value (a flag, another file) enforces its own, which `mxsentry stats` shows.
            const limitFrom = argv['store-map-size'] !== undefined ? '--store-map-size' : cfg.file ?? 'the default';
            out(c, `store ${cfg.dataDir}\ntriplets ${c.triplets} (deleted ones included until they expire)\nclients ${c.clients}\nreplication log ${c.replogEntries}\nbytes used ${c.usedBytes} of ${c.limitBytes} (store-map-size of ${limitFrom}; the running daemon's own limit: mxsentry stats)\n`);
            break;
          }
          case 'purge': {
            // --older-than frees a full store sooner than max-age would (records unseen that long go).
            let ageSec = v['max-age'] as number;
            const olderThan = argv['older-than'];
            if (olderThan !== undefined) {
              try {
                // Also, never instead: a value above max-age must not spare what max-age expires.
                ageSec = Math.min(ageSec, parseValue(OLDER_THAN, String(olderThan)) as number);
              } catch (err) {
                usageError(`--older-than: ${describeError(err)}`);
                break;
              }
            }
            // As the daemon's sweep: never-passed triplets unseen for the retry window go too.
            const retryWindowSec = v['retry-window'] as number;
            const r = await store.purge(systemClock.nowMs(), ageSec * 1000, retryWindowSec * 1000);
            out(r, `purged ${r.triplets} triplets, ${r.clients} clients (${r.corrupt} corrupt records) unseen for ${formatDuration(OLDER_THAN, ageSec)}, or never passed and unseen for ${formatDuration(OLDER_THAN, retryWindowSec)}\n`);
            break;
          }
          case 'whitelist': {
            const target = argv.target as string;
            // The command raises the client's auto-whitelist count to the configured threshold:
            // with auto-whitelisting off, that record would whitelist nothing.
            const threshold = v['auto-whitelist-clients'] as number;
            if (threshold === 0) {
              usageError('auto-whitelist-clients is 0 (off), so a client record whitelists nothing; list the client in a whitelist-clients file instead');
              break;
            }
            const ck = clientKey(target);
            const rec = await store.whitelistClient(ck, threshold);
            out(rec, `client ${ck} whitelisted (${totalPasses(rec.passes)} passes, auto-whitelist-clients ${threshold}; kept while it sends mail at least every max-age)\n`);
            break;
          }
          case 'delete': {
            const given = argv.target as string;
            let key = given;
            let gone = await store.deleteTriplet(key);
            // Not stored as typed: try the key the daemon builds from those parts (the client's
            // network, lower case, the sender without its extension), as a key copied from a mail
            // log line (client address, mixed case) or from list's output (a trailing tab) reads.
            const built = gone ? undefined : keyAsDaemonBuilds(given, v);
            if (built !== undefined && built !== given) {
              key = built;
              gone = await store.deleteTriplet(key);
            }
            const which = key === given ? '' : ` (stored as ${key})`;
            const looked = key === given ? '' : ` (looked for ${given} and ${key})`;
            out({ deleted: gone, key }, gone ? `deleted${which}\n` : `no such triplet${looked}; 'mxsentry greylist list --prefix CLIENT-NETWORK' shows the stored keys\n`);
            if (!gone) process.exitCode = EXIT_FAILED;
            break;
          }
        }
      } catch (err) {
        process.stderr.write(`mxsentry: ${describeError(err)}\n`);
        process.exitCode = EXIT_FAILED;
      } finally {
        await store.close();
      }
    },
  };
}

/** Why the target of `greylist whitelist|delete` is unusable, or undefined when it is fine (or not needed). */
export function greylistTargetProblem(action: string, target: string | undefined): string | undefined {
  if (action === 'whitelist') {
    if (!target) return 'greylist whitelist needs the client\'s IP address: mxsentry greylist whitelist IP';
    if (target.includes('/')) return `${target} is a network; greylist whitelist takes one address (list networks in a whitelist-clients file)`;
    if (!parseAddress(target)) return `greylist whitelist takes an IP address, got "${target}"`;
  }
  if (action === 'delete' && !target) return 'greylist delete needs a triplet key, as greylist list prints it: mxsentry greylist delete KEY';
  // CLIENT-NETWORK/SENDER/RECIPIENT (the sender may be empty, or hold slashes of its own).
  if (action === 'delete' && target && target.split('/').length < 3) return `"${target}" is not a triplet key: CLIENT-NETWORK/SENDER/RECIPIENT, as greylist list prints it`;
  return undefined;
}

/**
 * The triplet key the daemon would store for a typed CLIENT/SENDER/RECIPIENT (tripletKey with the
 * configuration's lookup-by-host and prefixes), or undefined when its client part is no address.
 */
export function keyAsDaemonBuilds(typed: string, v: Record<string, unknown>): string | undefined {
  const text = typed.trim();
  const first = text.indexOf('/');
  const last = text.lastIndexOf('/');
  if (first < 0 || last === first) return undefined;
  const client = text.slice(0, first);
  if (!parseAddress(client)) return undefined;
  return tripletKey(client, text.slice(first + 1, last), text.slice(last + 1), {
    lookupByHost: v['lookup-by-host'] as boolean,
    ipv4Prefix: v['ipv4cidr'] as number,
    ipv6Prefix: v['ipv6cidr'] as number,
  });
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** A GreylistStore that fails every call: the greylist step then fails open (or is not used at all). */
function unavailableStore(reason: string): GreylistStore {
  return {
    decideNow: () => {
      throw new Error(reason);
    },
    transact: () => Promise.reject(new Error(reason)),
    isHealthy: () => false,
  };
}
