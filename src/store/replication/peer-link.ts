// One outgoing replication link (issue 4): dials a configured peer over TLS-PSK, exchanges HELLO,
// pushes this node's own log entries from the peer's acknowledged cursor, runs the digest rounds
// that repair what the log no longer holds, and redials with a capped backoff after any failure.
// Owned and driven by the Replicator (replicator.ts); it reaches the store only through it.
import tls from 'node:tls';
import { formatDuration } from '../../config/format-value.js';
import { keyDef } from '../../config/schema.js';
import { describeError, StoreError } from '../../util/errors.js';
import type { ReplogEntry } from '../record-codec.js';
import type { ScheduledTask } from '../scheduler.js';
import { recordsInBuckets } from './bucket-digest.js';
import { encodePushFrame, PROTOCOL_VERSION, serializeEntry, type ReplicationMessage, type WireEntry } from './frame-codec.js';
import { ReplicationErrorCode } from './replication-error-code.js';
import { classifySocketError, pskClientOptions, ReplicationConnection } from './replication-connection.js';
import { duplicateStore } from './inbound-admission.js';
import { answersPing } from './liveness-probe.js';
import type { PeerSpec } from './replication-settings.js';
import type { Replicator } from './replicator.js';
import { CLOCK_SKEW_ADVICE, CLOCK_SKEW_WARN_MS, SETTINGS_ADVICE } from './replication-status.js';

