// Resolver scenarios against fake authoritative hierarchies on loopback (Unbound replay spirit):
// each case is a tree (the standard one, or a variation) plus behaviours, and asserts the answer,
// where it came from and what went upstream.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ManualClock } from '../../src/util/clock.js';
import { RRType, Rcode } from '../../src/dns/wire/types.js';
import { startHarness, type Harness } from '../helpers/resolver-harness.js';
import { standardTree } from '../helpers/fake-hierarchy.js';
import { capturingLogger } from '../helpers/capturing-logger.js';
import { HUNG_RESOLUTION_GRACE_MS } from '../../src/dns/resolver.js';
import { Trust } from '../../src/dns/cache/rrset-cache.js';
import { nameToWire } from '../../src/dns/wire/name.js';

const A = (r: { records: Array<{ data: unknown }> }): unknown[] => r.records.map((x) => x.data);

const basic = suite('resolver: basic iteration');
let hx: Harness;
basic.before.each(async () => {
  hx = await startHarness();
});
basic.after.each(async () => {
  await hx.stop();
});

basic('resolves an A record from the root down and then answers from cache', async () => {
  const r = await hx.stack.resolver.resolve('www.example.com', 'A');
  assert.is(r.rcode, Rcode.NOERROR);
  assert.equal(A(r), ['192.0.2.1']);
  assert.is(r.source, 'recursion');
  const before = hx.counting.total;
  assert.ok(before >= 3, `root, com and example.com were asked (${before})`);
  const again = await hx.stack.resolver.resolve('WWW.Example.COM.', 'A');
  assert.equal(A(again), ['192.0.2.1']);
  assert.is(again.source, 'cache');
  assert.is(hx.counting.total, before, 'no upstream query for a cached answer');
  assert.ok(again.ttlSec <= 300 && again.ttlSec > 0);
});

basic('a cold name is looked up in the cache once before the resolution starts, not again by it', async () => {
  const cache = hx.stack.cache;
  const original = cache.getRRset.bind(cache);
  const lookups: string[] = [];
  cache.getRRset = ((name: string, type: number, ...rest: unknown[]) => {
    lookups.push(`${name.toLowerCase()}|${type}`);
    return (original as (...a: unknown[]) => ReturnType<typeof original>)(name, type, ...rest);
  }) as typeof cache.getRRset;
  try {
    const r = await hx.stack.resolver.resolve('www.example.com', 'A');
    assert.equal(A(r), ['192.0.2.1']);
    assert.is(lookups.filter((k) => k === 'www.example.com.|1').length, 1, lookups.join(' '));
  } finally {
    cache.getRRset = original;
  }
});

basic('a chain whose first links are cached and whose end is not follows the cached links', async () => {
  const first = await hx.stack.resolver.resolve('alias.example.com', 'A');
  assert.equal(A(first), ['192.0.2.1']);
  assert.is(hx.counting.countForName('alias.example.com.', RRType.A), 1);
  hx.stack.cache.flushName('www.example.com.');
  const again = await hx.stack.resolver.resolve('alias.example.com', 'A');
  assert.equal(A(again), ['192.0.2.1']);
  assert.is(hx.counting.countForName('alias.example.com.', RRType.A), 1, 'the cached CNAMEs were used, not asked again');
  assert.is(hx.counting.countForName('www.example.com.', RRType.A), 1, 'only the missing end was asked (the first answer carried the whole chain)');
});

basic('resolveCached: the answer resolve() has at once (cache, local zones), undefined on a miss, and never a query', async () => {
  const { resolve, resolveCached } = hx.stack.resolver;
  assert.is(resolveCached('www.example.com', 'A'), undefined, 'nothing cached yet');
  assert.is(resolveCached('not a name..', 'A'), undefined, 'a name that does not parse is left to resolve()');
  assert.is(hx.counting.total, 0, 'a miss sends nothing upstream');
  await resolve('www.example.com', 'A');
  const before = hx.counting.total;
  const hit = resolveCached('WWW.example.com.', 'A');
  assert.ok(hit);
  assert.is(hit?.source, 'cache');
  assert.equal(hit, await resolve('www.example.com', 'A'), 'the same result as resolve() from the cache');
  const nx = await resolve('nope.example.com', 'A');
  assert.is(resolveCached('nope.example.com', 'A')?.rcode, nx.rcode, 'negative answers are cached answers too');
  assert.is(resolveCached('localhost', 'A')?.source, 'local');
  assert.is(resolveCached('www.example.com', 'MX'), undefined, 'another type of a cached name is a miss');
  assert.is(hx.counting.total, before + 1, 'only the NXDOMAIN lookup went upstream');
});

basic('resolve() answers from the local zones first, as the server does, and asks nobody', async () => {
  const before = hx.counting.total;
  const lh = await hx.stack.resolver.resolve('localhost', 'A');
  assert.is(lh.rcode, Rcode.NOERROR);
  assert.equal(A(lh), ['127.0.0.1']);
  assert.is(lh.source, 'local');
  const t = await hx.stack.resolver.resolve('anything.test', 'A');
  assert.is(t.rcode, Rcode.NXDOMAIN);
  assert.is(t.source, 'local');
  assert.is(t.authorities[0]?.type, RRType.SOA);
  // Admin data, as a private DNSBL in local-data would be; and a deny zone is REFUSED in process.
  hx.stack.localZones.addZone('bl.internal.', 'static');
  hx.stack.localZones.addData('2.0.0.127.bl.internal. 300 IN A 127.0.0.2');
  hx.stack.localZones.addZone('blocked.example.', 'deny');
  const listed = await hx.stack.resolver.resolve('2.0.0.127.bl.internal', 'A');
  assert.equal(A(listed), ['127.0.0.2']);
  assert.is(listed.ttlSec, 300);
  const nodata = await hx.stack.resolver.resolve('2.0.0.127.bl.internal', 'TXT');
  assert.is(nodata.rcode, Rcode.NOERROR);
  assert.equal(nodata.records, []);
  const denied = await hx.stack.resolver.resolve('www.blocked.example', 'A');
  assert.is(denied.rcode, Rcode.REFUSED);
  assert.match(denied.failure ?? '', 'blocked.example');
  assert.is(hx.counting.total, before, 'no upstream query for a local name');
  // Without local zones (setLocalZones(undefined)) the same name goes upstream.
  hx.stack.resolver.setLocalZones(undefined);
  const upstream = await hx.stack.resolver.resolve('localhost', 'A');
  assert.is(upstream.source, 'recursion');
  assert.ok(hx.counting.total > before);
});

basic('iterative queries carry RD=0 and EDNS', async () => {
  await hx.stack.resolver.resolve('www.example.com', 'A');
  const qs = hx.h.allQueries();
  assert.ok(qs.length > 0);
  assert.ok(qs.every((q) => !q.rd), 'RD bit clear on every upstream query');
  assert.ok(qs.some((q) => q.edns), 'EDNS used');
});

basic('follows a CNAME chain inside a zone', async () => {
  const r = await hx.stack.resolver.resolve('alias.example.com', 'A');
  assert.is(r.rcode, Rcode.NOERROR);
  assert.equal(A(r), ['192.0.2.1']);
  assert.equal(r.answers.map((x) => x.type), [RRType.CNAME, RRType.CNAME, RRType.A]);
});

basic('follows a CNAME into another zone', async () => {
  const r = await hx.stack.resolver.resolve('ext.example.com', 'A');
  assert.equal(A(r), ['192.0.2.20']);
  assert.equal(r.answers.map((x) => x.type), [RRType.CNAME, RRType.A]);
});

basic('answers through a DNAME with a synthesized CNAME (RFC 6672)', async () => {
  const r = await hx.stack.resolver.resolve('www.legacy.example.com', 'A');
  assert.is(r.rcode, Rcode.NOERROR);
  assert.equal(A(r), ['192.0.2.20']);
  assert.equal(r.answers.map((x) => x.type), [RRType.DNAME, RRType.CNAME, RRType.A]);
  // A second name under the DNAME is synthesized from the cached DNAME.
  const r2 = await hx.stack.resolver.resolve('ns1.legacy.example.com', 'A');
  assert.equal(A(r2), ['127.53.3.1']);
});

basic('a CNAME query below a DNAME is answered by the DNAME and its synthesized CNAME, cold or cached', async () => {
  // A long label: 0x20 leaves it all lower case with a chance of 2^-28, so a leak of the query's
  // random case into the CNAME target would show.
  const label = 'averylonglabelthatisnotthere';
  const types = (r: { answers: Array<{ type: number }> }): number[] => r.answers.map((x) => x.type);
  const cold = await hx.stack.resolver.resolve(`${label}.legacy.example.com`, 'CNAME');
  assert.is(cold.rcode, Rcode.NOERROR, 'the CNAME exists, whatever its target');
  assert.equal(types(cold), [RRType.DNAME, RRType.CNAME]);
  assert.equal(A(cold), [`${label}.example.net.`]);
  assert.equal(cold.authorities, []);
  // The synthesized CNAME was not cached as a CNAME of its own: an A query still shows the DNAME.
  const a = await hx.stack.resolver.resolve(`${label}.legacy.example.com`, 'A');
  assert.is(a.rcode, Rcode.NXDOMAIN);
  assert.equal(types(a), [RRType.DNAME, RRType.CNAME]);
  assert.equal(a.records, []);
  // From the cached DNAME: the same answer, and the target (nxdomain) is not followed.
  const n = hx.counting.total;
  const warm = await hx.stack.resolver.resolve('other.legacy.example.com', 'CNAME');
  assert.is(warm.source, 'cache');
  assert.is(hx.counting.total, n);
  assert.is(warm.rcode, Rcode.NOERROR);
  assert.equal(types(warm), [RRType.DNAME, RRType.CNAME]);
  assert.equal(A(warm), ['other.example.net.']);
  assert.equal(warm.authorities, []);
});

