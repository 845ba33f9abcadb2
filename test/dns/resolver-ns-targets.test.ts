// Resolver scenarios for zones whose name servers are named only out of bailiwick, without glue:
// the iterator must look up the addresses of further NS names when the servers it found first
// refuse, time out or do not exist, and must find servers that have only an IPv6 address, as
// Unbound does (its target queries go on until a server answers, for A and AAAA).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { RRType, Rcode } from '../../src/dns/wire/types.js';
import { startHarness, type Harness } from '../helpers/resolver-harness.js';
import { standardTree, type HierarchySpec } from '../helpers/fake-hierarchy.js';
import type { Behaviour } from '../helpers/fake-authority.js';

const A = (r: { records: Array<{ data: unknown }> }): unknown[] => r.records.map((x) => x.data);

/**
 * The standard tree plus host.net. (127.53.31.1), which holds the addresses of the name servers
 * of multi.com.: ns-first.host.net -> 127.53.31.2 (behaving as `first`), ns-good.host.net ->
 * 127.53.31.4 (answers), and ns-v6.host.net with only the AAAA ::1 (answers). com. delegates
 * multi.com. to the NS names given, in that order, without glue (none could be in bailiwick).
 */
function tree(nsNames: string[], first: Behaviour): HierarchySpec {
  const spec = standardTree();
  spec.zones['net.']!.records.push('host 172800 IN NS ns.host.net.', 'ns.host 172800 IN A 127.53.31.1');
  spec.zones['host.net.'] = {
    records: [
      '@ 3600 IN SOA ns.host.net. hostmaster.host.net. 1 7200 3600 1209600 300',
      '@ 3600 IN NS ns.host.net.',
      'ns 300 IN A 127.53.31.1',
      'ns-first 300 IN A 127.53.31.2',
      'ns-good 300 IN A 127.53.31.4',
      'ns-v6 300 IN AAAA ::1',
    ],
  };
  spec.zones['com.']!.records.push(...nsNames.map((n) => `multi 172800 IN NS ${n}.host.net.`));
  spec.zones['multi.com.'] = {
    records: [
      '@ 3600 IN SOA ns-good.host.net. hostmaster.multi.com. 1 7200 3600 1209600 300',
      ...nsNames.map((n) => `@ 3600 IN NS ${n}.host.net.`),
      'www 300 IN A 192.0.2.90',
    ],
  };
  spec.servers.push(
    { address: '127.53.31.1', zones: ['host.net.'] },
    { address: '127.53.31.2', zones: ['multi.com.'], behaviour: first },
    { address: '127.53.31.4', zones: ['multi.com.'] },
    { address: '::1', zones: ['multi.com.'] },
  );
  return spec;
}

const s = suite('dns/resolver: out-of-bailiwick name servers without glue');
let hx: Harness | undefined;
s.after.each(async () => {
  await hx?.stop();
  hx = undefined;
});

s('the first NS name leads to a server that refuses: the next NS name is looked up and its server answers', async () => {
  hx = await startHarness({ spec: tree(['ns-first', 'ns-good'], 'refused') });
  const r = await hx.stack.resolver.resolve('www.multi.com', 'A');
  assert.is(r.rcode, Rcode.NOERROR, r.failure ?? '');
  assert.equal(A(r), ['192.0.2.90']);
  assert.is(hx.counting.countFor('127.53.31.2'), 1, 'the refusing server was asked once');
  assert.is(hx.counting.countFor('127.53.31.4'), 1, 'the second server was found and asked');
});

s('the first NS name leads to a server that never answers: the next NS name is looked up before asking it again', async () => {
  hx = await startHarness({ spec: tree(['ns-first', 'ns-good'], 'drop') });
  const r = await hx.stack.resolver.resolve('www.multi.com', 'A');
  assert.is(r.rcode, Rcode.NOERROR, r.failure ?? '');
  assert.equal(A(r), ['192.0.2.90']);
  assert.is(hx.counting.countFor('127.53.31.2'), 1, 'the silent server was not asked round after round');
});

s('every NS name leads to a refusing server: SERVFAIL once each was looked up and asked', async () => {
  const spec = tree(['ns-first', 'ns-good'], 'refused');
  spec.servers.find((x) => x.address === '127.53.31.4')!.behaviour = 'refused';
  hx = await startHarness({ spec });
  const r = await hx.stack.resolver.resolve('www.multi.com', 'A');
  assert.is(r.rcode, Rcode.SERVFAIL);
  assert.is(hx.counting.countFor('127.53.31.2'), 1);
  assert.is(hx.counting.countFor('127.53.31.4'), 1);
});

