// `mxsentry peer keygen` (a new cluster key and the lines to paste into every node's config) and
// `mxsentry replication status` (each peer: connected or not, lag in entries and seconds, last error).
// Status asks the running daemon over the control socket; when none answers it falls back to the
// status file the daemon last wrote plus the cursors in LMDB. Neither command changes any state
// except keygen's --key-file, which only creates a new file.
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import type { ConfigValues } from '../config/load.js';
import { sendControlRequest } from '../control/control-client.js';
import { askedDespiteProblems, exitCodeOf, mayMoveSocket, SOCKET_NOT_FOUND } from './control-cli.js';
import { ControlError } from '../control/control-error.js';
import { controlSocketPath } from '../control/operations.js';
import { LmdbGreylistStore } from '../store/lmdb-greylist-store.js';
import { CLOCK_SKEW_ADVICE, CLOCK_SKEW_WARN_MS, SETTINGS_ADVICE, peerStatus, readStatusFile, type PeerStatus, type ReplicationStatus } from '../store/replication/replication-status.js';
import { defaultNodeName, generateReplicationKey, KEY_CREDENTIAL, NODE_NAME_RULE, parsePeerSpec, replicationSettingsOf } from '../store/replication/replication-settings.js';
import { systemClock } from '../util/clock.js';
import { parseAddress } from '../util/cidr.js';
import { describeError } from '../util/errors.js';
import { createRootLogger } from '../util/logger.js';
import { isNodeId } from '../store/record-codec.js';
import { addConfigFlags, COMMAND_NOT_RUN, printConfigErrors } from './config-flags.js';
import { loadDaemonConfig, type DaemonConfig } from './daemon-config.js';

/** Default replication port suggested by keygen (unassigned by IANA, next to postgrey's 10023 in spirit). */
export const DEFAULT_REPLICATION_PORT = 7410;

interface KeygenArgs {
  action: string;
  name?: string;
  address?: string;
  port?: string;
  'key-file'?: string;
}

/** Where keygen tells the admin to keep the key when --key-file names no other file. */
export const DEFAULT_KEY_FILE = '/etc/mxsentry/cluster.key';

/**
 * The text `peer keygen` prints, for a key and this node's name/address/port. The key goes into a
 * root-only file named by replication-key-file, never into mxsentry.conf: the shipped unit's
 * DynamicUser must read the config (mode 0644) and can read a 0600 key file only as a credential.
 */
export function keygenText(key: string, opts: { name: string; address: string | undefined; port: number; keyFile?: string }): string {
  const file = resolve(opts.keyFile ?? DEFAULT_KEY_FILE);
  const advertised = opts.address ?? 'THIS-HOST-ADDRESS';
  // replication-listen takes an IP address only, while a peer line may name the host: for a host
  // name this node listens on every address (narrow it to the one the name resolves to).
  // Without --address the admin picks the address (the line is refused until then), rather than
  // every interface by default.
  const isIp = opts.address !== undefined && parseAddress(opts.address) !== null;
  const listenHost = isIp ? (opts.address!.includes(':') ? `[${opts.address}]` : opts.address) : opts.address === undefined ? 'THIS-HOST-ADDRESS' : '0.0.0.0';
  return [
    '# mxsentry replication: a new cluster key. It lets a host join the cluster: keep it secret.',
    '# 1. Put the SAME key on EVERY node, in a file only root can read (not in mxsentry.conf, which the',
    '#    service must be able to read). Nodes holding another key are refused and logged.',
    opts.keyFile
      ? `#    The key was written to ${file} (mode 0600); copy that file to every node (same path, mode 0600).`
      : `#    On every node: (umask 077; echo ${key} > ${file})`,
    '#    Under the shipped systemd unit (DynamicUser=yes) the service cannot open that file itself:',
    '#    systemd passes it as a credential. On every node, `systemctl edit mxsentry` and add:',
    '#      [Service]',
    `#      LoadCredential=${KEY_CREDENTIAL}:${file}`,
    '#    and in mxsentry.conf:',
    `replication-key-file: ${file}`,
    '',
    `# 2. On this node (${opts.name}):`,
    `node-name: ${opts.name}`,
    ...(opts.address !== undefined && !isIp ? [`# ${opts.address} is a name: replication-listen takes an address (this one listens on all of them).`] : []),
    ...(opts.address === undefined ? ['# THIS-HOST-ADDRESS: the address the other nodes reach this node at (or 0.0.0.0 for every interface; the key guards the port).'] : []),
    `replication-listen: ${listenHost}:${opts.port}`,
    '',
    '# 3. On every OTHER node, one peer line for this node (and here, one per other node):',
    `peer: ${opts.name}=${advertised.includes(':') ? `[${advertised}]` : advertised}:${opts.port}`,
    '',
    '# Then restart (or start) mxsentry on each node and check with: mxsentry replication status',
    '',
  ].join('\n');
}

