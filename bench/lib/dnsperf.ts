// Runs Debian's dnsperf (the load generator of the DNS bench) against one resolver and parses its
// statistics block. Called by bench/dns-bench.ts. Loopback targets only; every run is bounded by
// dnsperf's own -l limit plus a watchdog that stops it.
import { writeFileSync } from 'node:fs';
import { MxError } from '../../src/util/errors.js';
import { runToCompletion, type ResourceRegistry } from './managed-process.js';

/** One dnsperf run. */
export interface DnsperfOptions {
  /** Resolver under test: loopback address and port. */
  server: string;
  port: number;
  /** Query file: one `name TYPE` per line. */
  dataFile: string;
  /** Seconds (-l); dnsperf stops after this even if the file is not done. */
  seconds: number;
  /** Offered rate cap in queries per second (-Q); undefined: as fast as answers come. */
  maxQps?: number;
  /** Simulated clients, i.e. sockets (-c); default 1. */
  clients?: number;
  /** dnsperf threads (-T); default 1. */
  threads?: number;
  /** Queries in flight at most (-q); default 100. */
  outstanding?: number;
  /** Passes through the data file (-n); undefined: loop until -l. */
  maxRuns?: number;
  /** Seconds before an unanswered query counts as lost (-t); default 5. */
  timeoutSec?: number;
}

/** dnsperf's statistics block. */
export interface DnsperfResult {
  sent: number;
  completed: number;
  lost: number;
  /** Response code mnemonic -> count ('NOERROR', 'NXDOMAIN', 'SERVFAIL', ...). */
  rcodes: Record<string, number>;
  runTimeSec: number;
  /** As printed: completed / run time. */
  qps: number;
  avgLatencySec: number;
  maxLatencySec: number;
}

/** Writes a dnsperf data file (`name TYPE` lines). */
export function writeQueryFile(path: string, queries: ReadonlyArray<{ name: string; type: string }>): void {
  writeFileSync(path, `${queries.map((q) => `${q.name} ${q.type}`).join('\n')}\n`);
}

/** Runs dnsperf once and returns its parsed statistics; throws when it fails or prints no statistics. */
export async function runDnsperf(opts: DnsperfOptions, registry: ResourceRegistry): Promise<DnsperfResult> {
  if (!opts.server.startsWith('127.')) throw new MxError('BENCH_ERR_ADDRESS', `dnsperf: refusing non-loopback target ${opts.server}`);
  const args = ['-s', opts.server, '-p', String(opts.port), '-d', opts.dataFile, '-l', String(opts.seconds)];
  args.push('-T', String(opts.threads ?? 1), '-c', String(opts.clients ?? 1), '-q', String(opts.outstanding ?? 100), '-t', String(opts.timeoutSec ?? 5));
  if (opts.maxQps !== undefined) args.push('-Q', String(opts.maxQps));
  if (opts.maxRuns !== undefined) args.push('-n', String(opts.maxRuns));
  const timeoutMs = (opts.seconds + (opts.timeoutSec ?? 5) + 30) * 1000;
  const { stdout } = await runToCompletion({ name: 'dnsperf', command: 'dnsperf', args, timeoutMs, killAfterMs: 2000 }, registry);
  return parseDnsperfOutput(stdout);
}

/** Parses the "Statistics:" block of dnsperf 2.x; throws if a required line is missing. */
export function parseDnsperfOutput(text: string): DnsperfResult {
  const num = (re: RegExp, label: string): number => {
    const m = re.exec(text);
    if (!m?.[1]) throw new MxError('BENCH_ERR_DNSPERF', `dnsperf output has no '${label}' line:\n${text.slice(-1500)}`);
    return Number(m[1]);
  };
  const rcodes: Record<string, number> = {};
  const rcodeLine = /Response codes:\s+(.*)/.exec(text)?.[1] ?? '';
  for (const m of rcodeLine.matchAll(/([A-Z]+)\s+(\d+)\s+\(/g)) {
    if (m[1] && m[2]) rcodes[m[1]] = Number(m[2]);
  }
  const latency = /Average Latency \(s\):\s+([\d.]+)(?:\s+\(min\s+[\d.]+,\s+max\s+([\d.]+)\))?/.exec(text);
  return {
    sent: num(/Queries sent:\s+(\d+)/, 'Queries sent'),
    completed: num(/Queries completed:\s+(\d+)/, 'Queries completed'),
    lost: num(/Queries lost:\s+(\d+)/, 'Queries lost'),
    rcodes,
    runTimeSec: num(/Run time \(s\):\s+([\d.]+)/, 'Run time (s)'),
    qps: num(/Queries per second:\s+([\d.]+)/, 'Queries per second'),
    avgLatencySec: Number(latency?.[1] ?? NaN),
    maxLatencySec: Number(latency?.[2] ?? NaN),
  };
}
