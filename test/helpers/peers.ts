// Real peers (dig, unbound, postfix, swaks) for tests that meet users' tools. Outside CI a missing
// peer is a printed skip; under CI=true it is a failure, so CI can never pass by skipping.
import { execFileSync } from 'node:child_process';

let skipped = 0;

/** Number of test bodies skipped for a missing peer in this run. */
export function skippedCount(): number {
  return skipped;
}

/** Absolute path of a peer program, or null when it is not installed. */
export function findPeer(program: string): string | null {
  try {
    const out = execFileSync('sh', ['-c', `command -v ${program}`], { encoding: 'utf8' }).trim();
    return out || null;
  } catch {
    return null;
  }
}

/**
 * Returns the peer's path, or null after printing a skip. Under CI=true a missing peer throws,
 * which fails the calling test.
 */
export function requirePeer(program: string, testName: string): string | null {
  const path = findPeer(program);
  if (path) return path;
  if (process.env.CI === 'true') throw new Error(`${testName}: required peer '${program}' is not installed (CI=true)`);
  skipped++;
  console.log(`  SKIP ${testName}: '${program}' is not installed`);
  return null;
}

/**
 * True when the test runs as root (a throwaway Postfix needs it). Otherwise prints a skip and
 * returns false; under CI=true it throws, which fails the calling test.
 */
export function requireRoot(testName: string): boolean {
  if (process.getuid?.() === 0) return true;
  if (process.env.CI === 'true') throw new Error(`${testName}: needs root (CI=true)`);
  skipped++;
  console.log(`  SKIP ${testName}: needs root`);
  return false;
}

/**
 * Prints a skip of `testName` for `why` (a feature this host lacks) and counts it; under CI=true it
 * throws instead, which fails the calling test, unless `evenInCi` (a property of the CI host's file
 * system rather than something .ci/run installs).
 */
export function skipTest(testName: string, why: string, opts: { evenInCi?: boolean } = {}): void {
  if (process.env.CI === 'true' && !opts.evenInCi) throw new Error(`${testName}: ${why} (CI=true)`);
  skipped++;
  console.log(`  SKIP ${testName}: ${why}`);
}
