// Replication settings from the validated configuration (the `replication` group of config/schema.ts),
// the cluster key format and its TLS-PSK derivation. Called by main.ts (startDaemon) and the CLI
// (`peer keygen`, `replication status`). It opens no sockets; every problem is a ConfigError naming the key.
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { hostname, networkInterfaces } from 'node:os';
import { isIP } from 'node:net';
import type { ConfigValues, Endpoint } from '../../config/load.js';
import { ConfigError, describeError } from '../../util/errors.js';
import { credentialPath } from '../../util/systemd.js';
import { isNodeId } from '../record-codec.js';

/** Said at start (and by config check) for peers without replication-listen. */
export const NO_LISTEN_WARNING =
  'peers are configured but replication-listen is not: this node sends its changes, but its peers have nowhere to connect, so it never receives theirs; set replication-listen';

/**
 * Name of the systemd credential holding the cluster key. The shipped unit runs mxsentry as a
 * DynamicUser, which cannot open a root-only key file; `LoadCredential=replication-key:FILE`
 * (README, "Replication") hands the service its own copy instead.
 */
export const KEY_CREDENTIAL = 'replication-key';

/** Length of the cluster key in bytes (256 bits). */
export const REPLICATION_KEY_BYTES = 32;

/** One configured peer: `name=host:port`. */
export interface PeerSpec {
  /** The peer's node-name (its TLS-PSK identity). */
  name: string;
  /** IP address or host name to dial. */
  host: string;
  port: number;
  /** As written, normalised: "mx2=192.0.2.2:7410". */
  text: string;
}

/** Everything the Replicator needs from the configuration. */
export interface ReplicationSettings {
  /** This node's name: its TLS-PSK identity and the name peers list it under. */
  nodeName: string;
  /** Where to accept peers' connections; undefined: no listener (this node only pushes). */
  listen: Endpoint | undefined;
  peers: PeerSpec[];
  /** The TLS pre-shared key derived from the cluster key (see derivePsk). */
  psk: Buffer;
  /** How often each peer link compares bucket digests and repairs differences. */
  digestIntervalMs: number;
  /** A link silent this long is closed and redialled (heartbeats run at a third of it). */
  timeoutMs: number;
  /** Log entries kept even when a peer has not acknowledged them; beyond it the digest repairs. */
  logMaxEntries: number;
  /**
   * The key was read from the systemd credential, a copy systemd makes when the service starts: a
   * reload reads that copy again, so a new key in its source file needs a restart.
   */
  keyFromCredential?: boolean;
}

/**
 * The greylist settings every node of a cluster must share, as one line told to peers in HELLO:
 * those that shape a triplet's key (nodes that differ each greylist the same retry again) and its
 * expiry (a record one node expires comes back from another).
 */
export function greylistKeyingOf(v: ConfigValues): string {
  return `lookup-by-host=${v['lookup-by-host'] === true ? 'yes' : 'no'} ipv4cidr=${String(v['ipv4cidr'])} ipv6cidr=${String(v['ipv6cidr'])} max-age=${String(v['max-age'])}s retry-window=${String(v['retry-window'])}s`;
}

/** A fresh random cluster key, as the hex text `replication-key` takes. */
export function generateReplicationKey(): string {
  return randomBytes(REPLICATION_KEY_BYTES).toString('hex');
}

/** Parses a cluster key: 64 hex digits (as `peer keygen` prints) or base64 of 32 bytes. Throws Error. */
export function parseReplicationKey(text: string): Buffer {
  const t = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) return Buffer.from(t, 'hex');
  if (/^[A-Za-z0-9+/]{43}=?$/.test(t)) {
    const b = Buffer.from(t, 'base64');
    if (b.length === REPLICATION_KEY_BYTES) return b;
  }
  throw new Error(`a replication key is 64 hex digits (run "mxsentry peer keygen"), got ${t.length} characters`);
}

/**
 * The TLS-PSK used on the wire: HMAC-SHA256 of a fixed label under the cluster key, so the key an
 * admin pastes is never used raw and cannot be confused with a key of another protocol.
 */
export function derivePsk(clusterKey: Buffer): Buffer {
  return createHmac('sha256', clusterKey).update('mxsentry replication TLS-PSK v1').digest();
}

