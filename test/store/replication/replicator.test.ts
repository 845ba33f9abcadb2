// In-process replication tests: 2-3 Replicators on loopback, each with a fresh temp LMDB store.
// Covers convergence, persisted cursors and resumption after a restart, digest repair of a trimmed
// log and a brand-new node, the wrong key (refused, logged, nothing changed), malformed and oversized
// frames, clamping of future times, trimming, and status. Waits are short polls on real sockets.
import { cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import tls from 'node:tls';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ManualClock } from '../../../src/util/clock.js';
import { ManualScheduler } from '../../../src/store/scheduler.js';
import type { ClientRecord, TripletRecord } from '../../../src/store/greylist-types.js';
import { LmdbGreylistStore } from '../../../src/store/lmdb-greylist-store.js';
import { canonicalRecord, computeDigest, diffDigests } from '../../../src/store/replication/bucket-digest.js';
import { encodeFrame, PROTOCOL_VERSION } from '../../../src/store/replication/frame-codec.js';
import { pskClientOptions } from '../../../src/store/replication/replication-connection.js';
import { ReplicationErrorCode } from '../../../src/store/replication/replication-error-code.js';
import { derivePsk, parseReplicationKey, type PeerSpec } from '../../../src/store/replication/replication-settings.js';
import { Replicator, type ReplicatorOptions } from '../../../src/store/replication/replicator.js';
import { peersOf } from '../../../src/metrics/stats-snapshot.js';
import { settingsDifference } from '../../../src/store/replication/peer-link.js';
import { freeLoopbackPort } from '../../helpers/daemon.js';
import { makeImmutable } from '../../helpers/immutable-file.js';
import { capturingLogger } from '../../helpers/capturing-logger.js';

const s = suite('store/replication/replicator');

const T0 = 1_700_000_000_000;
const DAY_MS = 86_400_000;
const KEY = derivePsk(parseReplicationKey('11'.repeat(32)));
const OTHER_KEY = derivePsk(parseReplicationKey('22'.repeat(32)));

interface Node {
  name: string;
  port: number;
  dir: string;
  clock: ManualClock;
  store: LmdbGreylistStore;
  repl: Replicator;
  logs: () => Record<string, unknown>[];
}

const nodes: Node[] = [];
const dirs: string[] = [];

interface NodeOpts {
  name: string;
  port: number;
  peers: PeerSpec[];
  dir?: string;
  psk?: Buffer;
  clock?: ManualClock;
  extra?: Partial<ReplicatorOptions>;
  logMaxEntries?: number;
  /** replication-timeout (also the TLS handshake timeout), ms; default 5000. */
  timeoutMs?: number;
}

async function startNode(o: NodeOpts): Promise<Node> {
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'mxsentry-repl-'));
  if (!o.dir) dirs.push(dir);
  const clock = o.clock ?? new ManualClock(T0);
  const { logger, lines } = capturingLogger();
  const store = await LmdbGreylistStore.open({ dataDir: dir, clock, logger });
  const repl = new Replicator({
    settings: {
      nodeName: o.name,
      listen: { address: '127.0.0.1', port: o.port, text: `127.0.0.1:${o.port}` },
      peers: o.peers,
      psk: o.psk ?? KEY,
      digestIntervalMs: 3_600_000,
      timeoutMs: o.timeoutMs ?? 5000,
      logMaxEntries: o.logMaxEntries ?? 1_000_000,
    },
    clock,
    logger,
    maxAgeMs: 35 * DAY_MS,
    pollIntervalMs: 10,
    retryMinMs: 20,
    retryMaxMs: 200,
    digestSettleMs: 0,
    ...o.extra,
  });
  await repl.listen();
  repl.attach(store);
  const node: Node = { name: o.name, port: o.port, dir, clock, store, repl, logs: lines };
  nodes.push(node);
  return node;
}

async function stopNode(n: Node): Promise<void> {
  const i = nodes.indexOf(n);
  if (i >= 0) nodes.splice(i, 1);
  await n.repl.stop();
  await n.store.close();
}

function peer(name: string, port: number): PeerSpec {
  return { name, host: '127.0.0.1', port, text: `${name}=127.0.0.1:${port}` };
}

/** Starts a full mesh of `names`. */
async function cluster(names: string[], extra: Partial<ReplicatorOptions> = {}): Promise<Node[]> {
  const ports = await Promise.all(names.map(() => freeLoopbackPort()));
  const out: Node[] = [];
  for (let i = 0; i < names.length; i++) {
    out.push(await startNode({ name: names[i]!, port: ports[i]!, peers: names.flatMap((n, j) => (j === i ? [] : [peer(n, ports[j]!)])), extra }));
  }
  return out;
}

async function write(n: Node, key: string, triplet: TripletRecord, client?: { key: string; record: ClientRecord }): Promise<void> {
  await n.store.transact(key, client?.key ?? 'unused-client', () => ({ update: { triplet, ...(client ? { client: client.record } : {}) }, result: null }));
}

function rec(i: number, extra: Partial<TripletRecord> = {}): TripletRecord {
  return { firstSeenMs: T0 + i, lastSeenMs: T0 + i, passedAtMs: 0, passes: {}, ...extra };
}

/** Sorted canonical dump of a node's greylist (triplets and clients). */
async function dump(n: Node): Promise<string> {
  const t = await n.store.listTriplets({ limit: 100_000 });
  const c = await n.store.listClients({ limit: 100_000 });
  return JSON.stringify([t.map((r) => [r.key, canonicalRecord('triplet', r.record)]), c.map((r) => [r.key, canonicalRecord('client', r.record)])]);
}

