// Tests for src/dns/wire/zone-text.ts: a real root hints file (fixture copied from Debian's
// dns-root-data), directives, continuation lines, defaults and precise syntax errors.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DnsError } from '../../../src/util/errors.js';
import { rdataToText } from '../../../src/dns/wire/rdata.js';
import { parseRecordLine, parseZoneText } from '../../../src/dns/wire/zone-text.js';
import type { ResourceRecord } from '../../../src/dns/wire/types.js';

const s = suite('dns/wire/zone-text');

/** The compiled test runs from dist/test/dns/wire; fixtures stay in the source tree. */
const ROOT_HINTS = fileURLToPath(new URL('../../../../test/fixtures/root.hints', import.meta.url));

function throwsSyntax(fn: () => unknown, re: RegExp): void {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof DnsError, `expected DnsError, got ${String(err)}`);
    assert.is((err as DnsError).code, 'DNS_ERR_ZONE_SYNTAX');
    assert.match((err as DnsError).message, re);
    return;
  }
  assert.unreachable('expected DNS_ERR_ZONE_SYNTAX');
}

function show(rr: ResourceRecord): string {
  return `${rr.name} ${rr.ttl} ${rr.class} ${rr.type} ${rdataToText(rr.type, rr.rdata)}`;
}

s('parses the root hints file as shipped by dns-root-data', () => {
  const records = parseZoneText(readFileSync(ROOT_HINTS, 'utf8'), { file: 'root.hints' });
  const ns = records.filter((r) => r.type === 2);
  const a = records.filter((r) => r.type === 1);
  const aaaa = records.filter((r) => r.type === 28);
  assert.is(ns.length, 13);
  assert.is(a.length, 13);
  assert.is(aaaa.length, 13);
  assert.is(records.length, 39);
  assert.ok(ns.every((r) => r.name === '.' && r.ttl === 3600000 && r.class === 1));
  assert.equal(
    ns.map((r) => rdataToText(2, r.rdata)),
    'ABCDEFGHIJKLM'.split('').map((c) => `${c}.ROOT-SERVERS.NET.`),
  );
  assert.is(show(a[0]!), 'A.ROOT-SERVERS.NET. 3600000 1 1 198.41.0.4');
  assert.is(show(aaaa[0]!), 'A.ROOT-SERVERS.NET. 3600000 1 28 2001:503:ba3e::2:30');
  assert.is(show(a[12]!), 'M.ROOT-SERVERS.NET. 3600000 1 1 202.12.27.33');
});

s('directives, blank owners, class/TTL in either order, parentheses, comments', () => {
  const text = [
    '$ORIGIN example.com.',
    '$TTL 1h',
    '@   IN  SOA ns1 hostmaster ( ; comment inside',
    '        2024010101 ; serial',
    '        2h 1h 2w',
    '        5m )',
    '    IN  NS  ns1',
    '    7200 IN NS ns2.example.net.',
    'ns1 IN 600 A 192.0.2.1',
    'www     CNAME @',
    'txt     TXT "semi;colon" "paren ( )" ; real comment',
    '$ORIGIN sub',
    'deep    A 192.0.2.9',
    '',
    '; only a comment',
  ].join('\n');
  const records = parseZoneText(text, { file: 'example.zone' });
  assert.equal(records.map(show), [
    'example.com. 3600 1 6 ns1.example.com. hostmaster.example.com. 2024010101 7200 3600 1209600 300',
    'example.com. 3600 1 2 ns1.example.com.',
    'example.com. 7200 1 2 ns2.example.net.',
    'ns1.example.com. 600 1 1 192.0.2.1',
    'www.example.com. 3600 1 5 example.com.',
    'txt.example.com. 3600 1 16 "semi;colon" "paren ( )"',
    'deep.sub.example.com. 3600 1 1 192.0.2.9',
  ]);
});

s('TTL falls back to the previous record, then defaultTtl; origin option', () => {
  const prev = parseZoneText('a. 120 A 192.0.2.1\nb. A 192.0.2.2');
  assert.equal(prev.map((r) => r.ttl), [120, 120]);
  const dflt = parseZoneText('host A 192.0.2.3', { origin: 'lan.', defaultTtl: 60 });
  assert.equal(dflt.map(show), ['host.lan. 60 1 1 192.0.2.3']);
  throwsSyntax(() => parseZoneText('a. A 192.0.2.1', { file: 'z' }), /^z:1: no TTL/);
  assert.is(parseZoneText('a. 60 CH TXT "x"')[0]?.class, 3);
  assert.is(parseZoneText('a. 60 TYPE65534 \\# 2 ABCD')[0]?.rdata.toString('hex'), 'abcd');
});

s('syntax errors name the file and line', () => {
  throwsSyntax(() => parseZoneText('a. 60 A 192.0.2.1\nb. 60 A 300.0.0.1', { file: 'local.zone' }), /^local\.zone:2: .*IPv4/);
  throwsSyntax(() => parseZoneText('a. 60 BOGUS x', { file: 'f' }), /^f:1: unknown record type "BOGUS"/);
  throwsSyntax(() => parseZoneText('  60 A 192.0.2.1', { file: 'f' }), /^f:1: .*no previous owner/);
  throwsSyntax(() => parseZoneText('a. 60 A', { file: 'f' }), /^f:1: missing rdata/);
  throwsSyntax(() => parseZoneText('a. 60', { file: 'f' }), /^f:1: missing record type/);
  throwsSyntax(() => parseZoneText('\n\na. 60 SOA ns. h. ( 1 2 3 4 5', { file: 'f' }), /^f:3: '\(' without '\)'/);
  throwsSyntax(() => parseZoneText('a. 60 A 192.0.2.1 )', { file: 'f' }), /^f:1: '\)' without '\('/);
  throwsSyntax(() => parseZoneText('a. 60 TXT "open', { file: 'f' }), /^f:1: unterminated/);
  throwsSyntax(() => parseZoneText('$INCLUDE other.zone', { file: 'f' }), /^f:1: unsupported directive \$INCLUDE/);
  throwsSyntax(() => parseZoneText('$TTL soon', { file: 'f' }), /^f:1: \$TTL/);
  throwsSyntax(() => parseZoneText('a..b. 60 A 192.0.2.1', { file: 'f' }), /^f:1: bad domain name/);
  throwsSyntax(() => parseZoneText('a. 4294967295 A 192.0.2.1', { file: 'f' }), /^f:1: TTL/);
});

s('parseRecordLine reads one Unbound local-data record', () => {
  assert.is(show(parseRecordLine('mail.example.com. IN A 192.0.2.25')), 'mail.example.com. 3600 1 1 192.0.2.25');
  assert.is(show(parseRecordLine('example.com. 300 MX 10 mail.example.com.')), 'example.com. 300 1 15 10 mail.example.com.');
  assert.is(show(parseRecordLine('host A 192.0.2.7', { origin: 'lan.', defaultTtl: 30 })), 'host.lan. 30 1 1 192.0.2.7');
  throwsSyntax(() => parseRecordLine('a. A 192.0.2.1\nb. A 192.0.2.2', { file: 'unbound.conf' }), /exactly one record, got 2/);
  throwsSyntax(() => parseRecordLine('  A 192.0.2.1'), /owner/);
  throwsSyntax(() => parseRecordLine('; nothing'), /got 0/);
});

s.run();
