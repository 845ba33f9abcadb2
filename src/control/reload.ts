// SIGHUP / `mxsentry reload`: re-reads the configuration and applies it to the running daemon without
// dropping the DNS cache, the greylist store or open connections. Called by operations.ts. A file
// with any problem is rejected whole (every problem logged) and the old settings stay; everything
// that can fail (parsing, table files, local zone files) is built before anything is swapped.
import { placeConfigError, type ConfigValues, type LoadResult } from '../config/load.js';
import { keyDef, TABLE_FILE_KEYS } from '../config/schema.js';
import type { IteratorConfig } from '../dns/iterator/iterator-config.js';
import type { ResolverConfig } from '../dns/resolver.js';
import type { LocalZones } from '../dns/server/local-zones.js';
import type { Name } from '../dns/wire/types.js';
import type { PolicyService } from '../policy/policy-service.js';
import { CidrSet } from '../util/cidr.js';
import { ConfigError, describeError } from '../util/errors.js';
import type { Logger, LogLevel } from '../util/logger.js';
import { KEY_CREDENTIAL, type ReplicationSettings } from '../store/replication/replication-settings.js';
import type { ReplicationChange } from '../store/replication/replicator.js';
import { ControlError } from './control-error.js';
import { dnsAllowSet } from '../dns/server/query-refusal.js';

/** Keys bound to sockets, files or memory maps opened once at start: a change is logged, applied at the next restart. */
export const RESTART_KEYS: readonly string[] = [
  'dns-listen', 'policy-listen', 'control-socket', 'metrics-listen', 'data-dir', 'store-map-size', 'root-hints',
  'cache-min-ttl', 'cache-max-ttl', 'cache-max-negative-ttl', 'serve-expired-ttl',
  'max-tcp-connections', 'tcp-idle-timeout-ms', 'policy-max-connections', 'so-rcvbuf', 'so-sndbuf',
];

/** Replication keys bound at start: the node's identity and its listener. */
export const REPLICATION_RESTART_KEYS: readonly string[] = ['node-name', 'replication-listen'];

/**
 * Restart-only keys: RESTART_KEYS, the replication keys bound at start, and every replication key
 * when the reload would turn replication on or off (its listener and store hooks are set up once).
 */
export function needsRestart(key: string, replicationSwitched = false): boolean {
  if (RESTART_KEYS.includes(key)) return true;
  if (keyDef(key)?.group !== 'replication') return false;
  return replicationSwitched || REPLICATION_RESTART_KEYS.includes(key);
}

/** What a reload did. */
export interface ReloadReport {
  /** The file read, or null when the daemon runs on flags and defaults only. */
  file: string | null;
  /** Keys whose value changed and took effect. */
  applied: string[];
  /** Keys whose value changed but need a restart (listeners, store, cache clamps). */
  restartNeeded: string[];
  /** Files read again whatever changed (local zones, tables, whitelists), so a change inside them applied. */
  reread?: string[];
  /** What config check would warn about in the file read (a cluster key other users may read, ...). */
  warnings?: string[];
  /** What the admin may expect to have changed but did not (a new key in a systemd credential's source). */
  notes?: string[];
}

/** The files a reload reads again even when no key changed. */
function rereadFiles(v: ConfigValues, localZonesFile: string | undefined): string[] {
  return [...(localZonesFile ? [localZonesFile] : []), ...TABLE_FILE_KEYS.flatMap((k) => (v[k] as string[] | undefined) ?? [])];
}

/** The builders and live parts a reload touches; main.ts provides them. */
export interface ReloadParts {
  /** Re-reads the configuration file with the flags given at start. */
  loadConfig: () => LoadResult;
  /** The process root logger: its level is the level of every module logger. */
  logger: Logger;
  listZonesOf(v: ConfigValues): Name[];
  iteratorConfig(v: ConfigValues, listZones: Name[]): IteratorConfig;
  resolverConfig(v: ConfigValues, listZones: Name[]): ResolverConfig;
  createLocalZones(v: ConfigValues): LocalZones;
  createPolicy(v: ConfigValues): Promise<PolicyService>;
  /** Live objects. */
  iterator: { readonly config: IteratorConfig };
  resolver: { reconfigure(c: ResolverConfig): void };
  cache: { resize(maxBytes: number): void };
  packetCache: { resize(maxBytes: number): void };
  dnsServer: { setAllow(a: CidrSet): void; setLocalZones(z: LocalZones): void };
  setLocalZones(z: LocalZones): void;
  /** Installs the new policy service (retires the old one's counters, restarts its self-tests). */
  swapPolicy(next: PolicyService, v: ConfigValues): void;
  setMetricsAllow(a: CidrSet): void;
  /** Restarts the greylist expiry sweep (and replication's horizon) with a new max-age and retry window (seconds). */
  setExpiry(maxAgeSec: number, retryWindowSec: number): void;
  /** The local zones file a configuration uses, if any (for the report). */
  localZonesFileOf?(v: ConfigValues): string | undefined;
  /** Replication settings of a configuration (reads the key file); throws ConfigError. */
  replicationSettingsOf(v: ConfigValues): ReplicationSettings | undefined;
  /** Warnings about the file read that config check gives too (logged and reported, not refused). */
  settingWarnings?: (loaded: LoadResult) => string[];
  /** The running replication: its settings in force (undefined: off) and how to change them. */
  replication: { readonly settings: ReplicationSettings | undefined; reconfigure(next: ReplicationSettings): ReplicationChange; setExpiry(maxAgeMs: number, retryWindowMs: number): void };
}

/** Keys whose values differ between two validated configurations. */
export function changedKeys(before: ConfigValues, after: ConfigValues): string[] {
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...keys].filter((k) => JSON.stringify(before[k]) !== JSON.stringify(after[k])).sort();
}

