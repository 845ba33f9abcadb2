// The replication status of one node (`mxsentry replication status`, metrics, the status file):
// its shape, the per-peer figures (cursor, lag in entries and seconds, last error, counters) and
// the status file the daemon writes and the CLI reads. Called by replicator.ts and the CLI; it
// never talks to peers.
import { readFileSync } from 'node:fs';
import { rename, unlink, writeFile } from 'node:fs/promises';
import { describeError } from '../../util/errors.js';
import type { Logger } from '../../util/logger.js';
import type { ReplogEntry } from '../record-codec.js';
import type { LinkState } from './peer-link.js';
import type { ReplicationStore } from './replicator.js';

/** A peer's push link to us, as the replicator counts it. */
export interface InboundState {
  nodeId: string;
  sessions: number;
  receivedEntries: number;
}

/** One peer as `replication status` and metrics show it. */
export interface PeerStatus {
  name: string;
  /** host:port dialled; null for a node that only connects to us (not in our peer list). */
  address: string | null;
  /** The peer's store node id, once it said HELLO (kept across restarts in the status file). */
  nodeId: string | null;
  /** Our push link to it is up (HELLO done). */
  connected: boolean;
  /** Its push link to us is up. */
  inbound: boolean;
  /** Last sequence of our log it acknowledged; null while its node id is unknown. */
  ackedSeq: number | null;
  /** Log entries it has not acknowledged yet, and the age of the oldest of them in seconds. */
  lagRecords: number | null;
  lagSec: number | null;
  lastError: string | null;
  lastErrorAtMs: number | null;
  connectedSinceMs: number | null;
  /** Its clock minus ours, seen at the last connection; null when not known. */
  clockOffsetMs: number | null;
  /** How its greylist settings differ from ours, seen at the last connection; null when they match or are not known. */
  settingsDiffer?: string | null;
  lastDigestAtMs: number | null;
  /** Buckets that differed in the last digest round, and records sent to repair them in total. */
  lastDigestDiffBuckets: number | null;
  repairedRecords: number;
  /** Entries pushed to it and entries received from it since start. */
  sentEntries: number;
  receivedEntries: number;
}

/** What to do about a peer whose greylist settings differ (said in the log and by `replication status`). */
export const SETTINGS_ADVICE = 'a retry another node has seen may be greylisted again, and records one node expires come back from the other; set lookup-by-host, ipv4cidr, ipv6cidr, max-age and retry-window alike on every node';

/** A peer clock further off than this is logged and shown by `replication status`. */
export const CLOCK_SKEW_WARN_MS = 10_000;
/** What the log line and the status say after a peer's clock offset. */
export const CLOCK_SKEW_ADVICE = 'greylisting across nodes needs synchronised clocks (run NTP on every node)';

/** The whole replication state of this node. */
export interface ReplicationStatus {
  enabled: boolean;
  nodeName: string | null;
  nodeId: string | null;
  listen: string | null;
  /** Highest sequence in this node's log. */
  lastSeq: number;
  peers: PeerStatus[];
  /** Inbound connections refused (failed authentication, bad HELLO, dropped before authentication) since start. */
  refusedConnections: number;
  /**
   * The last of them from a TLS-PSK client (failed authentication, or refused after it): who (its
   * identity) from where, why; absent in the files of older versions.
   */
  lastRefused?: { text: string; atMs: number } | null;
  /** Of refusedConnections, those dropped before authentication (port checks, scanners, not TLS-PSK); absent in older files. */
  droppedBeforeAuth?: number;
  /** The last of those. */
  lastDropped?: { text: string; atMs: number } | null;
  /** Incoming records whose times lay too far in the future and were clamped, since start. */
  clampedRecords: number;
  /** Why this node's greylist store is not open, when it is not: replication waits for it. */
  storeProblem?: string;
  /** Why this node's open greylist store is failing (a full disk, EIO): peers' records wait for it. */
  storeFailure?: string;
  atMs: number;
}

/** What the status file holds: the status plus who wrote it. */
export interface ReplicationStatusFile extends ReplicationStatus {
  pid: number;
  writtenAtMs: number;
}

/** Reads the status file a running (or the last) daemon wrote; undefined when absent or unreadable. */
export function readStatusFile(path: string): ReplicationStatusFile | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const parsed = JSON.parse(text) as unknown;
  if (typeof parsed !== 'object' || parsed === null || !Array.isArray((parsed as ReplicationStatusFile).peers)) return undefined;
  return parsed as ReplicationStatusFile;
}

/** What peerStatus needs: the peer, our link's and its inbound session's state, our log's end. */
export interface PeerStatusInput {
  name: string;
  /** host:port dialled; null for a node that only connects to us. */
  address: string | null;
  /** Its node id as far as known (link, inbound HELLO or the status file). */
  nodeId: string | null;
  /** Our push link's state; undefined for a node that only connects to us. */
  state: LinkState | undefined;
  inbound: InboundState | undefined;
  store: Pick<ReplicationStore, 'getCursor'> | undefined;
  logger: Logger;
  lastSeq: number;
  /** The first log entry after a sequence, for the lag in seconds. */
  firstEntry: (afterSeq: number) => Promise<ReplogEntry | undefined>;
  now: number;
}

/** One peer's status: its cursor from the link (or the store), its lag in entries and seconds, errors and counters. */
export async function peerStatus(p: PeerStatusInput): Promise<PeerStatus> {
  const { state, inbound, nodeId, store } = p;
  let acked = state?.ackedSeq ?? null;
  if (acked === null && nodeId !== null && store && state) {
    try {
      acked = await store.getCursor(nodeId);
    } catch (err) {
      p.logger.warn({ peer: p.name, err: describeError(err) }, 'replication status: reading a cursor failed');
    }
  }
  let lagRecords: number | null = null;
  let lagSec: number | null = null;
  if (acked !== null && state) {
    lagRecords = Math.max(0, p.lastSeq - acked);
    lagSec = 0;
    if (lagRecords > 0) {
      const oldest = await p.firstEntry(acked);
      lagSec = oldest ? Math.max(0, (p.now - oldest.atMs) / 1000) : 0;
    }
  }
  return {
    name: p.name,
    address: p.address,
    nodeId,
    connected: state?.connected ?? false,
    inbound: (inbound?.sessions ?? 0) > 0,
    ackedSeq: acked,
    lagRecords,
    lagSec,
    lastError: state?.lastError ? `${state.lastError.code}: ${state.lastError.message}` : null,
    lastErrorAtMs: state?.lastErrorAtMs ?? null,
    connectedSinceMs: state?.connectedSinceMs ?? null,
    clockOffsetMs: state?.clockOffsetMs ?? null,
    settingsDiffer: state?.settingsDiffer ?? null,
    lastDigestAtMs: state?.lastDigestAtMs ?? null,
    lastDigestDiffBuckets: state?.lastDigestDiffBuckets ?? null,
    repairedRecords: state?.repairedRecords ?? 0,
    sentEntries: state?.sentEntries ?? 0,
    receivedEntries: inbound?.receivedEntries ?? 0,
  };
}

/** Writes the status file atomically (temp file, then rename), readable by root only. */
export async function writeStatusFile(file: string, status: ReplicationStatus, nowMs: number): Promise<void> {
  const body: ReplicationStatusFile = { ...status, pid: process.pid, writtenAtMs: nowMs };
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    await writeFile(tmp, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o600 });
    await rename(tmp, file);
  } catch (err) {
    // A full disk fails the write after creating the file: leave no empty temp file behind.
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}
