// Tests for DnsListChecker with a scripted resolver and manual timers: query names, filters, error
// answers, weights, parallel lookups under one budget, TXT, stats, lookupAll and self tests.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DnsListChecker, dnsListErrorMeaning, dnsListQueryName, type DnsListCheckerOptions } from '../../src/policy/dns-lists.js';
import type { CheckContext } from '../../src/policy/types.js';
import { ManualClock } from '../../src/util/clock.js';
import { createSilentLogger } from '../../src/util/logger.js';
import { aAnswer, captureLogger, FakeListResolver, flush, ManualTimers, nxdomain, servfail, txtAnswer } from '../helpers/fake-list-resolver.js';

const s = suite('policy/dns-lists');

function setup(opts: Partial<DnsListCheckerOptions> = {}) {
  const clock = new ManualClock();
  const timers = new ManualTimers(clock);
  const dns = new FakeListResolver();
  const checker = new DnsListChecker({
    resolve: dns.resolve, clock, timers, logger: createSilentLogger(), lookupBudgetMs: 2000, ...opts,
  });
  const ctx = (clientAddress: string): CheckContext => ({
    request: { client_address: clientAddress }, clientAddress, deadlineAtMs: clock.nowMs() + 10_000,
    nowMs: clock.nowMs(), record: true, memo: new Map(),
  });
  return { clock, timers, dns, checker, ctx };
}

s('query names: IPv4 reversed, IPv6 32 nibbles (RFC 5782 s2.4), mapped IPv6 as IPv4', () => {
  assert.is(dnsListQueryName('192.0.2.99', 'zen.spamhaus.org'), '99.2.0.192.zen.spamhaus.org.');
  assert.is(
    dnsListQueryName('2001:db8:1:2:3:4:567:89ab', 'Bl.Example.ORG.'),
    'b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.example.org.',
  );
  assert.is(dnsListQueryName('::ffff:192.0.2.99', 'bl.example.org'), '99.2.0.192.bl.example.org.');
  assert.is(dnsListQueryName('::1', 'x.example').split('.').length, 32 + 3);
  assert.throws(() => dnsListQueryName('unknown', 'x.example'), /not an IP address/);
});

s('listed, filtered, NXDOMAIN; allowStale false and a deadline on every call', async () => {
  const { dns, checker, ctx } = setup({ blocklists: ['a.example', 'b.example=127.0.0.2', 'c.example'] });
  dns.set('4.3.2.1.a.example.', 'A', aAnswer('4.3.2.1.a.example.', '127.0.0.3'));
  dns.set('4.3.2.1.b.example.', 'A', aAnswer('4.3.2.1.b.example.', '127.0.0.3'));
  const t = await checker.tier(ctx('1.2.3.4'), 'block');
  assert.equal(t.results.map((r) => r.verdict), ['listed', 'not-listed', 'not-listed']);
  assert.match(t.results[1]?.detail ?? '', /does not match the filter/);
  assert.is(t.results[2]?.rcode, 3);
  assert.is(t.score, 1);
  assert.ok(t.reached);
  for (const c of dns.calls) {
    assert.is(c.opts?.allowStale, false);
    assert.ok((c.opts?.deadlineMs ?? 0) > 0 && (c.opts?.deadlineMs ?? 0) <= 2000);
  }
});

s('IPv6 and loopback clients are looked up too', async () => {
  const { dns, checker, ctx } = setup({ blocklists: ['bl.example'] });
  await checker.tier(ctx('2001:db8::1'), 'block');
  await checker.tier(ctx('127.0.0.1'), 'block');
  assert.equal(dns.calls.map((c) => c.name), [
    '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.example.',
    '1.0.0.127.bl.example.',
  ]);
});

s('error answers are never listings: Spamhaus 127.255.255.x, dnswl 127.0.0.255, outside 127/8', async () => {
  const { dns, checker, ctx } = setup({ blocklists: ['sh.example', 'dnswl.example', 'dead.example', 'mixed.example'] });
  const q = (z: string) => `4.3.2.1.${z}.`;
  dns.set(q('sh.example'), 'A', aAnswer(q('sh.example'), '127.255.255.254'));
  dns.set(q('dnswl.example'), 'A', aAnswer(q('dnswl.example'), '127.0.0.255'));
  dns.set(q('dead.example'), 'A', aAnswer(q('dead.example'), '192.0.2.80'));
  dns.set(q('mixed.example'), 'A', aAnswer(q('mixed.example'), '127.0.0.2', '127.255.255.255'));
  const t = await checker.tier(ctx('1.2.3.4'), 'block');
  assert.equal(t.results.map((r) => r.verdict), ['error', 'error', 'error', 'error']);
  assert.not.ok(t.reached);
  assert.is(t.score, 0);
  assert.match(t.results[0]?.detail ?? '', /public or open resolver/);
  assert.match(t.results[1]?.detail ?? '', /dnswl\.org 127\.0\.0\.255/);
  assert.match(t.results[2]?.detail ?? '', /outside 127\.0\.0\.0\/8/);
  assert.equal(checker.stats().map((x) => x.errors), [1, 1, 1, 1]);
  assert.equal(checker.stats().map((x) => x.listed), [0, 0, 0, 0]);
  assert.ok(dns.calls.every((c) => c.type === 'A'), 'no TXT lookup for an error');
  assert.is(dnsListErrorMeaning('127.0.0.2'), undefined);
  assert.match(dnsListErrorMeaning('127.255.255.252') ?? '', /typo/);
  assert.match(dnsListErrorMeaning('127.255.255.255') ?? '', /excessive/);
});

