// The operations side of a running daemon: the control socket, the optional Prometheus endpoint,
// the stats snapshot both read, and configuration reload. startDaemon (main.ts) calls
// startOperations once the DNS and policy servers listen, and closes it first on stop. It owns no
// DNS or policy behaviour; it only reads counters and swaps settings through the parts it is given.
import { join } from 'node:path';
import type { ConfigValues, Endpoint, LoadResult } from '../config/load.js';
import type { InfraCache } from '../dns/cache/infra-cache.js';
import type { PacketCache } from '../dns/cache/packet-cache.js';
import type { RRsetCache } from '../dns/cache/rrset-cache.js';
import type { Iterator } from '../dns/iterator/iterator.js';
import type { Resolver } from '../dns/resolver.js';
import type { DnsServer } from '../dns/server/dns-server.js';
import type { LocalZones } from '../dns/server/local-zones.js';
import type { TransportStats } from '../dns/transport/transport.js';
import { MetricsServer } from '../metrics/metrics-server.js';
import { renderPrometheus } from '../metrics/prometheus-text.js';
import type { RttObservingTransport } from '../metrics/rtt-transport.js';
import { PolicyCounterCarry, collectStats, type PolicyCounters, type StatsSnapshot } from '../metrics/stats-snapshot.js';
import type { PolicyService } from '../policy/policy-service.js';
import type { PolicyServer } from '../policy/server.js';
import type { StoreCounts } from '../store/lmdb-greylist-store.js';
import { CidrSet } from '../util/cidr.js';
import type { Clock } from '../util/clock.js';
import { describeError } from '../util/errors.js';
import { moduleLogger, type Logger } from '../util/logger.js';
import { createControlHandlers } from './control-commands.js';
import { ControlError } from './control-error.js';
import { ControlServer } from './control-server.js';
import { reloadConfig, type ReloadParts, type ReloadReport } from './reload.js';

/** The control socket path configured by `control-socket`, or `<data-dir>/control.sock`. */
export function controlSocketPath(v: ConfigValues): string {
  const configured = v['control-socket'] as string | undefined;
  return configured ? configured : join((v['data-dir'] as string | undefined) ?? './data', 'control.sock');
}

export interface OperationsOptions {
  values: ConfigValues;
  logger: Logger;
  clock: Clock;
  version: string;
  dns: { cache: RRsetCache; packetCache: PacketCache; infra: InfraCache; iterator: Iterator; resolver: Resolver };
  /** The RTT-observing wrapper around the upstream transport, when the daemon built one. */
  rttTransport?: RttObservingTransport | null;
  /** The real network transport's counters, when there is one. */
  transportStats?: TransportStats | null;
  dnsServer: DnsServer;
  policyServer: PolicyServer;
  /** The policy service in force (it changes on reload). */
  getPolicy(): PolicyService;
  /** Installs a new policy service: the PolicyServer's decide() must call it from now on. */
  installPolicy(next: PolicyService, v: ConfigValues): void;
  setLocalZones(z: LocalZones): void;
  store: { isHealthy(): boolean; lastError?(): Error | undefined; failure?(): Error | undefined; current(): { count(): Promise<StoreCounts>; startExpiry(intervalMs: number, maxAgeMs: number, retryWindowMs: number): unknown; dataFileProblem(): string | undefined | null } | undefined };
  /** Interval of the greylist expiry sweep, for a max-age change. */
  expiryIntervalMs: number;
  builders: Pick<ReloadParts, 'listZonesOf' | 'iteratorConfig' | 'resolverConfig' | 'createLocalZones' | 'createPolicy' | 'replicationSettingsOf' | 'localZonesFileOf'>;
  /** The running replication (settings in force, reconfigure on reload). */
  replication: ReloadParts['replication'];
  /** Re-reads the configuration (file + start flags); default: the start values again (no file). */
  loadConfig?: () => LoadResult;
  /** Warnings about a file read on reload, as config check gives them. */
  settingWarnings?: (loaded: LoadResult) => string[];
  /** Replication status for `replication-status` and lag metrics; absent: not configured. */
  replicationStatus?: () => unknown;
}

/** Handle of the running operations side. */
export interface Operations {
  /** Absolute control socket path. */
  readonly controlPath: string;
  /** Bound metrics endpoint, or null when off. */
  readonly metricsAddress: { address: string; port: number } | null;
  /** The configuration in force. */
  values(): ConfigValues;
  stats(): Promise<StatsSnapshot>;
  /** Reloads (serialised: a second reload waits for the first). Rejects with CONTROL_ERR_FAILED on a broken file. */
  reload(): Promise<ReloadReport>;
  /** Lets the replication module plug its status in once it runs. */
  setReplicationStatus(fn: (() => unknown) | undefined): void;
  /** Closes the metrics endpoint and the control socket. */
  close(): Promise<void>;
}

