// Tests of the infrastructure cache: RFC 6298 RTO, backoff after timeouts, down/probe/recovery,
// Unbound-like server selection with a seeded random source, lameness, EDNS status, host TTL.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { InfraCache, UNKNOWN_SERVER_RTO_MS } from '../../../src/dns/cache/infra-cache.js';
import { ManualClock } from '../../../src/util/clock.js';
import { seededRandom } from '../../helpers/seeded-random.js';


const s = suite('dns/cache/infra-cache');

s('unknown server: 376 ms; first and later RTTs per RFC 6298', () => {
  const infra = new InfraCache({ clock: new ManualClock() });
  assert.is(infra.rtoMs('192.0.2.1'), UNKNOWN_SERVER_RTO_MS);
  assert.is(UNKNOWN_SERVER_RTO_MS, 376);
  infra.recordRtt('192.0.2.1', 100);
  assert.is(infra.rtoMs('192.0.2.1'), 300, 'SRTT 100 + 4 * RTTVAR 50');
  infra.recordRtt('192.0.2.1', 100);
  assert.is(infra.rtoMs('192.0.2.1'), 250, 'RTTVAR 37.5');
  infra.recordRtt('192.0.2.1', 500);
  // RTTVAR = .75*37.5 + .25*400 = 128.125; SRTT = 150; RTO = 662.5
  assert.is(infra.rtoMs('192.0.2.1'), 663);
  const row = [...infra.dump()][0];
  assert.is(row?.srttMs, 150);
});

s('RTO is clamped to [50, 12000]', () => {
  const infra = new InfraCache({ clock: new ManualClock() });
  infra.recordRtt('a', 1);
  assert.is(infra.rtoMs('a'), 50);
  infra.recordRtt('b', 9000);
  assert.is(infra.rtoMs('b'), 12_000);
});

s('each timeout doubles the RTO up to the cap; an answer restores it', () => {
  const infra = new InfraCache({ clock: new ManualClock(), downAfterTimeouts: 100 });
  infra.recordRtt('a', 100);
  const seen: number[] = [];
  for (let i = 0; i < 8; i++) {
    infra.recordTimeout('a');
    seen.push(infra.rtoMs('a'));
  }
  assert.equal(seen, [600, 1200, 2400, 4800, 9600, 12_000, 12_000, 12_000]);
  infra.recordRtt('a', 100);
  assert.ok(infra.rtoMs('a') < 600);
  infra.recordTimeout('unknown');
  assert.is(infra.rtoMs('unknown'), 752, 'an unmeasured server backs off from 376');
});

s('a burst of concurrent timeouts sent with the same RTO backs off once (Unbound rtt_lost)', () => {
  const clock = new ManualClock();
  const infra = new InfraCache({ clock, downMinSilenceMs: 0 });
  infra.recordRtt('a', 10);
  const rto = infra.rtoMs('a');
  clock.advanceMs(rto);
  for (let i = 0; i < 100; i++) infra.recordTimeout('a', rto);
  assert.is(infra.rtoMs('a'), rto * 2, 'doubled once');
  assert.not.ok(infra.isBackedOff('a'), 'one burst does not make the server down');
  clock.advanceMs(rto * 2);
  infra.recordTimeout('a', rto * 2);
  clock.advanceMs(rto * 4);
  infra.recordTimeout('a', rto * 4);
  assert.ok(infra.isBackedOff('a'), 'three sequential backoffs do');
});

