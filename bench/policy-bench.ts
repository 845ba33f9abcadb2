// The policy benchmark of issue 3: mxsentry's Postfix policy service against postgrey from Debian,
// in one run, with the same request mix (bench/lib/policy-traffic.ts) from a separate load
// generator process (bench/lib/policy-load.ts): decisions/s and p50/p99 latency at K persistent
// connections, with ratios. Called by bench/run.ts. Loopback only; every phase is bounded in count
// and time; whatever it starts (daemons, fake DNS tree, temp dir) is registered for cleanup.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startSharedPortTree } from '../test/helpers/daemon.js';
import { standardTree, type HierarchySpec } from '../test/helpers/fake-hierarchy.js';
import type { Clock } from '../src/util/clock.js';
import { MxError, describeError } from '../src/util/errors.js';
import type { ResourceRegistry } from './lib/managed-process.js';
import { askPolicy, spawnPolicyLoad, type PolicyLoadOptions, type PolicyLoadResult } from './lib/policy-load.js';
import { debianWhitelistFiles, startMxsentryPolicy, startPostgrey, type PolicyInstance, type PolicySetup } from './lib/policy-instances.js';
import { ATTRIBUTES_PER_REQUEST, encodeTripletRequest, type PolicyTrafficOptions } from './lib/policy-traffic.js';
import { formatNumber, median } from './lib/results-table.js';

/** Knobs of one policy bench run; DEFAULT_POLICY_BENCH_OPTIONS is what `npm run bench` uses. */
export interface PolicyBenchOptions {
  /** Persistent connections per measured run (each level is measured for both services). */
  connectionLevels: number[];
  /** Measurement rounds per level; the report gives medians. */
  rounds: number;
  /** Length of one measured run, seconds. */
  seconds: number;
  /** Count bound of one measured run. */
  maxRequests: number;
  /** Unmeasured load per service before measuring (JIT, page cache, DB growth), seconds. */
  jitSeconds: number;
  /**
   * Offered load of the paced run at TARGET_CONNECTIONS, decisions/s (0: none): latency and CPU per
   * decision at a rate both services sustain, besides the saturating runs above.
   */
  pacedRate: number;
  /** Greylisting delay of both services, seconds; the bench waits it out once so pool triplets pass. */
  delaySec: number;
  traffic: PolicyTrafficOptions;
  /** A reply slower than this is an error (Postfix's smtpd_policy_service_timeout is 100 s). */
  requestTimeoutMs: number;
  /** mxsentry --log-level: 'info' logs every decision, like postgrey. */
  mxsentryLogLevel: string;
  /** When set, mxsentry runs under `node --cpu-prof` and writes its profile into this folder. */
  cpuProfileDir?: string;
  clock: Clock;
  /** Progress lines. */
  log: (line: string) => void;
}

/** Defaults: 1, 16 and 64 connections flat out plus 16 paced, 3 rounds of 6 s: about 5-6 minutes. */
export const DEFAULT_POLICY_BENCH_OPTIONS: Omit<PolicyBenchOptions, 'clock' | 'log'> = {
  connectionLevels: [1, 16, 64],
  rounds: 3,
  seconds: 6,
  maxRequests: 1_000_000,
  jitSeconds: 5,
  pacedRate: 200,
  delaySec: 60,
  traffic: { poolSeed: 'mxsentry-policy-bench', poolTriplets: 2000, poolClients: 500, freshClients: 1500, repeatShare: 0.7 },
  requestTimeoutMs: 10_000,
  mxsentryLogLevel: 'info',
};

/** The level the issue's targets apply to. */
export const TARGET_CONNECTIONS = 16;

/** One kind of measured run: connections, and the offered rate (0: as fast as answered). */
export interface PolicyLoadPoint {
  connections: number;
  ratePerSec: number;
}

/** 'N conns' or 'N conns @ R/s'. */
export function describeLoadPoint(p: PolicyLoadPoint): string {
  return p.ratePerSec > 0 ? `${p.connections} conns @ ${p.ratePerSec}/s` : `${p.connections} conns`;
}

