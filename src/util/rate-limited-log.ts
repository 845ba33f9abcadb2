// Log lines that can be triggered from the network (SERVFAIL causes, malformed packets) go through
// a per-second budget so an attack cannot flood the journal; suppressed lines are counted and
// reported in the next line that gets through.
import type { Clock } from './clock.js';
import type { Logger } from './logger.js';

export class RateLimitedLog {
  private windowStartMs = 0;
  private inWindow = 0;
  private suppressed = 0;

  constructor(private readonly logger: Logger, private readonly clock: Clock, private readonly perSecond = 20) {}

  /** Logs at `level` unless this second's budget is spent. */
  log(level: 'info' | 'warn' | 'debug', fields: Record<string, unknown>, msg: string): void {
    const now = this.clock.nowMs();
    if (now - this.windowStartMs >= 1000) {
      this.windowStartMs = now;
      this.inWindow = 0;
    }
    if (this.inWindow >= this.perSecond) {
      this.suppressed++;
      return;
    }
    this.inWindow++;
    if (this.suppressed > 0) {
      this.logger[level]({ ...fields, suppressed: this.suppressed }, msg);
      this.suppressed = 0;
    } else {
      this.logger[level](fields, msg);
    }
  }
}
