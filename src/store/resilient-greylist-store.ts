// Fail-open wrapper used by main.ts: the daemon starts even when the greylist store cannot be
// opened (directory missing, not writable, disk trouble). Until it opens, every call rejects fast
// with STORE_ERR_UNAVAILABLE (the policy service answers DUNNO) while opening is retried in the
// background with capped exponential backoff on unref'd timers. It must never block or crash startup.
import type { Clock } from '../util/clock.js';
import { describeError, StoreError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import type { ClientRecord, Decided, DecideOptions, GreylistStore, GreylistUpdate, TripletRecord } from './greylist-types.js';
import { LmdbGreylistStore } from './lmdb-greylist-store.js';
import { TimerScheduler, type ScheduledTask, type Scheduler } from './scheduler.js';
import { StoreErrorCode } from './store-error-code.js';

/** Options for ResilientGreylistStore.start. */
export interface ResilientGreylistStoreOptions {
  dataDir: string;
  clock: Clock;
  logger: Logger;
  mapSizeBytes?: number;
  /** First retry delay after a failed open (default 1 s); doubled per failure up to retryMaxMs. */
  retryMinMs?: number;
  /** Longest delay between open attempts (default 60 s). */
  retryMaxMs?: number;
  /** Timers for retries and the inner store's expiry (default: unref'd Node timers). */
  scheduler?: Scheduler;
  /** Called once when the store opens (e.g. to start expiry and replication). */
  onOpen?: (store: LmdbGreylistStore) => void;
}

type OpenWaiter = { resolve: (s: LmdbGreylistStore) => void; reject: (e: unknown) => void };

/** A GreylistStore that is usable from the first moment and becomes functional once LMDB opens. */
export class ResilientGreylistStore implements GreylistStore {
  private inner: LmdbGreylistStore | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;
  /** The open attempt in flight, if any. */
  private opening: Promise<void> | undefined;
  private attempts = 0;
  private attempting = false;
  private retryTask: ScheduledTask | undefined;
  private lastFailure: StoreError | undefined;
  private lastLoggedFailure = '';
  private waiters: OpenWaiter[] = [];
  private readonly scheduler: Scheduler;
  private readonly retryMinMs: number;
  private readonly retryMaxMs: number;

  private constructor(private readonly opts: ResilientGreylistStoreOptions) {
    this.scheduler = opts.scheduler ?? new TimerScheduler();
    this.retryMinMs = Math.max(1, opts.retryMinMs ?? 1000);
    this.retryMaxMs = Math.max(this.retryMinMs, opts.retryMaxMs ?? 60_000);
  }

  /** Creates the store and starts the first open attempt at once; never throws for store trouble. */
  static start(opts: ResilientGreylistStoreOptions): ResilientGreylistStore {
    const store = new ResilientGreylistStore(opts);
    store.startAttempt();
    return store;
  }

  /** {@inheritDoc GreylistStore.decideNow} Throws STORE_ERR_UNAVAILABLE while the store is not open. */
  decideNow<T>(
    tripletKey: string,
    clientKey: string,
    decide: (triplet: TripletRecord | undefined, client: ClientRecord | undefined) => { update: GreylistUpdate; result: T },
    opts?: DecideOptions,
  ): Decided<T> {
    const inner = this.inner;
    if (!inner) throw this.unavailable();
    return inner.decideNow(tripletKey, clientKey, decide, opts);
  }

  /** {@inheritDoc GreylistStore.transact} Rejects with STORE_ERR_UNAVAILABLE while the store is not open. */
  transact<T>(
    tripletKey: string,
    clientKey: string,
    decide: (triplet: TripletRecord | undefined, client: ClientRecord | undefined) => { update: GreylistUpdate; result: T },
  ): Promise<T> {
    const inner = this.inner;
    if (!inner) return Promise.reject(this.unavailable());
    return inner.transact(tripletKey, clientKey, decide);
  }

  /** LmdbGreylistStore.read; rejects with STORE_ERR_UNAVAILABLE while the store is not open. */
  read(tripletKey: string, clientKey: string): Promise<{ triplet: TripletRecord | undefined; client: ClientRecord | undefined }> {
    const inner = this.inner;
    if (!inner) return Promise.reject(this.unavailable());
    return inner.read(tripletKey, clientKey);
  }

  /** False until the store is open, then the inner store's health. */
  isHealthy(): boolean {
    return this.inner?.isHealthy() ?? false;
  }

  /** The open LMDB store (for the CLI, metrics and replication), or undefined while unavailable. */
  current(): LmdbGreylistStore | undefined {
    return this.inner;
  }

  /** The last reason opening failed, while the store is unavailable. */
  lastError(): StoreError | undefined {
    return this.inner ? undefined : this.lastFailure;
  }

  /** Why the store is not usable now: opening failed, or the open store failed (a full disk, EIO). */
  failure(): StoreError | undefined {
    return this.inner ? this.inner.lastFailure() : this.lastFailure;
  }

  /** Resolves with the store once it is open; rejects with STORE_ERR_CLOSED if closed first. */
  whenOpen(): Promise<LmdbGreylistStore> {
    if (this.inner) return Promise.resolve(this.inner);
    if (this.closed) return Promise.reject(this.closedError());
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /**
   * Waits, at most `timeoutMs`, for the open attempt in progress (the first one includes the
   * integrity check of an existing file), so the daemon can start taking decisions with the store
   * open instead of failing open for its first moments. Never rejects.
   */
  async settled(timeoutMs: number): Promise<void> {
    const attempt = this.opening;
    if (!attempt) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([attempt, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
  }

  /** Stops retrying and closes the inner store when open. */
  close(): Promise<void> {
    if (!this.closing) {
      this.closed = true;
      this.retryTask?.cancel();
      this.retryTask = undefined;
      for (const w of this.waiters.splice(0)) w.reject(this.closedError());
      this.closing = (async () => {
        // An open in flight sees `closed` and closes what it opened; wait for that, so the caller
        // (shutdown) never exits while LMDB is still being opened or closed.
        if (this.opening) await this.opening;
        const inner = this.inner;
        if (inner) await inner.close();
      })();
    }
    return this.closing;
  }

  /** Starts one open attempt, remembered so close() can wait for it. */
  private startAttempt(): void {
    const p = this.attempt()
      .catch((err: unknown) => this.opts.logger.error({ err: describeError(err) }, 'greylist store open attempt failed unexpectedly'))
      .finally(() => {
        if (this.opening === p) this.opening = undefined;
      });
    this.opening = p;
  }

  private async attempt(): Promise<void> {
    if (this.closed || this.inner || this.attempting) return;
    this.attempting = true;
    this.retryTask = undefined;
    this.attempts++;
    let store: LmdbGreylistStore;
    try {
      store = await LmdbGreylistStore.open({
        dataDir: this.opts.dataDir,
        clock: this.opts.clock,
        logger: this.opts.logger,
        mapSizeBytes: this.opts.mapSizeBytes,
        scheduler: this.scheduler,
        // A damaged file must fail this open, not abort the daemon (and DNS with it) inside LMDB.
        verify: true,
      });
    } catch (err) {
      this.attempting = false;
      this.failed(err);
      return;
    }
    this.attempting = false;
    if (this.closed) {
      await store.close().catch((err: unknown) => this.opts.logger.warn({ err: describeError(err) }, 'closing the greylist store after shutdown failed'));
      return;
    }
    this.inner = store;
    if (this.lastFailure) {
      this.opts.logger.info({ attempts: this.attempts }, 'greylist store available again: greylisting resumes');
    }
    this.lastFailure = undefined;
    this.lastLoggedFailure = '';
    for (const w of this.waiters.splice(0)) w.resolve(store);
    if (this.opts.onOpen) {
      try {
        this.opts.onOpen(store);
      } catch (err) {
        this.opts.logger.error({ err: describeError(err) }, 'greylist store onOpen callback failed');
      }
    }
  }

  private failed(err: unknown): void {
    const error =
      err instanceof StoreError ? err : new StoreError(StoreErrorCode.OPEN, `opening the greylist store failed: ${describeError(err)}`, { cause: err });
    this.lastFailure = error;
    const delayMs = Math.min(this.retryMaxMs, this.retryMinMs * 2 ** Math.min(30, this.attempts - 1));
    // Once per state change: the same reason again is only a debug line, a new reason is an error.
    const signature = `${error.code}: ${error.message}`;
    if (signature !== this.lastLoggedFailure) {
      this.lastLoggedFailure = signature;
      this.opts.logger.error(
        { code: error.code, err: error.message, retryInMs: delayMs },
        'greylist store unavailable: greylisting is skipped (fail open) until it opens',
      );
    } else {
      this.opts.logger.debug({ code: error.code, attempts: this.attempts, retryInMs: delayMs }, 'greylist store still unavailable');
    }
    if (!this.closed) this.retryTask = this.scheduler.schedule(delayMs, () => {
        this.startAttempt();
      });
  }

  private unavailable(): StoreError {
    if (this.closed) return this.closedError();
    const reason = this.lastFailure ? `: ${this.lastFailure.message}` : ' (opening)';
    return new StoreError(StoreErrorCode.UNAVAILABLE, `greylist store unavailable${reason}`, { cause: this.lastFailure });
  }

  private closedError(): StoreError {
    return new StoreError(StoreErrorCode.CLOSED, 'the greylist store is closed');
  }
}
