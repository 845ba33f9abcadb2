// Tests for the config keys as command-line flags: `--help` shows defaults in the file's form (2d,
// 64m, yes), so a default copied into the file means the same thing; every switch takes `--KEY`,
// `--KEY yes|no|true|false` and `--no-KEY`, parsed as the real CLI parses (normaliseSwitchFlags, the
// CLI's parser settings, strict) and without swallowing a following positional.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import yargs from 'yargs';
import { CLI_PARSER_CONFIGURATION, addConfigFlags, collectConfigFlags, explainSwitchWords, normaliseSwitchFlags } from '../../src/cli/config-flags.js';
import { loadConfig, type LoadResult } from '../../src/config/load.js';
import { SCHEMA } from '../../src/config/schema.js';

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

interface Parsed {
  loaded: LoadResult;
  positionals: { name?: string; type?: string };
}

/** Parses `cmd NAME [TYPE] ...args` like runCli does, then loads the config flags. */
async function parse(args: string[]): Promise<Parsed> {
  let parsed: Parsed | undefined;
  await yargs(normaliseSwitchFlags(['cmd', ...args]))
    .parserConfiguration(CLI_PARSER_CONFIGURATION)
    .command({
      command: 'cmd [name] [type]',
      describe: 'test command with positionals, like lookup',
      builder: (y) => addConfigFlags(y),
      handler: (argv) => {
        const a = argv as Record<string, unknown>;
        parsed = {
          loaded: loadConfig({ flags: collectConfigFlags(a) }),
          positionals: { ...(typeof a.name === 'string' ? { name: a.name } : {}), ...(typeof a.type === 'string' ? { type: a.type } : {}) },
        };
      },
    })
    .strict()
    .fail((msg, err) => {
      throw err ?? new Error(msg);
    })
    .parseAsync();
  assert.ok(parsed, 'handler ran');
  return parsed!;
}

async function value(args: string[], key: string): Promise<unknown> {
  const { loaded } = await parse(args);
  assert.equal(loaded.errors.map((e) => e.message), []);
  return loaded.values[key];
}

s('commands other than serve list only --config and point at serve --help, yet take every key', async () => {
  const unlisted = (): ReturnType<typeof yargs> => addConfigFlags(yargs([]).strict().fail((msg, err) => {
    throw err ?? new Error(msg);
  }), { listed: false }).wrap(null);
  const help = await unlisted().getHelp();
  assert.match(help, /--config/);
  assert.not.match(help, /--dnsbl|--dns-listen|--max-age/);
  assert.match(help, /every option of `mxsentry serve --help`/);
  const argv = (await unlisted().parseAsync(['--max-age', '10d', '--dnsbl', 'zen.example'])) as Record<string, unknown>;
  const loaded = loadConfig({ flags: collectConfigFlags(argv) });
  assert.equal(loaded.errors, []);
  assert.is(loaded.values['max-age'], 10 * 86400);
  assert.match(await helpText(), /--dnsbl /, 'serve still lists them');
});

s('a command lists the keys it names in `shown` beside --config (greylist: --data-dir)', async () => {
  const help = await addConfigFlags(yargs([]), { listed: false, shown: ['data-dir', 'control-socket'] }).wrap(null).getHelp();
  const general = help.slice(help.indexOf('General:'));
  assert.match(general, /--data-dir +Folder for the LMDB greylist store/);
  assert.match(general, /--control-socket /);
  assert.not.match(help, /--dnsbl|--max-age/);
});

s('every switch: --KEY, --KEY yes|no|true|false|on|off, --KEY=WORD and --no-KEY', async () => {
  const keys = SCHEMA.filter((d) => d.kind === 'bool').map((d) => d.key);
  assert.ok(keys.length >= 10);
  // One command line per form, holding every switch (a yargs parse of all the flags is not cheap).
  const forms: [string, (key: string) => string[], boolean][] = [
    ['--KEY', (k) => [`--${k}`], true],
    ['--no-KEY', (k) => [`--no-${k}`], false],
  ];
  for (const [word, expected] of [['yes', true], ['no', false], ['true', true], ['false', false], ['on', true], ['off', false], ['No', false]] as const) {
    forms.push([`--KEY ${word}`, (k) => [`--${k}`, word], expected], [`--KEY=${word}`, (k) => [`--${k}=${word}`], expected]);
  }
  for (const [form, argsOf, expected] of forms) {
    const { loaded } = await parse(keys.flatMap(argsOf));
    assert.equal(loaded.errors.map((e) => e.message), [], form);
    for (const k of keys) assert.is(loaded.values[k], expected, `${form}: ${k}`);
  }
});