async function waitFor(what: string, cond: () => Promise<boolean> | boolean, timeoutMs = 8000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function converged(ns: Node[]): Promise<boolean> {
  const d = await Promise.all(ns.map(dump));
  return d.every((x) => x === d[0]);
}

s.after.each(async () => {
  for (const n of nodes.splice(0)) {
    await n.repl.stop();
    await n.store.close();
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

s('a write at one node reaches the other; both ways; cursors are persisted', async () => {
  const [a, b] = await cluster(['mxa', 'mxb']);
  await write(a!, 'k1', rec(1), { key: '192.0.2.1', record: { firstSeenMs: T0, lastSeenMs: T0, lastCountedMs: T0, passes: { x: 1 } } });
  await write(b!, 'k2', rec(2));
  await waitFor('convergence', () => converged([a!, b!]));
  assert.is((await b!.store.listTriplets()).length, 2);
  assert.is((await a!.store.listClients()).length, 1);
  await waitFor('cursor at a', async () => (await a!.store.getCursor(b!.store.getNodeId())) === (await a!.store.getLastSeq()));
  // A digest round may still log a merge (of nothing new) after that; the lag returns to 0.
  await waitFor('no lag', async () => (await a!.repl.status()).peers[0]!.lagRecords === 0);
  const st = await a!.repl.status();
  assert.is(st.peers[0]!.name, 'mxb');
  assert.ok(st.peers[0]!.connected);
  assert.ok(st.peers[0]!.inbound);
  assert.is(st.peers[0]!.lagRecords, 0);
  assert.is(st.peers[0]!.nodeId, b!.store.getNodeId());
  // The metrics read the same status: every per-peer figure arrives under its name.
  const [m] = peersOf(st);
  assert.equal(m, { peer: 'mxb', connected: true, lagRecords: 0, lagSec: 0, inbound: true, sentEntries: st.peers[0]!.sentEntries, receivedEntries: st.peers[0]!.receivedEntries, repairedRecords: st.peers[0]!.repairedRecords, ...(st.peers[0]!.lastDigestAtMs !== null ? { lastDigestAtMs: st.peers[0]!.lastDigestAtMs } : {}) });
  assert.ok(m!.sentEntries! >= 2 && m!.receivedEntries! >= 1, JSON.stringify(m));
});

s('three nodes converge under random writes at random nodes, including merges of one key', async () => {
  const ns = await cluster(['n1', 'n2', 'n3']);
  let seed = 7;
  const rand = (): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const writes: Promise<void>[] = [];
  for (let i = 0; i < 300; i++) {
    const n = ns[Math.floor(rand() * 3)]!;
    const key = `k${Math.floor(rand() * 120)}`;
    const nodeId = n.store.getNodeId();
    writes.push(
      n.store.transact(key, 'c', (cur) => ({
        update: { triplet: { firstSeenMs: Math.min(cur?.firstSeenMs ?? Infinity, T0 + i), lastSeenMs: Math.max(cur?.lastSeenMs ?? 0, T0 + i), passedAtMs: 0, passes: { ...cur?.passes, [nodeId]: (cur?.passes[nodeId] ?? 0) + 1 } } },
        result: undefined,
      })),
    );
  }
  await Promise.all(writes);
  await waitFor('convergence of 3 nodes', () => converged(ns));
  const keys = (await ns[0]!.store.listTriplets({ limit: 1000 })).length;
  assert.ok(keys > 80 && keys <= 120, `${keys} keys`);
});

s('a node stopped while its link is up leaves no error that the connection had healed', async () => {
  const ports = [await freeLoopbackPort(), await freeLoopbackPort()];
  // b starts first: its link to a fails until a is up.
  const b = await startNode({ name: 'b', port: ports[1]!, peers: [peer('a', ports[0]!)] });
  await waitFor('b fails to reach a', async () => (await b.repl.status()).peers[0]!.lastError !== null);
  const a = await startNode({ name: 'a', port: ports[0]!, peers: [peer('b', ports[1]!)] });
  await waitFor('b connected', async () => (await b.repl.status()).peers[0]!.connected);
  assert.ok((await b.repl.status()).peers[0]!.lastError !== null, 'while up, the earlier error is kept (shown as before this connection)');
  await stopNode(b);
  const after = (await b.repl.status()).peers[0]!;
  assert.is(after.connected, false);
  assert.is(after.lastError, null);
  await stopNode(a);
});

s('a restarted node resumes from its cursor and gets what was written while it was down', async () => {
  const ports = [await freeLoopbackPort(), await freeLoopbackPort()];
  const a = await startNode({ name: 'a', port: ports[0]!, peers: [peer('b', ports[1]!)] });
  let b = await startNode({ name: 'b', port: ports[1]!, peers: [peer('a', ports[0]!)] });
  for (let i = 0; i < 20; i++) await write(a, `early${i}`, rec(i));
  await waitFor('first sync', () => converged([a, b]));
  const bDir = b.dir;
  await stopNode(b);
  for (let i = 0; i < 20; i++) await write(a, `late${i}`, rec(100 + i));
  await waitFor('a notices b is gone', async () => !(await a.repl.status()).peers[0]!.connected);
  const down = (await a.repl.status()).peers[0]!;
  assert.ok(down.lagRecords! >= 20, `lag ${down.lagRecords}`);
  assert.ok(down.lastError !== null);
  // a's log says what happened to the link, not that a itself is stopping.
  const failed = a.logs().filter((l) => l['msg'] === 'replication link to peer failed; retrying').map((l) => String(l['err']));
  assert.ok(failed.length > 0);
  assert.not.ok(failed.some((e) => /replication is stopping/.test(e)), failed.join(' | '));
  b = await startNode({ name: 'b', port: ports[1]!, peers: [peer('a', ports[0]!)], dir: bDir });
  await waitFor('catch-up after restart', () => converged([a, b]));
  // Resumed from the cursor: only the 20 late entries were pushed on the new link.
  const st = (await a.repl.status()).peers[0]!;
  assert.ok(st.sentEntries <= 20 + 20, `sent ${st.sentEntries}`);
  assert.is((await b.store.listTriplets()).length, 40);
});

s('a node that comes up (started after its peer, then restarted) gets its changes at once: the peer in backoff dials back when the node connects', async () => {
  const ports = [await freeLoopbackPort(), await freeLoopbackPort()];
  // A first redial after 16-24 s: without the early dial nothing of a's could reach b in time, neither
  // after b's first start (a's first dial failed: b was not up yet) nor after its restart.
  const extra = { retryMinMs: 20_000, retryMaxMs: 60_000 };
  const a = await startNode({ name: 'a', port: ports[0]!, peers: [peer('b', ports[1]!)], extra });
  let b = await startNode({ name: 'b', port: ports[1]!, peers: [peer('a', ports[0]!)], extra });
  await write(a, 'early', rec(1));
  await waitFor('first sync', () => converged([a, b]));
  const bDir = b.dir;
  await stopNode(b);
  await waitFor('a notices b is gone', async () => !(await a.repl.status()).peers[0]!.connected);
  await write(a, 'late', rec(2));
  const restartedAt = Date.now();
  b = await startNode({ name: 'b', port: ports[1]!, peers: [peer('a', ports[0]!)], dir: bDir, extra });
  await waitFor('a pushes to the restarted b', async () => (await b.store.listTriplets()).some((t) => t.key === 'late'), 5000);
  assert.ok(Date.now() - restartedAt < 5000);
  assert.ok(a.logs().some((l) => l['msg'] === 'replication peer connected to this node: dialling it now' && l['peer'] === 'b'));
});

s('digest repair fills a brand-new node from a peer whose log was trimmed', async () => {
  const ports = [await freeLoopbackPort(), await freeLoopbackPort()];
  const a = await startNode({ name: 'a', port: ports[0]!, peers: [peer('b', ports[1]!)] });
  for (let i = 0; i < 50; i++) await write(a, `key${i}`, rec(i), { key: `192.0.2.${i}`, record: { firstSeenMs: T0, lastSeenMs: T0 + i, lastCountedMs: 0, passes: {} } });
  // Force the log to forget everything (as after a long outage beyond replication-log-max).
  await a.store.trimLog((await a.store.getLastSeq()) + 1);
  assert.is((await a.store.readLog(0, 1000)).length, 1);
  a.clock.advanceMs(1000);
  const b = await startNode({ name: 'b', port: ports[1]!, peers: [peer('a', ports[0]!)], clock: a.clock });
  await waitFor('repair', () => converged([a, b]));
  assert.is((await b.store.listTriplets()).length, 50);
  assert.is((await b.store.listClients()).length, 50);
  // The counters are updated when the round's last REPAIR is acknowledged, just after b holds it all.
  await waitFor('repair round done', async () => (await a.repl.status()).peers[0]!.lastDigestAtMs !== null);
  const st = (await a.repl.status()).peers[0]!;
  assert.ok(st.repairedRecords >= 99, `repaired ${st.repairedRecords}`);
  assert.ok(st.lastDigestDiffBuckets! > 0);
});

s('a reload that replaces a link keeps its sent and repaired counts: Prometheus counters never go down', async () => {
  const ports = [await freeLoopbackPort(), await freeLoopbackPort()];
  const a = await startNode({ name: 'a', port: ports[0]!, peers: [peer('b', ports[1]!)] });
  for (let i = 0; i < 5; i++) await write(a, `old${i}`, rec(i));
  await a.store.trimLog((await a.store.getLastSeq()) + 1);
  a.clock.advanceMs(1000);
  const b = await startNode({ name: 'b', port: ports[1]!, peers: [peer('a', ports[0]!)], clock: a.clock });
  await waitFor('repair', () => converged([a, b]));
  await waitFor('repair round done', async () => (await a.repl.status()).peers[0]!.lastDigestAtMs !== null);
  await write(a, 'pushed', rec(9));
  await waitFor('pushed at b', async () => (await b.store.listTriplets()).some((t) => t.key === 'pushed'));
  await waitFor('push counted', async () => (await a.repl.status()).peers[0]!.sentEntries > 0);
  const before = (await a.repl.status()).peers[0]!;
  assert.ok(before.repairedRecords > 0, `repaired ${before.repairedRecords}`);
  // A new link timeout closes the link and dials a new one (as a new key does).
  const change = a.repl.reconfigure({ ...a.repl.settings!, timeoutMs: 6000 });
  assert.equal(change.reconnected, ['b']);
  await waitFor('new link up', async () => (await a.repl.status()).peers[0]!.connected);
  const after = (await a.repl.status()).peers[0]!;
  assert.ok(after.sentEntries >= before.sentEntries, `sentEntries ${before.sentEntries} -> ${after.sentEntries}`);
  assert.ok(after.repairedRecords >= before.repairedRecords, `repairedRecords ${before.repairedRecords} -> ${after.repairedRecords}`);
  await write(a, 'later', rec(10));
  await waitFor('later counted', async () => (await a.repl.status()).peers[0]!.sentEntries > before.sentEntries);
});

s('a node that lost its store gets back its own recent changes from the second digest round, not an interval later', async () => {
  const ports = [await freeLoopbackPort(), await freeLoopbackPort()];
  const extra = { digestSettleMs: 30_000 };
  const a = await startNode({ name: 'a', port: ports[0]!, peers: [peer('b', ports[1]!)], extra });
  const b = await startNode({ name: 'b', port: ports[1]!, peers: [peer('a', ports[0]!)], clock: a.clock, extra });
  await write(b, 'x', rec(0, { lastSeenMs: T0 }));
  await waitFor('sync', () => converged([a, b]));
  // b loses its store (moved aside as the README says) and starts empty a moment later: its
  // change of T0 is too recent for the first round's window, and a's log carries only a's own.
  await stopNode(b);
  a.clock.advanceMs(1000);
  const b2 = await startNode({ name: 'b', port: ports[1]!, peers: [peer('a', ports[0]!)], clock: a.clock, extra });
  await waitFor('first round', async () => (await a.repl.status()).peers[0]!.lastDigestAtMs === T0 + 1000);
  assert.is((await b2.store.listTriplets()).length, 0, 'not in the first round: still settling');
  a.clock.advanceMs(31_500);
  a.repl.notify();
  await waitFor('second round repair', () => converged([a, b2]));
  assert.is((await b2.store.listTriplets()).length, 1);
});

s('the second digest round covers the records changed before its link connected, even right after another link\'s round', async () => {
  const ports = [await freeLoopbackPort(), await freeLoopbackPort(), await freeLoopbackPort()];
  const extra = { digestSettleMs: 30_000 };
  // The clock jumps by seconds: a link silent for that long must not time out and start over.
  const timeoutMs = 3_600_000;
  const a = await startNode({ name: 'a', port: ports[0]!, peers: [peer('b', ports[1]!), peer('c', ports[2]!)], extra, timeoutMs });
  const b = await startNode({ name: 'b', port: ports[1]!, peers: [peer('a', ports[0]!)], clock: a.clock, extra, timeoutMs });
  await startNode({ name: 'c', port: ports[2]!, peers: [peer('a', ports[0]!)], clock: a.clock, extra, timeoutMs });
  const linkTo = async (name: string): Promise<{ lastDigestAtMs: number | null }> => (await a.repl.status()).peers.find((p) => p.name === name)!;
  await waitFor('first round to c', async () => (await linkTo('c')).lastDigestAtMs === T0);
  a.clock.advanceMs(2000);
  await write(b, 'x', rec(2000, { lastSeenMs: T0 + 2000 }));
  await waitFor('sync', async () => (await a.store.listTriplets()).length === 1);
  // b is restored from an old backup (here: an empty store) a second later.
  await stopNode(b);
  a.clock.advanceMs(1000);
  const b2 = await startNode({ name: 'b', port: ports[1]!, peers: [peer('a', ports[0]!)], clock: a.clock, extra, timeoutMs });
  await waitFor('first round to b', async () => (await linkTo('b')).lastDigestAtMs === T0 + 3000);
  // The link to c, up since T0, runs its second round first: its window ends at T0 + 1000.
  a.clock.advanceMs(28_000);
  a.repl.notify();
  await waitFor('second round to c', async () => (await linkTo('c')).lastDigestAtMs === T0 + 31_000);
  // Three seconds later, the second round to b: it must compare what changed before b connected.
  a.clock.advanceMs(3000);
  a.repl.notify();
  await waitFor('second round to b', async () => (await linkTo('b')).lastDigestAtMs === T0 + 34_000);
  await waitFor('repair of b', async () => (await b2.store.listTriplets()).length === 1, 2000);
});

s('the digest repairs a record that differs although both logs were acknowledged', async () => {
  const [a, b] = await cluster(['a', 'b']);
  await write(a!, 'x', rec(1));
  await waitFor('sync', () => converged([a!, b!]));
  // Remove b's copy behind replication's back (as a restored backup would, unlike a logged
  // deletion): only the digest can see it.
  await b!.store.purge(T0 + 10, 0);
  assert.not.ok(await converged([a!, b!]));
  a!.clock.advanceMs(3_600_001);
  b!.clock.advanceMs(3_600_001);
  a!.repl.notify();
  await waitFor('digest repair', () => converged([a!, b!]));
});

s('an admin deletion at one node removes the triplet at every node; a later decision starts it over', async () => {
  const ns = await cluster(['d1', 'd2', 'd3']);
  await write(ns[0]!, 'gone', rec(1, { passedAtMs: T0 + 1, passes: { x: 1 } }));
  await write(ns[1]!, 'kept', rec(2));
  await waitFor('sync', () => converged(ns));
  assert.ok(await ns[2]!.store.deleteTriplet('gone'));
  const live = async (n: Node): Promise<string[]> => (await n.store.listTriplets({ liveOnly: true })).map((r) => r.key);
  await waitFor('the deletion everywhere', async () => (await Promise.all(ns.map(live))).every((keys) => keys.join() === 'kept'));
  await waitFor('convergence', () => converged(ns));
  // A digest round changes nothing: the tombstone is the agreed state, not a difference to repair.
  for (const n of ns) n.clock.advanceMs(3_600_001);
  ns[0]!.repl.notify();
  await waitFor('digest round', async () => (await ns[0]!.repl.status()).peers.every((p) => p.lastDigestAtMs !== null && p.lastDigestAtMs > T0));
  assert.equal(await live(ns[1]!), ['kept']);
  // The next decision on the key at another node starts a new epoch, which replicates over the tombstone.
  await ns[1]!.store.transact('gone', 'c', (cur) => ({ update: { triplet: { ...rec(3_600_001), epoch: (cur?.epoch ?? 0) + 1 } }, result: null }));
  await waitFor('the new epoch everywhere', async () => (await Promise.all(ns.map(live))).every((keys) => keys.join() === 'gone,kept'));
  assert.ok(await converged(ns));
});

s('reconfigure (a reload) adds a peer to a running node, and removes it again', async () => {
  const ports = [await freeLoopbackPort(), await freeLoopbackPort()];
  const a = await startNode({ name: 'a', port: ports[0]!, peers: [] });
  const b = await startNode({ name: 'b', port: ports[1]!, peers: [peer('a', ports[0]!)] });
  await write(a, 'before', rec(1));
  const added = a.repl.reconfigure({ ...a.repl.settings!, peers: [peer('b', ports[1]!)] });
  assert.equal(added.peersAdded, [`b=127.0.0.1:${ports[1]}`]);
  assert.equal(added.peersRemoved, []);
  assert.is(added.keyChanged, false);
  // The new link pushes a's log from the start: the write made before it existed arrives too.
  await waitFor('a new link', () => converged([a, b]));
  await waitFor('link up', async () => (await a.repl.status()).peers[0]?.connected === true);
  assert.is((await a.repl.status()).peers[0]!.name, 'b');

  const removed = a.repl.reconfigure({ ...a.repl.settings!, peers: [] });
  assert.equal(removed.peersRemoved, [`b=127.0.0.1:${ports[1]}`]);
  // b's session into a is closed with the removal; a forgets it: no row for a node it does not replicate with.
  await waitFor('b forgotten', async () => (await a.repl.status()).peers.length === 0);
  await write(a, 'after', rec(2));
  await write(b, 'from-b', rec(3));
  await waitFor('b refused', async () => (await b.repl.status()).peers[0]!.lastError?.includes(ReplicationErrorCode.NOT_A_PEER) ?? false);
  await new Promise((r) => setTimeout(r, 300));
  assert.not.ok((await b.store.listTriplets()).some((t) => t.key === 'after'), 'a removed peer gets nothing more');
  assert.not.ok((await a.store.listTriplets()).some((t) => t.key === 'from-b'), 'a removed peer writes nothing more');
  // Nothing holds a's log back any more: a trim keeps only the newest entry.
  await a.repl.trim();
  assert.is((await a.store.readLog(0, 1000)).length, 1);
});

s('a node that holds the key but has no peer line is refused, and its open session closes when a reload removes its line', async () => {
  const ports = [await freeLoopbackPort(), await freeLoopbackPort(), await freeLoopbackPort()];
  const a = await startNode({ name: 'a', port: ports[0]!, peers: [peer('b', ports[1]!), peer('c', ports[2]!)] });
  const b = await startNode({ name: 'b', port: ports[1]!, peers: [peer('a', ports[0]!)] });
  // c lists a, but a lists only b... after the reload below; first the full pair a-c.
  const c = await startNode({ name: 'c', port: ports[2]!, peers: [peer('a', ports[0]!)] });
  await write(c, 'c1', rec(1));
  await waitFor('c1 at a', async () => (await a.store.listTriplets()).some((t) => t.key === 'c1'));
  // The admin retires c: its line goes from a's file and a reloads, while c keeps running (and dialling).
  a.repl.reconfigure({ ...a.repl.settings!, peers: [peer('b', ports[1]!)] });
  await write(c, 'c2', rec(2));
  await waitFor('c sees the refusal', async () => (await c.repl.status()).peers[0]!.lastError?.includes(ReplicationErrorCode.NOT_A_PEER) ?? false);
  await waitFor('a counts it', async () => (await a.repl.status()).refusedConnections > 0);
  assert.match((await a.repl.status()).lastRefused?.text ?? '', /^c from 127\.0\.0\.1: STORE_ERR_REPL_NOT_A_PEER: c is not in the peer list of a/, 'who, from where and why');
  await new Promise((r) => setTimeout(r, 300));
  assert.not.ok((await a.store.listTriplets()).some((t) => t.key === 'c2'), 'the retired node pushed a record after its removal');
  assert.ok(a.logs().some((l) => l.code === ReplicationErrorCode.NOT_A_PEER && l.level === 'warn'));
  assert.equal((await a.repl.status()).peers.map((p) => p.name), ['b']);
  // b, still listed, replicates as before.
  await write(b, 'b1', rec(3));
  await waitFor('b1 at a', async () => (await a.store.listTriplets()).some((t) => t.key === 'b1'));
});

s('a second node under a name that already has a session is refused and says why; the first keeps replicating', async () => {
  const ports = [await freeLoopbackPort(), await freeLoopbackPort(), await freeLoopbackPort()];
  const a = await startNode({ name: 'a', port: ports[0]!, peers: [peer('b', ports[1]!)] });
  const b = await startNode({ name: 'b', port: ports[1]!, peers: [peer('a', ports[0]!)] });
  await write(b, 'b1', rec(1));
  await waitFor('b1 at a', async () => (await a.store.listTriplets()).some((t) => t.key === 'b1'));
  // A copy of b's configuration on another host: same name, its own store (another store id).
  const copy = await startNode({ name: 'b', port: ports[2]!, peers: [peer('a', ports[0]!)] });
  await write(copy, 'copy1', rec(2));
  await waitFor('the copy sees the refusal', async () => (await copy.repl.status()).peers[0]!.lastError?.includes(ReplicationErrorCode.DUPLICATE_NAME) ?? false);
  const status = await copy.repl.status();
  assert.is(status.peers[0]!.connected, false, 'the copy does not look healthy');
  assert.match(status.peers[0]!.lastError ?? '', /two nodes share the name/);
  assert.ok(a.logs().some((l) => l.code === ReplicationErrorCode.DUPLICATE_NAME && l.level === 'warn'), 'a logs the refusal');
  // a's own link to b's address reaches the real b, so the copy's store id is the wrong one there.
  assert.match((await a.repl.status()).lastRefused?.text ?? '', /STORE_ERR_REPL_DUPLICATE_NAME: the node at 127\.0\.0\.1:\d+ \(the address of "b"\) has store id [0-9a-f]{16}, this one [0-9a-f]{16}/, 'and its status names it');
  await new Promise((r) => setTimeout(r, 300));
  assert.not.ok((await a.store.listTriplets()).some((t) => t.key === 'copy1'), 'nothing of the copy is applied');
  // The real b is undisturbed.
  await write(b, 'b2', rec(3));
  await waitFor('b2 at a', async () => (await a.store.listTriplets()).some((t) => t.key === 'b2'));
});

s('a copy under a peer\'s name that got in while the peer was down is shut out once the real peer is back', async () => {
  const ports = [await freeLoopbackPort(), await freeLoopbackPort(), await freeLoopbackPort()];
  const a = await startNode({ name: 'a', port: ports[0]!, peers: [peer('b', ports[1]!)] });
  // The real b is down; a copy of its configuration on another address connects to a as "b".
  const copy = await startNode({ name: 'b', port: ports[2]!, peers: [peer('a', ports[0]!)] });
  await write(copy, 'copy1', rec(1));
  await waitFor('the copy got in', async () => (await a.store.listTriplets()).some((t) => t.key === 'copy1'));
  const b = await startNode({ name: 'b', port: ports[1]!, peers: [peer('a', ports[0]!)] });
  await write(b, 'b1', rec(2));
  await waitFor('the real b\'s change at a', async () => (await a.store.listTriplets()).some((t) => t.key === 'b1'));
  await waitFor('the copy sees the refusal', async () => (await copy.repl.status()).peers[0]!.lastError?.includes(ReplicationErrorCode.DUPLICATE_NAME) ?? false);
  assert.is((await copy.repl.status()).peers[0]!.connected, false, 'the copy does not look healthy');
  const row = (await a.repl.status()).peers.find((p) => p.name === 'b')!;
  assert.is(row.nodeId, b.store.getNodeId(), 'a shows the real b');
  assert.ok(a.logs().some((l) => l.code === ReplicationErrorCode.DUPLICATE_NAME && l.level === 'warn'), 'a logs the duplicate');
  await write(copy, 'copy2', rec(3));
  await new Promise((r) => setTimeout(r, 300));
  assert.not.ok((await a.store.listTriplets()).some((t) => t.key === 'copy2'), 'nothing more of the copy is applied');
});

/** A copy of `n`'s store in a new temp dir (a cloned VM's data dir). */
async function copyStore(n: Node): Promise<string> {
  await n.store.flush();
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-repl-'));
  dirs.push(dir);
  cpSync(join(n.dir, 'greylist'), join(dir, 'greylist'), { recursive: true });
  return dir;
}

s('a node started on a copy of another\'s data dir (a cloned VM) is refused as such, by its original and by a third node', async () => {
  const ports = [await freeLoopbackPort(), await freeLoopbackPort(), await freeLoopbackPort()];
  const a = await startNode({ name: 'a', port: ports[0]!, peers: [peer('b', ports[1]!), peer('d', ports[2]!)] });
  const b = await startNode({ name: 'b', port: ports[1]!, peers: [peer('a', ports[0]!), peer('d', ports[2]!)] });
  await write(b, 'b1', rec(1));
  await waitFor('b1 at a', async () => (await a.store.listTriplets()).some((t) => t.key === 'b1'));
  const linkOf = async (n: Node, name: string): Promise<{ connected: boolean; inbound: boolean; lastError: string | null }> => (await n.repl.status()).peers.find((p) => p.name === name)!;
  await waitFor('b up at a both ways', async () => {
    const row = await linkOf(a, 'b');
    return row.connected && row.inbound;
  });
  // d is a copy of b's store (its VM cloned), with a name of its own.
  const dDir = await copyStore(b);
  const d = await startNode({ name: 'd', port: ports[2]!, peers: [peer('a', ports[0]!), peer('b', ports[1]!)], dir: dDir });
  assert.is(d.store.getNodeId(), b.store.getNodeId());
  const copyError = /STORE_ERR_REPL_DUPLICATE_STORE: .*have the same store id [0-9a-f]{16}: the data dir of one is a copy of the other's/;
  await waitFor('b and d tell each other why', async () => copyError.test((await linkOf(b, 'd')).lastError ?? '') && copyError.test((await linkOf(d, 'b')).lastError ?? ''));
  assert.match((await linkOf(b, 'd')).lastError!, /d and this node \(b\) have the same store id/);
  assert.not.match((await linkOf(b, 'd')).lastError!, /STORE_ERR_REPL_SELF/);
  // a already replicates with b under that store id: d is refused both ways, with the reason.
  await waitFor('a refuses d both ways', async () => copyError.test((await linkOf(a, 'd')).lastError ?? '') && copyError.test((await linkOf(d, 'a')).lastError ?? ''));
  assert.match((await linkOf(a, 'd')).lastError!, /d and b have the same store id/);
  // Each already has a node-name of its own: the advice is a store of its own, not a new name.
  for (const text of [(await linkOf(a, 'd')).lastError!, (await linkOf(b, 'd')).lastError!, (await linkOf(d, 'a')).lastError!]) {
    assert.match(text, /on the copy, stop mxsentry, move <data-dir>\/greylist aside/);
    assert.not.match(text, /node-name/);
  }
  assert.is((await linkOf(a, 'd')).connected, false);
  assert.ok(a.logs().some((l) => l.code === ReplicationErrorCode.DUPLICATE_STORE && l.level === 'error'), 'a logs it as an error');
  await write(d, 'd1', rec(2));
  await write(b, 'b2', rec(3));
  await waitFor('b2 at a', async () => (await a.store.listTriplets()).some((t) => t.key === 'b2'));
  await new Promise((r) => setTimeout(r, 300));
  assert.not.ok((await a.store.listTriplets()).some((t) => t.key === 'd1'), 'nothing of the copy is applied');
  const row = await linkOf(a, 'b');
  assert.ok(row.connected && row.inbound, 'b keeps replicating with a');
  // The README's way out: on the copy, stop, move <data-dir>/greylist aside, start.
  await stopNode(d);
  rmSync(join(dDir, 'greylist'), { recursive: true, force: true });
  const d2 = await startNode({ name: 'd', port: ports[2]!, peers: [peer('a', ports[0]!), peer('b', ports[1]!)], dir: dDir });
  assert.is.not(d2.store.getNodeId(), b.store.getNodeId());
  await waitFor('d replicates both ways with a and b', async () => {
    const rows = [await linkOf(a, 'd'), await linkOf(b, 'd'), await linkOf(d2, 'a'), await linkOf(d2, 'b')];
    return rows.every((r) => r.connected && r.inbound);
  });
  await waitFor('d is filled', async () => (await d2.store.listTriplets()).some((t) => t.key === 'b2'));
});

s('a copy of a node\'s data dir and configuration running elsewhere (same name, same store id) is refused; the node keeps replicating', async () => {
  const ports = [await freeLoopbackPort(), await freeLoopbackPort(), await freeLoopbackPort()];
  const a = await startNode({ name: 'a', port: ports[0]!, peers: [peer('b', ports[1]!)] });
  // The admin meant the copy as a new node "d", and gave b a peer line for it.
  const b = await startNode({ name: 'b', port: ports[1]!, peers: [peer('a', ports[0]!), peer('d', ports[2]!)] });
  await write(b, 'b1', rec(1));
  await waitFor('b up at a both ways', async () => {
    const row = (await a.repl.status()).peers[0]!;
    return row.connected && row.inbound && (await a.store.listTriplets()).length === 1;
  });
  const copy = await startNode({ name: 'b', port: ports[2]!, peers: [peer('a', ports[0]!)], dir: await copyStore(b) });
  const copyError = /STORE_ERR_REPL_DUPLICATE_STORE: .*is not the node at 127\.0\.0\.1:\d+.*a copy of its data dir/;
  await waitFor('the copy is told why', async () => copyError.test((await copy.repl.status()).peers[0]!.lastError ?? ''));
  assert.match((await a.repl.status()).lastRefused?.text ?? '', copyError);
  assert.ok(a.logs().some((l) => l.code === ReplicationErrorCode.DUPLICATE_STORE && l.level === 'warn'), 'a logs the refusal');
  // b's link to d's address reaches a node with b's own name and store id: a copy, not b itself.
  const bToD = async (): Promise<string> => (await b.repl.status()).peers.find((p) => p.name === 'd')!.lastError ?? '';
  await waitFor('b says what it found at d', async () => /STORE_ERR_REPL_DUPLICATE_STORE: the node at d=127\.0\.0\.1:\d+ and this node \(b\) have the same store id/.test(await bToD()));
  assert.match(await bToD(), /on the copy, give it a node-name of its own, stop mxsentry/);
  assert.match((await copy.repl.status()).lastRefused?.text ?? '', /STORE_ERR_REPL_DUPLICATE_STORE: the node connecting as "b" and this node have the same store id/);
  await write(copy, 'copy1', rec(2));
  await write(b, 'b2', rec(3));
  await waitFor('b2 at a', async () => (await a.store.listTriplets()).some((t) => t.key === 'b2'));
  await new Promise((r) => setTimeout(r, 300));
  assert.not.ok((await a.store.listTriplets()).some((t) => t.key === 'copy1'), 'nothing of the copy is applied');
});

s('such a copy that got in while the node was down is shut out once the node is back', async () => {
  const ports = [await freeLoopbackPort(), await freeLoopbackPort(), await freeLoopbackPort()];
  const a = await startNode({ name: 'a', port: ports[0]!, peers: [peer('b', ports[1]!)] });
  const b = await startNode({ name: 'b', port: ports[1]!, peers: [peer('a', ports[0]!)] });
  await write(b, 'b1', rec(1));
  await waitFor('b1 at a', async () => (await a.store.listTriplets()).length === 1);
  const copyDir = await copyStore(b);
  await stopNode(b);
  const copy = await startNode({ name: 'b', port: ports[2]!, peers: [peer('a', ports[0]!)], dir: copyDir });
  await write(copy, 'copy1', rec(2));
  await waitFor('the copy got in', async () => (await a.store.listTriplets()).some((t) => t.key === 'copy1'));
  const b2 = await startNode({ name: 'b', port: ports[1]!, peers: [peer('a', ports[0]!)], dir: b.dir });
  await waitFor('the copy is shut out', async () => /STORE_ERR_REPL_DUPLICATE_STORE/.test((await copy.repl.status()).peers[0]!.lastError ?? ''));
  await write(b2, 'b2', rec(3));
  await waitFor('b2 at a', async () => (await a.store.listTriplets()).some((t) => t.key === 'b2'));
  await write(copy, 'copy2', rec(4));
  await new Promise((r) => setTimeout(r, 300));
  assert.not.ok((await a.store.listTriplets()).some((t) => t.key === 'copy2'), 'nothing more of the copy is applied');
  const row = (await a.repl.status()).peers[0]!;
  assert.ok(row.connected && row.inbound, 'b replicates with a');
});

s('a node restarted at once is let in again, not taken for a copy', async () => {
  const ports = [await freeLoopbackPort(), await freeLoopbackPort()];
  const a = await startNode({ name: 'a', port: ports[0]!, peers: [peer('b', ports[1]!)] });
  let b = await startNode({ name: 'b', port: ports[1]!, peers: [peer('a', ports[0]!)] });
  for (let i = 0; i < 3; i++) {
    await waitFor('b up at a both ways', async () => {
      const row = (await a.repl.status()).peers[0]!;
      return row.connected && row.inbound;
    });
    await stopNode(b);
    b = await startNode({ name: 'b', port: ports[1]!, peers: [peer('a', ports[0]!)], dir: b.dir });
    await write(b, `r${i}`, rec(i));
    await waitFor(`r${i} at a`, async () => (await a.store.listTriplets()).some((t) => t.key === `r${i}`));
  }
  assert.not.ok(a.logs().some((l) => l.code === ReplicationErrorCode.DUPLICATE_STORE), 'no copy reported');
});

/**
 * A TCP relay to a node's port whose open connections can be frozen: no byte and no close goes
 * through them any more, as when a host dies without FIN; connections made later relay as usual.
 */
async function freezableRelay(targetPort: number): Promise<{ port: number; freeze: () => void; stop: () => void }> {
  const pairs = new Set<{ frozen: boolean; sockets: net.Socket[] }>();
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: targetPort });
    const pair = { frozen: false, sockets: [client, upstream] };
    pairs.add(pair);
    for (const [from, to] of [[client, upstream], [upstream, client]] as const) {
      from.on('data', (d) => void (pair.frozen || to.write(d)));
      from.on('error', () => undefined);
      from.on('close', () => void (pair.frozen || to.destroy()));
    }
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, () => resolve()));
  return {
    port: (server.address() as net.AddressInfo).port,
    freeze: () => {
      for (const p of pairs) p.frozen = true;
    },
    stop: () => {
      for (const p of pairs) for (const sk of p.sockets) sk.destroy();
      server.close();
    },
  };
}

