// Scenario tests: DnsListChecker and steps 7-9 through the real in-process resolver against a fake
// rbldnsd-like tree on 127.84.0.0/16, case by case against postscreen's postscreen_dnsbl_sites
// semantics (postconf(5), postscreen_dnsbl.c): per-entry filters and weights on one shared lookup,
// one weight per entry however many A records match, error codes, IPv6 nibble names.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createDnsblCheck } from '../../src/policy/checks/dns-list-checks.js';
import { DnsListChecker, dnsListQueryName, type DnsListCheckerOptions } from '../../src/policy/dns-lists.js';
import type { CheckContext } from '../../src/policy/types.js';
import { systemClock } from '../../src/util/clock.js';
import { createSilentLogger } from '../../src/util/logger.js';
import type { HierarchySpec } from '../helpers/fake-hierarchy.js';
import { startHarness, type Harness } from '../helpers/resolver-harness.js';
import { loggedHook } from '../helpers/hook-errors.js';

const s = suite('policy/dns-lists: postscreen dnsbl_sites semantics through the resolver');
let hx: Harness;

const V6 = '2001:db8::25';
/** `name` relative to `zone`: the query-name prefix for an address. */
const rel = (ip: string, zone: string): string => dnsListQueryName(ip, zone).slice(0, -(zone.length + 2));

function tree(): HierarchySpec {
  const soa = (z: string): string => `@ 3600 IN SOA ns.${z}. hostmaster.${z}. 1 600 300 86400 60`;
  const leaf = (zone: string, address: string, records: string[]) => ({
    records: [soa(zone), `@ 3600 IN NS ns.${zone}.`, `ns 3600 IN A ${address}`, ...records],
  });
  return {
    zones: {
      '.': {
        records: [
          '@ 86400 IN SOA a.root.org. h.root.org. 1 7200 3600 1209600 300',
          '@ 518400 IN NS a.root.org.',
          'a.root.org. 518400 IN A 127.84.0.1',
          'org. 172800 IN NS ns.org.',
          'ns.org. 172800 IN A 127.84.1.1',
        ],
      },
      'org.': {
        records: [
          soa('org'), '@ 172800 IN NS ns.org.', 'ns 172800 IN A 127.84.1.1',
          'a.root 172800 IN A 127.84.0.1',
          'bl 3600 IN NS ns.bl.org.', 'ns.bl 3600 IN A 127.84.2.1',
          'wl 3600 IN NS ns.wl.org.', 'ns.wl 3600 IN A 127.84.2.2',
          'sh 3600 IN NS ns.sh.org.', 'ns.sh 3600 IN A 127.84.2.3',
        ],
      },
      // A combined list in the style of zen: several return codes for one address.
      'bl.org.': leaf('bl.org', '127.84.2.1', [
        '2.0.0.127 300 IN A 127.0.0.2',
        '10.2.0.192 300 IN A 127.0.0.2', '10.2.0.192 300 IN A 127.0.0.3', '10.2.0.192 300 IN A 127.0.0.4',
        '10.2.0.192 300 IN TXT "bl.org says 192.0.2.10"',
        '11.2.0.192 300 IN A 127.0.0.10', '11.2.0.192 300 IN A 127.0.0.11',
        '12.2.0.192 300 IN A 127.0.5.9',
        `${rel(V6, 'bl.org')} 300 IN A 127.0.0.2`,
      ]),
      // dnswl.org style: 127.0.<category>.<trust 0..3>; 127.0.0.255 is its "over the limit" error.
      'wl.org.': leaf('wl.org', '127.84.2.2', [
        '2.0.0.127 300 IN A 127.0.10.0',
        '10.2.0.192 300 IN A 127.0.15.2',
        '13.2.0.192 300 IN A 127.0.0.255',
      ]),
      // Spamhaus style refusal for every address it is asked about.
      'sh.org.': leaf('sh.org', '127.84.2.3', [
        '2.0.0.127 300 IN A 127.0.0.2',
        '*.2.0.192 300 IN A 127.255.255.254',
      ]),
    },
    servers: [
      { address: '127.84.0.1', zones: ['.'] },
      { address: '127.84.1.1', zones: ['org.'] },
      { address: '127.84.2.1', zones: ['bl.org.'], behaviour: 'nxdomain-ent' },
      { address: '127.84.2.2', zones: ['wl.org.'], behaviour: 'nxdomain-ent' },
      { address: '127.84.2.3', zones: ['sh.org.'], behaviour: 'nxdomain-ent' },
    ],
  };
}

