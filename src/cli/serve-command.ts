// `mxsentry serve`: loads the configuration (file + flags), checks it as `config check` does, starts
// the daemon, and handles signals: SIGTERM/SIGINT drain and exit 0, SIGHUP reloads. Start-up errors
// are printed plainly to stderr: configuration problems exit 2 (as `config check`), anything else
// (a port in use, data-dir not writable) exits 1; nothing here runs per request.
import { accessSync, constants as fsConstants } from 'node:fs';
import { join, resolve as resolvePath } from 'node:path';
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { loadConfig, placeConfigError } from '../config/load.js';
import { systemClock } from '../util/clock.js';
import { ConfigError, MxError, describeError } from '../util/errors.js';
import { LOCK_SOCKET, lockDataDir, type InstanceLock } from '../util/instance-lock.js';
import { createRootLogger, routeConsoleToLogger, type LogLevel, type Logger } from '../util/logger.js';
import { makeDirs } from '../util/make-dirs.js';
import type { CliDeps } from './cli.js';
import { checkStartSettings, fileSettingWarningsOf, isConfigurationError } from './config-check.js';
import { addConfigFlags, collectConfigFlags, printConfigErrors } from './config-flags.js';
import { EXIT_FAILED, EXIT_USAGE } from './control-cli.js';
import { sdNotify, startWatchdog } from '../control/sd-notify.js';

/** What startDaemon resolves with. */
type RunningDaemon = Awaited<ReturnType<CliDeps['startDaemon']>>;

interface ServeArgs {
  config?: string;
}

