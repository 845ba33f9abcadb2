// One `mxsentry serve` per data dir, as postgrey's postgrey.lock: two daemons on one directory
// would share one greylist store and one replication node id. Called by serve-command.ts before the
// daemon starts; the CLI's store commands (greylist list, purge...) never take it. It holds a
// listening unix socket in the data dir for the life of the process and touches no other file there.
import { unlinkSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';

/** The lock: a unix socket in the data dir, listening while its daemon runs. */
export const LOCK_SOCKET = 'serve.lock';

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
 * closing it (kill -9) accepts no connection: it is stale, and is replaced. Resolves 'busy' when
 * a live process listens on it; rejects on anything else (the caller decides whether to start
 * without it).
 */
export async function lockDataDir(dataDir: string): Promise<InstanceLock | 'busy'> {
  const path = join(dataDir, LOCK_SOCKET);
  let server = await listenOn(path);
  if (server === 'in-use') {
    if (await answers(path)) return 'busy';
    // Stale: no one listens. Another starting daemon may replace it at the same moment; the one whose
    // listen then fails is told 'busy', and a daemon that lost its file that way still runs alone.
    try {
      unlinkSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    server = await listenOn(path);
    if (server === 'in-use') return 'busy';
  }
  // Holding the lock must not keep a process alive that has nothing else to do.
  server.unref();
  held.add(server);
  const taken = server;
  return {
    release: () => {
      if (held.delete(taken)) taken.close();
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

/**
 * True when a process accepts connections on the socket file (a live holder), false when none does
 * (refused, or the file just went away); rejects when that cannot be told (e.g. EACCES).
 */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const probe = net.connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNREFUSED' || err.code === 'ENOENT' ? resolve(false) : reject(err)));
  });
}
