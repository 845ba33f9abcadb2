// Structured logging: one pino root logger writing JSON to stdout (journald), one child per module.
// Modules receive a Logger and never create their own root. Tests use createSilentLogger().
// Lines to stdout are coalesced: a line is written at once when the logger has been quiet for
// LOG_FLUSH_MS, otherwise with the others of that window in one write, so a busy policy service does
// not pay a write per decision. Warnings and worse, a full buffer and process exit write at once.
import { pino, type Logger as PinoLogger, type Level } from 'pino';
import { formatWithOptions } from 'node:util';

export type Logger = PinoLogger;
export type LogLevel = Level | 'silent';

export const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Longest time a line waits in the buffer; also the quiet time after which a line is written at once. */
export const LOG_FLUSH_MS = 20;
/** Buffered characters that trigger a write at once. */
export const LOG_BUFFER_CHARS = 16 * 1024;
/** pino's numeric level of 'warn': lines at this level or above are written at once. */
const WARN_LEVEL = 40;

/** Creates the process root logger; without a destination, coalesced JSON lines to fd 1. */
export function createRootLogger(level: LogLevel = 'info', destination?: NodeJS.WritableStream): Logger {
  const opts = {
    level,
    base: { name: 'mxsentry' },
    timestamp: isoTimeField,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  if (destination) return pino(opts, destination);
  return pino(opts, coalescingStdout());
}

/**
 * pino's `timestamp` function: the `,"time":"<ISO 8601>"` field, the same text as
 * pino.stdTimeFunctions.isoTime. Date#toISOString costs about 1.7 us, a sixth of a busy policy
 * service's logging per decision; the text up to the seconds is kept per second and only the
 * milliseconds are appended.
 */
export function isoTimeField(): string {
  return `,"time":"${isoTimeAt(Date.now())}"`;
}

let cachedSecond = Number.NaN;
let cachedPrefix = '';

/** new Date(ms).toISOString() for a time in ms since the epoch, from the cache of the current second. */
export function isoTimeAt(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second !== cachedSecond) {
    const iso = new Date(second * 1000).toISOString();
    // Outside years 0-9999 toISOString has a signed 6-digit year: not cached, written as is.
    if (iso.length !== 24) return new Date(ms).toISOString();
    cachedSecond = second;
    cachedPrefix = iso.slice(0, 20);
  }
  const millis = ms - second * 1000;
  return `${cachedPrefix}${millis < 10 ? '00' : millis < 100 ? '0' : ''}${millis}Z`;
}

/**
 * A pino destination that coalesces lines (see the file header) in front of sonic-boom, which writes
 * asynchronously (never blocks on a slow journald) and appends to its own queue while a write is
 * in flight. Process exit writes whatever is left synchronously.
 */
function coalescingStdout(): pino.DestinationStream {
  const dest = pino.destination({ fd: 1, sync: false });
  let pending = '';
  let lastWriteMs = 0;
  let timer: NodeJS.Timeout | undefined;
  const writeOut = (): void => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    lastWriteMs = Date.now();
    if (pending === '') return;
    const out = pending;
    pending = '';
    dest.write(out);
  };
  process.once('exit', () => {
    try {
      writeOut();
      dest.flushSync();
    } catch {
      // stdout is gone (closed pipe): nothing left to write to.
    }
  });
  const sink = {
    [pino.symbols.needsMetadataGsym]: true,
    lastLevel: 0,
    write(line: string): void {
      pending += line;
      if (sink.lastLevel >= WARN_LEVEL || pending.length >= LOG_BUFFER_CHARS) return writeOut();
      if (timer) return;
      const waitMs = lastWriteMs + LOG_FLUSH_MS - Date.now();
      if (waitMs <= 0) return writeOut();
      timer = setTimeout(writeOut, waitMs);
      timer.unref();
    },
    flush(cb?: (err?: Error) => void): void {
      writeOut();
      dest.flush(cb);
    },
  };
  return sink;
}

/** A logger that drops everything; for tests and library use. */
export function createSilentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** Child logger for one module, e.g. moduleLogger(root, 'dns.iterator'). */
export function moduleLogger(parent: Logger, module: string): Logger {
  return parent.child({ module });
}

/**
 * Sends what libraries write with console.* into the JSON log, one line each: lmdb-js prints its
 * write errors (a full disk) with console.error, several lines with a stack, which would break the
 * one-JSON-object-per-line journal that `journalctl -o cat | jq` reads. For the daemon only.
 */
export function routeConsoleToLogger(logger: Logger): void {
  const log = moduleLogger(logger, 'console');
  const emit =
    (level: 'error' | 'warn' | 'info') =>
    (...args: unknown[]): void =>
      log[level]({ text: formatWithOptions({ breakLength: Infinity, colors: false }, ...args) }, 'a library wrote to the console');
  console.error = emit('error');
  console.warn = emit('warn');
  console.info = emit('info');
  console.log = emit('info');
}
