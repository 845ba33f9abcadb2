// `mxsentry serve`: loads the configuration (file + flags), starts the daemon, and handles
// signals: SIGTERM/SIGINT drain and exit 0, SIGHUP reloads. Start-up errors are printed plainly
// to stderr with what to do, and exit non-zero; nothing here runs per request.
import { mkdirSync } from 'node:fs';
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { loadConfig } from '../config/load.js';
import { systemClock } from '../util/clock.js';
import { MxError, describeError, type ConfigError } from '../util/errors.js';
import { createRootLogger, type LogLevel } from '../util/logger.js';
import type { CliDeps } from './cli.js';
import { addConfigFlags, collectConfigFlags } from './config-flags.js';

interface ServeArgs {
  config?: string;
}

/** Prints config problems, one per line, to stderr. */
export function printConfigErrors(errors: ConfigError[]): void {
  for (const e of errors) process.stderr.write(`mxsentry: config error: ${e.message}\n`);
  process.stderr.write(`mxsentry: ${errors.length} problem(s) in the configuration; not started\n`);
}

export function serveCommand(deps: CliDeps): CommandModule<object, ServeArgs> {
  return {
    command: 'serve',
    describe: 'Run the daemon: recursive DNS resolver (and, when configured, the policy service)',
    builder: (y: Argv) => addConfigFlags(y) as unknown as Argv<ServeArgs>,
    handler: async (argv: ArgumentsCamelCase<ServeArgs>) => {
      const loaded = loadConfig({ ...(argv.config ? { file: argv.config } : {}), flags: collectConfigFlags(argv as Record<string, unknown>) });
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
        daemon = await deps.startDaemon(v, logger, systemClock);
      } catch (err) {
        const text = err instanceof MxError ? err.message : describeError(err);
        process.stderr.write(`mxsentry: ${text}\n`);
        logger.fatal({ err: describeError(err) }, 'start-up failed');
        logger.flush();
        process.exit(1);
      }
      let stopping = false;
      const stop = (signal: string): void => {
        if (stopping) return;
        stopping = true;
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
      process.on('SIGHUP', () => logger.info('SIGHUP received; configuration reload arrives with the operations work (issue 5)'));
    },
  };
}
