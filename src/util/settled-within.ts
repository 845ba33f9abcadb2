// Waits for a promise at most a given time, for shutdown steps that must not hang the process
// (closing the LMDB environment after a failed write). It never cancels the promise it waits on.

/**
 * Resolves true when `p` resolves within `ms`, false when the time runs out first; rejects with
 * `p`'s error when it rejects in time. The timer is cleared either way.
 */
export async function settledWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(resolve, ms, false);
  });
  try {
    return await Promise.race([p.then(() => true as const), late]);
  } finally {
    clearTimeout(timer);
  }
}
