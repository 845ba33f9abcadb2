// Tests of the RRset and negative cache: expiry, TTL clamps, RFC 2181 credibility both ways,
// RFC 2308 negative caching (NXDOMAIN for all types, NODATA per type, TTL from the SOA), the
// serve-stale window, zone cuts, flushes, dump, and the byte budget's expired-first eviction.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { RRsetCache, Trust, type RRsetCacheOptions, type RRsetInput } from '../../../src/dns/cache/rrset-cache.js';
import { nameToWire } from '../../../src/dns/wire/name.js';
import type { ResourceRecord } from '../../../src/dns/wire/types.js';
import { ManualClock } from '../../../src/util/clock.js';

const A = 1;
const NS = 2;
const MX = 15;
const TXT = 16;
const AAAA = 28;

function make(over: Partial<RRsetCacheOptions> = {}): { cache: RRsetCache; clock: ManualClock } {
  const clock = new ManualClock();
  const cache = new RRsetCache({
    clock, maxBytes: 1_000_000, minTtlSec: 0, maxTtlSec: 86_400, maxNegativeTtlSec: 3600, staleTtlSec: 0, ...over,
  });
  return { cache, clock };
}

function aSet(name: string, ttl: number, ...last: number[]): RRsetInput {
  return { name, type: A, class: 1, ttl, rdatas: (last.length ? last : [1]).map((l) => Buffer.from([192, 0, 2, l])) };
}

function nsSet(zone: string, ttl: number, ...hosts: string[]): RRsetInput {
  return { name: zone, type: NS, class: 1, ttl, rdatas: hosts.map((h) => nameToWire(h)) };
}

function soa(zone: string, ttl: number, minimum: number): ResourceRecord {
  const fixed = Buffer.alloc(20);
  fixed.writeUInt32BE(2024010101, 0);
  fixed.writeUInt32BE(7200, 4);
  fixed.writeUInt32BE(3600, 8);
  fixed.writeUInt32BE(1_209_600, 12);
  fixed.writeUInt32BE(minimum, 16);
  return { name: zone, type: 6, class: 1, ttl, rdata: Buffer.concat([nameToWire(`ns1.${zone}`), nameToWire(`hostmaster.${zone}`), fixed]) };
}

const last = (rdatas: Buffer[] | undefined): number[] => (rdatas ?? []).map((b) => b[3] as number);

const s = suite('dns/cache/rrset-cache');

s('store and read back; case-insensitive lookup keeps the received case; expiry', () => {
  const { cache, clock } = make();
  assert.ok(cache.putRRset(aSet('WWW.Example.COM.', 300, 1, 2), Trust.AnswerAuth));
  const got = cache.getRRset('www.example.com.', A);
  assert.ok(got);
  assert.is(got.name, 'WWW.Example.COM.');
  assert.equal(last(got.rdatas), [1, 2]);
  assert.is(got.ttlSec, 300);
  assert.is(got.originalTtlSec, 300);
  assert.is(got.stale, false);
  assert.is(got.trust, Trust.AnswerAuth);
  assert.is(got.hits, 1);
  assert.is(cache.getRRset('www.example.com.', AAAA), undefined, 'other type');
  assert.is(cache.getRRset('www.example.com.', A, 3), undefined, 'other class');
  clock.advanceMs(100_500);
  assert.is(cache.getRRset('www.example.com.', A)?.ttlSec, 200, 'remaining rounded up');
  clock.advanceMs(199_499);
  assert.is(cache.getRRset('www.example.com.', A)?.ttlSec, 1);
  clock.advanceMs(1);
  assert.is(cache.getRRset('www.example.com.', A), undefined);
  const st = cache.stats();
  assert.equal([st.hits, st.misses], [3, 3]);
});

s('duplicate rdata is stored once; the cache holds its own copy of the bytes', () => {
  const { cache } = make();
  const input = aSet('dup.example.', 300, 7, 7, 8);
  cache.putRRset(input, Trust.AnswerAuth);
  (input.rdatas[0] as Buffer)[3] = 99;
  assert.equal(last(cache.getRRset('dup.example.', A)?.rdatas), [7, 8]);
});