s('down after 3 consecutive timeouts; one probe per growing interval; success recovers', () => {
  const clock = new ManualClock();
  const infra = new InfraCache({ clock, probeMinMs: 5000, probeMaxMs: 20_000, downMinSilenceMs: 0 });
  infra.recordTimeout('a');
  infra.recordTimeout('a');
  assert.not.ok(infra.isBackedOff('a'), 'two timeouts: not yet down');
  infra.recordTimeout('a');
  assert.ok(infra.isBackedOff('a'));
  clock.advanceMs(4999);
  assert.ok(infra.isBackedOff('a'));
  clock.advanceMs(1);
  assert.not.ok(infra.isBackedOff('a'), 'probe slot due: one query may go');
  assert.ok(infra.isBackedOff('a'), 'the slot was claimed');
  infra.recordTimeout('a'); // the probe failed: interval 10 s
  clock.advanceMs(9999);
  assert.ok(infra.isBackedOff('a'));
  clock.advanceMs(1);
  assert.not.ok(infra.isBackedOff('a'));
  infra.recordTimeout('a'); // 20 s
  infra.recordTimeout('a'); // capped at 20 s
  clock.advanceMs(19_999);
  assert.ok(infra.isBackedOff('a'));
  clock.advanceMs(1);
  assert.not.ok(infra.isBackedOff('a'));
  infra.recordRtt('a', 80);
  assert.not.ok(infra.isBackedOff('a'), 'an answer ends the outage');
  assert.not.ok(infra.isBackedOff('a'));
  assert.is([...infra.dump()][0]?.timeouts, 0);
  infra.recordTimeout('a');
  infra.recordTimeout('a');
  assert.not.ok(infra.isBackedOff('a'), 'the count starts again after recovery');
});

s('only the probe\'s own timeout lengthens the probe interval, not those of queries in flight when the server went down', () => {
  const clock = new ManualClock();
  const infra = new InfraCache({ clock, probeMinMs: 5000 });
  // Client queries sent each second from 0 ms, each cut short after 3 s: the third timeout, 5 s
  // into the silence, takes the server down; those sent at 3 and 4 s are still in flight.
  for (let i = 0; i < 3; i++) {
    clock.advanceMs(i === 0 ? 3000 : 1000);
    infra.recordTimeout('192.0.2.5', 3000, 1, 3000, true);
  }
  assert.ok(infra.isBackedOff('192.0.2.5', 1), 'down at 5 s');
  for (let i = 0; i < 2; i++) {
    clock.advanceMs(1000);
    infra.recordTimeout('192.0.2.5', 3000, 1, 3000, true);
  }
  clock.advanceMs(2999);
  assert.ok(infra.isBackedOff('192.0.2.5', 1));
  clock.advanceMs(1);
  assert.not.ok(infra.isBackedOff('192.0.2.5', 1), 'the first probe, 5 s after the server went down: the late timeouts were no failed probes');
  clock.advanceMs(3000);
  infra.recordTimeout('192.0.2.5', 3000, 1, 3000, true);
  // A query sent before the probe, timing out after it, changes nothing either.
  clock.advanceMs(500);
  infra.recordTimeout('192.0.2.5', 3000, 1, 4000, true);
  clock.advanceMs(9499);
  assert.ok(infra.isBackedOff('192.0.2.5', 1), 'the failed probe doubled the interval to 10 s');
  clock.advanceMs(1);
  assert.not.ok(infra.isBackedOff('192.0.2.5', 1), 'the second probe, 10 s after the first failed');
});

s('probes still lengthen the interval when each times out after the next slot (an RTO above the interval)', () => {
  const clock = new ManualClock();
  const infra = new InfraCache({ clock, probeMinMs: 5000 });
  const server = '192.0.2.6';
  // Down 5 s into the silence, as in the test above.
  for (let i = 0; i < 3; i++) {
    clock.advanceMs(i === 0 ? 3000 : 1000);
    infra.recordTimeout(server, 3000, 1, 3000, true);
  }
  assert.ok(infra.isBackedOff(server, 1));
  // A busy host asks every second; each probe waits its whole RTO (MAX_RTO_MS, 12 s: a
  // client-deadline-ms above it) for nothing, so the next probe slot comes before its timeout.
  const inFlight: number[] = [];
  let probes = 0;
  for (let sec = 0; sec < 240; sec++) {
    clock.advanceMs(1000);
    while (inFlight.length > 0 && clock.nowMs() - inFlight[0]! >= 12_000) {
      inFlight.shift();
      infra.recordTimeout(server, 12_000, 1, 12_000, false);
    }
    if (!infra.isBackedOff(server, 1)) {
      probes++;
      inFlight.push(clock.nowMs());
    }
  }
  // One probe per interval, 5 s doubling toward 2 min: a handful in 4 minutes, not one every 5 s (48).
  assert.ok(probes <= 12, `${probes} probes in 4 minutes to a server that never answers`);
});