basic('a client query with RD clear is answered from the cache only, REFUSED on a miss', async () => {
  const question = { name: 'www.example.com.', type: RRType.A, class: 1 };
  const norec = { dnssecOk: false, checkingDisabled: false, recursionDesired: false };
  const miss = await hx.stack.resolver.answerQuery(question, norec);
  assert.is(miss.rcode, Rcode.REFUSED);
  assert.is(miss.cacheable, false);
  assert.is(hx.counting.total, 0, 'RFC 1034 s4.3.1: no recursion without RD');
  await hx.stack.resolver.answerQuery(question, { ...norec, recursionDesired: true });
  await hx.stack.resolver.resolve('nope.example.com', 'A');
  const n = hx.counting.total;
  const cached = await hx.stack.resolver.answerQuery(question, norec);
  assert.is(cached.rcode, Rcode.NOERROR);
  assert.is(cached.source, 'cache');
  assert.equal(cached.answers.map((x) => x.type), [RRType.A]);
  const negative = await hx.stack.resolver.answerQuery({ ...question, name: 'nope.example.com.' }, norec);
  assert.is(negative.rcode, Rcode.NXDOMAIN);
  assert.is(negative.authorities[0]?.type, RRType.SOA);
  const other = await hx.stack.resolver.answerQuery({ ...question, name: 'alias.example.com.' }, norec);
  assert.is(other.rcode, Rcode.REFUSED, 'alias.example.com is not cached');
  assert.is(hx.counting.total, n, 'no upstream query for any RD=0 query');
});

basic('NXDOMAIN with the SOA, negatively cached per RFC 2308', async () => {
  const r = await hx.stack.resolver.resolve('nope.example.com', 'A');
  assert.is(r.rcode, Rcode.NXDOMAIN);
  assert.is(r.authorities[0]?.type, RRType.SOA);
  assert.ok(r.ttlSec <= 300);
  const n = hx.counting.total;
  const again = await hx.stack.resolver.resolve('nope.example.com', 'AAAA');
  assert.is(again.rcode, Rcode.NXDOMAIN, 'NXDOMAIN covers every type of the name');
  assert.is(again.source, 'cache');
  assert.is(hx.counting.total, n);
});

basic('NODATA is cached per type', async () => {
  const r = await hx.stack.resolver.resolve('www.example.com', 'MX');
  assert.is(r.rcode, Rcode.NOERROR);
  assert.is(r.records.length, 0);
  assert.is(r.authorities[0]?.type, RRType.SOA);
  const a = await hx.stack.resolver.resolve('www.example.com', 'A');
  assert.equal(A(a), ['192.0.2.1'], 'NODATA for MX does not hide A');
});

basic('an empty non-terminal under QNAME minimisation', async () => {
  const r = await hx.stack.resolver.resolve('host.ent.example.com', 'A');
  assert.equal(A(r), ['192.0.2.30']);
});

basic('out-of-bailiwick NS name is resolved as a sub-query when the in-bailiwick server is dead', async () => {
  await hx.h.server('127.53.2.1').setBehaviour('closed');
  const r = await hx.stack.resolver.resolve('mail.example.com', 'A');
  assert.equal(A(r), ['192.0.2.25']);
  assert.ok(hx.counting.countFor('127.53.2.2') >= 1, 'ns2.example.net (no glue) was found and asked');
});

basic('MX and TXT typed data', async () => {
  const mx = await hx.stack.resolver.resolve('example.com', 'MX');
  assert.equal(A(mx), [{ preference: 10, exchange: 'mail.example.com.' }]);
  const txt = await hx.stack.resolver.resolve('example.com', 'TXT');
  assert.equal(A(txt), [['v=spf1 mx -all']]);
});

basic('ANY: every RRset the server holds at the name, a CNAME without following it', async () => {
  const apex = await hx.stack.resolver.resolve('example.com', 'ANY');
  assert.is(apex.rcode, Rcode.NOERROR);
  assert.equal([...new Set(apex.answers.map((x) => x.type))].sort((a, b) => a - b), [RRType.NS, RRType.SOA, RRType.MX, RRType.TXT]);
  assert.is(apex.records.length, apex.answers.length, 'every record at the name answers ANY');
  const www = await hx.stack.resolver.resolve('www.example.com', 'ANY');
  assert.equal(www.answers.map((x) => x.type).sort((a, b) => a - b), [RRType.A, RRType.AAAA]);
  // The RRsets are cached as any answer's: A from the ANY answer, without another query.
  const n = hx.counting.total;
  const a = await hx.stack.resolver.resolve('www.example.com', 'A');
  assert.equal(A(a), ['192.0.2.1']);
  assert.is(a.source, 'cache');
  assert.is(hx.counting.total, n);
  const alias = await hx.stack.resolver.resolve('alias.example.com', 'ANY');
  assert.equal(alias.answers.map((x) => x.type), [RRType.CNAME]);
  // Once the CNAME is cached, ANY still is not followed through it.
  const again = await hx.stack.resolver.resolve('alias.example.com', 'ANY');
  assert.equal(again.answers.map((x) => x.type), [RRType.CNAME]);
});

basic('DS is asked of the parent zone, also once the child zone cut is cached (RFC 4035 s4.2)', async () => {
  await hx.stop();
  const spec = standardTree();
  spec.zones['com.']?.records.push('example 86400 IN DS 12345 13 2 49fd46e6c4b45c55d4ac69cbd3cd34ac1afe51de49fd46e6c4b45c55d4ac69cb');
  hx = await startHarness({ spec });
  await hx.stack.resolver.resolve('www.example.com', 'A'); // caches the example.com. cut
  hx.counting.reset();
  const ds = await hx.stack.resolver.resolve('example.com', 'DS');
  assert.is(ds.rcode, Rcode.NOERROR);
  assert.is(ds.records.length, 1);
  assert.is(ds.records[0]?.type, 'DS');
  const toChild = hx.counting.countForQuestion('127.53.2.1', 'example.com.', RRType.DS) + hx.counting.countForQuestion('127.53.2.2', 'example.com.', RRType.DS);
  assert.is(toChild, 0, 'the child zone servers were not asked for the DS');
  // A name that is no zone cut has no DS: the zone holding the name says NODATA.
  const none = await hx.stack.resolver.resolve('www.example.com', 'DS');
  assert.is(none.rcode, Rcode.NOERROR);
  assert.is(none.records.length, 0);
  assert.is(none.authorities[0]?.name, 'example.com.');
});

basic('fresh answers carry the TTLs the cache clamps them to (cache-max-ttl, cache-max-negative-ttl)', async () => {
  await hx.stop();
  hx = await startHarness({ flags: { 'cache-max-ttl': 60, 'cache-max-negative-ttl': 20 } });
  const fresh = await hx.stack.resolver.resolve('alias.example.com', 'A');
  assert.is(fresh.source, 'recursion');
  assert.equal(fresh.answers.map((x) => x.ttl), [60, 60, 60], 'upstream TTL 300 lowered to cache-max-ttl');
  const nx = await hx.stack.resolver.resolve('nope.example.com', 'A');
  assert.is(nx.rcode, Rcode.NXDOMAIN);
  assert.is(nx.authorities[0]?.ttl, 20, 'the SOA carries the negative TTL, capped by cache-max-negative-ttl');
  const cached = await hx.stack.resolver.resolve('nope.example.com', 'A');
  assert.is(cached.source, 'cache');
  assert.ok((cached.authorities[0]?.ttl ?? 99) <= 20);
});

basic('identical concurrent client queries are merged into one resolution', async () => {
  await hx.stack.resolver.resolve('example.com', 'NS'); // warm the delegation
  hx.counting.reset();
  const rs = await Promise.all(Array.from({ length: 20 }, () => hx.stack.resolver.resolve('mail.example.com', 'A')));
  assert.ok(rs.every((r) => (r.records[0]?.data as string) === '192.0.2.25'));
  assert.is(hx.counting.countForName('mail.example.com.', RRType.A), 1);
  assert.ok(hx.stack.resolver.stats.merged >= 19);
});

basic('one upstream query per fresh name under a cached zone', async () => {
  await hx.stack.resolver.resolve('www.example.com', 'A');
  hx.counting.reset();
  for (let i = 0; i < 50; i++) await hx.stack.resolver.resolve(`cold${i}.example.com`, 'A');
  assert.is(hx.counting.total, 50);
});