s('TTL clamps: min and max apply to positive data; TTL 0 is accepted but not cached without a minimum', () => {
  const { cache } = make({ minTtlSec: 0, maxTtlSec: 3600 });
  cache.putRRset(aSet('high.example.', 604_800), Trust.AnswerAuth);
  assert.is(cache.getRRset('high.example.', A)?.ttlSec, 3600);
  assert.ok(cache.putRRset(aSet('zero.example.', 0), Trust.AnswerAuth));
  assert.is(cache.getRRset('zero.example.', A), undefined);
  assert.ok(cache.putRRset(aSet('neg.example.', 0x80000000), Trust.AnswerAuth), 'top bit set counts as 0 (RFC 2181 s8)');
  assert.is(cache.getRRset('neg.example.', A), undefined);
  assert.is(cache.clampTtl(0), 0);
  assert.is(cache.stats().entries, 1);
});

s('cache-min-ttl raises every positive TTL, 0 and top-bit ones included, as Unbound does', () => {
  const { cache } = make({ minTtlSec: 60, maxTtlSec: 3600 });
  cache.putRRset(aSet('low.example.', 5), Trust.AnswerAuth);
  assert.is(cache.getRRset('low.example.', A)?.ttlSec, 60);
  assert.ok(cache.putRRset(aSet('zero.example.', 0), Trust.AnswerAuth));
  assert.is(cache.getRRset('zero.example.', A)?.ttlSec, 60);
  assert.ok(cache.putRRset(aSet('neg.example.', 0x80000000), Trust.AnswerAuth));
  assert.is(cache.getRRset('neg.example.', A)?.ttlSec, 60);
  assert.is(cache.clampTtl(0), 60, 'fresh answers carry the raised TTL too');
  assert.is(cache.stats().entries, 3);
});

s('credibility: glue never replaces an unexpired authoritative answer', () => {
  const { cache } = make();
  assert.ok(cache.putRRset(aSet('ns1.example.', 3600, 1), Trust.AnswerAuth));
  assert.not.ok(cache.putRRset(aSet('ns1.example.', 172_800, 66), Trust.Glue));
  assert.not.ok(cache.putRRset(aSet('ns1.example.', 172_800, 66), Trust.AnswerNonAuth));
  const got = cache.getRRset('ns1.example.', A);
  assert.equal(last(got?.rdatas), [1]);
  assert.is(got?.trust, Trust.AnswerAuth);
  assert.is(got?.ttlSec, 3600);
});

s('credibility: an authoritative answer replaces glue; equal trust replaces; expired data yields', () => {
  const { cache, clock } = make();
  cache.putRRset(aSet('ns1.example.', 172_800, 66), Trust.Glue);
  assert.ok(cache.putRRset(aSet('ns1.example.', 300, 1), Trust.AnswerAuth));
  assert.equal(last(cache.getRRset('ns1.example.', A)?.rdatas), [1]);
  assert.ok(cache.putRRset(aSet('ns1.example.', 300, 2), Trust.AnswerAuth), 'equal trust, new data');
  assert.equal(last(cache.getRRset('ns1.example.', A)?.rdatas), [2]);
  clock.advanceSec(300);
  assert.ok(cache.putRRset(aSet('ns1.example.', 100, 3), Trust.Glue), 'expired entries are replaced by anything');
  assert.is(cache.getRRset('ns1.example.', A)?.trust, Trust.Glue);
  assert.ok(cache.putRRset(aSet('ns1.example.', 100, 3), Trust.Local));
  assert.not.ok(cache.putRRset(aSet('ns1.example.', 100, 4), Trust.AnswerAuth), 'local data outranks everything');
});

s('same rdata with equal trust refreshes the TTL and keeps the hit count', () => {
  const { cache, clock } = make();
  cache.putRRset(aSet('r.example.', 300, 1, 2), Trust.AnswerAuth);
  cache.getRRset('r.example.', A);
  clock.advanceSec(200);
  assert.ok(cache.putRRset(aSet('r.example.', 300, 2, 1), Trust.AnswerAuth));
  const got = cache.getRRset('r.example.', A);
  assert.is(got?.ttlSec, 300);
  assert.is(got?.hits, 2);
});

s('NXDOMAIN answers every type of the name, not names below it', () => {
  const { cache } = make();
  cache.putNegative('nxdomain', 'Gone.Example.', A, soa('example.', 3600, 900), 3600);
  for (const t of [A, AAAA, MX, TXT]) {
    const neg = cache.getNegative('gone.example.', t);
    assert.is(neg?.kind, 'nxdomain', `type ${t}`);
    assert.is(neg?.ttlSec, 900);
    assert.is(neg?.soa?.name, 'example.');
  }
  assert.is(cache.getNegative('sub.gone.example.', A), undefined, 'no RFC 8020 inference');
  assert.is(cache.getNegative('example.', A), undefined);
});

