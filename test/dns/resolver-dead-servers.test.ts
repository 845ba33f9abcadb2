// Dead servers in virtual time: the real DNS stack (createDnsStack: caches, infra, iterator) over
// the fake tree, with example.com's two servers made silent by a transport wrapper that advances a
// ManualClock by each query's timeout instead of waiting. Shows how soon lookups stop paying their
// whole budget for a zone whose servers are all dead (a DNS list's, behind the policy service's
// short budget, or a client's, behind the 4.5 s deadline), and, with overlapping lookups whose
// silent queries stay in flight until the clock passes their timeout, how soon a zone that comes
// back is asked again. Loopback only; bounded lookups.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfig } from '../../src/config/load.js';
import { createDnsStack } from '../../src/main.js';
import type { Transport } from '../../src/dns/transport/transport.js';
import { NetTransport } from '../../src/dns/transport/transport.js';
import { parseZoneText } from '../../src/dns/wire/zone-text.js';
import { Rcode } from '../../src/dns/wire/types.js';
import { ManualClock } from '../../src/util/clock.js';
import { DnsError } from '../../src/util/errors.js';
import { createSilentLogger } from '../../src/util/logger.js';
import { evaluate } from '../../src/policy/dns-list-answers.js';
import { parseDnsListSpec } from '../../src/policy/dns-list-spec.js';
import { startHierarchy, standardTree, type FakeHierarchy } from '../helpers/fake-hierarchy.js';

const s = suite('dns/resolver: dead servers in virtual time');
let tree: FakeHierarchy;
s.before(async () => {
  tree = await startHierarchy(standardTree());
});
s.after(async () => {
  await tree.stop();
});

const DEAD = ['127.53.2.1', '127.53.2.2'];
/** The one server of dnsbl.example.net. */
const LIST_SERVER = '127.53.4.1';

/**
 * The real DNS stack over the fake tree, in virtual time: a query for which `silent` is true times
 * out at once, the clock moving by its timeout.
 */
function virtualStack(silent: (address: string, name: string) => boolean): { clock: ManualClock; stack: ReturnType<typeof createDnsStack> } {
  const clock = new ManualClock(Date.now());
  const net = new NetTransport({ portFor: tree.portFor });
  const transport: Transport = {
    query: async (target, question, opts) => {
      if (!silent(target.address, question.name)) return net.query(target, question, opts);
      clock.advanceMs(opts.timeoutMs);
      throw new DnsError('DNS_ERR_TIMEOUT', `no answer from ${target.address} (virtual)`);
    },
  };
  const loaded = loadConfig({ flags: { 'query-loopback': true, 'do-ip6': false, 'serve-expired': false } });
  return { clock, stack: createDnsStack(loaded.values, createSilentLogger(), clock, { transport, rootHints: parseZoneText(tree.rootHints, { origin: '.' }) }) };
}

/** A stack whose queries to DEAD time out at once in virtual time (the clock moves by the timeout). */
async function stackWithDeadZone(): Promise<{ clock: ManualClock; resolve: (name: string, deadlineMs: number) => Promise<{ rcode: number; tookMs: number }> }> {
  const dead = new Set<string>();
  const { clock, stack } = virtualStack((address) => dead.has(address));
  // Both servers' addresses known (ns2 is out of bailiwick), then both go silent.
  await stack.resolver.resolve('example.com', 'NS');
  await stack.resolver.resolve('ns2.example.net', 'A');
  for (const a of DEAD) dead.add(a);
  return {
    clock,
    resolve: async (name, deadlineMs) => {
      const start = clock.nowMs();
      const r = await stack.resolver.resolve(name, 'A', { deadlineMs, allowStale: false });
      return { rcode: r.rcode, tookMs: clock.nowMs() - start };
    },
  };
}

s('a dead list behind a 1.5 s budget, asked once a second: held back after about 5 s, then most lookups fail at once', async () => {
  const { clock, resolve } = await stackWithDeadZone();
  const took: number[] = [];
  for (let i = 0; i < 12; i++) {
    const r = await resolve(`2.0.0.${i}.example.com`, 1500);
    assert.is(r.rcode, Rcode.SERVFAIL);
    took.push(r.tookMs);
    clock.advanceMs(1000);
  }
  const firstFast = took.findIndex((ms) => ms === 0);
  assert.ok(firstFast >= 1 && firstFast <= 4, `took ${took.join(', ')} ms`);
  // Held back, each server still gets one probe per interval (5 s, then 10 s), which may wait the
  // budget; the other lookups fail at once. Before, every lookup waited the whole 1.5 s.
  const after = took.slice(firstFast);
  const meanMs = after.reduce((a, b) => a + b, 0) / after.length;
  assert.ok(meanMs < 600 && after.filter((ms) => ms === 0).length >= after.length / 2, `took ${took.join(', ')} ms`);
});