s('measurements are forgotten after the host TTL (recovery of a long-dead server)', () => {
  const clock = new ManualClock();
  const infra = new InfraCache({ clock, hostTtlSec: 900, downMinSilenceMs: 0 });
  for (let i = 0; i < 3; i++) infra.recordTimeout('a');
  assert.ok(infra.isBackedOff('a'));
  clock.advanceSec(900);
  assert.not.ok(infra.isBackedOff('a'));
  assert.is(infra.rtoMs('a'), 376);
  assert.is(infra.stats().hosts, 1, 'still held until evicted, but as unknown');
});

s('selectOrder: fast band first in random order, then slower, then down servers last', () => {
  const infra = new InfraCache({ clock: new ManualClock(), random: seededRandom(1), probeProbability: 0, downMinSilenceMs: 0 });
  infra.recordRtt('fast', 20); // RTO 60
  infra.recordRtt('near', 100); // RTO 300, within 400 of 60
  infra.recordRtt('slow', 1000); // RTO 3000
  infra.recordRtt('slower', 2000); // RTO 6000
  for (let i = 0; i < 3; i++) infra.recordTimeout('dead');
  const firsts = new Map<string, number>();
  for (let i = 0; i < 200; i++) {
    const order = infra.selectOrder(['dead', 'slower', 'slow', 'new', 'near', 'fast', 'fast']);
    assert.is(order.length, 6, 'duplicates removed');
    assert.equal(new Set(order.slice(0, 3)), new Set(['fast', 'near', 'new']), 'unknown (376) is in the band');
    assert.equal(order.slice(3), ['slow', 'slower', 'dead']);
    firsts.set(order[0] as string, (firsts.get(order[0] as string) ?? 0) + 1);
  }
  for (const name of ['fast', 'near', 'new']) assert.ok((firsts.get(name) ?? 0) > 30, `${name} chosen first sometimes`);
});

s('selectOrder: the same seed gives the same order', () => {
  const mk = () => {
    const infra = new InfraCache({ clock: new ManualClock(), random: seededRandom(42) });
    for (const [a, r] of [['a', 10], ['b', 20], ['c', 30], ['d', 40]] as const) infra.recordRtt(a, r);
    return infra;
  };
  const x = mk();
  const y = mk();
  for (let i = 0; i < 20; i++) assert.equal(x.selectOrder(['a', 'b', 'c', 'd']), y.selectOrder(['a', 'b', 'c', 'd']));
});

s('selectOrder: occasional probe puts a slower or due-for-probe server first', () => {
  const clock = new ManualClock();
  const infra = new InfraCache({ clock, random: seededRandom(7), probeProbability: 1, probeMinMs: 1000, downMinSilenceMs: 0 });
  infra.recordRtt('fast', 20);
  infra.recordRtt('slow', 2000);
  assert.is(infra.selectOrder(['fast', 'slow'])[0], 'slow');
  for (let i = 0; i < 3; i++) infra.recordTimeout('dead');
  const probed = new Set<string>();
  for (let i = 0; i < 50; i++) probed.add(infra.selectOrder(['fast', 'dead'])[0] as string);
  assert.equal([...probed], ['fast'], 'a down server whose slot is not due is never probed');
  clock.advanceMs(1000);
  assert.equal(infra.selectOrder(['fast', 'dead']), ['dead', 'fast']);

  const rare = new InfraCache({ clock, random: seededRandom(3), probeProbability: 0.05 });
  rare.recordRtt('fast', 20);
  rare.recordRtt('slow', 2000);
  let slowFirst = 0;
  for (let i = 0; i < 1000; i++) if (rare.selectOrder(['fast', 'slow'])[0] === 'slow') slowFirst++;
  assert.ok(slowFirst > 10 && slowFirst < 120, `probe rate near 5% (${slowFirst}/1000)`);
});

