// Tests for cidr: tables and plain network lists: first match in file order, v4/v6/mapped,
// precise file:line errors (host bits, bad prefixes, if/endif), loading several files.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CidrTable } from '../../../src/policy/tables/cidr-table.js';
import { PolicyError } from '../../../src/util/errors.js';
import { TableSyntaxError } from '../../../src/policy/tables/table-syntax-error.js';
import { MAX_REPORTED_LINES } from '../../../src/util/line-problems.js';

const s = suite('policy/tables/cidr-table');

function syntaxError(text: string, source = 'tbl'): string {
  try {
    CidrTable.parse(text, source);
  } catch (err) {
    assert.instance(err, PolicyError);
    assert.is((err as PolicyError).code, 'POLICY_ERR_TABLE_SYNTAX');
    return (err as PolicyError).message;
  }
  throw new Error('expected a syntax error');
}

s('Postfix cidr: format, first match in file order, IPv4 and IPv6', () => {
  const t = CidrTable.parse(
    [
      '# rbl_override',
      '192.0.2.7        REJECT not this one',
      '192.0.2.0/24     OK',
      '198.51.100.5     OK',
      '[2001:db8::]/32  OK',
      '2001:db8:1::/48  REJECT shadowed by the /32 above',
      '0.0.0.0/0        DUNNO',
    ].join('\n'),
    'rbl_override',
  );
  assert.is(t.size, 6);
  assert.equal(t.lookup('192.0.2.7'), { cidr: '192.0.2.7/32', action: 'REJECT not this one', source: 'rbl_override', line: 2 });
  assert.equal(t.lookup('192.0.2.8'), { cidr: '192.0.2.0/24', action: 'OK', source: 'rbl_override', line: 3 });
  assert.is(t.lookup('198.51.100.5')?.cidr, '198.51.100.5/32');
  assert.is(t.lookup('2001:db8:1::9')?.cidr, '2001:db8::/32');
  assert.is(t.lookup('2001:db9::1'), undefined, 'an IPv4 /0 does not match IPv6 clients');
  assert.is(t.lookup('203.0.113.1')?.action, 'DUNNO');
});

s('IPv4-mapped IPv6 client addresses match IPv4 entries', () => {
  const t = CidrTable.parse('192.0.2.0/24 OK\n');
  assert.is(t.lookup('::ffff:192.0.2.44')?.cidr, '192.0.2.0/24');
  assert.is(t.lookup('::ffff:c000:22c')?.cidr, '192.0.2.0/24');
  assert.is(t.lookup('not an address'), undefined);
  assert.is(t.lookup(''), undefined);
});

s('plain lists: one network or address per line, default action', () => {
  const t = CidrTable.parse('10.0.0.0/8\n\n# backup MX\n192.0.2.25\n2001:db8::25\n', 'known');
  assert.is(t.lookup('10.1.2.3')?.action, 'OK');
  assert.is(t.lookup('192.0.2.25')?.cidr, '192.0.2.25/32');
  assert.is(t.lookup('2001:db8::25')?.cidr, '2001:db8::25/128');
  assert.is(t.lookup('192.0.2.26'), undefined);
  assert.is(CidrTable.parse('10.0.0.0/8\n', 'x', { defaultAction: 'DUNNO' }).lookup('10.0.0.1')?.action, 'DUNNO');
});

s('continuation lines extend the previous result; CRLF accepted', () => {
  const t = CidrTable.parse('192.0.2.0/24 REJECT long\r\n   text here\r\n');
  assert.is(t.lookup('192.0.2.1')?.action, 'REJECT long text here');
});

