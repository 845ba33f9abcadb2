// The downstream DNS server: UDP and TCP listeners for stub resolvers (Postfix, the host's libc),
// created by main.ts with the resolver behind the Recursor interface. Flow per query (DESIGN.md s1):
//   datagram / TCP frame -> peekHeader (unreadable: drop; QR=1: drop, never answer a response)
//   -> ACL on the client address (outside `allow`: REFUSED, the query's header alone, counted)
//   -> fast path when readQueryKey reads a plain query: the packet cache (ready bytes, client's ID
//      and letter case; recursion's answers only, emptied when the local zones change) -> send on
//      a hit; then the local zones (canonical qname), whose answer the slow path sends
//   -> else decodeMessage (FORMERR on a throw) -> query-refusal.ts: TC set: FORMERR; opcode other
//      than QUERY and NOTIFY: NOTIMP; qdcount != 1, answer records (NOTIFY: more than one),
//      authority records, additional records other than the OPT: FORMERR; EDNS version > 0:
//      BADVERS; NOTIFY: REFUSED; class other than IN (CH, HS, ...): REFUSED; AXFR/IXFR: REFUSED on
//      both transports; OPT, TSIG and meta-types 128-248: FORMERR; TKEY, MAILA, MAILB: NOTIMP;
//      ANY goes to the recursor like any type (not RFC 8482 minimal)
//   -> local zones -> recursor.answerQuery (RD=0: cache only) -> response (ID, RD, CD copied, QR, RA set, AA only
//      for local zones, the question as the client sent it, OPT udp 1232 when the client sent OPT)
//   -> when cacheable (the query had a key and the local zones were not replaced while it was
//      resolved): packet cache store, and the answer made from the stored bytes as a hit would be
//      (one encoding, not two); otherwise, or when that is larger than the client takes: encode
//      within the client's size (UDP: its EDNS size clamped to 512..1232, else 512; TCP: 65535),
//      TC when cut -> send.
// It never resolves anything itself, never lets one query's failure end the process (every handler
// is wrapped: an unexpected exception becomes SERVFAIL and one rate-limited log line) and never
// answers a client outside the allow list with anything but REFUSED (without RA; errors to allowed
// clients carry RA, as Unbound's do).
import net from 'node:net';
import type { AnswerSource, QueryAnswer, Recursor } from '../resolver-api.js';
import type { CidrSet } from '../../util/cidr.js';
import type { Clock } from '../../util/clock.js';
import { DnsError, describeError } from '../../util/errors.js';
import type { Logger } from '../../util/logger.js';
import { decodeMessage, encodeErrorResponse, encodeMessage, peekHeader } from '../wire/message.js';
import { readQueryKey } from '../wire/query-key.js';
import { rcodeToString } from '../wire/rdata.js';
import { RRClass, Rcode, type Message, type QueryKey } from '../wire/types.js';
import { fmtAddr, listenTcpServer, setUdpBuffers, type UdpBufferSizes } from './listen-sockets.js';
import { nativeUdp } from '../../native/native-udp.js';
import { adoptUdpEndpoint, openUdpEndpoint, type UdpEndpoint } from './udp-endpoint.js';
import type { LocalAnswer, LocalZones } from './local-zones.js';
import { queryRefusal } from './query-refusal.js';
import { answerSizeLimit, buildResponse, type ResponseBody, type ServerTransport as Transport } from './responses.js';
import { TcpConnections } from './tcp-connections.js';

/** The part of the packet cache the server uses (src/dns/cache/packet-cache.ts implements it). */
export interface ServerPacketCache {
  store(query: QueryKey, response: Message): void;
  storeAndAnswer(raw: Uint8Array, query: QueryKey, response: Message, maxUdpSize: number): Buffer | null;
  answer(raw: Uint8Array, query: QueryKey, maxUdpSize: number): Buffer | null;
  flushAll(): void;
}

/** Where to listen: an address (UDP and TCP on the same port) or an inherited socket fd. */
export type ListenEndpoint = { address: string; port: number } | { fd: number; kind: 'udp' | 'tcp' };

/** A bound listener, port 0 resolved. */
export interface BoundAddress {
  transport: 'udp' | 'tcp';
  address: string;
  port: number;
  family: 4 | 6;
}

