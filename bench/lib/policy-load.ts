// The policy load generator: K persistent TCP connections to a Postfix policy service, each
// strictly sequential like a Postfix smtpd process (send a request, wait for `action=...` and the
// empty line, send the next), timing every request with process.hrtime.bigint. Run as its own
// process (`node dist/bench/lib/policy-load.js '<json options>'` prints a JSON result) so it never
// shares a CPU slice with the bench's fake DNS tree; bench/policy-bench.ts starts it through
// spawnPolicyLoad(). Loopback targets only; every run is bounded in count and time and closes
// every socket it opened.
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { MxError, describeError } from '../../src/util/errors.js';
import { runToCompletion, type ResourceRegistry } from './managed-process.js';
import { processCpuMicros } from './process-cpu.js';
import { PolicyTraffic, type PolicyTrafficOptions, type TrafficRequest } from './policy-traffic.js';

/** One run of the generator. */
export interface PolicyLoadOptions {
  host: string;
  port: number;
  /** Persistent connections, each strictly sequential. */
  connections: number;
  /**
   * 'measure': the traffic mix for `seconds` (or `maxRequests`), timed. 'warmup': every request of
   * PolicyTraffic.warmupRequests() once, spread over the connections, untimed but bounded by `seconds`.
   */
  phase: 'measure' | 'warmup';
  /** Time bound of the run, seconds (a warm-up that does not finish in time is an error). */
  seconds: number;
  /** Count bound of a measured run. */
  maxRequests: number;
  /**
   * Offered load of a measured run, decisions/s over all connections; each connection sends on a
   * fixed schedule (still one request in flight) and latency counts from the scheduled send time,
   * so a late send is not hidden (no coordinated omission). 0: as fast as the service answers.
   */
  ratePerSec: number;
  traffic: PolicyTrafficOptions;
  /** Makes this run's fresh triplets (and warm-up senders) distinct from every other run's. */
  runSeed: string;
  /** A reply slower than this fails the request and ends that connection. */
  requestTimeoutMs: number;
  /** When set, the daemon's CPU time (/proc/PID/stat) over the run is reported. */
  daemonPid?: number;
}