s.before(loggedHook(async () => {
  hx = await startHarness({ spec: tree(), listZones: ['bl.org.', 'wl.org.', 'sh.org.'] });
}));
s.after(async () => {
  await hx.stop();
});

function checker(opts: Partial<DnsListCheckerOptions>): DnsListChecker {
  return new DnsListChecker({ resolve: hx.stack.resolver.resolve, clock: systemClock, logger: createSilentLogger(), lookupBudgetMs: 2000, ...opts });
}

function ctx(clientAddress: string): CheckContext {
  const now = systemClock.nowMs();
  return { request: { client_address: clientAddress }, clientAddress, deadlineAtMs: now + 5000, nowMs: now, record: true, memo: new Map() };
}

s('one zone listed with several filters: each matching entry adds its weight, from one A lookup', async () => {
  const c = checker({ blocklists: ['bl.org=127.0.0.[2..3]*3', 'bl.org=127.0.0.4*2', 'bl.org=127.0.0.[10;11]*5'], blockThreshold: 5 });
  const t = await c.tier(ctx('192.0.2.10'), 'block');
  assert.equal(t.results.map((r) => r.verdict), ['listed', 'listed', 'not-listed']);
  assert.equal(t.results[0]?.matched, ['127.0.0.2', '127.0.0.3'], 'both codes match the first entry');
  assert.is(t.score, 5, 'the first entry counts once (3) although two records match it, plus 2');
  assert.ok(t.reached);
  const q = '10.2.0.192.bl.org.';
  assert.is(hx.counting.countForQuestion('127.84.2.1', q, 1), 1, 'one A query for the three entries');
  assert.is(hx.counting.countForQuestion('127.84.2.1', q, 16), 1, 'one TXT query for the reject text');
});

s('several records matching one entry count its weight once', async () => {
  const c = checker({ blocklists: ['bl.org=127.0.0.[10..11]*2'], blockThreshold: 3 });
  const t = await c.tier(ctx('192.0.2.11'), 'block');
  assert.equal(t.results[0]?.matched, ['127.0.0.10', '127.0.0.11']);
  assert.is(t.score, 2);
  assert.not.ok(t.reached);
});

s('no filter: any 127.0.0.0/8 answer counts, also outside 127.0.0.x', async () => {
  const c = checker({ blocklists: ['bl.org'] });
  const t = await c.tier(ctx('192.0.2.12'), 'block');
  assert.equal(t.results[0]?.matched, ['127.0.5.9']);
  assert.ok(t.reached);
  const clean = await c.tier(ctx('192.0.2.99'), 'block');
  assert.is(clean.results[0]?.verdict, 'not-listed');
  assert.is(clean.results[0]?.rcode, 3, 'NXDOMAIN from the list server');
});

s('weights add up across lists; a postscreen DNSWL entry (negative weight) in the DNSBL tier subtracts', async () => {
  const c = checker({ blocklists: ['bl.org*2', 'sh.org*2', 'wl.org=127.0.[0..255].[1..3]*-2'], blockThreshold: 2 });
  const t = await c.tier(ctx('192.0.2.10'), 'block');
  assert.equal(t.results.map((r) => r.verdict), ['listed', 'error', 'listed']);
  assert.is(t.score, 0, 'bl 2, Spamhaus-style refusal 0, dnswl -2');
  assert.not.ok(t.reached);
  assert.is(await createDnsblCheck(c).run(ctx('192.0.2.10')), null);
});

