// Waits for a promise at most a given time: for shutdown steps that must not hang the process
// (closing the LMDB environment after a failed write), and for a resolution that joins another's
// upstream query under a shorter deadline. It never cancels the promise it waits on.

/**
 * Resolves true when `p` resolves within `ms`, false when the time runs out first; rejects with
 * `p`'s error when it rejects in time (valueWithin: at once false when `ms` <= 0).
 */
export function settledWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  return valueWithin(p.then(() => true), ms, false);
}

/**
 * Resolves with `p`'s value when it resolves within `ms`, with `fallback` when the time runs out
 * first (at once when `ms` <= 0); rejects with `p`'s error when it rejects in time. One timer,
 * cleared either way.
 */
export function valueWithin<T, F>(p: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  if (ms <= 0) return Promise.resolve(fallback);
  return new Promise<T | F>((resolve, reject) => {
    const timer = setTimeout(resolve, ms, fallback);
    p.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}
