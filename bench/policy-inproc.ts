// In-process cost of one policy decision, without sockets: the bench's request mix
// (lib/policy-traffic.ts) through the protocol parser, the daemon's 11-step pipeline
// (createPolicyService, the real resolver with the DNSBL answers cached, LMDB greylisting in a temp
// dir) and the decision log line (pino to stdout). A developer's tool for the hot path, not a
// comparison with a peer: `node dist/bench/policy-inproc.js [--decisions N] [--concurrency K] [--turns] [--silent] [--profile FILE] > /dev/null`.
// Loopback only (the fake DNS tree of the tests); bounded in count; removes its temp dir.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../src/config/load.js';
import { policySettings } from '../src/main.js';
import { createPolicyService } from '../src/policy/policy-service.js';
import { PolicyRequestParser } from '../src/policy/protocol.js';
import { ResilientGreylistStore } from '../src/store/resilient-greylist-store.js';
import { systemClock } from '../src/util/clock.js';
import { createRootLogger, createSilentLogger } from '../src/util/logger.js';
import { startHarness } from '../test/helpers/resolver-harness.js';
import { InprocProfiler, intArg, mainThreadCpuUs } from './lib/inproc.js';
import { PolicyTraffic } from './lib/policy-traffic.js';

const decisions = intArg('--decisions', 60_000);
const concurrency = intArg('--concurrency', 16);
const rounds = intArg('--rounds', 3);
const perTurn = process.argv.includes('--turns');
const say = (s: string): void => void process.stderr.write(`${s}\n`);

const hx = await startHarness({ listZones: ['dnsbl.example.net.'] });
const dir = mkdtempSync(join(tmpdir(), 'mxsentry-inproc-'));
const loaded = loadConfig({
  flags: {
    'data-dir': dir, dnsbl: ['dnsbl.example.net'], delay: 1,
    'whitelist-clients': ['/etc/postgrey/whitelist_clients'], 'whitelist-recipients': ['/etc/postgrey/whitelist_recipients'],
  },
});
if (loaded.errors.length > 0) throw new Error(loaded.errors.map((e) => e.message).join('; '));
const logger = process.argv.includes('--silent') ? createSilentLogger() : createRootLogger('info');
const store = ResilientGreylistStore.start({ dataDir: dir, clock: systemClock, logger: createSilentLogger() });
await store.whenOpen();
const svc = await createPolicyService(policySettings(loaded.values), {
  resolve: hx.stack.resolver.resolve, resolveCached: hx.stack.resolver.resolveCached, store, clock: systemClock, logger, nodeId: 'bench', version: 'bench',
});
const traffic = new PolicyTraffic({ poolSeed: 'inproc', poolTriplets: 2000, poolClients: 500, freshClients: 1500, repeatShare: 0.7 });

const parser = new PolicyRequestParser();
const decideWire = async (wire: string): Promise<void> => {
  for (const req of parser.push(Buffer.from(wire))) await svc.pipeline.decide(req);
};
say('warming: every pool triplet and fresh client once');
for (const w of traffic.warmupRequests('w')) await decideWire(w);
await new Promise((r) => setTimeout(r, 1100));
for (const w of traffic.warmupRequests('w2')) await decideWire(w);

const profiler = new InprocProfiler();
await profiler.start();
for (let round = 0; round < rounds; round++) {
  let next = 0;
  const streams = Array.from({ length: concurrency }, (_, c) => traffic.stream(`r${round}`, c));
  const before = process.cpuUsage();
  const mainBefore = mainThreadCpuUs();
  const started = performance.now();
  await Promise.all(streams.map(async (stream) => {
    const p = new PolicyRequestParser();
    while (next < decisions) {
      next++;
      // --turns: each request starts in an event-loop turn of its own, as a socket read does.
      if (perTurn) await new Promise((r) => setImmediate(r));
      for (const req of p.push(Buffer.from(stream().wire))) await svc.pipeline.decide(req);
    }
  }));
  const cpu = process.cpuUsage(before);
  const mainUs = mainThreadCpuUs() - mainBefore;
  const wallMs = performance.now() - started;
  say(`round ${round + 1}: ${decisions} decisions, ${((cpu.user + cpu.system) / decisions).toFixed(1)} us CPU each (all threads), ${(mainUs / decisions).toFixed(1)} us main thread, ${(decisions / wallMs * 1000).toFixed(0)}/s`);
}
const written = await profiler.stop();
if (written) say(`profile of the measured rounds written to ${written}`);
await store.close();
await hx.stop();
rmSync(dir, { recursive: true, force: true });
