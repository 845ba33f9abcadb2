// LocalZones: the built-in defaults, Unbound's zone types, local-data / local-data-ptr, and the
// Unbound-style file reader with file:line errors. Pure, no sockets.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_ZONE_NAMES, LocalZones, ZoneSyntaxError, reverseName } from '../../../src/dns/server/local-zones.js';
import { rdataToData } from '../../../src/dns/wire/rdata.js';
import { Rcode, RRType } from '../../../src/dns/wire/types.js';
import { DnsError } from '../../../src/util/errors.js';

const s = suite('dns/server/local-zones');

function expectSyntax(fn: () => void, pattern: string | RegExp): void {
  try {
    fn();
  } catch (err) {
    assert.instance(err, DnsError);
    assert.is((err as DnsError).code, 'DNS_ERR_ZONE_SYNTAX');
    assert.match((err as DnsError).message, pattern);
    return;
  }
  assert.unreachable('expected DNS_ERR_ZONE_SYNTAX');
}

s('localhost: A 127.0.0.1 and AAAA ::1, also below it (RFC 6761 s6.3), authoritative', () => {
  const z = new LocalZones();
  const a = z.lookup('LocalHost.', RRType.A);
  assert.ok(a);
  assert.is(a.rcode, Rcode.NOERROR);
  assert.is(a.authoritative, true);
  assert.is(rdataToData(RRType.A, a.answers[0]?.rdata as Buffer), '127.0.0.1');
  assert.is(a.answers[0]?.name, 'LocalHost.', 'owner as asked');
  const aaaa = z.lookup('localhost.', RRType.AAAA);
  assert.is(rdataToData(RRType.AAAA, aaaa?.answers[0]?.rdata as Buffer), '::1');
  const sub = z.lookup('foo.bar.localhost.', RRType.A);
  assert.is(sub?.answers[0]?.name, 'foo.bar.localhost.');
  assert.is(rdataToData(RRType.A, sub?.answers[0]?.rdata as Buffer), '127.0.0.1');
  const mx = z.lookup('localhost.', RRType.MX);
  assert.is(mx?.rcode, Rcode.NOERROR);
  assert.is(mx?.answers.length, 0);
  assert.is(mx?.authorities[0]?.type, RRType.SOA);
});

s('loopback reverse zones: 1.0.0.127 and ::1 PTR localhost., other names NXDOMAIN', () => {
  const z = new LocalZones();
  const ptr = z.lookup('1.0.0.127.in-addr.arpa.', RRType.PTR);
  assert.is(rdataToData(RRType.PTR, ptr?.answers[0]?.rdata as Buffer), 'localhost.');
  const v6 = z.lookup(reverseName(6, Uint8Array.from([...Array(15).fill(0), 1])), RRType.PTR);
  assert.is(rdataToData(RRType.PTR, v6?.answers[0]?.rdata as Buffer), 'localhost.');
  assert.is(z.lookup('2.0.0.127.in-addr.arpa.', RRType.PTR)?.rcode, Rcode.NXDOMAIN);
  // An empty non-terminal above local data is NODATA, not NXDOMAIN.
  assert.is(z.lookup('0.0.127.in-addr.arpa.', RRType.PTR)?.rcode, Rcode.NOERROR);
});

