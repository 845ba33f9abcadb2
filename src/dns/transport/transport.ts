// Upstream DNS transport: sends one query to one authoritative server over UDP (a fresh socket and a
// fresh random ID per query) or TCP, and accepts only the answer from that peer with that ID and that
// question. Called by the iterator (wrapped by CountingTransport in tests and the benchmark). It never
// retries, never picks servers and never caches (the iterator's job), and never leaves a socket or timer behind.
import dgram from 'node:dgram';
import { errnoError, nativeUdpFor, type NativeUdp, type UdpIo } from '../../native/native-udp.js';
import { secureRandomUint16 } from '../../util/random-pool.js';
import net from 'node:net';
import { systemClock, type Clock } from '../../util/clock.js';
import { DnsError, describeError } from '../../util/errors.js';
import { decodeMessage, peekHeader } from '../wire/message.js';
import { canonicalName, nameToWire, namesEqual } from '../wire/name.js';
import { RRType, type Message, type Question } from '../wire/types.js';

/** One upstream server. `address` is an IPv4 or IPv6 literal (no host names). */
export interface UpstreamTarget {
  address: string;
  port: number;
}

export interface QueryOptions {
  /** true: TCP (RFC 7766), false: UDP. */
  tcp: boolean;
  /** Add an EDNS0 OPT record advertising a 1232-byte UDP payload (RFC 6891, DNS flag day 2020). */
  edns: boolean;
  /** Deadline for the whole exchange; over TCP it covers connect and answer. */
  timeoutMs: number;
  /** Aborting rejects with DNS_ERR_ABORTED and releases the socket at once. */
  signal?: AbortSignal;
  /**
   * The caller did not randomise the name's case (0x20 off, or its fallback): an answer whose name
   * differs from the question only in case is accepted over UDP too.
   */
  anyCase?: boolean;
}

export interface UpstreamResponse {
  message: Message;
  /** Time from send to the accepted answer, from the transport's Clock. */
  rttMs: number;
  /** Size of the answer in bytes (without the TCP length prefix). */
  size: number;
  /** Whether the answer came over TCP. */
  tcp: boolean;
}

/**
 * Contract: sends one query (RD=0, fresh cryptographically random ID, the question exactly as given,
 * i.e. with the caller's 0x20 case; EDNS0 OPT with udpSize 1232 when opts.edns) and resolves with a
 * response that came from exactly target.address:target.port, carries the same ID and the same
 * question (name compared byte-exactly unless opts.anyCase, type, class). Anything else arriving on the
 * socket is ignored (counted as a spoof attempt) and the wait goes on. Rejects with DnsError code: DNS_ERR_TIMEOUT (no
 * valid answer in time), DNS_ERR_NETWORK (ICMP unreachable / connection refused / reset),
 * DNS_ERR_BAD_RESPONSE (a response from the right peer with the right ID that does not decode),
 * DNS_ERR_CASE_MISMATCH (right peer, ID, type, class and name equal only case-insensitively: the
 * caller retries over TCP), DNS_ERR_ABORTED (opts.signal fired). Never leaves a socket or timer behind.
 *
 * Two deliberate details: a TC=1 answer is returned as is (the caller sees flags.tc and retries over
 * TCP), and an error answer (FORMERR, SERVFAIL, NOTIMP, REFUSED) with an empty question section and
 * no records is accepted, because old servers answer an EDNS query that way (RFC 6891 section 7) and
 * the caller must see it to retry without EDNS; such an answer carries nothing that could be cached.
 */
export interface Transport {
  query(target: UpstreamTarget, question: Question, opts: QueryOptions): Promise<UpstreamResponse>;
}

/** Counters of one NetTransport; plain numbers so metrics can read them without a call. */
export class TransportStats {
  /** Queries sent (UDP datagrams and TCP queries). */
  sent = 0;
  /** Answers accepted and returned to the caller. */
  received = 0;
  timeouts = 0;
  /** Packets ignored: wrong ID, wrong question, not a response (the connected UDP socket already drops other peers). */
  spoofAttempts = 0;
  tcpQueries = 0;
  networkErrors = 0;
  badResponses = 0;
  caseMismatches = 0;
}

