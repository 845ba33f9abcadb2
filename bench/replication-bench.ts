// Replication benchmark (issue 4): (1) replication lag, p50/p99, from a committed write at one node
// (its policy answer) to its visibility in the other nodes' LMDB, at a paced 1,000 new triplets/s on
// a 3-node loopback cluster; (2) the write rate a 3-node cluster sustains with replication on versus
// off, and one node alone, with the daemons' CPU per write (robust on a shared box). The rate a
// configuration sustains is its best over several levels of strictly sequential connections per node
// (as Postfix's smtpd processes), so neither side is judged below saturation. Run after
// `npx tsc -p tsconfig.json`: `node dist/bench/replication-bench.js [--seconds N] [--rate N] [--rounds N] [--connections N,N] [--lag-only] [--cpu-prof DIR]`
// (about 100 s with --rounds 1). Loopback only; every process and temp folder it starts is removed at
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
  throughputSeconds: number;
  /** Connections per node of the lag phase (requests pipelined on them). */
  connectionsPerNode: number;
  /** Requests in flight per connection in the lag phase. */
  depth: number;
  /** Levels of strictly sequential connections per node in the throughput phase; each configuration's best counts. */
  throughputConnections: number[];
  rounds: number;
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
    lagSeconds: 10, rate: 1000, throughputSeconds: 6, connectionsPerNode: 4, depth: 8, throughputConnections: [16, 48], rounds: 1, lagOnly: false, cpuProfDir: undefined,
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
    else throw new Error(`usage: node dist/bench/replication-bench.js [--seconds N] [--rate N] [--throughput-seconds N] [--rounds N] [--connections N,N] [--lag-only] [--cpu-prof DIR]; got ${String(a)}`);
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

/** One measured level: writes per second, daemon CPU (all nodes, all threads) per write, machine idle share. */
interface Throughput {
  connections: number;
  rate: number;
  cpuMicrosPerWrite: number;
  /** Share of the machine's CPU time left idle during the measurement (0..1): near 0 means saturated. */
  idle: number;
  /** Daemon CPU per write by thread kind (all nodes), microseconds: where the time goes. */
  byThread: Record<string, ThreadCpu>;
}

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

/** Total and idle jiffies of all CPUs (proc(5): the "cpu" line of /proc/stat; idle includes iowait). */
function machineCpuTicks(): { total: number; idle: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { total, idle: (f[3] ?? 0) + (f[4] ?? 0) };
}

/**
 * Phase 2: closed-loop writes on one cluster, one level after another: `connections` strictly
 * sequential connections per node (one request in flight each, as a Postfix smtpd process), warmed
 * for 1.5 s, then measured for a fixed time.
 */