s('a node killed and restarted at once, its peer\'s link to it left half-open, is let in at once, not refused as a copy', async () => {
  const ports = [await freeLoopbackPort(), await freeLoopbackPort()];
  const relay = await freezableRelay(ports[1]!);
  try {
    // a reaches b through the relay; a's clock stands still, so the old b was "heard just now".
    const a = await startNode({ name: 'a', port: ports[0]!, peers: [{ ...peer('b', relay.port), text: `b=127.0.0.1:${relay.port}` }] });
    const b = await startNode({ name: 'b', port: ports[1]!, peers: [peer('a', ports[0]!)] });
    await waitFor('b up at a both ways', async () => {
      const row = (await a.repl.status()).peers[0]!;
      return row.connected && row.inbound;
    });
    relay.freeze();
    await stopNode(b);
    const b2 = await startNode({ name: 'b', port: ports[1]!, peers: [peer('a', ports[0]!)], dir: b.dir });
    await write(b2, 'r1', rec(1));
    await waitFor('r1 at a', async () => (await a.store.listTriplets()).some((t) => t.key === 'r1'));
    await waitFor('a\'s link reaches the new b', async () => (await a.repl.status()).peers[0]!.connected);
    const copy = (l: Record<string, unknown>): boolean => l.code === ReplicationErrorCode.DUPLICATE_STORE;
    assert.not.ok(a.logs().some(copy) || b2.logs().some(copy), 'no copy reported');
    assert.is((await a.repl.status()).lastRefused, null);
  } finally {
    relay.stop();
  }
});