/** RFC 6891 section 6.2.5 and the DNS flag day 2020 recommendation: no IP fragmentation. */
export const EDNS_UDP_SIZE = 1232;

/** Response codes for which an answer without a question section is accepted (see the contract). */
const QUESTIONLESS_ERROR_RCODES = new Set([1, 2, 4, 5]);

export interface NetTransportOptions {
  clock?: Clock;
  /** Maps a target to the port really used; tests map glue/hint addresses to fake servers' ports. */
  portFor?: (address: string, port: number) => number;
  stats?: TransportStats;
  /** UDP over the native module when it is built (default), or node:dgram; tests choose. */
  udpIo?: UdpIo;
}

/** The real network transport (native UDP or node:dgram, and node:net). */
export class NetTransport implements Transport {
  readonly stats: TransportStats;
  private readonly clock: Clock;
  private readonly portFor: ((address: string, port: number) => number) | undefined;
  private readonly normalised = new Map<string, string>();
  private readonly native: NativeUdp | undefined;

  constructor(opts: NetTransportOptions = {}) {
    this.native = nativeUdpFor(opts.udpIo, 'DNS_ERR_NETWORK');
    this.clock = opts.clock ?? systemClock;
    this.portFor = opts.portFor;
    this.stats = opts.stats ?? new TransportStats();
  }

  /** See the Transport contract. */
  query(target: UpstreamTarget, question: Question, opts: QueryOptions): Promise<UpstreamResponse> {
    let peer: Peer;
    let id: number;
    let query: Buffer;
    try {
      peer = this.resolvePeer(target);
      if (opts.signal?.aborted) {
        throw new DnsError('DNS_ERR_ABORTED', `query to ${describePeer(peer)} aborted before sending`, { cause: opts.signal.reason });
      }
      id = secureRandomUint16();
      // Throws the codec's DnsError for a name that cannot be encoded; nothing has been opened yet.
      query = buildQuery(id, question, opts.edns);
    } catch (err) {
      return Promise.reject(err);
    }
    const exchange = new Exchange(this.stats, this.clock, peer, id, question, query, opts);
    if (opts.tcp) return exchange.runTcp();
    return this.native ? exchange.runNativeUdp(this.native) : exchange.runUdp();
  }

  private resolvePeer(target: UpstreamTarget): Peer {
    const ipVersion = net.isIP(target.address);
    if (ipVersion !== 4 && ipVersion !== 6) {
      throw new DnsError('DNS_ERR_BAD_ADDRESS', `upstream address '${target.address}' is not an IP literal`);
    }
    let port = target.port;
    if (this.portFor) {
      try {
        port = this.portFor(target.address, target.port);
      } catch (err) {
        throw new DnsError('DNS_ERR_NETWORK', `no route to ${target.address}:${target.port}: ${describeError(err)}`, { cause: err });
      }
    }
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new DnsError('DNS_ERR_BAD_ADDRESS', `upstream port ${port} for ${target.address} is out of range`);
    }
    // Normalised (e.g. "0:0::1" -> "::1") so it compares equal to what the kernel reports; memoised
    // because the set of upstream addresses is small and this ran for every query.
    let address = this.normalised.get(target.address);
    if (address === undefined) {
      address = new net.SocketAddress({ address: target.address, family: ipVersion === 6 ? 'ipv6' : 'ipv4' }).address;
      if (this.normalised.size >= 10_000) this.normalised.clear();
      this.normalised.set(target.address, address);
    }
    return { address, port, family: ipVersion };
  }
}

interface Peer {
  address: string;
  port: number;
  family: 4 | 6;
}

function describePeer(peer: Peer): string {
  return peer.family === 6 ? `[${peer.address}]:${peer.port}` : `${peer.address}:${peer.port}`;
}

