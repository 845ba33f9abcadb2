// The DNS server's TCP client connections (RFC 7766): 2-byte length framing, several queries in
// flight per connection up to a pipeline bound, read back-pressure while replies are unsent, the
// idle timeout, half-close, and the connection cap with eviction of the connection idle longest.
// Owned by dns-server.ts, which hands each frame to its query path; it never decodes DNS itself.
import type net from 'node:net';
import type { Clock } from '../../util/clock.js';
import { describeError } from '../../util/errors.js';
import type { Logger } from '../../util/logger.js';
import type { DnsServerLimits, DnsServerStats } from './dns-server.js';

/** A connection whose unsent replies exceed this is not read until they drain. */
const TCP_WRITE_HIGH_WATER = 256 * 1024;
const EMPTY = Buffer.alloc(0);
/** Bytes of a DNS message header (RFC 1035 s4.1.1): a shorter TCP message cannot be answered. */
const DNS_HEADER_BYTES = 12;

interface TcpConn {
  socket: net.Socket;
  remote: string;
  /** Received bytes not yet handed on: complete frames, or the start of one shorter than its length prefix. */
  buf: Buffer;
  /**
   * A frame longer than what has arrived of it is assembled here (its full size, allocated once)
   * instead of `buf` being copied again at every read: a client trickling a byte at a time would
   * otherwise cost the square of the frame size.
   */
  asm: Buffer | null;
  asmFill: number;
  inflight: number;
  lastActiveMs: number;
  readEnded: boolean;
  paused: boolean;
  closed: boolean;
}

/** What the connections need from their server. */
export interface TcpConnectionsDeps {
  limits: Pick<DnsServerLimits, 'maxTcpConnections' | 'maxTcpPipeline' | 'tcpIdleTimeoutMs'>;
  clock: Clock;
  logger: Logger;
  /** The server's counters: tcp.* and queries.tcp are kept here. */
  counters: DnsServerStats;
  /** True once the server is closing: no new connections or frames. */
  isClosing(): boolean;
  /** The server's rate-limited log. */
  logLimited(kind: string, level: 'warn' | 'error', fields: Record<string, unknown>, msg: string): void;
  /** Answers one frame; the promise of the slow path, or undefined when answered at once. Never throws. */
  query(frame: Buffer, client: string, send: (reply: Buffer) => void): Promise<void> | undefined;
  /** Registers a query's promise with the server's drain on close. */
  track(p: Promise<void>): void;
}

/**
 * Every open TCP connection of one server. Cap policy: a new connection over the cap closes the
 * connection that has been idle longest (no query in flight); when every connection is busy, the
 * new one is refused (closed).
 */
export class TcpConnections {
  private readonly conns = new Set<TcpConn>();

  constructor(private readonly d: TcpConnectionsDeps) {}

  /** Open connections, ending ones included. */
  get size(): number {
    return this.conns.size;
  }

