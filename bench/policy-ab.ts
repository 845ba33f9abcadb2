// Two builds of mxsentry's policy service side by side: a developer's tool for telling whether a
// change makes a decision cheaper when the machine's noise (this 2-core VM: +-15% between runs of
// the same build) is larger than the change. Both daemons run on one fake DNS tree and are loaded
// at the same time, each by its own generator (bench/lib/policy-load.ts, the policy bench's request
// mix), so both see the same noise; each round prints both and the ratio B/A of the main thread's
// CPU per decision. Not a comparison with a peer (`npm run bench` is) and not part of `npm test`.
// `node dist/bench/policy-ab.js DIR_A DIR_B [--rounds N] [--seconds N] [--connections N]`, where each
// DIR is a checkout with its own `dist/` built (`bin/mxsentry` of that checkout is started).
// Loopback only (the fake tree listens on 127.53.x.y with one shared port, no root needed); every
// run is bounded in count and time; Ctrl-C and errors stop everything and remove the temp folder.
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startSharedPortTree } from '../test/helpers/daemon.js';
import { standardTree } from '../test/helpers/fake-hierarchy.js';
import { systemClock } from '../src/util/clock.js';
import { describeError } from '../src/util/errors.js';
import { waitForAnswer } from './lib/dns-probe.js';
import { ManagedProcess, ResourceRegistry } from './lib/managed-process.js';
import { spawnPolicyLoad, type PolicyLoadResult } from './lib/policy-load.js';
import { debianWhitelistFiles, waitForTcp } from './lib/policy-instances.js';
import { freeLoopbackPort } from './lib/resolver-instances.js';
import { median } from './lib/results-table.js';
import { DEFAULT_POLICY_BENCH_OPTIONS, withDnsblNegativeTtl } from './policy-bench.js';

const USAGE = 'usage: node dist/bench/policy-ab.js DIR_A DIR_B [--rounds N (default 6)] [--seconds N (default 6)] [--connections N (default 16)]';
const DELAY_SEC = 60;
const LISTEN = '127.0.0.1';

interface Options {
  dirs: [string, string];
  rounds: number;
  seconds: number;
  connections: number;
}

function parseArgs(argv: readonly string[]): Options {
  const dirs: string[] = [];
  const o = { rounds: 6, seconds: 6, connections: 16 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--rounds' || a === '--seconds' || a === '--connections') {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n < 1 || n > 200) throw new Error(`${a} needs an integer 1..200`);
      o[a.slice(2) as keyof typeof o] = n;
    } else if (a.startsWith('--')) throw new Error(`unknown option ${a}\n${USAGE}`);
    else dirs.push(resolve(a));
  }
  if (dirs.length !== 2) throw new Error(USAGE);
  for (const d of dirs) {
    if (!existsSync(join(d, 'bin', 'mxsentry')) || !existsSync(join(d, 'dist', 'src', 'main.js'))) {
      throw new Error(`${d} is not a built checkout (no bin/mxsentry or dist/src/main.js): run npx tsc -p tsconfig.json there`);
    }
  }
  return { dirs: dirs as [string, string], ...o };
}

