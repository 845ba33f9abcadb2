// Makes a file unwritable even for root and even through a descriptor already open (chattr +i),
// for the store tests of a data file that cannot be written. Used by the lmdb-env and replicator tests.
import { execFileSync } from 'node:child_process';
import { requirePeer, requireRoot, skipTest } from './peers.js';

/**
 * Sets the immutable flag on `file`; returns the undo, or null after a printed skip: without root
 * or chattr (a failure under CI=true), or on a file system without the flag (some overlay or tmpfs
 * mounts: the host's, not a missing peer, so a printed skip under CI too).
 */
export function makeImmutable(file: string, testName: string): (() => void) | null {
  if (!requireRoot(testName)) return null;
  const chattr = requirePeer('chattr', testName);
  if (!chattr) return null;
  try {
    execFileSync(chattr, ['+i', file], { stdio: 'ignore' });
  } catch (err) {
    skipTest(testName, `chattr +i is not supported here (${(err as Error).message.split('\n')[0]})`, { evenInCi: true });
    return null;
  }
  return () => execFileSync(chattr, ['-i', file], { stdio: 'ignore' });
}
