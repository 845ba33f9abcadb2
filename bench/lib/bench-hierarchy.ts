// The fake authoritative tree of the DNS bench: a copy of test/helpers' standardTree() with many
// extra host names, every server on the same port (53 by default) of its own 127.53.x.y address,
// so mxsentry (--upstream-port) and Unbound (always port 53) query the very same servers, each
// optionally behind an AnswerReplayFront that keeps their per-query cost out of the way. Called by
// bench/dns-bench.ts. It must not change the shared test helpers' behaviour; loopback only.
import dgram from 'node:dgram';
import { randomInt } from 'node:crypto';
import * as dnsPacket from 'dns-packet';
import type { HierarchySpec } from '../../test/helpers/fake-hierarchy.js';
import { FakeAuthority } from '../../test/helpers/fake-authority.js';
import { canonical, parseFakeZone, type FakeZone } from '../../test/helpers/fake-zone.js';
import type { Clock } from '../../src/util/clock.js';
import { MxError } from '../../src/util/errors.js';
import { AnswerReplayFront } from './answer-replay-front.js';

/** The zone that receives the extra names, and their labels. */
export const COLD_ZONE = 'example.com.';

/** Label of the i-th existing extra host (`h<i>.example.com. A`). */
function existingHostLabel(i: number): string {
  return `h${i}`;
}

/** Label of the i-th name that does not exist (`nx<i>.example.com.` gets NXDOMAIN). */
function missingHostLabel(i: number): string {
  return `nx${i}`;
}

/**
 * `count` cold names from host index `first` on, alternating `h<i>.example.com. A` (exists) and
 * `nx<i>.example.com. A` (NXDOMAIN): the DNS bench's cold phase and the in-process cold tool.
 */
export function coldNames(first: number, count: number): Array<{ name: string; type: string }> {
  const names: Array<{ name: string; type: string }> = [];
  for (let i = first; names.length < count; i++) {
    names.push({ name: `${existingHostLabel(i)}.${COLD_ZONE}`, type: 'A' });
    if (names.length < count) names.push({ name: `${missingHostLabel(i)}.${COLD_ZONE}`, type: 'A' });
  }
  return names;
}

/**
 * standardTree() (passed in, so this file does not pick which) plus `hosts` A records
 * h0..h<hosts-1>.example.com with TTL 3600, addresses in 198.18.0.0/15 (RFC 2544 benchmarking).
 */
export function withBenchHosts(tree: HierarchySpec, hosts: number): HierarchySpec {
  const zones: HierarchySpec['zones'] = {};
  for (const [origin, z] of Object.entries(tree.zones)) zones[origin] = { records: [...z.records] };
  const cold = zones[COLD_ZONE];
  if (!cold) throw new MxError('BENCH_ERR_TREE', `bench tree: the tree has no zone ${COLD_ZONE}`);
  for (let i = 0; i < hosts; i++) {
    cold.records.push(`${existingHostLabel(i)} 3600 IN A 198.18.${(i >> 8) & 0xff}.${i & 0xff}`);
  }
  return { zones, servers: tree.servers.map((s) => ({ ...s, zones: [...s.zones] })) };
}

/** The started tree. */
export interface BenchHierarchy {
  /** named.root-style hints for both resolvers. */
  readonly rootHints: string;
  readonly port: number;
  readonly servers: readonly FakeAuthority[];
  /** The replay fronts (empty when started without them). */
  readonly fronts: readonly AnswerReplayFront[];
  /** Queries received by all servers (replayed by a front or answered by the fake) since the last clearQueries(). */
  queryCount(): number;
  clearQueries(): void;
  /**
   * Asks every server of `zone` each of `queries` once (upper-case qname, EDNS, as a resolver
   * would) so that the fronts can replay them; returns how many got no reply.
   */
  prime(zone: string, queries: ReadonlyArray<{ name: string; type: string }>): Promise<number>;
  /**
   * Sends `queries` in random case both to the fronts and straight to the fakes behind them and
   * returns a description of every reply that differs (empty: the fronts are faithful).
   */
  verifyReplay(zone: string, queries: ReadonlyArray<{ name: string; type: string }>): Promise<string[]>;
  /** The address and port a resolver would ask for `zone`: its first server (behind its front, if any). */
  authorityOf(zone: string): { address: string; port: number };
  stop(): Promise<void>;
}