interface Daemon {
  name: 'A' | 'B';
  port: number;
  proc: ManagedProcess;
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const registry = new ResourceRegistry();
  const onSignal = (): void => void registry.stopAll().finally(() => process.exit(130));
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-policy-ab-'));
  registry.add(`remove ${dir}`, () => rm(dir, { recursive: true, force: true }));
  try {
    const tree = await startSharedPortTree(withDnsblNegativeTtl(standardTree(), 3600));
    registry.add('stop the fake DNS tree', () => tree.stop());
    const hints = join(dir, 'root.hints');
    writeFileSync(hints, tree.rootHints);
    const wl = debianWhitelistFiles();
    const start = async (name: Daemon['name'], root: string): Promise<Daemon> => {
      const d = join(dir, name);
      mkdirSync(d, { recursive: true });
      const dnsPort = await freeLoopbackPort();
      const port = await freeLoopbackPort();
      const args = [
        join(root, 'bin', 'mxsentry'), 'serve', '--dns-listen', `${LISTEN}:${dnsPort}`, '--policy-listen', `${LISTEN}:${port}`,
        '--root-hints', hints, '--query-loopback', '--upstream-port', String(tree.port), '--do-ip6', 'false',
        '--data-dir', join(d, 'data'), '--log-level', 'info', '--dnsbl', 'dnsbl.example.net', '--delay', String(DELAY_SEC),
        ...wl.clients.flatMap((f) => ['--whitelist-clients', f]), ...wl.recipients.flatMap((f) => ['--whitelist-recipients', f]),
      ];
      const proc = new ManagedProcess({ name: `mxsentry ${name}`, command: process.execPath, args, cwd: d, maxOutputBytes: 64 << 10 }, registry);
      const wait = { deadlineMs: 20_000, hasExited: () => proc.exitStatus !== null, clock: systemClock };
      await waitForAnswer(LISTEN, dnsPort, 'localhost.', 'A', wait);
      await waitForTcp(LISTEN, port, wait);
      return { name, port, proc };
    };
    const daemons = [await start('A', opts.dirs[0]), await start('B', opts.dirs[1])] as const;
    const traffic = DEFAULT_POLICY_BENCH_OPTIONS.traffic;
    const load = (s: Daemon, phase: 'warmup' | 'measure', seconds: number, seed: string, connections = 16): Promise<PolicyLoadResult> =>
      spawnPolicyLoad({
        host: LISTEN, port: s.port, connections, phase, seconds, maxRequests: DEFAULT_POLICY_BENCH_OPTIONS.maxRequests, traffic,
        ratePerSec: 0, runSeed: seed, requestTimeoutMs: DEFAULT_POLICY_BENCH_OPTIONS.requestTimeoutMs, daemonPid: s.proc.pid as number,
      }, registry);
    const both = <T>(fn: (s: Daemon) => Promise<T>): Promise<T[]> => Promise.all(daemons.map(fn));

    process.stdout.write(`seeding both (${traffic.poolTriplets} triplets), then waiting for the ${DELAY_SEC} s greylisting delay of the pool\n`);
    const seededAt = Date.now();
    await both((s) => load(s, 'warmup', 120, 'seed'));
    await both((s) => load(s, 'measure', 5, 'jit', opts.connections));
    await new Promise((r) => setTimeout(r, Math.max(0, seededAt + (DELAY_SEC + 1) * 1000 - Date.now())));

    const mainUs = (r: PolicyLoadResult): number => (r.daemonMainThread?.onCpuMicros ?? Number.NaN) / Math.max(1, r.answered);
    const rows: { rate: number[]; main: number[]; p99: number[] }[] = [{ rate: [], main: [], p99: [] }, { rate: [], main: [], p99: [] }];
    const ratios: number[] = [];
    for (let round = 0; round < opts.rounds; round++) {
      await both((s) => load(s, 'warmup', 120, `r${round}`));
      const results = await both((s) => load(s, 'measure', opts.seconds, `r${round}`, opts.connections));
      const line = results.map((r, i) => {
        const row = rows[i]!;
        row.rate.push(r.decisionsPerSec);
        row.main.push(mainUs(r));
        row.p99.push(r.latencyMs.p99);
        return `${daemons[i]!.name} ${r.decisionsPerSec.toFixed(0)}/s, main thread ${mainUs(r).toFixed(1)} us/decision, p99 ${r.latencyMs.p99.toFixed(2)} ms, errors ${r.errors}`;
      });
      ratios.push(mainUs(results[1]!) / mainUs(results[0]!));
      process.stdout.write(`round ${round + 1}/${opts.rounds}: ${line.join(' | ')} | B/A ${ratios[ratios.length - 1]!.toFixed(3)}\n`);
    }
    for (const [i, s] of daemons.entries()) {
      const row = rows[i]!;
      process.stdout.write(`${s.name} (${opts.dirs[i]}): median ${median(row.rate).toFixed(0)}/s, main thread ${median(row.main).toFixed(1)} us/decision, p99 ${median(row.p99).toFixed(2)} ms\n`);
    }
    process.stdout.write(`B/A main-thread CPU per decision by round: ${ratios.map((r) => r.toFixed(3)).join(' ')}; median ${median(ratios).toFixed(3)}\n`);
    process.stdout.write('Two copies of one build give ratios of about 0.92-1.07 per round here: trust a median well outside that.\n');
  } finally {
    await registry.stopAll();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`policy-ab: ${describeError(err)}\n`);
  process.exit(1);
});