s('errors name source:line', () => {
  assert.match(syntaxError('10.0.0.0/8 OK\n10.0.0.300 OK\n', 'known.cidr'), /^known\.cidr:2: .*10\.0\.0\.300/);
  assert.match(syntaxError('10.0.0.0/33 OK\n'), /^tbl:1: .*bad prefix length/);
  assert.match(syntaxError('\n192.0.2.1/24 OK\n'), /^tbl:2: non-null host address bits in "192\.0\.2\.1\/24", perhaps you mean "192\.0\.2\.0\/24"/);
  assert.match(syntaxError('2001:db8::1/32 OK\n'), /perhaps you mean "2001:db8::\/32"/);
  assert.match(syntaxError('if 10.0.0.0/8\n10.1.0.0/16 OK\nendif\n'), /^tbl:1: "if" blocks/);
  assert.match(syntaxError('   OK\n'), /^tbl:1: continuation line without a preceding entry/);
  assert.match(syntaxError('example.com OK\n'), /^tbl:1: /);
  assert.not.match(syntaxError('10.0.0.0/33 OK\n'), /UTIL_ERR/, 'the text, without an internal code');
});

s('every bad line is reported at once (bounded), and a file with one loads nothing', () => {
  let caught: unknown;
  try {
    CidrTable.parse('192.0.2.0/33 OK\n10.0.0.1/8 OK\n10.0.0.0/8 OK\nnot-a-cidr OK\n', 'kn');
  } catch (err) {
    caught = err;
  }
  assert.instance(caught, TableSyntaxError);
  assert.equal((caught as TableSyntaxError).problems.map((p) => p.split(':', 2).join(':')), ['kn:1', 'kn:2', 'kn:4']);
  assert.is((caught as TableSyntaxError).message.split('\n').length, 3);
  const many = Array.from({ length: MAX_REPORTED_LINES + 7 }, (_, i) => `bad${i} OK`).join('\n');
  const problems = (() => {
    try {
      CidrTable.parse(many, 'big');
    } catch (err) {
      return (err as TableSyntaxError).problems;
    }
    return [];
  })();
  assert.is(problems.length, MAX_REPORTED_LINES + 1);
  assert.is(problems[problems.length - 1], 'big: 7 more bad line(s) not shown');
});

s('load() takes a table of 200000 entries (a country block list)', async () => {
  // Entries were appended with spread pushes: past ~120000 the stack overflowed and the daemon
  // refused to start with "--known-networks-file: Maximum call stack size exceeded".
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-cidr-'));
  try {
    const path = join(dir, 'big.cidr');
    const lines: string[] = [];
    for (let i = 0; i < 200_000; i++) lines.push(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/32 OK`);
    writeFileSync(path, `${lines.join('\n')}\n`);
    const t = await CidrTable.load([path]);
    assert.is(t.size, 200_000);
    assert.is(new CidrTable(t.list()).size, 200_000);
    assert.equal(t.lookup('10.3.13.63'), { cidr: '10.3.13.63/32', action: 'OK', source: path, line: 200_000 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

s('load() concatenates files in order; unreadable file is POLICY_ERR_TABLE_READ', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-cidr-'));
  try {
    const a = join(dir, 'a.cidr');
    const b = join(dir, 'b.txt');
    writeFileSync(a, '192.0.2.0/25 OK\n');
    writeFileSync(b, '192.0.2.0/24\n');
    const t = await CidrTable.load([a, b]);
    assert.equal(t.lookup('192.0.2.1'), { cidr: '192.0.2.0/25', action: 'OK', source: a, line: 1 });
    assert.equal(t.lookup('192.0.2.200'), { cidr: '192.0.2.0/24', action: 'OK', source: b, line: 1 });
    try {
      await CidrTable.load([join(dir, 'nope')]);
      assert.unreachable();
    } catch (err) {
      assert.is((err as PolicyError).code, 'POLICY_ERR_TABLE_READ');
    }
    writeFileSync(b, 'x\n');
    try {
      await CidrTable.load([a, b]);
      assert.unreachable();
    } catch (err) {
      assert.match((err as PolicyError).message, new RegExp(`^${b.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:1: `));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

s.run();
