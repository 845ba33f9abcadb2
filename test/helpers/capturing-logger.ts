// A real pino root logger (debug level) that writes into memory, so tests can assert on the JSON
// lines a module logged (what it said, how often, which fields).
import { Writable } from 'node:stream';
import { createRootLogger, type Logger } from '../../src/util/logger.js';

/** The logger and a function returning every line written so far, parsed. */
export function capturingLogger(): { logger: Logger; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'));
      cb();
    },
  });
  return {
    logger: createRootLogger('debug', sink),
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}