s('an old session of a node killed and restarted at once, left half-open, is closed quietly once the link reaches the new one', async () => {
  const ports = [await freeLoopbackPort(), await freeLoopbackPort()];
  const relay = await freezableRelay(ports[0]!);
  try {
    const a = await startNode({ name: 'a', port: ports[0]!, peers: [peer('b', ports[1]!)] });
    // b reaches a through the relay: its session at a stays open, silent, after b is gone.
    const bPeers = [{ ...peer('a', relay.port), text: `a=127.0.0.1:${relay.port}` }];
    const b = await startNode({ name: 'b', port: ports[1]!, peers: bPeers });
    await waitFor('b up at a both ways', async () => {
      const row = (await a.repl.status()).peers[0]!;
      return row.connected && row.inbound;
    });
    relay.freeze();
    await stopNode(b);
    const b2 = await startNode({ name: 'b', port: ports[1]!, peers: bPeers, dir: b.dir });
    await write(b2, 'r1', rec(1));
    await waitFor('r1 at a', async () => (await a.store.listTriplets()).some((t) => t.key === 'r1'));
    await waitFor('a\'s link reaches the new b', async () => (await a.repl.status()).peers[0]!.connected);
    await new Promise((r) => setTimeout(r, 2500));
    assert.not.ok(a.logs().some((l) => l.code === ReplicationErrorCode.DUPLICATE_STORE), 'b is not called a copy of itself');
    assert.is((await a.repl.status()).lastRefused, null);
  } finally {
    relay.stop();
  }
});

