// TCP server for Postfix's check_policy_service. Policy flow (DESIGN.md s1): socket -> parse
// attribute lines -> checks in order -> first verdict -> `action=...` -> greylist store (LMDB
// transaction) -> replication log -> peers. This file owns the socket and protocol ends of it; the
// injected decide() owns everything between. Called by main.ts; it must not know about checks, the
// store or DNS, and a misbehaving client must never affect the other connections.
import { createServer, type Server, type Socket } from 'node:net';
import { systemClock, type Clock } from '../util/clock.js';
import { PolicyError, describeError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { RateLimitedLog } from '../util/rate-limited-log.js';
import { PolicyRequestParser, formatReply, malformedReason, type PolicyParserLimits } from './protocol.js';
import type { Decision, PolicyRequest } from './types.js';
import { clipLogValue } from '../util/log-value.js';

/** Decides one request. Should not throw; if it does, the connection is closed without a reply. */
export type DecideFn = (request: PolicyRequest) => Promise<Decision>;

/** "ADDR:PORT" ("127.0.0.1:10023", "[::1]:10023"), an explicit host/port, or an inherited fd (systemd). */
export type ListenTarget = string | { host: string; port: number } | { fd: number };

export interface PolicyServerOptions {
  /** Open connections across all listeners; more are closed at once with a log line. Default 1000 (policy-max-connections). */
  maxConnections?: number;
  /** A connection with no request for this long, or whose client reads no reply for this long, is closed. Default 600000 (600 s). */
  idleTimeoutMs?: number;
  /** Default deadline of close() for in-flight decisions. Default 10000. */
  drainTimeoutMs?: number;
  /** Parsed but unanswered requests per connection before reading pauses. Default 32. */
  maxPendingRequests?: number;
  /**
   * A request begun but not finished this long after its first byte closes the connection. Postfix
   * writes each request whole; a client trickling bytes would otherwise hold a connection slot for
   * the whole idle timeout. Default 10000.
   */
  requestTimeoutMs?: number;
  /** Per-connection parser bounds (line, request, attributes). */
  limits?: PolicyParserLimits;
  /** Time source of the log budget for malformed requests. Default the system clock. */
  clock?: Clock;
}

/**
 * Warnings about malformed requests per second, across all connections; the rest are counted into
 * the next one. A client can send a malformed request per byte (blank lines), faster than any log
 * can be written.
 */
const MALFORMED_LOG_PER_SEC = 20;

/**
 * Requests one connection answers before it lets the event loop turn. Answers that need no I/O
 * (malformed requests, cached decisions) would otherwise run back to back as one chain of promise
 * jobs: one read of blank lines is 65536 requests, seconds during which DNS is not served.
 */
const REQUESTS_PER_TURN = 32;

/**
 * The check phase of the event loop's current turn, shared by every connection. A reply to a
 * client that has nothing else queued (a Postfix smtpd: one request in flight) is written there,
 * after the turn has read every socket that was ready, so the replies of one turn go out together:
 * the client is woken once for a burst, not once per reply. With 16 sequential clients that took
 * a sixth off the main thread's CPU per decision (two builds loaded side by side, 5 rounds).
 */
class TurnEnd {
  private pending: Promise<void> | undefined;

  wait(): Promise<void> {
    this.pending ??= new Promise<void>((resolve) => {
      setImmediate(() => {
        this.pending = undefined;
        resolve();
      });
    });
    return this.pending;
  }
}

/**
 * Received bytes are parsed this many at a time, and only while the queue has room, so a read of
 * blank lines (65536 requests in 64 kB) queues about a thousand requests, not all of them.
 * Postfix's requests (about 700 bytes) still take one slice each.
 */
const PARSE_SLICE_BYTES = 1024;
const EMPTY = Buffer.alloc(0);

type ServerOpts = Required<Omit<PolicyServerOptions, 'limits' | 'clock'>> & { limits: PolicyParserLimits };

/** Counters for metrics; plain numbers. */
export interface PolicyServerStats {
  connectionsOpen: number;
  connectionsAccepted: number;
  /** Refused because maxConnections was reached or the server was closing. */
  connectionsRefused: number;
  requests: number;
  /** Requests answered DUNNO because they were malformed. */
  malformed: number;
  /** Connections closed for over-long lines/requests or garbage. */
  protocolErrors: number;
  /** decide() threw or produced an unusable action; connection closed without reply. */
  internalErrors: number;
  /** Connections closed idle: by the idle timeout, or the longest idle one when the cap was reached. */
  idleTimeouts: number;
  /** Connections closed because a request was not finished within requestTimeoutMs. */
  requestTimeouts: number;
}

/** Parses "ADDR:PORT" / "[v6]:PORT" / "PORT" (loopback). Throws PolicyError POLICY_ERR_BAD_LISTEN. */
export function parseListenTarget(text: string): { host: string; port: number } {
  const t = text.trim();
  let host: string;
  let portText: string;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(t);
  if (v6) {
    host = v6[1] ?? '';
    portText = v6[2] ?? '';
  } else if (/^\d+$/.test(t)) {
    host = '127.0.0.1';
    portText = t;
  } else {
    const colon = t.lastIndexOf(':');
    if (colon <= 0 || t.indexOf(':') !== colon) {
      throw new PolicyError('POLICY_ERR_BAD_LISTEN', `bad listen address "${text}" (expected ADDR:PORT or [IPv6]:PORT)`);
    }
    host = t.slice(0, colon);
    portText = t.slice(colon + 1);
  }
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) {
    throw new PolicyError('POLICY_ERR_BAD_LISTEN', `bad port in listen address "${text}"`);
  }
  return { host, port };
}