s('error answers are logged at warn with the list name, throttled per list', async () => {
  const cap = captureLogger();
  const { dns, checker, ctx, clock } = setup({ blocklists: ['sh.example'], logger: cap.logger });
  dns.set('4.3.2.1.sh.example.', 'A', aAnswer('4.3.2.1.sh.example.', '127.255.255.254'));
  await checker.tier(ctx('1.2.3.4'), 'block');
  await checker.tier(ctx('1.2.3.4'), 'block');
  clock.advanceSec(61);
  await checker.tier(ctx('1.2.3.4'), 'block');
  const warns = cap.lines.filter((l) => l['level'] === 'warn');
  assert.is(warns.length, 2);
  assert.is(warns[0]?.['list'], 'sh.example');
  assert.is(warns[1]?.['suppressedSinceLast'], 1);
  assert.is(checker.stats()[0]?.errors, 3);
});

s('a failed lookup is not a listing, nor a timeout: SERVFAIL says what the list\'s servers did; exceptions fail too; logged at info', async () => {
  const cap = captureLogger();
  const { dns, checker, ctx } = setup({ blocklists: ['sf.example', 'throw.example', 'late.example'], logger: cap.logger });
  dns.set('4.3.2.1.sf.example.', 'A', { ...servfail('no-servers'), failureDetail: '127.53.4.1 REFUSED' });
  dns.set('4.3.2.1.throw.example.', 'A', new Error('boom'));
  dns.set('4.3.2.1.late.example.', 'A', servfail('deadline'));
  const t = await checker.tier(ctx('1.2.3.4'), 'block');
  assert.equal(t.results.map((r) => r.verdict), ['failed', 'failed', 'timeout']);
  assert.equal(checker.stats().map((x) => [x.failures, x.timeouts, x.errors]), [[1, 0, 0], [1, 0, 0], [0, 1, 0]]);
  assert.is(t.results[0]!.detail, 'SERVFAIL (no-servers: 127.53.4.1 REFUSED)');
  assert.match(t.results[1]!.detail, /^lookup failed: .*boom/);
  assert.match(t.results[2]!.detail, /^no answer in time/);
  const info = cap.lines.find((l) => l['level'] === 'info');
  assert.match(String(info?.['msg']), /^DNS list sf\.example: SERVFAIL \(no-servers: 127\.53\.4\.1 REFUSED\), treated as not listed$/);
});

s('weights and threshold: postscreen-style sums, negative weights subtract', async () => {
  const { dns, checker, ctx } = setup({
    blocklists: ['a.example*2', 'b.example=127.0.0.[2..11]*2', 'wl.example*-3'],
    blockThreshold: 3,
  });
  const set = (zone: string, ip: string, ...codes: string[]) => {
    const name = dnsListQueryName(ip, zone);
    dns.set(name, 'A', aAnswer(name, ...codes));
  };
  set('a.example', '10.0.0.1', '127.0.0.2');
  let t = await checker.tier(ctx('10.0.0.1'), 'block');
  assert.is(t.score, 2);
  assert.not.ok(t.reached);
  set('a.example', '10.0.0.2', '127.0.0.2');
  set('b.example', '10.0.0.2', '127.0.0.4');
  t = await checker.tier(ctx('10.0.0.2'), 'block');
  assert.is(t.score, 4);
  assert.ok(t.reached);
  set('a.example', '10.0.0.3', '127.0.0.2');
  set('b.example', '10.0.0.3', '127.0.0.4');
  set('wl.example', '10.0.0.3', '127.0.0.2');
  t = await checker.tier(ctx('10.0.0.3'), 'block');
  assert.is(t.score, 1);
  assert.not.ok(t.reached);
});

