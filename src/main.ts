// Process wiring: config -> store -> dns -> policy -> replication; signals (SIGHUP reload,
// SIGTERM drain). The CLI (src/cli/) calls these builders; nothing below this file knows
// about processes, signals or flags.
import { readFileSync } from 'node:fs';
import { hostname, networkInterfaces } from 'node:os';
import { join } from 'node:path';
import type { ConfigValues, Endpoint, LoadResult } from './config/load.js';
import { keyDef } from './config/schema.js';
import { startOperations, type Operations } from './control/operations.js';
import { InfraCache } from './dns/cache/infra-cache.js';
import { PacketCache } from './dns/cache/packet-cache.js';
import { RRsetCache } from './dns/cache/rrset-cache.js';
import type { IteratorConfig } from './dns/iterator/iterator-config.js';
import { Iterator } from './dns/iterator/iterator.js';
import { Resolver, type ResolverConfig } from './dns/resolver.js';
import { DnsServer } from './dns/server/dns-server.js';
import { createLocalZones, localZonesFileOf } from './dns/server/configured-local-zones.js';
import type { LocalZones } from './dns/server/local-zones.js';
import { NetTransport, type Transport } from './dns/transport/transport.js';
import { parseZoneText } from './dns/wire/zone-text.js';
import { RttObservingTransport } from './metrics/rtt-transport.js';
import type { Name, ResourceRecord } from './dns/wire/types.js';
import type { Clock } from './util/clock.js';
import { DnsError, describeError } from './util/errors.js';
import { readTextFileSync } from './util/read-text-file.js';
import { moduleLogger, type Logger } from './util/logger.js';
import { packageRoot, zonesFile } from './util/paths.js';
import { listenFds } from './util/systemd.js';
import { parseDnsListSpec } from './policy/dns-list-spec.js';
import { DEFAULT_GREYLIST_CONFIG } from './policy/greylist.js';
import { createPolicyService, type PolicyService, type PolicySettings } from './policy/policy-service.js';
import { PolicyServer } from './policy/server.js';
import { ResilientGreylistStore } from './store/resilient-greylist-store.js';
import { watchDataFile } from './store/data-file-watch.js';
import { TimerScheduler } from './store/scheduler.js';
import { Replicator } from './store/replication/replicator.js';
import { greylistKeyingOf, replicationSettingsOf } from './store/replication/replication-settings.js';
import { dnsAllowSet } from './dns/server/query-refusal.js';

/** Everything the DNS side is made of; shared by `serve`, `lookup` and tests. */
export interface DnsStack {
  cache: RRsetCache;
  infra: InfraCache;
  packetCache: PacketCache;
  transport: Transport;
  iterator: Iterator;
  resolver: Resolver;
  localZones: LocalZones;
}

export interface DnsStackExtras {
  /** Replace the network transport (tests map fake servers' ports). */
  transport?: Transport;
  /** DNSBL/DNSWL zones: no QNAME minimisation, no serve-stale below them. */
  listZones?: Name[];
  /** Root hints as records instead of the configured file (tests). */
  rootHints?: ResourceRecord[];
}

/** Reads and parses the root hints; a clear error when the file is missing or holds no root NS. */
export function loadRootHints(path: string): ResourceRecord[] {
  let text: string;
  try {
    text = readTextFileSync(path);
  } catch (err) {
    throw new DnsError('DNS_ERR_ROOT_HINTS', `cannot read root hints ${path}: ${describeError(err)}`, { cause: err });
  }
  return parseZoneText(text, { origin: '.', file: path });
}

/** Iterator settings from validated config values (also applied on reload). */
export function iteratorConfig(v: ConfigValues, listZones: Name[]): IteratorConfig {
  return {
    queryLoopback: v['query-loopback'] as boolean,
    doIp4: v['do-ip4'] as boolean,
    doIp6: v['do-ip6'] as boolean,
    qnameMinimisation: v['qname-minimisation'] as IteratorConfig['qnameMinimisation'],
    noMinimisationZones: [...(v['no-minimisation-zone'] as Name[]), ...listZones],
    useCapsForId: v['use-caps-for-id'] as boolean,
    upstreamPort: v['upstream-port'] as number,
    limits: {
      maxCnameChain: v['max-cname-chain'] as number,
      maxReferrals: v['max-referrals'] as number,
      maxUpstreamQueries: v['max-upstream-queries'] as number,
      maxSubqueryDepth: v['max-subquery-depth'] as number,
      maxSubqueries: v['max-subqueries'] as number,
    },
  };
}

