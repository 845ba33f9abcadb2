// Replication benchmark (issue 4): (1) replication lag, p50/p99, from a committed write at one node
// (its policy answer) to its visibility in the other nodes' LMDB, at a paced 1,000 new triplets/s on
// a 3-node loopback cluster; (2) the write rate a 3-node cluster sustains with replication on versus
// off, and one node alone, with the daemons' CPU per write (robust on a shared box). The three
// configurations run side by side and are measured in turns of short windows, so a drift of the
// machine's speed weighs on each alike. The rate a configuration sustains is its best over several
// levels of strictly sequential connections per node (as Postfix's smtpd processes), so neither
// side is judged below saturation. Run after `npx tsc -p tsconfig.json`:
// `node dist/bench/replication-bench.js [--seconds N] [--rate N] [--throughput-seconds N] [--rounds N] [--warm-seconds N] [--connections N,N] [--lag-only] [--cpu-prof DIR]`
// (about 2.5 minutes with the defaults). Loopback only; every process and temp folder it starts is removed at
// the end, on error and on Ctrl-C. It reuses the e2e cluster helper (test/helpers/replication-cluster.ts).
import { randomInt } from 'node:crypto';
import { clientKey, tripletKey } from '../src/policy/greylist.js';
import { LmdbGreylistStore } from '../src/store/lmdb-greylist-store.js';
import { generateReplicationKey } from '../src/store/replication/replication-settings.js';
import { systemClock } from '../src/util/clock.js';
import { createSilentLogger } from '../src/util/logger.js';
import { PolicyClient, startCluster, type Cluster } from '../test/helpers/replication-cluster.js';
import { processCpuMicros, threadCpuMicros, type ThreadCpu } from './lib/process-cpu.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sendControlRequest } from '../src/control/control-client.js';

interface Options {
  lagSeconds: number;
  rate: number;
  /** Length of one measured window of the throughput phase, seconds. */
  throughputSeconds: number;
  /** Connections per node of the lag phase (requests pipelined on them). */
  connectionsPerNode: number;
  /** Requests in flight per connection in the lag phase. */
  depth: number;
  /** Levels of strictly sequential connections per node in the throughput phase; each configuration's best counts. */
  throughputConnections: number[];
  /** Cycles of windows (one window of each configuration) per level of the throughput phase. */
  rounds: number;
  /** Load on each cluster before the first window, seconds: the JIT's warm-up is not measured. */
  warmSeconds: number;
  /** Only the lag phase (quick checks). */
  lagOnly: boolean;
  /** Write a V8 CPU profile of every node of the throughput phases to this folder (a subfolder per phase). */
  cpuProfDir: string | undefined;
}

const live = new Set<Cluster>();
let stopping = false;
async function cleanup(): Promise<void> {
  for (const c of live) await c.stop();
  live.clear();
}
process.on('SIGINT', () => {
  if (stopping) return;
  stopping = true;
  void cleanup().finally(() => process.exit(130));
});

function parseArgs(argv: string[]): Options {
  const o: Options = {
    lagSeconds: 10, rate: 1000, throughputSeconds: 2, connectionsPerNode: 4, depth: 8, throughputConnections: [48, 96], rounds: 4, warmSeconds: 10, lagOnly: false, cpuProfDir: undefined,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const n = Number(argv[i + 1]);
    if (a === '--lag-only') {
      o.lagOnly = true;
      continue;
    }
    if (a === '--cpu-prof' && argv[i + 1]) {
      o.cpuProfDir = argv[++i];
      continue;
    }
    if (a === '--connections' && argv[i + 1]) {
      const levels = argv[++i]!.split(',').map(Number);
      if (levels.some((l) => !Number.isInteger(l) || l < 1 || l > 200)) throw new Error(`--connections needs integers 1..200, not ${argv[i]}`);
      o.throughputConnections = levels;
      continue;
    }
    if (a === '--seconds' && n > 0) o.lagSeconds = n;
    else if (a === '--rate' && n > 0) o.rate = n;
    else if (a === '--throughput-seconds' && n > 0) o.throughputSeconds = n;
    else if (a === '--rounds' && n > 0) o.rounds = n;
    else if (a === '--warm-seconds' && n >= 0) o.warmSeconds = n;
    else throw new Error(`usage: node dist/bench/replication-bench.js [--seconds N] [--rate N] [--throughput-seconds N] [--rounds N] [--warm-seconds N] [--connections N,N] [--lag-only] [--cpu-prof DIR]; got ${String(a)}`);
    i++;
  }
  return o;
}