/** `mxsentry peer keygen`. */
export function peerCommand(): CommandModule<object, KeygenArgs> {
  return {
    command: 'peer <action>',
    describe: 'Replication peers: keygen prints a new cluster key and the config lines to paste into every node',
    builder: (y: Argv) =>
      y
        .positional('action', { type: 'string', choices: ['keygen'], demandOption: true })
        .option('name', { type: 'string', describe: 'This node\'s node-name (default: the host name)' })
        .option('address', { type: 'string', describe: 'Address the other nodes reach this node at (for their peer line)' })
        .option('port', { type: 'string', default: String(DEFAULT_REPLICATION_PORT), describe: 'Replication port' })
        .option('key-file', { type: 'string', describe: `Write the key to this new file (mode 0600) instead of printing it (e.g. ${DEFAULT_KEY_FILE})` }) as unknown as Argv<KeygenArgs>,
    handler: (argv: ArgumentsCamelCase<KeygenArgs>) => {
      const name = argv.name ?? defaultNodeName();
      const portText = String(argv.port ?? DEFAULT_REPLICATION_PORT).trim();
      const port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
      // Each flag on its own first: the combined peer line would blame "vm=127.0.0.1:NaN".
      if (!(port >= 1 && port <= 65535)) {
        process.stderr.write(`mxsentry: --port must be a port number 1-65535, got "${portText}"\n`);
        process.exitCode = 2;
        return;
      }
      if (!isNodeId(name)) {
        process.stderr.write(`mxsentry: --name "${name}" ${NODE_NAME_RULE}\n`);
        process.exitCode = 2;
        return;
      }
      try {
        // Validates name, address and port the way the daemon will read the peer line.
        parsePeerSpec(`${name}=${argv.address && argv.address.includes(':') ? `[${argv.address}]` : argv.address ?? '127.0.0.1'}:${port}`);
      } catch (err) {
        process.stderr.write(`mxsentry: ${describeError(err)}\n`);
        process.exitCode = 2;
        return;
      }
      const key = generateReplicationKey();
      const keyFile = argv['key-file'];
      if (keyFile) {
        try {
          writeFileSync(keyFile, `${key}\n`, { mode: 0o600, flag: 'wx' });
        } catch (err) {
          process.stderr.write(`mxsentry: cannot create ${keyFile}: ${describeError(err)}\n`);
          process.exitCode = 1;
          return;
        }
      }
      process.stdout.write(keygenText(key, { name, address: argv.address, port, ...(keyFile ? { keyFile } : {}) }));
    },
  };
}

interface StatusArgs {
  action: string;
  json?: boolean;
  config?: string;
}

/** Where the status came from, for the first line of the output. */
type StatusSource = { kind: 'daemon' } | { kind: 'file'; writtenAtMs: number; pid: number; running: boolean };

/**
 * Whether the daemon that wrote the status file still runs: its process exists and it wrote the
 * file lately (it rewrites it every few seconds; an old file's pid may have been reused).
 */
