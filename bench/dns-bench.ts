// The DNS benchmark of issue 2: mxsentry against Unbound from Debian, in one run, on the same fake
// authoritative tree (bench/lib/bench-hierarchy.ts, port 53 of 127.53.x.y), with dnsperf as the
// load generator: CPU per cache-hit answer at a fixed offered load, peak cache-hit qps, cold
// resolutions per second and upstream queries per cold name. Called by bench/run.ts. Loopback only;
// every phase is bounded in count and time; whatever it starts is registered for cleanup.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { standardTree } from '../test/helpers/fake-hierarchy.js';
import type { Clock } from '../src/util/clock.js';
import { MxError } from '../src/util/errors.js';
import { COLD_ZONE, coldNames, startBenchHierarchy, withBenchHosts, type BenchHierarchy } from './lib/bench-hierarchy.js';
import { probe } from './lib/dns-probe.js';
import { runDnsperf, writeQueryFile, type DnsperfResult } from './lib/dnsperf.js';
import type { ResourceRegistry } from './lib/managed-process.js';
import { processCpuMicros } from './lib/process-cpu.js';
import { udpReceiveErrors } from './lib/udp-drops.js';
import { startColdFloor, startMxsentry, startUdpFloor, startUnbound, type ResolverInstance, type ResolverSetup } from './lib/resolver-instances.js';
import { median } from './lib/results-table.js';

/** Knobs of one bench run; DEFAULT_DNS_BENCH_OPTIONS is what `npm run bench` uses. */
export interface DnsBenchOptions {
  /** Measurement rounds of every phase; the report gives the median. */
  rounds: number;
  /** Offered load of the CPU-per-answer phase (dnsperf -Q), queries per second. */
  fixedQps: number;
  /** Seconds of that phase per resolver and round, run in `fixedChunks` alternating pieces. */
  fixedSeconds: number;
  /**
   * The resolvers take turns in pieces of the fixed-rate phase, in mirrored order (A B B A ...),
   * and each one's figure is its total over its pieces: the machine's speed drifts by 20% within
   * a minute, and two back-to-back 10 s phases gave cache-hit ratios from 1.28x to 1.56x in a day.
   */
  fixedChunks: number;
  /** Unlimited-rate phase: seconds, dnsperf clients (-c) and queries in flight (-q). */
  peakSeconds: number;
  peakClients: number;
  peakOutstanding: number;
  /** Fresh names per cold round (half exist, half NXDOMAIN), each asked once. */
  coldNames: number;
  coldClients: number;
  /**
   * Queries in flight (dnsperf -q) tried in the cold phase; each resolver's figure is its best
   * level, so neither is held back by too little concurrency nor judged only when overloaded.
   */
  coldOutstanding: number[];
  /** Upper bound of one cold round, seconds. */
  coldMaxSeconds: number;
  /** Short unmeasured load before the measured phases (JIT, caches, sockets), seconds. */
  warmupSeconds: number;
  /**
   * Sets of `coldNames` fresh names each resolver (and the cold floor) resolves, unmeasured, before
   * the rounds. A fresh Node.js process compiles its cold path over its first ~20,000 cold names
   * (V8 optimises functions as they get hot, and the cache-hit phases deoptimise some it shares):
   * measured on a fresh process, a cold run spent as much CPU on background compiling threads as
   * on resolving. A resolver of a mail host runs for weeks: the steady state is what counts.
   */
  coldWarmupSets: number;
  /** Port of the fake authorities; Unbound needs 53. */
  upstreamPort: number;
  /** Fast replay fronts before the fake authorities (bench/lib/answer-replay-front.ts). */
  replayFront: boolean;
  /** Cache budgets given to both resolvers, bytes. */
  cacheBytes: number;
  answerCacheBytes: number;
  /** SO_RCVBUF of both resolvers' listening UDP sockets, bytes; 0: the OS default. */
  soRcvbuf: number;
  /** When set, mxsentry runs with --cpu-prof and writes its profile into this folder when stopped. */
  cpuProfDir?: string;
  clock: Clock;
  /** Progress lines. */
  log: (line: string) => void;
}

