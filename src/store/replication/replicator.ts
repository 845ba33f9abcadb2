// Greylist replication between MX nodes (DESIGN.md s4, issue 4): no primary, every node dials each
// configured peer and pushes its own changes (from its log) over that link from the peer's persisted cursor;
// the peer merges each batch of records (applyRemoteBatch) and acknowledges. A periodic per-bucket digest comparison
// repairs whatever the log no longer holds. Started by main.ts; `status()` feeds the CLI and metrics.
// It is never on the SMTP request path and never decides greylisting; it reaches LMDB only via the store.
// Link life cycle (one per configured peer):  dial (TLS-PSK) -> HELLO both ways -> [push batch ->
// ack -> persist cursor]* with a digest round after the first catch-up and every digest interval ->
// idle: poll the log -> on any failure close, record the error, redial after a capped backoff.
import { randomBytes } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import tls from 'node:tls';
import type { Clock } from '../../util/clock.js';
import { describeError, StoreError } from '../../util/errors.js';
import type { Logger } from '../../util/logger.js';
import { RateLimitedLog } from '../../util/rate-limited-log.js';
import { isExpiredRecord, type ClientRecord, type TripletRecord } from '../greylist-types.js';
import type { LmdbGreylistStore, RemoteRecord } from '../lmdb-greylist-store.js';
import type { RecordKind, ReplogEntry } from '../record-codec.js';
import { TimerScheduler, type ScheduledTask, type Scheduler } from '../scheduler.js';
import { computeDigest, DEFAULT_DIGEST_BUCKETS, diffDigests, type BucketDigest, type DigestWindow } from './bucket-digest.js';
import { PROTOCOL_VERSION, type WireEntry, type WireRecord } from './frame-codec.js';
import { ReplicationErrorCode } from './replication-error-code.js';
import { checkInboundHello, copyOfNode, duplicateStore, InboundRefusals, notAPeer, notAtPeerAddress } from './inbound-admission.js';
import { classifySocketError, identityOf, pskServerOptions, ReplicationConnection } from './replication-connection.js';
import { NO_LISTEN_WARNING, type ReplicationSettings } from './replication-settings.js';
import { PeerLink, expect, stopped } from './peer-link.js';
import { clampFutureTimes } from './clamp-future-times.js';
import { LocalDigest } from './local-digest.js';
import { answersPing } from './liveness-probe.js';
import { trimReplicationLog } from './log-trim.js';
import { peerStatus, readStatusFile, writeStatusFile, type InboundState, type PeerStatus, type ReplicationStatus } from './replication-status.js';

/** The store operations replication uses (LmdbGreylistStore implements them). */
export type ReplicationStore = Pick<LmdbGreylistStore, 'getNodeId' | 'readLog' | 'getLastSeq' | 'getCursor' | 'setCursor' | 'trimLog' | 'applyRemoteBatch' | 'listTriplets' | 'listClients' | 'count'>;

/** What reconfigure() changed. */
export interface ReplicationChange {
  /** Peer lines ("name=host:port") added and removed. */
  peersAdded: string[];
  peersRemoved: string[];
  /** The cluster key changed: every link and inbound session was closed to authenticate again. */
  keyChanged: boolean;
  /** Names of the peers whose links were redialled because the key or the timeout changed. */
  reconnected: string[];
}

