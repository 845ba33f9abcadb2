// One authenticated replication link: TLS-PSK setup for both ends (the only place that knows the TLS
// options), framing on top of the socket, liveness (ping when idle, close when silent), and an
// ordered receive queue. Used by replicator.ts. It never reads or writes the store and never decides
// what to send; every failure closes the link with a StoreError(STORE_ERR_REPL_*) reason.
import type { Socket } from 'node:net';
import tls from 'node:tls';
import type { Clock } from '../../util/clock.js';
import { StoreError } from '../../util/errors.js';
import type { ScheduledTask, Scheduler } from '../scheduler.js';
import { isNodeId } from '../record-codec.js';
import { DEFAULT_MAX_FRAME_BYTES, encodeFrame, FrameDecoder, type ReplicationMessage } from './frame-codec.js';
import { ReplicationErrorCode } from './replication-error-code.js';

/**
 * TLS 1.2 with pre-shared-key suites (RFC 4279, RFC 5489, RFC 7905) and ephemeral ECDH, so a key
 * leaked later does not decrypt recorded traffic. Node's pskCallback does not support TLS 1.3 PSK.
 * Each end proves it holds the key (the Finished messages are keyed by it), so a wrong key fails the
 * handshake on both sides before any frame is read.
 */
const PSK_CIPHERS = 'ECDHE-PSK-CHACHA20-POLY1305:ECDHE-PSK-AES256-CBC-SHA384';
const TLS_VERSION = 'TLSv1.2';

/** How long a socket closed with an error frame may linger so the frame reaches the peer. */
const ERROR_LINGER_MS = 200;

/**
 * Most messages queued unread before the link is considered abusive and closed. A sender waits for
 * each acknowledgement, so a well-behaved peer has one or two in the queue; 16 frames of at most the
 * frame cap bound the memory one authenticated connection can pin.
 */
const MAX_QUEUED_MESSAGES = 16;

/** tls.Server options for the replication listener; `identityOf` later tells which identity a socket used. */
export function pskServerOptions(psk: Buffer | (() => Buffer), handshakeTimeoutMs: number): tls.TlsOptions {
  const keyOf = typeof psk === 'function' ? psk : () => psk;
  return {
    ciphers: PSK_CIPHERS,
    minVersion: TLS_VERSION,
    maxVersion: TLS_VERSION,
    handshakeTimeout: handshakeTimeoutMs,
    pskIdentityHint: 'mxsentry-replication',
    pskCallback: (socket: tls.TLSSocket, identity: string) => {
      identities.set(socket, identity);
      // Any well-formed identity gets the cluster key: authentication is holding the key, and the
      // HELLO must then carry the same name. A malformed identity gets no key: the handshake fails.
      return isNodeId(identity) ? keyOf() : null;
    },
  };
}

const identities = new WeakMap<object, string>();

/** The TLS-PSK identity a server-side socket presented (also for sockets whose handshake failed). */
export function identityOf(socket: object): string | undefined {
  return identities.get(socket);
}

/** tls.connect options for dialling a peer as `identity`. */
export function pskClientOptions(host: string, port: number, psk: Buffer, identity: string): tls.ConnectionOptions {
  return {
    host,
    port,
    ciphers: PSK_CIPHERS,
    minVersion: TLS_VERSION,
    maxVersion: TLS_VERSION,
    // No certificates: the PSK handshake authenticates the server.
    checkServerIdentity: () => undefined,
    pskCallback: () => ({ psk, identity }),
  };
}

/**
 * Maps a TLS/socket error to a replication error: a bad record MAC or decrypt error during the
 * handshake means the two ends hold different keys.
 */
