// sd_notify through systemd-notify: nothing outside systemd, the fields passed as arguments, the
// watchdog interval at half of WATCHDOG_USEC and only for our PID. A stand-in `systemd-notify` script
// records its arguments; the interval is driven by hand (no sleeping on timers).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sdNotify, startWatchdog } from '../../src/control/sd-notify.js';
import { createSilentLogger } from '../../src/util/logger.js';

const s = suite('control/sd-notify');
const logger = createSilentLogger();
let dir = '';
let fake = '';
let record = '';

s.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'mxsentry-notify-'));
  record = join(dir, 'calls');
  fake = join(dir, 'systemd-notify');
  writeFileSync(fake, `#!/bin/sh\necho "$NOTIFY_SOCKET $*" >> ${JSON.stringify(record)}\n`);
  chmodSync(fake, 0o755);
});
s.after.each(() => rmSync(dir, { recursive: true, force: true }));

s('sends fields through systemd-notify when NOTIFY_SOCKET is set', async () => {
  const ok = await sdNotify(['READY=1', 'STATUS=up'], { env: { NOTIFY_SOCKET: '/run/x' }, command: fake, logger });
  assert.ok(ok);
  assert.is(readFileSync(record, 'utf8'), '/run/x READY=1 STATUS=up\n');
});

s('does nothing outside systemd, and reports a failing helper as false', async () => {
  assert.not.ok(await sdNotify(['READY=1'], { env: {}, command: fake, logger }));
  assert.not.ok(existsSync(record));
  assert.not.ok(await sdNotify(['READY=1'], { env: { NOTIFY_SOCKET: '/run/x' }, command: join(dir, 'missing'), logger }));
});

s('watchdog pings at half the interval, only for our PID', async () => {
  let tick: (() => void) | null = null;
  let everyMs = 0;
  let stopped = false;
  const every = (fn: () => void, ms: number): (() => void) => {
    tick = fn;
    everyMs = ms;
    return () => {
      stopped = true;
    };
  };
  const env = { NOTIFY_SOCKET: '/run/x', WATCHDOG_USEC: '30000000', WATCHDOG_PID: '4242' };
  assert.is(startWatchdog({ env, command: fake, logger, pid: 1, every }), null, 'another PID');
  assert.is(startWatchdog({ env: { NOTIFY_SOCKET: '/run/x' }, command: fake, logger, every }), null, 'no WATCHDOG_USEC');
  const w = startWatchdog({ env, command: fake, logger, pid: 4242, every });
  assert.ok(w);
  assert.is(w.intervalMs, 15000);
  assert.is(everyMs, 15000);
  (tick as unknown as () => void)();
  // The ping runs a child process: wait (bounded) for its line.
  for (let i = 0; i < 100 && !existsSync(record); i++) await new Promise((r) => setTimeout(r, 20));
  assert.is(readFileSync(record, 'utf8'), '/run/x WATCHDOG=1\n');
  w.stop();
  assert.ok(stopped);
});

s.run();
