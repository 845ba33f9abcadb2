// Tests for who may ask the DNS server (dnsAllowSet): loopback stays allowed beside other `allow`
// networks, unless the `allow` lines name loopback clients themselves.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { dnsAllowSet } from '../../../src/dns/server/query-refusal.js';

const s = suite('dns/server/query-refusal');

s('a LAN allow line keeps loopback allowed; lines naming loopback clients choose them', () => {
  const lan = dnsAllowSet(['192.168.1.0/24']);
  for (const a of ['127.0.0.1', '127.0.0.53', '::1', '192.168.1.9']) assert.ok(lan.has(a), a);
  assert.not.ok(lan.has('192.168.2.1'));
  assert.not.ok(lan.has('2001:db8::1'));
  const chosen = dnsAllowSet(['127.0.0.2/32', '192.168.1.0/24']);
  assert.ok(chosen.has('127.0.0.2'));
  assert.not.ok(chosen.has('127.0.0.1'), 'the admin chose which IPv4 loopback clients may ask');
  assert.ok(chosen.has('::1'), 'IPv6 loopback is still allowed: no line names it');
  const v6 = dnsAllowSet(['::1/128', '192.168.1.0/24']);
  assert.ok(v6.has('::1'));
  assert.ok(v6.has('127.0.0.1'), 'IPv4 loopback is still allowed: no line names it');
  assert.ok(dnsAllowSet([]).has('127.0.0.1'), 'no allow line: loopback only');
  assert.not.ok(dnsAllowSet([]).has('192.0.2.1'));
});

s.run();