s('reconfigure with a new cluster key: links authenticate again; a node on the old key is refused until it changes too', async () => {
  const [a, b] = await cluster(['a', 'b']);
  await write(a!, 'k1', rec(1));
  await waitFor('sync', () => converged([a!, b!]));
  const change = a!.repl.reconfigure({ ...a!.repl.settings!, psk: OTHER_KEY });
  assert.ok(change.keyChanged);
  assert.equal(change.reconnected, ['b']);
  await write(a!, 'k2', rec(2));
  await waitFor('refusal under the new key', async () => (await a!.repl.status()).peers[0]!.lastError?.startsWith(ReplicationErrorCode.AUTH) ?? false);
  assert.not.ok((await b!.store.listTriplets()).some((t) => t.key === 'k2'));
  b!.repl.reconfigure({ ...b!.repl.settings!, psk: OTHER_KEY });
  await waitFor('sync under the new key', () => converged([a!, b!]));
  assert.ok((await b!.store.listTriplets()).some((t) => t.key === 'k2'));
});

s('a peer with the wrong key is refused and logged, and changes nothing', async () => {
  const ports = [await freeLoopbackPort(), await freeLoopbackPort()];
  const a = await startNode({ name: 'a', port: ports[0]!, peers: [] });
  const evil = await startNode({ name: 'evil', port: ports[1]!, peers: [peer('a', ports[0]!)], psk: OTHER_KEY });
  await write(evil, 'spam', rec(1));
  await waitFor('refusal', async () => (await a.repl.status()).refusedConnections > 0);
  await waitFor('evil sees the auth error', async () => (await evil.repl.status()).peers[0]!.lastError?.startsWith(ReplicationErrorCode.AUTH) ?? false);
  assert.is((await a.store.listTriplets()).length, 0);
  assert.ok(a.logs().some((l) => /refused/.test(String(l.msg)) && l.level === 'warn'));
  assert.not.ok((await evil.repl.status()).peers[0]!.connected);
});

