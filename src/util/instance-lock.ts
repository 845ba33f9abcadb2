// One `mxsentry serve` per data dir, as postgrey's postgrey.lock: two daemons on one directory
// would share one greylist store and one replication node id. Called by serve-command.ts before the
// daemon starts; the CLI's store commands (greylist list, purge...) never take it. It holds a
// listening unix socket in the data dir for the life of the process; a stale one is renamed aside to
// serve.lock.<random> for a moment before it is removed. It touches no other file there.
import { randomBytes } from 'node:crypto';
import { linkSync, lstatSync, renameSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { MAX_UNIX_SOCKET_PATH_BYTES, probeUnixSocket } from './unix-socket.js';

/** The lock: a unix socket in the data dir, listening while its daemon runs. */
export const LOCK_SOCKET = 'serve.lock';

/** How long a connect to an existing lock socket may take before its holder counts as live. */
const PROBE_TIMEOUT_MS = 1000;

/** Locks held by this process (also keeps their servers from being collected while held). */
const held = new Set<net.Server>();

/** The lock of one data dir, held until release() or the end of the process. */
export interface InstanceLock {
  release(): void;
}

/**
 * Takes the data dir's lock: a unix socket at `<data-dir>/serve.lock`. Only who may write the data
 * dir can create it (an abstract socket name, with no permissions and listed in /proc/net/unix,
 * could be taken first by any local user). A socket file left by a process that ended without
 * closing it (kill -9) accepts no connection: it is stale, and is replaced (of several takers at
 * once, one wins). Resolves 'busy' when a live process listens on it (or one this user may not
 * connect to); rejects on anything else, a path too long for a unix socket included.
 */
export async function lockDataDir(dataDir: string): Promise<InstanceLock | 'busy'> {
  const path = join(dataDir, LOCK_SOCKET);
  // Node cuts a longer path short without an error, which would put the socket somewhere else.
  if (Buffer.byteLength(path) > MAX_UNIX_SOCKET_PATH_BYTES) {
    throw new Error(`the lock socket path ${path} is longer than ${MAX_UNIX_SOCKET_PATH_BYTES} bytes (the unix socket limit): use a shorter data-dir`);
  }
  // Bounded: each round either takes the lock, finds a live holder, or removed a stale file.
  for (let round = 0; round < 3; round++) {
    const server = await listenOn(path);
    if (server !== 'in-use') return hold(server);
    const probed = identity(path);
    if (probed === undefined) continue;
    // A live holder. A socket this user may not connect to (EACCES, EPERM) belongs to another user's
    // process, most likely a live daemon: busy too. Other errors reject (the caller does not start).
    const state = await probeUnixSocket(path, PROBE_TIMEOUT_MS).catch((err: unknown) => {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EACCES' || code === 'EPERM') return 'live' as const;
      throw err;
    });
    if (state === 'live') return 'busy';
    // Stale: no one listens. Another starting daemon may have replaced it since the probe, so it is
    // not unlinked by name (that could remove the winner's socket and let both run): it is renamed
    // aside (atomic: each taker moves at most the one entry it finds) and removed only when what was
    // moved is the file probed (inode and mtime); else it is put back at once, with no await between.
    const aside = `${path}.${randomBytes(4).toString('hex')}`;
    try {
      renameSync(path, aside);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // another taker moved it first
      throw err;
    }
    if (identity(aside) !== probed) {
      restore(aside, path);
      return 'busy';
    }
    unlinkSync(aside);
  }
  return 'busy';
}

/** A file's inode and modification time (rename keeps both), or undefined when it is gone. */
function identity(file: string): string | undefined {
  const st = lstatSync(file, { bigint: true, throwIfNoEntry: false });
  return st ? `${st.dev}:${st.ino}:${st.mtimeNs}` : undefined;
}

/** Puts a socket file moved aside back at path (unless one was bound there meanwhile), removing the aside name. */
function restore(aside: string, path: string): void {
  try {
    linkSync(aside, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    unlinkSync(aside);
  }
}

function hold(server: net.Server): InstanceLock {
  // Holding the lock must not keep a process alive that has nothing else to do.
  server.unref();
  held.add(server);
  return {
    release: () => {
      if (held.delete(server)) server.close();
    },
  };
}

function listenOn(path: string): Promise<net.Server | 'in-use'> {
  const server = net.createServer((conn) => conn.destroy());
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => (err.code === 'EADDRINUSE' ? resolve('in-use') : reject(err)));
    server.listen(path, () => resolve(server));
  });
}
