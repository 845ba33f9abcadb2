// Tests for the config keys as command-line flags: `--help` shows defaults in the file's form (2d,
// 64m, yes), so a default copied into the file means the same thing.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import yargs from 'yargs';
import { addConfigFlags } from '../../src/cli/config-flags.js';

const s = suite('cli/config-flags');

async function helpText(): Promise<string> {
  return addConfigFlags(yargs([])).wrap(null).getHelp();
}

/** The help line of one flag. */
function helpLine(help: string, key: string): string {
  const line = help.split('\n').find((l) => l.trimStart().startsWith(`--${key} `));
  assert.ok(line, `--${key} in help`);
  return line!;
}

s('help shows defaults in the key\'s own unit and suffix form', async () => {
  const help = await helpText();
  assert.match(helpLine(help, 'retry-window'), /\[default: 2d\]/);
  assert.match(helpLine(help, 'max-age'), /\[default: 35d\]/);
  assert.match(helpLine(help, 'delay'), /\[default: 60\]/);
  assert.match(helpLine(help, 'cache-size'), /\[default: 64m\]/);
  assert.match(helpLine(help, 'store-map-size'), /\[default: 1g\]/);
  assert.match(helpLine(help, 'greylist'), /\[default: yes\]/);
  assert.match(helpLine(help, 'allow'), /\[default: 127\.0\.0\.0\/8, ::1\/128\]/);
  assert.match(helpLine(help, 'node-name'), /\[default: none\]/);
  assert.not.match(help, /172800|3024000|67108864/);
});

s.run();
