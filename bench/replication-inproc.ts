// In-process cost of replicating one greylist record, without sockets or TLS: the sender's half
// (readLog of its own decisions' log entries and serialising them into PUSH frames, as peer-link.ts
// does) and the receiver's half (decoding the frames and applying them with Replicator.applyRecords,
// up to the commit). Two LMDB stores in a temp dir; each side is timed on its own, main-thread CPU per
// record. A developer's tool for the replication hot path, not a comparison with a peer:
// `node dist/bench/replication-inproc.js [--records N] [--batch N] [--rounds N] [--profile FILE]` (the receiver's half
// of each round is profiled to FILE.<round>).
import { randomInt } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clientKey, tripletKey } from '../src/policy/greylist.js';
import type { ClientRecord, TripletRecord } from '../src/store/greylist-types.js';
import { LmdbGreylistStore } from '../src/store/lmdb-greylist-store.js';
import { encodePushFrame, FrameDecoder, serializeEntry, type WireEntry } from '../src/store/replication/frame-codec.js';
import { Replicator } from '../src/store/replication/replicator.js';
import { systemClock } from '../src/util/clock.js';
import { createSilentLogger } from '../src/util/logger.js';
import { InprocProfiler, intArg, mainThreadCpuUs } from './lib/inproc.js';

const records = intArg('--records', 20_000);
const batchSize = intArg('--batch', 50);
const rounds = intArg('--rounds', 3);
const profiler = new InprocProfiler();
const say = (s: string): void => void process.stderr.write(`${s}\n`);

function letters(n: number): string {
  return Array.from({ length: n }, () => String.fromCharCode(97 + randomInt(26))).join('');
}

const dir = mkdtempSync(join(tmpdir(), 'mxsentry-repl-inproc-'));
const logger = createSilentLogger();
try {
  for (let round = 1; round <= rounds; round++) {
    const sender = await LmdbGreylistStore.open({ dataDir: join(dir, `s${round}`), clock: systemClock, logger });
    const receiver = await LmdbGreylistStore.open({ dataDir: join(dir, `r${round}`), clock: systemClock, logger });
    const replicator = new Replicator({ settings: undefined, clock: systemClock, logger, maxAgeMs: 35 * 86_400_000 });
    replicator.attach(receiver);
    // The sender's log: one decision (a new triplet and its client) per record pair, as greylisting writes them.
    const now = systemClock.nowMs();
    const writes: Array<Promise<void>> = [];
    for (let i = 0; i < records / 2; i++) {
      const client = `198.${randomInt(18, 20)}.${randomInt(0, 256)}.${randomInt(1, 255)}`;
      const t: TripletRecord = { firstSeenMs: now, lastSeenMs: now, passedAtMs: 0, passes: {} };
      const c: ClientRecord = { firstSeenMs: now, lastSeenMs: now, lastCountedMs: 0, passes: {} };
      writes.push(
        sender.decideNow(tripletKey(client, `${letters(10)}@sender.example`, `${letters(8)}@rcpt.example`, { lookupByHost: false }), clientKey(client), () => ({
          result: undefined, update: { triplet: t, client: c },
        })).written ?? Promise.resolve(),
      );
      if (writes.length >= 500) await Promise.all(writes.splice(0));
    }
    await Promise.all(writes);
    // Sender: read the log and serialise PUSH frames, batchSize entries each.
    let cursor = 0;
    const frames: Buffer[] = [];
    let cpu = mainThreadCpuUs();
    let t0 = performance.now();
    for (;;) {
      const entries = await sender.readLog(cursor, batchSize);
      if (entries.length === 0) break;
      const batch: string[] = [];
      for (const e of entries) batch.push(serializeEntry({ kind: e.kind, key: e.key, record: e.record, originNode: e.originNode, atMs: e.atMs } as WireEntry));
      cursor = entries[entries.length - 1]!.seq;
      frames.push(encodePushFrame(cursor, batch));
    }
    const sendCpu = mainThreadCpuUs() - cpu;
    const sendWall = performance.now() - t0;
    // Receiver: decode each frame and apply it; frames in flight as a link's pushes are (one at a time per link, here 2 links).
    const decoder = new FrameDecoder();
    await profiler.start();
    cpu = mainThreadCpuUs();
    t0 = performance.now();
    let applied = 0;
    const inFlight: Array<Promise<number>> = [];
    for (const f of frames) {
      for (const msg of decoder.push(f)) {
        if (msg.type !== 'push') throw new Error(`unexpected ${msg.type}`);
        applied += msg.entries.length;
        inFlight.push(replicator.applyRecords(msg.entries, 'benchpeer'));
      }
      if (inFlight.length >= 2) await inFlight.shift();
    }
    await Promise.all(inFlight);
    const recvCpu = mainThreadCpuUs() - cpu;
    const recvWall = performance.now() - t0;
    await profiler.stop(`.${round}`);
    const count = await receiver.count();
    say(
      `round ${round}: ${applied} records in ${frames.length} frames; sender ${(sendCpu / applied).toFixed(1)} us CPU/record (${((sendWall * 1000) / applied).toFixed(1)} wall); ` +
        `receiver ${(recvCpu / applied).toFixed(1)} us CPU/record (${((recvWall * 1000) / applied).toFixed(1)} wall); receiver holds ${count.triplets} triplets, ${count.clients} clients`,
    );
    await replicator.stop();
    await sender.close();
    await receiver.close();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