s('DNSWL tiers use the weight magnitude, so postscreen "*-2" entries work as they are', async () => {
  const { dns, checker, ctx } = setup({ trusted: ['list.dnswl.example=127.0.[0..255].[2;3]*-2'], trustedThreshold: 2 });
  const name = dnsListQueryName('10.0.0.1', 'list.dnswl.example');
  dns.set(name, 'A', aAnswer(name, '127.0.15.3'));
  const t = await checker.tier(ctx('10.0.0.1'), 'trusted');
  assert.is(t.score, 2);
  assert.ok(t.reached);
});

s('all tiers start in parallel once; a list that never answers delays only its tier, up to the budget', async () => {
  const { dns, checker, ctx, timers, clock } = setup({
    trusted: ['wl-hi.example'], blocklists: ['slow.example', 'fast.example'], allowlists: ['wl-lo.example'],
  });
  dns.set('4.3.2.1.slow.example.', 'A', 'hang');
  dns.set('4.3.2.1.fast.example.', 'A', aAnswer('x', '127.0.0.2'));
  dns.set('4.3.2.1.wl-lo.example.', 'A', aAnswer('x', '127.0.0.2'));
  const c = ctx('1.2.3.4');
  checker.prepare(c);
  checker.prepare(c);
  assert.equal(dns.calls.map((x) => x.name).sort(), [
    '4.3.2.1.fast.example.', '4.3.2.1.slow.example.', '4.3.2.1.wl-hi.example.', '4.3.2.1.wl-lo.example.',
  ]);
  let blockDone = false;
  const block = checker.tier(c, 'block').then((t) => { blockDone = true; return t; });
  const start = clock.nowMs();
  const trusted = await checker.tier(c, 'trusted');
  const allow = await checker.tier(c, 'allow');
  assert.is(clock.nowMs(), start, 'answered tiers need no time to pass');
  assert.not.ok(trusted.reached);
  assert.ok(allow.reached);
  await flush();
  assert.not.ok(blockDone, 'the hanging list holds its own tier');
  await timers.advance(1999);
  assert.not.ok(blockDone);
  await timers.advance(1);
  const t = await block;
  assert.equal(t.results.map((r) => r.verdict), ['timeout', 'listed']);
  assert.ok(t.reached, 'the answering list still counts');
  assert.is(timers.size, 0, 'the deadline timer is gone');
  // TXT was looked up for the DNSBL listing only (fast.example), not for the DNSWLs.
  assert.equal(dns.calls.filter((x) => x.type === 'TXT').map((x) => x.name), ['4.3.2.1.fast.example.']);
  assert.equal(dns.calls.length, 5, 'no repeated lookups');
  dns.releaseHanging();
});

s('TXT is asked only for the listings of a DNSBL tier that rejects, never below the threshold or for a DNSWL', async () => {
  const { dns, checker, ctx } = setup({ blocklists: ['a.example', 'b.example', 'wl.example*-2'], blockThreshold: 2, allowlists: ['dnswl.example'] });
  for (const z of ['a.example', 'wl.example', 'dnswl.example']) dns.set(`4.3.2.1.${z}.`, 'A', aAnswer('x', '127.0.0.2'));
  const below = await checker.tier(ctx('1.2.3.4'), 'block');
  assert.not.ok(below.reached, 'score 1 - 2 < 2');
  await checker.tier(ctx('1.2.3.4'), 'allow');
  assert.equal(dns.calls.filter((x) => x.type === 'TXT'), [], 'no TXT for a listing that does not reject');
  for (const z of ['a.example', 'b.example']) {
    dns.set(`5.3.2.1.${z}.`, 'A', aAnswer('x', '127.0.0.2'));
    dns.set(`5.3.2.1.${z}.`, 'TXT', txtAnswer('x', [`listed in ${z}`]));
  }
  const rejects = await checker.tier(ctx('1.2.3.5'), 'block');
  assert.ok(rejects.reached);
  assert.equal(rejects.listed.map((r) => r.txt), ['listed in a.example', 'listed in b.example']);
  assert.equal(dns.calls.filter((x) => x.type === 'TXT').map((x) => x.name).sort(), ['5.3.2.1.a.example.', '5.3.2.1.b.example.']);
});

s('a list silent for 5 minutes over 10 lookups is a warning (its lookups alone are info); an answer ends it', async () => {
  const cap = captureLogger();
  const { dns, checker, ctx, clock } = setup({ blocklists: ['dead.example'], logger: cap.logger });
  const silentLines = () => cap.lines.filter((l) => l['level'] === 'warn' && String(l['msg']).includes('has not answered for'));
  for (let i = 0; i < 12; i++) {
    dns.set(`${i}.2.0.192.dead.example.`, 'A', servfail('no-servers'));
    await checker.tier(ctx(`192.0.2.${i}`), 'block');
    clock.advanceMs(30_000);
  }
  assert.is(silentLines().length, 1, 'once, when past 5 minutes and 10 lookups');
  assert.match(String(silentLines()[0]?.['msg']), /DNS list dead\.example has not answered for 5 minutes/);
  // It answers again: the count starts over.
  await checker.tier(ctx('192.0.2.99'), 'block');
  clock.advanceMs(60_000);
  dns.set('100.2.0.192.dead.example.', 'A', servfail('no-servers'));
  await checker.tier(ctx('192.0.2.100'), 'block');
  assert.is(silentLines().length, 1);
});

