// Turns the configuration schema into yargs options, so every config key is also a `serve` flag
// with the same name, and collects the given flags back into loadConfig's input.
// Flags left out stay undefined: the config file (or the default) applies.
import type { Argv } from 'yargs';
import { defaultLines } from '../config/example-config.js';
import { loadConfig, type ConfigValues } from '../config/load.js';
import { SCHEMA } from '../config/schema.js';
import type { ConfigError } from '../util/errors.js';

/** Adds one option per schema key to a yargs command. */
export function addConfigFlags<T>(y: Argv<T>): Argv<T> {
  let out = y.option('config', { type: 'string', describe: 'Configuration file (key: value lines)', group: 'General:' });
  for (const def of SCHEMA) {
    const group = `${def.group[0]!.toUpperCase()}${def.group.slice(1)}:`;
    // Defaults as the example file writes them (2d, 64m, yes), so a copied default means the same in the file.
    const describe = `${def.description} [default: ${defaultLines(def).join(', ') || 'none'}]`;
    if (def.kind === 'bool' && !def.list) out = out.option(def.key, { type: 'boolean', describe, group });
    else if (def.list) out = out.option(def.key, { type: 'string', array: true, describe, group, requiresArg: true });
    else out = out.option(def.key, { type: 'string', describe, group, requiresArg: true, ...(def.choices ? { choices: [...def.choices] } : {}) });
  }
  // postgrey-style negation for the one default-on switch admins turn off most.
  out = out.option('no-x-greylist-header', { type: 'boolean', describe: 'Same as --x-greylist-header=no', group: 'Greylist:' });
  return out as Argv<T>;
}

/** The schema keys present in parsed argv, as loadConfig flag input. */
export function collectConfigFlags(argv: Record<string, unknown>): Record<string, unknown> {
  const flags: Record<string, unknown> = {};
  for (const def of SCHEMA) {
    const v = argv[def.key];
    if (v !== undefined) flags[def.key] = v;
  }
  if (argv['no-x-greylist-header'] === true) flags['x-greylist-header'] = false;
  return flags;
}

/** Prints config problems, one per line, to stderr. */
export function printConfigErrors(errors: ConfigError[]): void {
  for (const e of errors) process.stderr.write(`mxsentry: config error: ${e.message}\n`);
  process.stderr.write(`mxsentry: ${errors.length} problem(s) in the configuration; not started\n`);
}

/**
 * Loads --config and the config flags of a command; on any problem prints them all, sets exit
 * code 2 and returns null (the command then ends without doing anything).
 */
export function loadConfigOrExit(argv: Record<string, unknown>): ConfigValues | null {
  const loaded = loadConfig({ ...(typeof argv.config === 'string' ? { file: argv.config } : {}), flags: collectConfigFlags(argv) });
  if (loaded.errors.length > 0) {
    printConfigErrors(loaded.errors);
    process.exitCode = 2;
    return null;
  }
  return loaded.values;
}