s('a dead list\'s verdicts: timeouts throughout, those after its servers are held back at once and saying so', async () => {
  // What `mxsentry stats` and the dnslist_timeouts|failures_total metrics show for a list whose
  // servers stopped answering: one outage, one counter, whether a lookup waited or was held back.
  const dead = new Set<string>();
  const { clock, stack } = virtualStack((address) => dead.has(address));
  await stack.resolver.resolve('example.com', 'NS');
  await stack.resolver.resolve('ns2.example.net', 'A');
  for (const a of DEAD) dead.add(a);
  const list = parseDnsListSpec('example.com');
  const verdicts: string[] = [];
  const heldBack: string[] = [];
  for (let i = 0; i < 12; i++) {
    const name = `${i}.0.0.2.example.com.`;
    const before = clock.nowMs();
    const r = await stack.resolver.resolve(name, 'A', { deadlineMs: 1500, allowStale: false });
    const result = evaluate('block', list, name, { kind: 'answer', result: r });
    verdicts.push(result.verdict);
    if (clock.nowMs() === before) heldBack.push(result.detail);
    clock.advanceMs(1000);
  }
  assert.equal(verdicts, Array(12).fill('timeout'), verdicts.join(' '));
  // Most ended at once (held back), each saying so.
  assert.ok(heldBack.length >= 6, `${heldBack.length} ended at once`);
  for (const d of heldBack) assert.match(d, /servers are silent .*held back after recent timeouts/);
});

s('a list whose server refuses this host is a failed lookup, not a timeout', async () => {
  const { stack } = virtualStack(() => false);
  await tree.server(LIST_SERVER).setBehaviour('refused');
  try {
    const name = '2.0.0.127.dnsbl.example.net.';
    const r = await stack.resolver.resolve(name, 'A', { deadlineMs: 1500, allowStale: false });
    const result = evaluate('block', parseDnsListSpec('dnsbl.example.net'), name, { kind: 'answer', result: r });
    assert.is(r.serversSilent, undefined);
    assert.is(result.verdict, 'failed', result.detail);
    assert.match(result.detail, /127\.53\.4\.1 REFUSED/);
  } finally {
    await tree.server(LIST_SERVER).setBehaviour('normal');
  }
});

s('a dead zone behind the 4.5 s client deadline: the second lookup ends early, the third fails at once', async () => {
  const { clock, resolve } = await stackWithDeadZone();
  const took: number[] = [];
  for (let i = 0; i < 3; i++) {
    took.push((await resolve(`host${i}.example.com`, 4500)).tookMs);
    clock.advanceMs(1000);
  }
  assert.is(took[0], 4500);
  assert.ok(took[1]! < 4500, `took ${took.join(', ')} ms`);
  assert.is(took[2], 0, `took ${took.join(', ')} ms`);
});

s('a shared server that ignores one zone\'s names on a quiet host is not held back for its other zones', async () => {
  // 127.53.1.1 and .2 serve both com. and net.; they ignore every name under net. that starts with
  // "zz" (virtual timeouts), and nothing else reaches them, so they go silent long enough to be
  // held back for net.: com. names must still be asked and answered.
  const tld = new Set(['127.53.1.1', '127.53.1.2']);
  const { clock, stack } = virtualStack((address, name) => tld.has(address) && /^zz.*\.net\.?$/i.test(name));
  await stack.resolver.resolve('com', 'NS');
  await stack.resolver.resolve('net', 'NS');
  const ignored = async (i: number): Promise<{ rcode: number; tookMs: number }> => {
    const start = clock.nowMs();
    const r = await stack.resolver.resolve(`zz${i}.net`, 'A', { deadlineMs: 4500, allowStale: false });
    return { rcode: r.rcode, tookMs: clock.nowMs() - start };
  };
  const took: number[] = [];
  for (let i = 0; i < 8; i++) {
    clock.advanceMs(5000);
    const r = await ignored(i);
    assert.is(r.rcode, Rcode.SERVFAIL);
    took.push(r.tookMs);
  }
  // Held back for net. by now: the next ignored name fails at once, without a query.
  const held = await ignored(8);
  assert.ok(held.rcode === Rcode.SERVFAIL && held.tookMs === 0, `ignored names took ${took.join(', ')} ms, then ${held.tookMs}`);
  const other = await stack.resolver.resolve('nothere.com', 'A', { deadlineMs: 4500, allowStale: false });
  assert.is(other.rcode, Rcode.NXDOMAIN, other.failure ?? '');
});

/**
 * The real DNS stack over the fake tree, in virtual time, with queries that overlap as a busy
 * client's do: a query for which `silent` is true stays in flight until advanceMs moves the clock
 * past its timeout; the others go to the fake tree over loopback and are waited for before the
 * clock moves on, so every run takes the same course.
 */