/**
 * An iterative query: RD=0 (RFC 1034 section 5.3.1), one question, optional OPT (1232 bytes, DO=0).
 * Written directly (one per upstream query, on the cold path): the same bytes as encodeMessage of
 * that message, which the tests check, without its compression map and sizing passes.
 * @throws DnsError DNS_ERR_BAD_NAME for a name that cannot be encoded.
 */
export function buildQuery(id: number, question: Question, edns: boolean): Buffer {
  const name = nameToWire(question.name);
  const out = Buffer.alloc(HEADER_BYTES + name.length + 4 + (edns ? OPT_BYTES : 0));
  out.writeUInt16BE(id & 0xffff, 0);
  // Flags 0: QUERY, RD=0, rcode 0. One question; an OPT is the one additional record.
  out.writeUInt16BE(1, 4);
  if (edns) out.writeUInt16BE(1, 10);
  name.copy(out, HEADER_BYTES);
  let off = HEADER_BYTES + name.length;
  out.writeUInt16BE(question.type, off);
  out.writeUInt16BE(question.class, off + 2);
  off += 4;
  if (edns) {
    // Root owner (the 0 byte alloc left), TYPE OPT, CLASS = UDP payload size, TTL 0 (no
    // extended rcode, version 0, DO=0), RDLENGTH 0.
    out.writeUInt16BE(RRType.OPT, off + 1);
    out.writeUInt16BE(EDNS_UDP_SIZE, off + 3);
  }
  return out;
}

/** Bytes of a DNS header, and of an OPT record without options. */
const HEADER_BYTES = 12;
const OPT_BYTES = 11;

/** Wraps a socket error (ECONNREFUSED, EHOSTUNREACH, ECONNRESET, ...) as DNS_ERR_NETWORK, keeping the errno code in the message. */
function networkError(peer: Peer, err: unknown, tcp: boolean): DnsError {
  const code = (err as NodeJS.ErrnoException | null)?.code ?? 'unknown';
  const proto = tcp ? 'tcp' : 'udp';
  return new DnsError('DNS_ERR_NETWORK', `${proto} ${describePeer(peer)}: ${code} (${describeError(err)})`, { cause: err });
}

/** The state of one query; settles exactly once and then releases everything it holds. */
class Exchange {
  private settled = false;
  private timer: NodeJS.Timeout | undefined;
  private cleanup: (() => void) | undefined;
  private sentAt = 0;
  private resolveFn!: (r: UpstreamResponse) => void;
  private rejectFn!: (e: DnsError) => void;
  private readonly onAbort = (): void => {
    this.fail(new DnsError('DNS_ERR_ABORTED', `query to ${describePeer(this.peer)} aborted`, { cause: this.opts.signal?.reason }));
  };

  constructor(
    private readonly stats: TransportStats,
    private readonly clock: Clock,
    private readonly peer: Peer,
    private readonly id: number,
    private readonly question: Question,
    private readonly query: Buffer,
    private readonly opts: QueryOptions,
  ) {}

