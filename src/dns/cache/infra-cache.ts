// Per upstream server facts for the iterator, like Unbound's infra cache: smoothed RTT and RTO
// (RFC 6298), timeouts with exponential backoff, down/probe state per zone and query-type class
// (A, AAAA, the rest: Unbound's timeout_A, timeout_AAAA, timeout_other, kept per server and zone
// as Unbound keys its infra cache), lameness per zone, EDNS support.
// The iterator asks it which server to try first and with what timeout, and reports every outcome.
// It does no I/O and reads time only from the injected Clock; randomness only from the injected source.
import type { Clock } from '../../util/clock.js';
import { canonicalName } from '../wire/name.js';
import { RRType, type Name } from '../wire/types.js';
import { LruBudget } from './lru-budget.js';

/** RTO assumed for a server never measured (Unbound's UNKNOWN_SERVER_NICENESS). */
export const UNKNOWN_SERVER_RTO_MS = 376;
/** Lower and upper clamp of any RTO. */
export const MIN_RTO_MS = 50;
export const MAX_RTO_MS = 12_000;
/** A query cut short by the caller's deadline after at least this long counts toward an outage (recordTimeout). */
export const CUT_SHORT_EVIDENCE_MS = 500;
/** Servers whose RTO is within this of the fastest are chosen among at random (Unbound's RTT band). */
export const RTT_BAND_MS = 400;

/** Options of {@link InfraCache}. */
export interface InfraCacheOptions {
  clock: Clock;
  /** Most hosts remembered; least recently used go first. Default 10000 (Unbound infra-cache-numhosts). */
  maxHosts?: number;
  /** How long measurements, lameness and EDNS facts are kept. Default 900 (Unbound infra-host-ttl). */
  hostTtlSec?: number;
  /** Consecutive timeouts of a type class after which a server that has gone silent counts as down for it. Default 3. */
  downAfterTimeouts?: number;
  /**
   * How long a server must have given no answer at all (to any query) before it counts as down.
   * A server that still answers other names or types is not down, however many timeouts one name
   * or type collects. Default 5000: a client's deadline (4.5 s) is not enough for one resolution
   * to take a server down; Unbound holds a server back only at its top RTO, after about 12 s of
   * timeouts.
   */
  downMinSilenceMs?: number;
  /** First probe interval of a down server; doubles after each failed probe. Default 5000. */
  probeMinMs?: number;
  /** Cap of the probe interval. Default 120000. */
  probeMaxMs?: number;
  /** Chance that selectOrder puts a slower server first to re-measure it. Default 0.02. */
  probeProbability?: number;
  /** Uniform random in [0, 1); inject a seeded one in tests. Default Math.random. */
  random?: () => number;
}

/** One row of {@link InfraCache.dump}. */
export interface InfraDumpRow {
  address: string;
  /** Smoothed RTT; -1 when never measured. */
  srttMs: number;
  rtoMs: number;
  /** Consecutive timeouts since the last answer, of the zone and type class with the most. */
  timeouts: number;
  backedOff: boolean;
  /** The type classes the server is down for and not yet due a probe ('A', 'AAAA', 'other'), each with its zone ('A example.com.'). */
  downTypes: string[];
  edns: 'unknown' | 'ok' | 'noedns';
  lameZones: Name[];
}

interface Host {
  // Measurement epoch: like Unbound, measurements are forgotten hostTtl after they began, which
  // re-probes slow servers and lets a long-dead server be tried afresh.
  rttExpiresAtMs: number;
  srttMs: number;
  rttvarMs: number;
  measured: boolean;
  rtoMs: number;
  /**
   * Timeouts and down state by zone (canonical; '' for callers that give none), per type class
   * (TYPE_CLASSES): a server that drops AAAA queries still answers A, and one that ignores the
   * names of one zone it serves still serves its other zones. Entries are made by timeouts only.
   */
  byZone: Map<string, TypeStates>;
  /** When the query behind the first timeout since the server's last answer was sent; null after an answer. */
  silentSinceMs: number | null;
  edns: 'ok' | 'noedns' | null;
  ednsExpiresAtMs: number;
  /** canonical zone -> expiry */
  lame: Map<Name, number>;
}