s('a switch does not swallow a following positional; flags after it still parse', async () => {
  const a = await parse(['--prefetch', 'example.com', 'MX']);
  assert.equal(a.positionals, { name: 'example.com', type: 'MX' });
  assert.is(a.loaded.values['prefetch'], true);
  const b = await parse(['--greylist', 'no', 'example.com', '--no-do-ip6', '--delay', '5']);
  assert.equal(b.positionals, { name: 'example.com' });
  assert.equal([b.loaded.values['greylist'], b.loaded.values['do-ip6'], b.loaded.values['delay']], [false, false, 5]);
  const c = await parse(['example.com', '--use-caps-for-id']);
  assert.equal(c.positionals, { name: 'example.com' });
  assert.is(c.loaded.values['use-caps-for-id'], true);
});

s('keys named no-... are not negations; a bad switch word is a config error', async () => {
  assert.equal(await value(['--no-default-zone', 'test.', '--no-minimisation-zone', 'example.'], 'no-default-zone'), ['test.']);
  for (const def of SCHEMA.filter((d) => d.kind === 'bool')) assert.not.ok(SCHEMA.some((d) => d.key === `no-${def.key}`), `no-${def.key} would be ambiguous`);
  const { loaded } = await parse(['--greylist=maybe']);
  assert.equal(loaded.errors.map((e) => e.message), ['--greylist: "maybe" is not yes/no']);
});

s('normaliseSwitchFlags leaves everything after -- alone', () => {
  assert.equal(normaliseSwitchFlags(['serve', '--greylist', '--', '--no-prefetch']), ['serve', '--greylist=yes', '--', '--no-prefetch']);
});

s('a switch followed by a word that is none of its words is explained when yargs reports that word', () => {
  const named = '--greylist: "maybe" is not yes/no (a switch: --greylist, --greylist yes|no, --greylist=yes|no, or --no-greylist)';
  assert.is(explainSwitchWords(['check', '--greylist', 'maybe'], 'Unknown argument: maybe'), named);
  // Other unknown words stay in yargs' line, after the explanation; several switches each get one.
  assert.is(explainSwitchWords(['check', '--greylist', 'maybe', '--bogus'], 'Unknown arguments: bogus, maybe'), `${named}\nUnknown arguments: bogus, maybe`);
  assert.equal(explainSwitchWords(['serve', '--prefetch', 'nope', '--do-ip6', 'ja'], 'Unknown arguments: nope, ja')?.split('\n').map((l) => l.split(':')[0]), ['--prefetch', '--do-ip6']);
  // Not a switch's word: a switch word, a flag, a word yargs did not report (a positional), after --.
  assert.is(explainSwitchWords(['check', '--greylist', 'no', 'x'], 'Unknown argument: x'), undefined);
  assert.is(explainSwitchWords(['rbl', '--query-loopback', '127.0.0.2', '--bogus'], 'Unknown argument: bogus'), undefined);
  assert.is(explainSwitchWords(['check', '--delay', 'maybe'], 'Unknown argument: maybe'), undefined);
  assert.is(explainSwitchWords(['lookup', '--', '--greylist', 'maybe'], 'Unknown argument: maybe'), undefined);
  // A positional after a bare switch whose text is only part of a reported word is no switch word:
  // `rbl --do-ip6 192.0.2.1 192.0.2.10` reports the second address, not the first.
  assert.is(explainSwitchWords(['rbl', '--do-ip6', '192.0.2.1', '192.0.2.10'], 'Unknown argument: 192.0.2.10'), undefined);
  assert.is(explainSwitchWords(['lookup', '--prefetch', 'example.com', 'A', 'example.com.au'], 'Unknown argument: example.com.au'), undefined);
});

s.run();