/** Defaults sized for a 2-core machine: about five minutes in total. */
export const DEFAULT_DNS_BENCH_OPTIONS: Omit<DnsBenchOptions, 'clock' | 'log'> = {
  rounds: 3,
  fixedQps: 5000,
  fixedSeconds: 10,
  fixedChunks: 4,
  peakSeconds: 10,
  peakClients: 10,
  peakOutstanding: 200,
  coldNames: 5000,
  coldClients: 4,
  coldOutstanding: [100, 300],
  coldMaxSeconds: 60,
  warmupSeconds: 3,
  coldWarmupSets: 4,
  upstreamPort: 53,
  replayFront: true,
  cacheBytes: 64 << 20,
  answerCacheBytes: 16 << 20,
  soRcvbuf: 0,
};

/** The cache-hit working set: what a mail host asks over and over (MX, SPF, A/AAAA, CNAME, DNSBL). */
export const HOT_QUERIES: ReadonlyArray<{ name: string; type: string }> = [
  { name: 'www.example.com.', type: 'A' },
  { name: 'www.example.com.', type: 'AAAA' },
  { name: 'mail.example.com.', type: 'A' },
  { name: 'example.com.', type: 'MX' },
  { name: 'example.com.', type: 'TXT' },
  { name: 'alias.example.com.', type: 'A' },
  { name: 'www.example.net.', type: 'A' },
  { name: 'nothere.example.com.', type: 'A' },
  { name: '2.0.0.127.dnsbl.example.net.', type: 'A' },
  { name: '2.0.0.127.dnsbl.example.net.', type: 'TXT' },
  { name: '1.0.0.127.dnsbl.example.net.', type: 'A' },
];

/** One metric for both resolvers. */
export interface Comparison {
  metric: string;
  unit: string;
  mxsentry: number;
  unbound: number;
  /** mxsentry / unbound. */
  ratio: number;
  /** The target, if it sets one, and whether this run met it. */
  target?: { text: string; met: boolean };
}

/** Per-resolver raw figures (medians over rounds), kept in the JSON for the lead's note. */
export interface ResolverDetail {
  fixedRate: { offeredQps: number; answered: number; lostPct: number; cpuMicrosPerAnswer: number; cpuCorePct: number; avgLatencyMs: number };
  peak: { qps: number; lostPct: number; cpuCorePct: number; avgLatencyMs: number };
  /** The cold run at the outstanding level with the best median rate. */
  cold: {
    outstanding: number;
    names: number;
    /** Queries dnsperf got an answer to (any rcode). */
    answered: number; resolvedPerSec: number; noerror: number; nxdomain: number; servfail: number; lost: number;
    upstreamQueries: number; upstreamPerName: number; avgLatencyMs: number; cpuCorePct: number;
    /** UDP datagrams the kernel dropped on receive during the run, all sockets (see lib/udp-drops.ts). */
    udpDrops: number;
    /** CPU of the fake authorities (the bench process) per upstream query, and its share of a core. */
    authorityMicrosPerQuery: number; authorityCorePct: number;
  };
  /**
   * Median cold resolutions/s per outstanding level, and upstream queries per answered cold name
   * over all cold runs (a query the resolver dropped unanswered is not a name it resolved).
   */
  coldByOutstanding: Record<string, number>;
  /** Median resolver CPU (% of a core) of the cold runs per outstanding level: below ~85% a level is bound by latency, not CPU. */
  coldCpuByOutstanding: Record<string, number>;
  upstreamPerColdName: number;
  /** Warm-up answers per hot query, as 'RCODE/answer count'. */
  probeAnswers: Record<string, string>;
}

