// Turns the configuration schema into yargs options, so every config key is also a `serve` flag
// with the same name, and collects the given flags back into loadConfig's input. Switch (bool) keys
// are rewritten before yargs parses (normaliseSwitchFlags). Flags left out stay undefined: the config
// file (or the default) applies.
import type { Argv } from 'yargs';
import { defaultLines } from '../config/example-config.js';
import { SCHEMA } from '../config/schema.js';

/**
 * yargs parser settings of the CLI. Boolean negation stays off: keys such as no-default-zone start
 * with "no-", and yargs would read `--no-default-zone test.` as `default-zone: false`; the switches'
 * own `--no-KEY` is handled by normaliseSwitchFlags instead.
 */
export const CLI_PARSER_CONFIGURATION = { 'boolean-negation': false, 'camel-case-expansion': false } as const;

/** The bool keys of the schema: each is a flag that takes `--KEY`, `--KEY yes|no` and `--no-KEY`. */
const SWITCH_KEYS: ReadonlySet<string> = new Set(SCHEMA.filter((d) => d.kind === 'bool' && !d.list).map((d) => d.key));

/** Words a switch takes as a separate argument; any other next argument is not its value. */
const SWITCH_WORDS: ReadonlySet<string> = new Set(['yes', 'no', 'true', 'false', 'on', 'off']);

/**
 * Rewrites the switch flags of a command line to `--KEY=WORD` before yargs parses it: `--KEY` ->
 * `--KEY=yes`, `--KEY no` -> `--KEY=no` (only yes/no/true/false/on/off are taken as its value, so a
 * following positional stays one), `--no-KEY` -> `--KEY=no`. `--KEY=WORD` and everything after `--`
 * are left as they are.
 */
export function normaliseSwitchFlags(args: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') {
      out.push(...args.slice(i));
      break;
    }
    const negated = /^--no-([a-z0-9-]+)$/.exec(arg);
    if (negated && SWITCH_KEYS.has(negated[1]!)) {
      out.push(`--${negated[1]}=no`);
      continue;
    }
    const bare = /^--([a-z0-9-]+)$/.exec(arg);
    if (bare && SWITCH_KEYS.has(bare[1]!)) {
      const next = args[i + 1];
      if (next !== undefined && SWITCH_WORDS.has(next.toLowerCase())) {
        out.push(`${arg}=${next}`);
        i++;
      } else {
        out.push(`${arg}=yes`);
      }
      continue;
    }
    out.push(arg);
  }
  return out;
}

/**
 * The usage message for a switch given a word that is none of SWITCH_WORDS (`--greylist maybe`):
 * normaliseSwitchFlags reads the switch as `--greylist=yes` and leaves the word as an argument of
 * its own, which yargs calls "Unknown argument: maybe", naming neither the switch nor its words.
 * Returns `message` with each such word explained as the loader says it of `--greylist=maybe`, or
 * undefined when no word following a bare switch is one of the words `message` (yargs' "Unknown
 * argument(s): ..." for `args`) lists.
 */
export function explainSwitchWords(args: readonly string[], message: string): string | undefined {
  // The words yargs reports, whole: a positional after a switch (`rbl --do-ip6 192.0.2.1`) is only
  // a substring of another reported word (192.0.2.10), not one of them.
  const unknown = /^Unknown arguments?: (.*)$/.exec(message.trim());
  if (unknown === null) return undefined;
  const reported = unknown[1]!.split(', ');
  const problems: string[] = [];
  const words: string[] = [];
  for (let i = 0; i + 1 < args.length; i++) {
    const bare = /^--([a-z0-9-]+)$/.exec(args[i]!);
    const next = args[i + 1]!;
    if (args[i] === '--') break;
    if (!bare || !SWITCH_KEYS.has(bare[1]!) || next.startsWith('-') || SWITCH_WORDS.has(next.toLowerCase()) || !reported.includes(next)) continue;
    const key = bare[1]!;
    words.push(next);
    problems.push(`--${key}: "${next}" is not yes/no (a switch: --${key}, --${key} yes|no, --${key}=yes|no, or --no-${key})`);
  }
  if (problems.length === 0) return undefined;
  // yargs' own line adds nothing when it only lists those words; otherwise it stays, after them.
  return reported.every((w) => words.includes(w)) ? problems.join('\n') : [...problems, message].join('\n');
}

/**
 * Adds one option per schema key to a yargs command. `serve` lists them all in its help; the other
 * commands (which accept them to read the daemon's configuration) list --config and the keys in
 * `shown` (those an admin typically gives such a command, e.g. --data-dir), and say so.
 */
export function addConfigFlags<T>(y: Argv<T>, opts: { listed: boolean; shown?: readonly string[] } = { listed: true }): Argv<T> {
  let out = y.option('config', { type: 'string', requiresArg: true, describe: 'Configuration file (key: value lines)', group: 'General:' });
  if (!opts.listed) out = out.epilog('It reads the configuration serve reads: --config FILE, and every option of `mxsentry serve --help`, which override the file as they do for serve.');
  for (const def of SCHEMA) {
    const shown = opts.shown?.includes(def.key) ?? false;
    const hidden = !opts.listed && !shown;
    const group = shown ? 'General:' : `${def.group[0]!.toUpperCase()}${def.group.slice(1)}:`;
    // Defaults as the example file writes them (2d, 64m, yes), so a copied default means the same in the file.
    const describe = `${def.description} [default: ${defaultLines(def).join(', ') || 'none'}]`;
    // No yargs type for switches: normaliseSwitchFlags hands every form over as `--KEY=WORD`, and
    // the word goes to parseValue like the file's (yargs' boolean would read "yes" as false).
    if (SWITCH_KEYS.has(def.key)) out = out.option(def.key, { describe: `${describe} [yes|no, or --no-${def.key}]`, group, hidden });
    else if (def.list) out = out.option(def.key, { type: 'string', array: true, describe, group, requiresArg: true, hidden });
    else out = out.option(def.key, { type: 'string', describe, group, requiresArg: true, hidden, ...(def.choices ? { choices: [...def.choices] } : {}) });
  }
  return out as Argv<T>;
}

/** The schema keys present in parsed argv, as loadConfig flag input. */
export function collectConfigFlags(argv: Record<string, unknown>): Record<string, unknown> {
  const flags: Record<string, unknown> = {};
  for (const def of SCHEMA) {
    const v = argv[def.key];
    if (v !== undefined) flags[def.key] = v;
  }
  return flags;
}

/**
 * Prints config problems, one per line, to stderr, then what was not done because of them: `serve`
 * says "not started"; the other commands, which read the daemon's file, say that they did nothing.
 */
export function printConfigErrors(errors: readonly Error[], outcome = 'not started'): void {
  for (const e of errors) process.stderr.write(`mxsentry: config error: ${e.message}\n`);
  process.stderr.write(`mxsentry: ${errors.length} problem(s) in the configuration; ${outcome}\n`);
}

/** printConfigErrors' outcome for the commands other than `serve`. */
export const COMMAND_NOT_RUN = 'the command did nothing (fix the file or the flags named above, or name another file with --config)';