/**
 * The policy service listener(s). Connections are persistent; each processes its requests strictly
 * in order (pipelined requests are queued and answered in order), never closes after a reply, and
 * is closed on protocol abuse, idle timeout, a throwing decide(), or shutdown.
 */
export class PolicyServer {
  private readonly servers: Server[] = [];
  private readonly connections = new Set<PolicyConnection>();
  /** Connections closed to make room, until their 'close' arrives. */
  private readonly evicting = new Set<PolicyConnection>();
  private readonly opts: ServerOpts;
  private readonly malformedLog: RateLimitedLog;
  private readonly turnEnd = new TurnEnd();
  private closing: Promise<void> | undefined;
  private nextId = 1;
  private readonly counters: Omit<PolicyServerStats, 'connectionsOpen'> = {
    connectionsAccepted: 0,
    connectionsRefused: 0,
    requests: 0,
    malformed: 0,
    protocolErrors: 0,
    internalErrors: 0,
    idleTimeouts: 0,
    requestTimeouts: 0,
  };

  constructor(
    private readonly decide: DecideFn,
    private readonly logger: Logger,
    options: PolicyServerOptions = {},
  ) {
    this.opts = {
      maxConnections: options.maxConnections ?? 1000,
      idleTimeoutMs: options.idleTimeoutMs ?? 600_000,
      drainTimeoutMs: options.drainTimeoutMs ?? 10_000,
      maxPendingRequests: options.maxPendingRequests ?? 32,
      requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
      limits: options.limits ?? {},
    };
    this.malformedLog = new RateLimitedLog(logger, options.clock ?? systemClock, MALFORMED_LOG_PER_SEC);
    for (const key of ['maxConnections', 'idleTimeoutMs', 'drainTimeoutMs', 'maxPendingRequests', 'requestTimeoutMs'] as const) {
      const v = this.opts[key];
      if (!Number.isInteger(v) || v < 1) {
        throw new PolicyError('POLICY_ERR_BAD_OPTION', `policy server option ${key} must be a positive integer, got ${v}`);
      }
    }
    // Fail at construction, not on the first connection, when the parser limits are invalid.
    new PolicyRequestParser(this.opts.limits);
  }