/** Everything one run produced; bench/run.ts prints it and writes it to dist/bench-results.json. */
export interface DnsBenchReport {
  comparisons: Comparison[];
  details: { mxsentry: ResolverDetail; unbound: ResolverDetail };
  /**
   * The node:dgram floor: CPU per packet of a dgram responder that only receives, copies, sets QR
   * and sends (lib/udp-floor-echo.ts), in the same fixed-rate phase. What no resolver on node:dgram
   * can go below (mxsentry's native UDP module is not on dgram), next to Unbound's full answer.
   */
  nodeUdpFloor: { cpuMicrosPerPacket: number; ratioToUnbound: number };
  /**
   * The Node.js cold-path floor: resolutions per second of a forwarder that sends each cold name's
   * query to the cold zone's authority over a fresh connected UDP socket and relays the reply, with
   * no DNS work (lib/udp-floor-forward.ts), in the same cold runs (its best -q level, medians).
   */
  nodeColdFloor: { resolvedPerSec: number; ratioToUnbound: number; cpuCorePct: number; outstanding: number };
  options: Omit<DnsBenchOptions, 'clock' | 'log'>;
  /** Things a reader must know to trust the figures (saturation, loss, disagreements). */
  warnings: string[];
  startedAt: string;
  durationSec: number;
}

/** Median of each numeric field over rounds. */
function medianOf<T extends Record<string, number>>(rows: T[]): T {
  const first = rows[0];
  if (!first) throw new MxError('BENCH_ERR_INTERNAL', 'no rounds measured');
  const out: Record<string, number> = {};
  for (const key of Object.keys(first)) out[key] = median(rows.map((r) => r[key] as number));
  return out as T;
}

const pct = (part: number, whole: number): number => (whole > 0 ? (100 * part) / whole : 0);

