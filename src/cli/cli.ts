// The command-line interface (yargs). Each command lives in its own file and receives the
// wiring functions from src/main.ts through CliDeps, so cli/ never imports main.ts.
import yargs, { type CommandModule } from 'yargs';
import { hideBin } from 'yargs/helpers';
import type { createDnsStack, listZonesOf, policySettings, startDaemon, version } from '../main.js';
import { configCommand } from './config-command.js';
import { CLI_PARSER_CONFIGURATION, explainSwitchWords, normaliseSwitchFlags } from './config-flags.js';
import { cacheCommand, reloadCommand, statsCommand } from './control-cli.js';
import { lookupCommand } from './lookup-command.js';
import { checkCommand, greylistCommand, rblCommand } from './policy-commands.js';
import { peerCommand, replicationCommand } from './replication-commands.js';
import { serveCommand } from './serve-command.js';

/** What the commands need from the process wiring. */
export interface CliDeps {
  createDnsStack: typeof createDnsStack;
  startDaemon: typeof startDaemon;
  policySettings: typeof policySettings;
  listZonesOf: typeof listZonesOf;
  version: typeof version;
}

/** Parses argv and runs the chosen command. */
export async function runCli(argv: string[], deps: CliDeps): Promise<void> {
  ignoreClosedReader(process.stdout);
  const commands = [
    serveCommand(deps), lookupCommand(deps), checkCommand(deps), rblCommand(deps), greylistCommand(), peerCommand(),
    replicationCommand(), cacheCommand(), statsCommand(), reloadCommand(), configCommand(),
  ] as CommandModule<object, never>[];
  // Each module's name, the first word of its `command` ("greylist <action> [target]" -> greylist).
  const names = commands.map((c) => String(c.command).split(' ')[0]);
  await yargs(normaliseSwitchFlags(hideBin(argv)))
    .scriptName('mxsentry')
    .parserConfiguration(CLI_PARSER_CONFIGURATION)
    .command(commands)
    .demandCommand(1, 'Name a command; see --help')
    .strict()
    // Usage errors (unknown flag, missing argument) exit 2, as config errors do; scripts tell them
    // from "the command ran and failed" (1). Errors thrown by a handler go on to bin/mxsentry.
    // The problem and where the options are, not the whole help: serve's ~90 flags would bury it.
    .fail((msg, err) => {
      // yargs reports its own parse errors (a flag without its value) with a YError; anything
      // else thrown is the handler's.
      if (err && err.name !== 'YError') throw err;
      let problem = msg || (err?.message ?? '');
      // `--greylist maybe`: yargs only sees an unknown "maybe"; the switch and its words are named instead.
      problem = explainSwitchWords(hideBin(argv), problem) ?? problem;
      const first = hideBin(argv).find((a) => !a.startsWith('-'));
      const command = first !== undefined && names.includes(first) ? first : undefined;
      // yargs' "Not enough non-option arguments: got 0, need at least 1" names no argument: show
      // the command's form instead ("missing argument: mxsentry cache <command>").
      if (command && /^Not enough non-option arguments/.test(problem)) problem = `missing argument: mxsentry ${String(commands[names.indexOf(command)]?.command)}`;
      process.stderr.write(`mxsentry: ${problem}\nRun \`mxsentry ${command ? `${command} ` : ''}--help\` for the options.\n`);
      process.exit(2);
    })
    .help()
    .alias('h', 'help')
    .version(deps.version())
    .wrap(Math.min(120, process.stdout.columns || 100))
    .parseAsync();
}

/**
 * A reader that stops early (`mxsentry reload | head -1`) makes writes fail with EPIPE, which Node
 * raises as an 'error' event: without a listener, an uncaught exception and exit 1 after the
 * command had done its work. The rest of the output is dropped and the command ends with its own
 * exit code, as a C program killed quietly by SIGPIPE would not, but as a script needs.
 */
export function ignoreClosedReader(stream: NodeJS.WriteStream): void {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED') return;
    throw err;
  });
}
