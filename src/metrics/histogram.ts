// A fixed-bucket histogram (Prometheus "le" buckets, cumulative on export) for upstream RTTs and the
// like. Fed by rtt-transport.ts, read by prometheus-text.ts and the stats command. O(buckets) per
// observation, no allocation; it never keeps individual samples.

/** Upper bounds in seconds: 1 ms .. 5 s, the span of DNS round trips from a LAN cache to a far server. */
export const RTT_BUCKETS_SEC: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** A snapshot: per-bucket counts (not cumulative; the last entry is +Inf), sum and count. */
export interface HistogramSnapshot {
  bucketsSec: readonly number[];
  counts: number[];
  sumSec: number;
  count: number;
}

/** Counts observations into buckets; `le` semantics (a value equal to a bound falls in that bucket). */
export class Histogram {
  private readonly counts: number[];
  private sumSec = 0;
  private total = 0;

  constructor(readonly bucketsSec: readonly number[] = RTT_BUCKETS_SEC) {
    for (let i = 1; i < bucketsSec.length; i++) {
      if (!(bucketsSec[i]! > bucketsSec[i - 1]!)) throw new RangeError('histogram buckets must increase strictly');
    }
    this.counts = new Array<number>(bucketsSec.length + 1).fill(0);
  }

  /** Adds one value in seconds; negative or non-finite values are ignored (a clock step). */
  observe(valueSec: number): void {
    if (!Number.isFinite(valueSec) || valueSec < 0) return;
    let i = 0;
    while (i < this.bucketsSec.length && valueSec > this.bucketsSec[i]!) i++;
    this.counts[i]!++;
    this.sumSec += valueSec;
    this.total++;
  }

  snapshot(): HistogramSnapshot {
    return { bucketsSec: this.bucketsSec, counts: [...this.counts], sumSec: this.sumSec, count: this.total };
  }
}
