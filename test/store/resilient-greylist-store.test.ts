// Tests for the fail-open wrapper: fast STORE_ERR_UNAVAILABLE while the store cannot open, backoff
// retries on a manual scheduler, one log line per state change, and recovery once the path is usable.
import { mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ManualClock } from '../../src/util/clock.js';
import { StoreError } from '../../src/util/errors.js';
import type { LmdbGreylistStore } from '../../src/store/lmdb-greylist-store.js';
import { ResilientGreylistStore } from '../../src/store/resilient-greylist-store.js';
import { ManualScheduler } from '../../src/store/scheduler.js';
import { capturingLogger } from '../helpers/capturing-logger.js';

const s = suite('store/resilient-greylist-store');
const T0 = 1_700_000_000_000;
const dirs: string[] = [];
const stores: ResilientGreylistStore[] = [];

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'mxsentry-resilient-'));
  dirs.push(d);
  return d;
}

/** Lets the (async) open attempt in flight settle: bounded turns, no timing. */
async function settle(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise<void>((resolve) => setImmediate(resolve));
  assert.ok(cond(), 'condition not reached within 500 event-loop turns');
}

s.after.each(async () => {
  for (const st of stores.splice(0)) await st.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const decideNew = () => ({ update: { triplet: { firstSeenMs: T0, lastSeenMs: T0, passedAtMs: 0, passes: {} } }, result: 'defer' });

s('unusable path: calls reject fast with STORE_ERR_UNAVAILABLE, retries back off, recovery is automatic', async () => {
  const base = tempDir();
  const blocker = join(base, 'state');
  writeFileSync(blocker, 'a regular file where the state directory should be');
  const clock = new ManualClock(T0);
  const scheduler = new ManualScheduler(clock);
  const { logger, lines } = capturingLogger();
  const opened: LmdbGreylistStore[] = [];
  const store = ResilientGreylistStore.start({
    dataDir: join(blocker, 'mxsentry'),
    clock,
    logger,
    scheduler,
    retryMinMs: 1000,
    retryMaxMs: 4000,
    onOpen: (st) => opened.push(st),
  });
  stores.push(store);
  assert.not.ok(store.isHealthy());

  // Before and after the first attempt failed: every call rejects at once.
  const first = await store.transact('t', 'c', decideNew).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.instance(first, StoreError);
  assert.is((first as StoreError).code, 'STORE_ERR_UNAVAILABLE');
  await settle(() => scheduler.pendingCount() === 1);
  assert.is(store.lastError()?.code, 'STORE_ERR_OPEN');
  try {
    await store.read('t', 'c');
    assert.unreachable('read should reject');
  } catch (err) {
    assert.is((err as StoreError).code, 'STORE_ERR_UNAVAILABLE');
    assert.match((err as StoreError).message, 'ENOTDIR');
  }

  // Backoff: 1 s, 2 s, 4 s, then capped at 4 s.
  const delays: number[] = [];
  for (let i = 0; i < 4; i++) {
    const delay = scheduler.nextDelayMs();
    assert.ok(delay !== undefined);
    delays.push(delay);
    scheduler.advanceMs(delay);
    await settle(() => scheduler.pendingCount() === 1);
  }
  assert.equal(delays, [1000, 2000, 4000, 4000]);
  const errorLines = lines().filter((l) => l.level === 'error');
  assert.is(errorLines.length, 1, 'the same failure is logged once, not per retry');
  assert.is(errorLines[0]?.code, 'STORE_ERR_OPEN');

  // Make the path usable; the next retry opens the store by itself.
  unlinkSync(blocker);
  mkdirSync(blocker);
  scheduler.advanceMs(scheduler.nextDelayMs() ?? 0);
  const inner = await store.whenOpen();
  assert.is(store.current(), inner);
  assert.is(opened.length, 1);
  assert.ok(store.isHealthy());
  assert.is(store.lastError(), undefined);
  assert.is(await store.transact('t', 'c', decideNew), 'defer');
  assert.equal((await store.read('t', 'c')).triplet, { firstSeenMs: T0, lastSeenMs: T0, passedAtMs: 0, passes: {} });
  assert.is(scheduler.pendingCount(), 0, 'no more retries once open');
  assert.ok(lines().some((l) => l.level === 'info' && String(l.msg).includes('available again')));
});

s('a usable path opens on the first attempt', async () => {
  const clock = new ManualClock(T0);
  const store = ResilientGreylistStore.start({ dataDir: tempDir(), clock, logger: capturingLogger().logger, scheduler: new ManualScheduler(clock) });
  stores.push(store);
  await store.whenOpen();
  assert.ok(store.isHealthy());
  assert.is(await store.transact('t', 'c', decideNew), 'defer');
});

s('close during the first open waits until what was opened is closed again (shutdown never races LMDB)', async () => {
  const clock = new ManualClock(T0);
  const log = capturingLogger();
  const store = ResilientGreylistStore.start({ dataDir: tempDir(), clock, logger: log.logger, scheduler: new ManualScheduler(clock) });
  // No await between start and close: the open is still in flight.
  const again = store.close();
  await store.close();
  await again;
  const msgs = log.lines().map((l) => l.msg);
  assert.ok(msgs.includes('greylist store closed'), `closed before close() resolved: ${msgs.join(' | ')}`);
  assert.not.ok(store.isHealthy());
});

s('close stops retrying and rejects waiters and calls with STORE_ERR_CLOSED', async () => {
  const base = tempDir();
  writeFileSync(join(base, 'f'), 'x');
  const clock = new ManualClock(T0);
  const scheduler = new ManualScheduler(clock);
  const store = ResilientGreylistStore.start({ dataDir: join(base, 'f', 'd'), clock, logger: capturingLogger().logger, scheduler });
  const waiting = store.whenOpen().then(
    () => 'opened',
    (e: unknown) => (e as StoreError).code,
  );
  await settle(() => scheduler.pendingCount() === 1);
  await store.close();
  assert.is(await waiting, 'STORE_ERR_CLOSED');
  assert.is(scheduler.pendingCount(), 0);
  try {
    await store.transact('t', 'c', decideNew);
    assert.unreachable('should reject');
  } catch (err) {
    assert.is((err as StoreError).code, 'STORE_ERR_CLOSED');
  }
});

s.run();
