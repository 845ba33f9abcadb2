// Checks now and then, while the daemon runs, that the greylist's data file is still the one the
// store has open (LmdbEnv.dataFileProblem) and logs when it is not: removed, replaced, or its
// directory made unusable. Started by main.ts once the store opens. It only reports; it never
// closes, reopens or copies the store.
import { describeError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import type { ScheduledTask, Scheduler } from './scheduler.js';

/** Options for watchDataFile. */
export interface DataFileWatchOptions {
  /** The problem now, undefined when there is none, null once the store is closed (the watch stops). */
  check: () => string | undefined | null;
  scheduler: Scheduler;
  logger: Logger;
  /** Time between checks. */
  intervalMs: number;
}

/**
 * Runs `check` every `intervalMs` on the scheduler: an error line when a problem appears or changes,
 * an info line when it is gone, nothing while it stays the same. Returns a handle to stop it.
 */
export function watchDataFile(opts: DataFileWatchOptions): { stop(): void } {
  let task: ScheduledTask | undefined;
  let stopped = false;
  let reported: string | undefined;
  const tick = (): void => {
    let problem: string | undefined | null;
    try {
      problem = opts.check();
    } catch (err) {
      problem = `the data file check failed: ${describeError(err)}`;
    }
    if (problem === null) {
      stopped = true;
      return;
    }
    if (problem !== undefined && problem !== reported) {
      opts.logger.error({ problem }, 'greylist data file problem under the running daemon');
    } else if (problem === undefined && reported !== undefined) {
      opts.logger.info({ was: reported }, 'greylist data file problem gone');
    }
    reported = problem;
    if (!stopped) task = opts.scheduler.schedule(opts.intervalMs, tick);
  };
  task = opts.scheduler.schedule(opts.intervalMs, tick);
  return {
    stop: () => {
      stopped = true;
      task?.cancel();
    },
  };
}