/** A server that is down for the query's type class, in selectOrder. */
interface DownServer {
  address: string;
  at: number;
  due: boolean;
}

/** Consecutive timeouts and the down/probe state of one type class at one server. */
interface TypeState {
  timeouts: number;
  down: boolean;
  probeIntervalMs: number;
  nextProbeAtMs: number;
  /**
   * When the server was held back or its probe interval last lengthened: only a query sent after it
   * (a probe: nothing else is sent while held back) lengthens the interval, once per such moment.
   */
  backoffSinceMs: number;
}

type TypeStates = [TypeState, TypeState, TypeState];

/** Zones with timeout state kept per server; beyond it the oldest entry goes (a shared server's many zones). */
const MAX_ZONES_PER_HOST = 64;

/** Names of the type classes, by index: A, AAAA, every other type. */
const TYPE_CLASSES = ['A', 'AAAA', 'other'] as const;

/** The type class index of a query type; a missing type counts as 'other'. */
function classOf(qtype: number | undefined): 0 | 1 | 2 {
  return qtype === RRType.A ? 0 : qtype === RRType.AAAA ? 1 : 2;
}

/** RFC 6298 s2 gains. */
const ALPHA = 1 / 8;
const BETA = 1 / 4;

/**
 * Upstream server facts keyed by address string (as the transport uses it, e.g. "192.0.2.1" or
 * "2001:db8::1"). Unknown or forgotten servers behave as never measured.
 */
export class InfraCache {
  private readonly clock: Clock;
  private readonly hostTtlMs: number;
  private readonly downAfter: number;
  private readonly downMinSilenceMs: number;
  private readonly probeMinMs: number;
  private readonly probeMaxMs: number;
  private readonly probeProbability: number;
  private readonly random: () => number;
  private readonly hosts: LruBudget<Host>;

  constructor(opts: InfraCacheOptions) {
    this.clock = opts.clock;
    this.hostTtlMs = Math.max(1, Math.floor(opts.hostTtlSec ?? 900)) * 1000;
    this.downAfter = Math.max(1, Math.floor(opts.downAfterTimeouts ?? 3));
    this.downMinSilenceMs = Math.max(0, opts.downMinSilenceMs ?? 5000);
    this.probeMinMs = Math.max(1, opts.probeMinMs ?? 5_000);
    this.probeMaxMs = Math.max(this.probeMinMs, opts.probeMaxMs ?? 120_000);
    this.probeProbability = Math.min(1, Math.max(0, opts.probeProbability ?? 0.02));
    this.random = opts.random ?? Math.random;
    // Each host costs 1 unit, so the byte budget is simply the host count.
    this.hosts = new LruBudget<Host>({
      maxBytes: Math.max(1, Math.floor(opts.maxHosts ?? 10_000)),
      isExpired: (h) => this.isForgotten(h, this.clock.nowMs()),
    });
  }

  /**
   * Retransmission timeout for the next query to this server: SRTT + 4 * RTTVAR (RFC 6298 s2),
   * doubled after each timeout (s5.5), clamped to [50, 12000] ms; 376 ms when never measured.
   */
  rtoMs(address: string): number {
    const h = this.liveRtt(address, this.clock.nowMs());
    return h === undefined ? UNKNOWN_SERVER_RTO_MS : h.rtoMs;
  }

  /**
   * Records an answer to a query of `qtype` received after rttMs. Clears that type class's timeouts,
   * and the down state of every class: a server that answers is up (Unbound likewise resets the
   * backed-off RTO on any answer, and holds back only a server at its top RTO).
   */
  recordRtt(address: string, rttMs: number, qtype?: number): void {
    const h = this.touch(address);
    const r = Math.max(0, rttMs);
    if (!h.measured) {
      // RFC 6298 s2.2: first measurement.
      h.srttMs = r;
      h.rttvarMs = r / 2;
      h.measured = true;
    } else {
      // RFC 6298 s2.3: RTTVAR uses the SRTT before this update.
      h.rttvarMs = (1 - BETA) * h.rttvarMs + BETA * Math.abs(h.srttMs - r);
      h.srttMs = (1 - ALPHA) * h.srttMs + ALPHA * r;
    }
    h.rtoMs = clampRto(h.srttMs + 4 * h.rttvarMs);
    h.silentSinceMs = null;
    const cls = classOf(qtype);
    for (const states of h.byZone.values()) {
      states[cls].timeouts = 0;
      for (const t of states) {
        t.down = false;
        t.probeIntervalMs = this.probeMinMs;
        t.nextProbeAtMs = 0;
        t.backoffSinceMs = 0;
      }
    }
  }

