// Client side of the control socket: sends one JSON request line, reads one response line. Used by
// the CLI commands that act on a running daemon (cache, stats, reload, replication). It never
// retries and never waits longer than its timeout; connection errors become ControlErrors whose
// codes tell "not running" from "permission denied".
import net from 'node:net';
import { resolve } from 'node:path';
import { describeError } from '../util/errors.js';
import { ControlError } from './control-error.js';
import type { ControlRequest, ControlResponse } from './control-server.js';

/** Default wait for an answer; a cache dump of a full cache takes well under this. */
export const DEFAULT_CONTROL_TIMEOUT_MS = 30_000;
/** Longest answer accepted (a dump of a 1 GB cache would not fit; nobody configures that). */
const MAX_RESPONSE_BYTES = 512 * 1024 * 1024;

/**
 * Sends `request` to the daemon at `path` and returns the command's result.
 * @throws ControlError CONTROL_ERR_NOT_RUNNING (no socket, or nobody listening),
 *   CONTROL_ERR_PERMISSION (EACCES/EPERM: not root and not in the daemon's group), CONTROL_ERR_TIMEOUT
 *   (no answer within timeoutMs), CONTROL_ERR_IO (cut connection, unreadable answer), or the daemon's
 *   own error code for a failed command.
 */
export function sendControlRequest(path: string, request: ControlRequest, timeoutMs = DEFAULT_CONTROL_TIMEOUT_MS): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ path });
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const finish = (err: ControlError | null, value?: unknown): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(value);
    };
    const timer = setTimeout(() => finish(new ControlError('CONTROL_ERR_TIMEOUT', `no answer from the daemon on ${path} within ${timeoutMs} ms`)), timeoutMs);
    socket.once('connect', () => socket.write(`${JSON.stringify(request)}\n`));
    socket.on('error', (err: NodeJS.ErrnoException) => finish(connectError(path, err)));
    socket.on('data', (chunk: Buffer) => {
      const nl = chunk.indexOf(0x0a);
      chunks.push(nl >= 0 ? chunk.subarray(0, nl) : chunk);
      size += chunk.length;
      if (size > MAX_RESPONSE_BYTES) {
        finish(new ControlError('CONTROL_ERR_IO', `answer from ${path} is larger than ${MAX_RESPONSE_BYTES} bytes`));
        return;
      }
      if (nl < 0) return;
      let response: ControlResponse;
      try {
        response = JSON.parse(Buffer.concat(chunks).toString('utf8')) as ControlResponse;
      } catch (err) {
        finish(new ControlError('CONTROL_ERR_IO', `unreadable answer from ${path}: ${describeError(err)}`, { cause: err }));
        return;
      }
      if (response.ok) finish(null, response.result);
      else finish(new ControlError(asCode(response.error.code), response.error.message));
    });
    socket.on('end', () => finish(new ControlError('CONTROL_ERR_IO', `the daemon closed the control connection on ${path} without an answer`)));
  });
}

function connectError(path: string, err: NodeJS.ErrnoException): ControlError {
  switch (err.code) {
    case 'ENOENT':
    case 'ECONNREFUSED':
      // The full path: a relative one (./data/control.sock) does not say where it was looked for.
      return new ControlError('CONTROL_ERR_NOT_RUNNING', `mxsentry is not running (nothing listens on ${resolve(path)}); start it ("systemctl start mxsentry", or "mxsentry serve"), or name its data dir with --data-dir or its socket with --control-socket`, { cause: err });
    case 'EACCES':
    case 'EPERM':
      return new ControlError('CONTROL_ERR_PERMISSION', `permission denied on ${path}: run as root or as a member of the daemon's group`, { cause: err });
    default:
      return new ControlError('CONTROL_ERR_IO', `cannot reach the daemon on ${path}: ${describeError(err)}`, { cause: err });
  }
}

const KNOWN_CODES = new Set<string>(['CONTROL_ERR_NOT_RUNNING', 'CONTROL_ERR_PERMISSION', 'CONTROL_ERR_UNSAFE_PATH', 'CONTROL_ERR_IN_USE', 'CONTROL_ERR_BAD_REQUEST', 'CONTROL_ERR_FAILED', 'CONTROL_ERR_TIMEOUT', 'CONTROL_ERR_IO']);

function asCode(code: string): ConstructorParameters<typeof ControlError>[0] {
  return KNOWN_CODES.has(code) ? (code as ConstructorParameters<typeof ControlError>[0]) : 'CONTROL_ERR_FAILED';
}
