// Structured logging: one pino root logger writing JSON to stdout (journald), one child per module.
// Modules receive a Logger and never create their own root. Tests use createSilentLogger().
import { pino, type Logger as PinoLogger, type Level } from 'pino';

export type Logger = PinoLogger;
export type LogLevel = Level | 'silent';

export const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Creates the process root logger; output goes to fd 1 synchronously-safe via pino's destination. */
export function createRootLogger(level: LogLevel = 'info', destination?: NodeJS.WritableStream): Logger {
  const opts = {
    level,
    base: { name: 'mxsentry' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  if (destination) return pino(opts, destination);
  return pino(opts, pino.destination({ fd: 1, sync: false }));
}

/** A logger that drops everything; for tests and library use. */
export function createSilentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** Child logger for one module, e.g. moduleLogger(root, 'dns.iterator'). */
export function moduleLogger(parent: Logger, module: string): Logger {
  return parent.child({ module });
}