export function classifySocketError(err: unknown, during: string): StoreError {
  if (err instanceof StoreError) return err;
  const e = err as NodeJS.ErrnoException & { reason?: string };
  const code = typeof e?.code === 'string' ? e.code : '';
  const message = err instanceof Error ? err.message : String(err);
  // NO_SHARED_CIPHER is not among them: a peer always offers the PSK suites, so a client that
  // shares none (a plain TLS client, a scanner) is no peer at all, whatever key it might hold.
  if (/BAD_RECORD_MAC|DECRYPTION_FAILED|DECRYPT_ERROR|PSK|HANDSHAKE_FAILURE/i.test(`${code} ${message}`)) {
    return new StoreError(ReplicationErrorCode.AUTH, `${during}: TLS-PSK authentication failed (the two nodes do not hold the same replication-key)`, { cause: err });
  }
  if (code === 'ETIMEDOUT' || code === 'ERR_TLS_HANDSHAKE_TIMEOUT') {
    return new StoreError(ReplicationErrorCode.TIMEOUT, `${during}: ${code || message}`, { cause: err });
  }
  // The other end answered the TLS hello with something else, or closed before any TLS: not a
  // replication listener (a peer line pointing at the peer's policy or DNS port, say).
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || /before secure TLS connection was established/.test(message)) {
    return new StoreError(ReplicationErrorCode.CONNECTION, `${during}: ${code ? `${code} ` : ''}the other end does not speak replication's TLS: is that address the peer's replication-listen (not its policy or DNS port)?`, { cause: err });
  }
  return new StoreError(ReplicationErrorCode.CONNECTION, `${during}: ${code ? `${code} ` : ''}${message}`.trim(), { cause: err });
}

/** Options of a ReplicationConnection. */
export interface ReplicationConnectionOptions {
  clock: Clock;
  scheduler: Scheduler;
  /** Close the link when nothing arrived for this long; a ping is sent after a third of it idle. */
  timeoutMs: number;
  maxFrameBytes?: number;
  /** Name of the other end, for error messages. */
  peer: string;
}

interface Waiter {
  resolve: (msg: ReplicationMessage) => void;
  reject: (err: StoreError) => void;
}

/**
 * Frames over an established (authenticated) socket. `receive()` yields messages in order (pings
 * are answered and pongs swallowed here); after close it rejects with the close reason.
 */
export class ReplicationConnection {
  private readonly decoder: FrameDecoder;
  private readonly maxFrameBytes: number;
  private readonly queue: ReplicationMessage[] = [];
  private waiter: Waiter | undefined;
  private closeReason: StoreError | undefined;
  private lastRxMs: number;
  private lastTxMs: number;
  private heardWaiters: Array<() => void> = [];
  private watchdog: ScheduledTask | undefined;
  private readonly closedPromise: Promise<StoreError>;
  private resolveClosed!: (reason: StoreError) => void;

