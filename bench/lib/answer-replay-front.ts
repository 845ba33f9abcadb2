// A fast UDP front for one fake authority (test/helpers/fake-authority.ts) in the DNS bench. The
// fake authority decodes and encodes every query with dns-packet, which costs tens of microseconds;
// during Unbound's cold run that made the fakes use most of a core on this 2-core machine and capped
// the figure. The front answers a query whose reply it has seen before by replaying those bytes with
// the query's ID, RD bit and qname case patched in, and forwards everything else (first sight, TCP,
// odd shapes) to the fake authority unchanged. Called by bench/lib/bench-hierarchy.ts only for
// servers whose behaviour is deterministic; it must never answer differently from the fake itself
// (bench/dns-bench.ts checks replayed bytes against the fake's), and binds loopback only.
import dgram from 'node:dgram';
import net from 'node:net';
import type { Clock } from '../../src/util/clock.js';
import { MxError } from '../../src/util/errors.js';

/** Replies longer than this are never replayed: the fake truncates to the client's EDNS size, which may differ. */
const MAX_REPLAY_BYTES = 512;
/** Forwarded queries without a reply are forgotten after this. */
const FORWARD_TIMEOUT_MS = 5000;
/** At most this many forwards in flight; beyond it a query is dropped (as a busy server would). */
const MAX_PENDING = 10_000;
const RR_OPT = 41;
/** Receive buffer asked for; Linux caps it at net.core.rmem_max (4 MiB here). */
const RECV_BUFFER_BYTES = 4 << 20;

interface ParsedQuery {
  /** The qname in wire form, exactly as received. */
  qname: Buffer;
  /** Cache key: ASCII-lower-cased qname, qtype, qclass, EDNS presence. */
  key: string;
  rd: boolean;
  /** True when the qname has at least one upper-case letter (its echoes can be told from zone data). */
  hasUpper: boolean;
}

interface Template {
  reply: Buffer;
  /** Offsets of names in `reply` that echo the query's qname (the question, answers owned by qname). */
  echoes: number[];
}

interface Pending {
  clientId: number;
  address: string;
  port: number;
  query: ParsedQuery | null;
  atMs: number;
}

/**
 * Parses the query shapes the front can replay: standard query, one question, uncompressed qname of
 * letters/digits/'-'/'_' labels (names dns-packet round-trips unchanged), no records except an
 * optional OPT. Anything else returns null and goes to the fake authority as it is.
 */
function parseQuery(msg: Buffer): ParsedQuery | null {
  if (msg.length < 17) return null;
  const flags = msg.readUInt16BE(2);
  if ((flags & 0x8000) !== 0 || ((flags >> 11) & 0xf) !== 0) return null;
  if (msg.readUInt16BE(4) !== 1 || msg.readUInt16BE(6) !== 0 || msg.readUInt16BE(8) !== 0) return null;
  const arcount = msg.readUInt16BE(10);
  let off = 12;
  let hasUpper = false;
  const lower = Buffer.allocUnsafe(Math.min(msg.length - 12, 255));
  for (;;) {
    if (off >= msg.length) return null;
    const len = msg[off] as number;
    if (len > 63 || off - 12 >= 255) return null;
    lower[off - 12] = len;
    off++;
    if (len === 0) break;
    if (off + len > msg.length) return null;
    for (let i = 0; i < len; i++) {
      const c = msg[off + i] as number;
      const upper = c >= 0x41 && c <= 0x5a;
      const ok = upper || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x5f;
      if (!ok) return null;
      if (upper) hasUpper = true;
      lower[off - 12 + i] = upper ? c + 0x20 : c;
    }
    off += len;
  }
  const nameEnd = off;
  if (nameEnd + 4 > msg.length) return null;
  const qtype = msg.readUInt16BE(nameEnd);
  const qclass = msg.readUInt16BE(nameEnd + 2);
  let edns = false;
  const after = nameEnd + 4;
  if (arcount === 0) {
    if (after !== msg.length) return null;
  } else if (arcount === 1) {
    // RFC 6891 section 6.1.2: OPT has the root owner (one zero byte) and type 41.
    if (after + 11 > msg.length || msg[after] !== 0 || msg.readUInt16BE(after + 1) !== RR_OPT) return null;
    const rdlen = msg.readUInt16BE(after + 9);
    if (after + 11 + rdlen !== msg.length) return null;
    edns = true;
  } else return null;
  const qname = msg.subarray(12, nameEnd);
  return { qname, key: `${lower.subarray(0, nameEnd - 12).toString('latin1')}|${qtype}|${qclass}|${edns ? 1 : 0}`, rd: (flags & 0x0100) !== 0, hasUpper };
}