s('a client authenticated with the key but claiming another name is refused', async () => {
  const port = await freeLoopbackPort();
  const a = await startNode({ name: 'a', port, peers: [] });
  const socket = tls.connect(pskClientOptions('127.0.0.1', port, KEY, 'mallory'));
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => resolve());
    socket.once('error', reject);
  });
  socket.write(encodeFrame({ type: 'hello', version: PROTOCOL_VERSION, nodeId: 'feedfeedfeedfeed', name: 'b' }));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => undefined);
  socket.resume();
  await closed;
  assert.ok(a.logs().some((l) => l.code === ReplicationErrorCode.AUTH));
  assert.ok((await a.repl.status()).refusedConnections >= 1);
});

s('malformed and oversized frames close the link without touching the store; good peers still work', async () => {
  const [a, b] = await cluster(['a', 'b']);
  await write(a!, 'good', rec(1));
  await waitFor('sync', () => converged([a!, b!]));
  const before = await dump(a!);
  const attacks: Buffer[] = [
    Buffer.from([0xff, 0xff, 0xff, 0xff, 1]),
    Buffer.from('GET / HTTP/1.1\r\n\r\n'),
    Buffer.concat([encodeFrame({ type: 'hello', version: PROTOCOL_VERSION, nodeId: 'feedfeedfeedfeed', name: 'c' }), Buffer.from([0, 0, 0, 3, 2, 0x7b, 0x7d])]),
  ];
  for (const bytes of attacks) {
    const socket = tls.connect(pskClientOptions('127.0.0.1', a!.port, KEY, 'c'));
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', () => resolve());
      socket.once('error', reject);
    });
    socket.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.resume();
    socket.write(bytes);
    await closed;
  }
  assert.is(await dump(a!), before);
  assert.ok(a!.logs().some((l) => l.code === ReplicationErrorCode.FRAME_TOO_LARGE));
  assert.ok(a!.logs().some((l) => l.code === ReplicationErrorCode.PROTOCOL));
  await write(b!, 'after', rec(2));
  await waitFor('replication still works', () => converged([a!, b!]));
});

s('settings differences read as the config writes them: days and hours, not seconds', () => {
  const mine = 'lookup-by-host=no ipv4cidr=24 ipv6cidr=64 max-age=1728000s retry-window=172800s';
  const theirs = 'lookup-by-host=no ipv4cidr=32 ipv6cidr=64 max-age=3024000s retry-window=43200s';
  assert.is(settingsDifference(mine, theirs), 'ipv4cidr: 24 here, 32 at the peer; max-age: 20d here, 35d at the peer; retry-window: 2d here, 12h at the peer');
  assert.is(settingsDifference('max-age=90s', 'max-age=86401s'), 'max-age: 90s here, 86401s at the peer');
});

s('a reload that changes the greylist settings is compared at once: here at once, at the peer after its link reconnects', async () => {
  const same = 'lookup-by-host=no ipv4cidr=24 ipv6cidr=64 max-age=3024000s retry-window=172800s';
  const ports = [await freeLoopbackPort(), await freeLoopbackPort()];
  const a = await startNode({ name: 'a', port: ports[0]!, peers: [peer('b', ports[1]!)], extra: { keying: same } });
  const b = await startNode({ name: 'b', port: ports[1]!, peers: [peer('a', ports[0]!)], extra: { keying: same } });
  await waitFor('both links up', async () => (await a.repl.status()).peers[0]!.connected && (await b.repl.status()).peers[0]!.connected);
  assert.is((await b.repl.status()).peers[0]!.settingsDiffer, null);
  a.repl.setKeying(same.replace('ipv4cidr=24', 'ipv4cidr=32'));
  assert.is((await a.repl.status()).peers[0]!.settingsDiffer, 'ipv4cidr: 32 here, 24 at the peer', 'this node compares at once');
  await waitFor('b compares the new settings', async () => (await b.repl.status()).peers[0]!.settingsDiffer === 'ipv4cidr: 24 here, 32 at the peer');
  await write(a, 'after', rec(1));
  await waitFor('replication goes on', () => converged([a, b]));
});

s('a peer whose greylist settings differ is logged once per difference and shown; peers that agree, or do not say, are not', async () => {
  const mine = 'lookup-by-host=no ipv4cidr=24 ipv6cidr=64 max-age=3024000s retry-window=172800s';
  const theirs = 'lookup-by-host=yes ipv4cidr=24 ipv6cidr=64 max-age=3024000s retry-window=172800s';
  const ports = [await freeLoopbackPort(), await freeLoopbackPort()];
  const a = await startNode({ name: 'a', port: ports[0]!, peers: [peer('b', ports[1]!)], extra: { keying: mine } });
  const b = await startNode({ name: 'b', port: ports[1]!, peers: [peer('a', ports[0]!)], extra: { keying: theirs } });
  await waitFor('both links up', async () => (await a.repl.status()).peers[0]!.connected && (await b.repl.status()).peers[0]!.connected);
  assert.is((await a.repl.status()).peers[0]!.settingsDiffer, 'lookup-by-host: no here, yes at the peer');
  assert.is((await b.repl.status()).peers[0]!.settingsDiffer, 'lookup-by-host: yes here, no at the peer');
  const warnings = (n: typeof a): number => n.logs().filter((l) => l.level === 'warn' && String(l.msg).includes('greylist settings of')).length;
  assert.is(warnings(a), 1);
  assert.match(String(a.logs().find((l) => String(l.msg).includes('greylist settings of'))?.msg), /the greylist settings of b differ from this node's \(lookup-by-host: no here, yes at the peer\): .*set lookup-by-host, ipv4cidr, ipv6cidr, max-age and retry-window alike/);
  // The same difference after a reconnect is not logged again.
  const before = (await a.repl.status()).peers[0]!.connectedSinceMs;
  await stopNode(b);
  a.clock.advanceMs(1000);
  const b2 = await startNode({ name: 'b', port: ports[1]!, dir: b.dir, peers: [peer('a', ports[0]!)], extra: { keying: theirs } });
  await waitFor('a reconnected to b', async () => {
    const p = (await a.repl.status()).peers[0]!;
    return p.connected && p.connectedSinceMs !== before;
  });
  assert.is(warnings(a), 1, 'no second line for the same difference');
  // Once b agrees (its reload), the next connection clears it.
  b2.repl.keying = mine;
  await stopNode(b2);
  const before2 = (await a.repl.status()).peers[0]!.connectedSinceMs;
  a.clock.advanceMs(1000);
  await startNode({ name: 'b', port: ports[1]!, dir: b.dir, peers: [peer('a', ports[0]!)], extra: { keying: mine } });
  await waitFor('a reconnected to b again', async () => {
    const p = (await a.repl.status()).peers[0]!;
    return p.connected && p.connectedSinceMs !== before2;
  });
  assert.is((await a.repl.status()).peers[0]!.settingsDiffer, null);
  // A node that says nothing (an older version) is not compared.
  const [c, d] = await cluster(['c', 'd']);
  await waitFor('c linked', async () => (await c!.repl.status()).peers[0]!.connected);
  assert.is((await c!.repl.status()).peers[0]!.settingsDiffer, null);
  assert.not.ok(c!.logs().some((l) => String(l.msg).includes('greylist settings')));
  assert.ok(d);
});

s('a peer whose clock is off by more than 10 s is logged (again only after an hour or a change) and shown with its offset; one in step is not', async () => {
  const ports = [await freeLoopbackPort(), await freeLoopbackPort()];
  const a = await startNode({ name: 'a', port: ports[0]!, peers: [peer('b', ports[1]!)] });
  const b = await startNode({ name: 'b', port: ports[1]!, peers: [peer('a', ports[0]!)], clock: new ManualClock(T0 + 3_600_000) });
  await waitFor('both links up', async () => (await a.repl.status()).peers[0]!.connected && (await b.repl.status()).peers[0]!.connected);
  assert.is((await a.repl.status()).peers[0]!.clockOffsetMs, 3_600_000);
  assert.is((await b.repl.status()).peers[0]!.clockOffsetMs, -3_600_000);
  assert.ok(a.logs().some((l) => l.level === 'warn' && String(l.msg).includes('the clock of b differs from this node\'s by 3600 s')), 'a warns');
  assert.ok(b.logs().some((l) => l.level === 'warn' && String(l.msg).includes('by -3600 s')), 'b warns too');
  // A reconnect with the same offset is not warned about again until an hour has passed.
  const skewWarnings = (): number => a.logs().filter((l) => l.level === 'warn' && String(l.msg).includes('the clock of b')).length;
  const reconnect = async (bClock: ManualClock): Promise<void> => {
    const before = (await a.repl.status()).peers[0]!.connectedSinceMs;
    await stopNode(b2);
    b2 = await startNode({ name: 'b', port: ports[1]!, dir: b.dir, peers: [peer('a', ports[0]!)], clock: bClock });
    await waitFor('a reconnected to b', async () => {
      const p = (await a.repl.status()).peers[0]!;
      return p.connected && p.connectedSinceMs !== before;
    });
  };
  let b2 = b;
  a.clock.advanceMs(1000);
  await reconnect(new ManualClock(a.clock.nowMs() + 3_600_000));
  assert.is(skewWarnings(), 1, 'no second warning for the same offset');
  a.clock.advanceMs(3_600_000);
  await reconnect(new ManualClock(a.clock.nowMs() + 3_600_000));
  assert.is(skewWarnings(), 2, 'warned again an hour later');
  a.clock.advanceMs(1000);
  await reconnect(new ManualClock(a.clock.nowMs() + 7_200_000));
  assert.is(skewWarnings(), 3, 'warned again when the offset changes');
  const [c, d] = await cluster(['c', 'd']);
  await waitFor('c linked', async () => (await c!.repl.status()).peers[0]!.connected);
  assert.is((await c!.repl.status()).peers[0]!.clockOffsetMs, 0);
  assert.not.ok(c!.logs().some((l) => String(l.msg).includes('clock')));
  assert.ok(d);
});

s('stop() does not wait for a connection still in its TLS handshake (the listener closes at once)', async () => {
  const port = await freeLoopbackPort();
  const a = await startNode({ name: 'a', port, peers: [] });
  // A TCP connection that never starts TLS: before, stop() waited for the handshake timeout (5 s here).
  const raw = net.connect({ host: '127.0.0.1', port });
  raw.on('error', () => undefined);
  await new Promise<void>((resolve) => raw.once('connect', () => resolve()));
  await new Promise((r) => setTimeout(r, 50));
  const started = Date.now();
  await stopNode(a);
  assert.ok(Date.now() - started < 1000, `stop took ${Date.now() - started} ms`);
  raw.destroy();
});

s('a connection that fails or never finishes the TLS handshake is closed, so it cannot hold an inbound slot', async () => {
  const port = await freeLoopbackPort();
  const a = await startNode({ name: 'a', port, peers: [], timeoutMs: 300 });
  try {
    // One silent (times out), one speaking garbage (fails at once). Node closes neither by itself:
    // before, both stayed open for good, and 64 of them locked every real peer out.
    const silent = net.connect({ host: '127.0.0.1', port });
    const garbage = net.connect({ host: '127.0.0.1', port });
    const closedAt = (sock: net.Socket): Promise<number> =>
      new Promise((resolve) => {
        sock.on('error', () => undefined);
        sock.once('close', () => resolve(Date.now()));
      });
    const started = Date.now();
    const closed = [closedAt(silent), closedAt(garbage)];
    garbage.once('connect', () => garbage.write('GET / HTTP/1.0\r\n\r\n'));
    const watchdog = setTimeout(() => {
      silent.destroy();
      garbage.destroy();
    }, 5000);
    const [silentAt, garbageAt] = await Promise.all(closed);
    clearTimeout(watchdog);
    assert.ok(silentAt! - started < 3000, `the silent connection was closed after ${silentAt! - started} ms (handshake timeout 300 ms)`);
    assert.ok(garbageAt! - started < 3000, `the garbage connection was closed after ${garbageAt! - started} ms`);
    assert.ok((await a.repl.status()).refusedConnections >= 2);
  } finally {
    await stopNode(a);
  }
});

s('port checks after a wrong-key refusal are counted apart and do not hide it as the last refusal', async () => {
  const ports = [await freeLoopbackPort(), await freeLoopbackPort()];
  const a = await startNode({ name: 'a', port: ports[0]!, peers: [] });
  const evil = await startNode({ name: 'evil', port: ports[1]!, peers: [peer('a', ports[0]!)], psk: OTHER_KEY });
  let evilRunning = true;
  try {
    await waitFor('the wrong key refused', async () => ((await a.repl.status()).lastRefused?.text ?? '').includes(ReplicationErrorCode.AUTH));
    await stopNode(evil);
    evilRunning = false;
    // A handshake of evil's that was in flight when it stopped may still be counted: wait until the
    // counts stay the same for 300 ms (bounded).
    let before = await a.repl.status();
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setTimeout(r, 300));
      const now = await a.repl.status();
      if (now.refusedConnections === before.refusedConnections) break;
      before = now;
    }
    // Three monitoring checks of the port: connect, then close without a byte.
    for (let i = 0; i < 3; i++) {
      const probe = net.connect({ host: '127.0.0.1', port: ports[0]! });
      probe.on('error', () => undefined);
      await new Promise<void>((resolve) => probe.once('connect', () => resolve()));
      probe.end();
      await new Promise<void>((resolve) => probe.once('close', () => resolve()));
    }
    await waitFor('the checks counted', async () => ((await a.repl.status()).droppedBeforeAuth ?? 0) >= 3);
    const after = await a.repl.status();
    assert.is(after.refusedConnections, before.refusedConnections + 3, 'each check is still counted as refused');
    assert.is(after.droppedBeforeAuth, (before.droppedBeforeAuth ?? 0) + 3);
    assert.ok((after.lastRefused?.text ?? '').includes(`from 127.0.0.1: ${ReplicationErrorCode.AUTH}`), `the wrong key is still the last refusal: ${after.lastRefused?.text}`);
    assert.ok(after.lastDropped && after.lastDropped.atMs >= (after.lastRefused?.atMs ?? 0), 'the last check is kept apart');
    assert.not.match(after.lastDropped.text, new RegExp(ReplicationErrorCode.AUTH));
  } finally {
    if (evilRunning) await stopNode(evil);
    await stopNode(a);
  }
});

