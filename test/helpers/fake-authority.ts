// A fake authoritative DNS server on one loopback address (UDP and TCP on the same port), driven by
// zone data and a switchable misbehaviour, in the spirit of Unbound's replay scenarios: a case is data.
// Used by the transport, iterator, resolver, e2e and bench runs; the zone data and its lookup are
// fake-zone.ts. It deliberately uses dns-packet and never our own codec, so the codec is tested
// against an independent implementation; it must never bind or send to anything but loopback.
import dgram from 'node:dgram';
import net from 'node:net';
import * as dnsPacket from 'dns-packet';
import { systemClock, type Clock } from '../../src/util/clock.js';
import { ZoneIndex, canonical, isUnder, lookupInZone, parseFakeZone, toPacket, type FakeRecord, type FakeZone, type LookupResult, type PacketRecord } from './fake-zone.js';

/**
 * How the server (mis)behaves. Several can be combined in an array, e.g. ['no-aa', { delayMs: 50 }].
 * - 'normal': RFC 1034 section 4.3.2 authoritative answers.
 * - 'refused' / 'servfail' / 'formerr': that rcode to every query, with or without EDNS ('formerr':
 *   a server that rejects a query type it does not know, whatever the OPT).
 * - 'drop': never answers (the query is still logged).
 * - 'drop-aaaa': never answers AAAA queries, answers the rest (a broken middlebox in front of it).
 * - 'closed': the port is not listening: UDP gets ICMP port unreachable, TCP a RST.
 * - 'truncate-udp': TC=1 with no records over UDP, the full answer over TCP.
 * - 'truncate-always': TC=1 over UDP and TCP alike, on the full answer (a server that sets TC on
 *   every answer, so even TCP gives nothing a resolver may rely on).
 * - 'formerr-edns' / 'notimp-edns': FORMERR / NOTIMP, without OPT, to any query carrying an OPT.
 * - 'formerr-edns-opt': FORMERR with an OPT to any query carrying an OPT (a server, or a box in
 *   front of it, that speaks EDNS yet rejects the resolver's OPT).
 * - 'no-aa': answers without the AA bit.
 * - 'recursive': answers without AA and with RA, as a recursive resolver named as a zone's server does.
 * - 'upward-referral': a referral to the root for every query (a lame server).
 * - 'wrong-id': the answer carries another ID.
 * - 'wrong-port': the answer comes from another socket (another source port), UDP only.
 * - 'wrong-question': the answer carries another qname.
 * - 'case-mismatch': the question in the reply is lower-cased, over UDP only.
 * - 'no-tcp': TCP connections are reset at once (a UDP-only server behind a firewall).
 * - 'out-of-bailiwick': adds poisoned A records for names outside the server's zones in the
 *   authority and additional sections (see POISON_ADDRESS).
 * - 'nxdomain-ent': NXDOMAIN for empty non-terminals, as rbldnsd does.
 * - 'no-soa': negative answers (NXDOMAIN, NODATA) without the SOA in the authority section.
 * - 'occluded-answers': a referral also carries, in its answer section, the zone's own records of
 *   the asked name and type below the zone cut (stale data a parent zone file still holds for a
 *   delegated name), without AA.
 * - 'no-repeat-glue': with 'occluded-answers', glue asked for and so sent in the answer section is
 *   not repeated in the additional section.
 * - { delayMs }: answers after that many milliseconds (real time).
 * - { namePrefix, delayMs? }: queries whose first label starts with namePrefix (any case) are
 *   answered delayMs late, or never when delayMs is absent; the rest as the other behaviours say
 *   (an authority with a slow backend for some names, or one that ignores some names).
 */