/** Skips an uncompressed name at `off`; returns the end offset, or -1 on a pointer or overrun. */
function skipName(buf: Buffer, off: number): number {
  for (let guard = 0; guard < 128; guard++) {
    if (off >= buf.length) return -1;
    const len = buf[off] as number;
    if (len === 0) return off + 1;
    if (len > 63) return -1;
    off += 1 + len;
  }
  return -1;
}

/**
 * The template of a reply to `query` (which must carry an upper-case letter): every record owner
 * byte-identical to the query's qname echoes it; zone data is never written in the query's case.
 */
function templateOf(reply: Buffer, query: ParsedQuery): Template | null {
  if (!query.hasUpper || reply.length > MAX_REPLAY_BYTES || reply.length < 12) return null;
  if ((reply.readUInt16BE(2) & 0x0200) !== 0) return null;
  if (reply.readUInt16BE(4) !== 1) return null;
  const counts = reply.readUInt16BE(6) + reply.readUInt16BE(8) + reply.readUInt16BE(10);
  const qlen = query.qname.length;
  if (!reply.subarray(12, 12 + qlen).equals(query.qname)) return null;
  const echoes = [12];
  let off = 12 + qlen + 4;
  for (let i = 0; i < counts; i++) {
    const end = skipName(reply, off);
    if (end < 0 || end + 10 > reply.length) return null;
    if (end - off === qlen && reply.subarray(off, end).equals(query.qname)) echoes.push(off);
    off = end + 10 + reply.readUInt16BE(end + 8);
  }
  if (off !== reply.length) return null;
  // A name built from the query's own labels (a DNAME-synthesized CNAME target) keeps the query's
  // case inside rdata, which replaying would not: such replies are always forwarded.
  const firstLabel = query.qname.subarray(0, 1 + (query.qname[0] as number));
  for (let at = reply.indexOf(firstLabel, 12); at >= 0; at = reply.indexOf(firstLabel, at + 1)) {
    if (!echoes.some((e) => at >= e && at < e + qlen)) return null;
  }
  return { reply: Buffer.from(reply), echoes };
}

/** UDP+TCP on `address:port` in front of a fake authority listening on `address:backendPort`. */
export class AnswerReplayFront {
  /** Queries answered from a template (the fake authority never saw them). */
  replayed = 0;
  readonly address: string;
  /** Port of the fake authority behind the front. */
  readonly backendPort: number;
  private readonly port: number;
  private readonly clock: Clock;
  private readonly templates = new Map<string, Template>();
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private udp: dgram.Socket | null = null;
  private backend: dgram.Socket | null = null;
  private tcp: net.Server | null = null;
  private readonly connections = new Set<net.Socket>();
  private sweeper: NodeJS.Timeout | null = null;

  constructor(opts: { address: string; port: number; backendPort: number; clock: Clock }) {
    if (!opts.address.startsWith('127.')) throw new MxError('BENCH_ERR_ADDRESS', `replay front: ${opts.address} is not loopback`);
    this.address = opts.address;
    this.port = opts.port;
    this.backendPort = opts.backendPort;
    this.clock = opts.clock;
  }

  /** Number of distinct replies it can replay. */
  get templateCount(): number {
    return this.templates.size;
  }