  /**
   * Starts listening on every target; resolves with the bound addresses ("127.0.0.1:10023",
   * "[::1]:10023", "fd:3"). On failure the listeners opened by this call are closed and a
   * PolicyError POLICY_ERR_LISTEN is thrown.
   */
  async listen(targets: readonly ListenTarget[]): Promise<string[]> {
    if (this.closing) throw new PolicyError('POLICY_ERR_CLOSED', 'policy server is closed');
    const opened: Server[] = [];
    const bound: string[] = [];
    try {
      for (const target of targets) {
        const spec = typeof target === 'string' ? parseListenTarget(target) : target;
        const server = createServer({ allowHalfOpen: true, pauseOnConnect: false }, (socket) => this.accept(socket));
        await new Promise<void>((resolve, reject) => {
          const onError = (err: Error): void => reject(err);
          server.once('error', onError);
          const done = (): void => {
            server.off('error', onError);
            // From here on: a failed listen is reported once, by the start-up error below.
            server.on('error', (err) => this.logger.error({ err: describeError(err) }, 'policy listener error'));
            resolve();
          };
          if ('fd' in spec) server.listen({ fd: spec.fd }, done);
          else server.listen({ host: spec.host, port: spec.port }, done);
        }).catch((err: unknown) => {
          throw listenError(err, describeTarget(spec));
        });
        opened.push(server);
        // An inherited fd (socket activation) is named by the address it is bound to, so the log
        // says where Postfix reaches the service, not only which fd it came in.
        const addr = server.address();
        const boundAt = addr === null || typeof addr === 'string'
          ? null
          : addr.family === 'IPv6' ? `[${addr.address}]:${addr.port}` : `${addr.address}:${addr.port}`;
        const text = boundAt === null ? describeTarget(spec) : 'fd' in spec ? `${boundAt} (${describeTarget(spec)})` : boundAt;
        bound.push(text);
        this.logger.info({ listen: text }, 'policy service listening');
      }
    } catch (err) {
      await Promise.all(opened.map((s) => closeServer(s)));
      throw err;
    }
    this.servers.push(...opened);
    return bound;
  }

  /** Current counters. */
  stats(): PolicyServerStats {
    return { connectionsOpen: this.connections.size, ...this.counters };
  }

  /**
   * Graceful shutdown: stops accepting, closes idle connections, lets in-flight decisions finish
   * and answer (queued pipelined requests are dropped), then closes those connections. Whatever is
   * still open after `deadlineMs` (default drainTimeoutMs) is destroyed. Idempotent.
   */
  close(deadlineMs = this.opts.drainTimeoutMs): Promise<void> {
    this.closing ??= this.drain(deadlineMs);
    return this.closing;
  }

  private async drain(deadlineMs: number): Promise<void> {
    const listeners = Promise.all(this.servers.map((s) => closeServer(s)));
    const inFlight = [...this.connections].filter((c) => c.isBusy()).length;
    if (inFlight > 0) this.logger.info({ inFlight, deadlineMs }, 'policy service draining');
    for (const conn of this.connections) conn.shutdown();
    if (this.connections.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      const allClosed = Promise.all([...this.connections].map((c) => c.closed));
      const expired = new Promise<'expired'>((resolve) => {
        timer = setTimeout(() => resolve('expired'), deadlineMs);
      });
      const outcome = await Promise.race([allClosed, expired]);
      clearTimeout(timer);
      if (outcome === 'expired') {
        this.logger.warn({ open: this.connections.size, deadlineMs }, 'policy drain deadline reached; closing remaining connections');
        for (const conn of this.connections) conn.destroy();
        await Promise.all([...this.connections].map((c) => c.closed));
      }
    }
    await listeners;
    this.logger.info('policy service stopped');
  }