/** How startBenchHierarchy() binds the servers. */
export interface BenchHierarchyOptions {
  /** Port of every server (53: Unbound queries no other). */
  port: number;
  /** Put an AnswerReplayFront before each deterministic server (see answer-replay-front.ts). */
  replayFront: boolean;
  clock: Clock;
}

const DETERMINISTIC = new Set<unknown>([undefined, 'normal', 'nxdomain-ent']);

/**
 * Starts every server of `spec` on `address:port` (all the same port; root needed for 53), each
 * behind a replay front if asked. On failure whatever was started is stopped again.
 */
export async function startBenchHierarchy(spec: HierarchySpec, opts: BenchHierarchyOptions): Promise<BenchHierarchy> {
  const zones = new Map<string, FakeZone>();
  for (const [origin, z] of Object.entries(spec.zones)) zones.set(canonical(origin), { origin: canonical(origin), records: z.records });
  const root = zones.get('.');
  if (!root) throw new MxError('BENCH_ERR_TREE', 'bench tree: the root zone is required');
  const rootRecords = parseFakeZone(root);
  const rootNs = rootRecords.filter((r) => r.key === '.' && r.type === 'NS').map((r) => r.data as string);

  const entries = spec.servers.map((s) => {
    if (!s.address.startsWith('127.')) throw new MxError('BENCH_ERR_ADDRESS', `bench tree: ${s.address} is not loopback`);
    const served = s.zones.map((origin) => {
      const z = zones.get(canonical(origin));
      if (!z) throw new MxError('BENCH_ERR_TREE', `bench tree: ${s.address} serves unknown zone ${origin}`);
      return z;
    });
    const behaviours = Array.isArray(s.behaviour) ? s.behaviour : [s.behaviour];
    const fronted = opts.replayFront && behaviours.every((b) => DETERMINISTIC.has(b));
    const fake = new FakeAuthority({ address: s.address, zones: served, behaviour: s.behaviour, rootNs, port: fronted ? 0 : opts.port });
    return { fake, fronted, zones: s.zones.map(canonical), front: null as AnswerReplayFront | null };
  });
  const servers = entries.map((e) => e.fake);
  const stopAll = async (): Promise<void> => {
    await Promise.all(entries.map(async (e) => {
      await e.front?.stop();
      await e.fake.stop();
    }));
  };
  try {
    await Promise.all(entries.map(async (e) => {
      await e.fake.start();
      if (!e.fronted) return;
      e.front = new AnswerReplayFront({ address: e.fake.address, port: opts.port, backendPort: e.fake.port, clock: opts.clock });
      await e.front.start();
    }));
  } catch (err) {
    await stopAll();
    throw new MxError('BENCH_ERR_TREE', `bench tree: cannot bind the fake servers on port ${opts.port}: ${(err as Error).message}`, { cause: err });
  }
  const fronts = entries.flatMap((e) => (e.front ? [e.front] : []));
  const frontsOf = (zone: string): AnswerReplayFront[] =>
    entries.filter((e) => e.front && e.zones.includes(canonical(zone))).map((e) => e.front as AnswerReplayFront);

  // Root hints: the root's NS names and their addresses from the root zone's glue.
  const lines = ['; root hints of the bench tree (bench/lib/bench-hierarchy.ts)'];
  for (const ns of rootNs) {
    lines.push(`.                        3600000      NS    ${ns}`);
    for (const r of rootRecords) {
      if (r.key === canonical(ns) && r.type === 'A') lines.push(`${ns.padEnd(24)} 3600000      A     ${r.data as string}`);
    }
  }
  return {
    rootHints: `${lines.join('\n')}\n`,
    port: opts.port,
    servers,
    fronts,
    queryCount: () => servers.reduce((n, s) => n + s.queries.length, 0) + fronts.reduce((n, f) => n + f.replayed, 0),
    clearQueries: () => {
      for (const s of servers) s.clearQueries();
      for (const f of fronts) f.replayed = 0;
    },
    prime: async (zone, queries) => {
      let unanswered = 0;
      for (const f of frontsOf(zone)) {
        const packets = queries.map((q, i) => encodeQuery(i, q.name.toUpperCase(), q.type));
        const replies = await exchangeMany(f.address, opts.port, packets, opts.clock);
        unanswered += replies.filter((r) => r === null).length;
      }
      return unanswered;
    },
    verifyReplay: async (zone, queries) => {
      const problems: string[] = [];
      for (const f of frontsOf(zone)) {
        const packets = queries.map((q, i) => encodeQuery(i, randomCase(q.name), q.type));
        const viaFront = await exchangeMany(f.address, opts.port, packets, opts.clock);
        const direct = await exchangeMany(f.address, f.backendPort, packets, opts.clock);
        packets.forEach((_, i) => {
          const a = viaFront[i];
          const b = direct[i];
          if (!a || !b || !a.equals(b)) problems.push(`${f.address}: ${queries[i]?.name} ${queries[i]?.type}: front and fake replies differ`);
        });
      }
      return problems;
    },
    authorityOf: (zone) => {
      const e = entries.find((x) => x.zones.includes(canonical(zone)));
      if (!e) throw new MxError('BENCH_ERR_TREE', `bench tree: no server serves ${zone}`);
      return { address: e.fake.address, port: opts.port };
    },
    stop: stopAll,
  };
}

