// Which configuration and which greylist store the admin's offline commands (`check`, `rbl`,
// `lookup`, `greylist ...`, `replication status`) use: the daemon's, found the way the control
// commands find the daemon. Called by the command handlers; it opens no store and creates nothing.
import { lstatSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadConfig, type ConfigValues } from '../config/load.js';
import { LmdbGreylistStore } from '../store/lmdb-greylist-store.js';
import { isStoreError, StoreErrorCode } from '../store/store-error-code.js';
import { systemClock } from '../util/clock.js';
import { describeError, type ConfigError } from '../util/errors.js';
import { createRootLogger, LOG_LEVELS, type Logger, type LogLevel } from '../util/logger.js';
import { problemsOf } from '../util/line-problems.js';
import { isConfigurationError } from './config-check.js';
import { collectConfigFlags, COMMAND_NOT_RUN, printConfigErrors } from './config-flags.js';
import { DEFAULT_CONFIG_FILE, EXIT_FAILED, EXIT_USAGE, SYSTEMD_CONTROL_SOCKET, SYSTEMD_DATA_DIR } from './control-cli.js';

/** The packaged unit's paths: it runs `serve --config FILE --data-dir DIR --control-socket SOCKET`. */
export interface UnitPaths {
  configFile: string;
  dataDir: string;
  controlSocket: string;
}

/** systemd/mxsentry.service's ExecStart (test/systemd checks that the two agree). */
export const UNIT_PATHS: UnitPaths = { configFile: DEFAULT_CONFIG_FILE, dataDir: SYSTEMD_DATA_DIR, controlSocket: SYSTEMD_CONTROL_SOCKET };

/** The daemon's configuration as an offline command sees it. */
export interface DaemonConfig {
  /** The configuration, with `data-dir` (and under the unit `control-socket`) as the daemon has them. */
  values: ConfigValues;
  /** The file read; undefined when there is none (defaults and flags only). */
  file: string | undefined;
  /** Absolute path of the data dir, and where it came from (for messages). */
  dataDir: string;
  dataDirFrom: string;
  /** The file's and flags' problems, when the caller asked to keep them (their keys hold defaults). */
  problems: ConfigError[];
}

/**
 * True when `path` is there, even if this user may not read it. lstat: under DynamicUser the state
 * dir is a symlink into /var/lib/private (mode 0700) that only root can follow, and a non-root admin
 * must hear "permission denied" from the open, not "no store".
 */
function pathExists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code !== 'ENOENT' && code !== 'ENOTDIR';
  }
}

/**
 * Loads the daemon's configuration: `--config FILE`, else the unit's file when it exists, else
 * none (flags and defaults). The data dir: `--data-dir`; else, for the unit's file once the unit
 * made its state directory, the unit's `--data-dir` (flags override the file in the daemon too);
 * else the file's `data-dir` (default ./data). On config errors prints them all, sets exit code 2
 * and returns null; with `keepProblems` returns them instead (`replication status` still asks a
 * running daemon when they leave its socket where it is).
 */
export function loadDaemonConfig(argv: Record<string, unknown>, unit: UnitPaths = UNIT_PATHS, opts: { keepProblems?: boolean } = {}): DaemonConfig | null {
  const file = typeof argv.config === 'string' ? argv.config : pathExists(unit.configFile) ? unit.configFile : undefined;
  const loaded = loadConfig({ ...(file !== undefined ? { file } : {}), flags: collectConfigFlags(argv) });
  if (loaded.errors.length > 0 && opts.keepProblems !== true) {
    printConfigErrors(loaded.errors, COMMAND_NOT_RUN);
    process.exitCode = EXIT_USAGE;
    return null;
  }
  const values: ConfigValues = { ...loaded.values };
  let dataDirFrom: string;
  if (typeof argv['data-dir'] === 'string') {
    dataDirFrom = '--data-dir';
  } else if (file !== undefined && resolve(file) === resolve(unit.configFile) && pathExists(unit.dataDir)) {
    values['data-dir'] = unit.dataDir;
    if (typeof argv['control-socket'] !== 'string') values['control-socket'] = unit.controlSocket;
    dataDirFrom = `the systemd unit (serve --config ${unit.configFile} --data-dir ${unit.dataDir})`;
  } else {
    dataDirFrom = file !== undefined ? `data-dir in ${file}` : `the default ./data (no --config given, no ${unit.configFile})`;
  }
  // A data-dir set twice has no value (only with keepProblems): the default, as controlSocketPath takes it.
  return { values, file, dataDir: resolve((values['data-dir'] as string | undefined) ?? './data'), dataDirFrom, problems: loaded.errors };
}

/**
 * Opens the daemon's existing store, never creating one. On failure prints what went wrong and what
 * to do, sets the exit code (2 when there is no store there or this user may not open it: the
 * wrong store, or not ours to open, a usage problem as for `check`; 1 otherwise) and returns null.
 * With `failOpen` (check), a store that is there but cannot be opened (damaged, a full disk) is
 * what the daemon answers without: its reason is returned, with no exit code set; a missing one or
 * one this user may not open (the daemon, as the store's owner, opens it) exits 2. `readOnly`: for
 * a command that only reads (LmdbEnvOptions.readOnly).
 */