  private accept(socket: Socket): void {
    const peer = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    if (!this.closing && this.connections.size >= this.opts.maxConnections) this.evictLongestIdle(peer);
    if (this.closing || this.connections.size - this.evicting.size >= this.opts.maxConnections) {
      this.counters.connectionsRefused++;
      // Log the first refusal and then every 100th, so a connection flood cannot flood the log.
      if (this.counters.connectionsRefused % 100 === 1) {
        this.logger.warn(
          { peer, open: this.connections.size, maxConnections: this.opts.maxConnections, refusedTotal: this.counters.connectionsRefused, closing: this.closing !== undefined },
          this.closing ? 'policy connection refused: shutting down' : 'policy connection refused: too many connections',
        );
      }
      socket.on('error', (err) => this.logger.debug({ peer, err: describeError(err) }, 'refused policy connection error'));
      socket.destroy();
      return;
    }
    this.counters.connectionsAccepted++;
    const conn = new PolicyConnection(socket, this.nextId++, peer, {
      decide: this.decide,
      logger: this.logger,
      malformedLog: this.malformedLog,
      turnEnd: this.turnEnd,
      opts: this.opts,
      counters: this.counters,
    });
    this.connections.add(conn);
    void conn.closed.then(() => {
      this.connections.delete(conn);
      this.evicting.delete(conn);
    });
  }

  /**
   * At the cap, the connection idle the longest (no request begun or in flight) is closed to make
   * room, as the DNS server's TCP side does: otherwise connections that never send a request hold
   * every slot for the whole idle timeout and lock Postfix out. Postfix reconnects (and retries the
   * request once) when it finds a cached policy connection closed.
   */
  private evictLongestIdle(peer: string): void {
    let oldest: PolicyConnection | undefined;
    for (const c of this.connections) {
      if (this.evicting.has(c) || !c.isIdle()) continue;
      if (!oldest || c.lastActive < oldest.lastActive) oldest = c;
    }
    if (!oldest) return;
    this.evicting.add(oldest);
    this.counters.idleTimeouts++;
    this.logger.info({ peer, evicted: oldest.peerName, maxConnections: this.opts.maxConnections }, 'policy-max-connections reached: closed the connection idle the longest');
    oldest.destroy();
  }
}

interface ConnectionDeps {
  decide: DecideFn;
  logger: Logger;
  malformedLog: RateLimitedLog;
  turnEnd: TurnEnd;
  opts: ServerOpts;
  counters: Omit<PolicyServerStats, 'connectionsOpen'>;
}

/** Orders connections by their last activity (a counter, not a clock: only the order matters). */
let activityTick = 0;

/** One client connection: parser, a FIFO of parsed requests, and one decision at a time. */
class PolicyConnection {
  readonly closed: Promise<void>;
  private readonly parser: PolicyRequestParser;
  private readonly queue: PolicyRequest[] = [];
  /** Bytes received and not yet parsed; reading from the socket stops while there are any. */
  private unparsed: Buffer = EMPTY;
  private busy = false;
  /** Set while a reply waits for the client to read (write buffer full). */
  private awaitingDrain = false;
  private paused = false;
  private readEnded = false;
  private stopping = false;
  private isClosed = false;
  /** Runs while a request is begun but not finished (requestTimeoutMs). */
  private requestTimer: NodeJS.Timeout | undefined;
  private readonly log: Logger;
  /** activityTick at the last bytes received (or at accept): the smallest is idle the longest. */
  lastActive = ++activityTick;

  constructor(
    private readonly socket: Socket,
    private readonly id: number,
    private readonly peer: string,
    private readonly deps: ConnectionDeps,
  ) {
    this.log = deps.logger.child({ conn: id, peer });
    this.parser = new PolicyRequestParser(deps.opts.limits);
    this.closed = new Promise((resolve) => {
      socket.once('close', () => {
        this.isClosed = true;
        clearTimeout(this.requestTimer);
        resolve();
      });
    });
    socket.setNoDelay(true);
    socket.setTimeout(deps.opts.idleTimeoutMs);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('timeout', () => this.onIdle());
    socket.on('error', (err) => this.log.debug({ err: describeError(err) }, 'policy connection error'));
  }

