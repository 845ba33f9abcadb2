// One `mxsentry serve` per data dir, as postgrey's postgrey.lock: two daemons on one directory
// would share one greylist store and one replication node id. Called by serve-command.ts before the
// daemon starts; the CLI's store commands (greylist list, purge...) never take it. It holds a
// listening socket for the life of the process; in the data dir it only creates (once) the file
// naming the lock, and must not touch any other file there.
import { randomBytes } from 'node:crypto';
import { linkSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';

/** Locks held by this process (also keeps their servers from being collected while held). */
const held = new Set<net.Server>();

/** The file in the data dir holding the lock's random name (mode 0600). */
export const LOCK_NAME_FILE = 'instance-lock';

/** The lock of one data dir, held until release() or the end of the process. */
export interface InstanceLock {
  release(): void;
}

/**
 * The data dir's lock name: 128 random bits kept in `<data-dir>/instance-lock`, created on first use.
 * Abstract sockets have no permissions, so a name any user could compute (the path, a hash of it)
 * would let any local user bind it first and keep the daemon from starting; a name read from a file
 * only the daemon's user can read cannot be taken in advance. The file is written aside and linked
 * into place, so two first starts agree on one name; the same directory reached by a symlink or a
 * bind mount reads the same file.
 */
function lockName(dataDir: string): string {
  const file = join(dataDir, LOCK_NAME_FILE);
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, `${randomBytes(16).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  try {
    linkSync(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    unlinkSync(tmp);
  }
  const name = readFileSync(file, 'utf8').trim();
  if (!/^[0-9a-f]{32}$/.test(name)) throw new Error(`${file} does not hold a lock name (32 hex digits): remove it and start again`);
  return name;
}

/**
 * Takes the data dir's lock: a Linux abstract unix socket with the data dir's random name (see
 * lockName). The kernel frees it when the process ends, however it ends (kill -9 included), so
 * there is no stale lock to clean up. Resolves 'busy' when another process holds it; rejects on
 * anything else (the caller decides whether to start without it).
 */
export async function lockDataDir(dataDir: string): Promise<InstanceLock | 'busy'> {
  const name = lockName(dataDir);
  const server = net.createServer((conn) => conn.destroy());
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(`\0mxsentry-data-dir-${name}`, () => resolve());
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
