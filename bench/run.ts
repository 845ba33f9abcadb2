// Entry of `npm run bench` (node dist/bench/run.js): runs the benchmarks against the real peers
// (the DNS bench against Unbound, the policy bench against postgrey), prints the tables and writes dist/bench-results.json.
// Owns the cleanup: everything started is stopped at the end, on error and on SIGINT/SIGTERM.
// It is not part of `npm test` and must never leave a process or a temp folder behind.
import { join, resolve } from 'node:path';
import { systemClock } from '../src/util/clock.js';
import { describeError } from '../src/util/errors.js';
import { packageRoot } from '../src/util/paths.js';
import { DEFAULT_DNS_BENCH_OPTIONS, runDnsBench, type DnsBenchOptions, type DnsBenchReport } from './dns-bench.js';
import { ResourceRegistry } from './lib/managed-process.js';
import { formatComparisonTable, formatNumber } from './lib/results-table.js';
import { POLICY_BENCH_USAGE, formatPolicyReport, mergeBenchResults, parsePolicyBenchArgs, runPolicyBench, type PolicyBenchOptions } from './policy-bench.js';

const USAGE = `usage: node dist/bench/run.js [--only dns|policy] [--quick] [--rounds N] [--cold-names N] [--cold-warmup-sets N] [--cold-outstanding N,N] [--fixed-qps N] [--fixed-chunks N] [--no-replay-front] [--so-rcvbuf BYTES] [--cpu-prof DIR]
  --quick         one round with shorter phases (about a minute), for checking the setup
  --rounds N      measurement rounds per phase, medians reported (default ${DEFAULT_DNS_BENCH_OPTIONS.rounds})
  --cold-names N  fresh names per cold round (default ${DEFAULT_DNS_BENCH_OPTIONS.coldNames})
  --cold-warmup-sets N  sets of cold names each resolver resolves unmeasured before the rounds, so that
                  mxsentry's cold path is compiled (default ${DEFAULT_DNS_BENCH_OPTIONS.coldWarmupSets}; 0: none)
  --cold-outstanding N[,N..]  cold queries in flight (dnsperf -q); each resolver's best level counts
                  (default ${DEFAULT_DNS_BENCH_OPTIONS.coldOutstanding.join(',')})
  --fixed-qps N   offered load of the CPU-per-answer phase (default ${DEFAULT_DNS_BENCH_OPTIONS.fixedQps})
  --fixed-chunks N  pieces that phase is cut into, the resolvers taking turns (default ${DEFAULT_DNS_BENCH_OPTIONS.fixedChunks})
  --no-replay-front  let the fake authorities answer every query themselves (slower fakes)
  --so-rcvbuf BYTES  receive buffer of both resolvers' listening UDP sockets (mxsentry --so-rcvbuf,
                  Unbound so-rcvbuf; default 0: the OS default)
  --cpu-prof DIR  mxsentry runs with node --cpu-prof and writes its .cpuprofile of the whole run into DIR
  --only dns|policy  run one bench (default both: DNS vs Unbound, then policy vs postgrey)
${POLICY_BENCH_USAGE}
Needs root (the fake authorities listen on port 53 of 127.53.x.y), unbound and dnsperf installed.`;