s('RFC 6303 and special-use names: static NXDOMAIN with a local SOA, SOA and NS at the apex', () => {
  const z = new LocalZones();
  for (const name of ['4.3.2.10.in-addr.arpa.', '1.1.20.172.in-addr.arpa.', '9.1.168.192.in-addr.arpa.', '1.1.254.169.in-addr.arpa.',
    '7.2.0.192.in-addr.arpa.', '5.100.51.198.in-addr.arpa.', '9.113.0.203.in-addr.arpa.', '1.2.3.100.100.in-addr.arpa.',
    `1.${'0.'.repeat(29)}d.f.ip6.arpa.`, 'x.8.e.f.ip6.arpa.', 'x.b.e.f.ip6.arpa.', 'x.8.b.d.0.1.0.0.2.ip6.arpa.',
    'host.test.', 'a.b.invalid.', 'printer.local.', 'xyz.onion.', 'nas.home.arpa.', '255.255.255.255.in-addr.arpa.']) {
    const ans = z.lookup(name, RRType.PTR);
    assert.ok(ans, name);
    const expected = name === '255.255.255.255.in-addr.arpa.' ? Rcode.NOERROR : Rcode.NXDOMAIN;
    assert.is(ans.rcode, expected, name);
    assert.is(ans.authoritative, true);
    const soa = ans.authorities[0];
    assert.is(soa?.type, RRType.SOA, name);
    const data = rdataToData(RRType.SOA, soa?.rdata as Buffer) as { mname: string; rname: string; minimum: number };
    assert.is(data.mname, 'localhost.');
    assert.is(data.rname, 'nobody.invalid.');
    assert.is(soa?.ttl, 10800);
  }
  assert.is(z.lookup('15.172.in-addr.arpa.', RRType.PTR), null, '172.15/16 is public');
  assert.is(z.lookup('32.172.in-addr.arpa.', RRType.PTR), null, '172.32/16 is public');
  assert.is(z.lookup('1.128.100.in-addr.arpa.', RRType.PTR), null, '100.128/16 is public');
  const apex = z.lookup('10.in-addr.arpa.', RRType.SOA);
  assert.is(apex?.answers[0]?.type, RRType.SOA);
  const ns = z.lookup('test.', RRType.NS);
  assert.is(rdataToData(RRType.NS, ns?.answers[0]?.rdata as Buffer), 'localhost.');
  assert.ok(DEFAULT_ZONE_NAMES.includes('home.arpa.'));
});

s('names outside every local zone are not local', () => {
  const z = new LocalZones();
  assert.is(z.lookup('www.example.com.', RRType.A), null);
  assert.is(z.lookup('2.0.0.127.zen.spamhaus.org.', RRType.A), null);
  assert.is(z.lookup('.', RRType.NS), null);
  assert.is(z.lookup('in-addr.arpa.', RRType.NS), null);
  assert.is(z.lookup('testx.', RRType.A), null, 'label-wise, not string suffix');
  assert.is(z.lookup('a\\.test.', RRType.A), null, 'one label "a.test" is not under test.');
});

s('every change of the zones reaches lookup, after lookups were made (top-label filter)', () => {
  const z = new LocalZones();
  assert.is(z.lookup('www.example.com.', RRType.A), null);
  z.addZone('example.com', 'static');
  assert.is(z.lookup('www.example.com.', RRType.A)?.rcode, Rcode.NXDOMAIN, 'a zone added after a lookup');
  assert.is(z.lookup('www.example.org.', RRType.A), null, 'a sibling top label stays outside');
  assert.is(z.lookup('host.corp.', RRType.A), null);
  z.addData('host.corp. A 192.0.2.7');
  assert.is(z.lookup('host.corp.', RRType.A)?.answers.length, 1, 'local data under a new top label');
  assert.ok(z.lookup('host.test.', RRType.A));
  z.disable('test');
  assert.is(z.lookup('host.test.', RRType.A), null, 'a default zone disabled after a lookup');
  z.addZone('a\\.b', 'static');
  assert.is(z.lookup('x.a\\.b.', RRType.A)?.rcode, Rcode.NXDOMAIN, 'a top label holding an escaped dot');
  assert.is(z.lookup('x.b.', RRType.A), null);
  const root = new LocalZones({ defaults: false });
  root.addZone('.', 'static');
  assert.is(root.lookup('www.example.com.', RRType.A)?.rcode, Rcode.NXDOMAIN, 'a root zone covers every name');
});

s('disable(): a default zone turned off resolves normally', () => {
  const z = new LocalZones();
  z.disable('test');
  z.disable('10.in-addr.arpa.');
  assert.is(z.lookup('host.test.', RRType.A), null);
  assert.is(z.lookup('1.0.0.10.in-addr.arpa.', RRType.PTR), null);
  assert.ok(z.lookup('host.invalid.', RRType.A));
  const none = new LocalZones({ defaults: false });
  assert.is(none.lookup('localhost.', RRType.A), null);
  assert.is(none.size, 0);
});