  isBusy(): boolean {
    return this.busy;
  }

  /** No request begun, queued or in flight, and nothing unread or unsent. */
  isIdle(): boolean {
    return !this.busy && !this.stopping && !this.awaitingDrain && this.queue.length === 0 && this.unparsed.length === 0 && !this.parser.hasPartialRequest();
  }

  get peerName(): string {
    return this.peer;
  }

  /** Close once the in-flight decision (if any) has been answered. */
  shutdown(): void {
    this.stopping = true;
    this.queue.length = 0;
    if (!this.busy) this.finish();
  }

  destroy(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    if (this.stopping) return;
    this.lastActive = ++activityTick;
    this.unparsed = this.unparsed.length === 0 ? chunk : Buffer.concat([this.unparsed, chunk]);
    this.parseSome();
    if (this.queue.length > 0) void this.pump();
  }

  /**
   * Parses received bytes a slice at a time while the queue holds fewer than maxPendingRequests;
   * the socket is read again only once every byte is parsed and the queue has room.
   */
  private parseSome(): void {
    const maxPending = this.deps.opts.maxPendingRequests;
    let finishedOne = false;
    while (this.unparsed.length > 0 && this.queue.length < maxPending) {
      const n = Math.min(this.unparsed.length, PARSE_SLICE_BYTES);
      const slice = this.unparsed.subarray(0, n);
      this.unparsed = n === this.unparsed.length ? EMPTY : this.unparsed.subarray(n);
      let requests: PolicyRequest[];
      try {
        requests = this.parser.push(slice);
      } catch (err) {
        this.deps.counters.protocolErrors++;
        this.log.warn({ err: describeError(err), queued: this.queue.length, busy: this.busy }, 'policy protocol violation; closing connection');
        this.unparsed = EMPTY;
        this.socket.destroy();
        return;
      }
      if (requests.length > 0) {
        finishedOne = true;
        for (const r of requests) this.queue.push(r);
      }
    }
    this.watchPartialRequest(finishedOne);
    const hold = this.unparsed.length > 0 || this.queue.length >= maxPending;
    if (hold !== this.paused) {
      this.paused = hold;
      if (hold) this.socket.pause();
      else this.socket.resume();
    }
  }

  /**
   * Arms the request deadline when a request has begun, clears it when none is pending; a request
   * finished in this chunk restarts it for the one begun after it.
   */
  private watchPartialRequest(finishedOne: boolean): void {
    if (finishedOne || !this.parser.hasPartialRequest()) {
      clearTimeout(this.requestTimer);
      this.requestTimer = undefined;
      if (!this.parser.hasPartialRequest()) return;
    }
    if (this.requestTimer) return;
    const timeoutMs = this.deps.opts.requestTimeoutMs;
    this.requestTimer = setTimeout(() => {
      this.requestTimer = undefined;
      if (this.isClosed || !this.parser.hasPartialRequest()) return;
      this.deps.counters.requestTimeouts++;
      this.log.warn({ requestTimeoutMs: timeoutMs }, 'policy request not finished in time; closing connection');
      this.socket.destroy();
    }, timeoutMs);
    this.requestTimer.unref();
  }

  private onEnd(): void {
    this.readEnded = true;
    if (this.parser.hasPartialRequest()) this.log.debug('policy client closed with an unfinished request');
    if (!this.busy && this.queue.length === 0 && this.unparsed.length === 0) this.finish();
  }

  private onIdle(): void {
    if (this.awaitingDrain) {
      // No byte written for the whole timeout: the client does not read. Its slot must not be held for ever.
      this.deps.counters.idleTimeouts++;
      this.log.warn({ idleTimeoutMs: this.deps.opts.idleTimeoutMs, queued: this.queue.length }, 'policy client does not read its replies; closing');
      this.socket.destroy();
      return;
    }
    if (this.busy || this.queue.length > 0) return;
    this.deps.counters.idleTimeouts++;
    this.log.info({ idleTimeoutMs: this.deps.opts.idleTimeoutMs }, 'policy connection idle; closing');
    this.socket.destroy();
  }