  /** Takes a new connection from a listener. */
  accept(socket: net.Socket): void {
    const { d } = this;
    const remote = socket.remoteAddress;
    if (d.isClosing() || remote === undefined) {
      socket.destroy();
      return;
    }
    if (this.conns.size >= d.limits.maxTcpConnections && !this.evictIdleConnection()) {
      d.counters.tcp.rejected++;
      d.logLimited('tcp-cap', 'warn', { client: remote, max: d.limits.maxTcpConnections }, 'DNS TCP connection refused: every connection is busy');
      socket.destroy();
      return;
    }
    d.counters.tcp.accepted++;
    const conn: TcpConn = { socket, remote, buf: EMPTY, asm: null, asmFill: 0, inflight: 0, lastActiveMs: d.clock.nowMs(), readEnded: false, paused: false, closed: false };
    this.conns.add(conn);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(conn, chunk));
    socket.on('end', () => {
      // The client half-closed: answer what is in flight, then close (RFC 7766 s6.2.4).
      conn.readEnded = true;
      if (conn.inflight === 0) this.endConn(conn);
    });
    socket.on('drain', () => this.maybeResume(conn));
    socket.on('error', (err) => {
      d.logger.debug({ client: remote, err: describeError(err) }, 'DNS TCP connection error');
    });
    socket.on('close', () => {
      conn.closed = true;
      this.conns.delete(conn);
    });
  }

  /** Closes connections idle (no query in flight) for tcpIdleTimeoutMs by the clock; returns how many. */
  sweepIdle(): number {
    const now = this.d.clock.nowMs();
    let n = 0;
    for (const c of this.conns) {
      if (!c.closed && c.inflight === 0 && now - c.lastActiveMs >= this.d.limits.tcpIdleTimeoutMs) {
        this.d.counters.tcp.idleClosed++;
        this.endConn(c);
        n++;
      }
    }
    return n;
  }

  /** On close: ends every connection with no query in flight (the others end when their last query is answered). */
  endIdle(): void {
    for (const c of this.conns) if (c.inflight === 0) this.endConn(c);
  }

  /** Gives connections already ending (last replies written) a moment to flush before they are cut. */
  async waitFlushed(timeoutMs: number): Promise<void> {
    const ending = [...this.conns].filter((c) => c.closed && !c.socket.destroyed);
    if (ending.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(ending.map((c) => new Promise<void>((resolve) => c.socket.once('close', () => resolve())))),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      }),
    ]);
    if (timer) clearTimeout(timer);
  }

  /** Cuts every connection at once. */
  destroyAll(): void {
    for (const c of [...this.conns]) this.destroyConn(c);
  }

  /** Closes the connection idle longest; false when none is idle. */
  private evictIdleConnection(): boolean {
    let victim: TcpConn | null = null;
    for (const c of this.conns) {
      if (c.closed) {
        // Already closing (flushing its last replies): the cheapest room to make.
        this.destroyConn(c);
        return true;
      }
      if (c.inflight === 0 && (victim === null || c.lastActiveMs < victim.lastActiveMs)) victim = c;
    }
    if (!victim) return false;
    this.d.counters.tcp.evicted++;
    this.destroyConn(victim);
    return true;
  }

  private onData(conn: TcpConn, chunk: Buffer): void {
    if (conn.closed) return;
    // Activity is a frame begun (or a query answered), not every byte: a client trickling one byte
    // a second would otherwise never be idle, and hold its slot and its assembly buffer for ever.
    if (conn.asm === null && conn.buf.length === 0) conn.lastActiveMs = this.d.clock.nowMs();
    if (conn.asm) {
      const n = Math.min(chunk.length, conn.asm.length - conn.asmFill);
      chunk.copy(conn.asm, conn.asmFill, 0, n);
      conn.asmFill += n;
      if (conn.asmFill < conn.asm.length) return;
      conn.buf = n === chunk.length ? conn.asm : Buffer.concat([conn.asm, chunk.subarray(n)]);
      conn.asm = null;
    } else {
      conn.buf = conn.buf.length === 0 ? chunk : Buffer.concat([conn.buf, chunk]);
    }
    this.drainFrames(conn);
  }

  /** Hands every complete 2-byte-length-prefixed frame to the query path, within the pipeline bound. */
  private drainFrames(conn: TcpConn): void {
    const { d } = this;
    while (!conn.closed && !d.isClosing() && conn.buf.length >= 2) {
      if (conn.inflight >= d.limits.maxTcpPipeline || conn.socket.writableLength > TCP_WRITE_HIGH_WATER) {
        this.pauseConn(conn);
        return;
      }
      const len = conn.buf.readUInt16BE(0);
      if (len < DNS_HEADER_BYTES) {
        // Not even a header to answer FORMERR to: the stream is garbage or out of step, so close it
        // at once (counted as dropped, like an unreadable UDP packet) rather than leave the client
        // waiting for the idle timeout.
        d.counters.queries.tcp++;
        d.counters.dropped++;
        conn.socket.destroy();
        return;
      }
      if (conn.buf.length < 2 + len) {
        conn.asm = Buffer.allocUnsafe(2 + len);
        conn.asmFill = conn.buf.copy(conn.asm);
        conn.buf = EMPTY;
        break;
      }
      // A copy: the frame must not pin the (possibly large) receive buffer it arrived in.
      const frame = Buffer.from(conn.buf.subarray(2, 2 + len));
      conn.buf = conn.buf.length === 2 + len ? EMPTY : conn.buf.subarray(2 + len);
      d.counters.queries.tcp++;
      conn.lastActiveMs = d.clock.nowMs();
      const send = (bytes: Buffer): void => this.writeFrame(conn, bytes);
      const p = d.query(frame, conn.remote, send);
      if (p) {
        conn.inflight++;
        d.track(
          p.finally(() => {
            conn.inflight--;
            conn.lastActiveMs = d.clock.nowMs();
            if (conn.closed) return;
            if (conn.inflight === 0 && (conn.readEnded || d.isClosing())) this.endConn(conn);
            else this.maybeResume(conn);
          }),
        );
      }
    }
    this.maybeResume(conn);
  }

  private pauseConn(conn: TcpConn): void {
    if (!conn.paused) {
      conn.paused = true;
      conn.socket.pause();
    }
  }

  private maybeResume(conn: TcpConn): void {
    if (!conn.paused || conn.closed) return;
    if (conn.inflight >= this.d.limits.maxTcpPipeline || conn.socket.writableLength > TCP_WRITE_HIGH_WATER) return;
    conn.paused = false;
    conn.socket.resume();
    // Frames that arrived before the pause are still buffered.
    if (conn.buf.length >= 2) this.drainFrames(conn);
  }

  private writeFrame(conn: TcpConn, bytes: Buffer): void {
    if (conn.closed || conn.socket.destroyed || !conn.socket.writable) return;
    const out = Buffer.allocUnsafe(bytes.length + 2);
    out.writeUInt16BE(bytes.length, 0);
    bytes.copy(out, 2);
    conn.socket.write(out);
    conn.lastActiveMs = this.d.clock.nowMs();
  }

  /** Flushes the replies written so far, then closes; stays in the set until the socket is gone. */
  private endConn(conn: TcpConn): void {
    if (conn.closed) return;
    conn.closed = true;
    conn.socket.end(() => conn.socket.destroy());
    // A peer that never reads would keep the flush waiting forever: bound it by the idle timeout.
    conn.socket.setTimeout(this.d.limits.tcpIdleTimeoutMs, () => conn.socket.destroy());
  }

  private destroyConn(conn: TcpConn): void {
    conn.closed = true;
    this.conns.delete(conn);
    conn.socket.destroy();
  }
}