/** Latency summary, milliseconds. */
export interface LatencySummary {
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

/** What one run measured. */
export interface PolicyLoadResult {
  phase: PolicyLoadOptions['phase'];
  connections: number;
  /** Requests answered. */
  answered: number;
  repeated: number;
  fresh: number;
  /** Requests that failed (timeout, closed connection, garbage reply); each ends its connection. */
  errors: number;
  firstError: string | null;
  elapsedSec: number;
  decisionsPerSec: number;
  latencyMs: LatencySummary;
  /** Answers by the first word of the action (DEFER_IF_PERMIT, DUNNO, PREPEND, REJECT, ...). */
  actions: Record<string, number>;
  /** Latency per action word: shows whether the decisions that write (defers) are the slow ones. */
  latencyByActionMs: Record<string, LatencySummary>;
  /** Why the run ended: its time bound, its count bound, or (warm-up) every request sent. */
  stoppedBy: 'time' | 'count' | 'done' | 'errors';
  /** Daemon CPU over the run (user + system, all threads), when daemonPid was given. */
  daemonCpuMicros: number | null;
  /** This generator's own CPU over the run: it shares the machine's cores with the daemon. */
  loaderCpuMicros: number;
  /**
   * The daemon's main thread over the run (/proc/PID/task/PID/schedstat), when daemonPid was given:
   * time on a CPU, and time runnable but waiting for one (other processes on the shared cores).
   */
  daemonMainThread: { onCpuMicros: number; runQueueWaitMicros: number } | null;
}

/**
 * Time on a CPU and time waiting on a run queue of one thread, microseconds (proc(5): schedstat,
 * nanoseconds). Linux only; reads, never signals, the thread.
 */
export function threadSchedstat(pid: number, tid = pid): { onCpuMicros: number; runQueueWaitMicros: number } {
  const text = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').trim();
  const [run, wait] = text.split(/\s+/).map(Number);
  if (run === undefined || wait === undefined || !Number.isFinite(run) || !Number.isFinite(wait)) {
    throw new MxError('BENCH_ERR_PROC', `unexpected /proc/${pid}/task/${tid}/schedstat: ${text.slice(0, 100)}`);
  }
  return { onCpuMicros: run / 1000, runQueueWaitMicros: wait / 1000 };
}

/** p-th percentile (nearest rank) of an ascending array; NaN when empty. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const rank = Math.ceil((p / 100) * n);
  return sorted[Math.min(n - 1, Math.max(0, rank - 1))] as number;
}

/** Summary of latencies in microseconds, as milliseconds. */
export function summarizeLatencies(micros: Float64Array): LatencySummary {
  const sorted = Float64Array.from(micros).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  const ms = (v: number): number => v / 1000;
  return {
    mean: sorted.length > 0 ? ms(sum / sorted.length) : NaN,
    p50: ms(percentile(sorted, 50)),
    p90: ms(percentile(sorted, 90)),
    p99: ms(percentile(sorted, 99)),
    p999: ms(percentile(sorted, 99.9)),
    max: ms(sorted.length > 0 ? (sorted[sorted.length - 1] as number) : NaN),
  };
}

/** The action's first word, upper-case ('action=DEFER_IF_PERMIT 4.2.0 ...' -> 'DEFER_IF_PERMIT'). */
export function actionWord(reply: string): string {
  const line = reply.split('\n', 1)[0] ?? '';
  if (!line.startsWith('action=')) return 'INVALID';
  const word = line.slice('action='.length).trim().split(/\s+/, 1)[0] ?? '';
  return word.toUpperCase() || 'EMPTY';
}

function assertLoopback(host: string): void {
  if (!host.startsWith('127.')) throw new MxError('BENCH_ERR_ADDRESS', `policy load: refusing non-loopback ${host}`);
}

/**
 * One persistent policy connection: request() sends one request and resolves with the reply
 * (everything up to and including the empty line), rejecting on timeout or close.
 */
class PolicyConnection {
  private buffer = '';
  private pending: { resolve: (reply: string) => void; reject: (err: Error) => void; timer: NodeJS.Timeout } | null = null;
  private closedError: Error | null = null;