  constructor(
    private readonly socket: Socket,
    private readonly opts: ReplicationConnectionOptions,
  ) {
    this.maxFrameBytes = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.decoder = new FrameDecoder(this.maxFrameBytes);
    this.lastRxMs = this.lastTxMs = opts.clock.nowMs();
    this.closedPromise = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.close(classifySocketError(err, `link with ${opts.peer}`)));
    socket.on('close', () => this.close(new StoreError(ReplicationErrorCode.CONNECTION, `link with ${opts.peer} closed by the peer`)));
    this.armWatchdog();
  }

  /** True until close. */
  isOpen(): boolean {
    return this.closeReason === undefined;
  }

  /** Why the link was closed; undefined while it is open. */
  reason(): StoreError | undefined {
    return this.closeReason;
  }

  /** Resolves when the next bytes arrive from the peer (never, once closed: wait on closed() too). */
  heardNext(): Promise<void> {
    return new Promise((resolve) => this.heardWaiters.push(resolve));
  }

  /** Resolves with the reason once the link is closed (never rejects). */
  closed(): Promise<StoreError> {
    return this.closedPromise;
  }

  /** Sends one message; throws the close reason when closed, STORE_ERR_REPL_FRAME_TOO_LARGE for an oversized one. */
  send(msg: ReplicationMessage): void {
    if (this.closeReason) throw this.closeReason;
    const frame = encodeFrame(msg, this.maxFrameBytes);
    this.lastTxMs = this.opts.clock.nowMs();
    this.socket.write(frame);
  }

  /** Sends a frame encoded beforehand (encodePushFrame); throws the close reason when closed. */
  sendFrame(frame: Buffer): void {
    if (this.closeReason) throw this.closeReason;
    this.lastTxMs = this.opts.clock.nowMs();
    this.socket.write(frame);
  }

  /** Resolves once the socket's write buffer has drained (at once when it is not full). */
  async drained(): Promise<void> {
    if (!this.socket.writableNeedDrain || this.closeReason) return;
    await Promise.race([new Promise<void>((resolve) => this.socket.once('drain', () => resolve())), this.closedPromise]);
  }

  /** The next message other than ping/pong; rejects with the close reason once closed. */
  receive(): Promise<ReplicationMessage> {
    const next = this.queue.shift();
    if (next) return Promise.resolve(next);
    if (this.closeReason) return Promise.reject(this.closeReason);
    if (this.waiter) return Promise.reject(new StoreError(ReplicationErrorCode.PROTOCOL, 'receive() called twice concurrently'));
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  /**
   * Closes the link (idempotent): an `error` frame is sent first when `tellPeer`, then the socket is
   * destroyed. A pending receive() rejects with the reason.
   */
  close(reason: StoreError, tellPeer = false): void {
    if (this.closeReason) return;
    // The message is cut to 400 characters, so the error frame is always far below any frame cap.
    if (tellPeer && !this.socket.destroyed) this.socket.end(encodeFrame({ type: 'error', code: reason.code, message: reason.message.slice(0, 400) }));
    this.closeReason = reason;
    this.watchdog?.cancel();
    this.watchdog = undefined;
    if (tellPeer) {
      // Give the error frame a moment to leave, but never keep a dead socket around.
      this.opts.scheduler.schedule(ERROR_LINGER_MS, () => this.socket.destroy());
    } else {
      this.socket.destroy();
    }
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.reject(reason);
    this.resolveClosed(reason);
  }

  private onData(chunk: Buffer): void {
    if (this.closeReason) return;
    this.lastRxMs = this.opts.clock.nowMs();
    const heard = this.heardWaiters;
    this.heardWaiters = [];
    for (const w of heard) w();
    let messages: ReplicationMessage[];
    try {
      messages = this.decoder.push(chunk);
    } catch (err) {
      this.close(err instanceof StoreError ? err : new StoreError(ReplicationErrorCode.PROTOCOL, String(err)), true);
      return;
    }
    for (const msg of messages) {
      if (this.closeReason) return;
      if (msg.type === 'ping') {
        this.send({ type: 'pong' });
        continue;
      }
      if (msg.type === 'pong') continue;
      const waiter = this.waiter;
      if (waiter) {
        this.waiter = undefined;
        waiter.resolve(msg);
        continue;
      }
      if (this.queue.length >= MAX_QUEUED_MESSAGES) {
        this.close(new StoreError(ReplicationErrorCode.PROTOCOL, `${this.opts.peer} sent more than ${MAX_QUEUED_MESSAGES} unanswered messages`), true);
        return;
      }
      this.queue.push(msg);
    }
  }

  private armWatchdog(): void {
    // Checked every tenth of the timeout, so a silent peer is noticed within 1.1 timeouts (a check
    // every third let a 15 s timeout take 20 s); pinged after a third of it without sending.
    const tickMs = Math.max(10, Math.floor(this.opts.timeoutMs / 10));
    const pingAfterMs = Math.max(10, Math.floor(this.opts.timeoutMs / 3));
    this.watchdog = this.opts.scheduler.schedule(tickMs, () => {
      if (this.closeReason) return;
      const now = this.opts.clock.nowMs();
      if (now - this.lastRxMs >= this.opts.timeoutMs) {
        this.close(new StoreError(ReplicationErrorCode.TIMEOUT, `nothing heard from ${this.opts.peer} for ${now - this.lastRxMs} ms`));
        return;
      }
      if (now - this.lastTxMs >= pingAfterMs) {
        try {
          this.send({ type: 'ping' });
        } catch (err) {
          this.close(err instanceof StoreError ? err : new StoreError(ReplicationErrorCode.CONNECTION, String(err)));
          return;
        }
      }
      this.armWatchdog();
    });
  }
}