export interface DnsServerLimits {
  /** Open TCP connections; at the cap the longest-idle connection is closed for a new one. Default 100. */
  maxTcpConnections: number;
  /** A TCP connection with no query in flight is closed after this long (RFC 7766 s6.2.3). Default 10000. */
  tcpIdleTimeoutMs: number;
  /** Queries waiting on the recursor at once; beyond it SERVFAIL at once. Default 1000. */
  maxConcurrentQueries: number;
  /** Queries in flight on one TCP connection; beyond it the connection is not read. Default 32. */
  maxTcpPipeline: number;
  /** How long close() waits for queries in flight before cutting them off. Default 5000. */
  drainTimeoutMs: number;
}

export const DEFAULT_DNS_SERVER_LIMITS: Readonly<DnsServerLimits> = {
  maxTcpConnections: 100,
  tcpIdleTimeoutMs: 10_000,
  maxConcurrentQueries: 1000,
  maxTcpPipeline: 32,
  drainTimeoutMs: 5000,
};

export interface DnsServerOptions {
  recursor: Recursor;
  /** null: no packet cache (every non-local query goes to the recursor). */
  packetCache: ServerPacketCache | null;
  localZones: LocalZones;
  /** Clients allowed to query (recursion); everyone else gets REFUSED. */
  allow: CidrSet;
  logger: Logger;
  clock: Clock;
  limits?: Partial<DnsServerLimits>;
  /** SO_RCVBUF / SO_SNDBUF of the UDP listeners (so-rcvbuf / so-sndbuf); absent or 0: the OS default. */
  udpBuffers?: Partial<UdpBufferSizes>;
}

type AnswerSourceStat = AnswerSource | 'packet-cache';

/** Counters since start; read with `stats()`. */
export interface DnsServerStats {
  queries: { udp: number; tcp: number };
  /** Responses sent, by rcode mnemonic (NOERROR, NXDOMAIN, SERVFAIL, ...). */
  rcodes: Record<string, number>;
  /** Answers by where they came from. */
  sources: Record<AnswerSourceStat, number>;
  /** Queries from clients outside the allow list (answered REFUSED). */
  refused: number;
  /** Undecodable queries answered FORMERR. */
  formerr: number;
  /** Packets not answered at all (unreadable header, QR=1, deny zones, shutting down). */
  dropped: number;
  /** Queries answered SERVFAIL because maxConcurrentQueries was reached. */
  overloaded: number;
  /** Unexpected exceptions turned into SERVFAIL. */
  internalErrors: number;
  tcp: { open: number; accepted: number; rejected: number; idleClosed: number; evicted: number };
}

/** One log line per kind of trouble per this interval; the rest are counted into the next line. */
const LOG_INTERVAL_MS = 10_000;
/** How long close() lets ending TCP connections flush their last replies. */
const FLUSH_ON_CLOSE_MS = 1000;

interface UdpListener {
  kind: 'udp';
  endpoint: UdpEndpoint;
  /** Set when close starts; replies after it are dropped. */
  closed: boolean;
}
interface TcpListener {
  kind: 'tcp';
  server: net.Server;
}

/**
 * The DNS server. One instance serves every listen endpoint; `close()` drains it. TCP connections
 * (framing, pipelining, idle timeout, the connection cap) are kept by TcpConnections.
 */
export class DnsServer {
  private readonly recursor: Recursor;
  private readonly packetCache: ServerPacketCache | null;
  private localZones: LocalZones;
  private allow: CidrSet;
  private aclMemo: Map<string, boolean>;
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly limits: DnsServerLimits;
  private readonly udpBuffers: UdpBufferSizes;
  private readonly listeners: Array<UdpListener | TcpListener> = [];
  private readonly tcpConns: TcpConnections;
  private readonly pending = new Set<Promise<void>>();
  private readonly logState = new Map<string, { lastMs: number; suppressed: number }>();
  private inflight = 0;
  private closing = false;
  private sweepTimer: NodeJS.Timeout | null = null;
  private readonly counters: DnsServerStats = {
    queries: { udp: 0, tcp: 0 },
    rcodes: {},
    sources: { local: 0, 'packet-cache': 0, cache: 0, recursion: 0, stale: 0 },
    refused: 0,
    formerr: 0,
    dropped: 0,
    overloaded: 0,
    internalErrors: 0,
    tcp: { open: 0, accepted: 0, rejected: 0, idleClosed: 0, evicted: 0 },
  };

