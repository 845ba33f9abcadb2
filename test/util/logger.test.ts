// Tests for src/util/logger.ts: the cached ISO 8601 timestamp and the root logger's line format.
import { Writable } from 'node:stream';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createRootLogger, isoTimeAt, isoTimeField, routeConsoleToLogger } from '../../src/util/logger.js';

const test = suite('util/logger');

/** A stream that keeps what the logger writes, one string per write. */
function captureSink(): { lines: string[]; sink: Writable } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString('utf8'));
      cb();
    },
  });
  return { lines, sink };
}

test('isoTimeAt gives what Date#toISOString gives, across seconds, days and years', () => {
  const times = [0, 1, 9, 10, 99, 100, 999, 1000, 1001, -1, -999, -1000, -1001, 951_782_399_999, 951_782_400_000, Date.UTC(2026, 11, 5, 23, 59, 59, 999), Date.UTC(2027, 0, 1)];
  // A walk through consecutive and scattered milliseconds, so the per-second cache is both hit and replaced.
  let t = Date.UTC(2026, 11, 5, 8, 0, 0, 0) - 5;
  for (let i = 0; i < 3000; i++) times.push(t++);
  let x = 12345;
  for (let i = 0; i < 3000; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    times.push(x * 1000 + (x % 1000));
  }
  for (const ms of times) assert.is(isoTimeAt(ms), new Date(ms).toISOString(), `at ${ms}`);
});

test('isoTimeAt handles years outside 0-9999 (six-digit signed years)', () => {
  for (const ms of [Date.UTC(10000, 0, 1, 0, 0, 0, 5), Date.UTC(-1, 5, 1, 12, 0, 0, 42), Date.UTC(9999, 11, 31, 23, 59, 59, 999)]) {
    assert.is(isoTimeAt(ms), new Date(ms).toISOString());
  }
});

test('isoTimeField is the pino time field of now', () => {
  const before = Date.now();
  const field = isoTimeField();
  const after = Date.now();
  const m = /^,"time":"(.+)"$/.exec(field);
  assert.ok(m, field);
  const at = Date.parse(m![1]!);
  assert.ok(at >= before && at <= after, `${m![1]} not within [${before}, ${after}]`);
});

test('root logger lines carry the ISO time, the level label and the name', () => {
  const { lines, sink } = captureSink();
  const logger = createRootLogger('info', sink);
  const before = Date.now();
  logger.info({ client: '192.0.2.1' }, 'policy decision');
  logger.debug('not written');
  assert.is(lines.length, 1);
  const line = JSON.parse(lines[0]!) as Record<string, unknown>;
  assert.is(line.level, 'info');
  assert.is(line.name, 'mxsentry');
  assert.is(line.msg, 'policy decision');
  assert.is(line.client, '192.0.2.1');
  assert.match(String(line.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.ok(Math.abs(Date.parse(String(line.time)) - before) < 5000);
});

test('routeConsoleToLogger: a library\'s multi-line console.error becomes one JSON line', () => {
  const { lines, sink } = captureSink();
  const saved = { error: console.error, warn: console.warn, info: console.info, log: console.log };
  try {
    routeConsoleToLogger(createRootLogger('info', sink));
    console.error(Object.assign(new Error('Write error: No space left on device'), { code: 28 }));
    console.warn('syncBatchThreshold is no longer supported');
  } finally {
    Object.assign(console, saved);
  }
  assert.is(lines.length, 2);
  const [error, warn] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.is(error?.level, 'error');
  assert.is(error?.module, 'console');
  assert.match(String(error?.text), /Error: Write error: No space left on device\n\s+at .*code: 28/s);
  assert.ok(lines[0]!.trimEnd().split('\n').length === 1, 'one line');
  assert.is(warn?.level, 'warn');
  assert.is(warn?.text, 'syncBatchThreshold is no longer supported');
});

test.run();