s('silence counts lookups, not list entries: a zone given three times (postscreen DNSWL style) and in two tiers is one lookup per request', async () => {
  const cap = captureLogger();
  const wl = ['wl.example=127.0.[0..255].0', 'wl.example=127.0.[0..255].1', 'wl.example=127.0.[0..255].[2;3]'];
  const { dns, checker, ctx, clock } = setup({ trusted: wl, allowlists: ['wl.example'], logger: cap.logger });
  const silentLines = () => cap.lines.filter((l) => l['level'] === 'warn' && String(l['msg']).includes('has not answered for'));
  // Six requests over six minutes: six lookups of wl.example, fewer than the ten a warning needs.
  for (let i = 0; i < 6; i++) {
    dns.set(`${i}.2.0.192.wl.example.`, 'A', servfail('no-servers'));
    const c = ctx(`192.0.2.${i}`);
    await Promise.all([checker.tier(c, 'trusted'), checker.tier(c, 'allow')]);
    clock.advanceMs(72_000);
  }
  assert.is(dns.calls.filter((c) => c.type === 'A').length, 6, 'one A lookup per request');
  assert.equal(silentLines(), [], 'six lookups are not ten');
  for (let i = 6; i < 10; i++) {
    dns.set(`${i}.2.0.192.wl.example.`, 'A', servfail('no-servers'));
    const c = ctx(`192.0.2.${i}`);
    await Promise.all([checker.tier(c, 'trusted'), checker.tier(c, 'allow')]);
  }
  assert.is(silentLines().length, 1, 'the tenth lookup warns');
  assert.is(silentLines()[0]?.['lookups'], 10);
});

s('the request deadline caps the budget', async () => {
  const { dns, checker, clock, timers } = setup({ blocklists: ['slow.example'] });
  dns.set('4.3.2.1.slow.example.', 'A', 'hang');
  const c: CheckContext = { request: {}, clientAddress: '1.2.3.4', deadlineAtMs: clock.nowMs() + 300, nowMs: clock.nowMs(), record: true, memo: new Map() };
  const p = checker.tier(c, 'block');
  assert.is(dns.calls[0]?.opts?.deadlineMs, 300);
  await timers.advance(300);
  assert.is((await p).results[0]?.verdict, 'timeout');
  dns.releaseHanging();
});

s('TXT reason: joined, sanitised, bounded; missing TXT is fine', async () => {
  const { dns, checker, ctx } = setup({ blocklists: ['a.example', 'b.example'] });
  dns.set('4.3.2.1.a.example.', 'A', aAnswer('x', '127.0.0.2'));
  dns.set('4.3.2.1.a.example.', 'TXT', txtAnswer('x', ['Listed: see ', 'https://a.example/q?1.2.3.4\r\nInjected: x']));
  dns.set('4.3.2.1.b.example.', 'A', aAnswer('x', '127.0.0.2'));
  dns.set('4.3.2.1.b.example.', 'TXT', txtAnswer('x', ['y'.repeat(400)]));
  const t = await checker.tier(ctx('1.2.3.4'), 'block');
  assert.is(t.results[0]?.txt, 'Listed: see https://a.example/q?1.2.3.4??Injected: x');
  assert.is(t.results[1]?.txt?.length, 250);
  const { dns: dns2, checker: c2, ctx: ctx2 } = setup({ blocklists: ['a.example'] });
  dns2.set('4.3.2.1.a.example.', 'A', aAnswer('x', '127.0.0.2'));
  assert.is((await c2.tier(ctx2('1.2.3.4'), 'block')).results[0]?.txt, undefined);
});

s('a non-IP client address is not looked up and not listed', async () => {
  const { dns, checker, ctx } = setup({ blocklists: ['a.example'] });
  const t = await checker.tier(ctx(''), 'block');
  assert.not.ok(t.reached);
  assert.is(dns.calls.length, 0);
  assert.is(checker.stats()[0]?.queries, 0);
});