/** Options of a Replicator. */
export interface ReplicatorOptions {
  /** Undefined: replication is off; the Replicator then only trims the log the store keeps anyway. */
  settings: ReplicationSettings | undefined;
  clock: Clock;
  logger: Logger;
  /** Greylist max-age: older records are expired and never sent or accepted. */
  maxAgeMs: number;
  /** Greylist retry window: triplets that never passed and were not seen within it are expired too (default: no such rule). */
  retryWindowMs?: number;
  /** The greylist settings every node must share (greylistKeyingOf), told to peers, who warn when theirs differ. */
  keying?: string;
  /** Timers (default: unref'd Node timers). */
  scheduler?: Scheduler;
  /** How often an idle link looks for new log entries (default 50 ms). */
  pollIntervalMs?: number;
  /** Redial backoff: first delay (default 500 ms), doubled per failure up to retryMaxMs (default 30 s). */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** How often the log is trimmed (default 60 s). */
  trimIntervalMs?: number;
  /** Where the status snapshot is written for `mxsentry replication status`; undefined: not written. */
  statusFile?: string;
  /** Why the greylist store is not open (its last failure), told to peers and shown by the status. */
  storeProblem?: () => string | undefined;
  /** Why the open store is failing (it takes no writes), for the status; undefined while it works. */
  storeFailure?: () => string | undefined;
  /** How often the status snapshot is written (default 5 s). */
  statusFileIntervalMs?: number;
  /** Incoming times later than now + this are clamped to it (default 60 s of clock skew allowed). */
  maxFutureSkewMs?: number;
  /** Records changed within this span are left out of digests: the log is still carrying them (default 30 s). */
  digestSettleMs?: number;
  /** Most entries per PUSH (default 1000) and their encoded size (default 1 MiB). */
  batchMaxEntries?: number;
  batchMaxBytes?: number;
  /** Digest buckets per record kind (default 256, a power of two). */
  digestBuckets?: number;
}

const DEFAULTS = {
  pollIntervalMs: 50, retryMinMs: 500, retryMaxMs: 30_000, trimIntervalMs: 60_000, statusFileIntervalMs: 5_000,
  maxFutureSkewMs: 60_000, digestSettleMs: 30_000, batchMaxEntries: 1000, batchMaxBytes: 1024 * 1024,
};

/** Inbound connections accepted at once (authenticated or not). */
const MAX_INBOUND_CONNECTIONS = 64;

/**
 * Runs replication for one node: the listener for peers' push links, one outgoing push link per
 * configured peer, log trimming and the status snapshot. Create it, `listen()` (fatal at start-up
 * when the address is taken), `attach(store)` once the store is open, `stop()` before closing the store.
 */
export class Replicator {
  private readonly scheduler: Scheduler;
  /** Why the last status file write failed (undefined: it succeeded), so a lasting failure is logged once. */
  private statusFileFailure: string | undefined;
  private readonly o: typeof DEFAULTS & { digestBuckets: number };
  private store: ReplicationStore | undefined;
  private server: tls.Server | undefined;
  private readonly links: PeerLink[] = [];
  private readonly inbound = new Map<string, InboundState>();
  /** Inbound sessions, with the peer name once its HELLO was accepted (a reload closes removed peers'). */
  private readonly inboundConns = new Map<ReplicationConnection, string | undefined>();
  /** The process id each accepted inbound session's HELLO told (older versions tell none). */
  private readonly inboundInstances = new Map<ReplicationConnection, string>();
  /** This process's random id, told in every HELLO: a copy of this node's data dir runs under another. */
  readonly instanceId = randomBytes(8).toString('hex');
  /** Every accepted socket, in or before its session: stop() ends them all, or the listener never closes. */
  private readonly acceptedSockets = new Set<Socket>();
  private readonly inflight = new Set<Promise<unknown>>();
  /** Last node id seen per peer name (restored from the status file at attach). */
  readonly knownNodeIds = new Map<string, string>();
  private trimTask: ScheduledTask | undefined;
  private statusTask: ScheduledTask | undefined;
  private isStopped = false;
  private readonly refusals = new InboundRefusals();
  private clamped = 0;
  private readonly refusedLog: RateLimitedLog;
  private readonly digests: LocalDigest;
  /** The settings in force: opts.settings until a reconfigure(). */
  private current: ReplicationSettings | undefined;
  /** The greylist max-age and retry window in force: the options' until a setExpiry(). */
  private maxAgeMs: number;
  private retryWindowMs: number;
  /** The keying in force (options.keying, replaced by setKeying), sent in every HELLO. */
  keying: string | undefined;