function isRecentWriterAlive(pid: number, writtenAtMs: number, nowMs: number): boolean {
  if (nowMs - writtenAtMs > 60_000) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, under another user (the systemd unit's DynamicUser).
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function fmtAge(ms: number | null, nowMs: number): string {
  if (ms === null) return '-';
  const sec = Math.max(0, Math.round((nowMs - ms) / 1000));
  return sec < 120 ? `${sec}s ago` : sec < 7200 ? `${Math.round(sec / 60)}m ago` : `${Math.round(sec / 3600)}h ago`;
}

/**
 * The LAST ERROR cell: the error and its age; one from before the link's current connection (a
 * peer that was not up yet at start) is marked as such, so a healthy link does not look broken.
 */
function lastErrorCell(p: PeerStatus, nowMs: number): string {
  if (!p.lastError) return '-';
  // A running daemon clears connectedSinceMs when a link drops; a stopped one's file keeps its last
  // connection, and an error from before it was already healed then.
  const healed = p.connectedSinceMs !== null && p.lastErrorAtMs !== null && p.lastErrorAtMs <= p.connectedSinceMs;
  if (!healed) return `${p.lastError} (${fmtAge(p.lastErrorAtMs, nowMs)})`;
  return `- (before ${p.connected ? 'this' : 'its last'} connection: ${p.lastError}, ${fmtAge(p.lastErrorAtMs, nowMs)})`;
}

/** Renders the status as the table `replication status` prints. */
export function formatReplicationStatus(s: ReplicationStatus, source: StatusSource, nowMs: number): string {
  const lines: string[] = [];
  if (!s.enabled) return 'replication is not configured on this node (no peer, no replication-listen)\n';
  lines.push(`node ${s.nodeName ?? '?'} (store id ${s.nodeId ?? '?'}), listening ${s.listen ?? 'nowhere (sends only: set replication-listen to receive the peers\' changes)'}, log at sequence ${s.lastSeq}`);
  if (source.kind === 'file' && source.running) {
    lines.push(`NOTE: the daemon (pid ${source.pid}) runs but did not answer on the control socket named here; connection state as it wrote it ${fmtAge(source.writtenAtMs, nowMs)}; lag from the store now.`);
  } else if (source.kind === 'file') {
    lines.push(`NOTE: no daemon answered on the control socket; connection state as last written by pid ${source.pid} ${fmtAge(source.writtenAtMs, nowMs)}; lag from the store now.`);
  }
  const header = ['PEER', 'ADDRESS', 'CONNECTED', 'INBOUND', 'LAG(ENTRIES)', 'LAG(S)', 'LAST DIGEST', 'LAST ERROR'];
  const rows = s.peers.map((p: PeerStatus) => [
    p.name,
    p.address ?? '(inbound only)',
    p.connected ? 'yes' : 'no',
    p.inbound ? 'yes' : 'no',
    p.lagRecords === null ? '?' : String(p.lagRecords),
    p.lagSec === null ? '?' : p.lagSec.toFixed(1),
    fmtAge(p.lastDigestAtMs, nowMs),
    lastErrorCell(p, nowMs),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]): string => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  lines.push(fmt(header), ...rows.map(fmt));
  const dropped = s.droppedBeforeAuth ?? 0;
  if (s.refusedConnections - dropped > 0) {
    const last = s.lastRefused ? ` (the last ${fmtAge(s.lastRefused.atMs, nowMs)}: ${s.lastRefused.text})` : '';
    lines.push(`refused inbound connections since start: ${s.refusedConnections - dropped}${last}`);
  }
  if (dropped > 0) {
    const last = s.lastDropped ? ` (the last ${fmtAge(s.lastDropped.atMs, nowMs)}: ${s.lastDropped.text})` : '';
    lines.push(`inbound connections dropped before authentication (not TLS-PSK: port checks, scanners): ${dropped}${last}`);
  }
  if (s.storeProblem) lines.push(`WARNING: this node's greylist store is not open (${s.storeProblem}): nothing is replicated until it is`);
  if (s.storeFailure) lines.push(`WARNING: this node's greylist store is failing (${s.storeFailure}): peers' records are not merged until it recovers`);
  if (s.clampedRecords > 0) lines.push(`records with future times clamped since start: ${s.clampedRecords}`);
  for (const p of s.peers) {
    if (p.settingsDiffer) lines.push(`WARNING: the greylist settings of ${p.name} differ from this node's (${p.settingsDiffer}): ${SETTINGS_ADVICE}`);
    if (p.clockOffsetMs !== null && Math.abs(p.clockOffsetMs) > CLOCK_SKEW_WARN_MS) {
      lines.push(`WARNING: the clock of ${p.name} is ${Math.abs(Math.round(p.clockOffsetMs / 1000))} s ${p.clockOffsetMs > 0 ? 'ahead of' : 'behind'} this node's: ${CLOCK_SKEW_ADVICE}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** Recomputes each peer's lag from the cursors in LMDB (the daemon may be down; LMDB allows a second reader). */
async function lagFromStore(v: ConfigValues, status: ReplicationStatus): Promise<ReplicationStatus> {
  const logger = createRootLogger('warn', process.stderr);
  const store = await LmdbGreylistStore.open({ dataDir: v['data-dir'] as string, clock: systemClock, logger, mapSizeBytes: v['store-map-size'] as number, create: false, readOnly: true });
  try {
    const lastSeq = await store.getLastSeq();
    const now = systemClock.nowMs();
    const peers: PeerStatus[] = [];
    for (const p of status.peers) {
      if (p.nodeId === null || p.address === null) {
        peers.push(p);
        continue;
      }
      const acked = await store.getCursor(p.nodeId);
      const lag = Math.max(0, lastSeq - acked);
      const oldest = lag > 0 ? (await store.readLog(acked, 1))[0] : undefined;
      peers.push({ ...p, ackedSeq: acked, lagRecords: lag, lagSec: oldest ? Math.max(0, (now - oldest.atMs) / 1000) : 0 });
    }
    return { ...status, lastSeq, peers };
  } finally {
    await store.close();
  }
}

/** The file's replication settings (undefined: none); false after printing why they are unusable (exit code 2). */
function settingsOrReport(v: ConfigValues): ReturnType<typeof replicationSettingsOf> | false {
  try {
    return replicationSettingsOf(v);
  } catch (err) {
    process.stderr.write(`mxsentry: ${describeError(err)}\n`);
    process.exitCode = 2;
    return false;
  }
}

/** `mxsentry replication status`. Exit 0 when every configured peer is connected both ways, 1 otherwise, 2 on bad config, 4 when the control socket may not be used. */
export function replicationCommand(): CommandModule<object, StatusArgs> {
  return {
    command: 'replication <action>',
    describe: 'Greylist replication: status shows each peer, connected or not, lag in entries and seconds, last error (a cluster key: mxsentry peer keygen)',
    builder: (y: Argv) =>
      addConfigFlags(
        // No `choices`: "keygen" is taken only to point at `peer keygen`, where an admin looking here
        // expects it, and a choices list would offer it as an action of its own.
        y.positional('action', { type: 'string', describe: 'status (a cluster key and the peer lines: mxsentry peer keygen)', demandOption: true }).option('json', { type: 'boolean', describe: 'Print JSON' }),
        { listed: false, shown: ['data-dir', 'control-socket'] },
      ).epilog('A configuration with problems outside control-socket and data-dir (a key set twice since the daemon started) still reaches the running daemon: the problems are listed, and its status shown.') as unknown as Argv<StatusArgs>,
    handler: async (argv: ArgumentsCamelCase<StatusArgs>) => {
      if (argv.action === 'keygen') {
        process.stderr.write('mxsentry: the cluster key and the peer lines are made by `mxsentry peer keygen` (see --help there)\n');
        process.exitCode = 2;
        return;
      }
      if (argv.action !== 'status') {
        process.stderr.write(`mxsentry: unknown replication action "${String(argv.action)}": the one action is status (mxsentry replication --help)\n`);
        process.exitCode = 2;
        return;
      }
      const cfg = loadDaemonConfig(argv as Record<string, unknown>, undefined, { keepProblems: true });
      if (!cfg) return;
      if (cfg.problems.length > 0) {
        await statusDespiteProblems(cfg, argv);
        return;
      }
      const v = cfg.values;
      let status: ReplicationStatus | undefined;
      let source: StatusSource = { kind: 'daemon' };
      let hung = false;
      try {
        const answer = await askReplicationStatus(controlSocketPath(v));
        status = answer.configured && answer.status ? answer.status : undefined;
        if (!answer.configured) {
          // The file may have turned replication on since the daemon started, which takes a restart:
          // a script must not read that as "every peer connected".
          const settings = settingsOrReport(v);
          if (settings === false) return;
          if (settings) process.stderr.write(`mxsentry: the configuration sets up replication (peer ${settings.peers.map((p) => p.name).join(', ') || 'none'}), but the running daemon started without it: restart mxsentry (turning replication on needs a restart)\n`);
          process.stdout.write(argv.json ? `${JSON.stringify({ enabled: false, configured: settings !== undefined })}\n` : 'replication is not configured on the running daemon\n');
          process.exitCode = settings ? 1 : 0;
          return;
        }
      } catch (err) {
        // A daemon that hangs (or is overloaded) still left its last saved status: shown, with a note.
        hung = err instanceof ControlError && err.code === 'CONTROL_ERR_TIMEOUT';
        if (!(err instanceof ControlError) || (err.code !== 'CONTROL_ERR_NOT_RUNNING' && !hung)) {
          process.stderr.write(`mxsentry: asking the daemon failed: ${describeError(err)}\n`);
          // As the other control commands: 4 when this user may not use the control socket.
          process.exitCode = err instanceof ControlError && err.code === 'CONTROL_ERR_PERMISSION' ? exitCodeOf(err) : 1;
          return;
        }
        const file = join(v['data-dir'] as string, 'replication-status.json');
        let saved;
        try {
          saved = readStatusFile(file);
        } catch (readErr) {
          process.stderr.write(`mxsentry: ${file}: ${describeError(readErr)}\n`);
        }
        if (!saved && hung) {
          process.stderr.write(`mxsentry: ${describeError(err)}: the daemon hangs or is overloaded, and it never saved its status to ${file}\n`);
          process.exitCode = 1;
          return;
        }
        if (!saved) {
          // Nothing to report on: fine when the configuration sets up no replication (exit 0, as documented).
          const settings = settingsOrReport(v);
          if (settings === false) return;
          if (!settings) {
            process.stdout.write(argv.json ? `${JSON.stringify({ enabled: false, configured: false })}\n` : 'replication is not configured (no peer, no replication-listen)\n');
            // Where it looked, on stderr: stdout stays the one line scripts read.
            if (!argv.json) process.stderr.write(`mxsentry: looked in ${cfg.file ?? 'no configuration file (defaults and flags only)'}, and found no daemon answering on ${controlSocketPath(v)}\n`);
            return;
          }
          process.stderr.write(`mxsentry: no daemon is running (control socket ${controlSocketPath(v)}) and it never wrote ${file}\n`);
          process.exitCode = 1;
          return;
        }
        const running = isRecentWriterAlive(saved.pid, saved.writtenAtMs, systemClock.nowMs());
        source = { kind: 'file', writtenAtMs: saved.writtenAtMs, pid: saved.pid, running };
        if (hung) {
          process.stderr.write(`mxsentry: ${describeError(err)}: the daemon hangs or is overloaded; its status as it last saved it follows\n`);
        } else if (running) {
          process.stderr.write(`mxsentry: the daemon (pid ${saved.pid}) is running but does not answer on ${controlSocketPath(v)}: its control socket is elsewhere; name it with --control-socket or --config\n`);
        }
        // A daemon that is not running has nothing connected, whatever the file last said.
        status = running ? saved : { ...saved, peers: saved.peers.map((p) => ({ ...p, connected: false, inbound: false })) };
        if (!saved.enabled) {
          // The daemon last ran without replication; the file may be older than the configuration.
          const settings = settingsOrReport(v);
          if (settings === false) return;
          if (settings) {
            process.stderr.write(
              running
                ? 'mxsentry: the running daemon started without replication, which the configuration now sets up: restart mxsentry (turning replication on needs a restart); the configured peers are shown, none connected\n'
                : 'mxsentry: no daemon is running, and it last ran without replication: the configured peers are shown, none connected\n',
            );
            const common = { nodeId: null, state: undefined, inbound: undefined, store: undefined, logger: createRootLogger('warn', process.stderr), lastSeq: saved.lastSeq, firstEntry: async () => undefined, now: systemClock.nowMs() };
            status = {
              ...saved,
              enabled: true,
              nodeName: settings.nodeName,
              listen: settings.listen?.text ?? null,
              // Never connected: peerStatus gives the empty row (lag from the store follows below).
              peers: await Promise.all(settings.peers.map((p) => peerStatus({ ...common, name: p.name, address: `${p.host}:${p.port}` }))),
            };
          }
        }
        try {
          status = await lagFromStore(v, status);
        } catch (storeErr) {
          process.stderr.write(`mxsentry: cannot read the greylist store for lag: ${describeError(storeErr)}\n`);
          // Not known: the file's figures are the daemon's at its last write, not "from the store now".
          status = { ...status, peers: status.peers.map((p) => ({ ...p, lagRecords: null, lagSec: null })) };
        }
      }
      if (!status) {
        process.exitCode = 1;
        return;
      }
      printStatus(status, source, hung, argv);
    },
  };
}

/** How long `replication status` waits for the daemon's answer before it counts as hung. */
const STATUS_ANSWER_TIMEOUT_MS = 10_000;

/** The running daemon's replication status over its control socket (rejects with a ControlError). */
async function askReplicationStatus(socket: string): Promise<{ configured?: boolean; status?: ReplicationStatus }> {
  return (await sendControlRequest(socket, { command: 'replication-status' }, STATUS_ANSWER_TIMEOUT_MS)) as { configured?: boolean; status?: ReplicationStatus };
}

/** Prints the status (table or --json) and sets the exit code: 0 only when every peer is connected both ways. */
function printStatus(status: ReplicationStatus, source: StatusSource, hung: boolean, argv: { json?: boolean }): void {
  // `running`: the state is the file's, written by a daemon that still runs (its socket is elsewhere).
  if (argv.json) process.stdout.write(`${JSON.stringify({ source: source.kind, ...(source.kind === 'file' ? { running: source.running } : {}), ...status }, null, 2)}\n`);
  else process.stdout.write(formatReplicationStatus(status, source, systemClock.nowMs()));
  // Both directions count: a peer whose link to this node is down sends us none of its changes.
  // Not asked (a daemon whose socket is elsewhere): its last written state is no all-clear.
  const unverified = source.kind === 'file' && source.running;
  process.exitCode = hung || unverified || (status.enabled && status.peers.some((p) => p.address !== null && (!p.connected || !p.inbound))) ? 1 : 0;
}

/**
 * `replication status` on a configuration with problems (e.g. a key set twice after the daemon
 * started): the running daemon is still asked when none of them may move its control socket (or
 * --control-socket names it), and its status is shown after the problems. Everything else (no
 * daemon, or one without replication) would need the file's values, which cannot be trusted: the
 * problems are listed, with what the daemon said, and exit 2.
 */
async function statusDespiteProblems(cfg: DaemonConfig, argv: { json?: boolean; 'control-socket'?: unknown }): Promise<void> {
  const socket = controlSocketPath(cfg.values);
  if (typeof argv['control-socket'] !== 'string' && cfg.problems.some(mayMoveSocket)) {
    printConfigErrors(cfg.problems, SOCKET_NOT_FOUND);
    process.exitCode = 2;
    return;
  }
  let said: string;
  try {
    const answer = await askReplicationStatus(socket);
    if (answer.configured && answer.status) {
      printConfigErrors(cfg.problems, askedDespiteProblems(socket));
      printStatus(answer.status, { kind: 'daemon' }, false, argv);
      return;
    }
    said = `the daemon on ${socket} runs without replication`;
  } catch (err) {
    said = `asking the daemon on ${socket}: ${describeError(err)}`;
  }
  printConfigErrors(cfg.problems, `${COMMAND_NOT_RUN}; ${said}`);
  process.exitCode = 2;
}