export type Behaviour =
  | 'normal'
  | 'refused'
  | 'servfail'
  | 'formerr'
  | 'drop'
  | 'drop-aaaa'
  | 'closed'
  | 'truncate-udp'
  | 'truncate-always'
  | 'formerr-edns'
  | 'formerr-edns-opt'
  | 'notimp-edns'
  | 'no-aa'
  | 'recursive'
  | 'upward-referral'
  | 'wrong-id'
  | 'wrong-port'
  | 'wrong-question'
  | 'case-mismatch'
  | 'no-tcp'
  | 'out-of-bailiwick'
  | 'nxdomain-ent'
  | 'no-soa'
  | 'occluded-answers'
  | 'no-repeat-glue'
  | { delayMs: number }
  | { namePrefix: string; delayMs?: number };

export interface FakeServerSpec {
  /** 127.x.y.z (or ::1); each server binds its own address. */
  address: string;
  zones: FakeZone[];
  behaviour?: Behaviour | Behaviour[];
  /** Port to bind; default 0 (the kernel picks one). */
  port?: number;
  /** NS names used for 'upward-referral'; default a. and b.root-servers.net. */
  rootNs?: string[];
  /** Records added by 'out-of-bailiwick' (absolute zone lines); default POISON_RECORDS. */
  poison?: string[];
}

/** One query as the server saw it. */
export interface FakeQuery {
  /** qname as received (case kept), with a trailing dot. */
  name: string;
  /** Mnemonic qtype ('A', 'NS', ...; dns-packet's 'UNKNOWN_n' for others). */
  type: string;
  tcp: boolean;
  edns: boolean;
  /** Clock time of arrival. */
  at: number;
  id: number;
  /** The RD bit of the query (a resolver's iterative queries have it clear). */
  rd: boolean;
  clientAddress: string;
  clientPort: number;
}

/** The address every poisoned record points to: loopback, never listening. */
export const POISON_ADDRESS = '127.53.255.66';

/** Default 'out-of-bailiwick' payload: names of the standard tree a poisoner would want. */
export const POISON_RECORDS = [
  `www.example.net. 86400 IN A ${POISON_ADDRESS}`,
  `ns2.example.net. 86400 IN A ${POISON_ADDRESS}`,
  `www.example.com. 86400 IN A ${POISON_ADDRESS}`,
  `a.root-servers.net. 86400 IN A ${POISON_ADDRESS}`,
];

const DEFAULT_ROOT_NS = ['a.root-servers.net.', 'b.root-servers.net.'];
const SERVER_EDNS_SIZE = 1232;

function behaviourList(b: Behaviour | Behaviour[] | undefined): Behaviour[] {
  if (b === undefined) return ['normal'];
  return Array.isArray(b) ? b : [b];
}

/** A fake authoritative server; see the file header. */
export class FakeAuthority {
  /** Every query received, in arrival order (also those that get no answer). */
  readonly queries: FakeQuery[] = [];
  /** Packets that dns-packet could not decode, or that were not queries. */
  malformed = 0;
  readonly address: string;
  private readonly zones: ZoneIndex[];
  private readonly rootNs: string[];
  private readonly poison: FakeRecord[];
  private readonly clock: Clock;
  private behaviours: Behaviour[];
  /** Replies held back by a { namePrefix, delayMs } behaviour, and by how long. */
  private readonly replyDelays = new WeakMap<Buffer, number>();
  private portNumber: number;
  private udp: dgram.Socket | null = null;
  private altUdp: dgram.Socket | null = null;
  private tcp: net.Server | null = null;
  private readonly connections = new Set<net.Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private started = false;

  constructor(spec: FakeServerSpec, opts: { clock?: Clock } = {}) {
    const loopback = net.isIPv4(spec.address) ? spec.address.startsWith('127.') : spec.address === '::1';
    if (!loopback) throw new Error(`fake authority: ${spec.address} is not a loopback address`);
    this.address = spec.address;
    this.zones = spec.zones.map((z) => new ZoneIndex(z));
    this.rootNs = spec.rootNs ?? DEFAULT_ROOT_NS;
    this.poison = parseFakeZone({ origin: '.', records: spec.poison ?? POISON_RECORDS });
    this.behaviours = behaviourList(spec.behaviour);
    this.portNumber = spec.port ?? 0;
    this.clock = opts.clock ?? systemClock;
  }