export function serveCommand(deps: CliDeps): CommandModule<object, ServeArgs> {
  return {
    command: 'serve',
    describe: 'Run the daemon: recursive DNS resolver, Postfix policy service and greylisting',
    builder: (y: Argv) => addConfigFlags(y) as unknown as Argv<ServeArgs>,
    handler: async (argv: ArgumentsCamelCase<ServeArgs>) => {
      // Signals are ours from the first moment, not only once the start is done (opening a big
      // store takes seconds): Node's default for SIGHUP ends the process (status 129, which
      // systemd's Restart=on-failure counts as clean, so nothing would answer DNS or Postfix), and
      // a SIGTERM would skip the drain. Until the daemon runs they are remembered and acted on then.
      let daemon: RunningDaemon | null = null;
      let logger: Logger | null = null;
      let watchdog: ReturnType<typeof startWatchdog> = null;
      let stopSignal: string | null = null;
      let reloadPending = false;
      let dataDirLock: InstanceLock | null = null;
      const drain = (running: RunningDaemon, log: Logger): void => {
        watchdog?.stop();
        void sdNotify(['STOPPING=1'], { logger: log });
        running
          .stop()
          .then(() => {
            // Closing the lock's socket removes its file: a clean stop leaves nothing stale behind.
            dataDirLock?.release();
            log.info('stopped');
            log.flush(() => process.exit(0));
          })
          .catch((err: unknown) => {
            // Exiting anyway (an LMDB left open is as after a crash): the next start must not find the lock taken.
            dataDirLock?.release();
            log.error({ err: describeError(err) }, 'error while stopping');
            log.flush(() => process.exit(1));
          });
      };
      const stop = (signal: string): void => {
        if (stopSignal !== null) return;
        stopSignal = signal;
        logger?.info({ signal, starting: daemon === null }, 'stopping');
        if (daemon && logger) drain(daemon, logger);
        // Before the logger exists nothing has been opened: there is nothing to drain.
        else if (!logger) process.exit(0);
      };
      const reload = (): void => {
        if (stopSignal !== null) return;
        if (!daemon || !logger) {
          reloadPending = true;
          logger?.info({ signal: 'SIGHUP' }, 'reload requested during start-up: done once started');
          return;
        }
        const log = logger;
        log.info({ signal: 'SIGHUP' }, 'reloading configuration');
        // reload() logs every problem of a rejected file and the keys applied or needing a restart.
        daemon.operations.reload().catch((err: unknown) => log.error({ err: describeError(err) }, 'reload rejected; the running configuration is kept'));
      };
      // The shim's early handlers (bin/mxsentry) hand over: a SIGHUP they saw is a pending reload.
      const early = (globalThis as { mxsentryEarlySignals?: { takeOver(): boolean } }).mxsentryEarlySignals;
      if (early?.takeOver() === true) reloadPending = true;
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
      process.on('SIGHUP', reload);
      // Node's defaults: SIGUSR1 opens the inspector on 127.0.0.1:9229 (code execution for any local
      // user), SIGUSR2 ends the process. A log rotation script's signal must do neither.
      for (const signal of ['SIGUSR1', 'SIGUSR2'] as const) {
        process.on(signal, () => logger?.info({ signal }, 'signal ignored (SIGHUP reloads, SIGTERM stops)'));
      }
      // The file as an absolute path: reload and status name it, and a CLI in another folder compares its own --config with it.
      // An empty name stays empty: loadConfig refuses it (an unset variable in `--config "$CONF"`).
      const configFile = typeof argv.config === 'string' && argv.config !== '' ? resolvePath(argv.config) : argv.config;
      const configInput = { ...(typeof configFile === 'string' ? { file: configFile } : {}), flags: collectConfigFlags(argv as Record<string, unknown>) };
      const loaded = loadConfig(configInput);
      // Derived settings, named files and the control socket folder are checked before anything
      // listens, every problem listed.
      const problems = await checkStartSettings(loaded, { serve: true });
      if (problems.length > 0) {
        printConfigErrors(problems);
        process.exit(EXIT_USAGE);
      }
      const v = loaded.values;
      const log = createRootLogger(v['log-level'] as LogLevel);
      logger = log;
      routeConsoleToLogger(log);
      // What config check warns about, said in the log too (not refused: the daemon starts).
      for (const w of fileSettingWarningsOf(loaded)) log.warn({ file: loaded.file }, `configuration: ${w}`);
      const dataDir = v['data-dir'] as string;
      try {
        makeDirs(dataDir);
      } catch (err) {
        process.stderr.write(`mxsentry: cannot create data-dir ${dataDir}: ${describeError(err)}\n`);
        process.exit(EXIT_FAILED);
      }
      try {
        // The store and the control socket live there: said here, once, rather than as a store that
        // never opens (greylisting skipped) and a control socket that cannot listen.
        accessSync(dataDir, fsConstants.W_OK | fsConstants.X_OK);
      } catch (err) {
        const uid = typeof process.getuid === 'function' ? ` (uid ${process.getuid()})` : '';
        process.stderr.write(`mxsentry: data-dir ${dataDir} is not writable by this user${uid}: ${describeError(err)}; make it the mxsentry user's (chown) or name another with --data-dir\n`);
        process.exit(EXIT_FAILED);
      }
      // Without the lock a second serve could share the store and its node id: not started.
      const lock = await lockDataDir(dataDir).catch((err: unknown) => {
        process.stderr.write(`mxsentry: cannot take the data-dir lock ${join(dataDir, LOCK_SOCKET)} (${describeError(err)}), which keeps a second serve off this store: fix that, or give this one its own --data-dir\n`);
        process.exit(EXIT_FAILED);
      });
      if (lock === 'busy') {
        process.stderr.write(`mxsentry: another mxsentry serve runs on data-dir ${dataDir} (two would share one greylist store and one node id): stop it first, or give this one its own --data-dir\n`);
        process.exit(EXIT_FAILED);
      }
      dataDirLock = lock;
      let started: RunningDaemon;
      try {
        // A reload re-reads the same file with the same flags on top (flags keep overriding it).
        started = await deps.startDaemon(v, log, systemClock, {}, { loadConfig: () => loadConfig(configInput), settingWarnings: fileSettingWarningsOf });
      } catch (err) {
        log.fatal({ err: describeError(err) }, 'start-up failed');
        log.flush();
        // A file changed since the check above: still a configuration problem, in the same words.
        if (isConfigurationError(err)) {
          const problem = err instanceof ConfigError ? placeConfigError(loaded, err) : (err as MxError);
          printConfigErrors([problem]);
          process.exit(EXIT_USAGE);
        }
        const text = err instanceof MxError ? err.message : describeError(err);
        process.stderr.write(`mxsentry: ${text}\n`);
        process.exit(EXIT_FAILED);
      }
      daemon = started;
      if (stopSignal !== null) {
        drain(started, log);
        return;
      }
      void sdNotify(['READY=1', 'STATUS=answering DNS and policy requests'], { logger: log });
      watchdog = startWatchdog({ logger: log });
      if (reloadPending) reload();
    },
  };
}