/** Resolver settings from validated config values (also applied on reload). */
export function resolverConfig(v: ConfigValues, listZones: Name[]): ResolverConfig {
  return {
    clientDeadlineMs: v['client-deadline-ms'] as number,
    maxConcurrentResolutions: v['max-concurrent-queries'] as number,
    serveExpired: v['serve-expired'] as boolean,
    serveExpiredReplyTtlSec: v['serve-expired-reply-ttl'] as number,
    serveExpiredClientTimeoutMs: v['serve-expired-client-timeout'] as number,
    noStaleZones: listZones,
    prefetch: v['prefetch'] as boolean,
    prefetchFraction: 0.1,
    prefetchPerSec: v['prefetch-rate'] as number,
  };
}

/**
 * Whether this host has ::1 on loopback (false with ipv6.disable=1 or IPv6 off on lo). Node lists
 * interfaces over a netlink socket, which the systemd unit's RestrictAddressFamilies= (no AF_NETLINK)
 * refuses with EAFNOSUPPORT: then the kernel's /proc/net/if_inet6 answers (absent without IPv6).
 */
export function hostHasIpv6Loopback(
  listInterfaces: () => ReturnType<typeof networkInterfaces> = networkInterfaces,
  readIfInet6: () => string = () => readFileSync('/proc/net/if_inet6', 'utf8'),
): boolean {
  try {
    return Object.values(listInterfaces()).some((addrs) => (addrs ?? []).some((a) => a.address === '::1'));
  } catch {
    // Netlink refused (RestrictAddressFamilies=): the same fact, from the kernel's proc file.
    try {
      return readIfInet6().split('\n').some((line) => line.startsWith('00000000000000000000000000000001 '));
    } catch {
      return false; // no /proc/net/if_inet6: this kernel has no IPv6
    }
  }
}

/**
 * The dns-listen addresses to bind. The built-in default holds [::1]:53: on a host without IPv6 on
 * loopback that one is skipped with a warning, so the embedded defaults still start. Addresses the
 * admin wrote are bound as written (one that cannot be bound fails the start, as in Unbound).
 */
export function dnsListenEndpoints(v: ConfigValues, logger: Logger, hasIpv6Loopback = hostHasIpv6Loopback): Endpoint[] {
  const endpoints = v['dns-listen'] as Endpoint[];
  const isDefault = JSON.stringify(endpoints.map((e) => e.text)) === JSON.stringify(keyDef('dns-listen')?.default);
  if (!isDefault || hasIpv6Loopback()) return endpoints;
  const kept = endpoints.filter((e) => e.address !== '::1');
  logger.warn({ skipped: endpoints.filter((e) => e.address === '::1').map((e) => e.text), listen: kept.map((e) => e.text) }, 'this host has no IPv6 loopback (::1): the default DNS listener [::1]:53 is skipped');
  return kept;
}

/** Builds the resolver and its caches from validated config values. */
export function createDnsStack(v: ConfigValues, logger: Logger, clock: Clock, extras: DnsStackExtras = {}): DnsStack {
  const listZones = extras.listZones ?? [];
  const rootHints = extras.rootHints ?? loadRootHints((v['root-hints'] as string) || zonesFile('named.root'));
  const cache = new RRsetCache({
    clock,
    maxBytes: v['cache-size'] as number,
    minTtlSec: v['cache-min-ttl'] as number,
    maxTtlSec: v['cache-max-ttl'] as number,
    maxNegativeTtlSec: v['cache-max-negative-ttl'] as number,
    staleTtlSec: (v['serve-expired'] as boolean) ? (v['serve-expired-ttl'] as number) : 0,
  });
  const infra = new InfraCache({ clock });
  const transport = extras.transport ?? new NetTransport({ clock });
  const iterator = new Iterator({ cache, infra, transport, clock, logger: moduleLogger(logger, 'dns.iterator'), rootHints, config: iteratorConfig(v, listZones) });
  const resolver = new Resolver(iterator, cache, clock, moduleLogger(logger, 'dns.resolver'), resolverConfig(v, listZones));
  const packetCache = new PacketCache({
    clock,
    maxBytes: v['packet-cache-size'] as number,
    onNearExpiry: (q) => resolver.prefetch(q),
    logger: moduleLogger(logger, 'dns.packet-cache'),
  });
  const localZones = createLocalZones(v);
  resolver.setLocalZones(localZones);
  return { cache, infra, packetCache, transport, iterator, resolver, localZones };
}

