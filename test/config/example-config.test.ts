// The shipped mxsentry.conf.example is exactly what `mxsentry config example` prints for the current
// schema, every key appears in it, and uncommenting every setting line gives a valid configuration
// equal to the defaults (so the documented defaults are the real ones), those shown empty included.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderExampleConfig } from '../../src/config/example-config.js';
import { loadConfig } from '../../src/config/load.js';
import { SCHEMA } from '../../src/config/schema.js';
import { packageRoot } from '../../src/util/paths.js';

const s = suite('config/example-config');

s('mxsentry.conf.example is in sync with the schema (regenerate: mxsentry config example > mxsentry.conf.example)', () => {
  const shipped = readFileSync(join(packageRoot(), 'mxsentry.conf.example'), 'utf8');
  assert.fixture(shipped, renderExampleConfig());
});

s('every key is documented', () => {
  const text = renderExampleConfig();
  for (const def of SCHEMA) assert.ok(text.includes(`\n#${def.key}:`), `${def.key} missing`);
});

s('uncommented, the example is valid and equals the defaults', () => {
  const text = renderExampleConfig()
    .split('\n')
    .map((l) => (/^#[a-z][a-z0-9-]*: \S/.test(l) ? l.slice(1) : l))
    .join('\n');
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-example-'));
  try {
    const file = join(dir, 'mxsentry.conf');
    writeFileSync(file, text);
    const loaded = loadConfig({ file });
    assert.equal(loaded.errors.map((e) => e.message), []);
    assert.equal(loaded.values, loadConfig({}).values);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

s('a key shown with no value ("Default: none") takes it uncommented as written: the default', () => {
  const empty = renderExampleConfig()
    .split('\n')
    .filter((l) => /^#[a-z][a-z0-9-]*:$/.test(l))
    .map((l) => l.slice(1));
  assert.ok(empty.includes('replication-key:'), empty.join(' '));
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-example-'));
  try {
    const file = join(dir, 'mxsentry.conf');
    writeFileSync(file, `${empty.join('\n')}\n`);
    const loaded = loadConfig({ file });
    assert.equal(loaded.errors.map((e) => e.message), []);
    assert.equal(loaded.values, loadConfig({}).values);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

s.run();