basic('a DNAME substitution that would be too long is YXDOMAIN with the DNAME, from the wire and from the cache (RFC 6672 s2.2)', async () => {
  await hx.stop();
  const spec = standardTree();
  const target = `${'x'.repeat(60)}.${'y'.repeat(60)}.${'z'.repeat(55)}.example.net.`;
  spec.zones['example.com.']!.records.push(`longd 300 IN DNAME ${target}`);
  hx = await startHarness({ spec });
  const qname = `${'a'.repeat(60)}.${'b'.repeat(50)}.longd.example.com`;
  const r = await hx.stack.resolver.resolve(qname, 'A');
  assert.is(r.rcode, Rcode.YXDOMAIN, r.failure ?? '');
  assert.equal(r.answers.map((x) => x.type), [RRType.DNAME], 'the DNAME is the answer');
  assert.equal(r.records, [], 'no A record');
  assert.is(hx.stack.iterator.stats.lameServers, 0, 'the server is not lame for it');
  const before = hx.counting.total;
  const again = await hx.stack.resolver.resolve(`c.${qname}`, 'A');
  assert.is(again.rcode, Rcode.YXDOMAIN);
  assert.is(hx.counting.total, before, 'answered from the cached DNAME');
  const fits = await hx.stack.resolver.resolve('www.longd.example.com', 'A');
  assert.is(fits.rcode, Rcode.NXDOMAIN, 'a short name is substituted as usual (its target does not exist)');
});

basic('glue and a referral\'s NS set are never answers: the child zone is asked (RFC 2181 s5.4.1)', async () => {
  await hx.stop();
  const spec = standardTree();
  // The parent's delegation and glue differ from the child's own data (TTLs and the NS set), as they often do.
  spec.zones['example.com.']!.records.push('sub 300 IN NS ns.sub.example.com.', 'ns.sub 300 IN A 127.53.5.1');
  spec.zones['sub.example.com.'] = {
    records: [
      '@ 3600 IN SOA ns.sub.example.com. h.example.com. 1 7200 3600 1209600 30',
      '@ 3600 IN NS ns.sub.example.com.',
      '@ 3600 IN NS ns-b.sub.example.com.',
      'ns 3600 IN A 127.53.5.1',
      'ns-b 3600 IN A 127.53.5.1',
      'www 60 IN A 192.0.2.50',
    ],
  };
  spec.servers.push({ address: '127.53.5.1', zones: ['sub.example.com.'] });
  hx = await startHarness({ spec });
  await hx.stack.resolver.resolve('www.sub.example.com', 'A'); // caches the referral NS set and its glue
  hx.counting.reset();
  const ns = await hx.stack.resolver.resolve('sub.example.com', 'NS');
  assert.is(ns.rcode, Rcode.NOERROR);
  assert.equal(ns.records.map((r) => r.data).sort(), ['ns-b.sub.example.com.', 'ns.sub.example.com.'], 'the child\'s NS set, not the parent\'s');
  assert.ok(ns.ttlSec > 300, `the child's TTL (${ns.ttlSec})`);
  assert.is(hx.counting.countForQuestion('127.53.5.1', 'sub.example.com.', RRType.NS), 1, 'the child was asked');
  const glue = await hx.stack.resolver.resolve('ns.sub.example.com', 'A');
  assert.equal(A(glue), ['127.53.5.1']);
  assert.ok(glue.ttlSec > 300, `the child's TTL, not the glue's (${glue.ttlSec})`);
  assert.is(hx.counting.countForQuestion('127.53.5.1', 'ns.sub.example.com.', RRType.A), 1);
  const again = await hx.stack.resolver.resolve('sub.example.com', 'NS');
  assert.is(again.source, 'cache', 'the authoritative NS set is then answered from the cache');
});

basic('name server addresses with TTL 0 (glue or an NS-name sub-query) are still used to iterate', async () => {
  await hx.stop();
  const spec = standardTree();
  // z.example.com: in-bailiwick NS with TTL 0 glue; y.example.com: an out-of-bailiwick NS whose A has TTL 0.
  spec.zones['example.com.']!.records.push('z 300 IN NS ns.z.example.com.', 'ns.z 0 IN A 127.53.5.1', 'y 300 IN NS ns-y.example.net.');
  spec.zones['example.net.']!.records.push('ns-y 0 IN A 127.53.5.1');
  const soa = (o: string): string => `@ 3600 IN SOA ns.${o} h.example.com. 1 7200 3600 1209600 30`;
  spec.zones['z.example.com.'] = { records: [soa('z.example.com.'), '@ 3600 IN NS ns.z.example.com.', 'ns 0 IN A 127.53.5.1', 'www 60 IN A 192.0.2.50'] };
  spec.zones['y.example.com.'] = { records: [soa('y.example.com.'), '@ 3600 IN NS ns-y.example.net.', 'www 60 IN A 192.0.2.51'] };
  spec.servers.push({ address: '127.53.5.1', zones: ['z.example.com.', 'y.example.com.'] });
  hx = await startHarness({ spec });
  const z = await hx.stack.resolver.resolve('www.z.example.com', 'A');
  assert.is(z.rcode, Rcode.NOERROR, `glue TTL 0: ${z.failure ?? ''}`);
  assert.equal(A(z), ['192.0.2.50']);
  const y = await hx.stack.resolver.resolve('www.y.example.com', 'A');
  assert.is(y.rcode, Rcode.NOERROR, `NS address TTL 0: ${y.failure ?? ''}`);
  assert.equal(A(y), ['192.0.2.51']);
});

basic('an answer with TTL 0 is asked upstream every time, unless cache-min-ttl raises it (as Unbound does)', async () => {
  for (const minTtl of [0, 60]) {
    await hx.stop();
    const spec = standardTree();
    spec.zones['example.com.']!.records.push('zero 0 IN A 192.0.2.77');
    hx = await startHarness({ spec, flags: { 'cache-min-ttl': minTtl } });
    const first = await hx.stack.resolver.resolve('zero.example.com', 'A');
    const second = await hx.stack.resolver.resolve('zero.example.com', 'A');
    assert.equal(A(second), ['192.0.2.77']);
    const asked = hx.counting.countForQuestion('127.53.2.1', 'zero.example.com.', RRType.A) + hx.counting.countForQuestion('127.53.2.2', 'zero.example.com.', RRType.A);
    if (minTtl === 0) {
      assert.is(first.ttlSec, 0);
      assert.is(second.source, 'recursion');
      assert.is(asked, 2);
    } else {
      assert.is(first.ttlSec, 60, 'the client gets the raised TTL');
      assert.is(second.source, 'cache');
      assert.is(asked, 1);
    }
  }
});

basic.run();

const faults = suite('resolver: lame, dead and broken servers');
faults.after.each(async () => {
  await hx.stop();
});

faults('a lame (REFUSED) server is marked and another one answers', async () => {
  hx = await startHarness();
  await hx.h.server('127.53.2.1').setBehaviour('refused');
  const r = await hx.stack.resolver.resolve('www.example.com', 'A');
  assert.equal(A(r), ['192.0.2.1']);
  assert.ok(hx.stack.iterator.stats.lameServers >= 1 || hx.counting.countFor('127.53.2.1') === 0);
});

faults('upward referral and recursive answers (RA without AA) count as lame; a recursive answer is the last resort (as Unbound)', async () => {
  hx = await startHarness();
  await hx.h.server('127.53.2.1').setBehaviour('upward-referral');
  await hx.h.server('127.53.2.2').setBehaviour('recursive');
  const r = await hx.stack.resolver.resolve('www.example.com', 'A');
  // Unbound 1.17 on the same tree answers NOERROR 192.0.2.1 here: no server of the zone is
  // authoritative, so the recursive server's answer is taken rather than SERVFAIL.
  assert.is(r.rcode, Rcode.NOERROR, r.failure ?? '');
  assert.equal(A(r), ['192.0.2.1']);
  assert.ok(hx.stack.iterator.stats.lameServers >= 2);
  assert.is(hx.stack.cache.getRRset('www.example.com.', RRType.A)?.trust, Trust.AnswerNonAuth, 'cached below authoritative data');
  const nx = await hx.stack.resolver.resolve('nothing-here.example.com', 'A');
  assert.is(nx.rcode, Rcode.NXDOMAIN, nx.failure ?? '');
});

faults('an authoritative server is preferred to a recursive one of the same zone', async () => {
  hx = await startHarness();
  await hx.h.server('127.53.2.1').setBehaviour('recursive');
  // Whichever server is asked first, the answer kept is the authoritative server's.
  for (let i = 0; i < 4; i++) {
    hx.stack.cache.flushName('www.example.com.');
    const r = await hx.stack.resolver.resolve('www.example.com', 'A');
    assert.equal(A(r), ['192.0.2.1']);
    assert.is(hx.stack.cache.getRRset('www.example.com.', RRType.A)?.trust, Trust.AnswerAuth, `round ${i}: the authoritative answer was cached`);
  }
});

faults('a recursive server\'s NODATA or NXDOMAIN is a last resort too: the authoritative server\'s answer wins', async () => {
  // The recursive server (127.53.2.1) knows example.com as it was: sub.example.com without TXT,
  // no only.example.com. The authoritative one (127.53.2.2) serves both names with a TXT record.
  const spec = standardTree();
  spec.zones['example.com.']?.records.push('sub 3600 IN A 192.0.2.60');
  for (const z of ['sub.example.com.', 'only.example.com.']) {
    spec.zones[z] = { records: [`@ 3600 IN SOA ns1.example.com. hostmaster.example.com. 1 7200 3600 1209600 300`, '@ 3600 IN NS ns1.example.com.', '@ 300 IN TXT "current"'] };
  }
  const auth = spec.servers.find((s) => s.address === '127.53.2.2');
  auth?.zones.push('sub.example.com.', 'only.example.com.');
  hx = await startHarness({ spec });
  await hx.h.server('127.53.2.1').setBehaviour('recursive');
  for (const [name, negative] of [['sub.example.com', 'NODATA'], ['only.example.com', 'NXDOMAIN']] as const) {
    // The recursive server is the faster one: asked first.
    hx.stack.infra.recordRtt('127.53.2.1', 1);
    hx.stack.infra.recordRtt('127.53.2.2', 400);
    const r = await hx.stack.resolver.resolve(name, 'TXT');
    assert.is(r.rcode, Rcode.NOERROR, `${name}: not the recursive server's ${negative}`);
    assert.is(r.records.length, 1, `${name}: the authoritative TXT record, not the recursive server's ${negative}`);
  }
  assert.ok(hx.stack.infra.isLame('127.53.2.1', 'example.com.'), 'the recursive server is marked lame');
});