s('static zone with data: data, NODATA for other types and empty non-terminals, NXDOMAIN elsewhere', () => {
  const z = new LocalZones({ defaults: false });
  z.addZone('corp.example.', 'static');
  z.addData('www.corp.example. 300 IN A 192.0.2.10');
  z.addData('www.corp.example. A 192.0.2.11');
  z.addData('a.b.corp.example. TXT "hello world"');
  const a = z.lookup('WWW.corp.example.', RRType.A);
  assert.equal(a?.answers.map((r) => rdataToData(RRType.A, r.rdata)), ['192.0.2.10', '192.0.2.11']);
  assert.is(a?.answers[1]?.ttl, 3600, 'Unbound default TTL');
  assert.is(z.lookup('www.corp.example.', RRType.AAAA)?.rcode, Rcode.NOERROR);
  assert.is(z.lookup('www.corp.example.', RRType.AAAA)?.answers.length, 0);
  assert.is(z.lookup('b.corp.example.', RRType.A)?.rcode, Rcode.NOERROR, 'empty non-terminal');
  const nx = z.lookup('nope.corp.example.', RRType.A);
  assert.is(nx?.rcode, Rcode.NXDOMAIN);
  assert.equal(nx?.authorities, [], 'no SOA data, no SOA in the authority section (as Unbound)');
  const apexSoa = z.lookup('corp.example.', RRType.SOA);
  // The apex holds names below it: NODATA, as Unbound answers it, never NXDOMAIN (RFC 8020).
  assert.is(apexSoa?.rcode, Rcode.NOERROR);
  assert.is(z.lookup('corp.example.', RRType.A)?.rcode, Rcode.NOERROR);
  assert.equal(apexSoa?.answers, []);
  assert.equal(apexSoa?.authorities, [], 'no SOA at the apex, and none made up for the negative answer');
  assert.equal(rdataToData(RRType.TXT, z.lookup('a.b.corp.example.', RRType.TXT)?.answers[0]?.rdata as Buffer), ['hello world']);
  assert.is(z.lookup('www.corp.example.', RRType.ANY)?.answers.length, 2);
});

s('a static zone without any data: its apex is NXDOMAIN too (as Unbound)', () => {
  const z = new LocalZones({ defaults: false });
  z.addZone('empty.example.', 'static');
  assert.is(z.lookup('empty.example.', RRType.A)?.rcode, Rcode.NXDOMAIN);
  assert.is(z.lookup('x.empty.example.', RRType.A)?.rcode, Rcode.NXDOMAIN);
});

s('an admin SOA gives the negative TTL min(TTL, MINIMUM) (RFC 2308 s3)', () => {
  const z = new LocalZones({ defaults: false });
  z.addZone('corp.example.', 'static');
  z.addData('corp.example. 7200 IN SOA ns.corp.example. admin.corp.example. 5 3600 600 86400 120');
  const nx = z.lookup('x.corp.example.', RRType.A);
  assert.is(nx?.authorities[0]?.ttl, 120);
  assert.is((rdataToData(RRType.SOA, nx?.authorities[0]?.rdata as Buffer) as { serial: number }).serial, 5);
});

s('transparent, typetransparent, refuse, deny, always_* and redirect', () => {
  const z = new LocalZones({ defaults: false });
  z.addZone('t.example.', 'transparent');
  z.addZone('tt.example.', 'typetransparent');
  z.addZone('r.example.', 'refuse');
  z.addZone('d.example.', 'deny');
  z.addZone('an.example.', 'always_nxdomain');
  z.addZone('ar.example.', 'always_refuse');
  z.addZone('ad.example.', 'always_nodata');
  z.addZone('rd.example.', 'redirect');
  for (const zone of ['t', 'tt', 'r', 'd', 'an', 'rd']) z.addData(`${zone === 'rd' ? '' : 'h.'}${zone}.example. A 192.0.2.1`);

  assert.ok(z.lookup('h.t.example.', RRType.A)?.answers.length === 1);
  assert.is(z.lookup('h.t.example.', RRType.AAAA)?.rcode, Rcode.NOERROR, 'transparent: NODATA for a data name');
  assert.is(z.lookup('other.t.example.', RRType.A), null, 'transparent: other names resolve');
  assert.is(z.lookup('h.tt.example.', RRType.AAAA), null, 'typetransparent: other types resolve');
  assert.ok(z.lookup('h.tt.example.', RRType.A)?.answers.length === 1);
  assert.ok(z.lookup('h.r.example.', RRType.A)?.answers.length === 1, 'refuse: data still answers');
  const ref = z.lookup('x.r.example.', RRType.A);
  assert.is(ref?.rcode, Rcode.REFUSED);
  assert.is(ref?.authoritative, true, 'AA set, as Unbound does');
  assert.is(z.lookup('x.d.example.', RRType.A)?.drop, true);
  assert.is(z.lookup('h.an.example.', RRType.A)?.rcode, Rcode.NXDOMAIN, 'always_nxdomain ignores data');
  assert.is(z.lookup('x.ar.example.', RRType.A)?.rcode, Rcode.REFUSED);
  const nodata = z.lookup('x.ad.example.', RRType.A);
  assert.is(nodata?.rcode, Rcode.NOERROR);
  assert.is(nodata?.answers.length, 0);
  const red = z.lookup('deep.name.rd.example.', RRType.A);
  assert.is(red?.answers[0]?.name, 'deep.name.rd.example.');
  assert.is(rdataToData(RRType.A, red?.answers[0]?.rdata as Buffer), '192.0.2.1');
  expectSyntax(() => z.addData('below.rd.example. A 192.0.2.2'), 'redirect');
});

