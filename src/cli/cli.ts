// The command-line interface (yargs). Each command lives in its own file and receives the
// wiring functions from src/main.ts through CliDeps, so cli/ never imports main.ts.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import type { createDnsStack, startDaemon } from '../main.js';
import { lookupCommand } from './lookup-command.js';
import { serveCommand } from './serve-command.js';

/** What the commands need from the process wiring. */
export interface CliDeps {
  createDnsStack: typeof createDnsStack;
  startDaemon: typeof startDaemon;
}

/** Parses argv and runs the chosen command. */
export async function runCli(argv: string[], deps: CliDeps): Promise<void> {
  await yargs(hideBin(argv))
    .scriptName('mxsentry')
    .parserConfiguration({ 'boolean-negation': false, 'camel-case-expansion': false })
    .command(serveCommand(deps))
    .command(lookupCommand(deps))
    .demandCommand(1, 'Name a command; see --help')
    .strict()
    .help()
    .alias('h', 'help')
    .version()
    .wrap(Math.min(120, process.stdout.columns || 100))
    .parseAsync();
}
