// Tests for util/cidr: address and network parsing (IPv4-mapped included), table-driven matching,
// CidrSet, RFC 5952 formatting.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { CidrSet, cidrContains, formatAddress, parseAddress, parseCidr } from '../../src/util/cidr.js';
import { MxError } from '../../src/util/errors.js';

const s = suite('util/cidr');

s('parseAddress: IPv4, IPv6, brackets, zone ids, IPv4-mapped -> IPv4', () => {
  assert.equal(parseAddress('192.0.2.1'), { family: 4, bytes: Uint8Array.from([192, 0, 2, 1]) });
  const v6 = parseAddress('2001:db8::1');
  assert.is(v6?.family, 6);
  assert.equal(Array.from(v6!.bytes), [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
  assert.equal(parseAddress('[2001:db8::1]'), v6);
  assert.equal(parseAddress('fe80::1%eth0')?.family, 6);
  assert.equal(parseAddress('::ffff:192.0.2.1'), { family: 4, bytes: Uint8Array.from([192, 0, 2, 1]) });
  assert.equal(parseAddress('::ffff:c000:201'), { family: 4, bytes: Uint8Array.from([192, 0, 2, 1]) });
  assert.equal(parseAddress(' 192.0.2.1 ')?.family, 4);
  for (const bad of ['', '192.0.2', '192.0.2.256', '2001:db8::g', 'example.com', '1.2.3.4/24']) assert.is(parseAddress(bad), null, bad);
});

s('parseCidr: canonical text, host bits cleared, bare address is a host route', () => {
  assert.is(parseCidr('192.0.2.0/24').text, '192.0.2.0/24');
  assert.is(parseCidr('192.0.2.77/24').text, '192.0.2.0/24');
  assert.is(parseCidr('192.0.2.7').text, '192.0.2.7/32');
  assert.is(parseCidr('2001:DB8:0:0::/32').text, '2001:db8::/32');
  assert.is(parseCidr('2001:db8::1').text, '2001:db8::1/128');
  assert.is(parseCidr('[2001:db8::]/48').text, '2001:db8::/48');
  assert.is(parseCidr('0.0.0.0/0').text, '0.0.0.0/0');
  assert.is(parseCidr('::/0').text, '::/0');
  assert.is(parseCidr('192.0.2.1/25').prefix, 25);
});

s('parseCidr: an IPv4-mapped host address is an IPv4 host route', () => {
  const c = parseCidr('::ffff:192.0.2.7');
  assert.is(c.family, 4);
  assert.is(c.text, '192.0.2.7/32');
  assert.is(parseCidr('[::ffff:192.0.2.7]').text, '192.0.2.7/32');
});

// Skipped: src/util/cidr.ts checks the prefix against 32 before subtracting 96 for a mapped
// address, so "::ffff:192.0.2.0/120" (Postfix mynetworks style) throws "bad prefix length (0-32)".
s('parseCidr: IPv4-mapped networks count their prefix in IPv4 bits', () => {
  const c = parseCidr('::ffff:192.0.2.0/120');
  assert.is(c.family, 4);
  assert.is(c.text, '192.0.2.0/24');
  assert.is(parseCidr('::ffff:0.0.0.0/96').text, '0.0.0.0/0');
});

s('parseCidr errors are MxError UTIL_ERR_BAD_CIDR', () => {
  for (const bad of ['192.0.2.0/33', '2001:db8::/129', '192.0.2.0/', '192.0.2.0/x', '192.0.2.0/-1', 'nonsense', '/24', '192.0.2.0/0024']) {
    try {
      parseCidr(bad);
      assert.unreachable(bad);
    } catch (err) {
      assert.instance(err, MxError, bad);
      assert.is((err as MxError).code, 'UTIL_ERR_BAD_CIDR', bad);
    }
  }
});

s('cidrContains: table-driven v4 and v6, prefix boundaries, family mismatch', () => {
  const cases: Array<[string, string, boolean]> = [
    ['192.0.2.0/24', '192.0.2.0', true],
    ['192.0.2.0/24', '192.0.2.255', true],
    ['192.0.2.0/24', '192.0.3.0', false],
    ['192.0.2.128/25', '192.0.2.127', false],
    ['192.0.2.128/25', '192.0.2.128', true],
    ['10.0.0.0/8', '10.255.255.255', true],
    ['10.0.0.0/8', '11.0.0.0', false],
    ['172.16.0.0/12', '172.31.255.255', true],
    ['172.16.0.0/12', '172.32.0.0', false],
    ['192.0.2.7/32', '192.0.2.7', true],
    ['192.0.2.7/32', '192.0.2.6', false],
    ['0.0.0.0/0', '203.0.113.9', true],
    ['0.0.0.0/0', '2001:db8::1', false],
    ['2001:db8::/32', '2001:db8:ffff::1', true],
    ['2001:db8::/32', '2001:db9::1', false],
    ['2001:db8::/33', '2001:db8:8000::1', false],
    ['2001:db8::/33', '2001:db8:7fff::1', true],
    ['2001:db8::1/128', '2001:db8::1', true],
    ['2001:db8::1/128', '2001:db8::2', false],
    ['::/0', '2001:db8::1', true],
    ['::/0', '192.0.2.1', false],
    ['192.0.2.0/24', '::ffff:192.0.2.9', true],
  ];
  for (const [net, addr, expected] of cases) {
    const a = parseAddress(addr);
    assert.ok(a, addr);
    assert.is(cidrContains(parseCidr(net), a), expected, `${net} contains ${addr}`);
  }
});

s('CidrSet: first match, has, size, list; unparseable addresses never match', () => {
  const set = new CidrSet(['10.0.0.0/8', '10.1.0.0/16', '2001:db8::/32']);
  assert.is(set.size, 3);
  assert.is(set.match('10.1.2.3')?.text, '10.0.0.0/8');
  assert.ok(set.has('2001:db8::5'));
  assert.not.ok(set.has('192.0.2.1'));
  assert.not.ok(set.has('garbage'));
  set.add(parseCidr('192.0.2.0/24'));
  assert.ok(set.has('::ffff:192.0.2.1'));
  assert.equal(set.list().map((c) => c.text), ['10.0.0.0/8', '10.1.0.0/16', '2001:db8::/32', '192.0.2.0/24']);
});

s('formatAddress: RFC 5952 canonical IPv6 text', () => {
  const fmt = (t: string): string => formatAddress(6, parseAddress(t)!.bytes);
  assert.is(fmt('2001:0db8:0000:0000:0000:0000:0000:0001'), '2001:db8::1');
  assert.is(fmt('2001:db8:0:1:0:0:0:1'), '2001:db8:0:1::1', 'longest zero run');
  assert.is(fmt('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1', 'first run on a tie');
  assert.is(fmt('2001:db8:1:1:1:1:0:1'), '2001:db8:1:1:1:1:0:1', 'a single zero group is not compressed');
  assert.is(fmt('::'), '::');
  assert.is(fmt('::1'), '::1');
  assert.is(fmt('fe80::'), 'fe80::');
  assert.is(formatAddress(4, Uint8Array.from([198, 51, 100, 7])), '198.51.100.7');
});

s.run();
