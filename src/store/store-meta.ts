// The environment's `meta` facts read at open: the layout (schema) version and this node's id.
// Called by lmdb-env.ts (its only caller) in one synchronous transaction when it opens a store
// (read-only: without one, and writing nothing).
import { randomBytes } from 'node:crypto';
import type { Database } from 'lmdb';
import { StoreError } from '../util/errors.js';
import { decodeMetaValue, encodeMetaValue, isNodeId } from './record-codec.js';
import { StoreErrorCode } from './store-error-code.js';

// Layout version, kept in `meta`; a newer one is refused. 2: binary records (record-binary.ts); a 1
// (JSON values) is read as it is and marked 2 by its first write, so an older release then refuses it.
export const STORE_SCHEMA_VERSION = 2;

/**
 * Reads or creates the node id and checks the schema version. A new environment is created at the
 * current version; `markSchema` says an older one must be marked with it by the first write (a
 * reader, such as `check`, leaves it readable by the release that wrote it). `readOnly` (a
 * read-only open) writes nothing: a store without a node id gets one for this open only.
 */
export function initMeta(meta: Database<Buffer, string>, path: string, readOnly = false): { nodeId: string; markSchema: boolean } {
  if (readOnly) return readMeta(meta, path, () => undefined);
  return meta.transactionSync(() => readMeta(meta, path, (key, value) => meta.putSync(key, value)));
}

/** initMeta's reading and checking; `put` stores what a new environment lacks (a no-op read-only). */
function readMeta(meta: Database<Buffer, string>, path: string, put: (key: string, value: Buffer) => unknown): { nodeId: string; markSchema: boolean } {
  const versionBytes = meta.get('schemaVersion');
  let markSchema = false;
  if (versionBytes === undefined) {
    put('schemaVersion', encodeMetaValue(STORE_SCHEMA_VERSION));
  } else {
    const version = decodeMetaValue(versionBytes, 'schemaVersion');
    if (typeof version !== 'number' || version > STORE_SCHEMA_VERSION) {
      throw new StoreError(
        StoreErrorCode.OPEN,
        `${path} has schema version ${String(version)}, this mxsentry supports up to ${STORE_SCHEMA_VERSION}: it was written by a newer release`,
      );
    }
    markSchema = version < STORE_SCHEMA_VERSION;
  }
  const idBytes = meta.get('nodeId');
  if (idBytes !== undefined) {
    const id = decodeMetaValue(idBytes, 'nodeId');
    if (!isNodeId(id)) throw new StoreError(StoreErrorCode.CORRUPT, `${path} has an invalid node id`);
    return { nodeId: id, markSchema };
  }
  const id = randomBytes(8).toString('hex');
  put('nodeId', encodeMetaValue(id));
  return { nodeId: id, markSchema };
}