  constructor(opts: DnsServerOptions) {
    this.recursor = opts.recursor;
    this.packetCache = opts.packetCache;
    this.localZones = opts.localZones;
    this.allow = opts.allow;
    this.aclMemo = new Map();
    this.logger = opts.logger;
    this.clock = opts.clock;
    this.limits = { ...DEFAULT_DNS_SERVER_LIMITS, ...opts.limits };
    this.udpBuffers = { recvBytes: opts.udpBuffers?.recvBytes ?? 0, sendBytes: opts.udpBuffers?.sendBytes ?? 0 };
    this.tcpConns = new TcpConnections({
      limits: this.limits,
      clock: this.clock,
      logger: this.logger,
      counters: this.counters,
      isClosing: () => this.closing,
      logLimited: (kind, level, fields, msg) => this.logLimited(kind, level, fields, msg),
      query: (frame, client, send) => this.processQuery(frame, client, 'tcp', send),
      track: (p) => this.track(p),
    });
  }

  /**
   * Binds every endpoint: an address gets a UDP socket and a TCP listener on the same port (with
   * port 0, the port UDP got); an fd endpoint adopts the inherited socket. On any failure the
   * listeners opened so far are closed and the error is thrown. Prefer specific addresses to
   * wildcards ('0.0.0.0', '::'): Node cannot set IP_PKTINFO, so on a multi-homed host a reply from
   * a wildcard UDP socket may leave from another address than the query reached (Unbound's
   * interface-automatic problem), and stub resolvers discard such replies.
   * @throws DnsError DNS_ERR_BIND_PRIVILEGE (port < 1024 without the capability),
   *   DNS_ERR_BIND_IN_USE, DNS_ERR_BIND_ADDRESS (address not on this host), DNS_ERR_BIND (other).
   */
  async listen(endpoints: ListenEndpoint[]): Promise<void> {
    if (this.closing) throw new DnsError('DNS_ERR_BIND', 'the DNS server is closed');
    try {
      for (const ep of endpoints) {
        if ('fd' in ep) {
          if (ep.kind === 'udp') this.listeners.push(await this.bindUdpFd(ep.fd));
          else this.listeners.push(await this.listenTcp({ fd: ep.fd }, `fd ${ep.fd}`));
        } else {
          await this.bindPair(ep.address, ep.port);
        }
      }
    } catch (err) {
      await this.closeListeners();
      throw err;
    }
    const udp = this.listeners.find((l): l is UdpListener => l.kind === 'udp');
    const why = nativeUdp().problem ?? null;
    if (udp?.endpoint.io === 'native') this.logger.info({ io: 'native' }, 'DNS UDP listeners use the native I/O module (recvmmsg batches)');
    else if (udp) this.logger.info({ io: 'dgram', why }, `DNS UDP listeners use node:dgram (more CPU per answer): the native I/O module is ${why ?? 'not used'}`);
    if (!this.sweepTimer && this.listeners.some((l) => l.kind === 'tcp')) {
      const everyMs = Math.max(50, Math.min(1000, Math.floor(this.limits.tcpIdleTimeoutMs / 2)));
      this.sweepTimer = setInterval(() => this.sweepIdleConnections(), everyMs);
      this.sweepTimer.unref();
    }
  }

  /**
   * SIGHUP reload: later queries use the new local zones; queries in flight are unaffected. The
   * packet cache is emptied: a name the new zones answer may have a recursive answer in it.
   */
  setLocalZones(zones: LocalZones): void {
    this.localZones = zones;
    this.packetCache?.flushAll();
  }

  /** SIGHUP reload of the access list. */
  setAllow(allow: CidrSet): void {
    this.allow = allow;
    this.aclMemo.clear();
  }

  /** ACL check memoised per client address: parsing the address text cost measurable time per packet. */
  private isAllowed(client: string): boolean {
    let ok = this.aclMemo.get(client);
    if (ok === undefined) {
      ok = this.allow.has(client);
      // Bounded: a flood from many source addresses cannot grow it without limit.
      if (this.aclMemo.size >= 4096) this.aclMemo.clear();
      this.aclMemo.set(client, ok);
    }
    return ok;
  }

  /** Bound listeners with resolved ports, in listen order. */
  addresses(): BoundAddress[] {
    const out: BoundAddress[] = [];
    for (const l of this.listeners) {
      const a = l.kind === 'udp' ? l.endpoint.address() : l.server.address();
      if (a === null || typeof a === 'string') continue;
      out.push({ transport: l.kind, address: a.address, port: a.port, family: a.family === 'IPv6' ? 6 : 4 });
    }
    return out;
  }

