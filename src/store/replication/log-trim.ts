// Trimming of the replication log: which entries every configured peer has acknowledged, and the
// bound (`replication-log-max`) beyond which the oldest go anyway. Called by the Replicator's trim
// timer (replicator.ts); it reads cursors and deletes log entries, nothing else.
import type { Logger } from '../../util/logger.js';
import type { ReplicationStore } from './replicator.js';

/**
 * Deletes log entries every peer acknowledged. `peerNodeIds` holds one entry per configured peer:
 * its store id, or undefined while unknown (such a peer holds the log back). Beyond `logMaxEntries`
 * the oldest go anyway (the digest repair covers a peer that missed them). Without peers (and
 * without replication) the whole log is dropped: the newest entry keeps the sequence number.
 * Resolves with the number of entries deleted.
 */
export async function trimReplicationLog(
  store: Pick<ReplicationStore, 'getLastSeq' | 'getCursor' | 'count' | 'trimLog'>,
  peerNodeIds: ReadonlyArray<string | undefined>,
  logMaxEntries: number | undefined,
  logger: Logger,
): Promise<number> {
  const last = await store.getLastSeq();
  let bound = last;
  for (const nodeId of peerNodeIds) {
    const acked = nodeId ? await store.getCursor(nodeId) : 0;
    bound = Math.min(bound, acked);
  }
  if (logMaxEntries !== undefined && last - bound > logMaxEntries) {
    const { replogEntries } = await store.count();
    if (replogEntries > logMaxEntries) bound = Math.max(bound, last - logMaxEntries);
  }
  if (bound <= 0) return 0;
  const deleted = await store.trimLog(bound + 1);
  if (deleted > 0) logger.debug({ deleted, upTo: bound }, 'replication log trimmed');
  return deleted;
}