const DNS_KEYS = new Set([
  'query-loopback', 'do-ip4', 'do-ip6', 'qname-minimisation', 'no-minimisation-zone', 'use-caps-for-id', 'upstream-port',
  'max-cname-chain', 'max-referrals', 'max-upstream-queries', 'max-subquery-depth', 'max-subqueries',
  'client-deadline-ms', 'max-concurrent-queries', 'serve-expired', 'serve-expired-reply-ttl', 'serve-expired-client-timeout',
  'prefetch', 'prefetch-rate', 'dnswl-trusted', 'dnsbl', 'dnswl',
]);

/**
 * Reloads: reads the file, and on any problem throws ControlError CONTROL_ERR_FAILED listing every
 * problem (the old configuration stays in force). Otherwise applies what changed and returns the
 * report; table files (recipients, whitelists, CIDR) and the local zones file are always re-read
 * (tables as postgrey does on SIGHUP), even when no key changed. `current` is the configuration in
 * force; the caller keeps the returned `values` (the new one with restart-only keys left at their
 * running values).
 */
export async function reloadConfig(current: ConfigValues, parts: ReloadParts): Promise<{ values: ConfigValues; report: ReloadReport }> {
  const loaded = parts.loadConfig();
  const file = loaded.file ?? null;
  if (loaded.errors.length > 0) {
    for (const e of loaded.errors) parts.logger.error({ file, key: e.key, line: e.line, err: e.message }, 'reload: configuration problem');
    throw new ControlError('CONTROL_ERR_FAILED', `configuration rejected, the running one is kept (${loaded.errors.length} problem(s)):\n${loaded.errors.map((e) => `  ${e.message}`).join('\n')}`);
  }
  const next = loaded.values;
  const changed = changedKeys(current, next);

  // Build everything that can fail before touching the running daemon.
  let policy: PolicyService;
  let localZones: LocalZones;
  let replication: ReplicationSettings | undefined;
  try {
    // Always re-read, like the table files: the zones file may have changed under the same path,
    // and a file that no longer parses rejects the reload instead of failing the next start.
    localZones = parts.createLocalZones(next);
    // Built on every reload: the key file may have changed under the same path.
    replication = parts.replicationSettingsOf(next);
    policy = await parts.createPolicy(next);
  } catch (caught) {
    // A problem of a key's value (replication settings) is placed at its file line, as config check does.
    const err = caught instanceof ConfigError ? placeConfigError(loaded, caught) : caught;
    parts.logger.error({ file, err: describeError(err) }, 'reload: configuration problem');
    throw new ControlError('CONTROL_ERR_FAILED', `configuration rejected, the running one is kept: ${err instanceof ConfigError ? err.message : describeError(err)}`, { cause: err });
  }

  const running = parts.replication.settings;
  const switched = (running === undefined) !== (replication === undefined);
  const restartNeeded = changed.filter((k) => needsRestart(k, switched));

  const listZones = parts.listZonesOf(next);
  if (changed.some((k) => DNS_KEYS.has(k))) {
    // The iterator reads its settings object on every step; updating it in place reaches new
    // resolutions at once and leaves the ones in flight consistent enough (limits are re-read).
    Object.assign(parts.iterator.config, parts.iteratorConfig(next, listZones));
    parts.resolver.reconfigure(parts.resolverConfig(next, listZones));
  }
  if (changed.includes('cache-size')) parts.cache.resize(next['cache-size'] as number);
  if (changed.includes('packet-cache-size')) parts.packetCache.resize(next['packet-cache-size'] as number);
  if (changed.includes('allow')) parts.dnsServer.setAllow(dnsAllowSet(next['allow'] as string[]));
  parts.dnsServer.setLocalZones(localZones);
  parts.setLocalZones(localZones);
  if (changed.includes('metrics-allow')) parts.setMetricsAllow(new CidrSet(next['metrics-allow'] as string[]));
  if (changed.includes('max-age') || changed.includes('retry-window')) parts.setExpiry(next['max-age'] as number, next['retry-window'] as number);
  parts.swapPolicy(policy, next);
  if (changed.includes('log-level')) parts.logger.level = next['log-level'] as LogLevel;
  const applied = changed.filter((k) => !needsRestart(k, switched));
  if (running && replication) {
    const change = parts.replication.reconfigure(replication);
    // A new key in the same key file changes no configuration value: say that it was applied.
    if (change.keyChanged && !applied.includes('replication-key') && !applied.includes('replication-key-file')) applied.push('replication-key-file');
  }

  const reread = rereadFiles(next, parts.localZonesFileOf?.(next));
  const report: ReloadReport = { file, applied, restartNeeded, reread };
  parts.logger.info({ file, applied, restartNeeded, reread }, 'configuration reloaded');
  const warnings = parts.settingWarnings?.(loaded) ?? [];
  for (const w of warnings) parts.logger.warn({ file }, `reload: ${w}`);
  if (warnings.length > 0) report.warnings = warnings;
  if (replication?.keyFromCredential) {
    // systemd copied the key when the service started; the reload read that copy again.
    const note = `the replication key comes from the systemd credential ${KEY_CREDENTIAL}, which systemd reads only when the service starts: a new key in its source file takes effect after systemctl restart mxsentry`;
    parts.logger.info(note);
    report.notes = [note];
  }
  if (restartNeeded.length > 0) {
    parts.logger.warn({ keys: restartNeeded }, 'reload: these settings take effect only after a restart (systemctl restart mxsentry)');
  }
  // Settings that need a restart stay as they are in force, so the next reload reports them again.
  const effective: ConfigValues = { ...next };
  for (const k of Object.keys(current)) if (needsRestart(k, switched)) effective[k] = current[k];
  return { values: effective, report };
}
