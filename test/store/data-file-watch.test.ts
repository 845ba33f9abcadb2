// Tests for the watch on the greylist data file under the running daemon: one error line per new
// problem (not one per check), an info line when it is gone, and no checks after the store closed.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ManualClock } from '../../src/util/clock.js';
import { ManualScheduler } from '../../src/store/scheduler.js';
import { watchDataFile } from '../../src/store/data-file-watch.js';
import { capturingLogger } from '../helpers/capturing-logger.js';

const s = suite('store/data-file-watch');

s('logs a problem once when it appears, once when it clears, and stops when the store closes', () => {
  const clock = new ManualClock(1_700_000_000_000);
  const scheduler = new ManualScheduler(clock);
  const { logger, lines } = capturingLogger();
  let problem: string | undefined;
  let closed = false;
  let checks = 0;
  watchDataFile({
    scheduler,
    logger,
    intervalMs: 60_000,
    check: () => {
      checks++;
      return closed ? null : problem;
    },
  });
  scheduler.advanceMs(60_000);
  assert.is(checks, 1);
  assert.is(lines().length, 0, 'a sound file logs nothing');
  problem = '/x/greylist/data.mdb was removed';
  scheduler.advanceMs(180_000);
  const errors = lines().filter((l) => l.level === 'error');
  assert.is(errors.length, 1, 'the same problem is logged once, not at every check');
  assert.is(errors[0]?.problem, problem);
  assert.match(String(errors[0]?.msg), 'greylist data file');
  problem = undefined;
  scheduler.advanceMs(60_000);
  assert.ok(lines().some((l) => l.level === 'info' && String(l.msg).includes('data file')));
  closed = true;
  scheduler.advanceMs(60_000);
  const after = checks;
  assert.is(scheduler.pendingCount(), 0, 'no more checks once the store is closed');
  scheduler.advanceMs(600_000);
  assert.is(checks, after);
});

s.run();