s('NODATA is per type', () => {
  const { cache } = make();
  cache.putNegative('nodata', 'mail.example.', AAAA, soa('example.', 3600, 600), 3600);
  const neg = cache.getNegative('MAIL.example.', AAAA);
  assert.is(neg?.kind, 'nodata');
  assert.is(neg?.type, AAAA);
  assert.is(cache.getNegative('mail.example.', A), undefined);
});

s('negative TTL: min(SOA TTL, SOA MINIMUM, caller bound), capped by maxNegativeTtlSec', () => {
  const { cache, clock } = make({ maxNegativeTtlSec: 1800 });
  cache.putNegative('nxdomain', 'a.example.', A, soa('example.', 3600, 900), 86_400);
  assert.is(cache.getNegative('a.example.', A)?.ttlSec, 900, 'MINIMUM wins');
  cache.putNegative('nxdomain', 'b.example.', A, soa('example.', 120, 900), 86_400);
  assert.is(cache.getNegative('b.example.', A)?.ttlSec, 120, 'SOA TTL wins');
  cache.putNegative('nxdomain', 'c.example.', A, soa('example.', 86_400, 86_400), 86_400);
  assert.is(cache.getNegative('c.example.', A)?.ttlSec, 1800, 'capped');
  cache.putNegative('nodata', 'd.example.', A, null, 30);
  assert.is(cache.getNegative('d.example.', A)?.ttlSec, 30, 'no SOA: the caller bound');
  assert.is(cache.getNegative('d.example.', A)?.soa, null);
  cache.putNegative('nxdomain', 'e.example.', A, soa('example.', 3600, 0), 3600);
  assert.is(cache.getNegative('e.example.', A), undefined, 'MINIMUM 0: not cached');
  clock.advanceSec(120);
  assert.is(cache.getNegative('b.example.', A), undefined, 'expired');
  assert.is(cache.getNegative('a.example.', A)?.ttlSec, 780);
});

s('positive and negative data for the same name displace each other sensibly', () => {
  const { cache } = make();
  cache.putNegative('nxdomain', 'new.example.', A, soa('example.', 300, 300), 300);
  cache.putNegative('nodata', 'new.example.', AAAA, soa('example.', 300, 300), 300);
  cache.putRRset(aSet('new.example.', 300, 5), Trust.Glue);
  assert.is(cache.getNegative('new.example.', A)?.kind, 'nxdomain', 'glue does not prove existence');
  cache.putRRset(aSet('new.example.', 300, 5), Trust.AnswerAuth);
  assert.is(cache.getNegative('new.example.', A), undefined, 'an answer removes the NXDOMAIN');
  assert.is(cache.getNegative('new.example.', AAAA)?.kind, 'nodata', 'NODATA of another type stays');
  cache.putNegative('nodata', 'new.example.', A, soa('example.', 300, 300), 300);
  assert.is(cache.getRRset('new.example.', A), undefined, 'NODATA replaces the rrset of its type');
  cache.putRRset(aSet('local.example.', 300, 5), Trust.Local);
  cache.putNegative('nodata', 'local.example.', A, soa('example.', 300, 300), 300);
  assert.ok(cache.getRRset('local.example.', A), 'local data is never displaced');
});

s('stale window: served only with allowStale, flagged, TTL 0; unusable afterwards', () => {
  const { cache, clock } = make({ staleTtlSec: 3600 });
  cache.putRRset(aSet('s.example.', 60, 1), Trust.AnswerAuth);
  cache.putNegative('nxdomain', 'n.example.', A, soa('example.', 60, 60), 60);
  clock.advanceSec(60);
  assert.is(cache.getRRset('s.example.', A), undefined);
  const stale = cache.getRRset('s.example.', A, 1, { allowStale: true });
  assert.ok(stale);
  assert.is(stale.stale, true);
  assert.is(stale.ttlSec, 0);
  assert.equal(last(stale.rdatas), [1]);
  assert.is(cache.getNegative('n.example.', MX), undefined);
  const negStale = cache.getNegative('n.example.', MX, { allowStale: true });
  assert.is(negStale?.stale, true);
  assert.is(negStale?.ttlSec, 0);
  assert.is(cache.stats().staleServed, 2);
  clock.advanceSec(3600);
  assert.is(cache.getRRset('s.example.', A, 1, { allowStale: true }), undefined);
  assert.is(cache.getNegative('n.example.', MX, { allowStale: true }), undefined);
  assert.is(cache.stats().entries, 0, 'unusable entries are dropped when met');
});