/** What a node name (node-name, a peer's name) may be, as isNodeId checks it. */
export const NODE_NAME_RULE = 'must be 1-64 characters of A-Z a-z 0-9 _ . -';

/** Parses `name=host:port` (IPv6 as `name=[2001:db8::2]:7410`). Throws Error with what is expected. */
export function parsePeerSpec(text: string): PeerSpec {
  const m = /^([^=\s]+)=(?:\[([^\]]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text.trim());
  if (!m) throw new Error(`"${text}" is not NAME=HOST:PORT (e.g. mx2=192.0.2.2:7410, IPv6 as mx2=[2001:db8::2]:7410)`);
  const name = m[1]!;
  if (!isNodeId(name)) throw new Error(`peer name "${name}" ${NODE_NAME_RULE}`);
  const host = m[2] ?? m[3]!;
  if (m[2] !== undefined && isIP(host) !== 6) throw new Error(`"${host}" in brackets is not an IPv6 address`);
  // A host name's last label is never all digits (RFC 1123 s2.1): "999.1.1.1" is a mistyped address.
  if (m[3] !== undefined && isIP(host) === 0 && (!/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$/.test(host) || /(^|\.)\d+\.?$/.test(host))) {
    throw new Error(`"${host}" is neither an IP address nor a host name`);
  }
  const port = Number(m[4]);
  if (port < 1 || port > 65535) throw new Error(`port ${port} is out of range`);
  return { name, host, port, text: `${name}=${isIP(host) === 6 ? `[${host}]` : host}:${port}` };
}

/** The node name used when `node-name` is empty: the host name up to its first dot. */
export function defaultNodeName(): string {
  const short = hostname().split('.')[0] ?? '';
  const cleaned = short.replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 64);
  return cleaned === '' ? 'mxsentry' : cleaned;
}

function configError(key: string, message: string, cause?: unknown, index?: number): ConfigError {
  return new ConfigError('CONFIG_ERR_VALUE', `${key}: ${message}`, { key, ...(index === undefined ? {} : { index }), ...(cause === undefined ? {} : { cause }) });
}

/** The node name from `node-name` (or the host name); throws ConfigError when it is not usable. */
export function nodeNameOf(v: ConfigValues): string {
  const configured = (v['node-name'] as string | undefined) ?? '';
  const name = configured === '' ? defaultNodeName() : configured;
  if (!isNodeId(name)) throw configError('node-name', `"${name}" ${NODE_NAME_RULE}`);
  return name;
}

/**
 * Reads the cluster key: from the systemd credential KEY_CREDENTIAL when the unit passes one (it
 * stands for `replication-key-file`, whose file the service user may not open), else from
 * `replication-key` or `replication-key-file`. Throws ConfigError naming the key.
 */
export function clusterKeyOf(v: ConfigValues, env: NodeJS.ProcessEnv = process.env): Buffer {
  const inline = (v['replication-key'] as string | undefined) ?? '';
  const file = (v['replication-key-file'] as string | undefined) ?? '';
  if (inline !== '' && file !== '') throw configError('replication-key', 'set replication-key or replication-key-file, not both');
  const credential = credentialPath(KEY_CREDENTIAL, env);
  if (credential !== undefined) {
    if (inline !== '') throw configError('replication-key', `set replication-key or the systemd credential ${KEY_CREDENTIAL} (LoadCredential=), not both`);
    try {
      // systemd made this copy readable by the service alone: its mode says nothing about the source.
      return parseReplicationKey(readFileSync(credential, 'utf8'));
    } catch (err) {
      throw configError('replication-key-file', `systemd credential ${credential}: ${describeError(err)}`, err);
    }
  }
  if (inline !== '') {
    try {
      return parseReplicationKey(inline);
    } catch (err) {
      throw configError('replication-key', describeError(err), err);
    }
  }
  if (file === '') {
    throw configError('replication-key', 'replication is configured (peer or replication-listen) but no key is set: run "mxsentry peer keygen" and follow what it prints on every node');
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
    // A key readable by other users is a key anyone on the host can use to join the cluster.
    if ((statSync(file).mode & 0o077) !== 0) throw new Error(`${file} is readable by group or others: chmod 600 it`);
  } catch (err) {
    const denied = (err as NodeJS.ErrnoException).code === 'EACCES'
      ? `; under the systemd unit (DynamicUser) let systemd pass it: \`systemctl edit mxsentry\`, then [Service] LoadCredential=${KEY_CREDENTIAL}:${file}`
      : '';
    throw configError('replication-key-file', `cannot use ${file}: ${describeError(err)}${denied}`, err);
  }
  try {
    return parseReplicationKey(text);
  } catch (err) {
    throw configError('replication-key-file', `${file}: ${describeError(err)}`, err);
  }
}