s('a node whose store is not open tells its peers why, and its own status says so', async () => {
  const ports = [await freeLoopbackPort(), await freeLoopbackPort()];
  const a = await startNode({ name: 'a', port: ports[0]!, peers: [peer('b', ports[1]!)] });
  // b: replication up, its store never opened (as a damaged data file leaves it).
  const { logger } = capturingLogger();
  const b = new Replicator({
    settings: { nodeName: 'b', listen: { address: '127.0.0.1', port: ports[1]!, text: `127.0.0.1:${ports[1]}` }, peers: [peer('a', ports[0]!)], psk: KEY, digestIntervalMs: 3_600_000, timeoutMs: 5000, logMaxEntries: 1000 },
    clock: a.clock, logger, maxAgeMs: 35 * DAY_MS, pollIntervalMs: 10, retryMinMs: 20, retryMaxMs: 200,
    storeProblem: () => 'STORE_ERR_OPEN: data.mdb is not a usable LMDB data file',
  });
  await b.listen();
  try {
    await waitFor('a told why', async () => /STORE_ERR_REPL_STORE_UNAVAILABLE: the greylist store of b is not open: STORE_ERR_OPEN: data\.mdb is not a usable/.test((await a.repl.status()).peers[0]!.lastError ?? ''));
    const own = await b.status();
    assert.is(own.storeProblem, 'STORE_ERR_OPEN: data.mdb is not a usable LMDB data file');
    assert.not.ok('storeProblem' in (await a.repl.status()), 'an open store has no problem to show');
    assert.not.ok('storeFailure' in (await a.repl.status()), 'nor a failure while it works');
  } finally {
    await b.stop();
  }
});

s('an open store that fails (a full disk) is in the node\'s own status, not only at its peers', async () => {
  const port = await freeLoopbackPort();
  let failure: string | undefined;
  const a = await startNode({ name: 'a', port, peers: [], extra: { storeFailure: () => failure } });
  try {
    assert.not.ok('storeFailure' in (await a.repl.status()));
    failure = 'STORE_ERR_FULL: greylist decisions: No space left on device';
    assert.is((await a.repl.status()).storeFailure, failure);
  } finally {
    await stopNode(a);
  }
});

s('times from the future are clamped to now plus the allowed skew', async () => {
  const ports = [await freeLoopbackPort(), await freeLoopbackPort()];
  const a = await startNode({ name: 'a', port: ports[0]!, peers: [peer('b', ports[1]!)], extra: { maxFutureSkewMs: 1000 } });
  const b = await startNode({ name: 'b', port: ports[1]!, peers: [peer('a', ports[0]!)], clock: new ManualClock(T0 + DAY_MS) });
  await write(b, 'future', { firstSeenMs: T0 + DAY_MS, lastSeenMs: T0 + DAY_MS, passedAtMs: T0 + DAY_MS, passes: {} });
  await waitFor('arrival', async () => (await a.store.listTriplets()).length === 1);
  const got = (await a.store.listTriplets())[0]!.record;
  assert.equal(got, { firstSeenMs: T0 + 1000, lastSeenMs: T0 + 1000, passedAtMs: T0 + 1000, passes: {} });
  assert.ok((await a.repl.status()).clampedRecords >= 1);
});

s('a deletion time from the future is clamped too, so the triplet can start over', async () => {
  const ports = [await freeLoopbackPort(), await freeLoopbackPort()];
  const a = await startNode({ name: 'a', port: ports[0]!, peers: [peer('b', ports[1]!)], extra: { maxFutureSkewMs: 1000 } });
  const b = await startNode({ name: 'b', port: ports[1]!, peers: [peer('a', ports[0]!)], clock: new ManualClock(T0 + DAY_MS) });
  await write(b, 'gone', rec(0));
  await waitFor('arrival', async () => (await a.store.listTriplets()).length === 1);
  assert.ok(await b.store.deleteTriplet('gone'));
  await waitFor('tombstone arrives', async () => (await a.store.read('gone', 'unused-client')).triplet?.deletedAtMs !== undefined);
  const stored = (await a.store.read('gone', 'unused-client')).triplet!;
  assert.is(stored.deletedAtMs, T0 + 1000);
  // A new generation begun at a after the clamped deletion time lives.
  a.clock.setMs(T0 + 2000);
  await write(a, 'gone', { firstSeenMs: T0 + 2000, lastSeenMs: T0 + 2000, passedAtMs: 0, passes: {}, epoch: (stored.epoch ?? 0) + 1 });
  assert.equal((await a.store.listTriplets({ liveOnly: true })).map((r) => r.key), ['gone']);
});

