// The local control socket: a unix stream socket (mode 0660, the daemon's owner and group) speaking
// one JSON object per line each way. Started and closed by main.ts; the commands behind it come from
// control-commands.ts. It must never listen on a network address, never start on an unsafe path
// (a symlink, a non-socket file, a directory others may write to) and never take over a live socket.
import { chmodSync, lstatSync, statSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { dirname, resolve } from 'node:path';
import { describeError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { MAX_UNIX_SOCKET_PATH_BYTES, probeUnixSocket } from '../util/unix-socket.js';
import { ControlError } from './control-error.js';

/** One request: `{"command":"cache-flush","name":"example.com."}`. */
export interface ControlRequest {
  command: string;
  [arg: string]: unknown;
}

/** One response line: `{"ok":true,"result":...}` or `{"ok":false,"error":{"code":...,"message":...}}`. */
export type ControlResponse = { ok: true; result: unknown } | { ok: false; error: { code: string; message: string } };

/** Runs one command; throws ControlError (or anything, reported as CONTROL_ERR_FAILED). */
export type ControlHandler = (request: ControlRequest) => unknown;

export interface ControlServerOptions {
  /** Socket path; made absolute against the working directory. */
  path: string;
  handlers: Readonly<Record<string, ControlHandler>>;
  logger: Logger;
  /** Open connections at once; more are answered with an error and closed. Default 16. */
  maxConnections?: number;
  /** Longest request line in bytes. Default 65536. */
  maxLineBytes?: number;
  /** A connection silent this long is closed. Default 60000. */
  idleTimeoutMs?: number;
}

/** Socket file mode: owner and group read/write, nobody else (connect(2) needs write permission). */
export const CONTROL_SOCKET_MODE = 0o660;
const STALE_PROBE_TIMEOUT_MS = 1000;
const CLOSE_GRACE_MS = 1000;
/** How long a refused connection may take to receive its refusal before it is closed. */
const REFUSAL_TIMEOUT_MS = 5000;

/**
 * Checks that `path` may hold the control socket and clears a stale socket left by a crash.
 * Refuses (CONTROL_ERR_UNSAFE_PATH): an over-long path, a missing parent, a parent that is not a
 * directory or is writable by others without the sticky bit, a parent owned by another non-root
 * user, an existing path that is a symlink or not a socket. CONTROL_ERR_IN_USE: a daemon answers there.
 */
export async function prepareControlSocketPath(path: string): Promise<string> {
  const abs = resolve(path);
  if (Buffer.byteLength(abs) > MAX_UNIX_SOCKET_PATH_BYTES) {
    throw new ControlError('CONTROL_ERR_UNSAFE_PATH', `control socket path ${abs} is longer than ${MAX_UNIX_SOCKET_PATH_BYTES} bytes (unix socket limit); set control-socket to a shorter path`);
  }
  const parent = dirname(abs);
  const problem = controlFolderProblem(parent, process.getuid?.());
  if (problem) throw new ControlError('CONTROL_ERR_UNSAFE_PATH', problem.message, problem.cause === undefined ? {} : { cause: problem.cause });
  let existing;
  try {
    existing = lstatSync(abs);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return abs;
    throw new ControlError('CONTROL_ERR_UNSAFE_PATH', `cannot inspect ${abs}: ${describeError(err)}`, { cause: err });
  }
  if (existing.isSymbolicLink()) throw new ControlError('CONTROL_ERR_UNSAFE_PATH', `control socket path ${abs} is a symbolic link; refusing to follow it`);
  if (!existing.isSocket()) throw new ControlError('CONTROL_ERR_UNSAFE_PATH', `control socket path ${abs} exists and is not a socket; refusing to replace it`);
  if (await isLive(abs)) {
    throw new ControlError('CONTROL_ERR_IN_USE', `another mxsentry answers on ${abs}; stop it first or set a different control-socket`);
  }
  // A socket nobody listens on: left behind by a crash (a clean stop removes it).
  unlinkSync(abs);
  return abs;
}

/** Why a folder may not hold the control socket (controlFolderProblem). */
export interface ControlFolderProblem {
  /** unusable: missing or not a directory; open: writable by everyone; owner: another non-root user's. */
  kind: 'unusable' | 'open' | 'owner';
  message: string;
  /** The folder's owner (kind owner). */
  ownerUid?: number;
  cause?: unknown;
}

/**
 * Why `folder` may not hold the control socket of a process running as `uid`, or undefined when it
 * may. The one judgement of serve (prepareControlSocketPath) and `config check`, so the check names
 * what serve refuses, in its words. It only stats the folder.
 */
export function controlFolderProblem(folder: string, uid: number | undefined): ControlFolderProblem | undefined {
  let dir;
  try {
    dir = statSync(folder);
  } catch (err) {
    return { kind: 'unusable', message: `control socket folder ${folder} is not usable: ${describeError(err)}`, cause: err };
  }
  if (!dir.isDirectory()) return { kind: 'unusable', message: `control socket folder ${folder} is not a directory` };
  // Anyone who may write to the folder could swap the socket for their own and read our answers.
  if ((dir.mode & 0o002) !== 0 && (dir.mode & 0o1000) === 0) {
    return { kind: 'open', message: `control socket folder ${folder} is writable by everyone (mode ${(dir.mode & 0o7777).toString(8)}); use a private folder (chmod 750 or 700)` };
  }
  if (uid !== undefined && dir.uid !== uid && dir.uid !== 0) {
    return { kind: 'owner', ownerUid: dir.uid, message: `control socket folder ${folder} belongs to uid ${dir.uid}, not to this user (uid ${uid}) or root; run serve as its owner, or use a folder of this user's` };
  }
  return undefined;
}

/** A socket someone may still own counts as live: only a refused or vanished one is stale. */
function isLive(path: string): Promise<boolean> {
  return probeUnixSocket(path, STALE_PROBE_TIMEOUT_MS).then(
    (state) => state === 'live',
    () => true,
  );
}

/** The control socket server. `listen()` once, `close()` once (idempotent). */
export class ControlServer {
  private server: net.Server | null = null;
  private readonly conns = new Set<net.Socket>();
  /** Connections refused over the cap, until their refusal is taken (shutdown ends them too). */
  private readonly refused = new Set<net.Socket>();
  private closing: Promise<void> | null = null;
  private readonly maxConnections: number;
  private readonly maxLineBytes: number;
  private readonly idleTimeoutMs: number;
  private boundPath = '';

  constructor(private readonly opts: ControlServerOptions) {
    this.maxConnections = opts.maxConnections ?? 16;
    this.maxLineBytes = opts.maxLineBytes ?? 65536;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 60_000;
  }

  /** The absolute socket path once listening. */
  get path(): string {
    return this.boundPath;
  }

  /** Checks the path (see prepareControlSocketPath), listens, and sets mode 0660. */
  async listen(): Promise<void> {
    const path = await prepareControlSocketPath(this.opts.path);
    const server = net.createServer({ allowHalfOpen: false }, (socket) => this.accept(socket));
    // The socket file is created inside listen() with the process umask; narrow it for that call so
    // no other user can connect in the moment before the chmod below.
    const oldMask = process.umask(0o117);
    try {
      await new Promise<void>((done, fail) => {
        server.once('error', fail);
        server.listen({ path, exclusive: true }, () => {
          server.off('error', fail);
          done();
        });
      });
    } catch (err) {
      throw new ControlError('CONTROL_ERR_UNSAFE_PATH', `cannot listen on control socket ${path}: ${describeError(err)}`, { cause: err });
    } finally {
      process.umask(oldMask);
    }
    chmodSync(path, CONTROL_SOCKET_MODE);
    server.on('error', (err) => this.opts.logger.error({ err: describeError(err) }, 'control socket error'));
    this.server = server;
    this.boundPath = path;
    this.opts.logger.info({ path }, 'control socket listening');
  }

  /** Stops accepting, lets requests being answered finish (1 s at most), removes the socket file. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    const server = this.server;
    if (!server) return;
    const closed = new Promise<void>((done) => server.close(() => done()));
    for (const c of this.conns) c.end();
    for (const c of this.refused) c.destroy();
    const timer = setTimeout(() => {
      for (const c of this.conns) c.destroy();
    }, CLOSE_GRACE_MS);
    await closed;
    clearTimeout(timer);
    try {
      unlinkSync(this.boundPath);
    } catch (err) {
      // libuv removes the file itself on close; anything else than "already gone" is worth a line.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.opts.logger.warn({ path: this.boundPath, err: describeError(err) }, 'cannot remove control socket');
    }
  }

  private accept(socket: net.Socket): void {
    if (this.closing || this.conns.size >= this.maxConnections) {
      // A client that closes without reading the refusal resets the connection: that error is
      // the client's, and an unhandled one would end the daemon. One that never reads it is
      // not waited for.
      socket.on('error', (err) => this.opts.logger.debug({ err: describeError(err) }, 'refused control connection error'));
      socket.setTimeout(REFUSAL_TIMEOUT_MS, () => socket.destroy());
      this.refused.add(socket);
      socket.on('close', () => this.refused.delete(socket));
      socket.end(`${JSON.stringify(errorResponse(new ControlError('CONTROL_ERR_IO', 'too many control connections or shutting down')))}\n`);
      return;
    }
    this.conns.add(socket);
    socket.setTimeout(this.idleTimeoutMs, () => socket.destroy());
    socket.on('close', () => this.conns.delete(socket));
    socket.on('error', (err) => this.opts.logger.debug({ err: describeError(err) }, 'control connection error'));
    // Lines are taken one at a time and reading stops while one is answered: a client that sends
    // requests faster than it reads the answers is held back by its socket, not queued in memory.
    let buf = '';
    let running = false;
    const pump = async (): Promise<void> => {
      if (running) return;
      running = true;
      try {
        let nl: number;
        while (!socket.destroyed && (nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line.trim() === '') continue;
          await this.answer(socket, line);
          // Commands may answer without I/O: let the event loop (DNS, policy) turn between them.
          await new Promise<void>((done) => setImmediate(done));
        }
      } finally {
        running = false;
      }
      if (!socket.destroyed && !socket.writableEnded) socket.resume();
    };
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buf += chunk;
      const lastNl = buf.lastIndexOf('\n');
      if (Buffer.byteLength(lastNl < 0 ? buf : buf.slice(lastNl + 1)) > this.maxLineBytes) {
        buf = '';
        socket.pause();
        socket.end(`${JSON.stringify(errorResponse(new ControlError('CONTROL_ERR_BAD_REQUEST', `request line longer than ${this.maxLineBytes} bytes`)))}\n`);
        return;
      }
      if (lastNl < 0) return;
      socket.pause();
      void pump();
    });
  }

  private async answer(socket: net.Socket, line: string): Promise<void> {
    const response = await this.run(line);
    // Closed meanwhile (client gone, or shutdown half-closed it): nobody is left to read the answer.
    if (socket.destroyed || socket.writableEnded) return;
    const text = `${JSON.stringify(response)}\n`;
    if (!socket.write(text)) await new Promise<void>((done) => socket.once('drain', done).once('close', done));
  }

  /** Parses and runs one request line; never throws. */
  async run(line: string): Promise<ControlResponse> {
    let request: ControlRequest;
    try {
      const parsed: unknown = JSON.parse(line);
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed) || typeof (parsed as { command?: unknown }).command !== 'string') {
        throw new ControlError('CONTROL_ERR_BAD_REQUEST', 'a request is a JSON object with a "command" string');
      }
      request = parsed as ControlRequest;
    } catch (err) {
      return errorResponse(err instanceof ControlError ? err : new ControlError('CONTROL_ERR_BAD_REQUEST', `request is not JSON: ${describeError(err)}`));
    }
    const handler = Object.hasOwn(this.opts.handlers, request.command) ? this.opts.handlers[request.command] : undefined;
    if (!handler) {
      return errorResponse(new ControlError('CONTROL_ERR_BAD_REQUEST', `unknown command "${request.command}" (known: ${Object.keys(this.opts.handlers).join(', ')})`));
    }
    try {
      const result = await handler(request);
      // State-changing commands log their own info line; read-only ones (stats polling) stay quiet.
      this.opts.logger.debug({ command: request.command }, 'control command');
      return { ok: true, result: result ?? null };
    } catch (err) {
      this.opts.logger.warn({ command: request.command, err: describeError(err) }, 'control command failed');
      return errorResponse(err);
    }
  }
}

function errorResponse(err: unknown): ControlResponse {
  if (err instanceof ControlError) return { ok: false, error: { code: err.code, message: err.message } };
  return { ok: false, error: { code: 'CONTROL_ERR_FAILED', message: describeError(err) } };
}
