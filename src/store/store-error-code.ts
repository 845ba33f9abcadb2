// The catalogue of StoreError codes raised by src/store/. Callers (policy, CLI, replication) switch
// on these stable codes, never on messages. Only src/store/ creates StoreErrors; lmdb's own errors
// are translated into these at one boundary (translateLmdbError in lmdb-env.ts).
import { StoreError } from '../util/errors.js';

/** Stable StoreError codes. */
export const StoreErrorCode = {
  /** The environment could not be opened (directory not creatable or writable, bad file, lock). */
  OPEN: 'STORE_ERR_OPEN',
  /** No environment exists at the path and the caller asked not to create one (the CLI's `create: false`). */
  NOT_FOUND: 'STORE_ERR_NOT_FOUND',
  /** The size limit was reached (MDB_MAP_FULL, the configured limit, or no space left on the disk). */
  FULL: 'STORE_ERR_FULL',
  /** A stored record (or a record received from a peer) could not be decoded or failed validation. */
  CORRUPT: 'STORE_ERR_CORRUPT',
  /** Any other I/O or LMDB failure while reading or committing. */
  IO: 'STORE_ERR_IO',
  /** The store was closed (shutdown) before or while the operation ran. */
  CLOSED: 'STORE_ERR_CLOSED',
  /** The store is not open yet (ResilientGreylistStore is still retrying to open it). */
  UNAVAILABLE: 'STORE_ERR_UNAVAILABLE',
  /** The caller passed something the store cannot hold (empty or over-long key, invalid record). */
  INVALID: 'STORE_ERR_INVALID',
} as const;

export type StoreErrorCode = (typeof StoreErrorCode)[keyof typeof StoreErrorCode];

/** Type guard: a StoreError carrying the given code. */
export function isStoreError(err: unknown, code?: StoreErrorCode): err is StoreError {
  return err instanceof StoreError && (code === undefined || err.code === code);
}