/** Per-service figures at one load point: medians over rounds, sums for counts. */
export interface PolicyLevelDetail extends PolicyLoadPoint {
  decisionsPerSec: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Service CPU (all threads) per answered decision. */
  cpuMicrosPerDecision: number;
  /** The main thread's share of it (the rest: GC helpers, libuv pool, LMDB's write thread; BDB has none). */
  mainThreadCpuMicrosPerDecision: number;
  /** Service CPU as a share of one core during the runs. */
  cpuCorePct: number;
  /** The load generator's CPU as a share of one core (it shares the 2 cores). */
  loaderCorePct: number;
  /**
   * Share of the run the service's main thread was runnable but waiting for a CPU (other processes
   * on the shared cores); high values mean its rate and tail latency were the machine's, not its own.
   */
  mainThreadRunQueueWaitPct: number;
  /** Sums over rounds. */
  answered: number;
  repeated: number;
  errors: number;
  actions: Record<string, number>;
  /** Median p50/p99 per action word (DEFER_IF_PERMIT decisions write the store, most DUNNO do not). */
  latencyByAction: Record<string, { p50Ms: number; p99Ms: number }>;
  /** Queries the fake DNS tree received during the measured runs (0: every DNSBL answer was cached). */
  upstreamQueries: number;
}

/** One metric for both services. */
export interface PolicyComparison extends PolicyLoadPoint {
  metric: string;
  unit: string;
  mxsentry: number;
  postgrey: number;
  /** mxsentry / postgrey. */
  ratio: number;
  target?: { text: string; met: boolean };
}

export interface PolicyBenchReport {
  comparisons: PolicyComparison[];
  details: { mxsentry: PolicyLevelDetail[]; postgrey: PolicyLevelDetail[] };
  /** Every measured run, for the lead's note. */
  runs: Array<PolicyLoadPoint & { service: string; round: number; result: PolicyLoadResult; upstreamQueries: number }>;
  /** What each side does per decision, so the ratio is read correctly. */
  notes: string[];
  warnings: string[];
  options: Omit<PolicyBenchOptions, 'clock' | 'log'>;
  startedAt: string;
  durationSec: number;
}

const pct = (part: number, whole: number): number => (whole > 0 ? (100 * part) / whole : 0);

/** The DNSBL zone of standardTree(), asked by mxsentry for every client. */
export const BENCH_DNSBL_ZONE = 'dnsbl.example.net.';

/**
 * A copy of `tree` whose DNSBL zone has SOA minimum (the negative TTL, RFC 2308 section 5) of
 * `negativeTtlSec`: standardTree()'s 60 s would expire the "not listed" answers of the warm-up in
 * the middle of a measured run, and the issue measures decisions with the DNSBL answers cached.
 */
export function withDnsblNegativeTtl(tree: HierarchySpec, negativeTtlSec: number): HierarchySpec {
  const zones: HierarchySpec['zones'] = {};
  for (const [origin, z] of Object.entries(tree.zones)) {
    zones[origin] = {
      records: origin !== BENCH_DNSBL_ZONE ? [...z.records] : z.records.map((r) => (/^@\s+\d+\s+IN\s+SOA\s/.test(r) ? r.replace(/\d+$/, String(negativeTtlSec)) : r)),
    };
  }
  const soa = zones[BENCH_DNSBL_ZONE]?.records.find((r) => /\sSOA\s/.test(r));
  if (!soa?.endsWith(` ${negativeTtlSec}`)) throw new MxError('BENCH_ERR_TREE', `policy bench: no SOA to adjust in ${BENCH_DNSBL_ZONE} (${soa ?? 'none'})`);
  return { zones, servers: tree.servers.map((sv) => ({ ...sv, zones: [...sv.zones] })) };
}

/** A request from the DNSBL-listed test client 127.0.0.2 (standardTree's dnsbl.example.net). */
function listedClientRequest(): string {
  return encodeTripletRequest(
    { client: '127.0.0.2', clientName: 'listed.bench.example', helo: 'listed.bench.example', sender: 'spam@bulk.example', recipient: 'user-aa@example.com' },
    'sanity.listed', 40000, 1000);
}

/** A fresh triplet from a client that is in neither the pool nor the fresh set. */
function sanityTripletRequest(tag: string): string {
  return encodeTripletRequest(
    { client: '10.250.0.9', clientName: 'sanity.bench.example', helo: 'sanity.bench.example', sender: `sanity-${tag}@example.org`, recipient: 'user-ab@example.com' },
    `sanity.${tag}`, 40001, 1000);
}