  /**
   * Records a query of `qtype` that got no answer within its RTO (`rtoUsedMs`: the RTO it was sent
   * with, when known; `waitedMs`: how long it waited, default the RTO): the RTO doubles (RFC 6298
   * s5.5). One the caller's deadline cut short (`cut`) does not back the RTO off, and says nothing
   * when it waited less than CUT_SHORT_EVIDENCE_MS; one that waited longer counts toward an outage
   * like any timeout, or a dead server behind a budget shorter than its RTO (a DNS list lookup)
   * would never be held back, nor its failed probes spaced out. After downAfterTimeouts consecutive
   * timeouts of its type class in the query's zone, once the server has answered nothing at all for
   * downMinSilenceMs, it is down for that class in that zone until its next probe slot; each failed
   * probe doubles the probe interval up to probeMaxMs. Only a probe's timeout does, once per
   * interval: queries sent before the server was held back or its interval last lengthened (in
   * flight then) say nothing new, as Unbound's rtt_lost counts only a loss sent with the current
   * backoff, so a burst of them must not stretch the interval to minutes and hold a recovered zone
   * back that long. Other classes and zones are not affected.
   * One name or type that a server ignores (or answers late) does not take the server down while it
   * answers the rest, nor, on a quiet host, for the other zones it serves.
   */
  recordTimeout(address: string, rtoUsedMs?: number, qtype?: number, waitedMs?: number, cut = false, zone?: Name): void {
    if (cut && (waitedMs ?? 0) < CUT_SHORT_EVIDENCE_MS) return;
    const now = this.clock.nowMs();
    const h = this.touch(address);
    if (!cut) {
      // Unbound's rtt_lost: back off only if the RTO is still the one the lost query was sent with,
      // so a burst of concurrent queries timing out together doubles the RTO and counts once.
      if (rtoUsedMs !== undefined && h.rtoMs > rtoUsedMs) return;
      h.rtoMs = clampRto(h.rtoMs * 2);
    }
    const sentAtMs = now - (waitedMs ?? rtoUsedMs ?? 0);
    h.silentSinceMs ??= sentAtMs;
    const t = this.zoneStates(h, zone)[classOf(qtype)];
    t.timeouts++;
    if (t.timeouts < this.downAfter || now - h.silentSinceMs < this.downMinSilenceMs) return;
    if (!t.down) {
      t.down = true;
      t.probeIntervalMs = this.probeMinMs;
    } else {
      // Sent before the hold-back or the last lengthening: in flight then, or a probe of the interval
      // already lengthened. Not "after the last probe slot": a probe whose RTO outlasts the interval
      // times out after the next slot is claimed, and the interval would then never lengthen.
      if (sentAtMs <= t.backoffSinceMs) return;
      t.probeIntervalMs = Math.min(this.probeMaxMs, t.probeIntervalMs * 2);
    }
    t.backoffSinceMs = now;
    t.nextProbeAtMs = now + t.probeIntervalMs;
  }

  /**
   * True while the server is down for qtype's class in the zone and its probe slot is not due. When the slot is due this returns
   * false once and claims the slot (the next one opens a probe interval later), so call it only
   * right before sending: exactly one query per interval goes to a down server. An answer
   * (recordRtt) clears the down state; a timeout of the probe lengthens the interval.
   */
  isBackedOff(address: string, qtype?: number, zone?: Name): boolean {
    const now = this.clock.nowMs();
    const h = this.liveRtt(address, now);
    const t = h?.byZone.get(zoneKey(zone))?.[classOf(qtype)];
    if (t === undefined || !t.down) return false;
    if (now < t.nextProbeAtMs) return true;
    t.nextProbeAtMs = now + t.probeIntervalMs;
    return false;
  }