faults('the NS set in a recursive server\'s NODATA is cached below authoritative data', async () => {
  hx = await startHarness();
  for (const a of ['127.53.2.1', '127.53.2.2']) await hx.h.server(a).setBehaviour('recursive');
  // Recursive resolvers may add the zone's NS set (as they cached it) to a negative answer.
  const inner = hx.counting.query.bind(hx.counting);
  hx.counting.query = async (target, question, opts) => {
    const r = await inner(target, question, opts);
    if (target.address.startsWith('127.53.2.') && r.message.answers.length === 0 && r.message.rcode === Rcode.NOERROR) {
      r.message.authorities.push({ name: 'example.com.', type: RRType.NS, class: 1, ttl: 3600, rdata: nameToWire('ns.elsewhere.example.com.') });
    }
    return r;
  };
  const r = await hx.stack.resolver.resolve('www.example.com', 'TXT');
  assert.is(r.rcode, Rcode.NOERROR, r.failure ?? '');
  assert.is(r.records.length, 0);
  const ns = hx.stack.cache.getRRset('example.com.', RRType.NS);
  assert.ok(ns !== undefined && ns.trust < Trust.AnswerNonAuth, `NS cached at trust ${ns?.trust}: served as an answer, above non-authoritative answer data`);
});

faults('only recursive servers: every name of the zone resolves from their answers', async () => {
  hx = await startHarness();
  for (const a of ['127.53.2.1', '127.53.2.2']) await hx.h.server(a).setBehaviour('recursive');
  const r = await hx.stack.resolver.resolve('www.example.com', 'A');
  assert.is(r.rcode, Rcode.NOERROR, r.failure ?? '');
  assert.equal(A(r), ['192.0.2.1']);
  assert.is((await hx.stack.resolver.resolve('nothing-here.example.com', 'A')).rcode, Rcode.NXDOMAIN);
  assert.ok(hx.stack.iterator.stats.lameServers >= 2);
});

faults('a recursive server beside one that only times out: its answer is taken within a short budget, not lost to retries', async () => {
  hx = await startHarness({ flags: { 'serve-expired': false } });
  await hx.h.server('127.53.2.1').setBehaviour('recursive');
  await hx.h.server('127.53.2.2').setBehaviour('drop');
  // A policy lookup's budget: enough for one timeout of the silent server (its first RTO), not for
  // its retry rounds with the backed-off RTO.
  const started = Date.now();
  const r = await hx.stack.resolver.resolve('www.example.com', 'A', { deadlineMs: 1200 });
  assert.is(r.rcode, Rcode.NOERROR, r.failure ?? '');
  assert.equal(A(r), ['192.0.2.1']);
  assert.ok(Date.now() - started < 1200, `took ${Date.now() - started} ms`);
});

faults('an answer without AA from a non-recursive server is taken, below an authoritative one (as Unbound)', async () => {
  hx = await startHarness();
  for (const a of ['127.53.2.1', '127.53.2.2']) await hx.h.server(a).setBehaviour('no-aa');
  const r = await hx.stack.resolver.resolve('www.example.com', 'A');
  assert.is(r.rcode, Rcode.NOERROR, r.failure ?? '');
  assert.equal(A(r), ['192.0.2.1']);
  assert.is(hx.stack.iterator.stats.lameServers, 0);
  const nx = await hx.stack.resolver.resolve('nothing-here.example.com', 'A');
  assert.is(nx.rcode, Rcode.NXDOMAIN, 'an NXDOMAIN without AA, with its SOA');
  const cached = hx.stack.cache.getRRset('www.example.com.', RRType.A);
  assert.is(cached?.trust, Trust.AnswerNonAuth, 'cached at the rank of non-authoritative answer data');
});

faults('a never-answering server times out and the other server answers', async () => {
  hx = await startHarness();
  await hx.h.server('127.53.1.1').setBehaviour('drop');
  const started = Date.now();
  const r = await hx.stack.resolver.resolve('www.example.com', 'A');
  assert.equal(A(r), ['192.0.2.1']);
  assert.ok(Date.now() - started < 3000);
});

faults('all servers silent: SERVFAIL at the deadline, never silence', async () => {
  hx = await startHarness({ flags: { 'client-deadline-ms': 600, 'serve-expired': false } });
  for (const a of ['127.53.2.1', '127.53.2.2']) await hx.h.server(a).setBehaviour('drop');
  const started = Date.now();
  const r = await hx.stack.resolver.resolve('www.example.com', 'A');
  const took = Date.now() - started;
  assert.is(r.rcode, Rcode.SERVFAIL);
  assert.ok(took >= 500 && took < 2000, `took ${took} ms`);
});

faults('a query that fails at its deadline is one SERVFAIL log line and one count, not two', async () => {
  const log = capturingLogger();
  hx = await startHarness({ flags: { 'client-deadline-ms': 600, 'serve-expired': false }, logger: log.logger });
  for (const a of ['127.53.2.1', '127.53.2.2']) await hx.h.server(a).setBehaviour('drop');
  const r = await hx.stack.resolver.resolve('www.example.com', 'A');
  assert.is(r.rcode, Rcode.SERVFAIL);
  assert.is(r.failure, 'deadline');
  // The resolution itself ends by the same deadline, a moment after the caller gave up.
  await new Promise((done) => setTimeout(done, 300));
  const lines = log.lines().filter((l) => l['msg'] === 'SERVFAIL');
  assert.is(lines.length, 1, JSON.stringify(lines));
  assert.is(hx.stack.resolver.stats.servfail, 1);
  assert.equal(hx.stack.resolver.stats.inProcessFailures, { deadline: 1 });
  assert.equal(hx.stack.resolver.stats.failures, {}, 'no DNS client asked');
});

faults('SERVFAIL causes are counted by who asked: DNS clients apart from in-process lookups; a shared failure once for each, logged once', async () => {
  const log = capturingLogger();
  hx = await startHarness({ flags: { 'client-deadline-ms': 1500, 'serve-expired': false }, logger: log.logger });
  await hx.stack.resolver.resolve('example.com', 'NS');
  for (const a of ['127.53.2.1', '127.53.2.2']) await hx.h.server(a).setBehaviour('refused');
  const client = (name: string) => hx.stack.resolver.answerQuery({ name, type: RRType.A, class: 1 }, { recursionDesired: true });
  assert.is((await hx.stack.resolver.resolve('p1.example.com', 'A')).rcode, Rcode.SERVFAIL);
  assert.equal([hx.stack.resolver.stats.failures, hx.stack.resolver.stats.inProcessFailures], [{}, { 'no-servers': 1 }], 'the policy service\'s lookup is not a DNS client\'s');
  assert.is((await client('c1.example.com.')).rcode, Rcode.SERVFAIL);
  assert.equal([hx.stack.resolver.stats.failures, hx.stack.resolver.stats.inProcessFailures], [{ 'no-servers': 1 }, { 'no-servers': 1 }]);
  // One resolution shared by a client and an in-process caller: one count in each, one log line.
  const [a, b] = await Promise.all([client('both.example.com.'), hx.stack.resolver.resolve('both.example.com', 'A')]);
  assert.equal([a.rcode, b.rcode], [Rcode.SERVFAIL, Rcode.SERVFAIL]);
  assert.equal([hx.stack.resolver.stats.failures, hx.stack.resolver.stats.inProcessFailures], [{ 'no-servers': 2 }, { 'no-servers': 2 }]);
  const lines = log.lines().filter((l) => l['msg'] === 'SERVFAIL' && String(l['qname']).startsWith('both.'));
  assert.is(lines.length, 1, JSON.stringify(lines));
});

faults('root servers this host cannot reach: the priming and the query itself ask each once, then SERVFAIL no-servers', async () => {
  hx = await startHarness({ flags: { 'client-deadline-ms': 3000, 'serve-expired': false } });
  for (const a of ['127.53.0.1', '127.53.0.2']) await hx.h.server(a).setBehaviour('closed');
  const r = await hx.stack.resolver.resolve('www.example.com', 'A');
  assert.is(r.rcode, Rcode.SERVFAIL);
  assert.is(r.failure, 'no-servers', 'not limit-queries');
  assert.equal(['127.53.0.1', '127.53.0.2'].map((a) => hx.counting.countFor(a)), [1, 1]);
});