function countersOf(p: PolicyService): PolicyCounters {
  return { pipeline: p.pipeline.stats(), dnsLists: p.dnsLists.stats(), greylist: p.greylistCheck?.stats() ?? null };
}

/** Starts the control socket (always) and the metrics endpoint (when `metrics-listen` is set). */
export async function startOperations(o: OperationsOptions): Promise<Operations> {
  const log = moduleLogger(o.logger, 'control');
  const startedAtMs = o.clock.nowMs();
  const carry = new PolicyCounterCarry();
  let values = o.values;
  let replicationStatus = o.replicationStatus;
  let metrics: MetricsServer | null = null;
  let reloading: Promise<unknown> = Promise.resolve();

  const stats = (): Promise<StatsSnapshot> =>
    collectStats({
      clock: o.clock,
      startedAtMs,
      version: o.version,
      resolver: o.dns.resolver,
      iterator: o.dns.iterator,
      cache: o.dns.cache,
      packetCache: o.dns.packetCache,
      infra: o.dns.infra,
      dnsServer: o.dnsServer,
      ...(o.transportStats ? { transport: o.transportStats } : {}),
      ...(o.rttTransport ? { rtt: () => ({ udp: o.rttTransport!.udpRtt.snapshot(), tcp: o.rttTransport!.tcpRtt.snapshot() }) } : {}),
      policy: () => carry.total(countersOf(o.getPolicy())),
      policyServer: o.policyServer,
      store: () => {
        const failure = o.store.isHealthy() ? undefined : (o.store.failure?.() ?? o.store.lastError?.());
        const dataFileProblem = o.store.current()?.dataFileProblem() ?? undefined;
        return { healthy: o.store.isHealthy(), counts: () => o.store.current()?.count(), ...(failure ? { error: describeError(failure) } : {}), ...(dataFileProblem ? { dataFileProblem } : {}) };
      },
      ...(replicationStatus ? { replication: replicationStatus } : {}),
    });

  const reloadParts: ReloadParts = {
    ...o.builders,
    loadConfig: o.loadConfig ?? (() => ({ values: o.values, errors: [] })),
    ...(o.settingWarnings ? { settingWarnings: o.settingWarnings } : {}),
    logger: o.logger,
    iterator: o.dns.iterator,
    resolver: o.dns.resolver,
    cache: o.dns.cache,
    packetCache: o.dns.packetCache,
    dnsServer: o.dnsServer,
    setLocalZones: o.setLocalZones,
    swapPolicy: (next, v) => {
      carry.retire(countersOf(o.getPolicy()));
      o.installPolicy(next, v);
    },
    setMetricsAllow: (a) => metrics?.setAllow(a),
    setExpiry: (maxAgeSec, retryWindowSec) => {
      o.store.current()?.startExpiry(o.expiryIntervalMs, maxAgeSec * 1000, retryWindowSec * 1000);
      // Replication keeps the same horizon, or peers would send back what the sweep expires.
      o.replication.setExpiry(maxAgeSec * 1000, retryWindowSec * 1000);
    },
    replication: o.replication,
  };
  const reload = (): Promise<ReloadReport> => {
    const run = reloading.then(async () => {
      const r = await reloadConfig(values, reloadParts);
      values = r.values;
      return r.report;
    });
    reloading = run.catch(() => undefined);
    return run;
  };

  const control = new ControlServer({
    path: controlSocketPath(o.values),
    logger: log,
    handlers: createControlHandlers({
      cache: o.dns.cache,
      packetCache: o.dns.packetCache,
      infra: o.dns.infra,
      stats,
      reload,
      get replicationStatus() {
        return replicationStatus;
      },
      logger: log,
    }),
  });
  await control.listen();

  let metricsAddress: { address: string; port: number } | null = null;
  const listen = o.values['metrics-listen'] as Endpoint | '' | undefined;
  if (listen) {
    metrics = new MetricsServer({
      address: listen.address,
      port: listen.port,
      allow: new CidrSet(o.values['metrics-allow'] as string[]),
      render: async () => renderPrometheus(await stats()),
      logger: moduleLogger(o.logger, 'metrics'),
    });
    try {
      metricsAddress = await metrics.listen();
    } catch (err) {
      await control.close();
      throw new ControlError('CONTROL_ERR_IO', `cannot listen on metrics-listen ${listen.text}: ${describeError(err)}`, { cause: err });
    }
  }

  return {
    controlPath: control.path,
    metricsAddress,
    values: () => values,
    stats,
    reload,
    setReplicationStatus(fn) {
      replicationStatus = fn;
    },
    async close() {
      await metrics?.close();
      await control.close();
    },
  };
}