  /** Answers queued requests one at a time, in arrival order. */
  private async pump(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    let sinceTurn = 0;
    try {
      while (this.queue.length > 0 && !this.isClosed && !this.socket.destroyed && !this.stopping) {
        const request = this.queue.shift() as PolicyRequest;
        if (this.paused && this.queue.length < Math.ceil(this.deps.opts.maxPendingRequests / 2)) this.parseSome();
        const reply = await this.answer(request);
        // A client with more requests queued is awake and sending: its replies go at once.
        if (this.queue.length === 0) await this.deps.turnEnd.wait();
        if (this.isClosed || this.socket.destroyed) return;
        if (reply === null) {
          this.socket.destroy();
          return;
        }
        if (!this.socket.write(reply)) {
          await this.waitDrain();
          sinceTurn = 0;
        } else if (++sinceTurn >= REQUESTS_PER_TURN) {
          sinceTurn = 0;
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
      }
    } finally {
      this.busy = false;
    }
    if (this.stopping || (this.readEnded && this.queue.length === 0)) this.finish();
  }

  /** The reply text, or null for "close without a reply". */
  private async answer(request: PolicyRequest): Promise<string | null> {
    this.deps.counters.requests++;
    const problem = malformedReason(request);
    if (problem !== undefined) {
      this.deps.counters.malformed++;
      this.deps.malformedLog.log(
        'warn',
        { conn: this.id, peer: this.peer, problem, state: clipLogValue(request.protocol_state), client: clipLogValue(request.client_address), queueId: clipLogValue(request.queue_id) },
        'malformed policy request; answering DUNNO',
      );
      return formatReply('DUNNO');
    }
    try {
      const decision = await this.deps.decide(request);
      return formatReply(decision.action);
    } catch (err) {
      this.deps.counters.internalErrors++;
      this.log.error({ err: describeError(err), client: clipLogValue(request.client_address), queueId: clipLogValue(request.queue_id) }, 'policy decision failed; closing connection without reply');
      return null;
    }
  }

  private waitDrain(): Promise<void> {
    this.awaitingDrain = true;
    return new Promise((resolve) => {
      const done = (): void => {
        this.awaitingDrain = false;
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  /** Half-close after pending output is flushed, then release the socket. */
  private finish(): void {
    if (this.isClosed || this.socket.destroyed || this.socket.writableEnded) return;
    this.socket.end(() => this.socket.destroy());
  }
}

/**
 * The start-up error for a listener that could not be opened. A busy port is most often the
 * policy daemon mxsentry replaces (postgrey listens on 127.0.0.1:10023, mxsentry's default): say so.
 */
export function listenError(err: unknown, what: string): PolicyError {
  if ((err as NodeJS.ErrnoException | null)?.code === 'EADDRINUSE') {
    const port = /:(\d+)$/.exec(what)?.[1] ?? '10023';
    return new PolicyError(
      'POLICY_ERR_LISTEN',
      `cannot listen on ${what}: the address is in use. Another policy service holds it (postgrey listens on ` +
        `port 10023 by default; see \`ss -ltnp 'sport = :${port}'\`); stop it (systemctl disable --now postgrey) ` +
        'or choose another --policy-listen address',
      { cause: err },
    );
  }
  return new PolicyError('POLICY_ERR_LISTEN', `cannot listen on ${what}: ${describeError(err)}`, { cause: err });
}

function describeTarget(spec: { host: string; port: number } | { fd: number }): string {
  if ('fd' in spec) return `fd:${spec.fd}`;
  return spec.host.includes(':') ? `[${spec.host}]:${spec.port}` : `${spec.host}:${spec.port}`;
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    server.close(() => resolve());
  });
}
