// Who may open a replication session here: the checks of an inbound peer's HELLO that refuse it
// before anything of it is applied. Used by replicator.ts (receiveSession, and a reload that closes
// the sessions of removed peers). Pure: it reads the settings and the inbound state it is given.
import { StoreError } from '../../util/errors.js';
import { PROTOCOL_VERSION, type ReplicationMessage } from './frame-codec.js';
import { ReplicationErrorCode } from './replication-error-code.js';
import type { ReplicationSettings } from './replication-settings.js';
import type { InboundState } from './replication-status.js';

/** The refusal of a node that holds the key but has no peer line here. */
export function notAPeer(name: string, nodeName: string): StoreError {
  return new StoreError(ReplicationErrorCode.NOT_A_PEER, `${name} is not in the peer list of ${nodeName} (no "peer: ${name}=..." line there): its changes are refused; add that line there, or remove ${nodeName} from the peer lines of ${name}`);
}

/**
 * Throws the StoreError that refuses an inbound HELLO: another protocol version, a name other than
 * the TLS-PSK identity, a node without a peer line here (unless it is this node itself: the caller
 * reports that after answering HELLO), a store id that another peer's live link or session has
 * (`sharing`, that peer's name), a store id other than the one this node's connected link
 * (`dialled`) finds at the peer's configured address, the same store id from another process than
 * the one found there (`dialled.instanceId`, set while the process that link reached answers), or a
 * second node under a name that has a live session with another store id. Returns normally when the
 * session may go on.
 */
export function checkInboundHello(
  hello: Extract<ReplicationMessage, { type: 'hello' }>,
  identity: string,
  ownNodeId: string,
  settings: ReplicationSettings,
  known: InboundState | undefined,
  dialled: { nodeId: string; address: string; instanceId?: string } | undefined,
  sharing: string | undefined,
): void {
  if (hello.version !== PROTOCOL_VERSION) {
    throw new StoreError(ReplicationErrorCode.VERSION, `${identity} speaks replication protocol ${hello.version}, this node ${PROTOCOL_VERSION}: upgrade both to the same mxsentry version`);
  }
  if (hello.name !== identity) {
    throw new StoreError(ReplicationErrorCode.AUTH, `peer authenticated as "${identity}" but introduced itself as "${hello.name}"`);
  }
  if (hello.nodeId === ownNodeId) return;
  // Holding the key is not enough: only a node listed in a peer line writes into this store, so a
  // retired node (its line removed) that still runs, or a new one not yet added here, is refused.
  if (!settings.peers.some((p) => p.name === hello.name)) throw notAPeer(hello.name, settings.nodeName);
  if (sharing !== undefined) throw duplicateStore(hello.name, sharing, hello.nodeId);
  if (dialled && dialled.nodeId !== hello.nodeId) {
    // This node's own link to the peer's configured address reaches another store under that name.
    throw notAtPeerAddress(hello.name, dialled, `this one ${hello.nodeId}`);
  }
  if (dialled?.instanceId !== undefined && hello.instanceId !== undefined && dialled.nodeId === hello.nodeId && dialled.instanceId !== hello.instanceId) {
    // The same store under the same name, from another process than the one this node's live link
    // reaches at the peer's address: a copy of that node's data dir and configuration.
    throw copyOfNode(hello.name, dialled.address, hello.nodeId);
  }
  if (known && known.sessions > 0 && known.nodeId !== hello.nodeId) {
    // Two running nodes under one name (a copied config, two hosts with one short host name) would
    // both look healthy while each missed the other's changes. The first keeps its session.
    throw duplicateName(hello.name, `another node is already connected as "${hello.name}" (store id ${known.nodeId}, this one ${hello.nodeId})`);
  }
}

/** Two running nodes use one node-name: the refusal (or the closing of the other's session). */
export function duplicateName(name: string, what: string): StoreError {
  return new StoreError(
    ReplicationErrorCode.DUPLICATE_NAME,
    `${what}: two nodes share the name "${name}"; give each its own node-name (a node whose store was re-created gets in once its old session times out or this node's link reconnects to it)`,
  );
}

/**
 * Two nodes under different names with one store id: the data dir of one is a copy of the other's (a
 * cloned VM, a backup put on a new host). They would count passes under one id, and every peer would
 * keep one cursor for both, so each would miss changes: the second to connect is refused. `other` is
 * the other node's name, or "this node (NAME)"; `sameName` when the copy kept the node-name too (its
 * whole configuration copied): only then is a new node-name part of the fix.
 */
export function duplicateStore(name: string, other: string, nodeId: string, sameName = false): StoreError {
  return new StoreError(
    ReplicationErrorCode.DUPLICATE_STORE,
    `${name} and ${other} have the same store id ${nodeId}: the data dir of one is a copy of the other's (a cloned VM?); on the copy, ${sameName ? 'give it a node-name of its own, ' : ''}stop mxsentry, move <data-dir>/greylist aside and start it again: it gets a store id of its own and its peers fill it`,
  );
}

/**
 * A node that connects as `name` with that node's store id, but is another process than the one at
 * `name`'s configured address: a copy of its data dir and configuration (a cloned VM) running elsewhere.
 */
export function copyOfNode(name: string, address: string, nodeId: string): StoreError {
  return new StoreError(
    ReplicationErrorCode.DUPLICATE_STORE,
    `the node connecting as "${name}" (store id ${nodeId}) is not the node at ${address} that replicates as "${name}" with that store: it runs on a copy of its data dir and configuration (a cloned VM?); on the copy, set a node-name of its own, stop mxsentry, move <data-dir>/greylist aside and start it again`,
  );
}

/**
 * A session under `name` from another store than the one this node's link finds at the peer's
 * configured address (`dialled`): `other` says which (the refused HELLO, or an open session).
 */
export function notAtPeerAddress(name: string, dialled: { nodeId: string; address: string }, other: string): StoreError {
  return duplicateName(name, `the node at ${dialled.address} (the address of "${name}") has store id ${dialled.nodeId}, ${other}`);
}

/**
 * Inbound connections refused since start, and the last one: who, from where, why and when. A
 * connection dropped before authentication (no TLS-PSK client: a monitoring check of the port, a
 * scanner) counts too, but is kept apart as `lastDropped`, so that such checks every minute do not
 * hide the last refusal of a node that spoke TLS-PSK (a wrong key, a missing peer line).
 */
export class InboundRefusals {
  count = 0;
  /** Of `count`, those dropped before authentication. */
  dropped = 0;
  last: { text: string; atMs: number } | null = null;
  lastDropped: { text: string; atMs: number } | null = null;

  note(code: string, identity: string | null, remote: string | null, message: string, atMs: number, beforeAuth = false): void {
    this.count++;
    const entry = { text: `${identity || 'no identity'} from ${remote ?? 'an unknown address'}: ${code}: ${message}`, atMs };
    if (beforeAuth) {
      this.dropped++;
      this.lastDropped = entry;
    } else {
      this.last = entry;
    }
  }
}