s('stale window 0: expired is gone', () => {
  const { cache, clock } = make({ staleTtlSec: 0 });
  cache.putRRset(aSet('s.example.', 60, 1), Trust.AnswerAuth);
  clock.advanceSec(60);
  assert.is(cache.getRRset('s.example.', A, 1, { allowStale: true }), undefined);
});

s('findZoneCut: deepest unexpired NS at or above the name', () => {
  const { cache, clock } = make({ staleTtlSec: 3600 });
  cache.putRRset(nsSet('.', 518_400, 'a.root-servers.net.'), Trust.AuthorityAuth);
  cache.putRRset(nsSet('com.', 172_800, 'a.gtld-servers.net.'), Trust.AuthorityNonAuth);
  cache.putRRset(nsSet('Example.com.', 600, 'ns1.example.com.', 'ns2.example.com.'), Trust.AuthorityNonAuth);
  const cut = cache.findZoneCut('www.EXAMPLE.com.');
  assert.is(cut?.zone, 'Example.com.');
  assert.is(cut?.ns.rdatas.length, 2);
  assert.is(cache.findZoneCut('example.com.')?.zone, 'Example.com.', 'at the name itself');
  assert.is(cache.findZoneCut('www.xexample.com.')?.zone, 'com.');
  assert.is(cache.findZoneCut('www.example.org.')?.zone, '.');
  clock.advanceSec(600);
  assert.is(cache.findZoneCut('www.example.com.')?.zone, 'com.', 'stale NS is not used to iterate');
});

s('findZoneCut walks escaped labels correctly', () => {
  const { cache } = make();
  cache.putRRset(nsSet('example.', 600, 'ns.example.'), Trust.AuthorityAuth);
  cache.putRRset(nsSet('b.example.', 600, 'ns.b.example.'), Trust.AuthorityAuth);
  // One label "a.b" under example., not a name under b.example.
  assert.is(cache.findZoneCut('a\\.b.example.')?.zone, 'example.');
  assert.is(cache.findZoneCut('x.a\\.b.example.')?.zone, 'example.');
  assert.is(cache.findZoneCut('x\\046b.example.')?.zone, 'example.');
  assert.is(cache.findZoneCut('x.b.example.')?.zone, 'b.example.');
  const { cache: empty } = make();
  assert.is(empty.findZoneCut('www.example.'), undefined);
});

s('flushName removes all types and negatives of exactly that name; flushZone the subtree', () => {
  const { cache } = make();
  cache.putRRset(aSet('www.example.', 300), Trust.AnswerAuth);
  cache.putRRset({ ...aSet('www.example.', 300), type: AAAA, rdatas: [Buffer.alloc(16)] }, Trust.AnswerAuth);
  cache.putNegative('nodata', 'www.example.', MX, null, 300);
  cache.putRRset(aSet('a.www.example.', 300), Trust.AnswerAuth);
  cache.putRRset(aSet('example.', 300), Trust.AnswerAuth);
  cache.putRRset(aSet('xexample.', 300), Trust.AnswerAuth);
  cache.putNegative('nxdomain', 'gone.example.', A, null, 300);
  assert.is(cache.flushName('WWW.example.'), 3);
  assert.ok(cache.getRRset('a.www.example.', A));
  assert.is(cache.flushZone('example.'), 3);
  assert.is(cache.stats().entries, 1);
  assert.ok(cache.getRRset('xexample.', A));
  cache.flushAll();
  assert.equal([cache.stats().entries, cache.stats().bytes], [0, 0]);
});

s('dump lists every entry with kind, TTL and trust', () => {
  const { cache } = make();
  cache.putRRset(aSet('d.example.', 300, 1), Trust.AnswerAuth);
  cache.putNegative('nxdomain', 'nx.example.', TXT, null, 60);
  cache.putNegative('nodata', 'd.example.', MX, null, 60);
  const rows = [...cache.dump()];
  assert.equal(rows.map((r) => [r.name, r.kind, r.type, r.ttlSec]), [
    ['d.example.', 'rrset', A, 300],
    ['nx.example.', 'nxdomain', TXT, 60],
    ['d.example.', 'nodata', MX, 60],
  ]);
  assert.is(rows[0]?.trust, Trust.AnswerAuth);
  assert.equal(last(rows[0]?.rdatas), [1]);
  assert.is(new Set(rows.map((r) => r.key)).size, 3, 'distinct keys');
});