function letters(n: number): string {
  return Array.from({ length: n }, () => String.fromCharCode(97 + randomInt(26))).join('');
}

function randomTriplet(): [string, string, string] {
  return [`198.${randomInt(18, 20)}.${randomInt(0, 256)}.${randomInt(1, 255)}`, `${letters(10)}@sender.example`, `${letters(8)}@rcpt.example`];
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Waits (bounded) until every link of every node is up and has run its first digest round, so the
 * measurement sees steady-state replication, not start-up (dial backoff, the first digest).
 */
async function waitLinksUp(cluster: Cluster): Promise<void> {
  const deadline = performance.now() + 20_000;
  for (;;) {
    const states = await Promise.all(
      cluster.nodes.map(async (n) => {
        // The control socket opens just after the replication port: "not running" means "not yet".
        const r = (await sendControlRequest(join(n.dataDir, 'control.sock'), { command: 'replication-status' }, 2000).catch(() => ({}))) as {
          status?: { peers: Array<{ connected: boolean; lastDigestAtMs: number | null }> };
        };
        return r.status?.peers.every((p) => p.connected && p.lastDigestAtMs !== null) ?? false;
      }),
    );
    if (states.every(Boolean)) return;
    if (performance.now() > deadline) throw new Error('replication links did not come up within 20 s');
    await sleep(100);
  }
}

/** Each peer's lastDigestAtMs at every node of the cluster (null: no round yet), in a fixed order. */
async function digestTimes(cluster: Cluster): Promise<Array<number | null>> {
  const all = await Promise.all(
    cluster.nodes.map(async (n) => {
      const r = (await sendControlRequest(join(n.dataDir, 'control.sock'), { command: 'replication-status' }, 2000).catch(() => ({}))) as {
        status?: { peers: Array<{ lastDigestAtMs: number | null }> };
      };
      return r.status?.peers.map((p) => p.lastDigestAtMs) ?? [null];
    }),
  );
  return all.flat();
}

/**
 * Waits (bounded, 90 s) until every link has run its digest round after `before` (digestTimes at
 * start). A link runs one round once it has pushed its backlog, a second about 31 s later (the
 * settle time), then one an hour. A round reads and hashes every record at both ends, a cost of the
 * store's size, not of each write: the windows are measured after the second round.
 */
async function waitSecondDigest(cluster: Cluster, before: Array<number | null>): Promise<boolean> {
  const deadline = performance.now() + 90_000;
  while (performance.now() < deadline) {
    const now = await digestTimes(cluster);
    if (now.length === before.length && now.every((t, i) => t !== null && before[i] !== null && t > before[i]!)) return true;
    await sleep(500);
  }
  return false;
}

/** Phase 1: paced writes, each polled for at the two other nodes until visible. */
async function measureLag(o: Options): Promise<{ samples: number[]; sent: number; acked: number; invisible: number; achievedRate: number }> {
  const cluster = await startCluster({ names: ['a', 'b', 'c'], key: generateReplicationKey(), logLevel: 'warn' });
  live.add(cluster);
  await waitLinksUp(cluster);
  const readers = await Promise.all(cluster.nodes.map((n) => LmdbGreylistStore.open({ dataDir: n.dataDir, clock: systemClock, logger: createSilentLogger() })));
  const pools = await Promise.all(cluster.nodes.map(async (n) => Promise.all(Array.from({ length: o.connectionsPerNode }, () => PolicyClient.connect(n.policyPort)))));
  const pending = new Map<string, { tk: string; ck: string; atMs: number; node: number; waitingOn: Set<number> }>();
  const samples: number[] = [];
  let sent = 0;
  let acked = 0;
  let measuring = false;
  let failures = 0;
  const phaseStart = performance.now();
  let answered = 0;
  const poller = setInterval(() => {
    const now = performance.now();
    for (const [id, p] of pending) {
      for (const i of p.waitingOn) {
        // LMDB readers in another process see each commit as soon as it is made.
        void readers[i]!.read(p.tk, p.ck).then((r) => {
          if (r.triplet && p.waitingOn.delete(i) && measuring) samples.push(now - p.atMs);
          if (p.waitingOn.size === 0) pending.delete(id);
        });
      }
    }
  }, 5);
  const send = (): void => {
    const node = sent % 3;
    const [client, sender, rcpt] = randomTriplet();
    const pool = pools[node]!;
    const conn = pool[sent % pool.length]!;
    sent++;
    const countIt = measuring;
    void conn.request(client, sender, rcpt).then((action) => {
      answered++;
      if (!/^DEFER_IF_PERMIT/.test(action) && countIt) console.log(`  unexpected answer from ${cluster.nodes[node]!.name}: ${action}`);
      if (!/^DEFER_IF_PERMIT/.test(action)) return;
      if (countIt) acked++;
      pending.set(`${sent}-${client}-${sender}`, {
        tk: tripletKey(client, sender, rcpt, { lookupByHost: false }),
        ck: clientKey(client),
        atMs: performance.now(),
        node,
        waitingOn: new Set([0, 1, 2].filter((i) => i !== node)),
      });
    }, (err: unknown) => {
      failures++;
      if (failures === 1) console.error(`  a policy request to ${cluster.nodes[node]!.name} failed: ${String(err)} (${((performance.now() - phaseStart) / 1000).toFixed(1)} s into the phase)`);
    });
  };
  const pace = async (seconds: number): Promise<number> => {
    const start = performance.now();
    let due = 0;
    const first = sent;
    while (performance.now() - start < seconds * 1000) {
      const target = Math.floor(((performance.now() - start) / 1000) * o.rate);
      for (; due < target; due++) send();
      await sleep(2);
    }
    return (sent - first) / ((performance.now() - start) / 1000);
  };
  await pace(2); // warm-up: connections, JIT, LMDB pages
  await sleep(500);
  measuring = true;
  const achievedRate = await pace(o.lagSeconds);
  measuring = false;
  // Let the last answers and writes arrive (bounded). An overloaded box (offered rate above what the
  // nodes sustain) is still answering a backlog here: those writes are in flight, not lost.
  const deadline = performance.now() + 30_000;
  while ((answered + failures < sent || pending.size > 0) && performance.now() < deadline) await sleep(20);
  clearInterval(poller);
  if (answered + failures < sent || pending.size > 0) {
    console.log(`  drain incomplete: ${sent - answered - failures} requests unanswered, ${pending.size} writes not seen`);
    for (const n of cluster.nodes) {
      const st = await sendControlRequest(join(n.dataDir, 'control.sock'), { command: 'replication-status' }, 2000).catch((err: unknown) => `no answer: ${String(err)}`);
      console.log(`  ${n.name} status: ${JSON.stringify(st).slice(0, 1200)}`);
    }
  }
  await sleep(50);
  // Whatever the poller did not see is checked once more on fresh dumps: "invisible" must be 0.
  // The long-lived readers are closed first: LMDB must not be open twice in one process.
  for (const r of readers) await r.close();
  const dumps = await Promise.all(cluster.nodes.map((n) => n.dump()));
  let invisible = 0;
  for (const p of pending.values()) {
    for (const i of p.waitingOn) {
      if (dumps[i]!.triplets.has(p.tk)) continue;
      invisible++;
      if (invisible <= 3) console.log(`  missing at ${cluster.nodes[i]!.name}: ${p.tk} (written at ${cluster.nodes[p.node]!.name}, present there: ${dumps[p.node]!.triplets.has(p.tk)})`);
    }
  }
  if (pending.size > 0) console.log(`  ${pending.size} writes not seen by the poller; ${invisible} really missing on fresh dumps`);
  for (const pool of pools) for (const c of pool) c.close();
  for (const n of cluster.nodes) {
    if (n.proc?.exitCode !== null || n.proc?.signalCode !== null) console.log(`  NODE ${n.name} DIED (code ${String(n.proc?.exitCode)}, signal ${String(n.proc?.signalCode)}): ${n.stderr.slice(-3000)}`);
    const bad = n.logs.filter((l) => l.level === 'error' || l.level === 'fatal');
    if (bad.length > 0) console.log(`  ${n.name} logged ${bad.length} errors, last: ${JSON.stringify(bad.slice(-3))}`);
  }
  await cluster.stop();
  live.delete(cluster);
  return { samples: samples.sort((a, b) => a - b), sent, acked, invisible, achievedRate };
}

/** Sums over the measured windows of one configuration at one level. */
interface Totals {
  writes: number;
  seconds: number;
  /** Daemon CPU, all nodes and threads, microseconds. */
  cpuMicros: number;
  /** The machine's total and idle jiffies over the windows. */
  machineTicks: number;
  idleTicks: number;
  /** Daemon CPU by thread kind (all nodes), microseconds. */
  threads: Map<string, ThreadCpu>;
  /** Daemon CPU of the cluster's first node alone, microseconds. */
  firstNodeCpuMicros: number;
  /** Each window's rate, in the order measured. */
  windowRates: number[];
}

/** One level of one configuration: writes per second, daemon CPU per write, the machine's idle share. */
interface Throughput {
  connections: number;
  rate: number;
  cpuMicrosPerWrite: number;
  /** The CPU per write of the cluster's first node alone (the primary of `primary`), microseconds. */
  firstNodeCpuMicrosPerWrite: number;
  /** Share of the machine's CPU time left idle during the measurement (0..1): near 0 means saturated. */
  idle: number;
  /** Daemon CPU per write by thread kind (all nodes), microseconds: where the time goes. */
  byThread: Record<string, ThreadCpu>;
  windowRates: number[];
}

/** `primary`: the `on` cluster with every write at its first node (a primary MX and two backups). */
type Phase = 'single' | 'off' | 'on' | 'primary';

/** Per-thread-kind CPU of every node, summed. */
function clusterThreadCpu(cluster: Cluster): Map<string, ThreadCpu> {
  const sum = new Map<string, ThreadCpu>();
  for (const n of cluster.nodes) {
    for (const [kind, t] of threadCpuMicros(n.proc!.pid!)) {
      const s = sum.get(kind) ?? { user: 0, system: 0 };
      s.user += t.user;
      s.system += t.system;
      sum.set(kind, s);
    }
  }
  return sum;
}

function clusterCpu(cluster: Cluster): number {
  return cluster.nodes.reduce((sum, n) => sum + processCpuMicros(n.proc!.pid!), 0);
}

/** Total and idle jiffies of all CPUs (proc(5): the "cpu" line of /proc/stat; idle includes iowait). */
function machineCpuTicks(): { total: number; idle: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { total, idle: (f[3] ?? 0) + (f[4] ?? 0) };
}

/**
 * Waits (bounded, 10 s) until the clusters are quiet: each uses under 5% of a core over 250 ms. A
 * window starts only after the previous one's work is done (replication still pushing the last
 * writes, LMDB commits), so no configuration is charged for another's.
 */
async function quiet(clusters: Cluster[]): Promise<boolean> {
  const deadline = performance.now() + 10_000;
  while (performance.now() < deadline) {
    const before = clusters.map(clusterCpu);
    const t0 = performance.now();
    await sleep(250);
    const micros = (performance.now() - t0) * 1000;
    if (clusters.every((c, i) => (clusterCpu(c) - before[i]!) / micros < 0.05)) return true;
  }
  return false;
}

/**
 * One window of closed-loop writes on one cluster: `conns` strictly sequential connections (one
 * request in flight each, as Postfix's smtpd processes), warmed for 0.5 s, measured for `seconds`.
 */
async function measureWindow(cluster: Cluster, conns: PolicyClient[], seconds: number, into: Totals): Promise<void> {
  let done = 0;
  let counting = false;
  let running = true;
  const worker = async (conn: PolicyClient): Promise<void> => {
    while (running) {
      const [client, sender, rcpt] = randomTriplet();
      const action = await conn.request(client, sender, rcpt);
      if (counting && /^DEFER_IF_PERMIT/.test(action)) done++;
    }
  };
  const workers = conns.map((c) => worker(c));
  await sleep(500);
  counting = true;
  const start = performance.now();
  const cpuStart = clusterCpu(cluster);
  const firstStart = processCpuMicros(cluster.nodes[0]!.proc!.pid!);
  const threadsStart = clusterThreadCpu(cluster);
  const machineStart = machineCpuTicks();
  await sleep(seconds * 1000);
  counting = false;
  const elapsed = (performance.now() - start) / 1000;
  const cpuEnd = clusterCpu(cluster);
  const firstEnd = processCpuMicros(cluster.nodes[0]!.proc!.pid!);
  const threadsEnd = clusterThreadCpu(cluster);
  const machineEnd = machineCpuTicks();
  running = false;
  await Promise.all(workers);
  into.writes += done;
  into.seconds += elapsed;
  into.cpuMicros += cpuEnd - cpuStart;
  into.firstNodeCpuMicros += firstEnd - firstStart;
  into.machineTicks += machineEnd.total - machineStart.total;
  into.idleTicks += machineEnd.idle - machineStart.idle;
  for (const [kind, end] of threadsEnd) {
    const s = threadsStart.get(kind) ?? { user: 0, system: 0 };
    const t = into.threads.get(kind) ?? { user: 0, system: 0 };
    t.user += end.user - s.user;
    t.system += end.system - s.system;
    into.threads.set(kind, t);
  }
  into.windowRates.push(done / elapsed);
}

function emptyTotals(): Totals {
  return { writes: 0, seconds: 0, cpuMicros: 0, machineTicks: 0, idleTicks: 0, threads: new Map(), firstNodeCpuMicros: 0, windowRates: [] };
}

function throughputOf(connections: number, t: Totals): Throughput {
  const byThread: Record<string, ThreadCpu> = {};
  for (const [kind, c] of t.threads) byThread[kind] = { user: c.user / Math.max(1, t.writes), system: c.system / Math.max(1, t.writes) };
  return {
    connections,
    rate: t.writes / t.seconds,
    cpuMicrosPerWrite: t.cpuMicros / Math.max(1, t.writes),
    firstNodeCpuMicrosPerWrite: t.firstNodeCpuMicros / Math.max(1, t.writes),
    idle: t.idleTicks / Math.max(1, t.machineTicks),
    byThread,
    windowRates: t.windowRates,
  };
}

/**
 * Phase 2: four configurations (one node alone; three nodes with replication off; three with it
 * on; the same three with every write at the first node, as at a primary MX with two backups) run
 * as three clusters side by side, and are measured in turns of short windows, in mirrored order
 * (single, off, on, primary, then primary, on, off, single, ...), so that a drift of the machine's
 * speed during the run (shared cores) weighs on each about equally. Each level of connections per
 * node is measured in `rounds` such cycles; a configuration's figures are its totals over them.
 */
async function measureThroughput(o: Options): Promise<Record<Phase, Throughput[]>> {
  const clusters = {} as Record<Phase, Cluster>;
  const specs: Array<[Phase, string[], boolean]> = [['single', ['solo'], false], ['off', ['a', 'b', 'c'], false], ['on', ['a', 'b', 'c'], true]];
  // Where each configuration's connections go: `primary` loads the first node of the `on` cluster only.
  const targets = (phase: Phase): Cluster['nodes'] => (phase === 'primary' ? clusters.on.nodes.slice(0, 1) : clusters[phase].nodes);
  for (const [phase, names, replication] of specs) {
    const nodeArgs = o.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${join(o.cpuProfDir, phase)}`] : [];
    const cluster = await startCluster({ names, key: generateReplicationKey(), logLevel: 'warn', replication, nodeArgs });
    live.add(cluster);
    clusters[phase] = cluster;
  }
  clusters.primary = clusters.on;
  await waitLinksUp(clusters.on);
  const firstDigests = await digestTimes(clusters.on);
  // A fresh process spends its first seconds of load compiling (TurboFan, on background threads:
  // a fifth of the on cluster's CPU in a 10 s profile), and the on cluster has more code to compile.
  // Each cluster is loaded alone for warmSeconds before any window, so the windows see the steady
  // state a long-running daemon is in, not start-up.
  const most = Math.max(...o.throughputConnections);
  const allClusters = specs.map(([phase]) => clusters[phase]);
  for (const [phase] of specs) {
    const conns = (await Promise.all(clusters[phase].nodes.map(async (n) => Promise.all(Array.from({ length: most }, () => PolicyClient.connect(n.policyPort)))))).flat();
    await quiet(allClusters);
    await measureWindow(clusters[phase], conns, o.warmSeconds, emptyTotals());
    for (const c of conns) c.close();
  }
  const cpuBeforeDigest = clusterCpu(clusters.on);
  const waitStart = performance.now();
  if (!(await waitSecondDigest(clusters.on, firstDigests))) console.log('  warning: the second digest round of every link did not end within 90 s: one may fall in a window');
  else {
    console.log(`  waited ${((performance.now() - waitStart) / 1000).toFixed(1)} s for every link's second digest round (the on cluster used ${((clusterCpu(clusters.on) - cpuBeforeDigest) / 1000).toFixed(0)} ms of CPU meanwhile)`);
  }
  // A decision costs more in a bigger store: the sizes each configuration is measured at.
  console.log(`  triplets per node before the windows: ${await storeSizes(clusters)}`);
  const out: Record<Phase, Throughput[]> = { single: [], off: [], on: [], primary: [] };
  const phases: Phase[] = ['single', 'off', 'on', 'primary'];
  try {
    for (const connections of o.throughputConnections) {
      const conns = {} as Record<Phase, PolicyClient[]>;
      const totals = {} as Record<Phase, Totals>;
      for (const phase of phases) {
        conns[phase] = (await Promise.all(targets(phase).map(async (n) => Promise.all(Array.from({ length: connections }, () => PolicyClient.connect(n.policyPort)))))).flat();
        totals[phase] = emptyTotals();
      }
      for (let cycle = 0; cycle < o.rounds; cycle++) {
        const order: Phase[] = cycle % 2 === 0 ? phases : [...phases].reverse();
        for (const phase of order) {
          if (!(await quiet(allClusters))) console.log('  warning: a cluster was still busy 10 s after the last window');
          await measureWindow(clusters[phase], conns[phase], o.throughputSeconds, totals[phase]);
        }
      }
      for (const phase of phases) {
        for (const c of conns[phase]) c.close();
        out[phase].push(throughputOf(connections, totals[phase]));
      }
    }
    console.log(`  triplets per node after the windows: ${await storeSizes(clusters)}`);
    return out;
  } finally {
    for (const cluster of allClusters) {
      // A profile is written at a clean exit only: SIGTERM first (cluster.stop() kills).
      if (o.cpuProfDir) await Promise.all(cluster.nodes.map((n) => n.stop()));
      await cluster.stop();
      live.delete(cluster);
    }
  }
}

/** Triplets (deleted ones included) in each node's store, per cluster: "single 140200; off 51000, ...; on ...". */
async function storeSizes(clusters: Record<Phase, Cluster>): Promise<string> {
  const parts: string[] = [];
  for (const phase of ['single', 'off', 'on'] as const) {
    const counts: number[] = [];
    for (const n of clusters[phase].nodes) {
      const store = await LmdbGreylistStore.open({ dataDir: n.dataDir, clock: systemClock, logger: createSilentLogger(), readOnly: true });
      counts.push((await store.count()).triplets);
      await store.close();
    }
    parts.push(`${phase} ${counts.join(', ')}`);
  }
  return parts.join('; ');
}

/** The level with the highest rate: what the configuration sustains. */
function best(levels: Throughput[]): Throughput {
  return levels.reduce((a, b) => (b.rate > a.rate ? b : a));
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  console.log(`replication bench: 3 mxsentry nodes on loopback, ${o.rate} new triplets/s for ${o.lagSeconds} s (round-robin over nodes)`);
  const lag = await measureLag(o);
  const p50 = percentile(lag.samples, 50);
  const p99 = percentile(lag.samples, 99);
  const max = lag.samples[lag.samples.length - 1] ?? NaN;
  console.log(`  offered ${o.rate}/s, achieved ${lag.achievedRate.toFixed(0)}/s, acknowledged ${lag.acked}, lag samples ${lag.samples.length} (write x other node), never visible ${lag.invisible}`);
  console.log(`  replication lag: p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${max.toFixed(1)} ms   (target p99 < 1000 ms: ${p99 < 1000 ? 'met' : 'MISSED'})`);
  if (o.lagOnly) return;

  console.log(
    `\nwrite throughput, closed loop, strictly sequential connections per node at levels ${o.throughputConnections.join(', ')} (each configuration's best level counts); ` +
      `the four configurations run side by side and are measured in turns, ${o.rounds} cycles of ${o.throughputSeconds} s windows per level:`,
  );
  const runs = await measureThroughput(o);
  const show = (label: string, levels: Throughput[]): void => {
    const b = best(levels);
    const each = levels.map((l) => `${l.connections}: ${l.rate.toFixed(0)}/s ${(l.idle * 100).toFixed(0)}% idle`).join(', ');
    console.log(`  ${label.padEnd(28)}${b.rate.toFixed(0).padStart(7)} writes/s ${b.cpuMicrosPerWrite.toFixed(0).padStart(5)} us daemon CPU/write (all nodes)   (${each})`);
    console.log(`  ${''.padEnd(28)}windows of the best level: ${b.windowRates.map((r) => r.toFixed(0)).join(', ')} writes/s`);
    const threads = Object.entries(b.byThread)
      .filter(([, t]) => t.user + t.system >= 0.5)
      .sort((x, y) => y[1].user + y[1].system - (x[1].user + x[1].system))
      .map(([kind, t]) => `${kind} ${(t.user + t.system).toFixed(1)} (sys ${t.system.toFixed(1)})`);
    console.log(`  ${''.padEnd(28)}us CPU/write by thread: ${threads.join(', ')}`);
  };
  show('1 node, replication off', runs.single);
  show('3 nodes, replication off', runs.off);
  show('3 nodes, replication on', runs.on);
  show('3 nodes on, writes at one', runs.primary);
  const single = best(runs.single);
  const off = best(runs.off);
  const on = best(runs.on);
  const primary = best(runs.primary);
  const cost = 1 - on.rate / off.rate;
  // On a shared 2-core box the three nodes compete for the same CPU, so the robust figure is the CPU
  // a write costs the whole cluster: with replication each write is also merged at two peers.
  const cpuCost = 1 - off.cpuMicrosPerWrite / on.cpuMicrosPerWrite;
  // The spread: the cost from each pair of neighbouring windows (off and on measured back to back).
  const pairedCosts = on.windowRates.map((r, i) => 1 - r / (off.windowRates[i] ?? NaN));
  const pct = (xs: number[]): string => xs.map((x) => `${(x * 100).toFixed(1)}%`).join(', ');
  console.log(`  throughput cost of replication: ${(cost * 100).toFixed(1)}% of the 3-node rate without it (target < 20%: ${cost < 0.2 ? 'met' : 'MISSED'}); per pair of windows: ${pct(pairedCosts)}`);
  console.log(`  CPU cost of replication: ${(cpuCost * 100).toFixed(1)}% of the cluster's CPU per write goes to replication`);
  // A primary MX with two backups: every write at one node, which pushes it to both. On machines of
  // their own the primary pays only its own CPU; here the backups' merging shares its cores.
  const primaryCost = 1 - single.cpuMicrosPerWrite / primary.firstNodeCpuMicrosPerWrite;
  console.log(
    `  writes at one node of the replicating three (a primary and two backups): the primary spends ${primary.firstNodeCpuMicrosPerWrite.toFixed(0)} us of CPU per write, ` +
      `a lone node ${single.cpuMicrosPerWrite.toFixed(0)} us (${(primaryCost * 100).toFixed(1)}% of the primary's CPU goes to replication); each backup ${((primary.cpuMicrosPerWrite - primary.firstNodeCpuMicrosPerWrite) / 2).toFixed(0)} us per write merged`,
  );
  const saturated = [off, on].every((t) => t.idle < 0.1);
  if (!saturated) console.log('  warning: the machine had 10% or more idle CPU at a best level: that rate was limited by concurrency, not CPU; add a higher --connections level');
  const json = { lagP50Ms: p50, lagP99Ms: p99, lagMaxMs: max, offeredRate: o.rate, achievedRate: lag.achievedRate, invisible: lag.invisible, single, off, on, primary, cost, cpuCost, primaryCost, pairedCosts, runs };
  console.log(`\n${JSON.stringify(json)}`);
}

main()
  .catch(async (err: unknown) => {
    console.error(err instanceof Error ? err.stack : String(err));
    process.exitCode = 1;
  })
  .finally(async () => {
    await cleanup();
    process.exit(process.exitCode ?? 0);
  });
