// Tests for src/dns/wire/rdata.ts: mnemonics, typed values and presentation text both ways.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { nameToWire } from '../../../src/dns/wire/name.js';
import {
  classFromString,
  classToString,
  rcodeToString,
  rdataNames,
  rdataToData,
  rdataToText,
  soaFields,
  soaMinimum,
  typeFromString,
  typeToString,
} from '../../../src/dns/wire/rdata.js';
import { parseTtlText, rdataFromText } from '../../../src/dns/wire/rdata-from-text.js';
import { RRType } from '../../../src/dns/wire/types.js';
import { throwsCode } from '../../helpers/assert-error.js';

const s = suite('dns/wire/rdata');

function hex(b: Buffer): string {
  return b.toString('hex');
}

s('type, class and rcode mnemonics', () => {
  assert.is(typeToString(1), 'A');
  assert.is(typeToString(15), 'MX');
  assert.is(typeToString(65534), 'TYPE65534');
  assert.is(typeFromString('mx'), 15);
  assert.is(typeFromString('AAAA'), 28);
  assert.is(typeFromString('type123'), 123);
  assert.is(typeFromString('TYPE65535'), 65535);
  for (const bad of ['BOGUS', 'TYPE65536', 'TYPE', '']) throwsCode(() => typeFromString(bad), 'DNS_ERR_BAD_TYPE');
  for (const [name, n] of Object.entries(RRType)) assert.is(typeFromString(name), n, name);
  assert.is(classToString(1), 'IN');
  assert.is(classToString(42), 'CLASS42');
  assert.is(classFromString('in'), 1);
  assert.is(classFromString('CLASS3'), 3);
  assert.is(classFromString('A'), null);
  assert.is(rcodeToString(0), 'NOERROR');
  assert.is(rcodeToString(3), 'NXDOMAIN');
  assert.is(rcodeToString(5), 'REFUSED');
  assert.is(rcodeToString(16), 'BADVERS');
  assert.is(rcodeToString(4000), 'RCODE4000');
});

s('rdataToData gives typed values', () => {
  assert.is(rdataToData(1, Buffer.from([192, 0, 2, 1])), '192.0.2.1');
  assert.is(rdataToData(28, rdataFromText(28, '2001:DB8:0:0::1')), '2001:db8::1');
  assert.equal(rdataToData(16, Buffer.from([2, 0x68, 0x69, 1, 0xe9])), ['hi', '\u00e9'], 'latin1, one per string');
  assert.is(rdataToData(2, nameToWire('ns1.Example.com.')), 'ns1.Example.com.');
  assert.is(rdataToData(5, Buffer.from([3, 0x61, 0x2e, 0x62, 0])), 'a\\.b.', 'escaped, not lossy');
  assert.equal(rdataToData(15, rdataFromText(15, '10 mx.example.com.')), { preference: 10, exchange: 'mx.example.com.' });
  assert.equal(rdataToData(33, rdataFromText(33, '1 2 443 host.example.')), { priority: 1, weight: 2, port: 443, target: 'host.example.' });
  assert.equal(rdataToData(6, rdataFromText(6, 'ns. mail. 1 2 3 4 5')), {
    mname: 'ns.', rname: 'mail.', serial: 1, refresh: 2, retry: 3, expire: 4, minimum: 5,
  });
  assert.is(rdataToData(257, rdataFromText(257, '0 issue "letsencrypt.org"')), '0 issue "letsencrypt.org"');
});

s('rdataToData / rdataToText reject malformed rdata with DNS_ERR_FORMERR', () => {
  throwsCode(() => rdataToData(1, Buffer.from([1, 2, 3])), 'DNS_ERR_FORMERR', /expected 4/);
  throwsCode(() => rdataToData(28, Buffer.alloc(4)), 'DNS_ERR_FORMERR');
  throwsCode(() => rdataToData(16, Buffer.from([5, 0x61])), 'DNS_ERR_FORMERR');
  throwsCode(() => rdataToData(15, Buffer.from([0])), 'DNS_ERR_FORMERR');
  throwsCode(() => rdataToData(2, Buffer.from([1, 0x61, 0, 0])), 'DNS_ERR_FORMERR', /trailing/);
  throwsCode(() => rdataToData(2, Buffer.from([1, 0x61, 0xc0, 0])), 'DNS_ERR_FORMERR', /pointer/);
  throwsCode(() => rdataToText(6, nameToWire('a.')), 'DNS_ERR_FORMERR');
  throwsCode(() => rdataToText(13, Buffer.from([1, 0x61])), 'DNS_ERR_FORMERR', /two/);
  throwsCode(() => soaMinimum(Buffer.concat([nameToWire('a.'), nameToWire('b.'), Buffer.alloc(19)])), 'DNS_ERR_FORMERR');
  for (const [type, text] of [[52, '3 1 1'], [52, '3 1 1 abc'], [52, '3 1 256 ab'], [52, '3 1 1 "ab"'], [44, '4 2 xy'], [43, '60485 5 1'], [48, '257 3 8 not*base64'], [13, '"one"'], [35, '100 10 "S" "SIP+D2U" ""']] as const) {
    throwsCode(() => rdataFromText(type, text), 'DNS_ERR_BAD_RDATA');
  }
  // soaMinimum steps over the names without reading them, with soaFields' checks: no pointers,
  // no name past the rdata or longer than 255 bytes, no trailing bytes.
  throwsCode(() => soaMinimum(Buffer.concat([Buffer.from([0xc0, 0x0c]), nameToWire('b.'), Buffer.alloc(20)])), 'DNS_ERR_FORMERR');
  throwsCode(() => soaMinimum(Buffer.from([3, 0x61])), 'DNS_ERR_FORMERR', /past the rdata/);
  throwsCode(() => soaMinimum(Buffer.concat([Buffer.alloc(0), ...Array.from({ length: 5 }, () => Buffer.concat([Buffer.from([63]), Buffer.alloc(63, 0x61)])), Buffer.from([0]), nameToWire('b.'), Buffer.alloc(20)])), 'DNS_ERR_FORMERR', /255/);
  throwsCode(() => soaMinimum(Buffer.concat([nameToWire('a.'), nameToWire('b.'), Buffer.alloc(21)])), 'DNS_ERR_FORMERR', /trailing/);
  const soa = Buffer.concat([nameToWire('a.'), nameToWire('b.'), Buffer.alloc(16), Buffer.from([0, 0, 0x0e, 0x10])]);
  assert.is(soaMinimum(soa), 3600);
  assert.is(soaMinimum(soa), soaFields(soa).minimum);
});

