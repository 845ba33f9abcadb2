// The fixed-bucket histogram: "le" bucket placement, bounds, sum and count; bad input ignored.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Histogram } from '../../src/metrics/histogram.js';

const s = suite('metrics/histogram');

s('places values in the first bucket whose bound is >= the value', () => {
  const h = new Histogram([0.01, 0.1, 1]);
  for (const v of [0.005, 0.01, 0.05, 0.5, 1, 3]) h.observe(v);
  h.observe(-1);
  h.observe(Number.NaN);
  const snap = h.snapshot();
  assert.equal(snap.counts, [2, 1, 2, 1]);
  assert.is(snap.count, 6);
  assert.ok(Math.abs(snap.sumSec - 4.565) < 1e-9);
});

s('rejects buckets that do not increase', () => {
  assert.throws(() => new Histogram([0.1, 0.1]), /increase/);
});

s.run();