  /**
   * Orders candidate addresses for a query, like Unbound's server selection: the servers whose RTO
   * is within 400 ms of the fastest come first in random order (unknown servers count as 376 ms so
   * they get measured), then the slower ones by RTO, then down servers (those with a due probe slot
   * first). With probeProbability one slower or due-for-probe server is moved to the front to be
   * re-measured. Duplicates are removed. Does not claim probe slots. Down means down for qtype's class in the zone.
   */
  selectOrder(addresses: string[], qtype?: number, zone?: Name): string[] {
    const cls = classOf(qtype);
    const key = zoneKey(zone);
    const now = this.clock.nowMs();
    // Up servers by RTO (a stable insertion: equal RTOs keep their order), in parallel arrays: this
    // runs for every upstream query, over a zone's handful of servers, so no object per server.
    const order: string[] = [];
    const rtos: number[] = [];
    let down: DownServer[] | undefined;
    for (const address of addresses) {
      if (order.includes(address) || down?.some((d) => d.address === address)) continue;
      const h = this.liveRtt(address, now);
      const t = h?.byZone.get(key)?.[cls];
      if (t !== undefined && t.down) {
        (down ??= []).push({ address, at: t.nextProbeAtMs, due: now >= t.nextProbeAtMs });
        continue;
      }
      const rto = h === undefined ? UNKNOWN_SERVER_RTO_MS : h.rtoMs;
      order.push(address);
      rtos.push(rto);
      for (let i = rtos.length - 1; i > 0 && (rtos[i - 1] as number) > rto; i--) {
        rtos[i] = rtos[i - 1] as number;
        order[i] = order[i - 1] as string;
        rtos[i - 1] = rto;
        order[i - 1] = address;
      }
    }
    const fastest = rtos[0] ?? 0;
    let bandEnd = 0;
    while (bandEnd < rtos.length && (rtos[bandEnd] as number) <= fastest + RTT_BAND_MS) bandEnd++;
    this.shuffle(order, bandEnd);
    const slower = order.length - bandEnd;
    let downDue = 0;
    if (down) {
      // Due probes first, then the waiting ones, each by its probe time.
      for (const due of [true, false]) {
        const group = down.filter((d) => d.due === due).sort((a, b) => a.at - b.at);
        if (due) downDue = group.length;
        for (const d of group) order.push(d.address);
      }
    }

    const probeCandidates = slower + downDue;
    if (probeCandidates > 0 && bandEnd > 0 && this.random() < this.probeProbability) {
      const pick = Math.min(probeCandidates - 1, Math.floor(this.random() * probeCandidates));
      const from = bandEnd + pick;
      const [probe] = order.splice(from, 1);
      if (probe !== undefined) order.unshift(probe);
    }
    return order;
  }

  /** Marks the server lame for the zone (it answered without authority for it) for hostTtlSec. */
  markLame(address: string, zone: Name): void {
    const h = this.touch(address);
    h.lame.set(canonicalName(zone), this.clock.nowMs() + this.hostTtlMs);
  }

  /** True when the server was marked lame for exactly this zone within hostTtlSec. */
  isLame(address: string, zone: Name): boolean {
    const h = this.hosts.peek(address);
    if (h === undefined) return false;
    const key = canonicalName(zone);
    const until = h.lame.get(key);
    if (until === undefined) return false;
    if (this.clock.nowMs() < until) return true;
    h.lame.delete(key);
    return false;
  }

  /** What the server is known to do with EDNS (RFC 6891 s6.2.2 fallback), kept for hostTtlSec. */
  ednsStatus(address: string): 'unknown' | 'ok' | 'noedns' {
    const h = this.hosts.peek(address);
    if (h === undefined || h.edns === null || this.clock.nowMs() >= h.ednsExpiresAtMs) return 'unknown';
    return h.edns;
  }

  setEdnsStatus(address: string, s: 'ok' | 'noedns'): void {
    const h = this.touch(address);
    h.edns = s;
    h.ednsExpiresAtMs = this.clock.nowMs() + this.hostTtlMs;
  }

  /** Forgets everything (CLI "flush infra"). */
  flush(): void {
    this.hosts.clear();
  }

  stats(): { hosts: number } {
    return { hosts: this.hosts.size };
  }