/** Policy settings from validated config values. */
export function policySettings(v: ConfigValues): PolicySettings {
  return {
    budgetMs: v['policy-budget-ms'] as number,
    heloMustResolve: v['helo-must-resolve'] as boolean,
    heloRequireFqdn: v['helo-require-fqdn'] as boolean,
    recipientFiles: v['recipients-file'] as string[],
    recipientDelimiter: v['recipient-delimiter'] as string,
    knownNetworks: v['known-network'] as string[],
    knownNetworkFiles: v['known-networks-file'] as string[],
    dnswlTrusted: v['dnswl-trusted'] as string[],
    dnsbl: v['dnsbl'] as string[],
    dnsblReplyNames: v['dnsbl-reply-name'] as string[],
    dnsblThreshold: v['dnsbl-threshold'] as number,
    dnswl: v['dnswl'] as string[],
    dnsListBudgetMs: v['dns-list-budget-ms'] as number,
    greylist: v['greylist'] as boolean,
    greylistConfig: {
      ...DEFAULT_GREYLIST_CONFIG,
      delaySec: v['delay'] as number,
      retryWindowSec: v['retry-window'] as number,
      maxAgeSec: v['max-age'] as number,
      autoWhitelistClients: v['auto-whitelist-clients'] as number,
      lookupByHost: v['lookup-by-host'] as boolean,
      ipv4Prefix: v['ipv4cidr'] as number,
      ipv6Prefix: v['ipv6cidr'] as number,
    },
    greylistReply: { action: v['greylist-action'] as string, text: v['greylist-text'] as string },
    whitelistClientFiles: v['whitelist-clients'] as string[],
    whitelistRecipientFiles: v['whitelist-recipients'] as string[],
    xGreylistHeader: v['x-greylist-header'] as boolean,
  };
}

/** The DNS zones of every configured DNSBL/DNSWL: no QNAME minimisation and no serve-stale below them. */
export function listZonesOf(v: ConfigValues): Name[] {
  const specs = [...(v['dnswl-trusted'] as string[]), ...(v['dnsbl'] as string[]), ...(v['dnswl'] as string[])];
  return [...new Set(specs.map((t) => `${parseDnsListSpec(t).zone}.`))];
}