  async start(): Promise<void> {
    const bind = (s: dgram.Socket, port: number): Promise<void> =>
      new Promise((resolve, reject) => {
        s.once('error', reject);
        s.bind({ port, address: this.address, exclusive: true }, () => {
          s.off('error', reject);
          resolve();
        });
      });
    this.udp = dgram.createSocket('udp4');
    this.udp.on('message', (msg, rinfo) => this.onQuery(msg, rinfo));
    this.udp.on('error', (err) => console.error(`replay front ${this.address}: ${err.message}`));
    this.backend = dgram.createSocket('udp4');
    this.backend.on('message', (msg, rinfo) => this.onBackendReply(msg, rinfo));
    this.backend.on('error', (err) => console.error(`replay front ${this.address} backend: ${err.message}`));
    await bind(this.udp, this.port);
    await bind(this.backend, 0);
    // A real authority does not drop a resolver's burst of 100-300 queries: give the socket the
    // largest buffer the kernel allows without privileges (net.core.rmem_max).
    for (const s of [this.udp, this.backend]) {
      try {
        s.setRecvBufferSize(RECV_BUFFER_BYTES);
      } catch (err) {
        console.error(`replay front ${this.address}: cannot set a ${RECV_BUFFER_BYTES}-byte receive buffer: ${(err as Error).message}`);
      }
    }
    const server = net.createServer((client) => this.onTcp(client));
    this.tcp = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port: this.port, host: this.address, exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.sweeper = setInterval(() => this.sweep(), 1000);
  }

  async stop(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
    this.pending.clear();
    for (const c of this.connections) c.destroy();
    this.connections.clear();
    const closing: Array<Promise<void>> = [];
    for (const s of [this.udp, this.backend]) if (s) closing.push(new Promise<void>((resolve) => s.close(() => resolve())));
    const tcp = this.tcp;
    if (tcp) closing.push(new Promise<void>((resolve) => tcp.close(() => resolve())));
    this.udp = null;
    this.backend = null;
    this.tcp = null;
    await Promise.all(closing);
  }

  private onQuery(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const q = parseQuery(msg);
    const t = q ? this.templates.get(q.key) : undefined;
    if (q && t && this.udp) {
      const reply = Buffer.from(t.reply);
      reply[0] = msg[0] as number;
      reply[1] = msg[1] as number;
      // The fake echoes RD (RFC 1035 section 4.1.1) and the qname as received.
      reply[2] = ((reply[2] as number) & 0xfe) | (q.rd ? 1 : 0);
      for (const off of t.echoes) q.qname.copy(reply, off);
      this.replayed++;
      this.udp.send(reply, rinfo.port, rinfo.address);
      return;
    }
    this.forward(msg, rinfo.address, rinfo.port, q);
  }

  private forward(msg: Buffer, address: string, port: number, q: ParsedQuery | null): void {
    if (!this.backend || msg.length < 12 || this.pending.size >= MAX_PENDING) return;
    let id = this.nextId;
    for (let i = 0; i < 0x10000 && this.pending.has(id); i++) id = (id + 1) & 0xffff;
    if (this.pending.has(id)) return;
    this.nextId = (id + 1) & 0xffff;
    this.pending.set(id, { clientId: msg.readUInt16BE(0), address, port, query: q, atMs: this.clock.nowMs() });
    const copy = Buffer.from(msg);
    copy.writeUInt16BE(id, 0);
    this.backend.send(copy, this.backendPort, this.address);
  }

  private onBackendReply(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (msg.length < 12 || rinfo.port !== this.backendPort) return;
    const id = msg.readUInt16BE(0);
    const p = this.pending.get(id);
    if (!p || !this.udp) return;
    this.pending.delete(id);
    const reply = Buffer.from(msg);
    reply.writeUInt16BE(p.clientId, 0);
    if (p.query) {
      const t = templateOf(reply, p.query);
      if (t) this.templates.set(p.query.key, t);
    }
    this.udp.send(reply, p.port, p.address);
  }

  /** TCP is rare (truncation only): each connection is piped to the fake authority as it is. */
  private onTcp(client: net.Socket): void {
    const upstream = net.connect({ port: this.backendPort, host: this.address });
    this.connections.add(client);
    this.connections.add(upstream);
    const close = (): void => {
      client.destroy();
      upstream.destroy();
      this.connections.delete(client);
      this.connections.delete(upstream);
    };
    // A reset on either side ends both; nothing to report in a bench.
    client.on('error', close);
    upstream.on('error', close);
    client.on('close', close);
    upstream.on('close', close);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  private sweep(): void {
    const now = this.clock.nowMs();
    for (const [id, p] of this.pending) if (now - p.atMs > FORWARD_TIMEOUT_MS) this.pending.delete(id);
  }
}
