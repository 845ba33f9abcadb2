// collectStats reads every source into one snapshot (hit ratios, store failures reported, replication
// peers read from any status shape); PolicyCounterCarry keeps counters monotonic across reloads.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { PolicyCounterCarry, collectStats, peersOf, type PolicyCounters } from '../../src/metrics/stats-snapshot.js';
import { fakeSources } from '../helpers/stats-sources.js';
import { formatStats } from '../../src/cli/control-cli.js';
import { renderPrometheus } from '../../src/metrics/prometheus-text.js';

const s = suite('metrics/stats-snapshot');

s('collects every part, with hit ratios and uptime', async () => {
  const snap = await collectStats(fakeSources());
  assert.is(snap.uptimeSec, 3723);
  assert.is(snap.dns.cache.hitRatio, 0.75);
  assert.is(snap.dns.packetCache.hitRatio, 0);
  assert.is(snap.store.counts?.triplets, 2);
  assert.equal(snap.replication, { configured: false, peers: [] });
  assert.is(snap.dns.upstreamRtt?.udp.count, 2);
});

s('a failing store count is reported, not thrown', async () => {
  const snap = await collectStats(fakeSources({ store: () => ({ healthy: false, counts: () => Promise.reject(new Error('MDB_PANIC')) }) }));
  assert.is(snap.store.counts, null);
  assert.is(snap.store.error, 'MDB_PANIC');
  assert.is(snap.store.healthy, false);
});

s('a store that never opened says why (its last failure), and the stats text shows it', async () => {
  const snap = await collectStats(fakeSources({ store: () => ({ healthy: false, counts: () => undefined, error: 'STORE_ERR_OPEN: data.mdb is not a usable LMDB data file' }) }));
  assert.is(snap.store.counts, null);
  assert.is(snap.store.error, 'STORE_ERR_OPEN: data.mdb is not a usable LMDB data file');
  assert.match(formatStats(snap), /^Store\s+NOT HEALTHY: STORE_ERR_OPEN: data\.mdb is not a usable LMDB data file$/m);
});

s('a data file removed under the running store: still healthy, but stats and metrics warn', async () => {
  const problem = '/var/lib/mxsentry/greylist/data.mdb was removed while mxsentry runs';
  const counts = () => Promise.resolve({ triplets: 3, clients: 0, replogEntries: 0, peers: 0, usedBytes: 65536, limitBytes: 1 << 30, corruptRecords: 0 });
  const snap = await collectStats(fakeSources({ store: () => ({ healthy: true, counts, dataFileProblem: problem }) }));
  assert.is(snap.store.dataFileProblem, problem);
  assert.match(formatStats(snap), /^Store\s+healthy; 3 triplets.*\n\s+WARNING: \/var\/lib\/mxsentry\/greylist\/data\.mdb was removed while mxsentry runs$/m);
  assert.match(renderPrometheus(snap), /^mxsentry_store_data_file_problem 1$/m);
  const fine = await collectStats(fakeSources());
  assert.match(renderPrometheus(fine), /^mxsentry_store_data_file_problem 0$/m);
  assert.not.match(formatStats(fine), /WARNING/);
});

s('replication peers are read from the status, whatever its extra fields', async () => {
  const status = { enabled: true, peers: [{ name: 'mx2', connected: true, lagRecords: 4, lagSec: 1.5 }, { name: 'mx3', connected: false, lagRecords: null, lagSec: null }, { bogus: 1 }] };
  const snap = await collectStats(fakeSources({ replication: () => Promise.resolve(status) }));
  assert.ok(snap.replication.configured);
  assert.equal(snap.replication.peers, [{ peer: 'mx2', connected: true, lagRecords: 4, lagSec: 1.5 }, { peer: 'mx3', connected: false }]);
  assert.equal(peersOf(null), []);
  assert.equal(peersOf({ peers: 'x' }), []);
});

s('policy counters carry over a reload', () => {
  const carry = new PolicyCounterCarry();
  const counters = (n: number): PolicyCounters => ({
    pipeline: { decisions: n, budgetExceeded: 0, checkErrors: 1, byStep: [{ step: 10, stepName: 'greylist', verdict: 'DEFER_IF_PERMIT', count: n }] },
    dnsLists: [{ tier: 'block', list: 'bl.example', queries: n, listed: 0, errors: 0, failures: 1, timeouts: 1, skipped: n }],
    greylist: { deferred: n, passed: 1, autoWhitelisted: 0, whitelisted: 0, skipped: 0, storeFailures: 0 },
  });
  carry.retire(counters(5));
  const total = carry.total(counters(2));
  assert.is(total.pipeline.decisions, 7);
  assert.is(total.pipeline.checkErrors, 2);
  assert.equal(total.pipeline.byStep, [{ step: 10, stepName: 'greylist', verdict: 'DEFER_IF_PERMIT', count: 7 }]);
  assert.equal(total.dnsLists, [{ tier: 'block', list: 'bl.example', queries: 7, listed: 0, errors: 0, failures: 2, timeouts: 2, skipped: 7 }]);
  assert.is(total.greylist?.deferred, 7);
  assert.is(total.greylist?.passed, 2);
});

s.run();