  /** A snapshot of the counters. */
  stats(): DnsServerStats {
    const c = this.counters;
    return {
      ...c,
      queries: { ...c.queries },
      rcodes: { ...c.rcodes },
      sources: { ...c.sources },
      tcp: { ...c.tcp, open: this.tcpConns.size },
    };
  }

  /** Queries waiting on the recursor right now. */
  get queriesInFlight(): number {
    return this.inflight;
  }

  /**
   * Closes TCP connections idle (no query in flight) for tcpIdleTimeoutMs by the injected clock.
   * Runs on a timer; public so tests can drive it with a ManualClock. Returns how many closed.
   */
  sweepIdleConnections(): number {
    return this.tcpConns.sweepIdle();
  }

  /**
   * Graceful stop: stops accepting, drops new datagrams, lets queries in flight finish (at most
   * drainTimeoutMs), sends their replies, then closes every socket. Safe to call twice.
   */
  async close(): Promise<void> {
    if (this.closing) {
      await this.waitPending(this.limits.drainTimeoutMs);
      return;
    }
    this.closing = true;
    if (this.sweepTimer) {
      clearInterval(this.sweepTimer);
      this.sweepTimer = null;
    }
    const tcpClosed = this.closeTcpListeners();
    this.tcpConns.endIdle();
    await this.waitPending(this.limits.drainTimeoutMs);
    await this.tcpConns.waitFlushed(FLUSH_ON_CLOSE_MS);
    this.tcpConns.destroyAll();
    await Promise.all([tcpClosed, this.closeUdpListeners()]);
  }

  // ---- binding ---------------------------------------------------------------------------

  private async bindPair(address: string, port: number): Promise<void> {
    const family = net.isIP(address);
    if (family === 0) throw new DnsError('DNS_ERR_BIND_ADDRESS', `DNS listen address "${address}" is not an IP address`);
    // With port 0 the TCP listener takes the port UDP got, so a TC retry reaches the same server;
    // when that port is taken for TCP, try again with a fresh one (bounded).
    const attempts = port === 0 ? 5 : 1;
    for (let i = 1; ; i++) {
      const udp = await this.bindUdp(address, port, family === 6 ? 6 : 4);
      const udpPort = udp.endpoint.address().port;
      try {
        const tcp = await this.listenTcp({ host: address, port: udpPort, ipv6Only: address === '::' }, `${fmtAddr(address, udpPort)}/tcp`);
        this.listeners.push(udp, tcp);
        return;
      } catch (err) {
        await udp.endpoint.close();
        if (i >= attempts || !(err instanceof DnsError) || err.code !== 'DNS_ERR_BIND_IN_USE') throw err;
      }
    }
  }

  private async bindUdp(address: string, port: number, family: 4 | 6): Promise<UdpListener> {
    return this.attachUdp(await openUdpEndpoint(address, port, family));
  }

  private async bindUdpFd(fd: number): Promise<UdpListener> {
    return this.attachUdp(await adoptUdpEndpoint(fd));
  }

  private attachUdp(endpoint: UdpEndpoint): UdpListener {
    const { address, port } = endpoint.address();
    for (const b of setUdpBuffers(endpoint.buffers, this.udpBuffers)) {
      const fields = { listen: fmtAddr(address, port), option: b.option, requested: b.requested, got: b.got };
      if (b.problem) this.logger.warn(fields, `DNS UDP listener: ${b.option} ${b.requested} not granted: ${b.problem}`);
      else this.logger.debug(fields, `DNS UDP listener: ${b.option} set`);
    }
    const listener: UdpListener = { kind: 'udp', endpoint, closed: false };
    endpoint.start(
      (msg, client, reply) => this.onDatagram(listener, msg, client, reply),
      (err) => this.logLimited('udp-socket', 'warn', { err: describeError(err) }, 'DNS UDP socket error'),
    );
    return listener;
  }

  private async listenTcp(opts: net.ListenOptions | { fd: number }, what: string): Promise<TcpListener> {
    const server = await listenTcpServer(opts, what, (s) => this.tcpConns.accept(s));
    server.on('error', (err) => this.logLimited('tcp-server', 'warn', { err: describeError(err) }, 'DNS TCP listener error'));
    return { kind: 'tcp', server };
  }

  private async closeListeners(): Promise<void> {
    await Promise.all([this.closeTcpListeners(), this.closeUdpListeners()]);
  }

