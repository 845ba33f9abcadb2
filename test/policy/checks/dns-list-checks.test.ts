// Tests for policy steps 7-9 over a DnsListChecker with a scripted resolver: verdicts, action
// texts (554 reject with list and TXT), tier isolation and the shared per-request lookups.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createDnsblCheck, createDnsListChecks, createDnswlCheck, createTrustedDnswlCheck } from '../../../src/policy/checks/dns-list-checks.js';
import { DnsListChecker, type DnsListCheckerOptions } from '../../../src/policy/dns-lists.js';
import type { CheckContext } from '../../../src/policy/types.js';
import { ManualClock } from '../../../src/util/clock.js';
import { createSilentLogger } from '../../../src/util/logger.js';
import { aAnswer, FakeListResolver, ManualTimers, txtAnswer } from '../../helpers/fake-list-resolver.js';

const s = suite('policy/checks/dns-list-checks');

function setup(opts: Partial<DnsListCheckerOptions>) {
  const clock = new ManualClock();
  const timers = new ManualTimers(clock);
  const dns = new FakeListResolver();
  const checker = new DnsListChecker({ resolve: dns.resolve, clock, timers, logger: createSilentLogger(), lookupBudgetMs: 1500, ...opts });
  const ctx = (clientAddress: string): CheckContext => ({
    request: { client_address: clientAddress }, clientAddress, deadlineAtMs: clock.nowMs() + 10_000, nowMs: clock.nowMs(), record: true, memo: new Map(),
  });
  return { dns, checker, ctx, timers };
}

const LISTS = {
  trusted: ['list.dnswl.example=127.0.[0..255].[2;3]'],
  blocklists: ['zen.example=127.0.0.[2..11]', 'bl.example*2'],
  allowlists: ['list.dnswl.example=127.0.[0..255].[0;1]'],
};

s('steps, names and order', () => {
  const { checker } = setup(LISTS);
  const checks = createDnsListChecks(checker);
  assert.equal(checks.map((c) => [c.step, c.name]), [[7, 'dnswl-trusted'], [8, 'dnsbl'], [9, 'dnswl']]);
  assert.ok(checks.every((c) => typeof c.prepare === 'function'));
});

s('step 7: a trusted DNSWL hit is DUNNO naming the list; other levels are not trusted', async () => {
  const { dns, checker, ctx } = setup(LISTS);
  dns.set('1.2.0.192.list.dnswl.example.', 'A', aAnswer('x', '127.0.15.2'));
  dns.set('2.2.0.192.list.dnswl.example.', 'A', aAnswer('x', '127.0.15.1'));
  const step7 = createTrustedDnswlCheck(checker);
  const r = await step7.run(ctx('192.0.2.1'));
  assert.is(r?.action, 'DUNNO');
  assert.match(r?.reason ?? '', /^trusted DNSWL list\.dnswl\.example=127\.0\.\[0\.\.255\]\.\[2;3\] \(127\.0\.15\.2\)$/);
  assert.is(await step7.run(ctx('192.0.2.2')), null);
});

s('step 8: DNSBL listing rejects 554 in Postfix wording with the TXT reason', async () => {
  const { dns, checker, ctx } = setup(LISTS);
  dns.set('9.2.0.192.zen.example.', 'A', aAnswer('x', '127.0.0.4'));
  dns.set('9.2.0.192.zen.example.', 'TXT', txtAnswer('x', ['https://check.example/query/ip/192.0.2.9']));
  const r = await createDnsblCheck(checker).run(ctx('192.0.2.9'));
  assert.is(r?.action, '554 5.7.1 Service unavailable; Client host [192.0.2.9] blocked using zen.example; https://check.example/query/ip/192.0.2.9');
  assert.match(r?.reason ?? '', /DNSBL zen\.example=127\.0\.0\.\[2\.\.11\] \(127\.0\.0\.4\) \(score 1 >= 1\)/);
});

s('step 8: a zone with a reply name (dnsbl-reply-name) is shown by that name, never by itself', async () => {
  const { dns, checker, ctx } = setup({ blocklists: ['S3cretKey.zen.dq.example=127.0.0.[2..11]'] });
  dns.set('9.2.0.192.s3cretkey.zen.dq.example.', 'A', aAnswer('x', '127.0.0.4'));
  const step8 = createDnsblCheck(checker, new Map([['s3cretkey.zen.dq.example', 'zen.example.org']]));
  const r = await step8.run(ctx('192.0.2.9'));
  assert.is(r?.action, '554 5.7.1 Service unavailable; Client host [192.0.2.9] blocked using zen.example.org');
  assert.not.match(r?.action ?? '', /cret/i);
});