s('text round trips for the zone-file types', () => {
  const cases: [number, string, string?][] = [
    [1, '192.0.2.33'],
    [28, '2001:db8::53'],
    [2, 'ns1.example.com.'],
    [5, 'target.example.'],
    [39, 'example.net.'],
    [12, '1.2.0.192.in-addr.arpa.'],
    [15, '10 mail.example.com.'],
    [16, '"v=spf1 ip4:192.0.2.0/24 -all"'],
    [16, '"a" "b c" "quote\\"back\\\\slash" "\\000\\255"'],
    [16, 'bare words', '"bare" "words"'],
    [99, '"v=spf1 -all"'],
    [6, 'ns1.example.com. hostmaster.example.com. 2024010101 7200 3600 1209600 300'],
    [6, 'ns1.example.com. hostmaster.example.com. 1 1h 15m 1w 1d', 'ns1.example.com. hostmaster.example.com. 1 3600 900 604800 86400'],
    [33, '0 5 5060 sip.example.com.'],
    [257, '0 issue "letsencrypt.org"'],
    [257, '128 iodef "mailto:security@example.com"'],
    [65534, '\\# 3 0A0B0C'],
    [99, '\\# 0'],
    [1, '\\# 4 C0000201', '192.0.2.1'],
    // DANE and the other types Unbound's local-data takes in presentation form.
    [52, '3 1 1 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF'],
    [52, '3 1 1 0123456789abcdef 0123456789ABCDEF', '3 1 1 0123456789ABCDEF0123456789ABCDEF'],
    [53, '3 0 1 AABBCC'],
    [44, '4 2 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF'],
    [43, '60485 5 1 2BB183AF5F22588179A53B0A98631FAD1A292118'],
    [48, '257 3 8 AwEAAag='],
    [13, '"PC-Intel-700mhz" "NetBSD 1.4"'],
    [35, '100 10 "S" "SIP+D2U" "" _sip._udp.example.com.'],
    [35, '100 10 "u" "E2U+sip" "!^.*$!sip:info@example.com!" .'],
  ];
  for (const [type, text, expected] of cases) {
    const wire = rdataFromText(type, text);
    const back = rdataToText(type, wire);
    assert.is(back, expected ?? text, `${typeToString(type)} ${text}`);
    assert.is(hex(rdataFromText(type, back)), hex(wire), `${typeToString(type)} ${text} reparsed`);
  }
});

