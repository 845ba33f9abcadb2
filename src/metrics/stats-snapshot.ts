// One snapshot of every counter of the daemon (resolver, caches, DNS server, policy pipeline, DNS
// lists, greylist, store, replication), shared by the `stats` control command and the Prometheus
// endpoint so both always say the same. Reads counters only: it never resets, resolves or writes.
import type { IteratorStats } from '../dns/iterator/iterator.js';
import type { InfraCache } from '../dns/cache/infra-cache.js';
import type { PacketCacheStats } from '../dns/cache/packet-cache.js';
import type { RRsetCacheStats } from '../dns/cache/rrset-cache.js';
import type { ResolverStats } from '../dns/resolver.js';
import type { DnsServerStats } from '../dns/server/dns-server.js';
import type { TransportStats } from '../dns/transport/transport.js';
import type { GreylistCheckStats } from '../policy/checks/greylist-check.js';
import type { DnsListStats } from '../policy/dns-lists.js';
import type { PipelineStats, PipelineStepCount } from '../policy/pipeline.js';
import type { PolicyServerStats } from '../policy/server.js';
import type { StoreCounts } from '../store/lmdb-greylist-store.js';
import type { Clock } from '../util/clock.js';
import { describeError } from '../util/errors.js';
import type { HistogramSnapshot } from './histogram.js';

/** The counters of one policy service instance (replaced on reload). */
export interface PolicyCounters {
  pipeline: PipelineStats;
  dnsLists: DnsListStats[];
  greylist: GreylistCheckStats | null;
}

/** Per-peer replication state, as far as the replication module reports it. */
export interface ReplicationPeerLag {
  peer: string;
  connected?: boolean;
  /** Log entries not yet acknowledged by the peer. */
  lagRecords?: number;
  /** Age of the oldest unacknowledged entry, seconds. */
  lagSec?: number;
  /** A session from the peer to this node is open. */
  inbound?: boolean;
  /** Log entries pushed to the peer since this process started (kept when a reload replaces the link). */
  sentEntries?: number;
  /** Entries received from the peer since this process started. */
  receivedEntries?: number;
  /** Records sent to the peer by digest repair. */
  repairedRecords?: number;
  /** When the last digest round with the peer finished, ms since the epoch. */
  lastDigestAtMs?: number;
}

/** Where the counters live; main.ts fills it from the running daemon. */
export interface StatsSources {
  clock: Clock;
  startedAtMs: number;
  version: string;
  resolver: { stats: ResolverStats };
  iterator: { stats: IteratorStats };
  cache: { stats(): RRsetCacheStats };
  packetCache: { stats(): PacketCacheStats };
  infra: Pick<InfraCache, 'stats'>;
  dnsServer: { stats(): DnsServerStats };
  /** The NetTransport's counters, when the daemon uses the real network. */
  transport?: TransportStats;
  rtt?: { udp: HistogramSnapshot; tcp: HistogramSnapshot } | (() => { udp: HistogramSnapshot; tcp: HistogramSnapshot });
  /** The live policy service's counters plus those of instances retired by reloads. */
  policy(): PolicyCounters;
  policyServer: { stats(): PolicyServerStats };
  /**
   * `error`: why an unhealthy store is so (e.g. it never opened); `dataFileProblem`: the data file
   * removed or replaced under the open store (it still works, but is lost at the next stop).
   */
  store(): { healthy: boolean; counts(): Promise<StoreCounts> | undefined; error?: string; dataFileProblem?: string };
  /** Replication state; undefined when replication is not configured. */
  replication?: () => unknown;
}

export interface StatsSnapshot {
  version: string;
  uptimeSec: number;
  dns: {
    server: DnsServerStats;
    resolver: ResolverStats;
    iterator: IteratorStats;
    cache: RRsetCacheStats & { hitRatio: number };
    packetCache: PacketCacheStats & { hitRatio: number };
    infra: { hosts: number };
    transport: TransportStats | null;
    upstreamRtt: { udp: HistogramSnapshot; tcp: HistogramSnapshot } | null;
  };
  policy: PolicyCounters & { server: PolicyServerStats };
  store: { healthy: boolean; counts: StoreCounts | null; error?: string; dataFileProblem?: string };
  replication: { configured: boolean; peers: ReplicationPeerLag[]; refusedConnections?: number; droppedBeforeAuth?: number; clampedRecords?: number; status?: unknown };
}

function ratio(hits: number, misses: number): number {
  return hits + misses === 0 ? 0 : hits / (hits + misses);
}