s('stats per list and tier', async () => {
  const { dns, checker, ctx } = setup({ trusted: ['same.example=127.0.0.9'], blocklists: ['same.example=127.0.0.2'] });
  dns.set('4.3.2.1.same.example.', 'A', aAnswer('x', '127.0.0.2'));
  const c = ctx('1.2.3.4');
  await checker.tier(c, 'block');
  await checker.tier(c, 'trusted');
  assert.equal(checker.stats(), [
    { tier: 'trusted', list: 'same.example=127.0.0.9', queries: 1, listed: 0, errors: 0, failures: 0, timeouts: 0, skipped: 0 },
    { tier: 'block', list: 'same.example=127.0.0.2', queries: 1, listed: 1, errors: 0, failures: 0, timeouts: 0, skipped: 0 },
  ]);
  assert.is(dns.calls.filter((x) => x.type === 'A').length, 1, 'one A lookup per zone and request');
});

s('an entry given twice weighs twice but is one stats row, counted once per request', async () => {
  const { dns, checker, ctx } = setup({ blocklists: ['twice.example', 'twice.example'], blockThreshold: 2 });
  dns.set('4.3.2.1.twice.example.', 'A', aAnswer('x', '127.0.0.2'));
  const r = await checker.tier(ctx('1.2.3.4'), 'block');
  assert.is(r.score, 2);
  assert.equal(checker.stats(), [{ tier: 'block', list: 'twice.example', queries: 1, listed: 1, errors: 0, failures: 0, timeouts: 0, skipped: 0 }]);
  // The same from the cache path (every answer cached): one more query, one more listing.
  const cached = new DnsListChecker({ resolve: dns.resolve, resolveCached: () => aAnswer('x', '127.0.0.2'), clock: new ManualClock(), logger: createSilentLogger(), lookupBudgetMs: 2000, blocklists: ['twice.example', 'twice.example'], blockThreshold: 2 });
  assert.ok((await cached.tier(ctx('1.2.3.4'), 'block')).reached);
  assert.equal(cached.stats().map((x) => [x.queries, x.listed]), [[1, 1]]);
});

s('a weight of 0 is refused: the entry would count for nothing', () => {
  assert.throws(() => setup({ blocklists: ['zero.example*0'] }), /weight 0 makes the entry count for nothing/);
});