  private closeTcpListeners(): Promise<void> {
    const tcp = this.listeners.filter((l): l is TcpListener => l.kind === 'tcp');
    this.removeListeners('tcp');
    return Promise.all(tcp.map((l) => new Promise<void>((resolve) => l.server.close(() => resolve())))).then(() => undefined);
  }

  private closeUdpListeners(): Promise<void> {
    const udp = this.listeners.filter((l): l is UdpListener => l.kind === 'udp');
    this.removeListeners('udp');
    return Promise.all(
      udp.map((l) => {
        l.closed = true;
        return l.endpoint.close();
      }),
    ).then(() => undefined);
  }

  private removeListeners(kind: 'udp' | 'tcp'): void {
    for (let i = this.listeners.length - 1; i >= 0; i--) if (this.listeners[i]?.kind === kind) this.listeners.splice(i, 1);
  }

  private async waitPending(timeoutMs: number): Promise<void> {
    if (this.pending.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    await Promise.race([Promise.allSettled([...this.pending]).then(() => undefined), timeout]);
    if (timer) clearTimeout(timer);
  }

  // ---- UDP ---------------------------------------------------------------------------------

  private onDatagram(listener: UdpListener, msg: Buffer, client: string, reply: (bytes: Buffer) => void): void {
    if (this.closing) {
      this.counters.dropped++;
      return;
    }
    this.counters.queries.udp++;
    const send = (bytes: Buffer): void => {
      if (listener.closed) {
        this.counters.dropped++;
        return;
      }
      // A failed send is reported to the endpoint's error handler (rate-limited log line).
      reply(bytes);
    };
    const p = this.processQuery(msg, client, 'udp', send);
    if (p) this.track(p);
  }

  // ---- TCP (RFC 7766) ------------------------------------------------------------------------

  // ---- the query path ----------------------------------------------------------------------

  private track(p: Promise<void>): void {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  /**
   * One query from either transport. Answers synchronously when it can (drop, REFUSED, local zone,
   * packet cache hit; returns undefined), otherwise returns the promise of the slow path. Never
   * throws and the promise never rejects.
   */
  private processQuery(raw: Buffer, client: string, transport: Transport, send: (b: Buffer) => void): Promise<void> | undefined {
    try {
      const header = peekHeader(raw);
      if (!header || header.flags.qr) {
        // Unreadable, or a response: never answer one (answering responses enables reflection loops).
        this.counters.dropped++;
        return undefined;
      }
      if (!this.isAllowed(client)) {
        // As Unbound's access-control refuse: the query's header alone with QR and REFUSED set, no
        // question, no OPT, so a spoofed source gets back no more than 12 bytes.
        this.counters.refused++;
        const reply = Buffer.from(raw.subarray(0, 12));
        reply[2] = (reply[2] as number) | 0x80;
        reply[3] = ((reply[3] as number) & 0xf0) | Rcode.REFUSED;
        reply.fill(0, 4, 12);
        this.countRcode(Rcode.REFUSED);
        send(reply);
        return undefined;
      }
      const key = readQueryKey(raw);
      // undefined: not looked up here (no key, or not class IN); null: looked up, no local answer.
      let local: LocalAnswer | null | undefined;
      if (key) {
        // The packet cache first: it only holds recursion's answers to questions the local zones
        // did not answer, and setLocalZones empties it, so a hit is what the slow path would send.
        if (this.packetCache) {
          const maxSize = answerSizeLimit(key.ednsUdpSize, transport);
          const hit = this.packetCache.answer(raw, key, maxSize);
          if (hit) {
            this.counters.sources['packet-cache']++;
            this.countRcode(hit[3] !== undefined ? hit[3] & 0xf : Rcode.NOERROR);
            send(hit);
            return undefined;
          }
        }
        if (key.qclass === RRClass.IN) local = this.localZones.lookup(key.qname, key.qtype);
      }
      return this.slowPath(raw, key, local, transport, send).catch((err: unknown) => this.internalError(err, raw, send));
    } catch (err) {
      this.internalError(err, raw, send);
      return undefined;
    }
  }

  private async slowPath(raw: Buffer, key: QueryKey | null, fastLocal: LocalAnswer | null | undefined, transport: Transport, send: (b: Buffer) => void): Promise<void> {
    let query: Message;
    try {
      query = decodeMessage(raw);
    } catch (err) {
      if (!(err instanceof DnsError)) throw err;
      this.counters.formerr++;
      this.logger.debug({ err: err.message }, 'DNS query not decodable: FORMERR');
      this.sendError(raw, Rcode.FORMERR, send);
      return;
    }
    const refusal = queryRefusal(query);
    if (refusal !== null) {
      if (refusal === Rcode.FORMERR) this.counters.formerr++;
      if (refusal !== Rcode.BADVERS) return this.sendError(raw, refusal, send);
      this.sendResponse(query, { rcode: Rcode.BADVERS, answers: [], authorities: [], additionals: [] }, false, transport, send);
      return;
    }
    const question = query.questions[0]!;
    const qtype = question.type;
    // The zones this answer was checked against: a reload while recursion runs may make them answer it.
    // The fast path looked them up in this same turn unless it could not (fastLocal undefined).
    const zones = this.localZones;
    const local = fastLocal !== undefined ? fastLocal : zones.lookup(question.name, qtype);
    if (local) {
      if (local.drop) {
        this.counters.dropped++;
        return;
      }
      this.counters.sources.local++;
      this.sendResponse(query, local, local.authoritative, transport, send);
      return;
    }
    if (this.inflight >= this.limits.maxConcurrentQueries) {
      this.counters.overloaded++;
      this.logLimited('overload', 'warn', { max: this.limits.maxConcurrentQueries }, 'DNS query limit reached: answering SERVFAIL');
      return this.sendError(raw, Rcode.SERVFAIL, send);
    }
    this.inflight++;
    let answer: QueryAnswer;
    try {
      answer = await this.recursor.answerQuery(question, { dnssecOk: query.edns?.dnssecOk ?? false, checkingDisabled: query.flags.cd, recursionDesired: query.flags.rd });
    } finally {
      this.inflight--;
    }
    this.counters.sources[answer.source]++;
    if (answer.cacheable && key && this.packetCache && zones === this.localZones) {
      // Stored first, then answered from the stored bytes: one encoding instead of two.
      const response = buildResponse(query, answer, false);
      const bytes = this.packetCache.storeAndAnswer(raw, key, response, answerSizeLimit(key.ednsUdpSize, transport));
      if (bytes) {
        this.countRcode(response.rcode);
        send(bytes);
        return;
      }
    }
    this.sendResponse(query, answer, false, transport, send);
  }

  /** Builds, encodes within the transport's size and sends a response. */
  private sendResponse(
    query: Message,
    body: ResponseBody,
    authoritative: boolean,
    transport: Transport,
    send: (b: Buffer) => void,
  ): void {
    const response = buildResponse(query, body, authoritative);
    const encoded = encodeMessage(response, { maxSize: answerSizeLimit(query.edns?.udpSize ?? null, transport) });
    this.countRcode(response.rcode);
    send(encoded.bytes);
  }

  private sendError(raw: Buffer, rcode: number, send: (b: Buffer) => void, ra = true): void {
    const bytes = encodeErrorResponse(raw, rcode, ra);
    if (!bytes) {
      this.counters.dropped++;
      return;
    }
    this.countRcode(rcode);
    send(bytes);
  }

  private internalError(err: unknown, raw: Buffer, send: (b: Buffer) => void): void {
    this.counters.internalErrors++;
    this.logLimited('internal', 'error', { err: describeError(err), stack: err instanceof Error ? err.stack : undefined }, 'unexpected error answering a DNS query: SERVFAIL');
    try {
      this.sendError(raw, Rcode.SERVFAIL, send);
    } catch (again) {
      this.logLimited('internal-reply', 'error', { err: describeError(again) }, 'could not send SERVFAIL after an unexpected error');
    }
  }

  private countRcode(rcode: number): void {
    const name = rcodeToString(rcode);
    this.counters.rcodes[name] = (this.counters.rcodes[name] ?? 0) + 1;
  }

  /** At most one line per `kind` per LOG_INTERVAL_MS (by the injected clock); the rest are counted. */
  private logLimited(kind: string, level: 'warn' | 'error', fields: Record<string, unknown>, msg: string): void {
    const now = this.clock.nowMs();
    const st = this.logState.get(kind);
    if (st && now - st.lastMs < LOG_INTERVAL_MS) {
      st.suppressed++;
      return;
    }
    const suppressed = st?.suppressed ?? 0;
    this.logState.set(kind, { lastMs: now, suppressed: 0 });
    this.logger[level](suppressed > 0 ? { ...fields, suppressed } : fields, msg);
  }
}
