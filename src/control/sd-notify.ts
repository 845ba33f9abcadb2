// systemd readiness and watchdog (sd_notify(3)) for `Type=notify` units. Node has no unix datagram
// sockets, so each notification runs `systemd-notify` (the unit sets NotifyAccess=all, because the
// message comes from that child, not from the main process). Called by the serve command after
// start-up, on stop and on an interval for the watchdog. Does nothing outside systemd (no NOTIFY_SOCKET).
import { execFile } from 'node:child_process';
import { describeError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';

export interface SdNotifyOptions {
  env?: NodeJS.ProcessEnv;
  /** The program to run; default `systemd-notify` from PATH. */
  command?: string;
  logger: Logger;
  /** Bound on one systemd-notify run. Default 5000 ms. */
  timeoutMs?: number;
}

/**
 * Sends one notification: `fields` are sd_notify assignments (READY=1, STOPPING=1, WATCHDOG=1,
 * STATUS=...). Resolves true once systemd-notify exited 0 (it waits until systemd has read the
 * message, so the sender's cgroup is still known), false when not under systemd or on failure (logged).
 */
export function sdNotify(fields: string[], opts: SdNotifyOptions): Promise<boolean> {
  const env = opts.env ?? process.env;
  if (!env.NOTIFY_SOCKET) return Promise.resolve(false);
  return new Promise((done) => {
    execFile(opts.command ?? 'systemd-notify', fields, { env, timeout: opts.timeoutMs ?? 5000 }, (err, _stdout, stderr) => {
      if (err) {
        opts.logger.warn({ fields, err: describeError(err), stderr: String(stderr).trim() }, 'systemd-notify failed');
        done(false);
      } else {
        done(true);
      }
    });
  });
}

/** Runs `fn` every `ms`; returns a stop function. Injected in tests. */
export type EveryFn = (fn: () => void, ms: number) => () => void;

const realEvery: EveryFn = (fn, ms) => {
  const timer = setInterval(fn, ms);
  timer.unref();
  return () => clearInterval(timer);
};

/**
 * Starts watchdog pings when systemd asked for them (WATCHDOG_USEC set, WATCHDOG_PID absent or ours):
 * WATCHDOG=1 every half of the interval, as sd_watchdog_enabled(3) recommends. The ping runs on the
 * event loop, so a wedged loop misses it and systemd restarts the service. Returns null when off.
 */
export function startWatchdog(opts: SdNotifyOptions & { pid?: number; every?: EveryFn }): { stop(): void; intervalMs: number } | null {
  const env = opts.env ?? process.env;
  const usec = env.WATCHDOG_USEC;
  if (!env.NOTIFY_SOCKET || usec === undefined || !/^\d+$/.test(usec) || Number(usec) === 0) return null;
  if (env.WATCHDOG_PID !== undefined && env.WATCHDOG_PID !== String(opts.pid ?? process.pid)) return null;
  const intervalMs = Math.max(1, Math.floor(Number(usec) / 2000));
  let running = false;
  const stop = (opts.every ?? realEvery)(() => {
    // One ping at a time: a slow systemd-notify must not pile up children.
    if (running) return;
    running = true;
    void sdNotify(['WATCHDOG=1'], opts).finally(() => {
      running = false;
    });
  }, intervalMs);
  return { stop, intervalMs };
}