faults('a no-servers SERVFAIL says what each server did, as dig would: SERVFAIL, REFUSED, unreachable', async () => {
  hx = await startHarness({ flags: { 'client-deadline-ms': 1500, 'serve-expired': false } });
  await hx.stack.resolver.resolve('example.com', 'NS'); // the cut and both servers' addresses are known
  const fail = async (behaviours: [string, 'servfail' | 'refused' | 'closed'][], name: string): Promise<string[]> => {
    for (const [a, b] of behaviours) await hx.h.server(a).setBehaviour(b);
    const r = await hx.stack.resolver.resolve(name, 'A');
    assert.is(r.rcode, Rcode.SERVFAIL);
    assert.is(r.failure, 'no-servers', `${name}: the reason code (a metric label) stays`);
    return (r.failureDetail ?? '').split('; ').sort();
  };
  assert.equal(await fail([['127.53.2.1', 'servfail'], ['127.53.2.2', 'servfail']], 'a1.example.com'), ['127.53.2.1 SERVFAIL', '127.53.2.2 SERVFAIL']);
  assert.equal(await fail([['127.53.2.1', 'refused'], ['127.53.2.2', 'closed']], 'a2.example.com'), ['127.53.2.1 REFUSED', '127.53.2.2 unreachable (network error)']);
  // An answer carries no detail.
  for (const a of ['127.53.2.1', '127.53.2.2']) await hx.h.server(a).setBehaviour('normal');
  assert.is((await hx.stack.resolver.resolve('mail.example.com', 'A')).failureDetail, undefined);
});

faults('a server that drops AAAA queries, asked nothing else for a while, is held back for AAAA only: A queries of its zone keep resolving', async () => {
  // A deadline long enough for each server's third timeout (RTO 376, 752, 1504 ms).
  hx = await startHarness({ flags: { 'client-deadline-ms': 6000, 'serve-expired': false } });
  await hx.stack.resolver.resolve('example.com', 'NS');
  for (const a of ['127.53.2.1', '127.53.2.2']) await hx.h.server(a).setBehaviour('drop-aaaa');
  // AAAA queries until both servers are down for AAAA (bounded).
  const downFor = (): string[][] => [...hx.stack.infra.dump()].filter((r) => r.address.startsWith('127.53.2.')).map((r) => r.downTypes);
  for (let i = 0; i < 10 && !(downFor().length === 2 && downFor().every((d) => d.includes('AAAA example.com.'))); i++) {
    assert.is((await hx.stack.resolver.resolve(`v6-${i}.example.com`, 'AAAA')).rcode, Rcode.SERVFAIL);
  }
  assert.equal(downFor(), [['AAAA example.com.'], ['AAAA example.com.']], 'both down for AAAA in example.com., and for AAAA only');
  await assertZoneAnswersWithin(1000);
});

/** example.com's A and NXDOMAIN answers still come, both within `ms`. */
async function assertZoneAnswersWithin(ms: number): Promise<void> {
  const started = Date.now();
  const a = await hx.stack.resolver.resolve('mail.example.com', 'A');
  assert.is(a.rcode, Rcode.NOERROR, `failure: ${a.failure ?? ''}`);
  assert.equal(A(a), ['192.0.2.25']);
  assert.is((await hx.stack.resolver.resolve('nothere.example.com', 'A')).rcode, Rcode.NXDOMAIN);
  assert.ok(Date.now() - started < ms, `took ${Date.now() - started} ms`);
}

/**
 * Fast answers until example.com's in-bailiwick server (127.53.2.1, the one asked first) is
 * measured with the 50 ms floor RTO (bounded); then the other one's port is closed, so every
 * query of the zone goes to 127.53.2.1 alone.
 */
async function warmToFloor(): Promise<void> {
  const rto = (): number | undefined => [...hx.stack.infra.dump()].find((r) => r.address === '127.53.2.1')?.rtoMs;
  for (let i = 0; i < 50 && rto() !== 50; i++) await hx.stack.resolver.resolve(`warm${i}.example.com`, 'A');
  assert.is(rto(), 50);
  await hx.h.server('127.53.2.2').setBehaviour('closed');
}

faults('a name the zone\'s servers ignore does not take them down: other names of the zone resolve at once (as Unbound)', async () => {
  hx = await startHarness({ flags: { 'client-deadline-ms': 2000, 'serve-expired': false } });
  await warmToFloor();
  await hx.h.server('127.53.2.1').setBehaviour({ namePrefix: 'ignored' });
  const ignored = await hx.stack.resolver.resolve('ignored1.example.com', 'A');
  assert.is(ignored.rcode, Rcode.SERVFAIL);
  assert.is(hx.counting.countForName('ignored1.example.com.', RRType.A), 6, '5 rounds at 127.53.2.1 (RTO 50 to 800 ms), 1 query to the closed port');
  await assertZoneAnswersWithin(500);
  assert.equal([...hx.stack.infra.dump()].find((r) => r.address === '127.53.2.1')?.downTypes, []);
});

faults('an answer 0.7 s late, after the servers\' RTO fell to 50 ms, is waited for within the deadline', async () => {
  hx = await startHarness({ flags: { 'client-deadline-ms': 4000, 'serve-expired': false } });
  await warmToFloor();
  await hx.h.server('127.53.2.1').setBehaviour({ namePrefix: 'slow', delayMs: 700 });
  const r = await hx.stack.resolver.resolve('slow1.example.com', 'A');
  assert.is(r.rcode, Rcode.NXDOMAIN, `failure: ${r.failure ?? ''}`);
  assert.is((await hx.stack.resolver.resolve('mail.example.com', 'A')).rcode, Rcode.NOERROR);
});

