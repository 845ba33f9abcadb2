// Whether the process at the other end of a replication session is still there: a ping now, then any
// bytes from it within a bound. Used by peer-link.ts and replicator.ts to tell a node restarted at once
// (its old sessions silent, maybe half-open, yet heard from lately) from a copy of it running elsewhere.
// It only sends a ping, which every protocol version answers; it never closes the session itself.
import type { Scheduler } from '../scheduler.js';
import type { ReplicationConnection } from './replication-connection.js';

/**
 * Resolves true once the peer sends anything after a ping sent now; false when it sends nothing
 * within `withinMs`, or the session closes first. Recent traffic proves nothing here: a process
 * killed a moment ago was heard from a moment ago, and its half-open session stays open until the
 * timeout.
 */
export function answersPing(conn: ReplicationConnection, scheduler: Scheduler, withinMs: number): Promise<boolean> {
  if (!conn.isOpen()) return Promise.resolve(false);
  return new Promise<boolean>((resolve) => {
    let settled = false;
    const timer = scheduler.schedule(withinMs, () => done(false));
    function done(answered: boolean): void {
      if (settled) return;
      settled = true;
      timer.cancel();
      resolve(answered);
    }
    void conn.heardNext().then(() => done(true));
    void conn.closed().then(() => done(false));
    conn.send({ type: 'ping' });
  });
}