  constructor(readonly opts: ReplicatorOptions) {
    this.current = opts.settings;
    this.maxAgeMs = opts.maxAgeMs;
    this.retryWindowMs = opts.retryWindowMs ?? Infinity;
    this.keying = opts.keying;
    this.scheduler = opts.scheduler ?? new TimerScheduler();
    // Each tunable: the option when given, else its default.
    this.o = { ...DEFAULTS, digestBuckets: DEFAULT_DIGEST_BUCKETS };
    for (const k of Object.keys(this.o) as Array<keyof typeof this.o>) this.o[k] = opts[k] ?? this.o[k];
    this.refusedLog = new RateLimitedLog(opts.logger, opts.clock, 5);
    this.digests = new LocalDigest({ clock: opts.clock, buckets: this.o.digestBuckets, source: () => this.currentStore(), window: () => this.digestWindow(), track: (p) => this.track(p) });
    for (const spec of opts.settings?.peers ?? []) this.links.push(new PeerLink(this, spec));
  }

  /**
   * Replaces the greylist max-age and retry window (a reload changed them): from now on the records
   * they expire are neither sent, accepted nor compared in digests, as the expiry sweep deletes them.
   */
  setExpiry(maxAgeMs: number, retryWindowMs: number): void {
    this.maxAgeMs = maxAgeMs;
    this.retryWindowMs = retryWindowMs;
    this.digests.forget();
  }

  /** @internal True for a record the expiry sweep deletes (max-age, or a retry-expired triplet): never sent or accepted. */
  isExpired(kind: RecordKind, record: TripletRecord | ClientRecord, nowMs: number): boolean {
    return isExpiredRecord(kind, record, nowMs, this.maxAgeMs, this.retryWindowMs);
  }

  /** The settings in force (those given at construction, as changed by reconfigure()). */
  get settings(): ReplicationSettings | undefined {
    return this.current;
  }

  /** @internal */
  get options(): typeof DEFAULTS & { digestBuckets: number } {
    return this.o;
  }

  /** @internal */
  get timers(): Scheduler {
    return this.scheduler;
  }

  /** @internal the attached store; throws when not attached. */
  currentStore(): ReplicationStore {
    if (!this.store) throw new StoreError(ReplicationErrorCode.STORE_UNAVAILABLE, `the greylist store of ${this.current?.nodeName ?? 'this node'} is not open: ${this.opts.storeProblem?.() ?? 'not yet'}`);
    return this.store;
  }

  /** @internal */
  isStopping(): boolean {
    return this.isStopped;
  }