  /** Current facts per known host, least recently used first. */
  *dump(): IterableIterator<InfraDumpRow> {
    const now = this.clock.nowMs();
    for (const [address, h] of this.hosts.entries()) {
      if (this.isForgotten(h, now)) continue;
      const rttLive = now < h.rttExpiresAtMs;
      const lameZones: Name[] = [];
      for (const [zone, until] of h.lame) if (now < until) lameZones.push(zone);
      let timeouts = 0;
      const downTypes: string[] = [];
      if (rttLive) {
        for (const [zone, states] of h.byZone) {
          states.forEach((t, i) => {
            timeouts = Math.max(timeouts, t.timeouts);
            if (t.down && now < t.nextProbeAtMs) downTypes.push(zone === '' ? TYPE_CLASSES[i]! : `${TYPE_CLASSES[i]!} ${zone}`);
          });
        }
      }
      yield {
        address,
        srttMs: rttLive && h.measured ? Math.round(h.srttMs) : -1,
        rtoMs: rttLive ? h.rtoMs : UNKNOWN_SERVER_RTO_MS,
        timeouts,
        backedOff: downTypes.length > 0,
        downTypes,
        edns: h.edns !== null && now < h.ednsExpiresAtMs ? h.edns : 'unknown',
        lameZones,
      };
    }
  }

  /** The host with its measurement epoch renewed if it had lapsed; created when missing; promoted. */
  private touch(address: string): Host {
    const now = this.clock.nowMs();
    let h = this.hosts.get(address);
    if (h === undefined) {
      h = {
        rttExpiresAtMs: 0, srttMs: 0, rttvarMs: 0, measured: false, rtoMs: UNKNOWN_SERVER_RTO_MS,
        byZone: new Map(), silentSinceMs: null, edns: null, ednsExpiresAtMs: 0,
        lame: new Map(),
      };
      // Initialised before insertion: an unset epoch would look forgotten to the eviction scan.
      this.resetRtt(h, now);
      this.hosts.set(address, h, 1);
    } else if (now >= h.rttExpiresAtMs) {
      this.resetRtt(h, now);
    }
    return h;
  }

  private resetRtt(h: Host, now: number): void {
    h.rttExpiresAtMs = now + this.hostTtlMs;
    h.srttMs = 0;
    h.rttvarMs = 0;
    h.measured = false;
    h.rtoMs = UNKNOWN_SERVER_RTO_MS;
    h.byZone = new Map();
    h.silentSinceMs = null;
  }

  /** The timeout states of a zone at a host, made when missing (the oldest zone's go beyond MAX_ZONES_PER_HOST). */
  private zoneStates(h: Host, zone: Name | undefined): TypeStates {
    const key = zoneKey(zone);
    let states = h.byZone.get(key);
    if (states === undefined) {
      if (h.byZone.size >= MAX_ZONES_PER_HOST) h.byZone.delete(h.byZone.keys().next().value!);
      const fresh = (): TypeState => ({ timeouts: 0, down: false, probeIntervalMs: this.probeMinMs, nextProbeAtMs: 0, backoffSinceMs: 0 });
      states = [fresh(), fresh(), fresh()];
      h.byZone.set(key, states);
    }
    return states;
  }

  /** The host when its RTT facts are still current (a host with only lame/EDNS facts counts as unmeasured). */
  private liveRtt(address: string, now: number): Host | undefined {
    const h = this.hosts.peek(address);
    return h !== undefined && now < h.rttExpiresAtMs ? h : undefined;
  }

  private isForgotten(h: Host, now: number): boolean {
    if (now < h.rttExpiresAtMs || (h.edns !== null && now < h.ednsExpiresAtMs)) return false;
    for (const until of h.lame.values()) if (now < until) return false;
    return true;
  }

  /** Shuffles the first `n` entries of `list` in place: Fisher-Yates with the injected random source. */
  private shuffle(list: string[], n: number): void {
    for (let i = n - 1; i > 0; i--) {
      const j = Math.min(i, Math.floor(this.random() * (i + 1)));
      const a = list[i] as string;
      list[i] = list[j] as string;
      list[j] = a;
    }
  }
}

function zoneKey(zone: Name | undefined): string {
  return zone === undefined ? '' : canonicalName(zone);
}

function clampRto(ms: number): number {
  return Math.min(MAX_RTO_MS, Math.max(MIN_RTO_MS, Math.round(ms)));
}
