// In-process cost of a cold resolution, without the client's sockets: fresh names
// (hN.example.com A that exist, nxN.example.com A that do not, as the DNS bench's cold phase) through
// the daemon's resolver (createDnsStack: caches, iterator, the real NetTransport with a fresh UDP
// socket per upstream query), the zone cuts cached, and each answer encoded as the server would.
// The fake tree (with its replay fronts) runs in a worker thread, so the main thread's CPU is the
// resolver's alone. A developer's tool for the cold path, not a comparison with a peer:
// `node dist/bench/dns-cold-inproc.js [--names N] [--concurrency K] [--rounds N] [--profile FILE]`.
// Needs root (the fake servers listen on port 53 of 127.53.x.y). Bounded in count; stops the worker.
import { fileURLToPath } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { loadConfig } from '../src/config/load.js';
import { encodeMessage } from '../src/dns/wire/message.js';
import { parseZoneText } from '../src/dns/wire/zone-text.js';
import { Opcode, RRClass, RRType, type Message } from '../src/dns/wire/types.js';
import { createDnsStack } from '../src/main.js';
import { systemClock } from '../src/util/clock.js';
import { createSilentLogger } from '../src/util/logger.js';
import { standardTree } from '../test/helpers/fake-hierarchy.js';
import { InprocProfiler, intArg, mainThreadCpuUs } from './lib/inproc.js';
import { COLD_ZONE, coldNames, startBenchHierarchy, withBenchHosts } from './lib/bench-hierarchy.js';

interface TreeData {
  hosts: number;
  names: Array<{ name: string; type: string }>;
}

if (!isMainThread) {
  // The fake tree: started, primed with every name the main thread will ask, then it answers until terminated.
  const data = workerData as TreeData;
  const tree = await startBenchHierarchy(withBenchHosts(standardTree(), data.hosts), { port: 53, replayFront: true, clock: systemClock });
  const unanswered = await tree.prime(COLD_ZONE, data.names);
  parentPort?.postMessage({ rootHints: tree.rootHints, unanswered });
} else {
  const names = intArg('--names', 10_000);
  const concurrency = intArg('--concurrency', 100);
  const rounds = intArg('--rounds', 3);
  const all = coldNames(0, names * rounds);
  const say = (s: string): void => void process.stderr.write(`${s}\n`);
  say(`starting the fake tree (${all.length} cold names primed) in a worker thread`);
  const worker = new Worker(fileURLToPath(import.meta.url), { workerData: { hosts: Math.ceil(all.length / 2), names: all } satisfies TreeData });
  const ready = await new Promise<{ rootHints: string; unanswered: number }>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  if (ready.unanswered > 0) say(`warning: ${ready.unanswered} priming queries got no answer`);
  const loaded = loadConfig({
    flags: { 'query-loopback': true, 'do-ip6': false, 'upstream-port': 53, 'use-caps-for-id': true, 'qname-minimisation': 'relaxed', prefetch: true },
  });
  if (loaded.errors.length > 0) throw new Error(loaded.errors.map((e) => e.message).join('; '));
  const stack = createDnsStack(loaded.values, createSilentLogger(), systemClock, { rootHints: parseZoneText(ready.rootHints, { origin: '.' }) });
  const { resolver } = stack;
  const flags = { qr: true, opcode: Opcode.QUERY, aa: false, tc: false, rd: true, ra: true, z: false, ad: false, cd: false };
  const askOne = async (name: string): Promise<number> => {
    const q = { name, type: RRType.A, class: RRClass.IN };
    const a = await resolver.answerQuery(q);
    const msg: Message = { id: 1, flags, rcode: a.rcode, questions: [q], answers: a.answers, authorities: a.authorities, additionals: [], edns: null };
    encodeMessage(msg);
    return a.rcode;
  };
  // Zone cuts (root, com., example.com.) into the cache, as the bench's warm-up does.
  await askOne(`www.${COLD_ZONE}`);

  const profiler = new InprocProfiler();
  await profiler.start();
  for (let round = 0; round < rounds; round++) {
    const batch = all.slice(round * names, (round + 1) * names);
    let next = 0;
    const rcodes = new Map<number, number>();
    const mainBefore = mainThreadCpuUs();
    const started = performance.now();
    await Promise.all(Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < batch.length; i = next++) {
        const rcode = await askOne(batch[i]!.name);
        rcodes.set(rcode, (rcodes.get(rcode) ?? 0) + 1);
      }
    }));
    const ms = performance.now() - started;
    const mainUs = mainThreadCpuUs() - mainBefore;
    const detail = [...rcodes].map(([r, n]) => `rcode ${r}: ${n}`).join(', ');
    say(`round ${round + 1}: ${batch.length} names in ${ms.toFixed(0)} ms = ${((batch.length / ms) * 1000).toFixed(0)}/s; main thread ${(mainUs / batch.length).toFixed(1)} us CPU per name (${detail})`);
  }
  const written = await profiler.stop();
  if (written) say(`profile written to ${written}`);
  await worker.terminate();
}