function overlappingStack(silent: (address: string, name: string) => boolean): {
  stack: ReturnType<typeof createDnsStack>;
  /** Queries sent to a silent server so far. */
  silentQueries: () => number;
  advanceMs: (ms: number) => Promise<void>;
} {
  const clock = new ManualClock(Date.now());
  const net = new NetTransport({ portFor: tree.portFor });
  const parked: Array<{ dueAtMs: number; fail: (err: Error) => void }> = [];
  let onLoopback = 0;
  let silentQueries = 0;
  const transport: Transport = {
    query: async (target, question, opts) => {
      if (silent(target.address, question.name)) {
        silentQueries++;
        return new Promise((_, reject) => parked.push({ dueAtMs: clock.nowMs() + opts.timeoutMs, fail: reject }));
      }
      onLoopback++;
      try {
        return await net.query(target, question, opts);
      } finally {
        onLoopback--;
      }
    },
  };
  /** Lets every resolution run until it waits on a parked query or ends (bounded). */
  const settle = async (): Promise<void> => {
    for (let turns = 0; turns < 20_000; turns++) {
      // A few turns even with nothing on loopback: a rejected query's handlers run in later ticks.
      await new Promise((done) => setImmediate(done));
      if (onLoopback === 0 && turns >= 2) return;
    }
    throw new Error('loopback queries did not settle');
  };
  const loaded = loadConfig({ flags: { 'query-loopback': true, 'do-ip6': false, 'serve-expired': false } });
  return {
    stack: createDnsStack(loaded.values, createSilentLogger(), clock, { transport, rootHints: parseZoneText(tree.rootHints, { origin: '.' }) }),
    silentQueries: () => silentQueries,
    advanceMs: async (ms) => {
      await settle();
      for (let step = 0; step < ms; step += 100) {
        clock.advanceMs(Math.min(100, ms - step));
        for (let i = parked.length - 1; i >= 0; i--) {
          const p = parked[i]!;
          if (p.dueAtMs > clock.nowMs()) continue;
          parked.splice(i, 1);
          p.fail(new DnsError('DNS_ERR_TIMEOUT', 'no answer (virtual)'));
        }
        await settle();
      }
    },
  };
}

/**
 * A client asks a new name of dnsbl.example.net every second (4.5 s deadline, not waiting for
 * earlier answers) while the zone's one server ignores its names for `outageSec`, then answers
 * again. Gives the seconds after the outage until the first answer that is not SERVFAIL, and how
 * many queries the silent server got during the outage.
 */
async function recoveryAfterOutage(outageSec: number): Promise<{ recoverySec: number; outageQueries: number; clientQueries: number }> {
  let outage = false;
  const { stack, advanceMs, silentQueries } = overlappingStack((address, name) => outage && address === LIST_SERVER && /dnsbl\.example\.net\.?$/i.test(name));
  await stack.resolver.resolve('dnsbl.example.net', 'NS');
  outage = true;
  const pending: Promise<unknown>[] = [];
  let second = 0;
  for (; second < outageSec; second++) {
    pending.push(stack.resolver.resolve(`during${second}.dnsbl.example.net`, 'A', { deadlineMs: 4500, allowStale: false }));
    await advanceMs(1000);
  }
  outage = false;
  const outageQueries = silentQueries();
  let recoverySec = -1;
  for (let after = 0; after < 300 && recoverySec < 0; after++) {
    const r = stack.resolver.resolve(`after${after}.dnsbl.example.net`, 'A', { deadlineMs: 4500, allowStale: false }).then((res) => {
      if (res.rcode !== Rcode.SERVFAIL && recoverySec < 0) recoverySec = after;
    });
    pending.push(r);
    await advanceMs(1000);
  }
  await advanceMs(5000);
  await Promise.all(pending);
  return { recoverySec, outageQueries, clientQueries: outageSec };
}

s('a zone whose server ignores its names for 10 s is answered again within 10 s of the end, not half a minute later', async () => {
  // Before: the client queries in flight when the server was held back timed out one after
  // another, each doubling the probe interval as if a probe had failed (5 s to 80 s), so the
  // zone stayed held back for 38 s after it came back. Unbound (not yet holding it back after
  // 10 s) answers at once.
  const { recoverySec } = await recoveryAfterOutage(10);
  assert.ok(recoverySec >= 0 && recoverySec <= 10, `answered again ${recoverySec} s after the outage`);
});

s('a zone silent for 2 minutes is still held back: a few probes, not a query per client query', async () => {
  const { recoverySec, outageQueries, clientQueries } = await recoveryAfterOutage(120);
  // Held back after about 5 s; then one probe per interval (5, 10, 20, 40, 80 s).
  assert.ok(outageQueries < clientQueries / 4, `${outageQueries} queries to the silent server for ${clientQueries} client queries`);
  // The next probe finds it back: within the 80 s interval reached by then.
  assert.ok(recoverySec >= 0 && recoverySec <= 85, `answered again ${recoverySec} s after the outage`);
});

s.run();