async function measureThroughput(o: Options, names: string[], replication: boolean): Promise<Throughput[]> {
  const phase = names.length === 1 ? 'single' : replication ? 'on' : 'off';
  const nodeArgs = o.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${join(o.cpuProfDir, phase)}`] : [];
  const cluster = await startCluster({ names, key: generateReplicationKey(), logLevel: 'warn', replication, nodeArgs });
  live.add(cluster);
  try {
    if (replication) await waitLinksUp(cluster);
    const levels: Throughput[] = [];
    for (const connections of o.throughputConnections) {
      const conns = (await Promise.all(cluster.nodes.map(async (n) => Promise.all(Array.from({ length: connections }, () => PolicyClient.connect(n.policyPort)))))).flat();
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
      await sleep(1500);
      const cpu = (): number => cluster.nodes.reduce((sum, n) => sum + processCpuMicros(n.proc!.pid!), 0);
      counting = true;
      const start = performance.now();
      const cpuStart = cpu();
      const threadsStart = clusterThreadCpu(cluster);
      const machineStart = machineCpuTicks();
      await sleep(o.throughputSeconds * 1000);
      counting = false;
      const cpuUsed = cpu() - cpuStart;
      const threadsEnd = clusterThreadCpu(cluster);
      const machineEnd = machineCpuTicks();
      const writes = done;
      const rate = writes / ((performance.now() - start) / 1000);
      running = false;
      await Promise.allSettled(workers);
      for (const c of conns) c.close();
      const idle = (machineEnd.idle - machineStart.idle) / Math.max(1, machineEnd.total - machineStart.total);
      const byThread: Record<string, ThreadCpu> = {};
      for (const [kind, end] of threadsEnd) {
        const start = threadsStart.get(kind) ?? { user: 0, system: 0 };
        byThread[kind] = { user: (end.user - start.user) / Math.max(1, writes), system: (end.system - start.system) / Math.max(1, writes) };
      }
      levels.push({ connections, rate, cpuMicrosPerWrite: cpuUsed / Math.max(1, writes), idle, byThread });
    }
    return levels;
  } finally {
    // A profile is written at a clean exit only: SIGTERM first (cluster.stop() kills).
    if (o.cpuProfDir) await Promise.all(cluster.nodes.map((n) => n.stop()));
    await cluster.stop();
    live.delete(cluster);
  }
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

  console.log(`\nwrite throughput, closed loop, strictly sequential connections per node at levels ${o.throughputConnections.join(', ')} (each configuration's best level counts), ${o.throughputSeconds} s each, ${o.rounds} rounds:`);
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const runs: Record<'single' | 'off' | 'on', Throughput[][]> = { single: [], off: [], on: [] };
  const show = (label: string, levels: Throughput[]): void => {
    const b = best(levels);
    const each = levels.map((l) => `${l.connections}: ${l.rate.toFixed(0)}/s ${(l.idle * 100).toFixed(0)}% idle`).join(', ');
    console.log(`    ${label.padEnd(26)}${b.rate.toFixed(0).padStart(7)} writes/s ${b.cpuMicrosPerWrite.toFixed(0).padStart(5)} us CPU/write   (${each})`);
    const threads = Object.entries(b.byThread)
      .filter(([, t]) => t.user + t.system >= 0.5)
      .sort((x, y) => y[1].user + y[1].system - (x[1].user + x[1].system))
      .map(([kind, t]) => `${kind} ${(t.user + t.system).toFixed(1)} (sys ${t.system.toFixed(1)})`);
    console.log(`    ${''.padEnd(26)}us CPU/write by thread: ${threads.join(', ')}`);
  };
  for (let r = 0; r < o.rounds; r++) {
    console.log(`  round ${r + 1}:`);
    runs.single.push(await measureThroughput(o, ['solo'], false));
    show('1 node', runs.single[r]!);
    // Alternating which of the pair runs first, so neither side always gets the later machine.
    const pair: Array<'off' | 'on'> = r % 2 === 0 ? ['off', 'on'] : ['on', 'off'];
    for (const k of pair) {
      runs[k].push(await measureThroughput(o, ['a', 'b', 'c'], k === 'on'));
      show(`3 nodes, replication ${k}`, runs[k][r]!);
    }
  }
  const m = (k: keyof typeof runs): { rate: number; cpuMicrosPerWrite: number } => ({
    rate: median(runs[k].map((x) => best(x).rate)),
    cpuMicrosPerWrite: median(runs[k].map((x) => best(x).cpuMicrosPerWrite)),
  });
  const single = m('single');
  const off = m('off');
  const on = m('on');
  const line = (label: string, t: { rate: number; cpuMicrosPerWrite: number }): void => console.log(`  ${label.padEnd(28)}${t.rate.toFixed(0).padStart(7)} writes/s   ${t.cpuMicrosPerWrite.toFixed(0).padStart(6)} us daemon CPU per write (all nodes)`);
  console.log('  medians over the rounds:');
  line('1 node, replication off', single);
  line('3 nodes, replication off', off);
  line('3 nodes, replication on', on);
  // Each round measures off and on back to back, so each round's pair saw the same machine; the
  // machine's speed drifts between rounds (shared cores), so the cost is the median of the rounds'
  // paired costs rather than a ratio of medians taken from different rounds.
  const pairedCosts = runs.on.map((r, i) => 1 - best(r).rate / best(runs.off[i]!).rate);
  const pairedCpuCosts = runs.on.map((r, i) => 1 - best(runs.off[i]!).cpuMicrosPerWrite / best(r).cpuMicrosPerWrite);
  const cost = median(pairedCosts);
  // On a shared 2-core box the three nodes compete for the same CPU, so the robust figure is the CPU
  // a write costs the whole cluster: with replication each write is also merged at two peers.
  const cpuCost = median(pairedCpuCosts);
  const pct = (xs: number[]): string => xs.map((x) => `${(x * 100).toFixed(1)}%`).join(', ');
  console.log(`  throughput cost of replication: ${(cost * 100).toFixed(1)}% of the 3-node rate without it, median of the rounds' pairs (${pct(pairedCosts)}) (target < 20%: ${cost < 0.2 ? 'met' : 'MISSED'})`);
  console.log(`  CPU cost of replication: ${(cpuCost * 100).toFixed(1)}% of the cluster's CPU per write goes to replication (rounds: ${pct(pairedCpuCosts)})`);
  const saturated = [...runs.off, ...runs.on].every((levels) => best(levels).idle < 0.1);
  if (!saturated) console.log('  warning: the machine had 10% or more idle CPU at some best level: that rate was limited by concurrency, not CPU; add a higher --connections level');
  const json = { lagP50Ms: p50, lagP99Ms: p99, lagMaxMs: max, offeredRate: o.rate, achievedRate: lag.achievedRate, invisible: lag.invisible, single, off, on, cost, cpuCost, pairedCosts, pairedCpuCosts, runs };
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
