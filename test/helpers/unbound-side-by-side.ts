// Shared by the end-to-end tests that run the built daemon beside a real Unbound on one fake tree
// (test/e2e/dns-unbound-*.test.ts): their start on a fake tree on port 53 (or the printed skip), and
// the teardown that stops everything they started and removes their temp folder, whatever failed.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBenchHierarchy, type BenchHierarchy } from '../../bench/lib/bench-hierarchy.js';
import { ResourceRegistry } from '../../bench/lib/managed-process.js';
import { startUnbound, type ResolverInstance } from '../../bench/lib/resolver-instances.js';
import { systemClock } from '../../src/util/clock.js';
import { spawnDaemon, type RunningDaemon } from './daemon.js';
import type { HierarchySpec } from './fake-hierarchy.js';
import { findPeer, requirePeer, requireRoot } from './peers.js';

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

/** What startSideBySide started: nothing (all null) without the peers or root, or when port 53 was taken. */
export interface SideBySide {
  registry: ResourceRegistry;
  tree: BenchHierarchy | null;
  daemon: RunningDaemon | null;
  unbound: ResolverInstance | null;
  dir: string | null;
  /** Why the tree could not listen on port 53 of 127.53.x.y (another resolver test, a local service). */
  portBusy: string | null;
}

/**
 * Starts the fake tree on port 53 of 127.53.x.y, a real Unbound and the built daemon on it, each
 * resolving from the tree's root hints (in a temp folder named after `dirPrefix`). Starts nothing
 * without unbound, unbound-checkconf, dig or root: sideBySideReady() then prints the skip.
 */
export async function startSideBySide(spec: HierarchySpec, dirPrefix: string): Promise<SideBySide> {
  const sbs: SideBySide = { registry: new ResourceRegistry(), tree: null, daemon: null, unbound: null, dir: null, portBusy: null };
  if (!findPeer('unbound') || !findPeer('unbound-checkconf') || !findPeer('dig') || process.getuid?.() !== 0) return sbs;
  try {
    sbs.tree = await startBenchHierarchy(spec, { port: 53, replayFront: false, clock: systemClock });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' && !/in use/i.test(String(err))) throw err;
    sbs.portBusy = String(err);
    return sbs;
  }
  sbs.dir = mkdtempSync(join(tmpdir(), dirPrefix));
  writeFileSync(join(sbs.dir, 'root.hints'), sbs.tree.rootHints);
  sbs.unbound = await startTestUnbound(sbs.dir, sbs.registry);
  sbs.daemon = await spawnDaemon({ upstreamPort: 53, rootHints: sbs.tree.rootHints });
  return sbs;
}

/**
 * True when the test `name` may run on what startSideBySide started; prints the skip (or throws
 * under CI=true) when a peer or root is missing or port 53 was taken.
 */
export function sideBySideReady(sbs: SideBySide | null, name: string): sbs is SideBySide & { daemon: RunningDaemon; unbound: ResolverInstance } {
  if (!requirePeer('unbound', name) || !requirePeer('unbound-checkconf', name) || !requirePeer('dig', name) || !requireRoot(name)) return false;
  if (sbs?.portBusy) {
    if (process.env.CI === 'true') throw new Error(`${name}: port 53 of 127.53.x.y is taken (CI=true): ${sbs.portBusy}`);
    console.log(`  SKIP ${name}: port 53 of 127.53.x.y is taken (${sbs.portBusy})`);
    return false;
  }
  if (!sbs?.daemon || !sbs.unbound) throw new Error(`${name}: the resolvers did not start`);
  return true;
}