s('all servers down: ordered by the next probe slot', () => {
  const clock = new ManualClock();
  const infra = new InfraCache({ clock, probeProbability: 0, probeMinMs: 1000, downMinSilenceMs: 0 });
  for (let i = 0; i < 3; i++) infra.recordTimeout('b');
  clock.advanceMs(100);
  for (let i = 0; i < 3; i++) infra.recordTimeout('a');
  assert.equal(infra.selectOrder(['a', 'b']), ['b', 'a']);
});

s('lameness is per zone, case-insensitive, and lasts the host TTL', () => {
  const clock = new ManualClock();
  const infra = new InfraCache({ clock, hostTtlSec: 60 });
  infra.markLame('192.0.2.1', 'Example.COM.');
  assert.ok(infra.isLame('192.0.2.1', 'example.com.'));
  assert.not.ok(infra.isLame('192.0.2.1', 'com.'));
  assert.not.ok(infra.isLame('192.0.2.1', 'www.example.com.'));
  assert.not.ok(infra.isLame('192.0.2.2', 'example.com.'));
  assert.equal([...infra.dump()][0]?.lameZones, ['example.com.']);
  clock.advanceSec(60);
  assert.not.ok(infra.isLame('192.0.2.1', 'example.com.'));
});

s('EDNS status is remembered for the host TTL', () => {
  const clock = new ManualClock();
  const infra = new InfraCache({ clock, hostTtlSec: 60 });
  assert.is(infra.ednsStatus('a'), 'unknown');
  infra.setEdnsStatus('a', 'noedns');
  assert.is(infra.ednsStatus('a'), 'noedns');
  infra.setEdnsStatus('a', 'ok');
  assert.is(infra.ednsStatus('a'), 'ok');
  assert.is([...infra.dump()][0]?.edns, 'ok');
  clock.advanceSec(61);
  assert.is(infra.ednsStatus('a'), 'unknown');
});

s('maxHosts bounds the table; flush empties it; dump shows state', () => {
  const infra = new InfraCache({ clock: new ManualClock(), maxHosts: 3, downMinSilenceMs: 0 });
  for (const a of ['a', 'b', 'c', 'd']) infra.recordRtt(a, 50);
  assert.is(infra.stats().hosts, 3);
  assert.is(infra.rtoMs('a'), 376, 'the least recently used host was dropped');
  for (let i = 0; i < 3; i++) infra.recordTimeout('d');
  const d = [...infra.dump()].find((r) => r.address === 'd');
  assert.ok(d?.backedOff);
  assert.is(d?.timeouts, 3);
  infra.flush();
  assert.is(infra.stats().hosts, 0);
  assert.equal([...infra.dump()], []);
});

