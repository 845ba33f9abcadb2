// Identical upstream queries in flight are merged (one packet, RFC 5452 s5), but a resolution that
// joins another's query keeps its own deadline: a DNS list lookup with a short budget that joins
// the long query of a client (or of the list's self-test) ends when its budget does, not when the
// other's query times out. Real fake tree on loopback; bounded waits.
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

s.run();