s('rdataToText formats DNSSEC and other common types like dig +nosplit', () => {
  const ds = Buffer.concat([Buffer.from([0x4f, 0x66, 8, 2]), Buffer.from('e06d44b80b8f1d39a95c0b0d7c65d08458e880409bbc683457104237c7f8ec8d', 'hex')]);
  assert.is(rdataToText(43, ds), '20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D');
  const dnskey = Buffer.concat([Buffer.from([1, 1, 3, 8]), Buffer.from([1, 2, 3])]);
  assert.is(rdataToText(48, dnskey), '257 3 8 AQID');
  const rrsig = Buffer.concat([
    Buffer.from([0, 2, 8, 0]), Buffer.from([0, 8, 0x2c, 0xdc]),
    Buffer.from([0x65, 0x92, 0x00, 0x80]), Buffer.from([0x65, 0x68, 0xd2, 0x00]), Buffer.from([0x4f, 0x66]),
    nameToWire('.'), Buffer.from([0xde, 0xad]),
  ]);
  assert.is(rdataToText(46, rrsig), 'NS 8 0 535772 20240101000000 20231130181840 20326 . 3q0=');
  const nsec = Buffer.concat([nameToWire('b.example.'), Buffer.from([0, 6, 0x62, 0x01, 0x80, 0x08, 0, 0x03])]);
  assert.is(rdataToText(47, nsec), 'b.example. A NS SOA MX TXT AAAA RRSIG NSEC');
  const nsec3 = Buffer.concat([Buffer.from([1, 0, 0, 10, 2, 0xab, 0xcd, 5]), Buffer.from([0, 0, 0, 0, 0]), Buffer.from([0, 1, 0x40])]);
  assert.is(rdataToText(50, nsec3), '1 0 10 ABCD 00000000 A');
  assert.is(rdataToText(51, Buffer.from([1, 0, 0, 0, 0])), '1 0 0 -');
  assert.is(rdataToText(52, Buffer.from([3, 1, 1, 0xab])), '3 1 1 AB');
  assert.is(rdataToText(44, Buffer.from([4, 2, 0xcd])), '4 2 CD');
  assert.is(rdataToText(13, Buffer.from([3, 0x41, 0x52, 0x4d, 5, 0x4c, 0x69, 0x6e, 0x75, 0x78])), '"ARM" "Linux"');
  const naptr = Buffer.concat([Buffer.from([0, 100, 0, 10, 1, 0x75, 7]), Buffer.from('E2U+sip'), Buffer.from([0]), nameToWire('.')]);
  assert.is(rdataToText(35, naptr), '100 10 "u" "E2U+sip" "" .');
  assert.is(rdataToText(65534, Buffer.alloc(0)), '\\# 0');
  assert.is(rdataToText(10, Buffer.from([0xff])), '\\# 1 FF');
});

s('rdataFromText resolves relative names and @ against the origin', () => {
  assert.is(rdataToText(2, rdataFromText(2, 'ns1', 'example.com.')), 'ns1.example.com.');
  assert.is(rdataToText(2, rdataFromText(2, 'ns1.', 'example.com.')), 'ns1.');
  assert.is(rdataToText(2, rdataFromText(2, '@', 'example.com.')), 'example.com.');
  assert.is(rdataToText(15, rdataFromText(15, '5 mx', '.')), '5 mx.');
  assert.is(rdataToText(2, rdataFromText(2, 'ns1.example.com')), 'ns1.example.com.', 'no origin: absolute');
  assert.is(rdataToText(5, rdataFromText(5, 'a\\.b', 'example.')), 'a\\.b.example.');
  assert.is(rdataToText(6, rdataFromText(6, '@ hostmaster 1 2 3 4 5', 'zone.test.')), 'zone.test. hostmaster.zone.test. 1 2 3 4 5');
});

s('rdataFromText rejects bad text with DNS_ERR_BAD_RDATA', () => {
  const bad: [number, string, RegExp?][] = [
    [1, '192.0.2.256', /IPv4/],
    [1, '192.0.2', /IPv4/],
    [1, '1.2.3.4 5.6.7.8', /fields/],
    [28, '192.0.2.1', /IPv6/],
    [15, 'mx.example.', /fields/],
    [15, '70000 mx.example.', /preference/],
    [16, '"unterminated', /unterminated/],
    [16, '', /no character-strings/],
    [16, '"' + 'x'.repeat(256) + '"', /255/],
    [6, 'a. b. 1 2 3 4', /fields/],
    [6, 'a. b. 1 2 3 4 x', /SOA field/],
    [2, 'a..b.', /domain name/],
    [257, '0 is-sue "x"', /tag/],
    [64, '1 . alpn=h2', /\\#/],
    [65534, '\\# 2 0A', /hex/],
    [65534, '\\# 1 ZZ', /hex/],
  ];
  for (const [type, text, re] of bad) throwsCode(() => rdataFromText(type, text), 'DNS_ERR_BAD_RDATA', re);
});

s('rdataNames, soaFields, soaMinimum', () => {
  assert.equal(rdataNames(2, nameToWire('ns.example.')), ['ns.example.']);
  assert.equal(rdataNames(15, rdataFromText(15, '1 mx.example.')), ['mx.example.']);
  assert.equal(rdataNames(33, rdataFromText(33, '1 1 25 smtp.example.')), ['smtp.example.']);
  assert.equal(rdataNames(39, nameToWire('other.example.')), ['other.example.']);
  const soa = rdataFromText(6, 'ns.example. hostmaster.example. 7 1 2 3 900');
  assert.equal(rdataNames(6, soa), ['ns.example.', 'hostmaster.example.']);
  assert.equal(rdataNames(1, Buffer.from([1, 2, 3, 4])), []);
  assert.is(soaMinimum(soa), 900);
  assert.is(soaFields(soa).serial, 7);
});

s('parseTtlText accepts seconds and BIND units', () => {
  assert.is(parseTtlText('3600'), 3600);
  assert.is(parseTtlText('1h30m'), 5400);
  assert.is(parseTtlText('1W'), 604800);
  assert.is(parseTtlText('IN'), null);
  assert.is(parseTtlText('1x'), null);
  assert.is(parseTtlText('99999999999'), null);
});

s.run();
