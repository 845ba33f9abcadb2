// The catalogue of error codes raised by src/store/replication/ (carried by StoreError, the store
// area's error class). Status output, metrics and logs use these stable codes, never messages.
// Only replication code creates them; it must not reuse them for store (LMDB) failures.

/** Stable replication error codes. */
export const ReplicationErrorCode = {
  /** A frame broke the protocol: bad length, unknown type, undecodable or invalid body, wrong order. */
  PROTOCOL: 'STORE_ERR_REPL_PROTOCOL',
  /** A frame (or the bytes buffered for one) exceeded the size cap. */
  FRAME_TOO_LARGE: 'STORE_ERR_REPL_FRAME_TOO_LARGE',
  /** The peer speaks another protocol version. */
  VERSION: 'STORE_ERR_REPL_VERSION',
  /** TLS-PSK authentication failed (wrong key) or the peer's name does not match its identity. */
  AUTH: 'STORE_ERR_REPL_AUTH',
  /** The peer did not answer within the replication timeout (dead link, blackholed route). */
  TIMEOUT: 'STORE_ERR_REPL_TIMEOUT',
  /** The connection failed or closed (refused, reset, closed by the peer). */
  CONNECTION: 'STORE_ERR_REPL_CONNECTION',
  /** The node authenticated (it holds the key) but is not in this node's peer list: its changes are refused. */
  NOT_A_PEER: 'STORE_ERR_REPL_NOT_A_PEER',
  /** The peer is this node itself (same store node id and name), e.g. its own address in the peer list. */
  SELF: 'STORE_ERR_REPL_SELF',
  /** Another node (another store id) already has a session under the same node name: a copied config or a duplicate host name. */
  DUPLICATE_NAME: 'STORE_ERR_REPL_DUPLICATE_NAME',
  /** Two running nodes have one store id, the data dir of one being a copy of the other's (a cloned VM): under two names, or one from another process than the configured node. */
  DUPLICATE_STORE: 'STORE_ERR_REPL_DUPLICATE_STORE',
  /** This node's greylist store is not open (damaged, unreadable, still opening): nothing can be exchanged. */
  STORE_UNAVAILABLE: 'STORE_ERR_REPL_STORE_UNAVAILABLE',
  /** The peer reported an error and closed the session. */
  REMOTE: 'STORE_ERR_REPL_REMOTE',
  /** The replication settings are unusable (bad key, bad peer line). */
  CONFIG: 'STORE_ERR_REPL_CONFIG',
} as const;

export type ReplicationErrorCode = (typeof ReplicationErrorCode)[keyof typeof ReplicationErrorCode];