/**
 * Checks both services decide what the bench assumes: a fresh triplet is deferred, its immediate
 * retry is deferred too, and (mxsentry) a DNSBL-listed client is rejected with the list's name, so
 * the DNSBL step really runs. Throws with the replies otherwise.
 */
async function sanityCheck(services: readonly PolicyInstance[], tag: string): Promise<void> {
  for (const s of services) {
    const first = await askPolicy(s.host, s.port, sanityTripletRequest(tag));
    const again = await askPolicy(s.host, s.port, sanityTripletRequest(tag));
    if (!/^action=DEFER_IF_PERMIT\b/.test(first) || !/^action=DEFER_IF_PERMIT\b/.test(again)) {
      throw new MxError('BENCH_ERR_SANITY', `${s.name} does not greylist a new triplet as assumed: ${JSON.stringify(first)}, then ${JSON.stringify(again)}`);
    }
    if (s.name === 'mxsentry') {
      const listed = await askPolicy(s.host, s.port, listedClientRequest());
      if (!/^action=(REJECT|5\d\d)\b/.test(listed) || !listed.includes('dnsbl.example.net')) {
        throw new MxError('BENCH_ERR_SANITY', `mxsentry does not reject the DNSBL-listed client 127.0.0.2: ${JSON.stringify(listed)}`);
      }
    }
  }
}

