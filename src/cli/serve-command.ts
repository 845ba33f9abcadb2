// `mxsentry serve`: loads the configuration (file + flags), starts the daemon, and handles
// signals: SIGTERM/SIGINT drain and exit 0, SIGHUP reloads. Start-up errors are printed plainly
// to stderr with what to do, and exit non-zero; nothing here runs per request.
import { mkdirSync } from 'node:fs';
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { loadConfig } from '../config/load.js';
import { systemClock } from '../util/clock.js';
import { MxError, describeError } from '../util/errors.js';
import { createRootLogger, type LogLevel } from '../util/logger.js';
import type { CliDeps } from './cli.js';
import { addConfigFlags, collectConfigFlags, printConfigErrors } from './config-flags.js';
import { sdNotify, startWatchdog } from '../control/sd-notify.js';

interface ServeArgs {
  config?: string;
}

export function serveCommand(deps: CliDeps): CommandModule<object, ServeArgs> {
  return {
    command: 'serve',
    describe: 'Run the daemon: recursive DNS resolver, Postfix policy service and greylisting',
    builder: (y: Argv) => addConfigFlags(y) as unknown as Argv<ServeArgs>,
    handler: async (argv: ArgumentsCamelCase<ServeArgs>) => {
      const configInput = { ...(argv.config ? { file: argv.config } : {}), flags: collectConfigFlags(argv as Record<string, unknown>) };
      const loaded = loadConfig(configInput);
      if (loaded.errors.length > 0) {
        printConfigErrors(loaded.errors);
        process.exit(2);
      }
      const v = loaded.values;
      const logger = createRootLogger(v['log-level'] as LogLevel);
      try {
        mkdirSync(v['data-dir'] as string, { recursive: true });
      } catch (err) {
        process.stderr.write(`mxsentry: cannot create data-dir ${String(v['data-dir'])}: ${describeError(err)}\n`);
        process.exit(1);
      }
      let daemon: Awaited<ReturnType<CliDeps['startDaemon']>>;
      try {
        // A reload re-reads the same file with the same flags on top (flags keep overriding it).
        daemon = await deps.startDaemon(v, logger, systemClock, {}, { loadConfig: () => loadConfig(configInput) });
      } catch (err) {
        const text = err instanceof MxError ? err.message : describeError(err);
        process.stderr.write(`mxsentry: ${text}\n`);
        logger.fatal({ err: describeError(err) }, 'start-up failed');
        logger.flush();
        process.exit(1);
      }
      void sdNotify(['READY=1', 'STATUS=answering DNS and policy requests'], { logger });
      const watchdog = startWatchdog({ logger });
      let stopping = false;
      const stop = (signal: string): void => {
        if (stopping) return;
        stopping = true;
        watchdog?.stop();
        void sdNotify(['STOPPING=1'], { logger });
        logger.info({ signal }, 'stopping');
        daemon
          .stop()
          .then(() => {
            logger.info('stopped');
            logger.flush(() => process.exit(0));
          })
          .catch((err: unknown) => {
            logger.error({ err: describeError(err) }, 'error while stopping');
            logger.flush(() => process.exit(1));
          });
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
      process.on('SIGHUP', () => {
        if (stopping) return;
        logger.info({ signal: 'SIGHUP' }, 'reloading configuration');
        // reload() logs every problem of a rejected file and the keys applied or needing a restart.
        daemon.operations.reload().catch((err: unknown) => logger.error({ err: describeError(err) }, 'reload rejected; the running configuration is kept'));
      });
    },
  };
}