s('local-data without a zone makes a transparent zone; a later zone adopts data below it', () => {
  const z = new LocalZones({ defaults: false });
  z.addData('mx.corp.example. A 192.0.2.25');
  assert.ok(z.lookup('mx.corp.example.', RRType.A));
  assert.is(z.lookup('other.corp.example.', RRType.A), null);
  const y = new LocalZones({ defaults: false });
  y.addZone('example.', 'transparent');
  y.addData('a.sub.example. A 192.0.2.3');
  y.addZone('sub.example.', 'static');
  assert.ok(y.lookup('a.sub.example.', RRType.A)?.answers.length === 1);
  assert.is(y.lookup('b.sub.example.', RRType.A)?.rcode, Rcode.NXDOMAIN);
});

s('an admin zone replaces a default zone of the same name; data can go into default zones', () => {
  const z = new LocalZones();
  z.addZone('10.in-addr.arpa.', 'transparent');
  assert.is(z.lookup('1.0.0.10.in-addr.arpa.', RRType.PTR), null);
  z.addData('nas.home.arpa. A 192.168.1.5');
  assert.ok(z.lookup('nas.home.arpa.', RRType.A)?.answers.length === 1);
  assert.is(z.lookup('other.home.arpa.', RRType.A)?.rcode, Rcode.NXDOMAIN);
});

s('local-data-ptr: IPv4 and IPv6, with and without TTL', () => {
  const z = new LocalZones({ defaults: false });
  z.addDataPtr('192.0.2.25 mx.corp.example.');
  z.addDataPtr('2001:db8::1 600 host.corp.example');
  const v4 = z.lookup('25.2.0.192.in-addr.arpa.', RRType.PTR);
  assert.is(rdataToData(RRType.PTR, v4?.answers[0]?.rdata as Buffer), 'mx.corp.example.');
  const v6name = reverseName(6, Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, ...Array(11).fill(0), 1]));
  assert.is(v6name, `1.${'0.'.repeat(23)}8.b.d.0.1.0.0.2.ip6.arpa.`);
  const v6 = z.lookup(v6name, RRType.PTR);
  assert.is(v6?.answers[0]?.ttl, 600);
  assert.is(rdataToData(RRType.PTR, v6?.answers[0]?.rdata as Buffer), 'host.corp.example.');
  expectSyntax(() => z.addDataPtr('not-an-ip name.'), 'not an IP');
  expectSyntax(() => z.addDataPtr('192.0.2.1'), 'ADDRESS');
});

s('CNAME beside other data is rejected; a CNAME answers other types unchased', () => {
  const z = new LocalZones({ defaults: false });
  z.addZone('corp.example.', 'static');
  z.addData('alias.corp.example. CNAME www.corp.example.');
  const ans = z.lookup('alias.corp.example.', RRType.A);
  assert.is(ans?.answers.length, 1);
  assert.is(ans?.answers[0]?.type, RRType.CNAME);
  expectSyntax(() => z.addData('alias.corp.example. A 192.0.2.1'), 'CNAME');
});