/**
 * The replication settings, or undefined when replication is off (no `replication-listen` and no
 * `peer`). Throws the first ConfigError of replicationProblemsOf when a value is unusable.
 */
export function replicationSettingsOf(v: ConfigValues): ReplicationSettings | undefined {
  const checked = checkReplication(v);
  if (checked.problems.length > 0) throw checked.problems[0]!;
  return checked.settings;
}

/**
 * Every problem replicationSettingsOf would refuse (node name, each peer line, the key), for
 * `config check` and `serve` to list them all; each names its key, and a peer's its `index`.
 * Reads replication-key-file like replicationSettingsOf does; nothing else.
 */
export function replicationProblemsOf(v: ConfigValues): ConfigError[] {
  return checkReplication(v).problems;
}

/** True when a peer line points at this node's own listener: its address, or one of this host's under a wildcard. */
function isOwnListener(listen: Endpoint, peer: PeerSpec): boolean {
  if (peer.port !== listen.port || listen.port === 0) return false;
  if (peer.host === listen.address) return true;
  if (listen.address !== '0.0.0.0' && listen.address !== '::') return false;
  return Object.values(networkInterfaces()).some((list) => list?.some((a) => a.address === peer.host && (listen.address === '::' || a.family === 'IPv4')));
}

function checkReplication(v: ConfigValues): { settings: ReplicationSettings | undefined; problems: ConfigError[] } {
  const listenValue = v['replication-listen'];
  const listen = typeof listenValue === 'object' && listenValue !== null ? (listenValue as Endpoint) : undefined;
  const peerTexts = (v['peer'] as string[] | undefined) ?? [];
  if (listen === undefined && peerTexts.length === 0) return { settings: undefined, problems: [] };
  const problems: ConfigError[] = [];
  const collect = <T>(fn: () => T): T | undefined => {
    try {
      return fn();
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems.push(err);
      return undefined;
    }
  };
  const nodeName = collect(() => nodeNameOf(v));
  const peers: PeerSpec[] = [];
  peerTexts.forEach((text, index) => {
    let spec: PeerSpec;
    try {
      spec = parsePeerSpec(text);
    } catch (err) {
      problems.push(configError('peer', describeError(err), err, index));
      return;
    }
    const sameAddress = peers.find((p) => p.port === spec.port && p.host.toLowerCase() === spec.host.toLowerCase());
    if (spec.name === nodeName) problems.push(configError('peer', `"${spec.text}" names this node itself (node-name ${nodeName})`, undefined, index));
    else if (peers.some((p) => p.name === spec.name)) problems.push(configError('peer', `peer name "${spec.name}" is listed twice`, undefined, index));
    else if (sameAddress) problems.push(configError('peer', `"${spec.text}" has the address of peer ${sameAddress.name} (${sameAddress.text}): each node listens on its own`, undefined, index));
    else if (listen && isOwnListener(listen, spec)) problems.push(configError('peer', `"${spec.text}" is this node's own replication-listen (${listen.text}): a node has no peer line for itself`, undefined, index));
    else peers.push(spec);
  });
  const clusterKey = collect(() => clusterKeyOf(v));
  if (nodeName === undefined || clusterKey === undefined || problems.length > 0) return { settings: undefined, problems };
  return {
    settings: {
      nodeName,
      listen,
      peers,
      psk: derivePsk(clusterKey),
      digestIntervalMs: ((v['replication-digest-interval'] as number | undefined) ?? 3600) * 1000,
      timeoutMs: ((v['replication-timeout'] as number | undefined) ?? 15) * 1000,
      logMaxEntries: (v['replication-log-max'] as number | undefined) ?? 1_000_000,
      keyFromCredential: credentialPath(KEY_CREDENTIAL, process.env) !== undefined,
    },
    problems,
  };
}
