// Log lines that can be triggered from the network (SERVFAIL causes, malformed packets) go through
// a per-second budget so an attack cannot flood the journal; suppressed lines are counted and
// reported in the next line that gets through, or, when none comes, in a summary line a little
// after the burst (so the count of a burst that simply stopped is not lost).
import type { Clock } from './clock.js';
import type { Logger } from './logger.js';

/** How long after the first suppressed line of a burst its count is logged if no line carried it. */
export const SUPPRESSED_SUMMARY_DELAY_MS = 2000;

type Level = 'info' | 'warn' | 'debug';
const LEVEL_RANK: Readonly<Record<Level, number>> = { debug: 0, info: 1, warn: 2 };

export class RateLimitedLog {
  private windowStartMs = 0;
  private inWindow = 0;
  private suppressed = 0;
  /** The level and message of the last suppressed line, for the summary. */
  private last: { level: Level; msg: string } | undefined;
  private summaryTimer: NodeJS.Timeout | undefined;

  constructor(private readonly logger: Logger, private readonly clock: Clock, private readonly perSecond = 20) {}

  /** Logs at `level` unless this second's budget is spent. */
  log(level: Level, fields: Record<string, unknown>, msg: string): void {
    const now = this.clock.nowMs();
    if (now - this.windowStartMs >= 1000) {
      this.windowStartMs = now;
      this.inWindow = 0;
    }
    if (this.inWindow >= this.perSecond) {
      this.suppressed++;
      // The summary goes out at the most severe level of the burst, so a warn burst ending in a
      // debug line is not summarised where nobody looks.
      const severest = this.last && LEVEL_RANK[this.last.level] > LEVEL_RANK[level] ? this.last.level : level;
      this.last = { level: severest, msg };
      if (this.summaryTimer === undefined) {
        this.summaryTimer = setTimeout(() => this.summarise(), SUPPRESSED_SUMMARY_DELAY_MS);
        this.summaryTimer.unref();
      }
      return;
    }
    this.inWindow++;
    if (this.suppressed > 0) {
      this.logger[level]({ ...fields, suppressed: this.suppressed }, msg);
      this.suppressed = 0;
      this.last = undefined;
    } else {
      this.logger[level](fields, msg);
    }
  }

  /** The count of lines suppressed since the last line that got through, if any. */
  private summarise(): void {
    this.summaryTimer = undefined;
    if (this.suppressed === 0 || this.last === undefined) return;
    this.logger[this.last.level]({ suppressed: this.suppressed, last: this.last.msg }, 'log lines suppressed by the rate limit');
    this.suppressed = 0;
    this.last = undefined;
  }
}
