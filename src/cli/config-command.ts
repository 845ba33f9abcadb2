// `mxsentry config check [FILE]` and `mxsentry config example`. check validates a file the way `serve`
// would at start (every key, every value, the replication settings, plus the files it names: root
// hints, local zones, tables, whitelists, and the control socket's folder) without opening a socket
// or the store; exit 0 valid, 2 problems. example prints the commented example configuration generated from the schema (shipped
// as mxsentry.conf.example).
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { renderExampleConfig } from '../config/example-config.js';
import { loadConfig } from '../config/load.js';
import { checkStartSettings, relativePathWarningsOf, settingWarningsOf, whitelistWarningsOf } from './config-check.js';
import { DEFAULT_CONFIG_FILE, EXIT_OK, EXIT_USAGE, usageError } from './control-cli.js';

interface CheckArgs {
  file: string;
}

/** `mxsentry config check FILE` / `mxsentry config example`. */
export function configCommand(): CommandModule<object, object> {
  return {
    command: 'config <command>',
    describe: 'Validate a configuration file, or print the commented example configuration',
    builder: (y: Argv) =>
      y
        .command({
          // Without a file, the packaged unit's, as unbound-checkconf checks the default unbound.conf.
          command: 'check [file]',
          describe: `Validate FILE (default ${DEFAULT_CONFIG_FILE}) like \`serve\` does at start, without starting (exit 0: valid, 2: problems)`,
          builder: (yy: Argv) => yy.positional('file', { type: 'string', default: DEFAULT_CONFIG_FILE, describe: 'Configuration file' }) as unknown as Argv<CheckArgs>,
          handler: async (argv: ArgumentsCamelCase<CheckArgs>) => {
            if (argv.file === '') {
              usageError('config check: the file name is empty');
              return;
            }
            const loaded = loadConfig({ file: argv.file });
            const problems = (await checkStartSettings(loaded)).map((e) => e.message);
            // Printed either way: a relative path is often why a named file was not found.
            for (const w of relativePathWarningsOf(loaded)) process.stderr.write(`mxsentry: config warning: ${w}\n`);
            if (problems.length > 0) {
              for (const p of problems) process.stderr.write(`mxsentry: config error: ${p}\n`);
              process.stderr.write(`mxsentry: ${argv.file}: ${problems.length} problem(s)\n`);
              process.exitCode = EXIT_USAGE;
              return;
            }
            // serve starts with these lines skipped (as postgrey does), but the admin should know.
            for (const w of [...(await whitelistWarningsOf(loaded)), ...settingWarningsOf(loaded)]) process.stderr.write(`mxsentry: config warning: ${w}\n`);
            process.stdout.write(`${argv.file}: OK\n`);
            process.exitCode = EXIT_OK;
          },
        })
        .command({
          command: 'example',
          describe: 'Print a fully commented example configuration with every key and its default',
          handler: () => {
            process.stdout.write(renderExampleConfig());
          },
        })
        .demandCommand(1, 'Name a config command: check or example; see --help'),
    handler: () => undefined,
  };
}
