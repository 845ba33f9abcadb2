// Unix socket helpers shared by the control socket (control/control-server.ts) and the data-dir
// lock (util/instance-lock.ts): the path length limit, and the probe that tells a live listener from
// a socket file left by a process that ended without closing it. No state; it never binds.
import net from 'node:net';

/** sun_path is 108 bytes on Linux, including the terminating NUL; Node cuts a longer path short. */
export const MAX_UNIX_SOCKET_PATH_BYTES = 107;

/**
 * Connects to the socket file at `path`: 'live' when a process accepts, or when the connect is
 * still pending after timeoutMs (a daemon that accepts but hangs is still there); 'stale' when no
 * one listens (refused, or the file is gone). Rejects with any other connect error (e.g. EACCES),
 * which the caller judges.
 */
export function probeUnixSocket(path: string, timeoutMs: number): Promise<'live' | 'stale'> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ path });
    const finish = (settle: () => void): void => {
      clearTimeout(timer);
      socket.destroy();
      settle();
    };
    const timer = setTimeout(() => finish(() => resolve('live')), timeoutMs);
    socket.once('connect', () => finish(() => resolve('live')));
    socket.once('error', (err: NodeJS.ErrnoException) => finish(() => (err.code === 'ECONNREFUSED' || err.code === 'ENOENT' ? resolve('stale') : reject(err))));
  });
}