/** @internal "max-age: 35d here, 1d at the peer; ...": the settings of two keying lines that differ. */
export function settingsDifference(mine: string, theirs: string): string {
  const parse = (line: string): Map<string, string> => new Map(line.split(' ').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  const a = parse(mine);
  const b = parse(theirs);
  const keys = [...new Set([...a.keys(), ...b.keys()])].filter((k) => a.get(k) !== b.get(k));
  return keys.map((k) => `${k}: ${readable(k, a.get(k)) ?? 'not told'} here, ${readable(k, b.get(k)) ?? 'not told'} at the peer`).join('; ');
}

/** A duration key's "3024000s" as the config writes it ("35d", formatDuration); anything else as told. */
function readable(key: string, value: string | undefined): string | undefined {
  const m = value === undefined ? null : /^(\d+)s$/.exec(value);
  const def = keyDef(key);
  return m && def?.kind === 'duration' ? formatDuration(def, Number(m[1])) : value;
}

/** Longest wait after connecting before the first digest round when the log never runs empty. */
const FIRST_DIGEST_GRACE_MS = 30_000;
/** How long after the settle time of the first round's window the second round starts. */
const SETTLED_MARGIN_MS = 1000;
/** Records per REPAIR frame. */
const REPAIR_BATCH = 500;

/** What the status shows of one link. */
export interface LinkState {
  nodeId: string | null;
  connected: boolean;
  connectedSinceMs: number | null;
  /** The peer's clock minus ours at the last HELLO (halfway through the exchange); null when not told. */
  clockOffsetMs: number | null;
  /** How the peer's greylist settings differ from this node's (greylistKeyingOf), at the last HELLO; null when they match or it did not say. */
  settingsDiffer: string | null;
  lastError: StoreError | null;
  lastErrorAtMs: number | null;
  ackedSeq: number | null;
  lastDigestAtMs: number | null;
  lastDigestDiffBuckets: number | null;
  repairedRecords: number;
  sentEntries: number;
  /** The peer process's random id from its last HELLO (null: not told, an older version). */
  instanceId: string | null;
}

/** The error that ends a session because replication is stopping. */
export function stopped(): StoreError {
  return new StoreError(ReplicationErrorCode.CONNECTION, 'replication is stopping');
}

/** A log entry as it goes on the wire. */
export function toWire(e: ReplogEntry): WireEntry {
  return e.kind === 'triplet'
    ? { kind: 'triplet', key: e.key, record: e.record, originNode: e.originNode, atMs: e.atMs }
    : { kind: 'client', key: e.key, record: e.record, originNode: e.originNode, atMs: e.atMs };
}

/**
 * A log entry's PUSH serialisation, kept on the entry object itself for as long as the entry lives
 * (a symbol key: invisible to JSON and to the entry's readers). The store hands every link the same
 * entry objects for what it committed lately (LogTail), so the links of a node serialise each once.
 * A WeakMap cost about 2 us per lookup here, once per entry and link (CPU profile of the bench).
 */
const WIRE = Symbol('mxsentry.replication.wire');
type CachedEntry = ReplogEntry & { [WIRE]?: string };

function serialized(e: ReplogEntry): string {
  const cached = e as CachedEntry;
  let w = cached[WIRE];
  if (w === undefined) {
    w = serializeEntry(toWire(e));
    cached[WIRE] = w;
  }
  return w;
}

/** Receives the next message and checks its type; an ERROR message or another type rejects. */
export async function expect<T extends ReplicationMessage['type']>(conn: ReplicationConnection, type: T, peer: string): Promise<Extract<ReplicationMessage, { type: T }>> {
  const msg = await conn.receive();
  if (msg.type === type) return msg as Extract<ReplicationMessage, { type: T }>;
  if (msg.type === 'error') throw new StoreError(ReplicationErrorCode.REMOTE, `${peer} closed the session: ${msg.code}: ${msg.message}`);
  throw new StoreError(ReplicationErrorCode.PROTOCOL, `${peer} sent ${msg.type} where ${type} was expected`);
}

/** How long a link stays quiet about an unchanged clock offset it has warned about. */
const CLOCK_SKEW_REWARN_MS = 3_600_000;

/** The outgoing push link to one configured peer, redialled with backoff until stop(). */
export class PeerLink {
  readonly state: LinkState = {
    nodeId: null,
    connected: false,
    connectedSinceMs: null,
    clockOffsetMs: null,
    settingsDiffer: null,
    lastError: null,
    lastErrorAtMs: null,
    ackedSeq: null,
    lastDigestAtMs: null,
    lastDigestDiffBuckets: null,
    repairedRecords: 0,
    sentEntries: 0,
    instanceId: null,
  };
  private conn: ReplicationConnection | undefined;
  private socket: tls.TLSSocket | undefined;
  private retryTask: ScheduledTask | undefined;
  private attempts = 0;
  private wakeUp: (() => void) | undefined;
  private halted = false;
  private running: Promise<void> | undefined;
  private lastLogged = '';
  private digestId = 0;
  /** The last clock-skew warning logged (see checkClock); cleared once the clocks agree again. */
  private skewWarned: { atMs: number; offsetMs: number } | undefined;
  /** The settings difference last warned about (see checkKeying): one line per change, not per reconnect. */
  private keyingWarned: string | null = null;
  /** The peer's greylist settings at its last HELLO (undefined: not told). */
  private peerKeying: string | undefined;

  /**
   * `carried`: the counts of the link this one replaces (a reload with a new key or timeout, or a
   * new address for the same peer), so the per-peer Prometheus counters never go down.
   */
  constructor(
    private readonly r: Replicator,
    readonly spec: PeerSpec,
    carried?: Pick<LinkState, 'sentEntries' | 'repairedRecords'>,
  ) {
    if (carried) {
      this.state.sentEntries = carried.sentEntries;
      this.state.repairedRecords = carried.repairedRecords;
    }
  }

  start(): void {
    this.dial();
  }

  wake(): void {
    const w = this.wakeUp;
    this.wakeUp = undefined;
    w?.();
  }

  /**
   * Records the peer's clock offset from its HELLO, and warns when it exceeds CLOCK_SKEW_WARN_MS:
   * greylisting compares times written by different nodes (first seen at one, the retry at
   * another), so a node whose clock runs ahead passes a triplet early and one behind delays it.
   */
  private checkClock(peerNowMs: number | undefined, sentAtMs: number): void {
    if (peerNowMs === undefined) {
      this.state.clockOffsetMs = null;
      return;
    }
    const offsetMs = Math.round(peerNowMs - (sentAtMs + this.r.opts.clock.nowMs()) / 2);
    this.state.clockOffsetMs = offsetMs;
    if (Math.abs(offsetMs) <= CLOCK_SKEW_WARN_MS) {
      this.skewWarned = undefined;
      return;
    }
    // Once per session would repeat the same line on every reconnect of a flapping link: again only
    // after an hour, or when the offset moved by more than the warning threshold since the last one.
    const now = this.r.opts.clock.nowMs();
    const last = this.skewWarned;
    if (!last || now - last.atMs >= CLOCK_SKEW_REWARN_MS || Math.abs(offsetMs - last.offsetMs) > CLOCK_SKEW_WARN_MS) {
      this.skewWarned = { atMs: now, offsetMs };
      this.r.opts.logger.warn(
        { peer: this.spec.name, clockOffsetSec: Math.round(offsetMs / 1000) },
        `the clock of ${this.spec.name} differs from this node's by ${Math.round(offsetMs / 1000)} s: ${CLOCK_SKEW_ADVICE}`,
      );
    }
  }

  /** This node's settings changed (a reload): compared again with what the peer told at its HELLO. */
  recheckKeying(): void {
    if (this.state.connected) this.checkKeying(this.peerKeying);
  }

  /**
   * Compares the peer's greylist settings from its HELLO with this node's and warns once per change
   * when they differ: nodes that key triplets differently greylist a retry that another node has
   * seen again, and a record one expires earlier comes back from the other.
   */
  private checkKeying(peerKeying: string | undefined): void {
    const mine = this.r.keying;
    const differ = peerKeying === undefined || mine === undefined || peerKeying === mine ? null : settingsDifference(mine, peerKeying);
    this.state.settingsDiffer = differ;
    const news = differ !== null && differ !== this.keyingWarned;
    this.keyingWarned = differ;
    if (!news) return;
    this.r.opts.logger.warn(
      { peer: this.spec.name, differ },
      `the greylist settings of ${this.spec.name} differ from this node's (${differ}): ${SETTINGS_ADVICE}`,
    );
  }

  /**
   * The peer just opened a session to this node, so it is up: a link waiting out its backoff dials
   * now instead (a restarted node gets its peers' changes at once, not after up to retryMaxMs). The
   * backoff itself is kept; it is reset only once the peer takes something.
   */
  peerIsUp(): void {
    if (this.halted || this.r.isStopping() || this.socket || this.conn || !this.retryTask) return;
    this.retryTask.cancel();
    this.retryTask = undefined;
    this.r.opts.logger.info({ peer: this.spec.name }, 'replication peer connected to this node: dialling it now');
    this.dial();
  }

  /**
   * The id of the peer process this link is connected to, while that process is still there; a
   * session from `other`, another process under the peer's name and store, is then a copy of it
   * running elsewhere. Heard from lately is no proof (a node killed and restarted at once leaves
   * this link half-open), so when `other` differs the peer must answer a ping within a third of the
   * timeout. When it does not, the link is closed, to redial the peer's address and learn which
   * process runs there now, and undefined is returned.
   */
  async liveInstance(other: string | undefined): Promise<string | undefined> {
    const conn = this.conn;
    const mine = this.state.instanceId;
    if (!this.state.connected || !conn || mine === null) return undefined;
    if (other === undefined || other === mine) return mine;
    if (await answersPing(conn, this.r.timers, this.r.settings!.timeoutMs / 3)) return this.conn === conn ? mine : undefined;
    conn.close(new StoreError(ReplicationErrorCode.CONNECTION, `${this.spec.name} did not answer a ping while another process connected as it with its store (restarted?): redialling`));
    return undefined;
  }

  async stop(): Promise<void> {
    this.halted = true;
    this.retryTask?.cancel();
    this.conn?.close(stopped());
    this.socket?.destroy();
    this.wake();
    await this.running;
  }

  private dial(): void {
    if (this.halted || this.r.isStopping()) return;
    const settings = this.r.settings!;
    const socket = tls.connect(pskClientOptions(this.spec.host, this.spec.port, settings.psk, settings.nodeName));
    this.socket = socket;
    let settled = false;
    const give = (err: StoreError): void => {
      if (settled) return;
      settled = true;
      timer.cancel();
      socket.destroy();
      this.socket = undefined;
      if (this.halted) return;
      this.failed(err);
      this.scheduleRetry();
    };
    const timer = this.r.timers.schedule(settings.timeoutMs, () =>
      give(new StoreError(ReplicationErrorCode.TIMEOUT, `no TLS handshake with ${this.spec.text} within ${settings.timeoutMs} ms`)),
    );
    socket.once('error', (err) => give(classifySocketError(err, `connecting to ${this.spec.text}`)));
    socket.once('close', () => give(new StoreError(ReplicationErrorCode.CONNECTION, `${this.spec.text} closed the connection during the TLS handshake`)));
    socket.once('secureConnect', () => {
      if (settled) return;
      settled = true;
      timer.cancel();
      const conn = new ReplicationConnection(socket, { clock: this.r.opts.clock, scheduler: this.r.timers, timeoutMs: settings.timeoutMs, peer: this.spec.name });
      this.conn = conn;
      this.running = this.session(conn).then(
        () => undefined,
        (err: unknown) => {
          const e = err instanceof StoreError ? err : new StoreError(ReplicationErrorCode.PROTOCOL, describeError(err), { cause: err });
          if (!this.halted) this.failed(e);
          const tell = e.code === ReplicationErrorCode.PROTOCOL || e.code === ReplicationErrorCode.SELF || e.code === ReplicationErrorCode.VERSION || e.code === ReplicationErrorCode.CONFIG || e.code === ReplicationErrorCode.DUPLICATE_STORE;
          conn.close(e, tell);
        },
      ).finally(() => {
        if (this.state.connected) this.r.opts.logger.info({ peer: this.spec.name }, 'replication peer disconnected (outbound)');
        // Stopped while up: an error from before this connection was healed by it, and the status a
        // stopped node leaves (its status file) must not show it as the link's last word.
        const { lastErrorAtMs, connectedSinceMs } = this.state;
        if (this.halted && this.state.connected && lastErrorAtMs !== null && connectedSinceMs !== null && lastErrorAtMs <= connectedSinceMs) {
          this.state.lastError = null;
          this.state.lastErrorAtMs = null;
        }
        this.state.connected = false;
        this.state.connectedSinceMs = null;
        this.conn = undefined;
        this.socket = undefined;
        this.scheduleRetry();
      });
    });
  }

  private failed(err: StoreError): void {
    this.attempts++;
    this.state.lastError = err;
    this.state.lastErrorAtMs = this.r.opts.clock.nowMs();
    // One log line per change of reason: a peer down for an hour is not 1,000 lines.
    const signature = `${err.code}: ${err.message}`;
    if (signature !== this.lastLogged) {
      this.lastLogged = signature;
      const level = err.code === ReplicationErrorCode.AUTH || err.code === ReplicationErrorCode.SELF || err.code === ReplicationErrorCode.CONFIG || err.code === ReplicationErrorCode.DUPLICATE_STORE ? 'error' : 'warn';
      this.r.opts.logger[level]({ peer: this.spec.name, address: this.spec.text, code: err.code, err: err.message }, 'replication link to peer failed; retrying');
    }
  }

  private scheduleRetry(): void {
    if (this.halted || this.r.isStopping()) return;
    const { retryMinMs, retryMaxMs } = this.r.options;
    const base = Math.min(retryMaxMs, retryMinMs * 2 ** Math.min(20, Math.max(0, this.attempts - 1)));
    // +-20% jitter so the nodes of a cluster restarted together do not redial in lockstep.
    const delayMs = Math.round(base * (0.8 + 0.4 * Math.random()));
    this.retryTask = this.r.timers.schedule(delayMs, () => this.dial());
  }

  private sleep(ms: number, conn: ReplicationConnection): Promise<void> {
    return new Promise<void>((resolve) => {
      let task: ScheduledTask | undefined;
      const done = (): void => {
        task?.cancel();
        this.wakeUp = undefined;
        resolve();
      };
      this.wakeUp = done;
      task = this.r.timers.schedule(ms, done);
      void conn.closed().then(done);
    });
  }

  private async session(conn: ReplicationConnection): Promise<void> {
    const store = this.r.currentStore();
    const settings = this.r.settings!;
    const self = store.getNodeId();
    const sentAtMs = this.r.opts.clock.nowMs();
    const keying = this.r.keying;
    conn.send({ type: 'hello', version: PROTOCOL_VERSION, nodeId: self, name: settings.nodeName, nowMs: sentAtMs, instanceId: this.r.instanceId, ...(keying === undefined ? {} : { keying }) });
    const hello = await expect(conn, 'hello', this.spec.name);
    if (hello.version !== PROTOCOL_VERSION) {
      throw new StoreError(ReplicationErrorCode.VERSION, `${this.spec.name} speaks replication protocol ${hello.version}, this node ${PROTOCOL_VERSION}`);
    }
    if (hello.nodeId === self) {
      // Another name, or this name from another process: a copy of this node's data dir runs there.
      if (hello.name !== settings.nodeName || (hello.instanceId !== undefined && hello.instanceId !== this.r.instanceId)) {
        const sameName = hello.name === settings.nodeName;
        throw duplicateStore(sameName ? `the node at ${this.spec.text}` : this.spec.name, `this node (${settings.nodeName})`, self, sameName);
      }
      throw new StoreError(ReplicationErrorCode.SELF, `${this.spec.text} is this node itself`);
    }
    if (hello.name !== this.spec.name) {
      throw new StoreError(ReplicationErrorCode.CONFIG, `the node at ${this.spec.host}:${this.spec.port} is "${hello.name}", configured as "${this.spec.name}": fix the peer line`);
    }
    // Once the peer is known to be the configured one (a wrong node's clock is not this peer's).
    this.checkClock(hello.nowMs, sentAtMs);
    this.peerKeying = hello.keying;
    this.checkKeying(hello.keying);
    const peer = hello.nodeId;
    if (this.state.nodeId !== null && this.state.nodeId !== peer) {
      this.r.opts.logger.warn({ peer: this.spec.name, previous: this.state.nodeId, nodeId: peer }, 'peer has a new store (new node id): sending it everything');
    }
    this.state.nodeId = peer;
    this.r.knownNodeIds.set(this.spec.name, peer);
    const sharing = this.r.storeSharedWith(this.spec.name, peer);
    if (sharing !== undefined) throw duplicateStore(this.spec.name, sharing, peer);
    this.state.instanceId = hello.instanceId ?? null;
    this.r.closeImpostors(this.spec.name, peer, `${this.spec.host}:${this.spec.port}`, hello.instanceId);
    let cursor = await store.getCursor(peer);
    this.state.ackedSeq = cursor;
    this.state.connected = true;
    this.state.connectedSinceMs = this.r.opts.clock.nowMs();
    // The backoff is reset once the peer has taken something (an ack, a digest round), not at the
    // handshake: a peer whose store refuses every batch (disk full, read-only) would otherwise be
    // redialled every retryMinMs, each attempt an error line in its log.
    if (this.lastLogged !== '') this.r.opts.logger.info({ peer: this.spec.name }, 'replication link to peer restored');
    this.lastLogged = '';
    this.r.opts.logger.info({ peer: this.spec.name, nodeId: peer, cursor }, 'replication peer connected (outbound)');
    const { batchMaxEntries, batchMaxBytes, pollIntervalMs } = this.r.options;
    // The first digest round runs once the backlog is pushed (or after a grace time under a steady
    // write load, when the log never runs empty); later rounds every digest interval, load or not.
    let digestDueMs = this.r.opts.clock.nowMs() + Math.min(settings.digestIntervalMs, FIRST_DIGEST_GRACE_MS);
    let drainedOnce = false;
    let rounds = 0;
    for (;;) {
      if (this.halted) throw stopped();
      // Closed under the session (by the peer, a timeout): say why, not "stopping".
      const closedWith = conn.reason();
      if (closedWith) throw closedWith;
      if (this.r.opts.clock.nowMs() >= digestDueMs) {
        // The second round exists for the records changed just before this session began: its
        // window must reach the session's start, whatever another link's round computed lately.
        await this.digestRound(conn, rounds === 1 ? this.state.connectedSinceMs ?? 0 : 0);
        this.attempts = 0;
        rounds++;
        // The interval in force now, not the session's: a reload may change it while the link runs.
        const intervalMs = (this.r.settings ?? settings).digestIntervalMs;
        // A round leaves out the records changed in the last digestSettleMs (the log carries
        // them), but the log carries only a node's own changes: records this node holds of the
        // peer's own recent changes (a peer that lost its store) are compared by a second round
        // once they have settled, not an interval later.
        digestDueMs = this.r.opts.clock.nowMs() + (rounds === 1 ? Math.min(intervalMs, this.r.options.digestSettleMs + SETTLED_MARGIN_MS) : intervalMs);
        continue;
      }
      const entries = await this.r.track(store.readLog(cursor, batchMaxEntries));
      if (entries.length > 0) {
        const now = this.r.opts.clock.nowMs();
        const batch: string[] = [];
        let bytes = 0;
        let upTo = cursor;
        for (const e of entries) {
          // Only this node's own changes go out: every node has a direct link to every other (full
          // mesh), so relaying what a peer sent us would only make the third node merge it twice.
          // A state merged here from a peer's record is the join of that record (which its origin
          // pushes itself) and our own earlier changes (which we pushed), so nothing is lost; the
          // digest repair covers what a direct link missed. Expired records are not sent: the
          // peer's sweep deleted them (or will).
          if (e.originNode === self && !this.r.isExpired(e.kind, e.record, now)) {
            // String length, not bytes: a non-ASCII key can be 3x longer in UTF-8, still far below the
            // 4 MiB frame cap with the default 1 MiB batch.
            const w = serialized(e);
            if (batch.length > 0 && bytes + w.length + 1 > batchMaxBytes) break;
            batch.push(w);
            bytes += w.length + 1;
          }
          upTo = e.seq;
        }
        if (batch.length > 0) {
          conn.sendFrame(encodePushFrame(upTo, batch));
          await conn.drained();
          const ack = await expect(conn, 'ack', this.spec.name);
          if (ack.upTo !== upTo) throw new StoreError(ReplicationErrorCode.PROTOCOL, `${this.spec.name} acknowledged ${ack.upTo}, expected ${upTo}`);
          this.state.sentEntries += batch.length;
        }
        await this.r.track(store.setCursor(peer, upTo));
        cursor = upTo;
        this.state.ackedSeq = upTo;
        this.attempts = 0;
        // A full batch means a backlog: push on at once. Otherwise gather for a poll interval, so a
        // steady write load is sent in batches: each push costs a commit here (the cursor) and one
        // at the peer (the merge), whatever its size.
        if (entries.length < batchMaxEntries) await this.sleep(pollIntervalMs, conn);
        continue;
      }
      if (!drainedOnce) {
        drainedOnce = true;
        digestDueMs = this.r.opts.clock.nowMs();
        continue;
      }
      await this.sleep(pollIntervalMs, conn);
    }
  }

  /** Sends our digest, then our records of every bucket the peer reports as different. */
  private async digestRound(conn: ReplicationConnection, coverToMs: number): Promise<void> {
    const store = this.r.currentStore();
    const buckets = this.r.options.digestBuckets;
    const { window, digest } = await this.r.localDigest(coverToMs);
    const id = ++this.digestId;
    conn.send({ type: 'digest', id, buckets, fromMs: window.fromMs, toMs: window.toMs, triplet: digest.triplet, client: digest.client });
    const diff = await expect(conn, 'diff', this.spec.name);
    if (diff.id !== id) throw new StoreError(ReplicationErrorCode.PROTOCOL, `${this.spec.name} answered digest ${diff.id}, expected ${id}`);
    if (diff.triplet.some((b) => b >= buckets) || diff.client.some((b) => b >= buckets)) {
      throw new StoreError(ReplicationErrorCode.PROTOCOL, `${this.spec.name} reported a bucket beyond ${buckets}`);
    }
    let sent = 0;
    for await (const records of recordsInBuckets(store, diff, buckets, window, REPAIR_BATCH)) {
      const rid = ++this.digestId;
      conn.send({ type: 'repair', id: rid, records });
      await conn.drained();
      const ack = await expect(conn, 'repair-ack', this.spec.name);
      if (ack.id !== rid) throw new StoreError(ReplicationErrorCode.PROTOCOL, `${this.spec.name} acknowledged repair ${ack.id}, expected ${rid}`);
      sent += records.length;
    }
    const differing = diff.triplet.length + diff.client.length;
    this.state.lastDigestAtMs = this.r.opts.clock.nowMs();
    this.state.lastDigestDiffBuckets = differing;
    this.state.repairedRecords += sent;
    if (sent > 0) this.r.opts.logger.info({ peer: this.spec.name, buckets: differing, records: sent }, 'digest repair sent records the peer was missing');
  }
}