s('a peer whose data file cannot be written refuses the records and stays up; the link resumes once it can', async () => {
  const [a, b] = await cluster(['a', 'b']);
  await write(a!, 'before', rec(1));
  await waitFor('first record', () => converged([a!, b!]));
  const undo = makeImmutable(join(b!.dir, 'greylist', 'data.mdb'), 'replicator: a peer whose data file cannot be written');
  if (!undo) return;
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => {
    unhandled.push(reason);
  };
  process.on('unhandledRejection', onUnhandled);
  let refusedBatches = 0;
  try {
    for (let i = 0; i < 50; i++) await write(a!, `during-${i}`, rec(10 + i));
    await waitFor('b reports the store failure', () => !b!.store.isHealthy());
    // a backs off from a peer that refuses every batch (retryMinMs 20 ms, retryMaxMs 200 ms here):
    // 20+40+80+160+200+200 ms, about 6 attempts in the second, not one every 20 ms.
    const from = b!.logs().length;
    await new Promise((r) => setTimeout(r, 1000));
    refusedBatches = b!.logs().slice(from).filter((l) => l.msg === 'inbound replication link closed').length;
  } finally {
    undo();
    process.off('unhandledRejection', onUnhandled);
  }
  assert.equal(unhandled.map(String), []);
  assert.ok(refusedBatches <= 12, `a redialled a refusing peer ${refusedBatches} times in 1 s`);
  const failed = b!.logs().filter((l) => l['level'] === 'error').map((l) => String(l['msg']));
  assert.ok(failed.includes('records from a peer could not be written: the peer sends them again'), failed.join(' | '));
  assert.not.ok(failed.some((m) => /their records are lost/.test(m)), 'a peer\'s records are not lost');
  await waitFor('b catches up once it can write', () => converged([a!, b!]), 10_000);
  // The committed records are readable a moment before the commit's promise reports health.
  await waitFor('b reports its store healthy again', () => b!.store.isHealthy());
});

s('expired records are neither sent nor accepted', async () => {
  const [a, b] = await cluster(['a', 'b']);
  await write(a!, 'ancient', rec(-40 * DAY_MS));
  await write(a!, 'recent', rec(1));
  await waitFor('recent arrives', async () => (await b!.store.listTriplets()).length >= 1);
  await waitFor('cursor', async () => (await a!.store.getCursor(b!.store.getNodeId())) === (await a!.store.getLastSeq()));
  assert.equal((await b!.store.listTriplets()).map((r) => r.key), ['recent']);
});

s('a lower max-age (reload) applies to what is sent and accepted from then on', async () => {
  const [a, b] = await cluster(['a', 'b']);
  a!.repl.setExpiry(10 * DAY_MS, Infinity);
  b!.repl.setExpiry(10 * DAY_MS, Infinity);
  await write(a!, 'old', rec(-20 * DAY_MS));
  await write(a!, 'new', rec(1));
  await waitFor('new arrives', async () => (await b!.store.listTriplets()).length >= 1);
  await waitFor('cursor', async () => (await a!.store.getCursor(b!.store.getNodeId())) === (await a!.store.getLastSeq()));
  assert.equal((await b!.store.listTriplets()).map((r) => r.key), ['new'], '20 days old is expired under a 10-day max-age');
  assert.is(await b!.repl.applyRecords([{ kind: 'triplet', key: 'pushed-old', record: rec(-11 * DAY_MS) }], a!.store.getNodeId()), 0);
  assert.is(await b!.repl.applyRecords([{ kind: 'triplet', key: 'pushed-recent', record: rec(-9 * DAY_MS) }], a!.store.getNodeId()), 1);
});

s('a triplet that never passed and lies beyond the retry window is neither sent, accepted nor compared, as the sweep deletes it', async () => {
  const [a, b] = await cluster(['a', 'b']);
  for (const n of [a!, b!]) n.repl.setExpiry(35 * DAY_MS, 2 * DAY_MS);
  // Both clocks at T0 + 3 days: a never-passed triplet last seen at T0 is retry-expired, a passed one is not.
  for (const n of [a!, b!]) n.clock.setMs(T0 + 3 * DAY_MS);
  await write(a!, 'stale', rec(0));
  await write(a!, 'passed', rec(0, { passedAtMs: T0 + 60_000, lastSeenMs: T0 + 60_000 }));
  await write(a!, 'fresh', rec(2 * DAY_MS + 1));
  await waitFor('cursor', async () => (await a!.store.getCursor(b!.store.getNodeId())) === (await a!.store.getLastSeq()));
  assert.equal((await b!.store.listTriplets()).map((r) => r.key).sort(), ['fresh', 'passed']);
  assert.is(await b!.repl.applyRecords([{ kind: 'triplet', key: 'pushed-stale', record: rec(0) }], a!.store.getNodeId()), 0);
  // The digest ignores it on both sides: a, which still holds it, and b, which never took it, agree.
  const windowA = a!.repl.digestWindow();
  const digestA = await computeDigest(a!.store, windowA);
  const digestB = await computeDigest(b!.store, { fromMs: windowA.fromMs, toMs: windowA.toMs, retryWindowMs: 2 * DAY_MS });
  assert.equal(diffDigests(digestA, digestB), { triplet: [], client: [] });
  const unfiltered = await computeDigest(a!.store, { fromMs: windowA.fromMs, toMs: windowA.toMs });
  assert.not.equal(diffDigests(unfiltered, digestB).triplet, [], 'without the retry window the stale triplet differs');
});

s('the log is trimmed below every peer cursor, held back for an unknown peer, capped by log-max', async () => {
  const port = await freeLoopbackPort();
  const deadPort = await freeLoopbackPort();
  const a = await startNode({ name: 'a', port, peers: [peer('b', deadPort)], logMaxEntries: 1000 });
  for (let i = 0; i < 30; i++) await write(a, `k${i}`, rec(i));
  assert.is(await a.repl.trim(), 0, 'b never connected: nothing trimmed');
  for (let i = 0; i < 1100; i += 100) await Promise.all(Array.from({ length: 100 }, (_, j) => write(a, `bulk${i + j}`, rec(i + j))));
  const deleted = await a.repl.trim();
  assert.ok(deleted >= 100, `deleted ${deleted}`);
  assert.ok((await a.store.count()).replogEntries <= 1001);
});

s('with replication off the Replicator only trims the log', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-repl-'));
  dirs.push(dir);
  const clock = new ManualClock(T0);
  const { logger } = capturingLogger();
  const store = await LmdbGreylistStore.open({ dataDir: dir, clock, logger });
  const repl = new Replicator({ settings: undefined, clock, logger, maxAgeMs: DAY_MS });
  await repl.listen();
  repl.attach(store);
  try {
    for (let i = 0; i < 10; i++) await store.transact(`k${i}`, 'c', () => ({ update: { triplet: rec(i) }, result: null }));
    assert.is(await repl.trim(), 9);
    const st = await repl.status();
    assert.is(st.enabled, false);
    assert.equal(st.peers, []);
  } finally {
    await repl.stop();
    await store.close();
  }
});

s('a status file that cannot be written is logged once, not every 5 s, and its recovery once', async () => {
  // Measured: with the data dir removed under the daemon (replication off), a warning every 5 s.
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-repl-'));
  dirs.push(dir);
  const clock = new ManualClock(T0);
  const scheduler = new ManualScheduler(clock);
  const { logger, lines } = capturingLogger();
  const store = await LmdbGreylistStore.open({ dataDir: dir, clock, logger });
  const statusDir = join(dir, 'gone');
  const repl = new Replicator({ settings: undefined, clock, logger, maxAgeMs: DAY_MS, scheduler, statusFile: join(statusDir, 'replication-status.json'), statusFileIntervalMs: 5000 });
  await repl.listen();
  repl.attach(store);
  const writes = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) {
      // The write (file I/O off the main thread) is done once the next one is scheduled again
      // (the log trim's task, every 60 s, is pending all along).
      const before = scheduler.pendingCount();
      scheduler.advanceMs(5000);
      for (let t = 0; t < 2000 && scheduler.pendingCount() < before; t++) await new Promise<void>((resolve) => setTimeout(resolve, 1));
      assert.is(scheduler.pendingCount(), before, 'the status file write finished');
    }
  };
  const failures = () => lines().filter((l) => String(l.msg).startsWith('writing the replication status file failed'));
  try {
    await writes(6);
    assert.is(failures().filter((l) => l.level === 'warn').length, 1, 'one warning for one unchanged failure');
    mkdirSync(statusDir);
    await writes(2);
    assert.ok(lines().some((l) => l.level === 'info' && String(l.msg).includes('replication status file written again')));
    rmSync(statusDir, { recursive: true });
    await writes(2);
    assert.is(failures().filter((l) => l.level === 'warn').length, 2, 'a new failure after a recovery is logged again');
  } finally {
    await repl.stop();
    await store.close();
  }
});

s('a node listed as its own peer is detected and not replicated to', async () => {
  const port = await freeLoopbackPort();
  const a = await startNode({ name: 'a', port, peers: [peer('a2', port)] });
  await waitFor('self detection', async () => (await a.repl.status()).peers[0]!.lastError?.startsWith(ReplicationErrorCode.SELF) ?? false);
});

s.run();
