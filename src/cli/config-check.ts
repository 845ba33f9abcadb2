// What `serve` derives at start from parsed configuration values, checked without starting anything:
// the replication settings (node name, peer lines, cluster key) and the files the values name (root
// hints, local zones, recipient and CIDR tables, postgrey whitelists). Shared by `config check` and by
// `serve` before it opens a socket or the store, so both report the same problems in the same words;
// the control socket's folder is judged by the control server's own check. It only reads files and
// stats folders; it binds nothing, writes nothing and never exits the process.
import { statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { controlFolderProblem } from '../control/control-server.js';
import { controlSocketPath } from '../control/operations.js';
import { LOCK_SOCKET } from '../util/instance-lock.js';
import { MAX_UNIX_SOCKET_PATH_BYTES } from '../util/unix-socket.js';
import { inLineOrder, placeConfigError, type ConfigValues, type LoadResult } from '../config/load.js';
import { SCHEMA, TABLE_FILE_KEYS, type TableFileKey } from '../config/schema.js';
import { createLocalZones } from '../dns/server/configured-local-zones.js';
import { parseZoneText } from '../dns/wire/zone-text.js';
import { parseDnsListSpec, parseReplyName } from '../policy/dns-list-spec.js';
import { effectiveListBudgetMs } from '../policy/policy-service.js';
import { CidrTable } from '../policy/tables/cidr-table.js';
import { PostgreyWhitelist } from '../policy/tables/postgrey-whitelist.js';
import { RecipientTable } from '../policy/tables/recipient-table.js';
import { problemsOf } from '../util/line-problems.js';
import { NO_LISTEN_WARNING, replicationProblemsOf } from '../store/replication/replication-settings.js';
import { ConfigError, MxError } from '../util/errors.js';
import { zonesFile } from '../util/paths.js';
import { readTextFileSync } from '../util/read-text-file.js';

/** The keys the replication settings are derived from (replicationProblemsOf). */
const REPLICATION_KEYS = ['peer', 'replication-listen', 'node-name', 'replication-key', 'replication-key-file'];

/**
 * Every problem `serve` would meet at start in valid values, each a ConfigError naming its key,
 * placed at the file line or flag that set it, after loading's own errors (loaded.errors): so one
 * run lists a bad value, a missing file and a bad peer line together. A key that failed to load
 * holds its default, so its file is not checked, nor are the replication settings (derived from
 * several keys) while one of their keys failed. An empty list means `serve` would start with these values.
 * `serve`: called by serve itself, which knows the user it runs as (see controlFolderCheck).
 */
export async function checkStartSettings(loaded: LoadResult, opts: { serve?: boolean } = {}): Promise<ConfigError[]> {
  const { failed, unreadFile } = loadFailures(loaded);
  const folder = controlFolderCheck(loaded.values, failed, opts.serve === true).problem;
  const files = unreadFile ? [] : [...socketPathProblems(loaded.values, failed), ...(folder ? [folder] : []), ...replyNameProblems(loaded.values, failed), ...(await checkReferencedFiles(loaded.values, failed))];
  return inLineOrder([...lineProblemsOf(loaded), ...files.map((p) => placeConfigError(loaded, p))]);
}

/**
 * The problems of the file's own lines, without reading the files it names: loading's errors and
 * the replication settings' (peer lines, the key). What `reload --config FILE` checks before it asks
 * the daemon (whose answer to the same file would be a rejection).
 */
export function lineProblemsOf(loaded: LoadResult): ConfigError[] {
  const { failed, unreadFile } = loadFailures(loaded);
  const replicationLoaded = !unreadFile && !REPLICATION_KEYS.some((k) => failed.has(k));
  const derived = replicationLoaded ? replicationProblemsOf(loaded.values) : [];
  return inLineOrder([...loaded.errors, ...derived.map((p) => placeConfigError(loaded, p))]);
}

/** The keys that failed to load (they hold their defaults), and whether the file could not be read at all. */
function loadFailures(loaded: LoadResult): { failed: Set<string | undefined>; unreadFile: boolean } {
  return { failed: new Set(loaded.errors.map((e) => e.key)), unreadFile: loaded.errors.some((e) => e.code === 'CONFIG_ERR_READ') };
}

/**
 * Lines of the named postgrey whitelists that `serve` skips with a warning (as postgrey does), each
 * placed at the line naming the file, e.g. `mxsentry.conf:7: whitelist-clients: /etc/wl:3: doesn't
 * look like a hostname: "a b"; line ignored`. Call it once checkStartSettings found no problem:
 * a file that cannot be read or parsed throws here as it does at start.
 */
export async function whitelistWarningsOf(loaded: LoadResult): Promise<string[]> {
  const out: string[] = [];
  for (const key of ['whitelist-clients', 'whitelist-recipients'] as const) {
    const files = loaded.values[key] as string[];
    for (let index = 0; index < files.length; index++) {
      const file = files[index]!;
      const wl = key === 'whitelist-clients' ? await PostgreyWhitelist.load([file], []) : await PostgreyWhitelist.load([], [file]);
      for (const w of wl.warnings) {
        const warning = new ConfigError('CONFIG_ERR_FILE', `${key}: ${w.source}:${w.line}: ${w.message}; line ignored`, { key, index });
        out.push(placeConfigError(loaded, warning).message);
      }
    }
  }
  return out;
}

/**
 * Paths set in the config file that are relative: `serve` reads them from its working directory
 * (the unit's /var/lib/mxsentry), not from the file's folder, so a check run elsewhere may read
 * other files than the daemon will. Each placed at its line; flags are the caller's own business.
 */
export function relativePathWarningsOf(loaded: LoadResult): string[] {
  const out: string[] = [];
  for (const def of SCHEMA) {
    // A key whose value was refused holds its default now: its error says enough.
    if (def.kind !== 'path' || loaded.errors.some((e) => e.key === def.key)) continue;
    const values = def.list ? (loaded.values[def.key] as string[]) : [loaded.values[def.key] as string];
    values.forEach((value, index) => {
      if (value === '' || isAbsolute(value) || loaded.origins?.[def.key]?.[index]?.line === undefined) return;
      const warning = new ConfigError(
        'CONFIG_ERR_VALUE',
        `${def.key}: "${value}" is relative: serve reads it from its working directory (here ${process.cwd()}; /var/lib/mxsentry under the shipped systemd unit), not from the config file's folder; an absolute path reads the same file everywhere`,
        { key: def.key, ...(def.list ? { index } : {}) },
      );
      out.push(placeConfigError(loaded, warning).message);
    });
  }
  return out;
}

/**
 * Settings serve accepts but that may not do what was meant: a DNS list budget beyond the
 * decision's, a cluster key other users may read, a control socket folder of another user seen by
 * root (controlFolderCheck), and replication one way only (peers, but no replication-listen: placed
 * at the first peer line).
 */
export function settingWarningsOf(loaded: LoadResult): string[] {
  const out: string[] = [];
  const budget = listBudgetWarning(loaded.values);
  if (budget !== undefined) out.push(placeConfigError(loaded, new ConfigError('CONFIG_ERR_VALUE', `dns-list-budget-ms: ${budget}`, { key: 'dns-list-budget-ms' })).message);
  out.push(...fileSettingWarningsOf(loaded));
  const folder = controlFolderCheck(loaded.values, new Set(loaded.errors.map((e) => e.key))).rootWarning;
  if (folder) out.push(placeConfigError(loaded, folder).message);
  const peers = loaded.values['peer'] as string[];
  if (peers.length === 0 || loaded.values['replication-listen']) return out;
  return [...out, placeConfigError(loaded, new ConfigError('CONFIG_ERR_VALUE', `peer: ${NO_LISTEN_WARNING}`, { key: 'peer', index: 0 })).message];
}

/**
 * The warning of settingWarningsOf that only the file read can show, which the daemon logs at start
 * and on reload too: a cluster key in a file other users may read. (The policy service logs the DNS
 * list budget itself, and the replicator the peers without a listener.)
 */
export function fileSettingWarningsOf(loaded: LoadResult): string[] {
  const out: string[] = [];
  // The cluster key written in a file other users may read (a key file of that mode is refused).
  const fromFile = loaded.origins?.['replication-key']?.some((o) => o.line !== undefined) === true;
  if (fromFile && loaded.file !== undefined) {
    const mode = statSync(loaded.file, { throwIfNoEntry: false })?.mode ?? 0;
    if ((mode & 0o077) !== 0) {
      out.push(placeConfigError(loaded, new ConfigError('CONFIG_ERR_VALUE', `replication-key: the cluster key is in ${loaded.file}, which other users may read (mode ${(mode & 0o777).toString(8)}): anyone who reads it can join the cluster and read its greylist; chmod 600 the file, or move the key to a replication-key-file of mode 600`, { key: 'replication-key' })).message);
    }
  }
  return out;
}

/** Why the DNS lists get less than dns-list-budget-ms (the decision's own budget bounds them), or undefined. */
export function listBudgetWarning(v: ConfigValues): string | undefined {
  const lists = v['dns-list-budget-ms'] as number;
  const policy = v['policy-budget-ms'] as number;
  const effective = effectiveListBudgetMs(lists, policy);
  if (effective >= lists) return undefined;
  return `${lists} ms does not fit within policy-budget-ms (${policy} ms, less 100 ms for the rest of the decision): the lists get ${effective} ms; raise policy-budget-ms or lower dns-list-budget-ms`;
}

/**
 * True for the start-up errors that come from the configuration rather than from the host (a
 * port in use, a full disk): a ConfigError, or a table, whitelist, zone or root hints file that
 * cannot be read or parsed. `serve` exits 2 for these, as for any configuration problem.
 */
export function isConfigurationError(err: unknown): boolean {
  if (err instanceof ConfigError) return true;
  return err instanceof MxError && FILE_ERROR_CODES.has(err.code);
}

const FILE_ERROR_CODES: ReadonlySet<string> = new Set([
  'POLICY_ERR_TABLE_READ',
  'POLICY_ERR_TABLE_SYNTAX',
  'POLICY_ERR_BAD_WHITELIST',
  'DNS_ERR_ZONE_FILE',
  'DNS_ERR_ZONE_SYNTAX',
  'DNS_ERR_ROOT_HINTS',
]);

/** Loads each file a key names on its own, so a problem points at the value (and line) naming it. */
async function checkReferencedFiles(v: ConfigValues, skip: ReadonlySet<string | undefined>): Promise<ConfigError[]> {
  const problems: ConfigError[] = [];
  const attempt = async (key: string, index: number | undefined, fn: () => unknown): Promise<void> => {
    if (skip.has(key)) return;
    try {
      await fn();
    } catch (err) {
      // The typed error's code is for programs; the admin reads the key, the file and what is wrong:
      // every bad line of a table, each a problem of its own.
      const texts = problemsOf(err);
      for (const text of texts) problems.push(new ConfigError('CONFIG_ERR_FILE', `${key}: ${text}`, { key, ...(index === undefined ? {} : { index }), cause: err }));
    }
  };
  const hints = (v['root-hints'] as string) || zonesFile('named.root');
  await attempt('root-hints', undefined, () => {
    const records = parseZoneText(readTextFileSync(hints), { origin: '.', file: hints });
    if (!records.some((r) => r.name === '.' && r.type === 2)) throw new Error(`${hints} holds no NS records for "."`);
    // Without an address no root server can be asked: every resolution would fail.
    if (!records.some((r) => r.type === 1 || r.type === 28)) throw new Error(`${hints} holds no A or AAAA record for its root servers: nothing could be asked`);
  });
  await attempt('local-zones-file', undefined, () => createLocalZones(v));
  for (const key of TABLE_FILE_KEYS) {
    const files = v[key] as string[];
    for (let i = 0; i < files.length; i++) await attempt(key, i, () => TABLE_LOADERS[key](files[i]!));
  }
  return problems;
}

/**
 * The unix sockets serve makes (the data-dir lock, the control socket) must fit the 107-byte limit
 * of a socket path: said here, as a configuration problem, rather than by a start that fails.
 */
function socketPathProblems(v: ConfigValues, skip: ReadonlySet<string | undefined>): ConfigError[] {
  const problems: ConfigError[] = [];
  const tooLong = (path: string): boolean => Buffer.byteLength(path) > MAX_UNIX_SOCKET_PATH_BYTES;
  const dataDir = v['data-dir'] as string;
  const lock = join(dataDir, LOCK_SOCKET);
  if (!skip.has('data-dir') && tooLong(lock)) {
    problems.push(new ConfigError('CONFIG_ERR_VALUE', `data-dir: the lock socket ${lock} would be ${Buffer.byteLength(lock)} bytes, beyond the unix socket limit of ${MAX_UNIX_SOCKET_PATH_BYTES}: use a shorter data-dir`, { key: 'data-dir' }));
  }
  const control = resolve(controlSocketPath(v));
  const key = (v['control-socket'] as string) ? 'control-socket' : 'data-dir';
  if (!skip.has(key) && tooLong(control)) {
    problems.push(new ConfigError('CONFIG_ERR_VALUE', `${key}: the control socket ${control} would be ${Buffer.byteLength(control)} bytes, beyond the unix socket limit of ${MAX_UNIX_SOCKET_PATH_BYTES}: ${key === 'control-socket' ? 'name a shorter path' : 'use a shorter data-dir, or set control-socket to a shorter path'}`, { key }));
  }
  return problems;
}

/**
 * The folder of the control socket as serve judges it when it starts listening (controlFolderProblem,
 * the same words): refused when writable by everyone, not a directory, or another non-root user's.
 * A folder not there yet is not judged: serve makes its data-dir, and systemd a RuntimeDirectory, at
 * start. Another user's folder is a problem for serve and for a non-root user's check, but only a
 * warning for root's check: root cannot tell which user serve will run as (the unit's DynamicUser, a
 * User= line), and serve run as the folder's owner takes it.
 */
function controlFolderCheck(v: ConfigValues, skip: ReadonlySet<string | undefined>, serve = false): { problem?: ConfigError; rootWarning?: ConfigError } {
  const control = resolve(controlSocketPath(v));
  const key = (v['control-socket'] as string) ? 'control-socket' : 'data-dir';
  // Too long: socketPathProblems says so, and serve refuses that before it looks at the folder.
  if (skip.has(key) || Buffer.byteLength(control) > MAX_UNIX_SOCKET_PATH_BYTES) return {};
  const uid = process.getuid?.();
  const found = controlFolderProblem(dirname(control), uid);
  if (!found || (found.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') return {};
  if (found.kind === 'owner' && uid === 0 && !serve) {
    const text = `${key}: control socket folder ${dirname(control)} belongs to uid ${found.ownerUid}: serve takes it only when run as that user (run as root, it refuses it); this check runs as root and cannot tell which user serve will run as`;
    return { rootWarning: new ConfigError('CONFIG_ERR_VALUE', text, { key }) };
  }
  return { problem: new ConfigError('CONFIG_ERR_VALUE', `${key}: ${found.message}`, { key }) };
}

/**
 * A dnsbl-reply-name must name a zone of a dnsbl line: one that names no such zone (a typo) would
 * leave the real zone, and any access key in it, in every reject.
 */
function replyNameProblems(v: ConfigValues, skip: ReadonlySet<string | undefined>): ConfigError[] {
  if (skip.has('dnsbl-reply-name') || skip.has('dnsbl')) return [];
  const zones = new Set((v['dnsbl'] as string[]).map((spec) => parseDnsListSpec(spec).zone));
  const problems: ConfigError[] = [];
  (v['dnsbl-reply-name'] as string[]).forEach((value, index) => {
    const { zone } = parseReplyName(value);
    if (!zones.has(zone)) {
      problems.push(new ConfigError('CONFIG_ERR_VALUE', `dnsbl-reply-name: "${zone}" is not the zone of any dnsbl line${zones.size > 0 ? ` (${[...zones].join(', ')})` : ''}: the reject would show the real zone`, { key: 'dnsbl-reply-name', index }));
    }
  });
  return problems;
}

/** How `serve` loads one file of each table key (every key of TABLE_FILE_KEYS has one). */
const TABLE_LOADERS: Record<TableFileKey, (file: string) => Promise<unknown>> = {
  'recipients-file': (f) => RecipientTable.load([f]),
  'known-networks-file': (f) => CidrTable.load([f]),
  'whitelist-clients': (f) => PostgreyWhitelist.load([f], []),
  'whitelist-recipients': (f) => PostgreyWhitelist.load([], [f]),
};
