// This node's bucket digest for the digest rounds of its links (peer-link.ts): one computation serves
// the rounds that start within a few seconds of each other. Owned by the Replicator (replicator.ts),
// which gives it the window of a round starting now; it only reads the store, never writes it.
import type { Clock } from '../../util/clock.js';
import { computeDigest, type BucketDigest, type DigestSource, type DigestWindow } from './bucket-digest.js';

/** How long one computed digest serves further rounds of this node's links. */
export const DIGEST_REUSE_MS = 5_000;

/** What a LocalDigest needs from its Replicator. */
export interface LocalDigestDeps {
  clock: Clock;
  buckets: number;
  /** The store to hash (throws when it is not open). */
  source: () => DigestSource;
  /** The window of a round starting now. */
  window: () => DigestWindow;
  /** Keeps the computation from being cut off by the Replicator's stop(). */
  track: <T>(p: Promise<T>) => Promise<T>;
}

export class LocalDigest {
  private cache: { atMs: number; toMs: number; result: Promise<{ window: DigestWindow; digest: BucketDigest }> } | undefined;

  constructor(private readonly deps: LocalDigestDeps) {}

  /**
   * The digest for a round starting now. One computation serves every link for up to DIGEST_REUSE_MS
   * (the links of a node run their rounds at about the same time): a record changed since has a
   * lastSeenMs past the window's end on both sides, so reusing it causes at most a spurious
   * difference, never a missed one. Kept short, so that a later round (a session's second, a short
   * digest interval) compares a window that ends later, not the same one again. A round that must
   * cover the records changed before `coverToMs` (a session's second: those before it connected)
   * reuses only a window that ends there or later.
   */
  get(coverToMs = 0): Promise<{ window: DigestWindow; digest: BucketDigest }> {
    const now = this.deps.clock.nowMs();
    const cached = this.cache;
    if (cached && now - cached.atMs < DIGEST_REUSE_MS && cached.toMs >= coverToMs) return cached.result;
    const window = this.deps.window();
    const result = this.deps.track(computeDigest(this.deps.source(), window, this.deps.buckets)).then((digest) => ({ window, digest }));
    this.cache = { atMs: now, toMs: window.toMs, result };
    // The failure itself reaches the caller through `result`; here the cache only forgets it.
    result.catch(() => {
      if (this.cache?.result === result) this.cache = undefined;
    });
    return result;
  }

  /** Drops the computed digest (the expiry settings changed: the next round computes anew). */
  forget(): void {
    this.cache = undefined;
  }
}