  runUdp(): Promise<UpstreamResponse> {
    return this.start(false, () => {
      // A new socket per query; connect() binds it to port 0, so the kernel picks a random ephemeral
      // port (Linux randomises within ip_local_port_range, RFC 6056) -- Node 20 has no reusePort, and
      // a port shared between queries would let an attacker aim at one port. connect() also makes the
      // kernel drop datagrams from any other address:port and report ICMP port/host unreachable as an
      // error (unconnected UDP sockets never see ICMP errors on Linux); Unbound does the same by default
      // (udp-connect: yes) against the ICMP side channel of SAD DNS (CVE-2020-25705).
      // The peer is an IP literal: skip the dns.lookup() that connect() would otherwise schedule.
      const family = this.peer.family;
      const socket = dgram.createSocket({ type: family === 6 ? 'udp6' : 'udp4', lookup: (host, _opts, cb) => cb(null, host, family) });
      this.cleanup = () => {
        socket.removeAllListeners('message');
        socket.removeAllListeners('connect');
        // The socket may already be closed after an error; close() then throws ERR_SOCKET_DGRAM_NOT_RUNNING.
        try {
          socket.close();
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ERR_SOCKET_DGRAM_NOT_RUNNING') throw err;
        }
      };
      // Stays attached after cleanup so a late error on a closing socket cannot become an uncaught one.
      socket.on('error', (err) => {
        if (this.settled) return;
        this.stats.networkErrors++;
        this.fail(networkError(this.peer, err, false));
      });
      socket.on('message', (buf, rinfo) => {
        if (rinfo.address !== this.peer.address || rinfo.port !== this.peer.port) {
          this.stats.spoofAttempts++;
          return;
        }
        this.onPacket(buf, false);
      });
      // Without a callback, a failed connect() is reported through the 'error' listener above.
      socket.once('connect', () => {
        if (this.settled) return;
        this.stats.sent++;
        this.sentAt = this.clock.nowMs();
        // No completion callback (one more call into JS per query): a failed send is reported
        // through the 'error' listener above, like a failed connect().
        socket.send(this.query);
      });
      socket.connect(this.peer.port, this.peer.address);
    });
  }

  /**
   * runUdp over the native module: the same fresh socket per query, connected to the server (so the
   * kernel picks a random port, drops other sources and reports ICMP errors), without dgram's
   * per-socket objects, events and lookups; each datagram that arrives goes to onPacket.
   */
  runNativeUdp(native: NativeUdp): Promise<UpstreamResponse> {
    return this.start(false, () => {
      const { family, address, port } = this.peer;
      let handle: object | undefined;
      this.cleanup = () => {
        if (handle) native.udpQueryClose(handle);
      };
      this.sentAt = this.clock.nowMs();
      handle = native.udpQuery(family, address, port, this.query, (errno, answer, syscall) => {
        if (this.settled) return;
        if (answer) {
          this.onPacket(answer, false);
          return;
        }
        this.stats.networkErrors++;
        this.fail(networkError(this.peer, errnoError(errno, syscall ?? 'recv'), false));
      });
      // Counted once handed over: a connect or send that failed at once threw above; one that
      // failed on the module's sending thread comes back through the callback, a network error too.
      this.stats.sent++;
    });
  }

