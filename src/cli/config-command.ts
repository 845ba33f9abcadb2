// `mxsentry config check FILE` and `mxsentry config example`. check validates a file the way `serve`
// would at start (every key, every value, plus the files it names: root hints, local zones, tables,
// whitelists) without opening a socket or the store; exit 0 valid, 2 problems. example prints the
// commented example configuration generated from the schema (shipped as mxsentry.conf.example).
import { existsSync, readFileSync } from 'node:fs';
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { renderExampleConfig } from '../config/example-config.js';
import { loadConfig, type ConfigValues } from '../config/load.js';
import { LocalZones } from '../dns/server/local-zones.js';
import type { Name } from '../dns/wire/types.js';
import { parseZoneText } from '../dns/wire/zone-text.js';
import { CidrTable } from '../policy/tables/cidr-table.js';
import { PostgreyWhitelist } from '../policy/tables/postgrey-whitelist.js';
import { RecipientTable } from '../policy/tables/recipient-table.js';
import { describeError } from '../util/errors.js';
import { zonesFile } from '../util/paths.js';
import { EXIT_OK, EXIT_USAGE } from './control-cli.js';

/**
 * Problems in the files a valid configuration names (each message names the file and, where the
 * parser knows it, the line). An empty list means `serve` would load them all.
 */
export async function checkReferencedFiles(v: ConfigValues): Promise<string[]> {
  const problems: string[] = [];
  const attempt = async (what: string, fn: () => unknown): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      problems.push(`${what}: ${describeError(err)}`);
    }
  };
  const hints = (v['root-hints'] as string) || zonesFile('named.root');
  await attempt('root-hints', () => {
    const records = parseZoneText(readFileSync(hints, 'utf8'), { origin: '.', file: hints });
    if (!records.some((r) => r.name === '.' && r.type === 2)) throw new Error(`${hints} holds no NS records for "."`);
  });
  await attempt('local-zones-file', () => {
    const zones = new LocalZones({ defaults: true });
    for (const z of v['no-default-zone'] as Name[]) zones.disable(z);
    const file = (v['local-zones-file'] as string) || zonesFile('local-zones.conf');
    if ((v['local-zones-file'] as string) || existsSync(file)) zones.loadFile(file);
  });
  const recipients = v['recipients-file'] as string[];
  if (recipients.length > 0) await attempt('recipients-file', () => RecipientTable.load(recipients));
  const networks = v['known-networks-file'] as string[];
  if (networks.length > 0) await attempt('known-networks-file', () => CidrTable.load(networks));
  await attempt('whitelist-clients/whitelist-recipients', () => PostgreyWhitelist.load(v['whitelist-clients'] as string[], v['whitelist-recipients'] as string[]));
  return problems;
}

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
          command: 'check <file>',
          describe: 'Validate FILE like `serve` does at start, without starting (exit 0: valid, 2: problems)',
          builder: (yy: Argv) => yy.positional('file', { type: 'string', demandOption: true, describe: 'Configuration file' }) as unknown as Argv<CheckArgs>,
          handler: async (argv: ArgumentsCamelCase<CheckArgs>) => {
            const loaded = loadConfig({ file: argv.file });
            const problems = loaded.errors.map((e) => e.message);
            // Referenced files are only meaningful once every value parsed.
            if (problems.length === 0) problems.push(...(await checkReferencedFiles(loaded.values)));
            if (problems.length > 0) {
              for (const p of problems) process.stderr.write(`mxsentry: config error: ${p}\n`);
              process.stderr.write(`mxsentry: ${argv.file}: ${problems.length} problem(s)\n`);
              process.exitCode = EXIT_USAGE;
              return;
            }
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
