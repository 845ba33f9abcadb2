// Typed errors of the local control channel (socket server, client and commands), code CONTROL_ERR_*.
// Thrown by src/control/ and mapped to CLI exit codes by src/cli/control-cli.ts; nothing else
// catches them by code. Must not carry secrets: messages go to the admin's terminal and the log.
import { MxError } from '../util/errors.js';

/** Stable codes; the CLI maps the first two to their own exit codes. */
export type ControlErrorCode =
  /** No daemon listens on the socket (missing file or connection refused). */
  | 'CONTROL_ERR_NOT_RUNNING'
  /** The socket exists but this user may not connect (mode 0660: root or the daemon's group only). */
  | 'CONTROL_ERR_PERMISSION'
  /** The configured socket path is unusable or unsafe; the daemon refuses to start. */
  | 'CONTROL_ERR_UNSAFE_PATH'
  /** Another daemon already answers on the socket. */
  | 'CONTROL_ERR_IN_USE'
  /** Bad request: not JSON, unknown command, bad argument. */
  | 'CONTROL_ERR_BAD_REQUEST'
  /** The command ran and failed (e.g. a reload rejected by validation). */
  | 'CONTROL_ERR_FAILED'
  /** No answer in time: the daemon accepted the connection but hangs or is overloaded. */
  | 'CONTROL_ERR_TIMEOUT'
  /** Connection cut, or an unreadable answer. */
  | 'CONTROL_ERR_IO';

/** An error of the control channel with a stable code. */
export class ControlError extends MxError {
  declare readonly code: ControlErrorCode;
  constructor(code: ControlErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
