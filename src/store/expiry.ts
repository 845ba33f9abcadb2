// Greylist expiry for the LMDB store (lmdb-greylist-store.ts, its only caller): the purge of
// triplets and clients not seen within the maximum age, in short write transactions, and the
// periodic sweep that runs it on the store's scheduler. It never decides greylisting; the store
// passes in its health tracking and its corrupt-record reporting.
import type { Clock } from '../util/clock.js';
import { describeError, StoreError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import type { LmdbEnv } from './lmdb-env.js';
import { isExpiredRecord, type ClientRecord, type TripletRecord } from './greylist-types.js';
import { decodeRecord } from './record-codec.js';
import { writeProbeStamp } from './recovery-probe.js';
import type { ScheduledTask, Scheduler } from './scheduler.js';
import { StoreErrorCode } from './store-error-code.js';

/** Keys examined per write transaction by purge and trimLog, so a sweep never blocks the loop long. */
export const SWEEP_BATCH = 500;

/** What purge removed. */
export interface PurgeResult {
  triplets: number;
  clients: number;
  /** Undecodable records removed on the way. */
  corrupt: number;
}

/** Handle of a running expiry sweep. */
export interface ExpiryHandle {
  /** Cancels future sweeps; one already running finishes. */
  stop(): void;
  /** Resolves when no sweep is running (at once when idle); never rejects. */
  whenIdle(): Promise<void>;
}

/** What purgeExpired needs from its store. */
export interface PurgeDeps {
  env: LmdbEnv;
  /** The store's health bookkeeping around a write's promise. */
  tracked<T>(p: Promise<T>): Promise<T>;
  /** Logs and counts an undecodable record. */
  reportCorrupt(what: string, key: string, err: unknown, during: string): void;
}

/**
 * Deletes triplets and clients whose lastSeenMs is older than `nowMs - maxAgeMs`, triplets that never
 * passed and were not seen within `retryWindowMs` (postgrey's nightly maintenance: on a spam-heavy MX
 * most triplets are never retried, so they go after days, not after max-age), and undecodable
 * records, in batches of short write transactions; each record is re-checked inside its
 * transaction, so one refreshed by a concurrent decision is kept. A purge ends with a probe write
 * (writeProbeStamp) whose commit clears the store's failure state: the sweep is a recovery probe too.
 */
export async function purgeExpired(deps: PurgeDeps, nowMs: number, maxAgeMs: number, retryWindowMs = Infinity): Promise<PurgeResult> {
  const { env } = deps;
  const result: PurgeResult = { triplets: 0, clients: 0, corrupt: 0 };
  // A batch that removed nothing commits without touching the file: only its failure says anything.
  const failureOnly = <T>(p: Promise<T>): Promise<T> => p.catch((err: unknown) => deps.tracked(Promise.reject<T>(err)));
  for (const kind of ['triplet', 'client'] as const) {
    const db = kind === 'triplet' ? env.triplets : env.clients;
    let after: string | undefined;
    for (;;) {
      const keys = env.read('scanning for expired records', () =>
        Array.from(db.getKeys(after === undefined ? { limit: SWEEP_BATCH } : { start: after, limit: SWEEP_BATCH + 1 })).filter((k) => k !== after),
      );
      if (keys.length === 0) break;
      after = keys[keys.length - 1];
      const removed = await failureOnly(
        env.write('purging expired records', (tx) => {
          let expired = 0;
          let corrupt = 0;
          for (const key of keys) {
            const bytes = db.get(key);
            if (bytes === undefined) continue;
            let record: TripletRecord | ClientRecord;
            try {
              record = decodeRecord(kind, bytes);
            } catch (err) {
              deps.reportCorrupt(kind, key, err, 'purging');
              tx.remove(db, key);
              corrupt++;
              continue;
            }
            if (isExpiredRecord(kind, record, nowMs, maxAgeMs, retryWindowMs)) {
              tx.remove(db, key);
              expired++;
            }
          }
          return { expired, corrupt };
        }, { grows: false }),
      );
      if (kind === 'triplet') result.triplets += removed.expired;
      else result.clients += removed.expired;
      result.corrupt += removed.corrupt;
      if (keys.length < SWEEP_BATCH) break;
    }
  }
  // The policy stops calling an unhealthy store: this write, which reaches the file, is what clears
  // isHealthy() after a failure (with recovery-probe.ts, which does it sooner).
  await deps.tracked(writeProbeStamp(env, nowMs));
  return result;
}

interface SweepState {
  task: ScheduledTask | undefined;
  stopped: boolean;
  running: Promise<void> | undefined;
}

/** The store's periodic expiry: at most one sweep scheduled or running at a time. */
export class ExpirySweep {
  private current: SweepState | undefined;

  constructor(
    private readonly deps: {
      scheduler: Scheduler;
      clock: Clock;
      logger: Logger;
      isClosed(): boolean;
      purge(nowMs: number, maxAgeMs: number, retryWindowMs: number): Promise<PurgeResult>;
    },
  ) {}

  /**
   * Runs purge(clock.nowMs(), maxAgeMs, retryWindowMs) every `intervalMs` on the scheduler (the next sweep is
   * scheduled when one finishes, so sweeps never overlap). Failures are logged, never thrown.
   * Starting again replaces the previous sweep.
   */
  start(intervalMs: number, maxAgeMs: number, retryWindowMs = Infinity): ExpiryHandle {
    this.stop();
    const { scheduler, clock, logger } = this.deps;
    const state: SweepState = { task: undefined, stopped: false, running: undefined };
    this.current = state;
    const tick = (): void => {
      state.task = undefined;
      if (state.stopped || this.deps.isClosed()) return;
      state.running = this.deps.purge(clock.nowMs(), maxAgeMs, retryWindowMs)
        .then(
          (r) => {
            if (r.triplets + r.clients + r.corrupt > 0) logger.info({ ...r, maxAgeMs, retryWindowMs }, 'greylist expiry removed old records');
          },
          (err: unknown) => {
            if (err instanceof StoreError && err.code === StoreErrorCode.CLOSED) logger.debug('greylist expiry stopped by close');
            else logger.error({ err: describeError(err) }, 'greylist expiry failed');
          },
        )
        .finally(() => {
          state.running = undefined;
          if (!state.stopped && !this.deps.isClosed()) state.task = scheduler.schedule(intervalMs, tick);
        });
    };
    state.task = scheduler.schedule(intervalMs, tick);
    return { stop: () => this.stopState(state), whenIdle: async () => state.running };
  }

  /** Stops the sweep started last (one already running finishes). */
  stop(): void {
    this.stopState(this.current);
  }

  private stopState(which: SweepState | undefined): void {
    if (!which) return;
    which.stopped = true;
    which.task?.cancel();
    if (this.current === which) this.current = undefined;
  }
}