function randomCase(name: string): string {
  let out = '';
  for (const ch of name) out += randomInt(2) === 1 ? ch.toUpperCase() : ch.toLowerCase();
  return out;
}

/** A resolver-like iterative query: RD clear, EDNS with a 1232-byte buffer. */
function encodeQuery(id: number, name: string, type: string): Buffer {
  return dnsPacket.encode({
    id: id & 0xffff, type: 'query', flags: 0,
    questions: [{ name, type: type as dnsPacket.RecordType, class: 'IN' }],
    additionals: [{ name: '.', type: 'OPT', udpPayloadSize: 1232, flags: 0, options: [] } as unknown as dnsPacket.Answer],
  });
}

/**
 * Sends the packets from one socket with at most 200 in flight and collects the replies by ID
 * (null when none came within 2 s). Packets' IDs must be their index modulo 65536.
 */
async function exchangeMany(address: string, port: number, packets: Buffer[], clock: Clock): Promise<Array<Buffer | null>> {
  const replies: Array<Buffer | null> = packets.map(() => null);
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind({ port: 0, address: '127.0.0.1' }, () => resolve());
  });
  const inFlight = new Map<number, { index: number; sentMs: number }>();
  let next = 0;
  let settled = 0;
  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve) => {
      const pump = (): void => {
        while (inFlight.size < 200 && next < packets.length) {
          const index = next++;
          inFlight.set(index & 0xffff, { index, sentMs: clock.nowMs() });
          socket.send(packets[index] as Buffer, port, address);
        }
        if (settled === packets.length) resolve();
      };
      socket.on('message', (msg) => {
        if (msg.length < 2) return;
        const id = msg.readUInt16BE(0);
        const entry = inFlight.get(id);
        if (!entry) return;
        inFlight.delete(id);
        replies[entry.index] = msg;
        settled++;
        pump();
      });
      socket.on('error', (err) => console.error(`bench tree: exchange with ${address}: ${err.message}`));
      timer = setInterval(() => {
        const now = clock.nowMs();
        for (const [id, e] of inFlight) {
          if (now - e.sentMs > 2000) {
            inFlight.delete(id);
            settled++;
          }
        }
        pump();
      }, 100);
      pump();
    });
  } finally {
    clearInterval(timer);
    await new Promise<void>((resolve) => socket.close(() => resolve()));
  }
  return replies;
}