s('an NS name with only an IPv6 address is found through its AAAA record when IPv6 is in use', async () => {
  hx = await startHarness({ spec: tree(['ns-v6'], 'normal'), flags: { 'do-ip6': true } });
  const r = await hx.stack.resolver.resolve('www.multi.com', 'A');
  assert.is(r.rcode, Rcode.NOERROR, r.failure ?? '');
  assert.equal(A(r), ['192.0.2.90']);
  assert.is(hx.counting.countForName('ns-v6.host.net.', RRType.AAAA), 1);
  assert.is(hx.counting.countFor('::1'), 1);
});

s('with IPv6 not in use, an NS name with only an IPv6 address is not asked for it: SERVFAIL', async () => {
  hx = await startHarness({ spec: tree(['ns-v6'], 'normal') });
  const r = await hx.stack.resolver.resolve('www.multi.com', 'A');
  assert.is(r.rcode, Rcode.SERVFAIL);
  assert.is(hx.counting.countForName('ns-v6.host.net.', RRType.AAAA), 0);
  assert.is(hx.counting.countFor('::1'), 0);
});

s('an NS name with an IPv4 address is not asked for its AAAA record while its server answers', async () => {
  hx = await startHarness({ spec: tree(['ns-good', 'ns-v6'], 'normal'), flags: { 'do-ip6': true } });
  const r = await hx.stack.resolver.resolve('www.multi.com', 'A');
  assert.equal(A(r), ['192.0.2.90']);
  assert.is(hx.counting.countForName('ns-good.host.net.', RRType.AAAA), 0);
  assert.is(hx.counting.countForName('ns-v6.host.net.'), 0, 'the second NS name was not needed');
});

s('a last-resort answer in hand is taken when looking up further NS names reaches the sub-query limit', async () => {
  // ns-first leads to a recursive resolver: its answer is a last resort. The other NS names do not exist.
  hx = await startHarness({ spec: tree(['ns-first', 'ns-none1', 'ns-none2'], 'recursive'), flags: { 'max-subqueries': 2 } });
  const r = await hx.stack.resolver.resolve('www.multi.com', 'A');
  assert.is(r.rcode, Rcode.NOERROR, r.failure ?? '');
  assert.equal(A(r), ['192.0.2.90']);
  assert.is(hx.counting.countForName('ns-none1.host.net.'), 1, 'a further NS name was looked up');
});

s('a last-resort answer in hand is kept when looking up a further NS name runs into the deadline', async () => {
  // As above, but the other NS name is in a zone whose only server never answers: its lookup lasts
  // until the deadline, which this query's caller usually meets first (SERVFAIL); the answer in hand
  // is then cached for the next query.
  const spec = tree(['ns-first'], 'recursive');
  spec.zones['net.']!.records.push('deadhost 172800 IN NS ns.deadhost.net.', 'ns.deadhost 172800 IN A 127.53.31.9');
  spec.zones['deadhost.net.'] = { records: ['@ 3600 IN SOA ns.deadhost.net. hostmaster.deadhost.net. 1 7200 3600 1209600 300', '@ 3600 IN NS ns.deadhost.net.', 'ns 300 IN A 127.53.31.9', 'ns-x 300 IN A 127.53.31.4'] };
  spec.zones['com.']!.records.push('multi 172800 IN NS ns-x.deadhost.net.');
  spec.servers.push({ address: '127.53.31.9', zones: ['deadhost.net.'], behaviour: 'drop' });
  hx = await startHarness({ spec, flags: { 'client-deadline-ms': 1000 } });
  const first = await hx.stack.resolver.resolve('www.multi.com', 'A');
  assert.ok(first.rcode === Rcode.SERVFAIL || A(first)[0] === '192.0.2.90', `rcode ${first.rcode}`);
  assert.ok(hx.counting.countForName('ns-x.deadhost.net.') >= 1, 'the further NS name was looked up');
  await new Promise((resolve) => setTimeout(resolve, 200)); // the resolution ends at the same deadline
  const again = await hx.stack.resolver.resolve('www.multi.com', 'A');
  assert.is(again.rcode, Rcode.NOERROR, again.failure ?? '');
  assert.equal(A(again), ['192.0.2.90']);
  assert.is(again.source, 'cache');
});

s.run();
