// Tests for DnsListCounters: rows in pipeline and configuration order, an entry given twice is one
// row, and each verdict lands in its own counter.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DnsListCounters } from '../../src/policy/dns-list-counters.js';
import { parseDnsListSpec } from '../../src/policy/dns-list-spec.js';
import type { DnsListResult, DnsListVerdict } from '../../src/policy/dns-list-answers.js';

const s = suite('policy/dns-list-counters');

const result = (tier: DnsListResult['tier'], text: string, verdict: DnsListVerdict): DnsListResult => ({
  tier, list: parseDnsListSpec(text), queryName: 'x.', verdict, rcode: 0, addresses: [], matched: [], errors: [], txt: undefined, detail: '',
});

s('one row per tier and entry, in order; each verdict in its counter, a skipped list outside queries', () => {
  const a = parseDnsListSpec('a.example');
  const c = new DnsListCounters([['trusted', [parseDnsListSpec('w.example')]], ['block', [a, a, parseDnsListSpec('b.example*2')]], ['allow', []]]);
  for (const v of ['listed', 'not-listed', 'error', 'failed', 'timeout', 'skipped'] as const) c.count(result('block', 'a.example', v));
  c.count(result('block', 'unknown.example', 'listed'));
  assert.equal(c.rows(), [
    { tier: 'trusted', list: 'w.example', queries: 0, listed: 0, errors: 0, failures: 0, timeouts: 0, skipped: 0 },
    { tier: 'block', list: 'a.example', queries: 5, listed: 1, errors: 1, failures: 1, timeouts: 1, skipped: 1 },
    { tier: 'block', list: 'b.example*2', queries: 0, listed: 0, errors: 0, failures: 0, timeouts: 0, skipped: 0 },
  ]);
});

s.run();