faults('servers this host cannot reach (port closed: ICMP unreachable) are not asked again within the resolution: SERVFAIL no-servers, at once', async () => {
  hx = await startHarness({ flags: { 'client-deadline-ms': 3000, 'serve-expired': false } });
  await hx.stack.resolver.resolve('example.com', 'NS'); // the cut is known; now both of its servers' ports close
  for (const a of ['127.53.2.1', '127.53.2.2']) await hx.h.server(a).setBehaviour('closed');
  const before = ['127.53.2.1', '127.53.2.2'].map((a) => hx.counting.countFor(a));
  const started = Date.now();
  const r = await hx.stack.resolver.resolve('mail.example.com', 'A');
  assert.is(r.rcode, Rcode.SERVFAIL);
  assert.is(r.failure, 'no-servers', 'not limit-queries: the servers were unreachable, not many');
  assert.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms`);
  // Each of the two addresses once, not round after round up to the query budget.
  assert.equal(['127.53.2.1', '127.53.2.2'].map((a, i) => hx.counting.countFor(a) - before[i]!), [1, 1]);
});

faults('servers that only time out are asked again (outbound-msg-retry): a transient outage is survived', async () => {
  hx = await startHarness({ flags: { 'client-deadline-ms': 4000, 'serve-expired': false } });
  await hx.stack.resolver.resolve('example.com', 'NS'); // the cut is known; now both of its servers go silent
  for (const a of ['127.53.2.1', '127.53.2.2']) await hx.h.server(a).setBehaviour('drop');
  const recover = setTimeout(() => {
    for (const a of ['127.53.2.1', '127.53.2.2']) void hx.h.server(a).setBehaviour('normal');
  }, 300);
  const r = await hx.stack.resolver.resolve('mail.example.com', 'A');
  clearTimeout(recover);
  assert.is(r.rcode, Rcode.NOERROR, `failure: ${r.failure ?? ''}`);
  assert.equal(A(r), ['192.0.2.25']);
  assert.ok(hx.counting.countForName('mail.example.com.', RRType.A) >= 3, 'asked again after the first round timed out');
});

faults('root servers failing while priming: SERVFAIL, one warning, and resolution works again once they answer', async () => {
  const log = capturingLogger();
  hx = await startHarness({ flags: { 'client-deadline-ms': 1500, 'serve-expired': false }, logger: log.logger });
  for (const a of ['127.53.0.1', '127.53.0.2']) await hx.h.server(a).setBehaviour('refused');
  const down = await hx.stack.resolver.resolve('www.example.com', 'A');
  assert.is(down.rcode, Rcode.SERVFAIL);
  assert.is((await hx.stack.resolver.resolve('ftp.example.com', 'A')).rcode, Rcode.SERVFAIL);
  const failed = log.lines().filter((l) => l['msg'] === 'root priming failed; using the root hints as they are');
  assert.ok(failed.length >= 2, `primed again for the second query (${failed.length})`);
  assert.equal(failed.map((l) => l['level']).filter((lv) => lv !== 'debug'), ['warn'], 'one warning per outage, the repeats at debug');
  for (const a of ['127.53.0.1', '127.53.0.2']) await hx.h.server(a).setBehaviour('normal');
  const up = await hx.stack.resolver.resolve('mail.example.com', 'A');
  assert.is(up.rcode, Rcode.NOERROR, `failure: ${up.failure ?? ''}`);
  assert.equal(A(up), ['192.0.2.25']);
});

faults('a resolution that never ends is released after its deadline: later queries neither join it nor count it', async () => {
  const log = capturingLogger();
  hx = await startHarness({ flags: { 'client-deadline-ms': 300, 'serve-expired': false }, logger: log.logger });
  const { iterator, resolver } = hx.stack;
  const real = iterator.resolveChain.bind(iterator);
  iterator.resolveChain = () => new Promise(() => {}); // a bug that never settles
  const hung = await resolver.resolve('www.example.com', 'A');
  assert.is(hung.rcode, Rcode.SERVFAIL);
  assert.is(resolver.stats.inFlight, 1, 'the hung resolution still counts');
  iterator.resolveChain = real;
  const joined = await resolver.resolve('www.example.com', 'A');
  assert.is(joined.rcode, Rcode.SERVFAIL, 'joined the hung one before the grace is over');
  // The joiner's deadline (300 ms after it joined) now bounds the resolution; released the grace
  // after it, at the next sweep (every 250 ms).
  await new Promise((r) => setTimeout(r, HUNG_RESOLUTION_GRACE_MS));
  for (let i = 0; i < 30 && resolver.stats.inFlight > 0; i++) await new Promise((r) => setTimeout(r, 50));
  assert.is(resolver.stats.inFlight, 0, 'released');
  assert.ok(log.lines().some((l) => l['level'] === 'warn' && /did not end by its deadline: released/.test(String(l['msg']))));
  const fresh = await resolver.resolve('www.example.com', 'A');
  assert.is(fresh.rcode, Rcode.NOERROR, `a new resolution: ${fresh.failure ?? ''}`);
  assert.equal(A(fresh), ['192.0.2.1']);
});

faults('TC over UDP is retried over TCP', async () => {
  hx = await startHarness();
  await hx.h.server('127.53.2.1').setBehaviour('truncate-udp');
  await hx.h.server('127.53.2.2').setBehaviour('truncate-udp');
  const r = await hx.stack.resolver.resolve('www.example.com', 'A');
  assert.equal(A(r), ['192.0.2.1']);
  assert.ok(hx.counting.log.some((q) => q.tcp), 'a TCP query was made');
});

faults('an answer truncated over TCP too is lame, never an answer: the other server answers, or SERVFAIL (as Unbound)', async () => {
  hx = await startHarness();
  await hx.h.server('127.53.2.1').setBehaviour('truncate-always');
  await hx.h.server('127.53.2.2').setBehaviour('truncate-always');
  const mx = await hx.stack.resolver.resolve('www.example.com', 'MX');
  assert.is(mx.rcode, Rcode.SERVFAIL, 'a truncated NODATA is not NODATA');
  const a = await hx.stack.resolver.resolve('www.example.com', 'A');
  assert.is(a.rcode, Rcode.SERVFAIL, 'a truncated answer is not taken');
  assert.ok(hx.counting.log.some((q) => q.tcp && q.name === 'www.example.com.'), 'TCP was tried');
  await hx.h.server('127.53.2.2').setBehaviour('normal');
  const again = await hx.stack.resolver.resolve('www.example.com', 'MX');
  assert.is(again.rcode, Rcode.NOERROR);
  assert.is(again.source, 'recursion', 'nothing was cached from the truncated answers');
  assert.equal(A(await hx.stack.resolver.resolve('www.example.com', 'A')), ['192.0.2.1']);
});

faults('a referral that also carries the parent\'s own copy of the data, without AA, is followed to the child (as Unbound)', async () => {
  const spec = standardTree();
  // example.net. still holds an MX and an A for the delegated dnsbl.example.net.: stale data.
  spec.zones['example.net.']!.records.push('dnsbl 300 IN MX 10 old.example.net.', 'www.dnsbl 300 IN A 192.0.2.99');
  spec.zones['dnsbl.example.net.']!.records.push('@ 300 IN MX 10 mx.dnsbl.example.net.', 'www 300 IN A 192.0.2.98');
  spec.servers.find((x) => x.address === '127.53.3.1')!.behaviour = 'occluded-answers';
  for (const minimisation of ['relaxed', 'off']) {
    if (minimisation !== 'relaxed') await hx.stop();
    hx = await startHarness({ spec, flags: { 'qname-minimisation': minimisation } });
    const mx = await hx.stack.resolver.resolve('dnsbl.example.net', 'MX');
    assert.equal(A(mx), [{ preference: 10, exchange: 'mx.dnsbl.example.net.' }], `MX, minimisation ${minimisation}`);
    assert.equal(A(await hx.stack.resolver.resolve('www.dnsbl.example.net', 'A')), ['192.0.2.98'], `A, minimisation ${minimisation}`);
    assert.ok(hx.counting.countFor('127.53.4.1') >= 2, 'the child zone\'s server was asked');
  }
});

faults('glue that a parent sends without AA in the answer section beside its referral is used to reach the child', async () => {
  const spec = standardTree();
  spec.servers.find((x) => x.address === '127.53.3.1')!.behaviour = ['occluded-answers', 'no-repeat-glue'];
  for (const minimisation of ['off', 'relaxed']) {
    if (minimisation !== 'off') await hx.stop();
    hx = await startHarness({ spec, flags: { 'qname-minimisation': minimisation } });
    // The parent answers ns.dnsbl.example.net A with the glue in the answer section only.
    const r = await hx.stack.resolver.resolve('ns.dnsbl.example.net', 'A');
    assert.is(r.rcode, Rcode.NOERROR, `${r.failure ?? ''} (minimisation ${minimisation})`);
    assert.equal(A(r), ['127.53.4.1']);
    assert.ok(hx.counting.countFor('127.53.4.1') >= 1, 'the child zone\'s server was asked');
  }
});

faults('an EDNS-intolerant server (FORMERR) is asked again without EDNS', async () => {
  hx = await startHarness();
  for (const a of ['127.53.2.1', '127.53.2.2']) await hx.h.server(a).setBehaviour('formerr-edns');
  const r = await hx.stack.resolver.resolve('www.example.com', 'A');
  assert.equal(A(r), ['192.0.2.1']);
  assert.ok(hx.counting.log.some((q) => !q.edns && q.name === 'www.example.com.'));
  assert.ok(hx.stack.iterator.stats.ednsFallbacks >= 1);
});

faults('FORMERR with an OPT to an EDNS query also falls back (as Unbound): the answer comes without EDNS', async () => {
  hx = await startHarness();
  for (const a of ['127.53.2.1', '127.53.2.2']) await hx.h.server(a).setBehaviour('formerr-edns-opt');
  const r = await hx.stack.resolver.resolve('www.example.com', 'A');
  assert.is(r.rcode, Rcode.NOERROR, r.failure ?? '');
  assert.equal(A(r), ['192.0.2.1']);
  assert.ok(hx.counting.log.some((q) => !q.edns && q.name === 'www.example.com.'));
});

/** Once example.com's servers behave normally again, the next name is asked of them with EDNS. */
async function askedWithEdnsOnceNormal(h: Harness): Promise<void> {
  for (const a of ['127.53.2.1', '127.53.2.2']) await h.h.server(a).setBehaviour('normal');
  const before = h.counting.log.length;
  assert.equal(A(await h.stack.resolver.resolve('mail.example.com', 'A')), ['192.0.2.25']);
  const later = h.counting.log.slice(before).filter((q) => q.name === 'mail.example.com.');
  assert.ok(later.length > 0 && later.every((q) => q.edns), 'asked with EDNS');
}
faults('a server that answers FORMERR without EDNS too is not marked as one without EDNS: its next queries carry an OPT', async () => {
  hx = await startHarness();
  for (const a of ['127.53.2.1', '127.53.2.2']) await hx.h.server(a).setBehaviour('formerr');
  const r = await hx.stack.resolver.resolve('www.example.com', 'A');
  assert.is(r.rcode, Rcode.SERVFAIL);
  assert.ok(hx.counting.log.some((q) => !q.edns && q.name === 'www.example.com.'), 'the fallback was tried');
  await askedWithEdnsOnceNormal(hx);
});

faults('one FORMERR with an OPT from a server that answered EDNS queries does not take EDNS off it (as Unbound)', async () => {
  hx = await startHarness();
  assert.equal(A(await hx.stack.resolver.resolve('www.example.com', 'A')), ['192.0.2.1']);
  for (const a of ['127.53.2.1', '127.53.2.2']) await hx.h.server(a).setBehaviour('formerr-edns-opt');
  const r = await hx.stack.resolver.resolve('www.example.com', 'AAAA');
  assert.is(r.rcode, Rcode.NOERROR, r.failure ?? '');
  assert.ok(hx.counting.log.some((q) => !q.edns && q.name === 'www.example.com.' && q.type === RRType.AAAA), 'that query was asked again without EDNS');
  await askedWithEdnsOnceNormal(hx);
});

faults('a server that answers only without EDNS is asked without EDNS from then on', async () => {
  hx = await startHarness();
  for (const a of ['127.53.2.1', '127.53.2.2']) await hx.h.server(a).setBehaviour('formerr-edns');
  assert.equal(A(await hx.stack.resolver.resolve('www.example.com', 'A')), ['192.0.2.1']);
  const before = hx.counting.log.length;
  assert.equal(A(await hx.stack.resolver.resolve('mail.example.com', 'A')), ['192.0.2.25']);
  const later = hx.counting.log.slice(before).filter((q) => q.name === 'mail.example.com.');
  assert.equal(later.map((q) => q.edns), [false], 'one query, without EDNS');
});

faults('NOTIMP to EDNS also falls back', async () => {
  hx = await startHarness();
  for (const a of ['127.53.2.1', '127.53.2.2']) await hx.h.server(a).setBehaviour('notimp-edns');
  const r = await hx.stack.resolver.resolve('www.example.com', 'A');
  assert.equal(A(r), ['192.0.2.1']);
});

for (const forge of ['wrong-id', 'wrong-port', 'wrong-question'] as const) {
  faults(`forged answers (${forge}) are ignored; the genuine server answers`, async () => {
    hx = await startHarness();
    await hx.h.server('127.53.2.1').setBehaviour(forge);
    const r = await hx.stack.resolver.resolve('www.example.com', 'A');
    assert.equal(A(r), ['192.0.2.1']);
  });
}

faults('out-of-bailiwick records are dropped and never cached', async () => {
  hx = await startHarness();
  for (const a of ['127.53.2.1', '127.53.2.2']) await hx.h.server(a).setBehaviour('out-of-bailiwick');
  const r = await hx.stack.resolver.resolve('www.example.com', 'A');
  assert.equal(A(r), ['192.0.2.1']);
  assert.ok(hx.stack.iterator.stats.scrubbedRecords > 0, 'poison was seen and dropped');
  for (const row of hx.stack.cache.dump()) {
    assert.ok(!/example\.org|victim|poison/i.test(row.name) || row.kind !== 'rrset', `poisoned name cached: ${row.name}`);
  }
});

faults('0x20: a reply with the wrong letter case is retried over TCP', async () => {
  hx = await startHarness({ flags: { 'use-caps-for-id': true } });
  for (const a of ['127.53.2.1', '127.53.2.2']) await hx.h.server(a).setBehaviour('case-mismatch');
  const r = await hx.stack.resolver.resolve('www.example.com', 'A');
  assert.equal(A(r), ['192.0.2.1']);
  assert.ok(hx.stack.iterator.stats.caseMismatches >= 1);
  assert.ok(hx.counting.log.some((q) => q.tcp));
});

faults('0x20: a server that breaks the case and refuses TCP is asked again without 0x20', async () => {
  hx = await startHarness({ flags: { 'use-caps-for-id': true } });
  for (const a of ['127.53.2.1', '127.53.2.2']) await hx.h.server(a).setBehaviour(['case-mismatch', 'no-tcp']);
  const r = await hx.stack.resolver.resolve('WwW.example.com', 'A');
  assert.equal(A(r), ['192.0.2.1'], r.failure ?? '');
  assert.ok(hx.stack.iterator.stats.caseMismatches >= 1);
  assert.ok(hx.counting.log.some((q) => q.tcp), 'TCP was tried first');
  // The last UDP query for the name went without 0x20: the name exactly as asked.
  const udp = hx.h.allQueries().filter((q) => !q.tcp && /^www\.example\.com\.?$/i.test(q.name));
  assert.is(udp.at(-1)?.name.replace(/\.$/, ''), 'WwW.example.com');
  const nx = await hx.stack.resolver.resolve('MiXeD.example.com', 'A');
  assert.is(nx.rcode, Rcode.NXDOMAIN, nx.failure ?? '');
});

faults('use-caps-for-id off: an answer in another case is accepted over UDP, for a client name in any case', async () => {
  hx = await startHarness({ flags: { 'use-caps-for-id': false } });
  for (const a of ['127.53.2.1', '127.53.2.2']) await hx.h.server(a).setBehaviour(['case-mismatch', 'no-tcp']);
  const r = await hx.stack.resolver.resolve('WWW.Example.COM', 'A');
  assert.equal(A(r), ['192.0.2.1'], r.failure ?? '');
  assert.is(hx.stack.iterator.stats.caseMismatches, 0);
  assert.ok(!hx.counting.log.some((q) => q.tcp), 'no TCP retry');
});

faults('0x20 randomises the case of upstream query names', async () => {
  hx = await startHarness({ flags: { 'use-caps-for-id': true } });
  for (let i = 0; i < 10; i++) await hx.stack.resolver.resolve(`casetest${i}.example.com`, 'A');
  const names = hx.h.allQueries().map((q) => q.name).filter((n) => /casetest/i.test(n));
  assert.ok(names.some((n) => n !== n.toLowerCase()), `some upper case seen in ${names.slice(0, 3).join(',')}`);
});

faults('NODATA with neither AA nor an SOA is the last resort (as Unbound): taken, not cached; an upward referral stays lame', async () => {
  hx = await startHarness();
  for (const a of ['127.53.2.1', '127.53.2.2']) await hx.h.server(a).setBehaviour(['no-aa', 'no-soa']);
  // Unbound 1.17 answers NOERROR without records here (the e2e parity test compares the two).
  const r = await hx.stack.resolver.resolve('www.example.com', 'TXT');
  assert.is(r.rcode, Rcode.NOERROR, r.failure ?? '');
  assert.is(r.records.length, 0);
  assert.ok(hx.stack.iterator.stats.lameServers >= 1);
  // RFC 2308 s5: a negative answer without an SOA is not cached, so the next query asks again.
  const before = hx.counting.total;
  const again = await hx.stack.resolver.resolve('www.example.com', 'TXT');
  assert.is(again.rcode, Rcode.NOERROR, again.failure ?? '');
  assert.ok(hx.counting.total > before, 'asked upstream again');
  // An upward referral is still plain lame, not an empty answer: its out-of-bailiwick NS are scrubbed first.
  await hx.h.server('127.53.2.1').setBehaviour('upward-referral');
  await hx.h.server('127.53.2.2').setBehaviour('upward-referral');
  const up = await hx.stack.resolver.resolve('up.example.com', 'TXT');
  assert.is(up.rcode, Rcode.SERVFAIL);
});

faults('a server giving bare non-authoritative NODATA loses to the zone\'s authoritative server', async () => {
  // The broken server (127.53.2.1) knows example.com as it was: sub.example.com without TXT. The
  // authoritative one (127.53.2.2) serves sub.example.com with a TXT record.
  const spec = standardTree();
  spec.zones['example.com.']?.records.push('sub 3600 IN A 192.0.2.60');
  spec.zones['sub.example.com.'] = { records: ['@ 3600 IN SOA ns1.example.com. hostmaster.example.com. 1 7200 3600 1209600 300', '@ 3600 IN NS ns1.example.com.', '@ 300 IN TXT "current"'] };
  spec.servers.find((x) => x.address === '127.53.2.2')?.zones.push('sub.example.com.');
  hx = await startHarness({ spec });
  await hx.h.server('127.53.2.1').setBehaviour(['no-aa', 'no-soa']);
  // The broken server is the faster one: asked first.
  hx.stack.infra.recordRtt('127.53.2.1', 1);
  hx.stack.infra.recordRtt('127.53.2.2', 400);
  const r = await hx.stack.resolver.resolve('sub.example.com', 'TXT');
  assert.is(r.rcode, Rcode.NOERROR, r.failure ?? '');
  assert.is(r.records.length, 1, 'the authoritative TXT record, not the bare NODATA');
  assert.ok(hx.stack.infra.isLame('127.53.2.1', 'example.com.'), 'the server giving bare NODATA is marked lame');
});

faults.run();

const time = suite('resolver: cache expiry, serve-stale, limits (virtual time)');
let clock: ManualClock;
time.before.each(() => {
  clock = new ManualClock(Date.now());
});
time.after.each(async () => {
  await hx.stop();
});

time('an expired answer is fetched again', async () => {
  hx = await startHarness({ clock });
  await hx.stack.resolver.resolve('www.example.com', 'A');
  const n = hx.counting.total;
  clock.advanceSec(200);
  assert.is((await hx.stack.resolver.resolve('www.example.com', 'A')).source, 'cache');
  clock.advanceSec(101);
  const r = await hx.stack.resolver.resolve('www.example.com', 'A');
  assert.is(r.source, 'recursion');
  assert.ok(hx.counting.total > n);
});

time('serve-stale: fresh resolution first, the stale answer only on failure, TTL 30', async () => {
  hx = await startHarness({ clock, flags: { 'serve-expired-client-timeout': 0, 'client-deadline-ms': 800 } });
  await hx.stack.resolver.resolve('www.example.com', 'A');
  clock.advanceSec(400);
  for (const a of ['127.53.2.1', '127.53.2.2']) await hx.h.server(a).setBehaviour('servfail');
  const n = hx.counting.total;
  const r = await hx.stack.resolver.resolve('www.example.com', 'A');
  assert.ok(hx.counting.total > n, 'a fresh resolution was tried first');
  assert.is(r.rcode, Rcode.NOERROR);
  assert.is(r.source, 'stale');
  assert.is(r.ttlSec, 30);
  assert.equal(A(r), ['192.0.2.1']);
  // The client got an answer: no SERVFAIL counted (stats, metrics) for it.
  assert.is(hx.stack.resolver.stats.servfail, 0);
  assert.equal(hx.stack.resolver.stats.failures, {});
  // A name with nothing stale to give does count.
  assert.is((await hx.stack.resolver.resolve('mail.example.com', 'A')).rcode, Rcode.SERVFAIL);
  assert.is(hx.stack.resolver.stats.servfail, 1);
});

time('serve-stale is bounded by serve-expired-ttl', async () => {
  hx = await startHarness({ clock, flags: { 'serve-expired-client-timeout': 0, 'client-deadline-ms': 800, 'serve-expired-ttl': 600 } });
  await hx.stack.resolver.resolve('www.example.com', 'A');
  clock.advanceSec(300 + 601);
  for (const a of ['127.53.2.1', '127.53.2.2']) await hx.h.server(a).setBehaviour('servfail');
  const r = await hx.stack.resolver.resolve('www.example.com', 'A');
  assert.is(r.rcode, Rcode.SERVFAIL);
});

time('never stale for DNSBL zones', async () => {
  hx = await startHarness({ clock, flags: { 'serve-expired-client-timeout': 0, 'client-deadline-ms': 800 }, listZones: ['dnsbl.example.net.'] });
  const first = await hx.stack.resolver.resolve('2.0.0.127.dnsbl.example.net', 'A');
  assert.equal(A(first), ['127.0.0.2']);
  clock.advanceSec(301);
  await hx.h.server('127.53.4.1').setBehaviour('servfail');
  const r = await hx.stack.resolver.resolve('2.0.0.127.dnsbl.example.net', 'A');
  assert.is(r.rcode, Rcode.SERVFAIL);
});

time('DNSBL zone: no minimisation below it, listed and unlisted answers', async () => {
  hx = await startHarness({ clock, listZones: ['dnsbl.example.net.'] });
  const listed = await hx.stack.resolver.resolve('2.0.0.127.dnsbl.example.net', 'A');
  assert.equal(A(listed), ['127.0.0.2']);
  const txt = await hx.stack.resolver.resolve('2.0.0.127.dnsbl.example.net', 'TXT');
  assert.match(String((txt.records[0]?.data as string[])[0]), /Listed/);
  const clean = await hx.stack.resolver.resolve('1.0.0.127.dnsbl.example.net', 'A');
  assert.is(clean.rcode, Rcode.NXDOMAIN);
  const asked = hx.h.server('127.53.4.1').queries.map((q) => q.name.toLowerCase());
  assert.ok(!asked.includes('127.dnsbl.example.net.'), `no minimised query below the list zone: ${asked.join(' ')}`);
  // Above the list zone the name is still minimised: the root, net. and example.net. servers never
  // see the address being looked up (RFC 9156's point), only names down to the list zone.
  for (const address of ['127.53.0.1', '127.53.0.2', '127.53.1.1', '127.53.1.2', '127.53.3.1']) {
    const seen = hx.h.server(address).queries.map((q) => q.name.toLowerCase());
    assert.ok(!seen.some((n) => n.endsWith('127.dnsbl.example.net.')), `${address} saw the client address: ${seen.join(' ')}`);
  }
  assert.ok(hx.h.server('127.53.3.1').queries.some((q) => q.name.toLowerCase() === 'dnsbl.example.net.'), 'example.net. was asked for the list zone only');
});

time('strict minimisation: a list zone without its own delegation, an empty non-terminal on rbldnsd, still resolves', async () => {
  // zen.dnsbl.example.net. is a list inside the delegated dnsbl.example.net. zone, whose server
  // answers NXDOMAIN for empty non-terminals (rbldnsd, Spamhaus DQS): the minimised query for the
  // list's own name gets NXDOMAIN, which must not end the lookup as "not listed".
  const spec = standardTree();
  spec.zones['dnsbl.example.net.']!.records.push('2.0.0.127.zen 300 IN A 127.0.0.2');
  hx = await startHarness({ clock, spec, flags: { 'qname-minimisation': 'strict' }, listZones: ['zen.dnsbl.example.net.'] });
  const listed = await hx.stack.resolver.resolve('2.0.0.127.zen.dnsbl.example.net', 'A');
  assert.equal(A(listed), ['127.0.0.2']);
  const root = hx.h.server('127.53.0.1').queries.concat(hx.h.server('127.53.0.2').queries).map((q) => q.name.toLowerCase());
  assert.not.ok(root.some((n) => n.includes('127.zen')), 'the root still gets only minimised names');
});

time('relaxed minimisation survives an rbldnsd-style NXDOMAIN for an empty non-terminal', async () => {
  hx = await startHarness({ clock });
  const listed = await hx.stack.resolver.resolve('2.0.0.127.dnsbl.example.net', 'A');
  assert.equal(A(listed), ['127.0.0.2']);
});

time('prefetch: a name hit repeatedly near expiry is refreshed in the background', async () => {
  hx = await startHarness({ clock });
  await hx.stack.resolver.resolve('www.example.com', 'A');
  clock.advanceSec(280); // 20 s of 300 left: under the 10 % prefetch threshold
  hx.counting.reset();
  const r1 = await hx.stack.resolver.resolve('www.example.com', 'A');
  const r2 = await hx.stack.resolver.resolve('www.example.com', 'A');
  assert.is(r1.source, 'cache');
  assert.is(r2.ttlSec, 20, 'the client still gets the cached answer');
  // The refresh runs in the background: poll (bounded) until the cache holds the new answer.
  let refreshed = 0;
  for (let i = 0; i < 100 && refreshed !== 300; i++) {
    await new Promise((res) => setTimeout(res, 20));
    refreshed = hx.stack.cache.getRRset('www.example.com.', RRType.A)?.ttlSec ?? 0;
  }
  assert.ok(hx.counting.countForName('www.example.com.', RRType.A) >= 1, 'a background refresh went upstream');
  assert.is(refreshed, 300, 'the cache holds the refreshed answer');
  assert.ok(hx.stack.resolver.stats.prefetches >= 1);
});

time('referral limit ends in SERVFAIL', async () => {
  hx = await startHarness({ clock, flags: { 'max-referrals': 1 } });
  const r = await hx.stack.resolver.resolve('www.example.com', 'A');
  assert.is(r.rcode, Rcode.SERVFAIL);
  assert.is(r.failure, 'limit-referrals');
});

time('CNAME loop ends in SERVFAIL', async () => {
  const spec = standardTree();
  spec.zones['example.com.']!.records.push('loop1 300 IN CNAME loop2', 'loop2 300 IN CNAME loop1');
  hx = await startHarness({ clock, spec });
  const r = await hx.stack.resolver.resolve('loop1.example.com', 'A');
  assert.is(r.rcode, Rcode.SERVFAIL);
  assert.is(r.failure, 'cname-loop');
});

time('CNAME chain limit', async () => {
  const spec = standardTree();
  for (let i = 0; i < 20; i++) spec.zones['example.net.']!.records.push(`c${i} 300 IN CNAME c${i + 1}.example.com.`);
  for (let i = 0; i < 20; i++) spec.zones['example.com.']!.records.push(`c${i} 300 IN CNAME c${i + 1}.example.net.`);
  hx = await startHarness({ clock, spec, flags: { 'max-cname-chain': 5 } });
  const r = await hx.stack.resolver.resolve('c0.example.net', 'A');
  assert.is(r.rcode, Rcode.SERVFAIL);
  assert.is(r.failure, 'limit-cname');
});

time('the CNAME limit counts links, not responses: one server answering a whole in-zone chain, cold or cached, is judged alike', async () => {
  const spec = standardTree();
  for (let i = 1; i <= 8; i++) spec.zones['example.com.']!.records.push(`long${i} 300 IN CNAME ${i === 8 ? 'www' : `long${i + 1}`}`);
  for (let i = 1; i <= 5; i++) spec.zones['example.com.']!.records.push(`short${i} 300 IN CNAME ${i === 5 ? 'www' : `short${i + 1}`}`);
  hx = await startHarness({ clock, spec, flags: { 'max-cname-chain': 5 } });
  for (const round of ['cold', 'cached']) {
    const long = await hx.stack.resolver.resolve('long1.example.com', 'A');
    assert.is(long.rcode, Rcode.SERVFAIL, `8 links, ${round}`);
    assert.is(long.failure, 'limit-cname', round);
    const short = await hx.stack.resolver.resolve('short1.example.com', 'A');
    assert.is(short.rcode, Rcode.NOERROR, `5 links, ${round}: ${short.failure ?? ''}`);
    assert.equal(A(short), ['192.0.2.1'], round);
  }
});

time('upstream query limit per client query', async () => {
  hx = await startHarness({ clock, flags: { 'max-upstream-queries': 2 } });
  const r = await hx.stack.resolver.resolve('www.example.com', 'A');
  assert.is(r.rcode, Rcode.SERVFAIL);
  assert.is(r.failure, 'limit-queries');
  assert.ok(hx.counting.total <= 2);
});

time('the upstream query limit holds per link of a CNAME chain, as Unbound\'s max-sent-count', async () => {
  // ext.example.com is a CNAME to www.example.net: each link takes 3 queries cold (the TLD's
  // referral, the zone's referral, the answer) after the priming, 7 in all.
  hx = await startHarness({ clock, flags: { 'max-upstream-queries': 4 } });
  const r = await hx.stack.resolver.resolve('ext.example.com', 'A');
  assert.is(r.rcode, Rcode.NOERROR, r.failure ?? '');
  assert.equal(A(r), ['192.0.2.20']);
  assert.ok(hx.counting.total > 4, `${hx.counting.total} queries in all`);
});

time('referral loop (NS names only resolvable through themselves) ends in SERVFAIL', async () => {
  const spec = standardTree();
  // example.org: NS ns.example.org without glue: unresolvable, must not loop.
  spec.zones['.']!.records.push('org. 172800 IN NS a.gtld-servers.net.');
  spec.zones['org.'] = { records: ['@ 3600 IN SOA a.gtld-servers.net. h.example. 1 2 3 4 300', '@ 3600 IN NS a.gtld-servers.net.', 'example 3600 IN NS ns.example.org.'] };
  spec.servers[2]!.zones.push('org.');
  hx = await startHarness({ clock, spec });
  const r = await hx.stack.resolver.resolve('www.example.org', 'A');
  assert.is(r.rcode, Rcode.SERVFAIL);
});

time('concurrency limit answers SERVFAIL at once', async () => {
  hx = await startHarness({ clock, flags: { 'max-concurrent-queries': 2 } });
  const rs = await Promise.all([1, 2, 3, 4].map((i) => hx.stack.resolver.resolve(`n${i}.example.com`, 'A')));
  assert.ok(rs.some((r) => r.failure === 'limit-concurrency'));
  assert.ok(rs.some((r) => r.rcode === Rcode.NXDOMAIN));
});

time.run();
