// Tests for the file-form rendering of values: every default, rendered, parses back to itself (so a
// default copied from --help or the example file means the same), and day-unit keys never render a
// bare number of seconds.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { formatLimit, formatValue } from '../../src/config/format-value.js';
import { parseValue } from '../../src/config/load.js';
import { SCHEMA, keyDef } from '../../src/config/schema.js';

const s = suite('config/format-value');

s('every default renders to text that parses back to the same value', () => {
  for (const def of SCHEMA) {
    const values = def.list ? (def.default as unknown[]) : [def.default];
    for (const v of values) {
      if (v === '') continue;
      const text = formatValue(def, v);
      const back = parseValue(def, text);
      assert.equal(typeof back === 'object' && back !== null && 'text' in back ? (back as { text: string }).text : back, v, `${def.key}: ${text}`);
    }
  }
});

s('durations in the key\'s unit, sizes with suffixes, switches as yes/no', () => {
  assert.is(formatValue(keyDef('retry-window')!, 2 * 86400), '2d');
  assert.is(formatValue(keyDef('retry-window')!, 43200), '12h');
  assert.is(formatValue(keyDef('retry-window')!, 90), '90s');
  assert.is(formatValue(keyDef('max-age')!, 35 * 86400), '35d');
  assert.is(formatValue(keyDef('delay')!, 60), '60');
  assert.is(formatValue(keyDef('cache-size')!, 64 << 20), '64m');
  assert.is(formatValue(keyDef('store-map-size')!, 1024 ** 3), '1g');
  assert.is(formatValue(keyDef('greylist')!, false), 'no');
  assert.is(formatLimit(keyDef('delay')!, 86400), '86400 seconds');
  assert.is(formatLimit(keyDef('max-age')!, 86400), '1d');
  assert.is(formatLimit(keyDef('upstream-port')!, 65535), '65535');
});

s.run();
