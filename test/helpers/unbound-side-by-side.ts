// Shared by the end-to-end tests that run the built daemon beside a real Unbound on one fake tree
// (test/e2e/dns-unbound-*.test.ts): the Unbound both start, and the teardown that stops
// everything they started and removes their temp folder, whatever failed on the way.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { ResourceRegistry } from '../../bench/lib/managed-process.js';
import { startUnbound, type ResolverInstance } from '../../bench/lib/resolver-instances.js';
import { systemClock } from '../../src/util/clock.js';
import type { RunningDaemon } from './daemon.js';

/** Unbound as the DNS bench configures it (4 MiB caches), asking authorities on port 53 only. */
export function startTestUnbound(dir: string, registry: ResourceRegistry): Promise<ResolverInstance> {
  return startUnbound({ dir, rootHintsFile: join(dir, 'root.hints'), upstreamPort: 53, cacheBytes: 4 << 20, answerCacheBytes: 4 << 20, soRcvbuf: 0, clock: systemClock }, registry);
}

/** Stops Unbound (through its registry) and the daemon, then the tree, then removes the folder. */
export async function stopSideBySide(parts: { registry: ResourceRegistry; daemon: RunningDaemon | null; tree: { stop(): Promise<void> } | null; dir: string | null }): Promise<void> {
  try {
    await parts.registry.stopAll();
    await parts.daemon?.dispose();
  } finally {
    await parts.tree?.stop();
    if (parts.dir) rmSync(parts.dir, { recursive: true, force: true });
  }
}