export async function openDaemonStore(cfg: DaemonConfig, logger: Logger, unit?: UnitPaths, opts?: { readOnly?: boolean }): Promise<LmdbGreylistStore | null>;
export async function openDaemonStore(cfg: DaemonConfig, logger: Logger, unit: UnitPaths | undefined, opts: { failOpen: true; readOnly?: boolean }): Promise<LmdbGreylistStore | { failedOpen: string } | null>;
export async function openDaemonStore(cfg: DaemonConfig, logger: Logger, unit: UnitPaths = UNIT_PATHS, opts: { failOpen?: boolean; readOnly?: boolean } = {}): Promise<LmdbGreylistStore | { failedOpen: string } | null> {
  try {
    return await LmdbGreylistStore.open({
      dataDir: cfg.dataDir,
      clock: systemClock,
      logger,
      mapSizeBytes: cfg.values['store-map-size'] as number,
      create: false,
      verify: true,
      // A command that only reads leaves data.mdb as it was (a backup's mtime, the daemon's file).
      ...(opts.readOnly ? { readOnly: true } : {}),
    });
  } catch (err) {
    const missing = isStoreError(err, StoreErrorCode.NOT_FOUND);
    // LMDB's own text for EACCES/EPERM is strerror's ("Permission denied: Attempting to open ...").
    const denied = /\b(EACCES|EPERM)\b|Permission denied|Operation not permitted/.test(describeError(err));
    if (opts.failOpen && !missing && !denied) {
      process.stderr.write(`mxsentry: cannot open the greylist store under ${cfg.dataDir}: ${describeError(err)}\nmxsentry: the daemon fails open on it: greylisting is skipped, as in the answer below\n`);
      return { failedOpen: describeError(err) };
    }
    const what = missing ? `no greylist store at ${join(cfg.dataDir, 'greylist')}, nothing was created` : `cannot open the greylist store under ${cfg.dataDir}: ${describeError(err)}`;
    process.stderr.write(`mxsentry: ${what}\nmxsentry: the data dir came from ${cfg.dataDirFrom}\n`);
    // Where to look instead helps when there is no store there. A store this user may not open is
    // there (the daemon's, most likely, run as its owner): who may open it helps. A damaged store
    // is the right one, and its error already says what to do.
    if (missing) {
      process.stderr.write(`mxsentry: point at the daemon's store with --data-dir DIR, or at its configuration with --config FILE (under the systemd unit: ${unit.dataDir}, as root)\n`);
    } else if (denied) {
      process.stderr.write(`mxsentry: ${deniedAdvice(cfg.dataDir, opts.failOpen === true)}\n`);
    }
    process.exitCode = missing || denied ? EXIT_USAGE : EXIT_FAILED;
    return null;
  }
}

/**
 * What to do about a store this user may not open: run as root or as the store's owner (the owner
 * of its greylist folder, else of the data dir, when this user may see it); `check` can also leave
 * the store out with --no-greylist.
 */
function deniedAdvice(dataDir: string, canSkipStore: boolean): string {
  const uid = process.getuid?.();
  const owner = [join(dataDir, 'greylist'), dataDir].map(ownerUid).find((u) => u !== undefined);
  const ofOwner = owner === undefined ? '' : ` (it belongs to uid ${owner})`;
  const as = owner === undefined || owner === 0 ? 'as root' : `as root or as uid ${owner}`;
  const skip = canSkipStore ? '; or add --no-greylist to run the other steps without the store (step 10, greylisting, left out)' : '';
  return `this user${uid === undefined ? '' : ` (uid ${uid})`} may not open the store${ofOwner}: run the command ${as}${skip}`;
}

/** The owner of `path`, or undefined when this user may not see it (the advice then says root). */
function ownerUid(path: string): number | undefined {
  try {
    return statSync(path).uid;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM' || code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}

/**
 * The logger of an offline command, on stderr: `--log-level` given on its command line (checked by
 * loadDaemonConfig with the other flags), else MXSENTRY_LOG_LEVEL, else warn. The level of the
 * daemon's file is not taken: it is the daemon's, and would make every command as chatty.
 */
export function commandLogger(argv: Record<string, unknown>): Logger {
  const flag = argv['log-level'];
  const env = process.env.MXSENTRY_LOG_LEVEL;
  const level = typeof flag === 'string' && (LOG_LEVELS as readonly string[]).includes(flag) ? flag : env !== undefined && (LOG_LEVELS as readonly string[]).includes(env) ? env : 'warn';
  return createRootLogger(level as LogLevel, process.stderr);
}

/**
 * Builds an offline command's resolver (lookup, check, rbl): null, with the problem printed and
 * exit 2, when a file the configuration names cannot be used (root hints, local zones), as `serve`
 * counts it a configuration problem; anything else is thrown.
 */
export function offlineDnsStack<T>(build: () => T): T | null {
  try {
    return build();
  } catch (err) {
    if (!isConfigurationError(err)) throw err;
    // A file with several bad lines: each its own problem, as config check lists them.
    printConfigErrors(problemsOf(err).map((p) => new Error(p)), COMMAND_NOT_RUN);
    process.exitCode = EXIT_USAGE;
    return null;
  }
}