s('lookupAll: a list that answers after the daemon\'s budget is shown as the daemon takes it, not as listed', async () => {
  const { dns, checker, timers } = setup({ blocklists: ['slow.example', 'fast.example'] });
  let answer: () => void = () => undefined;
  dns.set('4.3.2.1.slow.example.', 'A', () => new Promise((resolve) => {
    answer = () => resolve(aAnswer('x', '127.0.0.2'));
  }));
  dns.set('4.3.2.1.fast.example.', 'A', aAnswer('x', '127.0.0.2'));
  const p = checker.lookupAll('1.2.3.4');
  await flush(); // the fast list's answer is taken at once
  await timers.advance(2500); // beyond the 2000 ms lookup budget, within the diagnostic 5000
  answer();
  const block = (await p).find((t) => t.tier === 'block');
  assert.equal(block?.results.map((r) => r.verdict), ['timeout', 'listed']);
  assert.match(block?.results[0]?.detail ?? '', /answered after 2500 ms, beyond the daemon's 2000 ms/);
  assert.is(block?.score, 1);
});

s('lookupAll: a silent list whose lookup ends in SERVFAIL after the daemon\'s budget is not said to have answered', async () => {
  // `mxsentry rbl` on a list whose servers drop every query: the resolver gives up (SERVFAIL) after
  // the daemon's budget. The list never answered; the detail must not say it did.
  const { dns, checker, timers } = setup({ blocklists: ['dead.example'] });
  let giveUp: () => void = () => undefined;
  dns.set('4.3.2.1.dead.example.', 'A', () => new Promise((resolve) => {
    giveUp = () => resolve({ ...servfail('deadline'), failureDetail: '127.53.6.4 timeout' });
  }));
  const p = checker.lookupAll('1.2.3.4');
  await timers.advance(3000);
  giveUp();
  const r = (await p).find((t) => t.tier === 'block')?.results[0];
  assert.is(r?.verdict, 'timeout');
  assert.not.match(r?.detail ?? '', /answered after/);
  assert.match(r?.detail ?? '', /SERVFAIL \(deadline: 127\.53\.6\.4 timeout\) after 3000 ms, no answer within the daemon's 2000 ms \(dns-list-budget-ms\): the daemon takes it as not listed/);
});

s('lookupAll: every list with raw answers, TXT and verdict; not counted; bad address throws', async () => {
  const { dns, checker } = setup({ trusted: ['wl.example'], blocklists: ['bl.example=127.0.0.4', 'sh.example'] });
  dns.set('2.0.0.127.wl.example.', 'A', aAnswer('x', '127.0.10.0'));
  dns.set('2.0.0.127.bl.example.', 'A', aAnswer('x', '127.0.0.2', '127.0.0.4'));
  dns.set('2.0.0.127.bl.example.', 'TXT', txtAnswer('x', ['test point']));
  dns.set('2.0.0.127.sh.example.', 'A', aAnswer('x', '127.255.255.254'));
  const tiers = await checker.lookupAll('127.0.0.2');
  assert.equal(tiers.map((t) => [t.tier, t.score, t.reached]), [['trusted', 1, true], ['block', 1, true], ['allow', 0, false]]);
  const all = tiers.flatMap((t) => t.results);
  assert.equal(all.map((r) => [r.tier, r.list.zone, r.verdict]), [
    ['trusted', 'wl.example', 'listed'], ['block', 'bl.example', 'listed'], ['block', 'sh.example', 'error'],
  ]);
  assert.equal(all[1]?.addresses, ['127.0.0.2', '127.0.0.4']);
  assert.equal(all[1]?.matched, ['127.0.0.4']);
  assert.is(all[1]?.txt, 'test point');
  assert.is(all[1]?.queryName, '2.0.0.127.bl.example.');
  assert.equal(dns.calls.filter((c) => c.type === 'TXT').length, 3, 'TXT for every list that answered');
  assert.ok(checker.stats().every((x) => x.queries === 0));
  const before = dns.calls.length;
  await checker.lookupAll('::ffff:127.0.0.2');
  assert.ok(dns.calls.slice(before).every((c) => c.name.startsWith('2.0.0.127.')), 'mapped IPv6 is looked up as IPv4');
  try {
    await checker.lookupAll('not-an-ip');
    assert.unreachable();
  } catch (err) {
    assert.is((err as { code?: string }).code, 'POLICY_ERR_BAD_ADDRESS');
  }
});

s('lookupAll: the DNSBL tier verdict follows the threshold and negative weights, not any listing', async () => {
  const { dns, checker } = setup({ blocklists: ['bl.example', 'wl.example=127.0.[0..255].[1..3]*-2', 'two.example*2'], blockThreshold: 2 });
  dns.set('1.2.0.192.bl.example.', 'A', aAnswer('x', '127.0.0.2'));
  dns.set('1.2.0.192.wl.example.', 'A', aAnswer('x', '127.0.15.2'));
  dns.set('2.2.0.192.bl.example.', 'A', aAnswer('x', '127.0.0.2'));
  dns.set('2.2.0.192.two.example.', 'A', aAnswer('x', '127.0.0.2'));
  const block = async (ip: string) => (await checker.lookupAll(ip)).find((t) => t.tier === 'block');
  const one = await block('192.0.2.1');
  assert.equal(one?.listed.map((r) => r.list.zone), ['bl.example', 'wl.example']);
  assert.is(one?.score, -1);
  assert.not.ok(one?.reached, 'listings whose weights sum below the threshold do not reject');
  const two = await block('192.0.2.2');
  assert.is(two?.score, 3);
  assert.ok(two?.reached);
});

s('self test: RFC 5782 s5 test points per zone', async () => {
  const { dns, checker, timers } = setup({
    trusted: ['good.example=127.0.[0..255].[2;3]'],
    blocklists: ['good.example', 'wild.example', 'empty.example', 'public.example', 'slow.example'],
  });
  dns.set('2.0.0.127.good.example.', 'A', aAnswer('x', '127.0.10.0'));
  dns.set('2.0.0.127.wild.example.', 'A', aAnswer('x', '127.0.0.2'));
  dns.set('1.0.0.127.wild.example.', 'A', aAnswer('x', '127.0.0.2'));
  dns.set('2.0.0.127.public.example.', 'A', aAnswer('x', '127.255.255.254'));
  dns.set('2.0.0.127.slow.example.', 'A', 'hang');
  const p = checker.selfTest();
  await timers.advance(5000);
  const r = await p;
  assert.equal(r.map((x) => [x.zone, x.ok]), [
    ['good.example', true], ['wild.example', false], ['empty.example', false], ['public.example', false], ['slow.example', false],
  ]);
  assert.equal(r[0]?.tiers, ['trusted', 'block']);
  assert.match(r[1]?.problems.join() ?? '', /127\.0\.0\.1 is listed/);
  assert.match(r[2]?.problems.join() ?? '', /127\.0\.0\.2 is not listed \(NXDOMAIN\)/);
  assert.match(r[3]?.problems.join() ?? '', /public or open resolver/);
  assert.match(r[4]?.problems.join() ?? '', /no answer in time/);
  assert.equal(checker.lastSelfTest(), r);
  assert.ok(checker.stats().every((x) => x.queries === 0));
  dns.releaseHanging();
});

s('a list that lists the 127.0.0.1 test point is suspended (its listings ignored, logged once) until a self test passes', async () => {
  const cap = captureLogger();
  const { dns, checker, ctx } = setup({ blocklists: ['dead.example', 'good.example'], trusted: ['dead.example'], logger: cap.logger });
  const everything = (name: string): void => void dns.set(name, 'A', aAnswer(name, '127.0.0.2'));
  for (const ip of ['2.0.0.127', '1.0.0.127', '4.3.2.1']) everything(`${ip}.dead.example.`);
  dns.set('2.0.0.127.good.example.', 'A', aAnswer('x', '127.0.0.2'));
  // Before any self test a listing counts, as configured.
  assert.ok((await checker.tier(ctx('1.2.3.4'), 'block')).reached);
  const r = await checker.selfTest();
  assert.equal(r.map((x) => [x.zone, x.ok, x.suspended]), [['dead.example', false, true], ['good.example', true, false]]);
  for (const tier of ['block', 'trusted'] as const) {
    const t = await checker.tier(ctx('1.2.3.4'), tier);
    assert.not.ok(t.reached, `${tier}: a list that answers everything decides nothing`);
    const dead = t.results.find((x) => x.list.zone === 'dead.example');
    assert.is(dead?.verdict, 'skipped');
    assert.match(dead?.detail ?? '', /suspended/);
  }
  // Skipped, not an error answer nor a lookup: the admin reading stats sees the list was not consulted.
  // (One request before the self test, two after it; each request looks every tier up.)
  await flush(); // the second request's block tier, which waits on good.example, is counted once it settles
  assert.equal(checker.stats().map((x) => [x.tier, x.list, x.queries, x.listed, x.errors, x.skipped]), [
    ['trusted', 'dead.example', 1, 1, 0, 2],
    ['block', 'dead.example', 1, 1, 0, 2],
    ['block', 'good.example', 3, 0, 0, 0],
  ]);
  assert.not.ok(cap.lines.some((l) => l['level'] === 'warn' && String(l['msg']).includes('answered with an error')), 'no per-request warning for a suspended list');
  await checker.selfTest();
  const suspendedLines = cap.lines.filter((l) => l['level'] === 'error' && String(l['msg']).includes('127.0.0.1'));
  assert.is(suspendedLines.length, 1, 'logged once, not at every self test');
  // The list is repaired: the next self test lifts the suspension and its listings count again.
  dns.set('1.0.0.127.dead.example.', 'A', nxdomain());
  const again = await checker.selfTest();
  assert.equal(again.map((x) => x.suspended), [false, false]);
  assert.ok((await checker.tier(ctx('1.2.3.4'), 'block')).reached);
  assert.ok(cap.lines.some((l) => l['level'] === 'warn' && String(l['msg']).includes('count again')));
});

s('a suspended list is not asked on the request path (the client\'s address stays here); rbl still shows its answer', async () => {
  const { dns, checker, ctx } = setup({ blocklists: ['hijacked.example', 'good.example'], resolveCached: () => undefined });
  for (const ip of ['2.0.0.127', '1.0.0.127', '4.3.2.1']) dns.set(`${ip}.hijacked.example.`, 'A', aAnswer('x', '127.0.0.2'));
  dns.set('2.0.0.127.good.example.', 'A', aAnswer('x', '127.0.0.2'));
  assert.equal((await checker.selfTest()).map((x) => x.suspended), [true, false]);
  const asked = (): string[] => dns.calls.map((c) => c.name).filter((n) => n.startsWith('4.3.2.1.'));
  const t = await checker.tier(ctx('1.2.3.4'), 'block');
  assert.equal(t.results.map((r) => r.verdict), ['skipped', 'not-listed']);
  assert.equal(asked(), ['4.3.2.1.good.example.'], 'only the list that is consulted is asked');
  const diag = await checker.lookupAll('1.2.3.4');
  const shown = diag.find((x) => x.tier === 'block')?.results[0];
  assert.equal([shown?.verdict, shown?.addresses], ['skipped', ['127.0.0.2']], 'diagnostics still show what the suspended list answers');
});

s('a suspended list stays suspended when a later self test gets no answer for 127.0.0.1; a reload keeps it', async () => {
  const cap = captureLogger();
  const { dns, checker, ctx, clock, timers } = setup({ blocklists: ['hostile.example'], logger: cap.logger });
  for (const ip of ['2.0.0.127', '1.0.0.127', '4.3.2.1']) dns.set(`${ip}.hostile.example.`, 'A', aAnswer('x', '127.0.0.2'));
  assert.equal((await checker.selfTest()).map((x) => x.suspended), [true]);
  // The test point now fails (SERVFAIL, then no answer in time): inconclusive, so still suspended.
  dns.set('1.0.0.127.hostile.example.', 'A', servfail('no-servers'));
  const failed = await checker.selfTest();
  assert.equal(failed.map((x) => x.suspended), [true]);
  assert.match(failed[0]?.problems.join() ?? '', /stays suspended/);
  dns.set('1.0.0.127.hostile.example.', 'A', 'hang');
  const hung = checker.selfTest();
  await timers.advance(5000);
  assert.equal((await hung).map((x) => x.suspended), [true]);
  dns.releaseHanging();
  assert.not.ok((await checker.tier(ctx('1.2.3.4'), 'block')).reached, 'still ignored');
  assert.not.ok(cap.lines.some((l) => String(l['msg']).includes('count again')), 'no false "count again" line');
  // A reload builds a new checker: it takes the suspension over, before any self test of its own.
  const next = new DnsListChecker({ resolve: dns.resolve, clock, timers, logger: createSilentLogger(), lookupBudgetMs: 2000, blocklists: ['hostile.example', 'other.example'] });
  next.adoptSelfTestState(checker);
  const ctx2 = { request: { client_address: '1.2.3.4' }, clientAddress: '1.2.3.4', deadlineAtMs: clock.nowMs() + 10_000, nowMs: clock.nowMs(), record: true, memo: new Map() };
  const t = await next.tier(ctx2, 'block');
  assert.is(t.results[0]?.verdict, 'skipped');
  assert.match(t.results[0]?.detail ?? '', /suspended/);
  // Only 127.0.0.1 answered as not listed lifts it.
  dns.set('1.0.0.127.hostile.example.', 'A', nxdomain());
  assert.equal((await checker.selfTest()).map((x) => x.suspended), [false]);
});

s('startSelfTests: no list is consulted until the first self test has finished', async () => {
  const cap = captureLogger();
  const { dns, checker, ctx, timers } = setup({ blocklists: ['hostile.example', 'good.example'], logger: cap.logger });
  for (const ip of ['2.0.0.127', '4.3.2.1']) {
    dns.set(`${ip}.hostile.example.`, 'A', aAnswer('x', '127.0.0.2'));
    dns.set(`${ip}.good.example.`, 'A', aAnswer('x', '127.0.0.2'));
  }
  // The hostile list answers its 127.0.0.1 test point late, listed (it lists every query).
  let answerTestPoint: () => void = () => undefined;
  dns.set('1.0.0.127.hostile.example.', 'A', () => new Promise((resolve) => {
    answerTestPoint = () => resolve(aAnswer('x', '127.0.0.2'));
  }));
  const handle = checker.startSelfTests(60_000);
  const early = await checker.tier(ctx('1.2.3.4'), 'block');
  assert.not.ok(early.reached, 'a request before the first self test ends rejects nothing');
  assert.ok(early.results.every((r) => r.verdict === 'skipped' && /first self test/.test(r.detail ?? '')));
  assert.equal(checker.stats().map((x) => [x.queries, x.errors, x.skipped]), [[0, 0, 1], [0, 0, 1]]);
  assert.equal(dns.calls.filter((c) => c.name.startsWith('4.3.2.1.')), [], 'the client\'s address is asked of no list yet');
  await checker.tier(ctx('1.2.3.4'), 'block');
  const untested = cap.lines.filter((l) => /first self test has not ended/.test(String(l['msg'])));
  assert.equal(untested.map((l) => [l['level'], l['list']]), [['info', 'hostile.example'], ['info', 'good.example']], 'said once per list, not per request');
  answerTestPoint();
  await flush();
  await timers.advance(0);
  const later = await checker.tier(ctx('1.2.3.4'), 'block');
  assert.equal(later.results.map((r) => r.verdict), ['skipped', 'listed']);
  handle.stop();
});

s('startSelfTests runs now and every interval, never overlapping; stop() ends it', async () => {
  const cap = captureLogger();
  const { dns, checker, timers } = setup({ blocklists: ['empty.example'], logger: cap.logger });
  const handle = checker.startSelfTests(60_000);
  await flush();
  const perRun = 2;
  assert.is(dns.calls.length, perRun);
  assert.ok(cap.lines.some((l) => l['level'] === 'warn' && String(l['msg']).includes('empty.example')));
  await timers.advance(59_999);
  assert.is(dns.calls.length, perRun);
  await timers.advance(1);
  assert.is(dns.calls.length, 2 * perRun);
  handle.stop();
  await timers.advance(120_000);
  assert.is(dns.calls.length, 2 * perRun);
  assert.is(timers.size, 0);
  assert.throws(() => checker.startSelfTests(0), /positive/);
});

s('bad configuration is refused', () => {
  assert.throws(() => setup({ blockThreshold: 0 }), /blockThreshold/);
  assert.throws(() => setup({ lookupBudgetMs: 0 }), /lookupBudgetMs/);
  assert.throws(() => setup({ blocklists: ['bad'] }), /POLICY_ERR_BAD_LIST_SPEC|bad DNS list/);
});

s.run();