s('byte budget: expired entries go first, then least recently used', () => {
  const { cache, clock } = make({ maxBytes: 40_000 });
  // Short-lived entries first (the LRU end), then long-lived ones.
  for (let i = 0; i < 10; i++) cache.putRRset(aSet(`short${i}.example.`, 10, 1), Trust.AnswerAuth);
  for (let i = 0; i < 20; i++) cache.putRRset(aSet(`long${i}.example.`, 3600, 1), Trust.AnswerAuth);
  const perEntry = cache.stats().bytes / cache.stats().entries;
  // Measured on Node 20: about 690 bytes of heap per one-address RRset (rrset-cache.ts).
  assert.ok(perEntry > 550 && perEntry < 850, `cost per small entry is realistic (${perEntry})`);
  clock.advanceSec(10);
  cache.getRRset('long0.example.', A); // promote long0 to most recently used
  let n = 0;
  while (cache.stats().evictions === 0 && n < 1000) cache.putRRset(aSet(`fill${n++}.example.`, 3600, 1), Trust.AnswerAuth);
  // Fill until the expired ones must all be gone, then a bit further for LRU.
  for (let i = 0; i < 20; i++) cache.putRRset(aSet(`more${i}.example.`, 3600, 1), Trust.AnswerAuth);
  assert.ok(cache.stats().bytes <= 40_000);
  for (let i = 0; i < 10; i++) assert.is(cache.getRRset(`short${i}.example.`, A, 1, { allowStale: true }), undefined);
  assert.ok(cache.getRRset('long0.example.', A), 'recently used survives');
  assert.is(cache.getRRset('long1.example.', A), undefined, 'least recently used live entry went');
  assert.ok(cache.getRRset(`more19.example.`, A));
  assert.ok(cache.stats().evictions >= 12);
});

s('byte budget: a negative answer that is looked up is recently used (NXDOMAIN and NODATA alike)', () => {
  const { cache } = make({ maxBytes: 40_000 });
  cache.putNegative('nxdomain', 'nx-used.example.', A, soa('example.', 3600, 3600), 3600);
  cache.putNegative('nodata', 'nodata-used.example.', AAAA, soa('example.', 3600, 3600), 3600);
  cache.putNegative('nxdomain', 'nx-unused.example.', A, soa('example.', 3600, 3600), 3600);
  for (let i = 0; i < 20; i++) cache.putRRset(aSet(`long${i}.example.`, 3600, 1), Trust.AnswerAuth);
  assert.ok(cache.getNegative('nx-used.example.', A));
  assert.ok(cache.getNegative('nodata-used.example.', AAAA));
  let n = 0;
  while (cache.stats().evictions < 2 && n < 1000) cache.putRRset(aSet(`fill${n++}.example.`, 3600, 1), Trust.AnswerAuth);
  assert.ok(n > 0 && n < 1000, `filled until two entries went (${n} entries)`);
  assert.is(cache.getNegative('nx-unused.example.', A), undefined, 'the negative answer nobody asked for went first');
  assert.ok(cache.getNegative('nx-used.example.', A), 'looked-up NXDOMAIN survives');
  assert.ok(cache.getNegative('nodata-used.example.', AAAA), 'looked-up NODATA survives');
  assert.is(cache.getRRset('long0.example.', A), undefined, 'older RRsets went before them');
});

s('bounded fill never exceeds the budget', () => {
  const { cache, clock } = make({ maxBytes: 50_000, staleTtlSec: 30 });
  for (let i = 0; i < 5000; i++) {
    cache.putRRset(aSet(`h${i}.example.`, 1 + (i % 120), i & 0xff), Trust.AnswerAuth);
    if (i % 3 === 0) cache.putNegative('nxdomain', `nx${i}.example.`, A, soa('example.', 60, 60), 60);
    if (i % 100 === 0) clock.advanceSec(7);
    assert.ok(cache.stats().bytes <= 50_000);
  }
  assert.ok(cache.stats().entries > 50);
});

s.run();
