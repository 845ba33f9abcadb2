// uvu runs a suite's before hooks inside try/finally and returns from the finally, so an error thrown
// by a before hook vanishes: the suite shows (0 / N) and nothing says why. Wrapping the hook prints
// the error (with its stack) before uvu swallows it. Used by every suite with a before hook.

/** `fn`, printing whatever it throws (then rethrowing it, so the suite's tests are still not run). */
export function loggedHook<A extends unknown[]>(fn: (...args: A) => unknown): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      console.error(`\n  before hook failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      throw err;
    }
  };
}