  runTcp(): Promise<UpstreamResponse> {
    return this.start(true, () => {
      this.stats.tcpQueries++;
      const socket = net.connect({ host: this.peer.address, port: this.peer.port, family: this.peer.family, noDelay: true });
      this.cleanup = () => {
        socket.removeAllListeners('data');
        socket.removeAllListeners('close');
        socket.removeAllListeners('connect');
        socket.destroy();
      };
      socket.on('error', (err) => {
        if (this.settled) return;
        this.stats.networkErrors++;
        this.fail(networkError(this.peer, err, true));
      });
      socket.on('close', () => {
        if (this.settled) return;
        this.stats.networkErrors++;
        this.fail(new DnsError('DNS_ERR_NETWORK', `tcp ${describePeer(this.peer)}: connection closed before an answer`));
      });
      socket.on('connect', () => {
        const frame = Buffer.allocUnsafe(2 + this.query.length);
        frame.writeUInt16BE(this.query.length, 0);
        this.query.copy(frame, 2);
        this.stats.sent++;
        this.sentAt = this.clock.nowMs();
        socket.write(frame);
      });
      // RFC 1035 section 4.2.2 / RFC 7766 section 8: a 2-byte length, then the message; reads may
      // split or join frames arbitrarily. Pieces are kept apart and joined once a frame is whole,
      // so a server dribbling a 64 KB answer in tiny segments costs linear, not quadratic, copying.
      let chunks: Buffer[] = [];
      let have = 0;
      socket.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        have += chunk.length;
        while (!this.settled && have >= 2) {
          if (chunks[0]!.length < 2) chunks = [Buffer.concat(chunks, have)];
          const len = chunks[0]!.readUInt16BE(0);
          if (have < 2 + len) break;
          const all = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, have);
          const rest = all.subarray(2 + len);
          chunks = rest.length > 0 ? [rest] : [];
          have = rest.length;
          this.onPacket(all.subarray(2, 2 + len), true);
        }
      });
    });
  }

  private start(tcp: boolean, open: () => void): Promise<UpstreamResponse> {
    const promise = new Promise<UpstreamResponse>((resolve, reject) => {
      this.resolveFn = resolve;
      this.rejectFn = reject;
    });
    this.timer = setTimeout(() => {
      this.stats.timeouts++;
      const proto = tcp ? 'tcp' : 'udp';
      this.fail(new DnsError('DNS_ERR_TIMEOUT', `${proto} ${describePeer(this.peer)}: no valid answer within ${this.opts.timeoutMs} ms`));
    }, Math.max(0, this.opts.timeoutMs));
    this.opts.signal?.addEventListener('abort', this.onAbort, { once: true });
    try {
      open();
    } catch (err) {
      this.stats.networkErrors++;
      this.fail(networkError(this.peer, err, tcp));
    }
    return promise;
  }

  /** Checks one packet from the right peer; settles or ignores it. */
  private onPacket(buf: Buffer, tcp: boolean): void {
    if (this.settled) return;
    if (buf.length < 2 || buf.readUInt16BE(0) !== this.id) {
      this.stats.spoofAttempts++;
      return;
    }
    let message: Message;
    try {
      message = decodeMessage(buf);
    } catch (err) {
      const truncated = this.truncatedFallback(buf);
      if (truncated) {
        this.succeed(truncated, buf.length, tcp);
        return;
      }
      this.stats.badResponses++;
      this.fail(new DnsError('DNS_ERR_BAD_RESPONSE', `${tcp ? 'tcp' : 'udp'} ${describePeer(this.peer)}: undecodable answer: ${describeError(err)}`, { cause: err }));
      return;
    }
    if (!message.flags.qr) {
      this.stats.spoofAttempts++;
      return;
    }
    const q = message.questions[0];
    if (message.questions.length === 0) {
      const isBareError = QUESTIONLESS_ERROR_RCODES.has(message.rcode) && message.answers.length === 0 && message.authorities.length === 0;
      if (isBareError) this.succeed(message, buf.length, tcp);
      else this.stats.spoofAttempts++;
      return;
    }
    if (message.questions.length !== 1 || !q || q.type !== this.question.type || q.class !== this.question.class) {
      this.stats.spoofAttempts++;
      return;
    }
    if (q.name === this.question.name) {
      this.succeed(message, buf.length, tcp);
      return;
    }
    if (!namesEqual(q.name, this.question.name)) {
      this.stats.spoofAttempts++;
      return;
    }
    // Same name in another case. Over UDP this breaks 0x20 (draft-vixie-dnsext-dns0x20): the caller
    // retries over TCP, where spoofing needs the TCP handshake, so there the case is not checked;
    // nor when the caller sent the name without randomising its case.
    if (tcp || this.opts.anyCase === true) {
      this.succeed(message, buf.length, tcp);
      return;
    }
    this.stats.caseMismatches++;
    this.fail(new DnsError('DNS_ERR_CASE_MISMATCH', `udp ${describePeer(this.peer)}: answer for '${q.name}' does not keep the case of '${this.question.name}'`));
  }

  /**
   * Some servers cut a too-large UDP answer mid-record and set TC (RFC 2181 section 9 allows it).
   * When the header says TC and the question bytes equal ours exactly, the caller gets the header
   * and our question, which is all it needs to retry over TCP.
   */
  private truncatedFallback(buf: Buffer): Message | null {
    const header = peekHeader(buf);
    if (!header || !header.flags.tc || !header.flags.qr || header.qdcount !== 1) return null;
    // Our query carries exactly one uncompressed question right after the 12-byte header.
    const questionLength = questionEnd(this.query) - 12;
    if (buf.length < 12 + questionLength) return null;
    if (!buf.subarray(12, 12 + questionLength).equals(this.query.subarray(12, 12 + questionLength))) return null;
    return {
      id: header.id,
      flags: header.flags,
      rcode: header.rcode,
      questions: [{ ...this.question }],
      answers: [],
      authorities: [],
      additionals: [],
      edns: null,
    };
  }

  private succeed(message: Message, size: number, tcp: boolean): void {
    if (this.settled) return;
    this.stats.received++;
    const rttMs = Math.max(0, this.clock.nowMs() - this.sentAt);
    this.finish();
    this.resolveFn({ message, rttMs, size, tcp });
  }

  private fail(err: DnsError): void {
    if (this.settled) return;
    this.finish();
    this.rejectFn(err);
  }

  private finish(): void {
    this.settled = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.opts.signal?.removeEventListener('abort', this.onAbort);
    const cleanup = this.cleanup;
    this.cleanup = undefined;
    cleanup?.();
  }
}

