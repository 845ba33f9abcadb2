// Process wiring: config -> store -> dns -> policy -> replication; signals (SIGHUP reload,
// SIGTERM drain). The CLI (src/cli/) calls these builders; nothing below this file knows
// about processes, signals or flags.
import { readFileSync } from 'node:fs';
import type { ConfigValues, Endpoint } from './config/load.js';
import { InfraCache } from './dns/cache/infra-cache.js';
import { PacketCache } from './dns/cache/packet-cache.js';
import { RRsetCache } from './dns/cache/rrset-cache.js';
import type { IteratorConfig } from './dns/iterator/iterator-config.js';
import { Iterator } from './dns/iterator/iterator.js';
import { Resolver, type ResolverConfig } from './dns/resolver.js';
import { DnsServer } from './dns/server/dns-server.js';
import { LocalZones } from './dns/server/local-zones.js';
import { NetTransport, type Transport } from './dns/transport/transport.js';
import { parseZoneText } from './dns/wire/zone-text.js';
import type { Name, ResourceRecord } from './dns/wire/types.js';
import { CidrSet } from './util/cidr.js';
import type { Clock } from './util/clock.js';
import { DnsError, describeError } from './util/errors.js';
import { moduleLogger, type Logger } from './util/logger.js';
import { zonesFile } from './util/paths.js';
import { existsSync } from 'node:fs';

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
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new DnsError('DNS_ERR_ROOT_HINTS', `cannot read root hints ${path}: ${describeError(err)}`, { cause: err });
  }
  return parseZoneText(text, { origin: '.', file: path });
}

function iteratorConfig(v: ConfigValues, listZones: Name[]): IteratorConfig {
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

function resolverConfig(v: ConfigValues, listZones: Name[]): ResolverConfig {
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
  const localZones = new LocalZones({ defaults: true });
  for (const zone of v['no-default-zone'] as Name[]) localZones.disable(zone);
  const localFile = (v['local-zones-file'] as string) || zonesFile('local-zones.conf');
  if ((v['local-zones-file'] as string) || existsSync(localFile)) localZones.loadFile(localFile);
  return { cache, infra, packetCache, transport, iterator, resolver, localZones };
}

/** A running daemon: its parts and how to stop it. */
export interface Daemon {
  dns: DnsStack;
  dnsServer: DnsServer;
  /** Graceful stop: stop accepting, finish in-flight work, flush, close. */
  stop(): Promise<void>;
}

/** Starts every listener of the daemon from validated config values. */
export async function startDaemon(v: ConfigValues, logger: Logger, clock: Clock, extras: DnsStackExtras = {}): Promise<Daemon> {
  const dns = createDnsStack(v, logger, clock, extras);
  const dnsServer = new DnsServer({
    recursor: dns.resolver,
    packetCache: dns.packetCache,
    localZones: dns.localZones,
    allow: new CidrSet(v['allow'] as string[]),
    logger: moduleLogger(logger, 'dns.server'),
    clock,
    limits: {
      maxTcpConnections: v['max-tcp-connections'] as number,
      tcpIdleTimeoutMs: v['tcp-idle-timeout-ms'] as number,
      maxConcurrentQueries: v['max-concurrent-queries'] as number,
    },
  });
  await dnsServer.listen((v['dns-listen'] as Endpoint[]).map((e) => ({ address: e.address, port: e.port })));
  logger.info({ dns: dnsServer.addresses() }, 'mxsentry started');
  return {
    dns,
    dnsServer,
    async stop() {
      await dnsServer.close();
    },
  };
}

/** Process entry: bin/mxsentry imports this file and calls main(). */
export async function main(argv: string[] = process.argv): Promise<void> {
  const { runCli } = await import('./cli/cli.js');
  await runCli(argv, { createDnsStack, startDaemon });
}
