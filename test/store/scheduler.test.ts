// Tests for the store's timers: the manual scheduler used by the store tests, and the real one.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ManualClock } from '../../src/util/clock.js';
import { ManualScheduler, TimerScheduler } from '../../src/store/scheduler.js';

const s = suite('store/scheduler');

s('ManualScheduler runs due tasks in order, at their due time, and honours cancel', () => {
  const clock = new ManualClock(1000);
  const sched = new ManualScheduler(clock);
  const log: string[] = [];
  sched.schedule(300, () => log.push(`c@${clock.nowMs()}`));
  sched.schedule(100, () => log.push(`a@${clock.nowMs()}`));
  const cancelled = sched.schedule(200, () => log.push('b'));
  cancelled.cancel();
  assert.is(sched.pendingCount(), 2);
  assert.is(sched.nextDelayMs(), 100);
  assert.is(sched.advanceMs(150), 1);
  assert.equal(log, ['a@1100']);
  assert.is(clock.nowMs(), 1150);
  assert.is(sched.advanceMs(1000), 1);
  assert.equal(log, ['a@1100', 'c@1300']);
  assert.is(clock.nowMs(), 2150);
  assert.is(sched.nextDelayMs(), undefined);
});

s('ManualScheduler fires tasks scheduled by a task within the same advance', () => {
  const clock = new ManualClock(0);
  const sched = new ManualScheduler(clock);
  let n = 0;
  const tick = (): void => {
    n++;
    sched.schedule(10, tick);
  };
  sched.schedule(10, tick);
  sched.advanceMs(35);
  assert.is(n, 3);
  assert.is(sched.pendingCount(), 1);
});

s('TimerScheduler fires and cancels real (unref’d) timers', async () => {
  const sched = new TimerScheduler();
  let cancelledRan = false;
  sched.schedule(0, () => {
    cancelledRan = true;
  }).cancel();
  // The scheduler's timers are unref'd: hold the loop open with a ref'd guard while waiting.
  const guard = setTimeout(() => undefined, 5000);
  try {
    await new Promise<void>((resolve) => sched.schedule(1, resolve));
  } finally {
    clearTimeout(guard);
  }
  assert.not.ok(cancelledRan);
});

s.run();
