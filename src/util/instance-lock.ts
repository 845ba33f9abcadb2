// One `mxsentry serve` per data dir, as postgrey's postgrey.lock: two daemons on one directory
// would share one greylist store and one replication node id. Called by serve-command.ts before the
// daemon starts; the CLI's store commands (greylist list, purge...) never take it. It holds a
// listening socket for the life of the process and must not touch the data dir's files.
import { createHash } from 'node:crypto';
import { realpathSync } from 'node:fs';
import net from 'node:net';

/** Locks held by this process (also keeps their servers from being collected while held). */
const held = new Set<net.Server>();

/** The lock of one data dir, held until release() or the end of the process. */
export interface InstanceLock {
  release(): void;
}

/**
 * Takes the data dir's lock: a Linux abstract unix socket named after the directory's real path.
 * The kernel frees it when the process ends, however it ends (kill -9 included), so there is no
 * stale lock file to clean up. Resolves 'busy' when another process holds it; rejects on anything
 * else (the caller decides whether to start without it).
 */
export async function lockDataDir(dataDir: string): Promise<InstanceLock | 'busy'> {
  const digest = createHash('sha256').update(realpathSync(dataDir)).digest('hex').slice(0, 32);
  const server = net.createServer((conn) => conn.destroy());
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(`\0mxsentry-data-dir-${digest}`, () => resolve());
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') return 'busy';
    throw err;
  }
  // Holding the lock must not keep a process alive that has nothing else to do.
  server.unref();
  held.add(server);
  return {
    release: () => {
      if (held.delete(server)) server.close();
    },
  };
}
