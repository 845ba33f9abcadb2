// Tests for RateLimitedLog: a per-second budget; the count of suppressed lines rides on the next
// line that gets through, or, when the burst simply stops, on a summary line shortly after.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ManualClock } from '../../src/util/clock.js';
import { RateLimitedLog, SUPPRESSED_SUMMARY_DELAY_MS } from '../../src/util/rate-limited-log.js';
import { capturingLogger } from '../helpers/capturing-logger.js';

const s = suite('util/rate-limited-log');

s('over budget lines are counted; the next line through carries the count', () => {
  const clock = new ManualClock(1_000_000);
  const { logger, lines } = capturingLogger();
  const log = new RateLimitedLog(logger, clock, 2);
  for (let i = 0; i < 5; i++) log.log('warn', { i }, 'bad request');
  assert.equal(lines().map((l) => l['i']), [0, 1]);
  clock.advanceMs(1000);
  log.log('warn', { i: 5 }, 'bad request');
  assert.equal(lines().map((l) => [l['i'], l['suppressed']]), [[0, undefined], [1, undefined], [5, 3]]);
});

s('a burst that stops has its count logged in a summary line, once', async () => {
  const clock = new ManualClock(1_000_000);
  const { logger, lines } = capturingLogger();
  const log = new RateLimitedLog(logger, clock, 1);
  for (let i = 0; i < 4; i++) log.log('info', { i }, 'malformed policy request');
  assert.is(lines().length, 1);
  await new Promise((r) => setTimeout(r, SUPPRESSED_SUMMARY_DELAY_MS + 200));
  const summary = lines().slice(1);
  assert.equal(summary.map((l) => [l['level'], l['msg'], l['suppressed'], l['last']]), [['info', 'log lines suppressed by the rate limit', 3, 'malformed policy request']]);
  // Counted once: a later line through carries no old count.
  clock.advanceMs(5000);
  log.log('info', { i: 9 }, 'malformed policy request');
  assert.is(lines().at(-1)?.['suppressed'], undefined);
});

s('the summary goes out at the most severe level of the burst', async () => {
  const clock = new ManualClock(1_000_000);
  const { logger, lines } = capturingLogger();
  const log = new RateLimitedLog(logger, clock, 1);
  log.log('warn', {}, 'first');
  log.log('warn', {}, 'refused');
  log.log('debug', {}, 'detail');
  await new Promise((r) => setTimeout(r, SUPPRESSED_SUMMARY_DELAY_MS + 200));
  assert.equal(lines().slice(1).map((l) => [l['level'], l['suppressed'], l['last']]), [['warn', 2, 'detail']]);
});

s.run();