s('error codes: Spamhaus 127.255.255.254 and dnswl 127.0.0.255 never list, even without a filter', async () => {
  const c = checker({ blocklists: ['sh.org'], allowlists: ['wl.org'] });
  const x = ctx('192.0.2.13');
  const block = await c.tier(x, 'block');
  const allow = await c.tier(x, 'allow');
  assert.is(block.results[0]?.verdict, 'error');
  assert.match(block.results[0]?.detail ?? '', /127\.255\.255\.254/);
  assert.is(allow.results[0]?.verdict, 'error');
  assert.match(allow.results[0]?.detail ?? '', /dnswl\.org 127\.0\.0\.255/);
  assert.not.ok(block.reached || allow.reached);
});

s('DNSWL tiers take postscreen entries as written (negative weight, trust-level filter)', async () => {
  const c = checker({ trusted: ['wl.org=127.0.[0..255].[2;3]*-2'], allowlists: ['wl.org=127.0.[0..255].[0;1]*-1'] });
  const x = ctx('192.0.2.10');
  const trusted = await c.tier(x, 'trusted');
  assert.ok(trusted.reached);
  assert.is(trusted.score, 2);
  assert.not.ok((await c.tier(x, 'allow')).reached, '127.0.15.2 is trust level 2, not 0 or 1');
});

s('IPv6 client: RFC 5782 s2.4 nibble name, listed through the resolver', async () => {
  const c = checker({ blocklists: ['bl.org=127.0.0.2'] });
  const t = await c.tier(ctx(V6), 'block');
  assert.is(t.results[0]?.queryName, '5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.org.');
  assert.is(t.results[0]?.verdict, 'listed');
  const r = await createDnsblCheck(c).run(ctx(V6));
  assert.is(r?.action, `554 5.7.1 Service unavailable; Client host [${V6}] blocked using bl.org`);
});

s('answers in the resolver cache decide at once, as the lookups did; a miss waits, and each request counts once', async () => {
  const { resolveCached } = hx.stack.resolver;
  const lists = { blocklists: ['bl.org=127.0.0.[2..4]*3', 'sh.org'], allowlists: ['wl.org'] };
  const looked = checker({ ...lists });
  const cached = checker({ ...lists, resolveCached });
  const ip = '192.0.2.10';
  const first = ctx(ip);
  const viaLookup = looked.withTier(first, 'block', (t) => t);
  assert.ok(viaLookup instanceof Promise, 'without resolveCached the checker always waits');
  const lookedUp = await viaLookup;
  // Now every answer (A of three zones, TXT of the listing) is in the resolver's cache.
  const asked = hx.counting.countForQuestion('127.84.2.1', '10.2.0.192.bl.org.', 1);
  const again = ctx(ip);
  const now = cached.withTier(again, 'block', (t) => t);
  assert.not.ok(now instanceof Promise, 'decided synchronously from the cache');
  const t = now as Awaited<typeof viaLookup>;
  assert.equal(t, lookedUp, 'the same verdicts, answers, TXT and score as the lookup');
  assert.ok(t.reached);
  assert.match(t.results[0]?.txt ?? '', /bl\.org says 192\.0\.2\.10/);
  const allowNow = cached.withTier(again, 'allow', (a) => a.results[0]?.verdict);
  assert.is(allowNow, 'listed', 'every tier of the request decided by the same cached batch');
  assert.is(hx.counting.countForQuestion('127.84.2.1', '10.2.0.192.bl.org.', 1), asked, 'no query went upstream for the cached request');
  assert.equal(cached.stats().map((r) => r.queries), [1, 1, 1], 'one request counted once per list');
  assert.equal(cached.stats().map((r) => r.listed), [1, 0, 1]);
  // A client seen for the first time: nothing cached, so the tier waits for its lookups.
  const fresh = cached.withTier(ctx('192.0.2.77'), 'block', (x) => x.results.map((r) => r.verdict));
  assert.ok(fresh instanceof Promise, 'a cache miss falls back to the lookups');
  assert.equal(await fresh, ['not-listed', 'error'], 'NXDOMAIN from bl.org, the Spamhaus-style refusal from sh.org');
  const check = createDnsblCheck(cached).run(ctx(ip));
  assert.not.ok(check instanceof Promise, 'step 8 answers at once for the cached client');
  assert.match((check as { action: string } | null)?.action ?? '', /^554 5\.7\.1 .* blocked using bl\.org; bl\.org says/);
});

s.run();