/** Parses the command line into bench options; throws with the usage text on anything unknown. */
function parseBenchArgs(argv: readonly string[]): Omit<DnsBenchOptions, 'clock' | 'log'> {
  const o = { ...DEFAULT_DNS_BENCH_OPTIONS };
  const positiveInt = (flag: string, v: string | undefined): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new Error(`${flag} needs a positive integer, not '${v ?? ''}'\n${USAGE}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') Object.assign(o, { rounds: 1, fixedSeconds: 5, peakSeconds: 5, coldNames: 2000, warmupSeconds: 2, coldWarmupSets: 2 });
    else if (a === '--rounds') o.rounds = positiveInt(a, argv[++i]);
    else if (a === '--cold-names') o.coldNames = positiveInt(a, argv[++i]);
    else if (a === '--cold-warmup-sets') {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n < 0) throw new Error(`${a} needs a whole number, not '${argv[i] ?? ''}'\n${USAGE}`);
      o.coldWarmupSets = n;
    }
    else if (a === '--fixed-qps') o.fixedQps = positiveInt(a, argv[++i]);
    else if (a === '--fixed-chunks') o.fixedChunks = positiveInt(a, argv[++i]);
    else if (a === '--cold-outstanding') o.coldOutstanding = (argv[++i] ?? '').split(',').map((v) => positiveInt(a, v));
    else if (a === '--no-replay-front') o.replayFront = false;
    else if (a === '--so-rcvbuf') o.soRcvbuf = positiveInt(a, argv[++i]);
    else if (a === '--cpu-prof') o.cpuProfDir = resolve(argv[++i] ?? '');
    else if (a === '--help' || a === '-h') throw new Error(USAGE);
    else throw new Error(`unknown argument '${a ?? ''}'\n${USAGE}`);
  }
  return o;
}

function printReport(report: DnsBenchReport): void {
  const f = formatNumber;
  console.log('\nDNS: mxsentry vs Unbound (medians over rounds; ratio = mxsentry / unbound)\n');
  console.log(formatComparisonTable(report.comparisons));
  console.log(`\n${'details (cold: the best -q level)'.padEnd(46)}${'mxsentry'.padStart(21)}${'unbound'.padStart(21)}`);
  const row = (label: string, get: (d: DnsBenchReport['details']['mxsentry']) => string): void =>
    console.log(`  ${label.padEnd(44)}${get(report.details.mxsentry).padStart(21)}${get(report.details.unbound).padStart(21)}`);
  row('fixed rate: answered', (d) => f(d.fixedRate.answered));
  row('fixed rate: lost %', (d) => f(d.fixedRate.lostPct));
  row('fixed rate: resolver CPU % of a core', (d) => f(d.fixedRate.cpuCorePct));
  row('fixed rate: average latency ms', (d) => f(d.fixedRate.avgLatencyMs));
  row('peak: lost %', (d) => f(d.peak.lostPct));
  row('peak: resolver CPU % of a core', (d) => f(d.peak.cpuCorePct));
  row('peak: average latency ms', (d) => f(d.peak.avgLatencyMs));
  row('cold: resolutions/s by -q', (d) => Object.entries(d.coldByOutstanding).map(([q, v]) => `${q}:${Math.round(v)}`).join(' '));
  row('cold: resolver CPU % of a core by -q', (d) => Object.entries(d.coldCpuByOutstanding).map(([q, v]) => `${q}:${Math.round(v)}`).join(' '));
  row('cold, best -q: outstanding', (d) => f(d.cold.outstanding));
  row('cold: names asked / answered', (d) => `${d.cold.names}/${d.cold.answered}`);
  row('cold: NOERROR / NXDOMAIN', (d) => `${d.cold.noerror}/${d.cold.nxdomain}`);
  row('cold: SERVFAIL / lost', (d) => `${d.cold.servfail}/${d.cold.lost}`);
  row('cold: upstream queries', (d) => f(d.cold.upstreamQueries));
  row('cold, all runs: upstream per answered name', (d) => f(d.upstreamPerColdName));
  row('cold: UDP receive drops (machine-wide)', (d) => f(d.cold.udpDrops));
  row('cold: average latency ms', (d) => f(d.cold.avgLatencyMs));
  row('cold: resolver CPU % of a core', (d) => f(d.cold.cpuCorePct));
  row('cold: fake authorities us per query', (d) => f(d.cold.authorityMicrosPerQuery));
  row('cold: fake authorities CPU % of a core', (d) => f(d.cold.authorityCorePct));
  const fl = report.nodeUdpFloor;
  console.log(`\nnode:dgram UDP floor (receive + copy + send, no DNS work) at the fixed rate: ${f(fl.cpuMicrosPerPacket)} us per packet = ${f(fl.ratioToUnbound)}x Unbound's whole cache-hit answer (mxsentry's native UDP module is not bound by it)`);
  const cf = report.nodeColdFloor;
  console.log(`node:dgram cold floor (a fresh connected dgram socket per name, query forwarded and reply relayed, no DNS work): ${f(cf.resolvedPerSec)}/s at -q ${cf.outstanding} (${f(cf.cpuCorePct)}% of a core) = ${f(cf.ratioToUnbound)}x Unbound's cold rate`);
  if (report.warnings.length > 0) {
    console.log('\nwarnings:');
    for (const w of report.warnings) console.log(`  - ${w}`);
  }
  console.log(`\n${report.startedAt}, ${report.durationSec.toFixed(0)} s`);
}

async function main(): Promise<number> {
  let base: Omit<DnsBenchOptions, 'clock' | 'log'>;
  let policyBase: Omit<PolicyBenchOptions, 'clock' | 'log'>;
  const argv = process.argv.slice(2);
  const onlyAt = argv.indexOf('--only');
  const only = onlyAt >= 0 ? (argv.splice(onlyAt, 2)[1] ?? '') : undefined;
  try {
    if (only !== undefined && only !== 'dns' && only !== 'policy') throw new Error(`--only takes dns or policy, not '${only}'\n${USAGE}`);
    const split = parsePolicyBenchArgs(argv);
    policyBase = split.options;
    base = parseBenchArgs(split.rest);
  } catch (err) {
    console.error((err as Error).message);
    return 2;
  }
  if (only !== 'policy' && process.getuid?.() !== 0) {
    console.error('the DNS bench needs root: its fake authorities listen on port 53 (Unbound queries no other port)');
    return 2;
  }
  const registry = new ResourceRegistry();
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    console.error(`\n${sig}: stopping everything the bench started`);
    registry.stopAll().then(
      () => process.exit(130),
      (err: unknown) => {
        console.error(`cleanup failed: ${describeError(err)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // If anything exits the process without the cleanup above, the children must not outlive it.
  process.on('exit', () => registry.killAllNow());

  const log = (line: string): void => console.log(`[bench] ${line}`);
  try {
    const out = join(packageRoot(), 'dist', 'bench-results.json');
    if (only !== 'policy') {
      const report = await runDnsBench({ ...base, clock: systemClock, log }, registry);
      printReport(report);
      mergeBenchResults(out, 'dns', report);
    }
    if (only !== 'dns') {
      const policy = await runPolicyBench({ ...policyBase, clock: systemClock, log }, registry);
      console.log(formatPolicyReport(policy));
      mergeBenchResults(out, 'policy', policy);
    }
    console.log(`results written to ${out}`);
    return 0;
  } catch (err) {
    if (interrupted) return 130;
    console.error(`bench failed: ${describeError(err)}`);
    return 1;
  } finally {
    await registry.stopAll();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`bench failed: ${describeError(err)}`);
    process.exit(1);
  },
);