/** Runs the whole policy bench; the caller owns `registry` and calls stopAll() in any case. */
export async function runPolicyBench(options: PolicyBenchOptions, registry: ResourceRegistry): Promise<PolicyBenchReport> {
  const { clock, log } = options;
  const t0 = clock.nowMs();
  const warnings: string[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-policy-bench-'));
  registry.add(`remove ${dir}`, () => rm(dir, { recursive: true, force: true }));

  log(`starting the fake DNS tree (standardTree, ${BENCH_DNSBL_ZONE} with a 3600 s negative TTL) on 127.53.x.y`);
  const tree = await startSharedPortTree(withDnsblNegativeTtl(standardTree(), 3600));
  registry.add('stop the fake DNS tree', () => tree.stop());
  const rootHintsFile = join(dir, 'root.hints');
  writeFileSync(rootHintsFile, tree.rootHints);

  const whitelists = debianWhitelistFiles();
  const setup = (name: string): PolicySetup => {
    const d = join(dir, name);
    mkdirSync(d, { recursive: true });
    return { dir: d, delaySec: options.delaySec, whitelistClientFiles: whitelists.clients, whitelistRecipientFiles: whitelists.recipients, clock };
  };
  log(`starting mxsentry and postgrey (delay ${options.delaySec} s, whitelists: ${[...whitelists.clients, ...whitelists.recipients].join(', ') || 'none'})`);
  const mx = await startMxsentryPolicy({
    ...setup('mxsentry'), rootHintsFile, upstreamPort: tree.port, dnsbl: 'dnsbl.example.net', logLevel: options.mxsentryLogLevel,
    ...(options.cpuProfileDir ? { cpuProfileDir: options.cpuProfileDir } : {}),
  }, registry);
  const pg = await startPostgrey(setup('postgrey'), registry);
  const services = [mx, pg] as const;
  await sanityCheck(services, 'start');

  const load = (s: PolicyInstance, phase: PolicyLoadOptions['phase'], connections: number, seconds: number, runSeed: string, ratePerSec = 0): Promise<PolicyLoadResult> =>
    spawnPolicyLoad({
      host: s.host, port: s.port, connections, phase, seconds, maxRequests: options.maxRequests, traffic: options.traffic, ratePerSec,
      runSeed, requestTimeoutMs: options.requestTimeoutMs, daemonPid: s.process.pid,
    }, registry);

  const { traffic } = options;
  log(`seeding both with the pool (${traffic.poolTriplets} triplets from ${traffic.poolClients} clients) and warming ${traffic.freshClients} fresh clients`);
  for (const s of services) await load(s, 'warmup', 16, 120, 'seed');
  const seededAt = clock.nowMs();
  for (const s of services) {
    log(`JIT warm-up: ${s.name}, ${TARGET_CONNECTIONS} connections for ${options.jitSeconds} s`);
    await load(s, 'measure', TARGET_CONNECTIONS, options.jitSeconds, 'jit');
  }
  // Pool triplets must have passed greylisting before measuring, so that repeats are what they are
  // on a real MX (known senders pass) and only fresh triplets defer. Their clients are not
  // auto-whitelisted: both count at most one pass per client per hour.
  const waitMs = seededAt + options.delaySec * 1000 + 1000 - clock.nowMs();
  if (waitMs > 0) {
    log(`waiting ${Math.ceil(waitMs / 1000)} s until the ${options.delaySec} s greylisting delay of the pool has passed`);
    await new Promise((r) => setTimeout(r, waitMs));
  }

  const points: PolicyLoadPoint[] = [
    ...options.connectionLevels.map((connections) => ({ connections, ratePerSec: 0 })),
    ...(options.pacedRate > 0 ? [{ connections: TARGET_CONNECTIONS, ratePerSec: options.pacedRate }] : []),
  ];
  const runs: PolicyBenchReport['runs'] = [];
  for (let round = 0; round < options.rounds; round++) {
    for (const point of points) {
      const order = round % 2 === 0 ? services : ([...services].reverse() as PolicyInstance[]);
      for (const s of order) {
        const seed = `r${round}c${point.connections}q${point.ratePerSec}`;
        // Re-sends the pool and asks for every client once more (their DNSBL answers stay cached: 3600 s negative TTL).
        await load(s, 'warmup', 16, 120, seed);
        log(`round ${round + 1}/${options.rounds}: ${s.name}, ${describeLoadPoint(point)} for ${options.seconds} s`);
        tree.clearQueries();
        const result = await load(s, 'measure', point.connections, options.seconds, seed, point.ratePerSec);
        const upstreamQueries = tree.allQueries().length;
        runs.push({ service: s.name, round, ...point, result, upstreamQueries });
        if (s.process.exitStatus) throw new MxError('BENCH_ERR_EXIT', `${s.name} exited during the bench: ${s.process.describeOutput()}`);
      }
    }
  }
  await sanityCheck(services, 'end');

  const detail = (name: PolicyInstance['name'], point: PolicyLoadPoint): PolicyLevelDetail => {
    const rs = runs.filter((r) => r.service === name && r.connections === point.connections && r.ratePerSec === point.ratePerSec);
    const res = rs.map((r) => r.result);
    const actions: Record<string, number> = {};
    for (const r of res) for (const [k, v] of Object.entries(r.actions)) actions[k] = (actions[k] ?? 0) + v;
    return {
      ...point,
      decisionsPerSec: median(res.map((r) => r.decisionsPerSec)),
      p50Ms: median(res.map((r) => r.latencyMs.p50)),
      p90Ms: median(res.map((r) => r.latencyMs.p90)),
      p99Ms: median(res.map((r) => r.latencyMs.p99)),
      maxMs: Math.max(...res.map((r) => r.latencyMs.max)),
      cpuMicrosPerDecision: median(res.map((r) => (r.daemonCpuMicros ?? NaN) / r.answered)),
      mainThreadCpuMicrosPerDecision: median(res.map((r) => (r.daemonMainThread?.onCpuMicros ?? NaN) / r.answered)),
      cpuCorePct: median(res.map((r) => pct(r.daemonCpuMicros ?? NaN, r.elapsedSec * 1e6))),
      loaderCorePct: median(res.map((r) => pct(r.loaderCpuMicros, r.elapsedSec * 1e6))),
      mainThreadRunQueueWaitPct: median(res.map((r) => pct(r.daemonMainThread?.runQueueWaitMicros ?? NaN, r.elapsedSec * 1e6))),
      answered: res.reduce((n, r) => n + r.answered, 0),
      repeated: res.reduce((n, r) => n + r.repeated, 0),
      errors: res.reduce((n, r) => n + r.errors, 0),
      actions,
      latencyByAction: Object.fromEntries(Object.keys(actions).map((k) => [k, {
        p50Ms: median(res.flatMap((r) => (r.latencyByActionMs[k] ? [r.latencyByActionMs[k].p50] : []))),
        p99Ms: median(res.flatMap((r) => (r.latencyByActionMs[k] ? [r.latencyByActionMs[k].p99] : []))),
      }])),
      upstreamQueries: rs.reduce((n, r) => n + r.upstreamQueries, 0),
    };
  };
  const details = {
    mxsentry: points.map((pt) => detail('mxsentry', pt)),
    postgrey: points.map((pt) => detail('postgrey', pt)),
  };

  const comparisons: PolicyComparison[] = [];
  for (const [i, point] of points.entries()) {
    const m = details.mxsentry[i] as PolicyLevelDetail;
    const p = details.postgrey[i] as PolicyLevelDetail;
    const atTarget = point.connections === TARGET_CONNECTIONS;
    const row = (metric: string, unit: string, mv: number, pv: number, target?: PolicyComparison['target']): void => {
      comparisons.push({ ...point, metric, unit, mxsentry: mv, postgrey: pv, ratio: pv > 0 ? mv / pv : NaN, ...(target ? { target } : {}) });
    };
    const ratio = p.decisionsPerSec > 0 ? m.decisionsPerSec / p.decisionsPerSec : NaN;
    const flatOut = point.ratePerSec === 0;
    row(flatOut ? 'decisions per second' : 'decisions per second (offered)', '/s', m.decisionsPerSec, p.decisionsPerSec,
      atTarget && flatOut ? { text: 'ratio >= 5', met: ratio >= 5 } : undefined);
    row('latency p50', 'ms', m.p50Ms, p.p50Ms);
    row('latency p99', 'ms', m.p99Ms, p.p99Ms, atTarget ? { text: 'mxsentry < 5 ms', met: m.p99Ms < 5 } : undefined);
    row('service CPU per decision', 'us', m.cpuMicrosPerDecision, p.cpuMicrosPerDecision);
  }

  for (const name of ['mxsentry', 'postgrey'] as const) {
    for (const d of details[name]) {
      if (d.errors > 0) warnings.push(`${name} at ${describeLoadPoint(d)}: ${d.errors} failed requests (see runs[].result.firstError)`);
      // Fresh triplets are deferred, repeats pass: anything else means the two did different work.
      const deferred = d.actions.DEFER_IF_PERMIT ?? 0;
      const fresh = d.answered - d.repeated;
      if (Math.abs(deferred - fresh) > 0.02 * d.answered) {
        warnings.push(`${name} at ${describeLoadPoint(d)} deferred ${deferred} requests but got ${fresh} fresh triplets: the mix did not play out as designed (actions: ${JSON.stringify(d.actions)})`);
      }
      const other = Object.keys(d.actions).filter((k) => !['DEFER_IF_PERMIT', 'DUNNO', 'PREPEND'].includes(k));
      if (other.length > 0) warnings.push(`${name} at ${describeLoadPoint(d)} answered unexpected actions: ${other.map((k) => `${k} x${d.actions[k] ?? 0}`).join(', ')}`);
      if (d.mainThreadRunQueueWaitPct > 10) {
        warnings.push(`${name}'s main thread waited for a CPU ${d.mainThreadRunQueueWaitPct.toFixed(0)}% of the time at ${describeLoadPoint(d)} (other processes on the 2 cores): its rate and tail latency there are the machine's`);
      } else if (d.ratePerSec === 0 && d.cpuCorePct < 85 && name === 'mxsentry') {
        warnings.push(`mxsentry used ${d.cpuCorePct.toFixed(0)}% of a core at ${describeLoadPoint(d)} without waiting for a CPU: its rate there was limited by round trips (sequential connections) or by waiting (store commits), not by its CPU`);
      }
      if (d.cpuCorePct + d.loaderCorePct > 170) {
        warnings.push(`${name} at ${describeLoadPoint(d)}: the service (${d.cpuCorePct.toFixed(0)}%) and the load generator (${d.loaderCorePct.toFixed(0)}%) used most of the 2 cores: the machine may be the limit`);
      }
    }
  }
  for (const d of details.mxsentry) {
    if (d.upstreamQueries > 0) warnings.push(`mxsentry made ${d.upstreamQueries} upstream DNS queries during the measured runs at ${describeLoadPoint(d)}: not every DNSBL answer came from the cache`);
  }

  const notes = [
    `Requests are Postfix 3.7 RCPT-stage requests (${ATTRIBUTES_PER_REQUEST} attributes); ${Math.round(100 * traffic.repeatShare)}% repeat one of ${traffic.poolTriplets} known triplets from ${traffic.poolClients} clients (passed greylisting; their clients are not auto-whitelisted, since both count at most one pass per client per hour), the rest are fresh triplets from ${traffic.freshClients} other clients (deferred).`,
    'mxsentry runs the full 11-step pipeline per decision (HELO and sender syntax, networks, SASL, a DNSBL lookup of the client answered from its resolver cache, greylisting in LMDB); postgrey does no DNS lookups, only its whitelists and greylisting in Berkeley DB.',
    `Both use the greylisting delay ${options.delaySec} s, the same whitelist files (${[...whitelists.clients, ...whitelists.recipients].join(', ') || 'none'}), and log one line per decision (mxsentry --log-level ${options.mxsentryLogLevel} to stdout, postgrey to stderr, both into a pipe).`,
    'Each connection is strictly sequential (one request in flight, as a Postfix smtpd process); the load generator is its own Node process on the same 2 cores.',
  ];

  log('stopping');
  await mx.stop();
  await pg.stop();
  await tree.stop();
  const { clock: _clock, log: _log, ...plainOptions } = options;
  return {
    comparisons, details, runs, notes, warnings, options: plainOptions,
    startedAt: new Date(t0).toISOString(), durationSec: (clock.nowMs() - t0) / 1000,
  };
}

/** The report as terminal text: the comparison table per level, details, notes and warnings. */
export function formatPolicyReport(report: PolicyBenchReport): string {
  const f = formatNumber;
  const header = ['load', 'metric', 'unit', 'mxsentry', 'postgrey', 'ratio', 'target'];
  const body = report.comparisons.map((c) => [
    describeLoadPoint(c), c.metric, c.unit, f(c.mxsentry), f(c.postgrey), Number.isFinite(c.ratio) ? `${c.ratio.toFixed(2)}x` : 'n/a',
    c.target ? `${c.target.text}: ${c.target.met ? 'met' : 'NOT met'}` : '',
  ]);
  const all = [header, ...body];
  const widths = header.map((_, i) => Math.max(...all.map((row) => (row[i] ?? '').length)));
  const numeric = new Set([3, 4, 5]);
  const line = (row: string[]): string => row.map((cell, i) => (numeric.has(i) ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  const out = [
    `\nPolicy: mxsentry vs postgrey ${'(medians over rounds; ratio = mxsentry / postgrey)'}\n`,
    line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line),
    `\n${'details'.padEnd(52)}${'mxsentry'.padStart(30)}${'postgrey'.padStart(30)}`,
  ];
  for (const [i, m] of report.details.mxsentry.entries()) {
    const p = report.details.postgrey[i];
    if (!p) continue;
    const row = (label: string, get: (d: PolicyLevelDetail) => string): void => {
      out.push(`  ${`${describeLoadPoint(m)}: ${label}`.padEnd(50)}${get(m).padStart(30)}${get(p).padStart(30)}`);
    };
    row('p90 / max latency ms', (d) => `${f(d.p90Ms)} / ${f(d.maxMs)}`);
    row('service CPU % of a core', (d) => f(d.cpuCorePct));
    row('main thread CPU per decision us', (d) => f(d.mainThreadCpuMicrosPerDecision));
    row('load generator CPU % of a core', (d) => f(d.loaderCorePct));
    row('main thread waiting for a CPU, % of run', (d) => f(d.mainThreadRunQueueWaitPct));
    row('answered (repeats) / errors', (d) => `${d.answered} (${d.repeated}) / ${d.errors}`);
    row('actions', (d) => Object.entries(d.actions).sort().map(([k, v]) => `${k.replace('DEFER_IF_PERMIT', 'DEFER')}:${v}`).join(' '));
    row('p50 / p99 ms by action', (d) => Object.entries(d.latencyByAction).sort().map(([k, v]) => `${k.replace('DEFER_IF_PERMIT', 'DEFER')} ${f(v.p50Ms)}/${f(v.p99Ms)}`).join(' '));
    row('upstream DNS queries (fake tree)', (d) => (d === p ? '-' : String(d.upstreamQueries)));
  }
  out.push('\nnotes:', ...report.notes.map((n) => `  - ${n}`));
  if (report.warnings.length > 0) out.push('\nwarnings:', ...report.warnings.map((w) => `  - ${w}`));
  out.push(`\n${report.startedAt}, ${report.durationSec.toFixed(0)} s`);
  return out.join('\n');
}

/** Flags of the policy bench taken out of bench/run.ts's argument list (`--quick` is read, not taken). */
export const POLICY_BENCH_USAGE = `  --policy-connections N[,N..]  connections per measured policy run (default ${DEFAULT_POLICY_BENCH_OPTIONS.connectionLevels.join(',')})
  --policy-rounds N     policy measurement rounds, medians reported (default ${DEFAULT_POLICY_BENCH_OPTIONS.rounds})
  --policy-seconds N    length of one measured policy run (default ${DEFAULT_POLICY_BENCH_OPTIONS.seconds})
  --policy-rate N       offered decisions/s of the paced run at ${TARGET_CONNECTIONS} connections, 0: none (default ${DEFAULT_POLICY_BENCH_OPTIONS.pacedRate})
  --policy-delay N      greylisting delay of both services, waited out once (default ${DEFAULT_POLICY_BENCH_OPTIONS.delaySec})
  --policy-log-level L  mxsentry --log-level (default ${DEFAULT_POLICY_BENCH_OPTIONS.mxsentryLogLevel}: one line per decision, as postgrey)
  --policy-cpu-prof DIR run mxsentry under node --cpu-prof, profile written to DIR at its exit`;

/**
 * Takes the `--policy-*` flags out of `argv` and returns the policy bench options and the rest;
 * `--quick` (left in the rest) shortens the policy phases too. Throws on a bad value.
 */
export function parsePolicyBenchArgs(argv: readonly string[]): { options: Omit<PolicyBenchOptions, 'clock' | 'log'>; rest: string[] } {
  const o = { ...DEFAULT_POLICY_BENCH_OPTIONS, traffic: { ...DEFAULT_POLICY_BENCH_OPTIONS.traffic } };
  const rest: string[] = [];
  const positiveInt = (flag: string, v: string | undefined): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new MxError('BENCH_ERR_ARGS', `${flag} needs a positive integer, not '${v ?? ''}'`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--quick') {
      Object.assign(o, { rounds: 1, seconds: 3, jitSeconds: 2, delaySec: 10 });
      rest.push(a);
    } else if (a === '--policy-connections') o.connectionLevels = (argv[++i] ?? '').split(',').map((v) => positiveInt(a, v));
    else if (a === '--policy-rounds') o.rounds = positiveInt(a, argv[++i]);
    else if (a === '--policy-seconds') o.seconds = positiveInt(a, argv[++i]);
    else if (a === '--policy-rate') o.pacedRate = argv[i + 1] === '0' ? (i++, 0) : positiveInt(a, argv[++i]);
    else if (a === '--policy-delay') o.delaySec = positiveInt(a, argv[++i]);
    else if (a === '--policy-log-level') o.mxsentryLogLevel = argv[++i] ?? '';
    else if (a === '--policy-cpu-prof') o.cpuProfileDir = resolve(argv[++i] ?? '.');
    else rest.push(a);
  }
  return { options: o, rest };
}

/**
 * Writes `value` under `key` in the JSON results file, keeping the other benches' keys. An
 * unreadable existing file is reported and replaced, never silently.
 */
export function mergeBenchResults(file: string, key: string, value: unknown): void {
  let all: Record<string, unknown> = {};
  if (existsSync(file)) {
    try {
      const parsed = JSON.parse(readFileSync(file, 'utf8')) as unknown;
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) all = parsed as Record<string, unknown>;
      else console.error(`bench: ${file} held no JSON object; replacing it`);
    } catch (err) {
      console.error(`bench: ${file} is not readable JSON (${describeError(err)}); replacing it`);
    }
  }
  all[key] = value;
  writeFileSync(file, `${JSON.stringify(all, null, 2)}\n`);
}