s('down per type class (A, AAAA, the rest, as Unbound): AAAA timeouts leave A and MX queries going; any answer ends the outage', () => {
  const clock = new ManualClock();
  const infra = new InfraCache({ clock, random: () => 0.5, downMinSilenceMs: 0 });
  for (let i = 0; i < 3; i++) infra.recordTimeout('192.0.2.1', undefined, 28);
  assert.ok(infra.isBackedOff('192.0.2.1', 28), 'down for AAAA');
  assert.not.ok(infra.isBackedOff('192.0.2.1', 1), 'not for A');
  assert.not.ok(infra.isBackedOff('192.0.2.1', 15), 'not for MX');
  assert.equal(infra.selectOrder(['192.0.2.1', '192.0.2.2'], 28), ['192.0.2.2', '192.0.2.1'], 'last for AAAA');
  assert.equal([...infra.dump()][0]?.downTypes, ['AAAA']);
  // An answer (here to an A query) shows the server is up: AAAA is tried again. Its count of
  // timeouts is kept, so after a new silence of its own it is down again at the next timeout.
  infra.recordRtt('192.0.2.1', 10, 1);
  assert.not.ok(infra.isBackedOff('192.0.2.1', 28));
  assert.equal([...infra.dump()][0]?.downTypes, []);
  infra.recordTimeout('192.0.2.1', undefined, 28);
  assert.ok(infra.isBackedOff('192.0.2.1', 28));
  infra.recordRtt('192.0.2.1', 10, 28);
  assert.not.ok(infra.isBackedOff('192.0.2.1', 28));
  assert.is([...infra.dump()][0]?.timeouts, 0, 'an AAAA answer clears the AAAA count');
});

s('a server that still answers is not down, however many timeouts one name or type collects (Unbound holds back only a silent server)', () => {
  const clock = new ManualClock();
  const infra = new InfraCache({ clock });
  infra.recordRtt('192.0.2.1', 1, 1);
  // A name the server ignores (or answers after every timeout): 50, 100, 200, 400, 800 ms, while
  // other names' answers keep arriving in between.
  for (const rto of [50, 100, 200, 400, 800]) {
    clock.advanceMs(rto);
    infra.recordTimeout('192.0.2.1', infra.rtoMs('192.0.2.1'), 1);
    infra.recordRtt('192.0.2.1', 1, 1);
  }
  assert.not.ok(infra.isBackedOff('192.0.2.1', 1), 'A queries still go');
  // TLSA (type class "other") queries ignored three times in a row, nothing else asked meanwhile:
  // 350 ms of silence is not an outage.
  for (const rto of [50, 100, 200]) {
    clock.advanceMs(rto);
    infra.recordTimeout('192.0.2.1', infra.rtoMs('192.0.2.1'), 52);
  }
  assert.not.ok(infra.isBackedOff('192.0.2.1', 16), 'TXT queries still go');
  assert.not.ok(infra.isBackedOff('192.0.2.1', 52));
  // Still nothing 400, 800, 1600 ms later: 2.95 s of silence is not an outage either.
  for (const rto of [400, 800, 1600]) {
    clock.advanceMs(rto);
    infra.recordTimeout('192.0.2.1', infra.rtoMs('192.0.2.1'), 52);
  }
  assert.not.ok(infra.isBackedOff('192.0.2.1', 16));
  // Nor 3.2 s later: 6.15 s without an answer. Now it is down for that class.
  clock.advanceMs(3200);
  infra.recordTimeout('192.0.2.1', infra.rtoMs('192.0.2.1'), 52);
  assert.ok(infra.isBackedOff('192.0.2.1', 16), 'down for the other types after 5 s and more without an answer');
  assert.not.ok(infra.isBackedOff('192.0.2.1', 1), 'A never timed out in this silence: not down');
});

s('a query the deadline cut short: under 0.5 s it says nothing; longer, it counts toward an outage without backing the RTO off', () => {
  const clock = new ManualClock();
  const infra = new InfraCache({ clock, probeMinMs: 5000 });
  infra.recordRtt('192.0.2.7', 10, 1);
  const rto = infra.rtoMs('192.0.2.7');
  clock.advanceMs(400);
  infra.recordTimeout('192.0.2.7', 3000, 1, 400, true);
  assert.is([...infra.dump()][0]?.timeouts, 0, '0.4 s: no evidence');
  for (let i = 0; i < 4; i++) {
    clock.advanceMs(1500);
    infra.recordTimeout('192.0.2.7', 3000, 1, 1500, true);
  }
  assert.is(infra.rtoMs('192.0.2.7'), rto, 'the RTO is not backed off');
  assert.ok(infra.isBackedOff('192.0.2.7', 1), '4 cut-short timeouts over 6 s without an answer: down');
  // A probe cut short after 1.5 s failed too: the next one waits twice as long.
  clock.advanceMs(5000);
  assert.not.ok(infra.isBackedOff('192.0.2.7', 1), 'the probe slot');
  clock.advanceMs(1500);
  infra.recordTimeout('192.0.2.7', 3000, 1, 1500, true);
  clock.advanceMs(9999);
  assert.ok(infra.isBackedOff('192.0.2.7', 1), 'the interval doubled to 10 s');
});