  /** The port (UDP and TCP); 0 before start(). Stays the same across 'closed' and back. */
  get port(): number {
    return this.portNumber;
  }

  /** Binds UDP and TCP on the same port (retrying a few random ports if TCP's is taken). */
  async start(): Promise<void> {
    if (this.started) return;
    const wanted = this.portNumber;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.openListeners(wanted);
        break;
      } catch (err) {
        await this.closeListeners();
        const inUse = (err as NodeJS.ErrnoException).code === 'EADDRINUSE';
        if (!inUse || wanted !== 0 || attempt >= 5) throw err;
      }
    }
    this.started = true;
    if (this.has('closed')) await this.closeListeners();
  }

  /** Closes everything: sockets, connections, pending delayed answers. */
  async stop(): Promise<void> {
    this.started = false;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await this.closeListeners();
  }

  /** Switches behaviour; await it when switching to or from 'closed' (the port is closed or reopened). */
  async setBehaviour(b: Behaviour | Behaviour[]): Promise<void> {
    this.behaviours = behaviourList(b);
    if (!this.started) return;
    const listening = this.udp !== null;
    if (this.has('closed') && listening) await this.closeListeners();
    if (!this.has('closed') && !listening) await this.openListeners(this.portNumber);
  }

  /** Forgets the query log. */
  clearQueries(): void {
    this.queries.length = 0;
  }

  private has(b: Behaviour): boolean {
    return this.behaviours.includes(b);
  }

  private delayMs(): number {
    let ms = 0;
    for (const b of this.behaviours) if (typeof b === 'object' && !('namePrefix' in b)) ms = Math.max(ms, b.delayMs);
    return ms;
  }

  /** The { namePrefix } behaviour matching qname: its delay, 'drop', or undefined when none matches. */
  private byName(qname: string): number | 'drop' | undefined {
    const first = (qname.split('.')[0] ?? '').toLowerCase();
    for (const b of this.behaviours) {
      if (typeof b === 'object' && 'namePrefix' in b && first.startsWith(b.namePrefix.toLowerCase())) return b.delayMs ?? 'drop';
    }
    return undefined;
  }

  private async openListeners(port: number): Promise<void> {
    const type = net.isIPv6(this.address) ? 'udp6' : 'udp4';
    const udp = dgram.createSocket(type);
    this.udp = udp;
    udp.on('message', (msg, rinfo) => this.onUdp(msg, rinfo));
    udp.on('error', (err) => {
      // A fake server's socket error is a test environment problem; make it visible.
      console.error(`fake authority ${this.address}: udp error: ${err.message}`);
    });
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind({ port, address: this.address, exclusive: true }, () => {
        udp.off('error', reject);
        resolve();
      });
    });
    this.portNumber = udp.address().port;
    const alt = dgram.createSocket(type);
    this.altUdp = alt;
    alt.on('error', (err) => console.error(`fake authority ${this.address}: alt udp error: ${err.message}`));
    await new Promise<void>((resolve, reject) => {
      alt.once('error', reject);
      alt.bind({ port: 0, address: this.address, exclusive: true }, () => {
        alt.off('error', reject);
        resolve();
      });
    });
    const server = net.createServer((sock) => this.onTcpConnection(sock));
    this.tcp = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port: this.portNumber, host: this.address, exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  }

  private async closeListeners(): Promise<void> {
    const udp = this.udp;
    const alt = this.altUdp;
    const tcp = this.tcp;
    this.udp = null;
    this.altUdp = null;
    this.tcp = null;
    for (const c of this.connections) c.destroy();
    this.connections.clear();
    const closing: Array<Promise<void>> = [];
    for (const s of [udp, alt]) {
      if (s) closing.push(new Promise<void>((resolve) => closeDgram(s, resolve)));
    }
    if (tcp && tcp.listening) closing.push(new Promise<void>((resolve) => tcp.close(() => resolve())));
    await Promise.all(closing);
  }

  private onUdp(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const socket = this.udp;
    if (!socket) return;
    const reply = this.handle(msg, false, rinfo.address, rinfo.port);
    if (!reply) return;
    const from = this.has('wrong-port') && this.altUdp ? this.altUdp : socket;
    this.later(reply, () => {
      if (this.udp === null) return;
      from.send(reply, rinfo.port, rinfo.address);
    });
  }

  private onTcpConnection(sock: net.Socket): void {
    if (this.has('no-tcp')) {
      sock.resetAndDestroy();
      return;
    }
    this.connections.add(sock);
    sock.on('close', () => this.connections.delete(sock));
    sock.on('error', () => {
      // Client resets are normal (a transport that timed out destroys its socket); just drop it.
      sock.destroy();
    });
    let pending: Buffer = Buffer.alloc(0);
    sock.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 2) {
        const len = pending.readUInt16BE(0);
        if (pending.length < 2 + len) break;
        const query = pending.subarray(2, 2 + len);
        pending = pending.subarray(2 + len);
        const reply = this.handle(query, true, sock.remoteAddress ?? '', sock.remotePort ?? 0);
        if (!reply) continue;
        const framed = Buffer.concat([Buffer.from([reply.length >> 8, reply.length & 0xff]), reply]);
        this.later(reply, () => {
          if (!sock.destroyed) sock.write(framed);
        });
      }
    });
  }

  /** Runs fn now or after the configured delay (of the server, or of the reply's name); the timer is cancelled by stop(). */
  private later(reply: Buffer, fn: () => void): void {
    const ms = Math.max(this.delayMs(), this.replyDelays.get(reply) ?? 0);
    if (ms <= 0) {
      fn();
      return;
    }
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  /** Decodes, logs and answers one query; null means no answer. */
  private handle(buf: Buffer, tcp: boolean, clientAddress: string, clientPort: number): Buffer | null {
    let query: dnsPacket.Packet;
    try {
      query = dnsPacket.decode(buf);
    } catch (err) {
      this.malformed++;
      if (process.env.FAKE_AUTHORITY_DEBUG) console.error(`fake authority ${this.address}: undecodable query: ${(err as Error).message}`);
      return null;
    }
    const q = query.questions?.[0];
    const opt = (query.additionals ?? []).find((r) => r.type === 'OPT') as dnsPacket.OptAnswer | undefined;
    if (query.type !== 'query' || !q) {
      this.malformed++;
      return null;
    }
    const qname = q.name === '.' || q.name === '' ? '.' : `${q.name}.`;
    const rd = ((query.flags ?? 0) >> 8) & 1;
    this.queries.push({
      name: qname, type: q.type, tcp, edns: opt !== undefined, at: this.clock.nowMs(), id: query.id ?? 0, rd: rd === 1, clientAddress, clientPort,
    });
    if (this.has('drop') || (this.has('drop-aaaa') && q.type === 'AAAA')) return null;
    const nameDelay = this.byName(qname);
    if (nameDelay === 'drop') return null;
    const reply = this.answer(query, q, qname, opt, tcp);
    if (nameDelay !== undefined) this.replyDelays.set(reply, nameDelay);
    return reply;
  }

  /** The reply to a decoded query that is answered. */
  private answer(query: dnsPacket.Packet, q: dnsPacket.Question, qname: string, opt: dnsPacket.OptAnswer | undefined, tcp: boolean): Buffer {

    let rcode = 0;
    let aa = false;
    let result: LookupResult = { rcode: 0, aa: false, answers: [], authorities: [], additionals: [] };
    let withOpt = opt !== undefined;
    if (opt && this.has('formerr-edns')) {
      rcode = 1;
      withOpt = false;
    } else if (opt && this.has('formerr-edns-opt')) {
      rcode = 1;
    } else if (opt && this.has('notimp-edns')) {
      rcode = 4;
      withOpt = false;
    } else if (this.has('refused')) rcode = 5;
    else if (this.has('servfail')) rcode = 2;
    else if (this.has('formerr')) rcode = 1;
    else if ((query.questions?.length ?? 0) !== 1) rcode = 1;
    else if (q.class !== 'IN') rcode = 5;
    else if (this.has('upward-referral')) {
      result.authorities = this.rootNs.map((ns) => ({ name: '.', type: 'NS', class: 'IN', ttl: 518400, data: ns }) as PacketRecord);
    } else {
      const zone = this.zoneFor(canonical(qname), q.type);
      if (!zone) rcode = 5;
      else {
        result = lookupInZone(zone, qname, q.type, this.has('nxdomain-ent'));
        rcode = result.rcode;
        aa = result.aa;
        if (this.has('occluded-answers') && !aa && result.answers.length === 0) {
          result.answers = zone.records(canonical(qname), q.type).map((r) => toPacket(r, qname));
          // A record in one section only: glue asked for is not repeated in the additional section.
          if (this.has('no-repeat-glue') && result.answers.length > 0) {
            const inAnswer = canonical(qname);
            result.additionals = result.additionals.filter((r) => !(canonical(r.name) === inAnswer && r.type === q.type));
          }
        }
      }
    }
    if (this.has('no-aa') || this.has('recursive')) aa = false;
    if (this.has('no-soa') && result.answers.length === 0) result.authorities = result.authorities.filter((r) => r.type !== 'SOA');
    if (this.has('out-of-bailiwick') && rcode === 0) {
      const outside = this.poison.filter((p) => !this.zones.some((z) => isUnder(p.key, z.origin)));
      result.authorities = [...result.authorities, ...outside.map((p) => toPacket(p))];
      result.additionals = [...result.additionals, ...outside.map((p) => toPacket(p))];
    }

    let questionName = qname;
    if (this.has('wrong-question')) questionName = `x-wrong.${qname}`;
    else if (this.has('case-mismatch') && !tcp) questionName = qname.toLowerCase();
    let id = query.id ?? 0;
    if (this.has('wrong-id')) id = (id + 1) & 0xffff;

    const rd = ((query.flags ?? 0) >> 8) & 1;
    const ra = this.has('recursive') ? 1 : 0;
    const flagsFor = (tc: boolean): number => (1 << 15) | (aa ? 1 << 10 : 0) | (tc ? 1 << 9 : 0) | (rd << 8) | (ra << 7) | (rcode & 15);
    const optRecord = (): PacketRecord[] =>
      withOpt ? [{ name: '.', type: 'OPT', udpPayloadSize: SERVER_EDNS_SIZE, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }] : [];
    const question = { name: questionName, type: q.type, class: q.class };
    const full = {
      id, type: 'response' as const, flags: flagsFor(false), questions: [question],
      answers: result.answers, authorities: result.authorities, additionals: [...result.additionals, ...optRecord()],
    };
    const truncated = {
      id, type: 'response' as const, flags: flagsFor(true), questions: [question], answers: [], authorities: [], additionals: optRecord(),
    };
    if (!tcp && this.has('truncate-udp')) return dnsPacket.encode(truncated);
    if (this.has('truncate-always')) return dnsPacket.encode({ ...full, flags: flagsFor(true) });
    const bytes = dnsPacket.encode(full);
    if (tcp) return bytes;
    // RFC 6891 section 6.2.5 / RFC 1035 section 4.2.1: fit the client's UDP size or set TC.
    const limit = opt ? Math.max(512, Math.min(opt.udpPayloadSize ?? 512, 4096)) : 512;
    return bytes.length > limit ? dnsPacket.encode(truncated) : bytes;
  }

  /** The most specific zone this server has for qname; for DS at a zone apex, the parent side. */
  private zoneFor(qname: string, qtype: string): ZoneIndex | undefined {
    let best: ZoneIndex | undefined;
    for (const z of this.zones) {
      if (!isUnder(qname, z.origin)) continue;
      if (qtype === 'DS' && qname === z.origin && qname !== '.') continue;
      if (!best || z.origin.length > best.origin.length) best = z;
    }
    return best;
  }
}

function closeDgram(s: dgram.Socket, done: () => void): void {
  try {
    s.close(done);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ERR_SOCKET_DGRAM_NOT_RUNNING') throw err;
    done();
  }
}