/** Runs the whole DNS bench; the caller owns `registry` and calls stopAll() in any case. */
export async function runDnsBench(options: DnsBenchOptions, registry: ResourceRegistry): Promise<DnsBenchReport> {
  const { clock, log } = options;
  const t0 = clock.nowMs();
  const warnings: string[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-bench-'));
  registry.add(`remove ${dir}`, () => rm(dir, { recursive: true, force: true }));

  const levels = options.coldOutstanding;
  // The warm-up's sets come after the measured ones.
  const nameSets = options.rounds * levels.length + options.coldWarmupSets;
  const existingPerRound = Math.ceil(options.coldNames / 2);
  const tree = withBenchHosts(standardTree(), existingPerRound * nameSets);
  log(`starting the fake tree on 127.53.x.y:${options.upstreamPort} (${existingPerRound * nameSets} extra hosts in ${COLD_ZONE})`);
  const hierarchy = await startBenchHierarchy(tree, { port: options.upstreamPort, replayFront: options.replayFront, clock });
  registry.add('stop the fake tree', () => hierarchy.stop());
  /** The i-th set of fresh names: each set is used for one cold run per resolver. */
  const coldNamesOf = (set: number): Array<{ name: string; type: string }> => coldNames(set * existingPerRound, options.coldNames);
  if (options.replayFront) {
    log(`priming the replay fronts with ${options.coldNames * nameSets} cold names and checking them against the fakes`);
    for (let set = 0; set < nameSets; set++) {
      const unanswered = await hierarchy.prime(COLD_ZONE, coldNamesOf(set));
      if (unanswered > 0) warnings.push(`${unanswered} priming queries got no answer from the fake authorities`);
    }
    // Replay is checked on the shapes the tree has: A, NXDOMAIN, AAAA, MX + glue, TXT, a CNAME chain,
    // a DNAME (never replayed: its synthesized target keeps the query's case).
    const shapes = [...HOT_QUERIES.filter((q) => q.name.endsWith(COLD_ZONE)), { name: `www.legacy.${COLD_ZONE}`, type: 'A' }];
    await hierarchy.prime(COLD_ZONE, shapes);
    const differences = await hierarchy.verifyReplay(COLD_ZONE, [...coldNamesOf(0).slice(0, 200), ...shapes]);
    if (differences.length > 0) throw new MxError('BENCH_ERR_REPLAY', `replay fronts differ from the fake authorities:\n${differences.slice(0, 10).join('\n')}`);
  }
  const rootHintsFile = join(dir, 'root.hints');
  writeFileSync(rootHintsFile, hierarchy.rootHints);

  const setup = (name: string): ResolverSetup => {
    const d = join(dir, name);
    mkdirSync(d, { recursive: true });
    return {
      dir: d, rootHintsFile, upstreamPort: options.upstreamPort, cacheBytes: options.cacheBytes,
      answerCacheBytes: options.answerCacheBytes, soRcvbuf: options.soRcvbuf, clock,
      ...(options.cpuProfDir ? { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', options.cpuProfDir] } : {}),
    };
  };
  log('starting mxsentry and unbound');
  const mx = await startMxsentry(setup('mxsentry'), registry);
  const ub = await startUnbound(setup('unbound'), registry);
  const floor = await startUdpFloor(setup('node-udp-floor'), registry);
  const coldFloor = await startColdFloor(setup('node-cold-floor'), hierarchy.authorityOf(COLD_ZONE), registry);
  const floorRuns: number[] = [];
  const resolvers = [mx, ub] as const;

  const hotFile = join(dir, 'hot.txt');
  writeQueryFile(hotFile, HOT_QUERIES);
  const probeAnswers = { mxsentry: {} as Record<string, string>, unbound: {} as Record<string, string> };
  const warm = async (r: ResolverInstance): Promise<void> => {
    for (const q of HOT_QUERIES) {
      const a = await probe(r.server, r.port, q.name, q.type, 5000);
      probeAnswers[r.name as 'mxsentry' | 'unbound'][`${q.name} ${q.type}`] = `${a.rcode}/${a.answers}`;
    }
  };
  log('warming both caches');
  for (const r of resolvers) await warm(r);
  for (const key of Object.keys(probeAnswers.mxsentry)) {
    const a = probeAnswers.mxsentry[key];
    const b = probeAnswers.unbound[key];
    if (a !== b) warnings.push(`warm-up answers differ for ${key}: mxsentry ${a}, unbound ${b} (rcode/answer count)`);
    if (a?.startsWith('SERVFAIL') || b?.startsWith('SERVFAIL')) warnings.push(`SERVFAIL while warming ${key}: mxsentry ${a}, unbound ${b}`);
  }
  for (const r of resolvers) {
    await runDnsperf({ server: r.server, port: r.port, dataFile: hotFile, seconds: options.warmupSeconds, clients: options.peakClients, outstanding: options.peakOutstanding }, registry);
  }

  type Fixed = ResolverDetail['fixedRate'];
  type Peak = ResolverDetail['peak'];
  const warmLevel = Math.max(...levels);
  for (let set = 0; set < options.coldWarmupSets; set++) {
    const names = coldNamesOf(options.rounds * levels.length + set);
    for (const r of [...resolvers, coldFloor]) {
      const file = join(dir, `cold-warmup-${r.name}-${set}.txt`);
      writeQueryFile(file, names);
      log(`cold warm-up ${set + 1}/${options.coldWarmupSets}: ${r.name}, ${names.length} fresh names (unmeasured)`);
      await runDnsperf({ server: r.server, port: r.port, dataFile: file, seconds: options.coldMaxSeconds, maxRuns: 1, clients: options.coldClients, outstanding: warmLevel }, registry);
      await settle(hierarchy, options.clock);
    }
  }

  type Cold = ResolverDetail['cold'];
  const fixed: Record<string, Fixed[]> = { mxsentry: [], unbound: [] };
  const peak: Record<string, Peak[]> = { mxsentry: [], unbound: [] };
  /** resolver -> outstanding level -> rounds. */
  const cold: Record<string, Map<number, Cold[]>> = { mxsentry: new Map(), unbound: new Map(), 'node-cold-floor': new Map() };

  for (let round = 0; round < options.rounds; round++) {
    for (const r of resolvers) await warm(r); // keeps the hot set cached whatever expired meanwhile (60 s negative TTL in the DNSBL zone)
    const pieceSeconds = options.fixedSeconds / options.fixedChunks;
    const totals = new Map(resolvers.map((r) => [r.name, { sent: 0, answered: 0, lost: 0, cpuMicros: 0, runTimeSec: 0, latencySec: 0 }]));
    log(`round ${round + 1}/${options.rounds}: ${resolvers.map((r) => r.name).join(' and ')} at ${options.fixedQps} qps, ${options.fixedChunks} pieces of ${pieceSeconds} s each, taking turns`);
    for (let piece = 0; piece < options.fixedChunks; piece++) {
      for (const r of piece % 2 === 0 ? resolvers : [...resolvers].reverse()) {
        const { result, cpuMicros } = await measured(r, () =>
          runDnsperf({ server: r.server, port: r.port, dataFile: hotFile, seconds: pieceSeconds, maxQps: options.fixedQps, clients: 1, outstanding: options.peakOutstanding }, registry));
        const t = totals.get(r.name)!;
        t.sent += result.sent;
        t.answered += result.completed;
        t.lost += result.lost;
        t.cpuMicros += cpuMicros;
        t.runTimeSec += result.runTimeSec;
        t.latencySec += result.avgLatencySec * result.completed;
      }
    }
    for (const [name, t] of totals) {
      fixed[name]?.push({
        offeredQps: options.fixedQps,
        answered: t.answered,
        lostPct: pct(t.lost, t.sent),
        cpuMicrosPerAnswer: t.answered > 0 ? t.cpuMicros / t.answered : NaN,
        cpuCorePct: pct(t.cpuMicros, t.runTimeSec * 1e6),
        avgLatencyMs: t.answered > 0 ? (t.latencySec / t.answered) * 1000 : NaN,
      });
    }
    {
      log(`round ${round + 1}/${options.rounds}: the Node.js UDP floor at ${options.fixedQps} qps for ${options.fixedSeconds} s`);
      const { result, cpuMicros } = await measured(floor, () =>
        runDnsperf({ server: floor.server, port: floor.port, dataFile: hotFile, seconds: options.fixedSeconds, maxQps: options.fixedQps, clients: 1, outstanding: options.peakOutstanding }, registry));
      if (result.completed > 0) floorRuns.push(cpuMicros / result.completed);
    }
    for (const r of resolvers) {
      log(`round ${round + 1}/${options.rounds}: ${r.name} unlimited for ${options.peakSeconds} s (-c ${options.peakClients} -q ${options.peakOutstanding})`);
      const { result, cpuMicros } = await measured(r, () =>
        runDnsperf({ server: r.server, port: r.port, dataFile: hotFile, seconds: options.peakSeconds, clients: options.peakClients, outstanding: options.peakOutstanding }, registry));
      peak[r.name]?.push({
        qps: result.qps,
        lostPct: pct(result.lost, result.sent),
        cpuCorePct: pct(cpuMicros, result.runTimeSec * 1e6),
        avgLatencyMs: result.avgLatencySec * 1000,
      });
    }
    for (const [li, outstanding] of levels.entries()) {
      const names = coldNamesOf(round * levels.length + li);
      // The floor keeps nothing, so it takes the names the resolvers had (still fresh upstream).
      for (const r of [...resolvers, coldFloor]) {
        const coldFile = join(dir, `cold-${r.name}-${round}-${outstanding}.txt`);
        writeQueryFile(coldFile, names);
        log(`round ${round + 1}/${options.rounds}: ${r.name} cold, ${names.length} fresh names once each (-c ${options.coldClients} -q ${outstanding})`);
        const runs = cold[r.name]?.get(outstanding) ?? [];
        runs.push(await coldRound(r, hierarchy, coldFile, names.length, outstanding, options, registry));
        cold[r.name]?.set(outstanding, runs);
      }
    }
  }

  for (const r of resolvers) {
    const status = r.process.exitStatus;
    if (status) throw new MxError('BENCH_ERR_EXIT', `${r.name} exited during the bench (${status.code ?? status.signal}): ${r.process.describeOutput()}`);
  }

  const detail = (name: 'mxsentry' | 'unbound'): ResolverDetail => {
    const byLevel = [...(cold[name] ?? new Map<number, Cold[]>()).values()].map((runs) => medianOf(runs));
    const best = byLevel.reduce((a, b) => (b.resolvedPerSec > a.resolvedPerSec ? b : a));
    const all = [...(cold[name] ?? new Map<number, Cold[]>()).values()].flat();
    return {
      fixedRate: medianOf(fixed[name] ?? []),
      peak: medianOf(peak[name] ?? []),
      cold: best,
      coldByOutstanding: Object.fromEntries(byLevel.map((c) => [String(c.outstanding), c.resolvedPerSec])),
      coldCpuByOutstanding: Object.fromEntries(byLevel.map((c) => [String(c.outstanding), c.cpuCorePct])),
      upstreamPerColdName: all.reduce((n, c) => n + c.upstreamQueries, 0) / all.reduce((n, c) => n + c.answered, 0),
      probeAnswers: probeAnswers[name],
    };
  };
  const details = { mxsentry: detail('mxsentry'), unbound: detail('unbound') };

  for (const name of ['mxsentry', 'unbound'] as const) {
    const d = details[name];
    if (d.fixedRate.lostPct > 1) warnings.push(`${name} lost ${d.fixedRate.lostPct.toFixed(1)}% at the fixed rate: it cannot sustain ${options.fixedQps} qps here, so its CPU per answer is understated`);
    if (d.fixedRate.answered < 0.95 * options.fixedQps * options.fixedSeconds) warnings.push(`${name} answered ${d.fixedRate.answered} of ${options.fixedQps * options.fixedSeconds} offered at the fixed rate (dnsperf could not offer the full rate?)`);
    if (d.peak.lostPct > 1) warnings.push(`${name} lost ${d.peak.lostPct.toFixed(1)}% of queries at peak load`);
    if (d.peak.cpuCorePct < 85) warnings.push(`${name} used only ${d.peak.cpuCorePct.toFixed(0)}% of a core at peak: the limit was elsewhere (dnsperf or other load on the machine), not the resolver`);
    for (const [level, runs] of cold[name] ?? []) {
      const c = medianOf(runs);
      if (c.servfail > 0 || c.lost > 0) warnings.push(`${name} cold run at -q ${level}: ${c.servfail} SERVFAIL, ${c.lost} lost of ${c.names} (medians)`);
    }
    if (d.cold.authorityCorePct > 60) warnings.push(`the fake authorities used ${d.cold.authorityCorePct.toFixed(0)}% of a core during ${name}'s best cold run: they may limit its cold rate`);
    if (d.cold.cpuCorePct < 85) warnings.push(`${name} used ${d.cold.cpuCorePct.toFixed(0)}% of a core in its best cold run (-q ${d.cold.outstanding}): its cold rate was limited by concurrency or the machine, not its own CPU`);
  }

  const compare = (metric: string, unit: string, mxv: number, ubv: number, target?: (ratio: number, mxv: number) => { text: string; met: boolean }): Comparison => {
    const ratio = ubv > 0 ? mxv / ubv : NaN;
    const c: Comparison = { metric, unit, mxsentry: mxv, unbound: ubv, ratio };
    if (target) c.target = target(ratio, mxv);
    return c;
  };
  const m = details.mxsentry;
  const u = details.unbound;
  const comparisons = [
    compare(`CPU per cache-hit answer at ${options.fixedQps} qps`, 'us', m.fixedRate.cpuMicrosPerAnswer, u.fixedRate.cpuMicrosPerAnswer,
      (ratio) => ({ text: 'ratio <= 1.5', met: ratio <= 1.5 })),
    compare('peak cache-hit queries per second', 'qps', m.peak.qps, u.peak.qps),
    compare('cold resolutions per second (best -q)', '/s', m.cold.resolvedPerSec, u.cold.resolvedPerSec,
      (ratio) => ({ text: 'ratio >= 0.5', met: ratio >= 0.5 })),
    compare('upstream queries per cold name', 'queries', m.upstreamPerColdName, u.upstreamPerColdName,
      (_ratio, mxv) => ({ text: 'mxsentry <= 1.05', met: mxv <= 1.05 })),
  ];

  log('stopping');
  await mx.stop();
  await ub.stop();
  await floor.stop();
  await coldFloor.stop();
  await hierarchy.stop();
  const floorMicros = median(floorRuns);
  const coldFloorBest = [...(cold['node-cold-floor'] ?? new Map<number, Cold[]>()).values()].map((runs) => medianOf(runs))
    .reduce((a, b) => (b.resolvedPerSec > a.resolvedPerSec ? b : a));
  return {
    comparisons, details, options: stripFunctions(options), warnings,
    nodeUdpFloor: { cpuMicrosPerPacket: floorMicros, ratioToUnbound: floorMicros / u.fixedRate.cpuMicrosPerAnswer },
    nodeColdFloor: {
      resolvedPerSec: coldFloorBest.resolvedPerSec, ratioToUnbound: coldFloorBest.resolvedPerSec / u.cold.resolvedPerSec,
      cpuCorePct: coldFloorBest.cpuCorePct, outstanding: coldFloorBest.outstanding,
    },
    startedAt: new Date(t0).toISOString(), durationSec: (clock.nowMs() - t0) / 1000,
  };
}

/** Runs `fn` and returns its dnsperf result with the resolver's CPU time over it. */
async function measured(r: ResolverInstance, fn: () => Promise<DnsperfResult>): Promise<{ result: DnsperfResult; cpuMicros: number }> {
  const before = processCpuMicros(r.process.pid);
  const result = await fn();
  const cpuMicros = processCpuMicros(r.process.pid) - before;
  return { result, cpuMicros };
}

/**
 * One cold round: every name asked once; upstream queries counted at the fake servers from just
 * before the run until the resolver has been quiet (late background fetches included, bounded).
 */
async function coldRound(
  r: ResolverInstance,
  hierarchy: BenchHierarchy,
  dataFile: string,
  names: number,
  outstanding: number,
  options: DnsBenchOptions,
  registry: ResourceRegistry,
): Promise<ResolverDetail['cold']> {
  await settle(hierarchy, options.clock);
  hierarchy.clearQueries();
  const authorityBefore = process.cpuUsage();
  const dropsBefore = udpReceiveErrors();
  const { result, cpuMicros } = await measured(r, () =>
    runDnsperf({ server: r.server, port: r.port, dataFile, seconds: options.coldMaxSeconds, maxRuns: 1, clients: options.coldClients, outstanding }, registry));
  const authority = process.cpuUsage(authorityBefore);
  const udpDrops = udpReceiveErrors() - dropsBefore;
  await settle(hierarchy, options.clock);
  const upstream = hierarchy.queryCount();
  const noerror = result.rcodes.NOERROR ?? 0;
  const nxdomain = result.rcodes.NXDOMAIN ?? 0;
  const authorityMicros = authority.user + authority.system;
  return {
    outstanding,
    names,
    answered: result.completed,
    resolvedPerSec: result.runTimeSec > 0 ? (noerror + nxdomain) / result.runTimeSec : 0,
    noerror,
    nxdomain,
    servfail: result.rcodes.SERVFAIL ?? 0,
    lost: result.lost,
    upstreamQueries: upstream,
    upstreamPerName: result.completed > 0 ? upstream / result.completed : NaN,
    avgLatencyMs: result.avgLatencySec * 1000,
    cpuCorePct: pct(cpuMicros, result.runTimeSec * 1e6),
    udpDrops,
    authorityMicrosPerQuery: upstream > 0 ? authorityMicros / upstream : 0,
    authorityCorePct: pct(authorityMicros, result.runTimeSec * 1e6),
  };
}

/** Waits (at most 3 s) until the fake servers saw no query for 300 ms. */
async function settle(hierarchy: BenchHierarchy, clock: Clock): Promise<void> {
  const start = clock.nowMs();
  let last = hierarchy.queryCount();
  let quietSince = clock.nowMs();
  while (clock.nowMs() - start < 3000) {
    await new Promise((res) => setTimeout(res, 50));
    const n = hierarchy.queryCount();
    if (n !== last) {
      last = n;
      quietSince = clock.nowMs();
    } else if (clock.nowMs() - quietSince >= 300) return;
  }
}

function stripFunctions(o: DnsBenchOptions): Omit<DnsBenchOptions, 'clock' | 'log'> {
  const { clock: _clock, log: _log, ...rest } = o;
  return rest;
}