s('a bad local-data record is named with the reason alone, without a nested code or position', () => {
  const z = new LocalZones({ defaults: false });
  z.addZone('corp.example.', 'static');
  try {
    z.addData('bogus.corp.example. 300 IN A 999.1.1.1');
    assert.unreachable('accepted 999.1.1.1');
  } catch (err) {
    assert.instance(err, DnsError);
    assert.match((err as DnsError).message, /^bad local-data "bogus\.corp\.example\. 300 IN A 999\.1\.1\.1": \S/);
    assert.not.match((err as DnsError).message, /DNS_ERR_|<record>/);
  }
});

s('loadFile: comments, server: header, quotes, order-independent, errors with file:line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-lz-'));
  try {
    const file = join(dir, 'local.conf');
    writeFileSync(file, [
      '# admin local data',
      'server:',
      '    local-data: "www.corp.example. 300 IN A 192.0.2.80"   # before its zone',
      "    local-data: 'txt.corp.example. TXT \"v=spf1 -all # not a comment\"'",
      '    local-zone: "corp.example." static',
      '    local-zone: invalid. nodefault',
      '    local-data-ptr: "192.0.2.80 www.corp.example."',
      '',
    ].join('\n'));
    const z = new LocalZones();
    z.loadFile(file);
    assert.ok(z.lookup('www.corp.example.', RRType.A)?.answers.length === 1);
    assert.is(z.lookup('nope.corp.example.', RRType.A)?.rcode, Rcode.NXDOMAIN, 'static applied before the data');
    assert.equal(rdataToData(RRType.TXT, z.lookup('txt.corp.example.', RRType.TXT)?.answers[0]?.rdata as Buffer), ['v=spf1 -all # not a comment']);
    assert.is(z.lookup('x.invalid.', RRType.A), null, 'nodefault');
    assert.ok(z.lookup('80.2.0.192.in-addr.arpa.', RRType.PTR));

    const bad = join(dir, 'bad.conf');
    writeFileSync(bad, 'server:\n  local-zone: "x.example." staticc\n');
    expectSyntax(() => new LocalZones().loadFile(bad), `${bad}:2`);
    writeFileSync(bad, '\n\n  local-data: "www.x.example. IN A not-an-address"\n');
    expectSyntax(() => new LocalZones().loadFile(bad), `${bad}:3`);
    writeFileSync(bad, 'forward-zone:\n');
    expectSyntax(() => new LocalZones().loadFile(bad), `${bad}:1`);
    writeFileSync(bad, 'local-data: "unterminated\n');
    expectSyntax(() => new LocalZones().loadFile(bad), `${bad}:1`);
    // Every bad line at once (syntax, zone and data problems), the good lines still read.
    writeFileSync(bad, [
      'local-zone: "good.example." static',
      'local-zone: "x.example." staticc',
      'local-data: "www.good.example. IN A 192.0.2.1"',
      'local-data: "www.good.example. IN A not-an-address"',
      'forward-zone:',
      'local-data: "unterminated',
      '',
    ].join('\n'));
    try {
      new LocalZones().loadFile(bad);
      assert.unreachable('bad lines');
    } catch (err) {
      assert.instance(err, ZoneSyntaxError);
      const problems = (err as ZoneSyntaxError).problems;
      assert.equal(problems.map((p) => /:(\d+): /.exec(p)?.[1]).sort(), ['2', '4', '5', '6'], problems.join('\n'));
      assert.is((err as ZoneSyntaxError).code, 'DNS_ERR_ZONE_SYNTAX');
      assert.match((err as Error).message, 'staticc');
      assert.match((err as Error).message, 'unterminated');
    }
    try {
      new LocalZones().loadFile(join(dir, 'missing.conf'));
      assert.unreachable('missing file');
    } catch (err) {
      assert.is((err as DnsError).code, 'DNS_ERR_ZONE_FILE');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

s('the shipped zones/local-zones.conf loads (every example commented out)', () => {
  const z = new LocalZones();
  const before = z.size;
  z.loadFile(join(process.cwd(), 'zones', 'local-zones.conf'));
  assert.is(z.size, before);
});

s('lookup is cheap: 200k lookups of a deep non-local name well under a second', () => {
  const z = new LocalZones();
  const started = process.hrtime.bigint();
  for (let i = 0; i < 200_000; i++) z.lookup('2.0.0.127.zen.spamhaus.org.', RRType.A);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  assert.ok(ms < 2000, `took ${ms} ms`);
});

s.run();
