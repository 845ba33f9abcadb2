// Time source for every module. Production uses the system clock; tests inject a ManualClock so
// TTL expiry, greylist delays and backoffs are checked without sleeping. Nothing else reads Date.now().

/** Contract: nowMs() is wall-clock milliseconds and never goes backwards within one Clock. */
export interface Clock {
  nowMs(): number;
}

/** The real clock, monotonic-guarded: a wall-clock step backwards is held until time catches up. */
export class SystemClock implements Clock {
  private last = 0;
  nowMs(): number {
    const now = Date.now();
    if (now > this.last) this.last = now;
    return this.last;
  }
}

/** A clock that only moves when told to; for tests and simulations. */
export class ManualClock implements Clock {
  constructor(private now = 1_700_000_000_000) {}
  nowMs(): number {
    return this.now;
  }
  advanceMs(ms: number): void {
    this.now += ms;
  }
  advanceSec(sec: number): void {
    this.now += sec * 1000;
  }
  setMs(ms: number): void {
    this.now = ms;
  }
}

/** Shared system clock instance. */
export const systemClock: Clock = new SystemClock();
