// Tests for recipient tables: Postfix table source syntax, plain lists, case, key errors with
// file:line, loading and merging files.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RecipientTable } from '../../../src/policy/tables/recipient-table.js';
import { PolicyError } from '../../../src/util/errors.js';

const s = suite('policy/tables/recipient-table');

function errorOf(fn: () => unknown): PolicyError {
  try {
    fn();
  } catch (err) {
    assert.instance(err, PolicyError);
    return err as PolicyError;
  }
  throw new Error('expected a PolicyError');
}

s('Postfix table source: key value lines, comments, continuation lines, case-insensitive', () => {
  const t = RecipientTable.fromText(
    [
      '# relay_recipients',
      'Alice@Example.org   OK',
      '   continued value line',
      '@example.net\tanything',
      '',
      '  # indented comment',
      'bob@example.org x',
    ].join('\n'),
    'relay_recipients',
  );
  assert.is(t.size, 3);
  assert.equal(t.get('alice@example.org'), { key: 'alice@example.org', source: 'relay_recipients', line: 2 });
  assert.ok(t.get('ALICE@EXAMPLE.ORG'));
  assert.ok(t.get('@EXAMPLE.NET'));
  assert.equal(t.get('bob@example.org')?.line, 7);
  assert.is(t.get('carol@example.org'), undefined);
});

s('plain one-address-per-line lists and CRLF files', () => {
  const t = RecipientTable.fromText('alice@example.org\r\nbob@example.org\r\n@example.com\r\n');
  assert.is(t.size, 3);
  assert.ok(t.get('bob@example.org'));
});

s('bad keys fail the load with source:line', () => {
  const domainLine = errorOf(() => RecipientTable.fromText('a@example.org\nexample.org anything\n', 'virtual')).message;
  assert.match(domainLine, /^virtual:2: .*a bare domain is not a recipient/);
  assert.match(domainLine, /virtual\(5\) table, delete its domain lines/);
  assert.match(errorOf(() => RecipientTable.fromText('alice\n', 'list')).message, /^list:1: .*bare user name/);
  assert.is(errorOf(() => RecipientTable.fromText('user@\n', 't')).code, 'POLICY_ERR_TABLE_SYNTAX');
  assert.match(errorOf(() => RecipientTable.fromText('\n\nuser@example..org\n', 't')).message, /^t:3: bad domain/);
  // Every bad line in one error, one per line of its message.
  const all = errorOf(() => RecipientTable.fromText('a@example.org\nexample.org x\nb@example.org\nalice\n', 'virtual')).message.split('\n');
  assert.equal(all.map((l) => l.split(':', 2).join(':')), ['virtual:2', 'virtual:4']);
});

s('load() merges files in order; a missing file names its path', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-rcpt-'));
  try {
    const a = join(dir, 'a');
    const b = join(dir, 'b');
    writeFileSync(a, 'alice@example.org OK\n');
    writeFileSync(b, 'alice@example.org dup\n@example.net OK\n');
    const t = await RecipientTable.load([a, b]);
    assert.is(t.size, 2);
    assert.equal(t.get('alice@example.org'), { key: 'alice@example.org', source: a, line: 1 }, 'first definition wins');
    try {
      await RecipientTable.load([join(dir, 'missing')]);
      assert.unreachable();
    } catch (err) {
      assert.is((err as PolicyError).code, 'POLICY_ERR_TABLE_READ');
      assert.match((err as PolicyError).message, /missing/);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

s.run();