s('an ICMP error (at once) counts as a failure but not as silence back to when the query was sent', () => {
  const clock = new ManualClock();
  const infra = new InfraCache({ clock });
  infra.recordRtt('192.0.2.8', 3000, 1); // a far server: RTO 9 s
  for (let i = 0; i < 3; i++) {
    clock.advanceMs(1);
    infra.recordTimeout('192.0.2.8', infra.rtoMs('192.0.2.8'), 1, 1);
  }
  assert.is(infra.rtoMs('192.0.2.8'), 12_000, 'backed off as a timeout');
  assert.not.ok(infra.isBackedOff('192.0.2.8', 1), '3 ms of silence is not an outage (not 9 s counted back from the RTO)');
});

s('a dead server (never answered) is down once it has 3 timeouts and 5 s without an answer', () => {
  const clock = new ManualClock();
  const infra = new InfraCache({ clock });
  for (const [i, rto] of [376, 752, 1504].entries()) {
    clock.advanceMs(rto);
    infra.recordTimeout('192.0.2.9', infra.rtoMs('192.0.2.9'), 1);
    assert.not.ok(infra.isBackedOff('192.0.2.9', 1), `after timeout ${i + 1} (${clock.nowMs()} ms)`);
  }
  clock.advanceMs(3008);
  infra.recordTimeout('192.0.2.9', infra.rtoMs('192.0.2.9'), 1);
  assert.ok(infra.isBackedOff('192.0.2.9', 1), 'down after the fourth, 5.6 s after the first query');
});

s('down per zone (as Unbound keys its infra cache): a server held back for one zone still serves its others', () => {
  const clock = new ManualClock();
  const infra = new InfraCache({ clock, random: () => 0.5, downMinSilenceMs: 0 });
  for (let i = 0; i < 3; i++) infra.recordTimeout('192.0.2.1', undefined, 1, undefined, false, 'Shared.COM.');
  assert.ok(infra.isBackedOff('192.0.2.1', 1, 'shared.com.'), 'down for A in shared.com.');
  assert.not.ok(infra.isBackedOff('192.0.2.1', 1, 'edge.com.'), 'not in edge.com.');
  assert.not.ok(infra.isBackedOff('192.0.2.1', 1), 'nor for a caller without a zone');
  assert.equal(infra.selectOrder(['192.0.2.1', '192.0.2.2'], 1, 'shared.com.'), ['192.0.2.2', '192.0.2.1'], 'last in shared.com.');
  assert.equal([...infra.dump()][0]?.downTypes, ['A shared.com.']);
  // An answer for any zone ends the outage in every zone.
  infra.recordRtt('192.0.2.1', 10, 1);
  assert.not.ok(infra.isBackedOff('192.0.2.1', 1, 'shared.com.'));
  // The zones with timeout state per server are bounded: the oldest goes.
  for (let z = 0; z < 100; z++) infra.recordTimeout('192.0.2.3', undefined, 1, undefined, false, `z${z}.test.`);
  for (let i = 0; i < 3; i++) infra.recordTimeout('192.0.2.3', undefined, 1, undefined, false, 'z99.test.');
  assert.ok(infra.isBackedOff('192.0.2.3', 1, 'z99.test.'));
  assert.is([...infra.dump()].find((r) => r.address === '192.0.2.3')?.timeouts, 4);
});

s.run();