s('step 8: without TXT, below threshold, filtered and error answers', async () => {
  const { dns, checker, ctx } = setup({ ...LISTS, blockThreshold: 2 });
  const step8 = createDnsblCheck(checker);
  dns.set('1.0.0.10.bl.example.', 'A', aAnswer('x', '127.0.0.2'));
  assert.is((await step8.run(ctx('10.0.0.1')))?.action, '554 5.7.1 Service unavailable; Client host [10.0.0.1] blocked using bl.example');
  dns.set('2.0.0.10.zen.example.', 'A', aAnswer('x', '127.0.0.2'));
  assert.is(await step8.run(ctx('10.0.0.2')), null, 'weight 1 < threshold 2');
  dns.set('3.0.0.10.zen.example.', 'A', aAnswer('x', '127.0.0.2'));
  dns.set('3.0.0.10.bl.example.', 'A', aAnswer('x', '127.255.255.254'));
  assert.is(await step8.run(ctx('10.0.0.3')), null, 'error code never adds weight');
  dns.set('4.0.0.10.zen.example.', 'A', aAnswer('x', '127.0.0.2'));
  dns.set('4.0.0.10.bl.example.', 'A', aAnswer('x', '127.0.0.3'));
  const both = await step8.run(ctx('10.0.0.4'));
  assert.match(both?.action ?? '', /blocked using bl\.example$/, 'names the list with the largest weight (2), as postscreen does');
  assert.match(both?.reason ?? '', /score 3 >= 2/);
});

s('step 8 names the list with the largest contribution, as postscreen does; equals in config order', async () => {
  const { dns, checker, ctx } = setup({ blocklists: ['wl.example*-5', 'one.example', 'three.example*3', 'also-three.example*3'], blockThreshold: 1 });
  const step8 = createDnsblCheck(checker);
  for (const zone of ['wl.example', 'one.example', 'three.example', 'also-three.example']) {
    dns.set(`1.2.0.192.${zone}.`, 'A', aAnswer('x', '127.0.0.2'));
    dns.set(`1.2.0.192.${zone}.`, 'TXT', txtAnswer('x', [`${zone} lists it`]));
  }
  const r = await step8.run(ctx('192.0.2.1'));
  assert.is(r?.action, '554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using three.example; three.example lists it');
  assert.match(r?.reason ?? '', /score 2 >= 1/);
});

s('step 8 IPv6 client keeps Postfix client_address form in the reply', async () => {
  const { dns, checker, ctx } = setup(LISTS);
  const name = '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.example.';
  dns.set(name, 'A', aAnswer(name, '127.0.0.2'));
  const r = await createDnsblCheck(checker).run(ctx('2001:db8::1'));
  assert.is(r?.action, '554 5.7.1 Service unavailable; Client host [2001:db8::1] blocked using bl.example');
});

s('step 9: second-tier DNSWL skips greylisting', async () => {
  const { dns, checker, ctx } = setup(LISTS);
  dns.set('7.2.0.192.list.dnswl.example.', 'A', aAnswer('x', '127.0.5.1'));
  const c = ctx('192.0.2.7');
  assert.is(await createTrustedDnswlCheck(checker).run(c), null);
  assert.is(await createDnsblCheck(checker).run(c), null);
  const r = await createDnswlCheck(checker).run(c);
  assert.is(r?.action, 'DUNNO');
  assert.match(r?.reason ?? '', /^DNSWL list\.dnswl\.example=127\.0\.\[0\.\.255\]\.\[0;1\] \(127\.0\.5\.1\), greylisting skipped$/);
  assert.is(c.memo.size, 1, 'one shared lookup batch in the request memo');
});

s('prepare of any step starts every tier; a step awaits only its own', async () => {
  const { dns, checker, ctx, timers } = setup(LISTS);
  dns.set('5.2.0.192.bl.example.', 'A', 'hang');
  dns.set('5.2.0.192.list.dnswl.example.', 'A', aAnswer('x', '127.0.9.3'));
  const c = ctx('192.0.2.5');
  const checks = createDnsListChecks(checker);
  for (const ch of checks) ch.prepare?.(c);
  assert.is(dns.calls.length, 3, 'dnswl (shared by two tiers), zen, bl');
  const r = await checks[0]?.run(c);
  assert.is(r?.action, 'DUNNO', 'step 7 decided while a DNSBL still hangs');
  const p8 = checks[1]?.run(c);
  await timers.advance(1500);
  assert.is(await p8, null, 'the hanging DNSBL counts as not listed after the budget');
  dns.releaseHanging();
});

s('no lists configured: every step is a no-op without DNS traffic', async () => {
  const { dns, checker, ctx } = setup({});
  for (const ch of createDnsListChecks(checker)) assert.is(await ch.run(ctx('192.0.2.1')), null);
  assert.is(dns.calls.length, 0);
});

s.run();