/** Collects every counter now. Store counting is the only asynchronous part (an LMDB read). */
export async function collectStats(src: StatsSources): Promise<StatsSnapshot> {
  const cache = src.cache.stats();
  const packet = src.packetCache.stats();
  const store = src.store();
  let counts: StoreCounts | null = null;
  let storeError: string | undefined;
  try {
    counts = (await store.counts()) ?? null;
  } catch (err) {
    // A broken store must not hide the other counters; the failure is reported in the snapshot.
    storeError = describeError(err);
  }
  if (storeError === undefined && !store.healthy) storeError = store.error;
  const rtt = typeof src.rtt === 'function' ? src.rtt() : src.rtt;
  let replicationStatus: unknown;
  if (src.replication) {
    try {
      replicationStatus = await src.replication();
    } catch (err) {
      replicationStatus = { error: describeError(err) };
    }
  }
  return {
    version: src.version,
    uptimeSec: Math.max(0, Math.floor((src.clock.nowMs() - src.startedAtMs) / 1000)),
    dns: {
      server: src.dnsServer.stats(),
      resolver: { ...src.resolver.stats, failures: { ...src.resolver.stats.failures }, inProcessFailures: { ...src.resolver.stats.inProcessFailures } },
      iterator: { ...src.iterator.stats },
      cache: { ...cache, hitRatio: ratio(cache.hits, cache.misses) },
      packetCache: { ...packet, hitRatio: ratio(packet.hits, packet.misses) },
      infra: src.infra.stats(),
      transport: src.transport ? { ...src.transport } : null,
      upstreamRtt: rtt ?? null,
    },
    policy: { ...src.policy(), server: src.policyServer.stats() },
    store: { healthy: store.healthy, counts, ...(storeError ? { error: storeError } : {}), ...(store.dataFileProblem ? { dataFileProblem: store.dataFileProblem } : {}) },
    replication: {
      configured: src.replication !== undefined && replicationStatus !== undefined,
      peers: peersOf(replicationStatus),
      ...numberField(replicationStatus, 'refusedConnections'),
      ...numberField(replicationStatus, 'droppedBeforeAuth'),
      ...numberField(replicationStatus, 'clampedRecords'),
      ...(replicationStatus !== undefined ? { status: replicationStatus } : {}),
    },
  };
}

/** Reads `{ peers: [{ peer|name|id, connected, lagRecords, lagSec, inbound, counters }] }` defensively from any status shape. */
export function peersOf(status: unknown): ReplicationPeerLag[] {
  if (status === null || typeof status !== 'object') return [];
  const peers = (status as { peers?: unknown }).peers;
  if (!Array.isArray(peers)) return [];
  const out: ReplicationPeerLag[] = [];
  for (const p of peers) {
    if (p === null || typeof p !== 'object') continue;
    const o = p as Record<string, unknown>;
    const name = [o.peer, o.name, o.id].find((v) => typeof v === 'string') as string | undefined;
    if (name === undefined) continue;
    out.push({
      peer: name,
      ...(typeof o.connected === 'boolean' ? { connected: o.connected } : {}),
      ...(typeof o.lagRecords === 'number' ? { lagRecords: o.lagRecords } : {}),
      ...(typeof o.lagSec === 'number' ? { lagSec: o.lagSec } : {}),
      ...(typeof o.inbound === 'boolean' ? { inbound: o.inbound } : {}),
      ...numberField(o, 'sentEntries'),
      ...numberField(o, 'receivedEntries'),
      ...numberField(o, 'repairedRecords'),
      ...numberField(o, 'lastDigestAtMs'),
    });
  }
  return out;
}

/** `{ [key]: value }` when `o[key]` is a finite number, else `{}`. */
function numberField<K extends string>(o: unknown, key: K): Partial<Record<K, number>> {
  if (o === null || typeof o !== 'object') return {};
  const v = (o as Record<string, unknown>)[key];
  return typeof v === 'number' && Number.isFinite(v) ? ({ [key]: v } as Record<K, number>) : {};
}

/**
 * Policy counters survive a reload: the retired instance's counts are added to the new one's, so
 * Prometheus counters never go backwards while the process lives.
 */
export class PolicyCounterCarry {
  private retired: PolicyCounters = { pipeline: { decisions: 0, budgetExceeded: 0, checkErrors: 0, byStep: [] }, dnsLists: [], greylist: null };

  /** Adds a policy instance's final counters before it is replaced. */
  retire(counters: PolicyCounters): void {
    this.retired = addCounters(this.retired, counters);
  }

  /** The live counters plus everything retired. */
  total(live: PolicyCounters): PolicyCounters {
    return addCounters(this.retired, live);
  }
}

function addCounters(a: PolicyCounters, b: PolicyCounters): PolicyCounters {
  const steps = new Map<string, PipelineStepCount>();
  for (const s of [...a.pipeline.byStep, ...b.pipeline.byStep]) {
    const key = `${s.step}\u0000${s.stepName}\u0000${s.verdict}`;
    const prev = steps.get(key);
    steps.set(key, prev ? { ...prev, count: prev.count + s.count } : { ...s });
  }
  const lists = new Map<string, DnsListStats>();
  for (const l of [...a.dnsLists, ...b.dnsLists]) {
    const key = `${l.tier}\u0000${l.list}`;
    const prev = lists.get(key);
    lists.set(key, prev
      ? { ...prev, queries: prev.queries + l.queries, listed: prev.listed + l.listed, errors: prev.errors + l.errors, failures: prev.failures + l.failures, timeouts: prev.timeouts + l.timeouts, skipped: prev.skipped + l.skipped }
      : { ...l });
  }
  let greylist: GreylistCheckStats | null = a.greylist ? { ...a.greylist } : null;
  if (b.greylist) {
    if (!greylist) greylist = { ...b.greylist };
    else for (const k of Object.keys(b.greylist) as Array<keyof GreylistCheckStats>) greylist[k] += b.greylist[k];
  }
  return {
    pipeline: {
      decisions: a.pipeline.decisions + b.pipeline.decisions,
      budgetExceeded: a.pipeline.budgetExceeded + b.pipeline.budgetExceeded,
      checkErrors: a.pipeline.checkErrors + b.pipeline.checkErrors,
      byStep: [...steps.values()].sort((x, y) => x.step - y.step || x.verdict.localeCompare(y.verdict)),
    },
    dnsLists: [...lists.values()],
    greylist,
  };
}