/** Offset just past the single question of a message we encoded ourselves (uncompressed qname). */
function questionEnd(query: Buffer): number {
  let offset = 12;
  while (offset < query.length) {
    const len = query[offset] ?? 0;
    offset += 1 + len;
    if (len === 0) break;
  }
  return offset + 4;
}

/** One counted query, as CountingTransport records it. */
export interface CountedQuery {
  address: string;
  port: number;
  /** Canonical (lower-case) qname: 0x20 case is not part of the identity of a query. */
  name: string;
  type: number;
  tcp: boolean;
  edns: boolean;
}

/**
 * A Transport wrapper that counts queries per target address and per (address, qname, qtype), for
 * tests and the benchmark ("upstream queries per name"). Counts every call, answered or not.
 */
export class CountingTransport implements Transport {
  /** Every query in call order. */
  readonly log: CountedQuery[] = [];
  private readonly byAddress = new Map<string, number>();
  private readonly byQuestion = new Map<string, number>();

  constructor(private readonly inner: Transport) {}

  query(target: UpstreamTarget, question: Question, opts: QueryOptions): Promise<UpstreamResponse> {
    const name = canonicalName(question.name);
    this.log.push({ address: target.address, port: target.port, name, type: question.type, tcp: opts.tcp, edns: opts.edns });
    this.byAddress.set(target.address, (this.byAddress.get(target.address) ?? 0) + 1);
    const key = questionKey(target.address, name, question.type);
    this.byQuestion.set(key, (this.byQuestion.get(key) ?? 0) + 1);
    return this.inner.query(target, question, opts);
  }

  /** Total queries passed through. */
  get total(): number {
    return this.log.length;
  }

  /** Queries sent to one address. */
  countFor(address: string): number {
    return this.byAddress.get(address) ?? 0;
  }

  /** Queries for (qname, qtype) sent to one address; qname compared case-insensitively. */
  countForQuestion(address: string, qname: string, qtype: number): number {
    return this.byQuestion.get(questionKey(address, canonicalName(qname), qtype)) ?? 0;
  }

  /** Queries for a qname (and qtype, if given) across all addresses; qname case-insensitive. */
  countForName(qname: string, qtype?: number): number {
    const name = canonicalName(qname);
    let n = 0;
    for (const q of this.log) if (q.name === name && (qtype === undefined || q.type === qtype)) n++;
    return n;
  }

  /** Per-address totals, for reports. */
  addresses(): Map<string, number> {
    return new Map(this.byAddress);
  }

  /** Forgets everything counted so far. */
  reset(): void {
    this.log.length = 0;
    this.byAddress.clear();
    this.byQuestion.clear();
  }
}

function questionKey(address: string, canonicalQname: string, qtype: number): string {
  return `${address}|${canonicalQname}|${qtype}`;
}
