// Brings the greylist store back into use after a failure (an I/O error, a full store). Used by
// lmdb-greylist-store.ts (and expiry.ts, for its probe write): the policy service stops writing to an
// unhealthy store, and a node without peers may have no log left to trim, so without this probe only
// the hourly expiry sweep would notice that writes work again. It never decides or writes records.
// Also the free-space checks: roomProblem here, checkRoomToCreate before lmdb-env.ts opens a store.
import { accessSync, constants as fsConstants, statfsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock } from '../util/clock.js';
import { describeError, StoreError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import type { LmdbEnv } from './lmdb-env.js';
import { encodeMetaValue } from './record-codec.js';
import type { ScheduledTask, Scheduler } from './scheduler.js';
import { StoreErrorCode } from './store-error-code.js';

/** First probe after a failure; each failed probe doubles the wait, up to RECOVERY_PROBE_MAX_MS. */
export const RECOVERY_PROBE_MIN_MS = 1000;
export const RECOVERY_PROBE_MAX_MS = 30_000;

/** `meta` key the probe writes: an empty transaction commits without touching the file, so proves nothing. */
const PROBE_KEY = 'recoveryProbeMs';

/** What the probe needs from its store. */
export interface RecoveryProbeDeps {
  env: LmdbEnv;
  clock: Clock;
  scheduler: Scheduler;
  logger: Logger;
  /** True once there is nothing left to probe for: the store is healthy again, or closed. */
  isDone(): boolean;
  /** The store's health bookkeeping around a write's promise: a committed write restores health. */
  tracked<T>(p: Promise<T>): Promise<T>;
  /** Upper bound of the pages one decision writes: a store still too full for one stays unhealthy. */
  decisionPages: number;
  /** Free bytes of the filesystem holding a path (default: statfs); undefined when it cannot be told. */
  freeBytes?: (path: string) => number | undefined;
}

/**
 * Free space the filesystem of the store must have before a probe may restore health. A probe's
 * small write reuses pages the file already has, so it commits on a full disk while every
 * decision that needs a new page fails: without this the store flapped between "failure" and
 * "healthy again" every second while the disk stayed full.
 */
export const RECOVERY_MIN_FREE_BYTES = 1024 * 1024;

/**
 * Free bytes this process may write on the filesystem holding `path` (statfs: the blocks reserved
 * for root count when running as root), or undefined when it cannot be told.
 */
export function filesystemFreeBytes(path: string): number | undefined {
  try {
    const st = statfsSync(path);
    return (process.getuid?.() === 0 ? st.bfree : st.bavail) * st.bsize;
  } catch {
    return undefined;
  }
}

/**
 * While started, checks on the scheduler that a decision's write fits and that a write transaction
 * of one small `meta` value commits; the commit restores the store's health through `tracked`.
 */
export class RecoveryProbe {
  private task: ScheduledTask | undefined;
  private running = false;
  private delayMs = RECOVERY_PROBE_MIN_MS;
  /** The reason of the last failed probe that was logged at info. */
  private lastReason: string | undefined;

  constructor(private readonly deps: RecoveryProbeDeps) {}

  /** Starts probing after a failure; nothing when probing already. */
  start(): void {
    if (this.task || this.running) return;
    this.delayMs = RECOVERY_PROBE_MIN_MS;
    this.lastReason = undefined;
    this.schedule();
  }

  /** Cancels the next probe (close); one already running finishes. */
  stop(): void {
    this.task?.cancel();
    this.task = undefined;
  }

  private schedule(): void {
    this.task = this.deps.scheduler.schedule(this.delayMs, () => {
      this.task = undefined;
      if (this.deps.isDone()) return;
      this.running = true;
      this.probe()
        .catch((err: unknown) => {
          // Said once per reason at info (a full filesystem, which purging does not fix, reads
          // differently from a full store), then at debug for every retry.
          const why = describeError(err);
          const level = why === this.lastReason ? 'debug' : 'info';
          this.lastReason = why;
          this.deps.logger[level]({ err: why, retryInMs: this.delayMs * 2 }, 'greylist store still failing');
        })
        .finally(() => {
          this.running = false;
          if (this.deps.isDone()) return;
          this.delayMs = Math.min(RECOVERY_PROBE_MAX_MS, this.delayMs * 2);
          this.schedule();
        });
    });
  }

  /**
   * Why health may not come back now (the store's filesystem under RECOVERY_MIN_FREE_BYTES free),
   * or undefined. Asked by the probe and by the store before any committed write restores health
   * (a peer's merge or the expiry sweep also reuses pages and commits on a full disk).
   */
  roomProblem(): string | undefined {
    const path = this.deps.env.path;
    const free = (this.deps.freeBytes ?? filesystemFreeBytes)(path);
    if (free === undefined || free >= RECOVERY_MIN_FREE_BYTES) return undefined;
    return `the filesystem holding ${path} has ${Math.floor(free / 1024)} KiB free: the store stays failed (open) until there is room`;
  }

  private probe(): Promise<unknown> {
    const { env } = this.deps;
    try {
      // A small write may succeed in a full store: health must not come back for a decision that cannot fit.
      env.checkFits(this.deps.decisionPages);
    } catch (err) {
      return Promise.reject(err);
    }
    const short = this.roomProblem();
    if (short !== undefined) return Promise.reject(new StoreError(StoreErrorCode.FULL, short));
    return this.deps.tracked(writeProbeStamp(env, this.deps.clock.nowMs()));
  }
}

/**
 * Commits one small `meta` value: a write that reaches the file, so its success shows the store
 * usable again (an empty transaction commits without touching the file). Also the expiry sweep's.
 */
export function writeProbeStamp(env: LmdbEnv, nowMs: number): Promise<unknown> {
  const stamp = encodeMetaValue(nowMs);
  return env.write('probing the store', (tx) => tx.put(env.meta, PROBE_KEY, stamp), { grows: false });
}

/**
 * LMDB makes its lock file (and a new data file's first pages) as sparse files and writes them
 * through its memory map: on a full filesystem that write is a SIGBUS that ends the process (DNS
 * with it), not an error. So a store whose lock file is absent or unwritten, or whose data file is new,
 * is not opened with less than RECOVERY_MIN_FREE_BYTES free; the daemon fails open and tries again.
 */
export function checkRoomToCreate(path: string, dataIsNew: boolean, freeBytes: (path: string) => number | undefined): void {
  let lockUnwritten = true;
  try {
    const st = statSync(join(path, 'lock.mdb'));
    // LMDB writes the header of its lock file at once: a used one has blocks (a crash mid-create has none).
    lockUnwritten = st.size === 0 || st.blocks === 0;
  } catch {
    // absent: LMDB creates it
  }
  if (!lockUnwritten && !dataIsNew) return;
  const free = freeBytes(path);
  if (free === undefined || free >= RECOVERY_MIN_FREE_BYTES) return;
  throw new StoreError(
    StoreErrorCode.OPEN,
    `the filesystem holding ${path} has ${Math.floor(free / 1024)} KiB free: LMDB cannot create its ${dataIsNew ? 'data and lock files' : 'lock file'} there without a fault; free some space (the store opens on its next attempt)`,
  );
}

/**
 * lmdb-js fails a batch whose commit the system refused with "Commit failed (see commitError for
 * details)", and its commitError need never settle: the system's reason reaches only stderr (LMDB's
 * "Write error: ..." line). This tells the likely cause from the environment itself, for the log,
 * `stats` and the status: the data file that cannot be written (EPERM of an immutable file, EROFS,
 * EACCES), or a full filesystem (as ENOSPC, so it counts as a full store). Any other error, or a
 * generic one with neither cause found, is returned as it is.
 */
export function explainCommitFailure(err: unknown, envPath: string, freeBytes: (path: string) => number | undefined = filesystemFreeBytes): unknown {
  const message = err instanceof Error ? err.message : String(err);
  if (!/^Commit failed/.test(message)) return err;
  const file = join(envPath, 'data.mdb');
  try {
    accessSync(file, fsConstants.R_OK | fsConstants.W_OK);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code ?? 'error';
    return Object.assign(new Error(`the commit failed: ${file} cannot be written (${code}${code === 'EPERM' ? ': an immutable or append-only file? see lsattr' : ''})`, { cause }), { code });
  }
  const free = freeBytes(envPath);
  if (free !== undefined && free < RECOVERY_MIN_FREE_BYTES) {
    return Object.assign(new Error(`the commit failed: the filesystem holding ${envPath} is full (${free} bytes free)`, { cause: err }), { code: 'ENOSPC' });
  }
  return Object.assign(new Error(`the commit failed (an I/O error: LMDB's "Write error" line, logged by the daemon as "a library wrote to the console", names it)`, { cause: err }), { code: (err as { code?: unknown }).code });
}
