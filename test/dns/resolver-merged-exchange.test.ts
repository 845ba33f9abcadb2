// Identical upstream queries in flight are merged (one packet, RFC 5452 s5), but a resolution that
// joins another's query keeps its own deadline: a DNS list lookup with a short budget that joins
// the long query of a client (or of the list's self-test) ends when its budget does, not when the
// other's query times out. And a client that joins a whole resolution in flight with a later
// deadline than its starter's keeps that later deadline. Real fake tree on loopback; bounded waits.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Rcode } from '../../src/dns/wire/types.js';
import { startHarness, type Harness } from '../helpers/resolver-harness.js';

const s = suite('dns/resolver: merged upstream queries');
let hx: Harness | undefined;
s.after.each(async () => {
  await hx?.stop();
  hx = undefined;
});

const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));

s('a resolution that joins a longer one\'s upstream query ends by its own deadline', async () => {
  hx = await startHarness({ flags: { 'serve-expired': false } });
  const { stack } = hx;
  // example.com's cut known; then ns1 stops answering and ns2 is lame, so both resolutions below
  // ask ns1 the same minimised question (www.example.com. A, RFC 9156). ns1's RTO, backed off by
  // earlier timeouts, makes the first resolution's query wait about 3 s.
  await stack.resolver.resolve('example.com', 'NS');
  await hx.h.server('127.53.2.1').setBehaviour('drop');
  stack.infra.markLame('127.53.2.2', 'example.com.');
  for (let i = 0; i < 10 && stack.infra.rtoMs('127.53.2.1') < 2000; i++) stack.infra.recordTimeout('127.53.2.1');
  assert.ok(stack.infra.rtoMs('127.53.2.1') >= 2000, `RTO ${stack.infra.rtoMs('127.53.2.1')} ms`);

  const long = stack.resolver.resolve('a.www.example.com', 'A', { deadlineMs: 4000 });
  await sleep(20);
  const merged = stack.iterator.stats.mergedUpstream;
  const started = Date.now();
  const short = await stack.resolver.resolve('b.www.example.com', 'A', { deadlineMs: 400 });
  assert.is(short.rcode, Rcode.SERVFAIL);
  assert.ok(stack.iterator.stats.mergedUpstream > merged, 'the second resolution joined the first one\'s query');
  // The caller had its SERVFAIL at 400 ms; the resolution itself has ended too (a moment later),
  // while the first resolution's query still waits for ns1.
  await sleep(250);
  assert.is(stack.resolver.stats.inFlight, 1, `resolutions still in flight ${Date.now() - started} ms after the second began`);
  assert.is((await long).rcode, Rcode.SERVFAIL);
  // The first resolution ends by its own deadline too, a moment after its caller's SERVFAIL.
  for (let i = 0; i < 50 && stack.resolver.stats.inFlight > 0; i++) await sleep(20);
  assert.is(stack.resolver.stats.inFlight, 0);
});

s('a caller that joins a resolution in flight with a later deadline extends it to that deadline', async () => {
  hx = await startHarness({ flags: { 'serve-expired': false } });
  const { stack } = hx;
  // example.com's cut known; then both its servers answer 700 ms late. The first caller's 1 s
  // budget runs out while the servers' RTOs back off (376 ms, then 752 ms); the second, which
  // joins at 300 ms with 2.5 s, gets the answer of a later round.
  await stack.resolver.resolve('example.com', 'NS');
  for (const a of ['127.53.2.1', '127.53.2.2']) await hx.h.server(a).setBehaviour({ delayMs: 700 });
  const started = Date.now();
  const first = stack.resolver.resolve('www.example.com', 'A', { deadlineMs: 1000 });
  await sleep(300);
  const merged = stack.resolver.stats.merged;
  const second = stack.resolver.resolve('www.example.com', 'A', { deadlineMs: 2500 });
  assert.is(stack.resolver.stats.merged, merged + 1, 'the second caller joined the resolution in flight');
  const a = await first;
  assert.is(a.rcode, Rcode.SERVFAIL, 'the first caller stops at its own deadline');
  const b = await second;
  assert.is(b.rcode, Rcode.NOERROR, `second caller after ${Date.now() - started} ms: ${b.failure ?? ''}`);
  assert.equal(b.records.map((r) => r.data), ['192.0.2.1']);
});

s.run();
