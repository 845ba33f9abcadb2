// Per-list counters of the DnsListChecker (dns-lists.ts), read by `mxsentry stats` and the metrics
// endpoint: one row per tier and entry, each consulted lookup counted once in `queries` and in its
// verdict's counter, a list not consulted (suspended) in `skipped` alone. Bookkeeping only: it
// neither logs nor looks anything up.
import type { DnsListResult, DnsListTier } from './dns-list-answers.js';
import type { DnsListSpec } from './dns-list-spec.js';

/** Per-list counters since start; a request's lookup counts in `queries` and one verdict's counter at most, or in `skipped` alone. */
export interface DnsListStats {
  tier: DnsListTier;
  list: string;
  /** Lookups consulted for a decision. */
  queries: number;
  listed: number;
  /** errors: the list answered an error code (127.255.255.x, outside 127/8); failures: SERVFAIL and the like; timeouts: no answer in budget. */
  errors: number;
  failures: number;
  timeouts: number;
  /** Requests for which the list was not consulted: suspended by its self test (127.0.0.1 listed), or before its first self test ended. */
  skipped: number;
}

type Counts = Omit<DnsListStats, 'tier' | 'list'>;

const zero = (): Counts => ({ queries: 0, listed: 0, errors: 0, failures: 0, timeouts: 0, skipped: 0 });

/** The counters of one checker's lists; an entry given twice (it weighs twice, as in postscreen) shares one row. */
export class DnsListCounters {
  private readonly byKey = new Map<string, Counts>();
  private readonly rowsInOrder: Array<{ tier: DnsListTier; list: string; key: string }> = [];

  /** `lists` in pipeline order, each tier's in configuration order: the order of the rows. */
  constructor(lists: ReadonlyArray<readonly [DnsListTier, readonly DnsListSpec[]]>) {
    for (const [tier, specs] of lists) {
      for (const spec of specs) {
        const key = keyOf(tier, spec);
        if (this.byKey.has(key)) continue;
        this.byKey.set(key, zero());
        this.rowsInOrder.push({ tier, list: spec.text, key });
      }
    }
  }

  /** Counts one list's result for one request. */
  count(r: DnsListResult): void {
    const c = this.byKey.get(keyOf(r.tier, r.list));
    if (!c) return;
    if (r.verdict === 'skipped') {
      c.skipped++;
      return;
    }
    c.queries++;
    if (r.verdict === 'listed') c.listed++;
    else if (r.verdict === 'error') c.errors++;
    else if (r.verdict === 'failed') c.failures++;
    else if (r.verdict === 'timeout') c.timeouts++;
  }

  /** One row per tier and entry text, tiers in pipeline order. */
  rows(): DnsListStats[] {
    return this.rowsInOrder.map(({ tier, list, key }) => ({ tier, list, ...(this.byKey.get(key) ?? zero()) }));
  }
}

function keyOf(tier: DnsListTier, spec: DnsListSpec): string {
  return `${tier}\u0000${spec.text}`;
}
