// One-shot timers for the store's background work (expiry sweeps, open retries). Production uses
// unref'd Node timers so a pending retry or sweep never keeps the process alive; tests use
// ManualScheduler driven by a ManualClock so backoff and expiry are checked without sleeping.
import type { Clock } from '../util/clock.js';

/** A scheduled task; cancel() is idempotent. */
export interface ScheduledTask {
  cancel(): void;
}

/** Contract: `schedule` runs `fn` once, no earlier than `delayMs` from now, unless cancelled. */
export interface Scheduler {
  schedule(delayMs: number, fn: () => void): ScheduledTask;
}

/** Real timers, unref'd: background store work must not hold the event loop open. */
export class TimerScheduler implements Scheduler {
  schedule(delayMs: number, fn: () => void): ScheduledTask {
    const timer = setTimeout(fn, Math.max(0, delayMs));
    timer.unref();
    return { cancel: () => clearTimeout(timer) };
  }
}

interface PendingTask {
  dueMs: number;
  order: number;
  fn: () => void;
  cancelled: boolean;
}

/** A scheduler that only fires when the test advances it; shares the time line of a ManualClock. */
export class ManualScheduler implements Scheduler {
  private tasks: PendingTask[] = [];
  private order = 0;

  constructor(private readonly clock: Clock & { setMs(ms: number): void }) {}

  schedule(delayMs: number, fn: () => void): ScheduledTask {
    const task: PendingTask = { dueMs: this.clock.nowMs() + Math.max(0, delayMs), order: this.order++, fn, cancelled: false };
    this.tasks.push(task);
    return {
      cancel: () => {
        task.cancelled = true;
      },
    };
  }

  /** Number of tasks scheduled and not yet run or cancelled. */
  pendingCount(): number {
    return this.tasks.filter((t) => !t.cancelled).length;
  }

  /** Delay from now until the earliest pending task, or undefined when none. */
  nextDelayMs(): number | undefined {
    const next = this.earliest();
    return next ? Math.max(0, next.dueMs - this.clock.nowMs()) : undefined;
  }

  /**
   * Moves the clock forward by `ms`, running every task that falls due, in due order, with the clock
   * set to each task's due time (tasks scheduled by a running task fire too if due within the span).
   * Returns the number of tasks run.
   */
  advanceMs(ms: number): number {
    const endMs = this.clock.nowMs() + ms;
    let ran = 0;
    for (;;) {
      const next = this.earliest();
      if (!next || next.dueMs > endMs) break;
      this.tasks = this.tasks.filter((t) => t !== next);
      if (next.dueMs > this.clock.nowMs()) this.clock.setMs(next.dueMs);
      next.fn();
      ran++;
    }
    if (endMs > this.clock.nowMs()) this.clock.setMs(endMs);
    return ran;
  }

  private earliest(): PendingTask | undefined {
    this.tasks = this.tasks.filter((t) => !t.cancelled);
    let best: PendingTask | undefined;
    for (const t of this.tasks) if (!best || t.dueMs < best.dueMs || (t.dueMs === best.dueMs && t.order < best.order)) best = t;
    return best;
  }
}