  private constructor(private readonly socket: Socket, private readonly timeoutMs: number) {
    socket.setEncoding('utf8');
    socket.setNoDelay(true);
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      const end = this.buffer.indexOf('\n\n');
      if (end < 0 || !this.pending) return;
      const reply = this.buffer.slice(0, end + 2);
      this.buffer = this.buffer.slice(end + 2);
      const p = this.pending;
      this.pending = null;
      clearTimeout(p.timer);
      p.resolve(reply);
    });
    const fail = (err: Error): void => {
      this.closedError ??= err;
      const p = this.pending;
      this.pending = null;
      if (p) {
        clearTimeout(p.timer);
        p.reject(err);
      }
    };
    socket.on('error', (err) => fail(err));
    socket.on('close', () => fail(new MxError('BENCH_ERR_CLOSED', 'the policy service closed the connection')));
  }

  static open(host: string, port: number, timeoutMs: number): Promise<PolicyConnection> {
    assertLoopback(host);
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new MxError('BENCH_ERR_TIMEOUT', `connect ${host}:${port}: no connection in ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new PolicyConnection(socket, timeoutMs));
      });
    });
  }

  request(wire: string): Promise<string> {
    if (this.closedError) return Promise.reject(this.closedError);
    if (this.pending) return Promise.reject(new MxError('BENCH_ERR_INTERNAL', 'policy connection: a request is already pending'));
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending = null;
        reject(new MxError('BENCH_ERR_TIMEOUT', `no policy reply in ${this.timeoutMs} ms`));
        this.socket.destroy();
      }, this.timeoutMs);
      this.pending = { resolve, reject, timer };
      this.socket.write(wire);
    });
  }

  /** Ends the connection and waits (bounded) until the socket is closed. */
  close(): Promise<void> {
    if (this.socket.destroyed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.socket.destroy();
        resolve();
      }, 1000);
      this.socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.socket.end();
    });
  }
}

/** Sends one request on a fresh connection and returns the raw reply; for sanity checks. */
export async function askPolicy(host: string, port: number, wire: string, timeoutMs = 5000): Promise<string> {
  const conn = await PolicyConnection.open(host, port, timeoutMs);
  try {
    return await conn.request(wire);
  } finally {
    await conn.close();
  }
}

/** Runs one phase in this process and returns what it measured. */
export async function runPolicyLoad(options: PolicyLoadOptions): Promise<PolicyLoadResult> {
  assertLoopback(options.host);
  if (!Number.isInteger(options.connections) || options.connections < 1) throw new MxError('BENCH_ERR_CONFIG', `connections must be >= 1, not ${options.connections}`);
  const traffic = new PolicyTraffic(options.traffic);
  const warmup = options.phase === 'warmup' ? traffic.warmupRequests(options.runSeed) : [];
  const maxRequests = options.phase === 'warmup' ? warmup.length : options.maxRequests;
  const latencies = new Float64Array(maxRequests);
  /** Per slot: 1 + index of its action word in actionNames (0: no answer). */
  const actionOf = new Uint8Array(maxRequests);
  const actionNames: string[] = [];
  const actions: Record<string, number> = {};
  let issued = 0;
  let answered = 0;
  let repeated = 0;
  let errors = 0;
  let firstError: string | null = null;
  let timeUp = false;

  const conns = await Promise.all(Array.from({ length: options.connections }, () => PolicyConnection.open(options.host, options.port, options.requestTimeoutMs)));
  const cpuBefore = options.daemonPid !== undefined ? processCpuMicros(options.daemonPid) : 0;
  const schedBefore = options.daemonPid !== undefined ? threadSchedstat(options.daemonPid) : null;
  const loaderBefore = process.cpuUsage();
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(Math.round(options.seconds * 1e9));
  const timer = setTimeout(() => {
    timeUp = true;
  }, options.seconds * 1000);

  const drive = async (conn: PolicyConnection, index: number): Promise<void> => {
    const next: () => TrafficRequest = options.phase === 'warmup'
      ? () => ({ wire: warmup[issued] as string, repeated: false })
      : traffic.stream(options.runSeed, index);
    // Paced: connection `index` sends at start + offset + k * interval.
    const intervalNs = options.ratePerSec > 0 ? (1e9 * options.connections) / options.ratePerSec : 0;
    let scheduled = start + BigInt(Math.round((intervalNs * index) / options.connections));
    while (!timeUp && issued < maxRequests) {
      if (intervalNs > 0) {
        const aheadMs = Number(scheduled - process.hrtime.bigint()) / 1e6;
        if (aheadMs > 0) await new Promise((r) => setTimeout(r, aheadMs));
        if (timeUp) break;
      }
      const slot = issued;
      const req = next();
      issued++;
      const sent = process.hrtime.bigint();
      const t0 = intervalNs > 0 && scheduled < sent ? scheduled : sent;
      scheduled += BigInt(Math.round(intervalNs));
      let reply: string;
      try {
        reply = await conn.request(req.wire);
      } catch (err) {
        errors++;
        firstError ??= describeError(err);
        return;
      }
      const t1 = process.hrtime.bigint();
      if (t1 > deadline) timeUp = true; // the timer may lag behind a busy event loop
      latencies[slot] = Number(t1 - t0) / 1000;
      answered++;
      if (req.repeated) repeated++;
      const word = actionWord(reply);
      actions[word] = (actions[word] ?? 0) + 1;
      let ai = actionNames.indexOf(word);
      if (ai < 0 && actionNames.length < 250) ai = actionNames.push(word) - 1;
      actionOf[slot] = ai + 1;
    }
  };
  try {
    await Promise.all(conns.map((c, i) => drive(c, i)));
  } finally {
    clearTimeout(timer);
    await Promise.all(conns.map((c) => c.close()));
  }
  const elapsedSec = Number(process.hrtime.bigint() - start) / 1e9;
  const daemonCpuMicros = options.daemonPid !== undefined ? processCpuMicros(options.daemonPid) - cpuBefore : null;
  const loaderCpu = process.cpuUsage(loaderBefore);
  const schedAfter = options.daemonPid !== undefined ? threadSchedstat(options.daemonPid) : null;
  // Slots of failed requests have no action and are left out: latency is over answered requests.
  const answeredLatencies = errors === 0 ? latencies.subarray(0, issued) : latencies.subarray(0, issued).filter((_, slot) => actionOf[slot] !== 0);
  const latencyByActionMs: Record<string, LatencySummary> = {};
  for (const [ai, word] of actionNames.entries()) {
    latencyByActionMs[word] = summarizeLatencies(latencies.subarray(0, issued).filter((_, slot) => actionOf[slot] === ai + 1));
  }
  const stoppedBy = errors >= options.connections ? 'errors' : options.phase === 'warmup' ? 'done' : issued >= maxRequests ? 'count' : 'time';
  if (options.phase === 'warmup' && (issued < maxRequests || errors > 0)) {
    throw new MxError('BENCH_ERR_WARMUP', `warm-up: ${answered} of ${maxRequests} answered in ${options.seconds} s, ${errors} errors${firstError ? ` (first: ${firstError})` : ''}`);
  }
  return {
    phase: options.phase,
    connections: options.connections,
    answered,
    repeated,
    fresh: answered - repeated,
    errors,
    firstError,
    elapsedSec,
    decisionsPerSec: elapsedSec > 0 ? answered / elapsedSec : 0,
    latencyMs: summarizeLatencies(answeredLatencies),
    actions,
    latencyByActionMs,
    stoppedBy,
    daemonCpuMicros,
    loaderCpuMicros: loaderCpu.user + loaderCpu.system,
    daemonMainThread: schedBefore && schedAfter
      ? { onCpuMicros: schedAfter.onCpuMicros - schedBefore.onCpuMicros, runQueueWaitMicros: schedAfter.runQueueWaitMicros - schedBefore.runQueueWaitMicros }
      : null,
  };
}

/** Runs one phase in a child process (this file as the entry) and returns its result. */
export async function spawnPolicyLoad(options: PolicyLoadOptions, registry: ResourceRegistry): Promise<PolicyLoadResult> {
  const { stdout } = await runToCompletion({
    name: `policy-load (${options.phase}, ${options.connections} connections)`,
    command: process.execPath,
    args: [fileURLToPath(import.meta.url), JSON.stringify(options)],
    timeoutMs: options.seconds * 1000 + 30_000,
  }, registry);
  const last = stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(last) as PolicyLoadResult;
  } catch (err) {
    throw new MxError('BENCH_ERR_LOAD', `policy-load printed no result: ${stdout.slice(-500)}`, { cause: err });
  }
}

// Entry when run as a program: one JSON argument in, one JSON line out; exit 1 with the error.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const arg = process.argv[2];
  if (arg === undefined) {
    process.stderr.write('usage: node dist/bench/lib/policy-load.js \'<PolicyLoadOptions as JSON>\'\n');
    process.exit(2);
  }
  runPolicyLoad(JSON.parse(arg) as PolicyLoadOptions).then(
    (result) => {
      process.stdout.write(`${JSON.stringify(result)}\n`);
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(`policy-load: ${describeError(err)}\n`);
      process.exit(1);
    },
  );
}