  /**
   * Starts the listener on `replication-listen` (no-op without one). Rejects when the address cannot
   * be bound, so a misconfigured node fails at start-up instead of silently not replicating.
   */
  async listen(): Promise<void> {
    const settings = this.current;
    if (!settings?.listen || this.server) return;
    // The key is looked up per handshake, so a reload that changes it applies to the next connection.
    const server = tls.createServer(pskServerOptions(() => this.current!.psk, settings.timeoutMs), (socket) => this.onInbound(socket));
    server.maxConnections = MAX_INBOUND_CONNECTIONS;
    server.on('connection', (s: Socket) => this.acceptedSockets.add(s.once('close', () => this.acceptedSockets.delete(s))));
    server.on('tlsClientError', (err, socket) => {
      // Node closes no failed or timed-out handshake's socket: 64 silent ones held every slot.
      socket.destroy();
      const e = classifySocketError(err, 'inbound replication handshake');
      this.refusals.note(e.code, identityOf(socket) ?? null, socket.remoteAddress ?? null, e.message, this.opts.clock.nowMs(), e.code !== ReplicationErrorCode.AUTH);
      const fields = { code: e.code, identity: identityOf(socket) ?? null, remote: socket.remoteAddress ?? null, err: describeError(err) };
      if (e.code === ReplicationErrorCode.AUTH) {
        this.refusedLog.log('warn', fields, 'replication connection refused: TLS-PSK authentication failed (the client holds another replication-key)');
      } else {
        // A port scan, a health check or plain garbage: not a peer, and nothing to alarm anyone about.
        this.refusedLog.log('info', fields, 'replication connection dropped before authentication (not a TLS-PSK peer)');
      }
    });
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(new StoreError(ReplicationErrorCode.CONFIG, `replication-listen ${settings.listen!.text}: ${err.message}`, { cause: err }));
      server.once('error', onError);
      server.listen({ host: settings.listen!.address, port: settings.listen!.port }, () => {
        server.off('error', onError);
        server.on('error', (err) => this.opts.logger.error({ err: describeError(err) }, 'replication listener error'));
        resolve();
      });
    });
    this.server = server;
    this.opts.logger.info({ listen: this.address(), node: settings.nodeName }, 'replication listening');
  }

  /** The listener's bound address (tests use port 0), or undefined without a listener. */
  address(): AddressInfo | undefined {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a : undefined;
  }

  /** Starts the links, trimming and the status file once the store is open. Idempotent. */
  attach(store: ReplicationStore): void {
    if (this.store || this.isStopped) return;
    this.store = store;
    if (this.opts.statusFile) {
      try {
        const previous = readStatusFile(this.opts.statusFile);
        for (const p of previous?.peers ?? []) if (p.nodeId) this.knownNodeIds.set(p.name, p.nodeId);
      } catch (err) {
        this.opts.logger.warn({ file: this.opts.statusFile, err: describeError(err) }, 'replication status file unreadable: peer node ids are learnt again');
      }
    }
    for (const link of this.links) link.start();
    this.scheduleTrim(Math.min(this.o.trimIntervalMs, 1000));
    if (this.opts.statusFile) this.scheduleStatusFile(0);
    if (this.current) {
      this.opts.logger.info({ node: this.current.nodeName, nodeId: store.getNodeId(), peers: this.current.peers.map((p) => p.text) }, 'replication started');
      if (this.current.peers.length > 0 && !this.current.listen) this.opts.logger.warn({ node: this.current.nodeName }, NO_LISTEN_WARNING);
    }
  }

  /**
   * Applies changed settings of a running node (a reload): peers added get a link at once, removed
   * ones lose theirs and their inbound sessions (they are refused from then on, and no longer hold
   * the log back), a peer whose address changed is redialled.
   * A new cluster key or link timeout closes every link and inbound session, so each is
   * authenticated again under the new settings; the digest interval and the log bound apply from
   * the next round and trim. The node name and the listen address are bound at start: they are kept
   * (the caller reports them as needing a restart), and so is the listener's TLS handshake timeout
   * (Node's tls.Server takes it at creation only; sessions after the handshake use the new one).
   * Cursors live in the store, so a redialled link resumes where its peer acknowledged. Logs what
   * changed, and nothing when nothing did (every reload calls it).
   */
  reconfigure(next: ReplicationSettings): ReplicationChange {
    const prev = this.current;
    if (!prev) throw new StoreError(ReplicationErrorCode.CONFIG, 'replication was off at start: turning it on needs a restart');
    const keyChanged = !prev.psk.equals(next.psk);
    const timeoutChanged = prev.timeoutMs !== next.timeoutMs;
    this.current = { ...next, nodeName: prev.nodeName, listen: prev.listen };
    const wanted = new Map(next.peers.map((p) => [p.text, p]));
    const kept = new Set<string>();
    const retired: PeerLink[] = [];
    for (let i = this.links.length - 1; i >= 0; i--) {
      const link = this.links[i]!;
      if (wanted.has(link.spec.text) && !keyChanged && !timeoutChanged) {
        kept.add(link.spec.text);
        continue;
      }
      // Remember its node id: trim() must keep honouring the peer's cursor until the new link is up.
      if (link.state.nodeId) this.knownNodeIds.set(link.spec.name, link.state.nodeId);
      retired.push(link);
      this.links.splice(i, 1);
    }
    for (const link of retired) void this.track(link.stop());
    const carried = new Map(retired.map((l) => [l.spec.name, l.state]));
    const started: PeerLink[] = [];
    for (const spec of next.peers) {
      if (kept.has(spec.text)) continue;
      const link = new PeerLink(this, spec, carried.get(spec.name));
      this.links.push(link);
      started.push(link);
      if (this.store && !this.isStopped) link.start();
    }
    const names = new Set(next.peers.map((p) => p.name));
    for (const [conn, name] of this.inboundConns) {
      if (keyChanged || timeoutChanged) conn.close(new StoreError(ReplicationErrorCode.CONNECTION, 'replication settings changed: reconnect'));
      else if (name !== undefined && !names.has(name)) conn.close(notAPeer(name, prev.nodeName), true);
    }
    const before = new Set(prev.peers.map((p) => p.text));
    const change: ReplicationChange = {
      peersAdded: next.peers.filter((p) => !before.has(p.text)).map((p) => p.text),
      peersRemoved: prev.peers.filter((p) => !wanted.has(p.text)).map((p) => p.text),
      keyChanged,
      reconnected: keyChanged || timeoutChanged ? started.map((l) => l.spec.name) : [],
    };
    const changed = change.peersAdded.length > 0 || change.peersRemoved.length > 0 || keyChanged || timeoutChanged ||
      prev.digestIntervalMs !== next.digestIntervalMs || prev.logMaxEntries !== next.logMaxEntries;
    if (changed) this.opts.logger.info({ ...change, peers: next.peers.map((p) => p.text) }, 'replication settings applied');
    return change;
  }

  /** Wakes every idle link at once (e.g. after a local write) instead of at its next poll. */
  notify(): void {
    for (const link of this.links) link.wake();
  }

  /** Stops listening, closes every link, waits for merges in progress; call before closing the store. */
  async stop(): Promise<void> {
    if (this.isStopped) return;
    this.isStopped = true;
    this.trimTask?.cancel();
    this.statusTask?.cancel();
    const serverClosed = this.server
      ? new Promise<void>((resolve) => this.server!.close(() => resolve()))
      : Promise.resolve();
    for (const conn of this.inboundConns.keys()) conn.close(stopped());
    for (const s of this.acceptedSockets) s.destroy(); // e.g. a handshake that ends after the loop above
    await Promise.all(this.links.map((l) => l.stop()));
    await Promise.allSettled([...this.inflight]);
    await serverClosed;
    if (this.opts.statusFile && this.store) await this.writeStatusFile();
  }

  /** The replication state: each peer, connected or not, its lag in entries and seconds, the last error. */
  async status(): Promise<ReplicationStatus> {
    const settings = this.current;
    const store = this.store;
    const now = this.opts.clock.nowMs();
    let lastSeq = 0;
    let firstEntry: (afterSeq: number) => Promise<ReplogEntry | undefined> = async () => undefined;
    if (store) {
      try {
        lastSeq = await store.getLastSeq();
        firstEntry = async (afterSeq) => (await store.readLog(afterSeq, 1))[0];
      } catch (err) {
        this.opts.logger.warn({ err: describeError(err) }, 'replication status: reading the log failed');
      }
    }
    const peers: PeerStatus[] = [];
    const seen = new Set<string>();
    const common = { store, logger: this.opts.logger, lastSeq, firstEntry, now };
    for (const link of this.links) {
      const name = link.spec.name;
      seen.add(name);
      const nodeId = link.state.nodeId ?? this.knownNodeIds.get(name) ?? null;
      peers.push(await peerStatus({ ...common, name, address: `${link.spec.host}:${link.spec.port}`, nodeId, state: link.state, inbound: this.inbound.get(name) }));
    }
    // A peer line a reload just removed: listed while its session closes, then forgotten (HELLO refuses it).
    for (const [name, inbound] of this.inbound) {
      if (seen.has(name)) continue;
      if (inbound.sessions <= 0) {
        this.inbound.delete(name);
        continue;
      }
      const row = await peerStatus({ ...common, name, address: null, nodeId: inbound.nodeId, state: undefined, inbound });
      peers.push({ ...row, connected: true });
    }
    const listen = this.address();
    const storeFailure = store ? this.opts.storeFailure?.() : undefined;
    return {
      enabled: settings !== undefined,
      nodeName: settings?.nodeName ?? null,
      nodeId: store?.getNodeId() ?? null,
      // Once the listener has closed (stop() writes a last status file), the configured address.
      listen: listen ? (listen.family === 'IPv6' ? `[${listen.address}]:${listen.port}` : `${listen.address}:${listen.port}`) : (settings?.listen?.text ?? null),
      lastSeq,
      peers,
      refusedConnections: this.refusals.count,
      lastRefused: this.refusals.last,
      droppedBeforeAuth: this.refusals.dropped,
      lastDropped: this.refusals.lastDropped,
      clampedRecords: this.clamped,
      atMs: now,
      ...(store ? {} : { storeProblem: this.opts.storeProblem?.() ?? 'not open yet' }),
      ...(storeFailure ? { storeFailure } : {}),
    };
  }

  /**
   * @internal The link to `name` found the store `nodeId`, run by the process `instanceId`, at the
   * peer's address: an inbound session under that name from another store (a copied node-name that
   * got in first) is closed as DUPLICATE_NAME, one from another process with this store as
   * DUPLICATE_STORE when it answers a ping (a copy of the node's data dir), quietly when it does
   * not (the node's session from before it restarted, maybe half-open). So the configured node's
   * own session gets in.
   */
  closeImpostors(name: string, nodeId: string, address: string, instanceId: string | undefined): void {
    const other = this.inbound.get(name)?.nodeId;
    if (other !== undefined && other !== nodeId) {
      const e = notAtPeerAddress(name, { nodeId, address }, `the one connected as "${name}" ${other}`);
      for (const [conn, n] of this.inboundConns) if (n === name) conn.close(e, true);
      return;
    }
    if (instanceId === undefined) return;
    for (const [conn, n] of this.inboundConns) {
      const theirs = this.inboundInstances.get(conn);
      if (n !== name || theirs === undefined || theirs === instanceId) continue;
      void answersPing(conn, this.scheduler, (this.current?.timeoutMs ?? 0) / 3).then((alive) =>
        conn.close(alive ? copyOfNode(name, address, nodeId) : new StoreError(ReplicationErrorCode.CONNECTION, `a session of ${name} from before it restarted`), alive));
    }
  }

  /** @internal Another peer than `name` whose link or inbound session is up with the store `nodeId`. */
  storeSharedWith(name: string, nodeId: string): string | undefined {
    const link = this.links.find((l) => l.spec.name !== name && l.state.connected && l.state.nodeId === nodeId);
    if (link) return link.spec.name;
    for (const [other, state] of this.inbound) if (other !== name && state.sessions > 0 && state.nodeId === nodeId) return other;
    return undefined;
  }

  /**
   * A reload changed the greylist settings peers compare (greylistKeyingOf): this node's links
   * compare them with what each peer told at once, and the inbound sessions are closed, so that
   * every peer's link reconnects within a second and compares them too.
   */
  setKeying(next: string): void {
    if (next === this.keying) return;
    this.keying = next;
    for (const link of this.links) link.recheckKeying();
    const e = new StoreError(ReplicationErrorCode.CONNECTION, 'greylist settings changed here: session reopened so that the peer compares them');
    for (const conn of this.inboundConns.keys()) conn.close(e);
  }

  /** @internal keeps `p` from being cut off by stop(). */
  track<T>(p: Promise<T>): Promise<T> {
    this.inflight.add(p);
    const forget = (): void => void this.inflight.delete(p);
    p.then(forget, forget);
    return p;
  }

  /**
   * @internal Merges records from `peerNodeId` into the store: expired ones are dropped, times in
   * the future clamped. Resolves with the number of records that changed local state; rejects with
   * the store's failure, and then none of them is written.
   */
  async applyRecords(records: Array<WireRecord | WireEntry>, peerNodeId: string): Promise<number> {
    const store = this.currentStore();
    const now = this.opts.clock.nowMs();
    const maxMs = now + this.o.maxFutureSkewMs;
    const batch: RemoteRecord[] = [];
    for (const r of records) {
      const record = clampFutureTimes(r.record, maxMs);
      if (record !== r.record) this.clamped++;
      if (this.isExpired(r.kind, record, now)) continue;
      batch.push({ kind: r.kind, key: r.key, record, originNode: 'originNode' in r ? r.originNode : peerNodeId });
    }
    return this.track(store.applyRemoteBatch(batch));
  }

  /** @internal This node's digest for a round starting now (see LocalDigest.get). */
  localDigest(coverToMs = 0): Promise<{ window: DigestWindow; digest: BucketDigest }> {
    return this.digests.get(coverToMs);
  }

  /** @internal the digest window of a round starting now. */
  digestWindow(): DigestWindow {
    const now = this.opts.clock.nowMs();
    return { fromMs: Math.max(0, now - this.maxAgeMs), toMs: Math.max(0, now - this.o.digestSettleMs), retryWindowMs: this.retryWindowMs };
  }

  private onInbound(socket: tls.TLSSocket): void {
    if (this.isStopped) return void socket.destroy();
    const settings = this.current!;
    const identity = identityOf(socket) ?? '';
    const remote = socket.remoteAddress ?? null;
    const conn = new ReplicationConnection(socket, { clock: this.opts.clock, scheduler: this.scheduler, timeoutMs: settings.timeoutMs, peer: identity || 'unknown peer' });
    this.inboundConns.set(conn, undefined);
    const session = this.receiveSession(conn, identity).then(
      () => undefined,
      (err: unknown) => {
        const e = err instanceof StoreError ? err : new StoreError(ReplicationErrorCode.PROTOCOL, describeError(err), { cause: err });
        if (this.isStopped) return conn.close(e);
        if (e.code === ReplicationErrorCode.AUTH || e.code === ReplicationErrorCode.VERSION || e.code === ReplicationErrorCode.SELF || e.code === ReplicationErrorCode.NOT_A_PEER || e.code === ReplicationErrorCode.DUPLICATE_NAME || e.code === ReplicationErrorCode.DUPLICATE_STORE) {
          this.refusals.note(e.code, identity, remote, e.message, this.opts.clock.nowMs());
          this.refusedLog.log('warn', { code: e.code, identity, remote, err: e.message }, 'replication connection refused');
        } else if (e.code === ReplicationErrorCode.PROTOCOL || e.code === ReplicationErrorCode.FRAME_TOO_LARGE) {
          this.refusedLog.log('warn', { code: e.code, peer: identity, remote, err: e.message }, 'replication peer broke the protocol: connection closed, nothing applied from the bad frame');
        } else {
          this.opts.logger.info({ peer: identity, code: e.code, err: e.message }, 'inbound replication link closed');
        }
        conn.close(e, e.code !== ReplicationErrorCode.CONNECTION && e.code !== ReplicationErrorCode.TIMEOUT);
      },
    );
    void session.finally(() => {
      this.inboundConns.delete(conn);
      this.inboundInstances.delete(conn);
    });
  }

  private async receiveSession(conn: ReplicationConnection, identity: string): Promise<void> {
    const settings = this.current!;
    const hello = await expect(conn, 'hello', identity);
    const link = this.links.find((l) => l.spec.name === hello.name);
    const instanceId = link?.state.nodeId === hello.nodeId ? await link.liveInstance(hello.instanceId) : undefined;
    const store = this.currentStore();
    const known = this.inbound.get(hello.name);
    const dialled = link?.state.connected && link.state.nodeId ? { nodeId: link.state.nodeId, address: `${link.spec.host}:${link.spec.port}`, ...(instanceId ? { instanceId } : {}) } : undefined;
    checkInboundHello(hello, identity, store.getNodeId(), settings, known, dialled, this.storeSharedWith(hello.name, hello.nodeId));
    // HELLO goes out before the self check, so the dialling side (this same node) sees its own id and
    // reports the misconfiguration on its link, where the admin looks for it.
    conn.send({ type: 'hello', version: PROTOCOL_VERSION, nodeId: store.getNodeId(), name: settings.nodeName, nowMs: this.opts.clock.nowMs(), instanceId: this.instanceId, ...(this.keying === undefined ? {} : { keying: this.keying }) });
    if (hello.nodeId === store.getNodeId()) {
      if (hello.name !== settings.nodeName) throw duplicateStore(hello.name, `this node (${settings.nodeName})`, hello.nodeId);
      if (hello.instanceId !== undefined && hello.instanceId !== this.instanceId) throw duplicateStore(`the node connecting as "${hello.name}"`, 'this node', hello.nodeId, true);
      throw new StoreError(ReplicationErrorCode.SELF, 'a node connected to itself (its own address is in its peer list)');
    }
    const state = known ?? { nodeId: hello.nodeId, sessions: 0, receivedEntries: 0 };
    state.nodeId = hello.nodeId;
    state.sessions++;
    this.inbound.set(hello.name, state);
    this.inboundConns.set(conn, hello.name);
    if (hello.instanceId !== undefined) this.inboundInstances.set(conn, hello.instanceId);
    this.opts.logger.info({ peer: hello.name, nodeId: hello.nodeId }, 'replication peer connected (inbound)');
    for (const link of this.links) if (link.spec.name === hello.name) link.peerIsUp();
    try {
      for (;;) {
        const msg = await conn.receive();
        switch (msg.type) {
          case 'push': {
            await this.applyRecords(msg.entries, hello.nodeId);
            state.receivedEntries += msg.entries.length;
            conn.send({ type: 'ack', upTo: msg.upTo });
            break;
          }
          case 'digest': {
            const mine = await this.track(computeDigest(store, { fromMs: msg.fromMs, toMs: msg.toMs, retryWindowMs: this.retryWindowMs }, msg.buckets));
            const diff = diffDigests({ buckets: msg.buckets, triplet: msg.triplet, client: msg.client }, mine);
            conn.send({ type: 'diff', id: msg.id, triplet: diff.triplet, client: diff.client });
            break;
          }
          case 'repair': {
            await this.applyRecords(msg.records, hello.nodeId);
            conn.send({ type: 'repair-ack', id: msg.id });
            break;
          }
          case 'error':
            throw new StoreError(ReplicationErrorCode.REMOTE, `${hello.name} closed the session: ${msg.code}: ${msg.message}`);
          default:
            throw new StoreError(ReplicationErrorCode.PROTOCOL, `${hello.name} sent an unexpected ${msg.type} frame`);
        }
      }
    } finally {
      state.sessions--;
    }
  }

  private scheduleTrim(delayMs: number): void {
    if (this.isStopped) return;
    this.trimTask = this.scheduler.schedule(delayMs, () => {
      void this.track(this.trim())
        .catch((err: unknown) => this.opts.logger.error({ err: describeError(err) }, 'trimming the replication log failed'))
        .finally(() => this.scheduleTrim(this.o.trimIntervalMs));
    });
  }

  /** Deletes log entries every peer acknowledged (see trimReplicationLog); resolves with how many. */
  async trim(): Promise<number> {
    const peerNodeIds = this.links.map((l) => l.state.nodeId ?? this.knownNodeIds.get(l.spec.name));
    return trimReplicationLog(this.currentStore(), peerNodeIds, this.current?.logMaxEntries, this.opts.logger);
  }

  private scheduleStatusFile(delayMs: number): void {
    if (this.isStopped) return;
    this.statusTask = this.scheduler.schedule(delayMs, () => {
      void this.track(this.writeStatusFile()).finally(() => this.scheduleStatusFile(this.o.statusFileIntervalMs));
    });
  }

  private async writeStatusFile(): Promise<void> {
    const file = this.opts.statusFile;
    if (!file) return;
    try {
      await writeStatusFile(file, await this.status(), this.opts.clock.nowMs());
      if (this.statusFileFailure !== undefined) this.opts.logger.info({ file }, 'replication status file written again');
      this.statusFileFailure = undefined;
    } catch (err) {
      // Every 5 s: a lasting failure (data dir removed, disk full) is a warning once, then debug.
      const reason = describeError(err);
      const level = reason === this.statusFileFailure ? 'debug' : 'warn';
      this.opts.logger[level]({ file, err: reason }, 'writing the replication status file failed');
      this.statusFileFailure = reason;
    }
  }
}
