// Fixed-number StatsSources for the metrics tests (snapshot and exposition): every counter set to a
// known value so tests can assert the rendered series. No sockets, no timers.
import { Histogram } from '../../src/metrics/histogram.js';
import type { StatsSources } from '../../src/metrics/stats-snapshot.js';
import { ManualClock } from '../../src/util/clock.js';

/** Sources with fixed numbers; `over` replaces parts. */
export function fakeSources(over: Partial<StatsSources> = {}): StatsSources {
  const clock = new ManualClock(1_000_000);
  const rtt = new Histogram();
  rtt.observe(0.004);
  rtt.observe(0.03);
  return {
    clock,
    startedAtMs: 1_000_000 - 3_723_000,
    version: '9.9.9',
    resolver: { stats: { resolutions: 10, merged: 1, servfail: 2, staleServed: 1, prefetches: 0, prefetchDropped: 0, concurrencyRejected: 0, inFlight: 0, failures: { deadline: 1, 'all-servers-failed': 1 }, inProcessFailures: { 'no-servers': 4 } } },
    iterator: { stats: { upstreamQueries: 30, upstreamTimeouts: 2, caseMismatches: 0, tcpRetries: 1, ednsFallbacks: 0, lameServers: 0, scrubbedRecords: 3, mergedUpstream: 0, primings: 1 } },
    cache: { stats: () => ({ entries: 40, bytes: 4000, maxBytes: 1 << 20, hits: 30, misses: 10, evictions: 0, staleServed: 1 }) },
    packetCache: { stats: () => ({ entries: 5, bytes: 500, maxBytes: 1 << 20, hits: 0, misses: 0 }) },
    infra: { stats: () => ({ hosts: 4 }) },
    dnsServer: {
      stats: () => ({
        queries: { udp: 12, tcp: 1 }, rcodes: { NOERROR: 11, SERVFAIL: 2 }, sources: { local: 1, 'packet-cache': 3, cache: 2, recursion: 6, stale: 1 },
        refused: 0, formerr: 0, dropped: 0, overloaded: 0, internalErrors: 0, tcp: { open: 0, accepted: 1, rejected: 0, idleClosed: 0, evicted: 0 },
      }),
    },
    rtt: { udp: rtt.snapshot(), tcp: new Histogram().snapshot() },
    policy: () => ({
      pipeline: { decisions: 3, budgetExceeded: 0, checkErrors: 0, byStep: [{ step: 8, stepName: 'dnsbl', verdict: 'REJECT', count: 1 }, { step: 10, stepName: 'greylist', verdict: 'DEFER_IF_PERMIT', count: 2 }] },
      dnsLists: [{ tier: 'block', list: 'zen.spamhaus.org', queries: 3, listed: 1, errors: 1, failures: 1, timeouts: 0, skipped: 2 }],
      greylist: { deferred: 2, passed: 0, autoWhitelisted: 0, whitelisted: 0, skipped: 0, storeFailures: 0 },
    }),
    policyServer: { stats: () => ({ connectionsOpen: 1, connectionsAccepted: 1, connectionsRefused: 0, requests: 3, malformed: 0, protocolErrors: 0, internalErrors: 0, idleTimeouts: 0, requestTimeouts: 0 }) },
    store: () => ({ healthy: true, counts: () => Promise.resolve({ triplets: 2, clients: 0, replogEntries: 2, peers: 0, usedBytes: 65536, limitBytes: 1 << 30, corruptRecords: 0 }) }),
    ...over,
  };
}