/** mxsentry's version, from package.json. */
export function version(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

/** A running daemon: its parts and how to stop it. */
export interface Daemon {
  dns: DnsStack;
  dnsServer: DnsServer;
  policy: PolicyService;
  policyServer: PolicyServer;
  store: ResilientGreylistStore;
  /** Control socket, metrics endpoint, stats snapshot and configuration reload (SIGHUP). */
  operations: Operations;
  /** Graceful stop: stop accepting, finish in-flight work, flush, close. */
  stop(): Promise<void>;
}

/** Process-level options of startDaemon. */
export interface DaemonOptions {
  /** Re-reads the configuration (file + start flags) on reload; default: the start values again. */
  loadConfig?: () => LoadResult;
  /** Warnings about the file a reload read, as config check gives them (logged and reported). */
  settingWarnings?: (loaded: LoadResult) => string[];
}

/** Starts every part of the daemon from validated config values (resolver, store, policy service). */
export async function startDaemon(v: ConfigValues, logger: Logger, clock: Clock, extras: DnsStackExtras = {}, options: DaemonOptions = {}): Promise<Daemon> {
  const listZones = extras.listZones ?? listZonesOf(v);
  // Replication settings first: a bad key or peer line is a start-up error before anything listens.
  const replicationSettings = replicationSettingsOf(v);
  // Every upstream answer's RTT feeds the metrics histogram on its way to the iterator.
  const baseTransport = extras.transport ?? new NetTransport({ clock });
  const rttTransport = new RttObservingTransport(baseTransport);
  const dns = createDnsStack(v, logger, clock, { ...extras, listZones, transport: rttTransport });
  const inherited = listenFds();
  const dnsServer = new DnsServer({
    recursor: dns.resolver,
    packetCache: dns.packetCache,
    localZones: dns.localZones,
    allow: dnsAllowSet(v['allow'] as string[]),
    logger: moduleLogger(logger, 'dns.server'),
    clock,
    limits: {
      maxTcpConnections: v['max-tcp-connections'] as number,
      tcpIdleTimeoutMs: v['tcp-idle-timeout-ms'] as number,
      maxConcurrentQueries: v['max-concurrent-queries'] as number,
    },
    udpBuffers: { recvBytes: v['so-rcvbuf'] as number, sendBytes: v['so-sndbuf'] as number },
  });
  // systemd socket activation: sockets named dns-udp / dns-tcp / policy replace the configured addresses.
  const dnsFds = inherited.filter((f) => f.name === 'dns-udp' || f.name === 'dns-tcp');
  for (const [kind, missing] of [['dns-udp', 'UDP'], ['dns-tcp', 'TCP']] as const) {
    // DNS needs both: truncated answers are retried over TCP. With one socket unit enabled and not
    // the other, nothing would say that half of DNS is not served.
    if (dnsFds.length > 0 && !dnsFds.some((f) => f.name === kind)) {
      logger.warn({ missing: kind }, `socket activation passed no ${kind} socket: DNS over ${missing} is not served (enable mxsentry-${kind}.socket too)`);
    }
  }
  await dnsServer.listen(
    dnsFds.length > 0
      ? dnsFds.map((f) => ({ fd: f.fd, kind: f.name === 'dns-udp' ? ('udp' as const) : ('tcp' as const) }))
      : dnsListenEndpoints(v, logger).map((e) => ({ address: e.address, port: e.port })),
  );

  const greylistSettings = policySettings(v);
  const replicator = new Replicator({
    settings: replicationSettings,
    clock,
    logger: moduleLogger(logger, 'replication'),
    maxAgeMs: greylistSettings.greylistConfig.maxAgeSec * 1000,
    retryWindowMs: greylistSettings.greylistConfig.retryWindowSec * 1000,
    keying: greylistKeyingOf(v),
    statusFile: join(v['data-dir'] as string, 'replication-status.json'),
    storeProblem: () => {
      const err = store.lastError();
      return err ? describeError(err) : undefined;
    },
    storeFailure: () => {
      const err = store.current() ? store.failure() : undefined;
      return err ? describeError(err) : undefined;
    },
  });
  const storeLogger = moduleLogger(logger, 'store');
  const store = ResilientGreylistStore.start({
    dataDir: v['data-dir'] as string,
    clock,
    logger: storeLogger,
    mapSizeBytes: v['store-map-size'] as number,
    onOpen: (s) => {
      s.startExpiry(EXPIRY_INTERVAL_MS, greylistSettings.greylistConfig.maxAgeSec * 1000, greylistSettings.greylistConfig.retryWindowSec * 1000);
      // Stops by itself once the store is closed; its timers are unref'd.
      watchDataFile({ check: () => s.dataFileProblem(), scheduler: new TimerScheduler(), logger: storeLogger, intervalMs: DATA_FILE_CHECK_INTERVAL_MS });
      replicator.attach(s);
    },
  });
  // DNS already answers; decisions start once the store has had its chance to open (a big store's
  // integrity check takes a while), so the first mail after a restart is not waved through.
  await store.settled(STORE_FIRST_OPEN_WAIT_MS);
  let policy: PolicyService;
  let policyServer: PolicyServer;
  let selfTests: { stop(): void } | null = null;
  // Where the policy service really listens (inherited sockets replace policy-listen).
  let policyListening: string[] = [];
  const policyDeps = {
    resolve: dns.resolver.resolve,
    resolveCached: dns.resolver.resolveCached,
    store,
    clock,
    logger,
    nodeId: () => store.current()?.getNodeId() ?? 'unopened',
    version: version(),
    hostname: hostname(),
  };
  try {
    policy = await createPolicyService(greylistSettings, policyDeps);
    policyServer = new PolicyServer((req) => policy.pipeline.decide(req), moduleLogger(logger, 'policy.server'), {
      maxConnections: v['policy-max-connections'] as number,
    });
    // The self tests start before the policy port opens: until the first has finished, no list is
    // consulted (a list that answers every query must not reject the first mails after a start).
    const interval = v['dns-list-selftest-interval'] as number;
    if (interval > 0 && policy.dnsLists.listsOf('trusted').length + policy.dnsLists.listsOf('block').length + policy.dnsLists.listsOf('allow').length > 0) {
      selfTests = policy.dnsLists.startSelfTests(interval * 1000);
    }
    const policyFds = inherited.filter((f) => f.name === 'policy');
    policyListening = await policyServer.listen(policyFds.length > 0 ? policyFds.map((f) => ({ fd: f.fd })) : (v['policy-listen'] as Endpoint[]).map((e) => ({ host: e.address, port: e.port })));
    await replicator.listen();
  } catch (err) {
    selfTests?.stop();
    await replicator.stop();
    await dnsServer.close();
    await store.close();
    throw err;
  }
  let operations: Operations;
  try {
    operations = await startOperations({
      values: v,
      logger,
      clock,
      version: version(),
      dns,
      rttTransport,
      transportStats: baseTransport instanceof NetTransport ? baseTransport.stats : null,
      dnsServer,
      policyServer,
      getPolicy: () => policy,
      installPolicy: (next, nv) => {
        selfTests?.stop();
        // What the running checker's self tests found carries over (a suspended list stays so).
        next.dnsLists.adoptSelfTestState(policy.dnsLists);
        policy = next; // the PolicyServer's decide() reads this variable on every request
        replicator.setKeying(greylistKeyingOf(nv)); // compared again by every link at once
        const every = nv['dns-list-selftest-interval'] as number;
        const lists = (['trusted', 'block', 'allow'] as const).reduce((n, t) => n + next.dnsLists.listsOf(t).length, 0);
        selfTests = every > 0 && lists > 0 ? next.dnsLists.startSelfTests(every * 1000) : null;
      },
      setLocalZones: (z) => {
        dns.localZones = z;
        dns.resolver.setLocalZones(z);
      },
      store,
      expiryIntervalMs: EXPIRY_INTERVAL_MS,
      builders: {
        listZonesOf,
        iteratorConfig,
        resolverConfig,
        createLocalZones,
        createPolicy: (nv) => createPolicyService(policySettings(nv), policyDeps),
        replicationSettingsOf,
        localZonesFileOf,
      },
      replication: replicator,
      ...(options.loadConfig ? { loadConfig: options.loadConfig } : {}),
      ...(options.settingWarnings ? { settingWarnings: options.settingWarnings } : {}),
    });
  } catch (err) {
    selfTests?.stop();
    await policyServer.close();
    await dnsServer.close();
    await replicator.stop();
    await store.close();
    throw err;
  }
  if (replicationSettings) operations.setReplicationStatus(() => replicator.status());
  logger.info({ dns: dnsServer.addresses(), policy: policyListening, control: operations.controlPath, metrics: operations.metricsAddress, version: version() }, 'mxsentry started');
  return {
    dns,
    dnsServer,
    get policy() {
      return policy;
    },
    policyServer,
    store,
    operations,
    async stop() {
      // The control socket and metrics endpoint go first: no reload may start during the drain.
      await operations.close();
      selfTests?.stop();
      // Drain first: Postfix gets its answers, then DNS stops, then the store is flushed and closed.
      await policyServer.close();
      await dnsServer.close();
      // Replication stops before the store closes: merges in progress finish, cursors are saved.
      await replicator.stop();
      await store.close();
    },
  };
}

const EXPIRY_INTERVAL_MS = 3_600_000;
/** How often the daemon checks that its greylist data file is still at its path (data-file-watch.ts). */
const DATA_FILE_CHECK_INTERVAL_MS = 30_000;
/** How long the start waits for the greylist store's first open before taking decisions (fail open after). */
const STORE_FIRST_OPEN_WAIT_MS = 10_000;

/** Process entry: bin/mxsentry imports this file and calls main(). */
export async function main(argv: string[] = process.argv): Promise<void> {
  const { runCli } = await import('./cli/cli.js');
  await runCli(argv, { createDnsStack, startDaemon, policySettings, listZonesOf, version });
}
