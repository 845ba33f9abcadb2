// Signals that reach `serve` while it is still starting (reading its files, opening a big store):
// a SIGHUP must not end the process (Node's default: status 129, which systemd's Restart=on-failure
// counts as clean) but reload once the daemon runs; a SIGTERM stops it cleanly, exit 0. The start
// is held at a known point by a whitelist-clients FIFO that this test feeds when it chooses.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { constants as osConstants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DAEMON_ADDRESS, MXSENTRY_BIN, freeLoopbackPort, type DaemonLogLine } from '../helpers/daemon.js';

const s = suite('e2e/serve-start-signals');

interface Started {
  child: ChildProcess;
  dir: string;
  fifo: string;
  lines(): DaemonLogLine[];
  /** What the process wrote to stderr so far. */
  stderr(): string;
  /** Resolves once the process ended and its output was read to the end. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `serve` with a FIFO as whitelist-clients file: the start blocks on it until fed. */
async function startBlocked(): Promise<Started> {
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-e2e-'));
  const fifo = join(dir, 'whitelist_clients');
  execFileSync('mkfifo', [fifo]);
  const args = [
    MXSENTRY_BIN, 'serve', '--dns-listen', `${DAEMON_ADDRESS}:${await freeLoopbackPort()}`,
    '--policy-listen', `${DAEMON_ADDRESS}:${await freeLoopbackPort()}`,
    '--data-dir', join(dir, 'data'), '--whitelist-clients', fifo, '--log-level', 'info',
  ];
  const child = spawn(process.execPath, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('close', (code, signal) => r({ code, signal })));
  const lines = (): DaemonLogLine[] => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as DaemonLogLine);
  return { child, dir, fifo, lines, stderr: () => err, exited };
}

/** Waits until the daemon opens the FIFO for reading (it is then inside its start), writes one file. */
async function feed(fifo: string): Promise<void> {
  const h = await open(fifo, 'w');
  try {
    await h.writeFile('mail.example.com\n');
  } finally {
    // A reader gone mid-write (EPIPE) must not leave the handle to the garbage collector.
    await h.close();
  }
}

async function until(what: string, ok: () => boolean, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** True when /proc says the process catches every one of `signals` (its SigCgt mask). */
function catches(pid: number, signals: NodeJS.Signals[]): boolean {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return false;
  }
  const mask = /^SigCgt:\s*([0-9a-f]+)$/m.exec(status);
  if (!mask) return false;
  const caught = BigInt(`0x${mask[1]}`);
  return signals.every((sig) => ((caught >> BigInt(osConstants.signals[sig] - 1)) & 1n) === 1n);
}

/**
 * Starts a blocked daemon, lets `signalIt` signal it during the start (it may feed the FIFO's first
 * read itself), then feeds every later read and checks: not ended by the signal, the pending reload
 * done once started, a clean SIGTERM stop.
 */
async function reloadsOnceStarted(signalIt: (d: Started) => Promise<void>, signals: string): Promise<void> {
  const d = await startBlocked();
  let feeding = true;
  try {
    await signalIt(d);
    // Every later read (the policy service, the reload) gets the same file.
    void (async () => {
      while (feeding) await feed(d.fifo).catch(() => undefined);
    })();
    await until('mxsentry started', () => d.lines().some((l) => l.msg === 'mxsentry started') || d.child.exitCode !== null || d.child.signalCode !== null);
    assert.is(d.child.signalCode, null, `not ended by ${signals}`);
    await until('the pending reload', () => d.lines().some((l) => l.msg === 'configuration reloaded'));
    d.child.kill('SIGTERM');
    assert.equal(await d.exited, { code: 0, signal: null });
  } finally {
    feeding = false;
    if (d.child.exitCode === null && d.child.signalCode === null) d.child.kill('SIGKILL');
    // Unblock a feeder waiting for a reader that will not come.
    await open(d.fifo, 'r+').then((h) => h.close()).catch(() => undefined);
    rmSync(d.dir, { recursive: true, force: true });
  }
}

s('a SIGHUP during the start does not end the daemon; it reloads once started', async () => {
  await reloadsOnceStarted(async (d) => {
    // The first open is the start's check of the named files: the daemon is starting now.
    const h = await open(d.fifo, 'w');
    d.child.kill('SIGHUP');
    await new Promise((r) => setTimeout(r, 200));
    await h.writeFile('mail.example.com\n').finally(() => h.close());
  }, 'the SIGHUP');
});

s('a SIGHUP while Node is still loading the CLI (before serve runs) does not end it; it reloads once started', async () => {
  await reloadsOnceStarted(async (d) => {
    // As soon as the shim's early handlers catch both signals, well before the CLI is loaded (most of
    // a second). A fixed wait was too short on a loaded machine: Node had not run the shim yet, and
    // the default SIGHUP action ended it (nothing can catch a signal before Node runs any code).
    await until('the shim catching SIGHUP and SIGUSR2', () => catches(d.child.pid!, ['SIGHUP', 'SIGUSR2']), 10_000);
    const held = Date.now();
    d.child.kill('SIGHUP');
    d.child.kill('SIGUSR2');
    // Still the shim's handlers: serve has not started (it logs its start only after taking over).
    assert.not.ok(d.lines().some((l) => l.msg === 'mxsentry started'), `signalled ${Date.now() - held} ms after the handlers were seen, before serve started`);
  }, 'the early SIGHUP or SIGUSR2');
});

s('SIGUSR1 and SIGUSR2 are logged and ignored: no inspector, no exit', async () => {
  const d = await startBlocked();
  let feeding = true;
  try {
    void (async () => {
      while (feeding) await feed(d.fifo).catch(() => undefined);
    })();
    await until('mxsentry started', () => d.lines().some((l) => l.msg === 'mxsentry started') || d.child.exitCode !== null);
    d.child.kill('SIGUSR1');
    d.child.kill('SIGUSR2');
    await until('both signals logged', () => d.lines().filter((l) => l.msg === 'signal ignored (SIGHUP reloads, SIGTERM stops)').length === 2);
    assert.is(d.child.exitCode, null, 'still running');
    assert.is(d.child.signalCode, null, 'not ended by SIGUSR2');
    d.child.kill('SIGTERM');
    assert.equal(await d.exited, { code: 0, signal: null });
    assert.not.match(d.stderr(), /Debugger listening/);
  } finally {
    feeding = false;
    if (d.child.exitCode === null && d.child.signalCode === null) d.child.kill('SIGKILL');
    await open(d.fifo, 'r+').then((h) => h.close()).catch(() => undefined);
    rmSync(d.dir, { recursive: true, force: true });
  }
});

s('a SIGTERM during the start stops the daemon cleanly: exit 0, store closed', async () => {
  const d = await startBlocked();
  let feeding = true;
  try {
    await feed(d.fifo);
    // The store is open, and the policy service's read of the FIFO waits for the feeder below:
    // the daemon is inside startDaemon. (A writer's open is not used to tell: it also succeeds
    // while the first reader still holds the FIFO.)
    await until('greylist store opened', () => d.lines().some((l) => l.msg === 'greylist store opened'));
    d.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 200));
    void (async () => {
      while (feeding) await feed(d.fifo).catch(() => undefined);
    })();
    assert.equal(await d.exited, { code: 0, signal: null });
    const msgs = d.lines().map((l) => l.msg);
    assert.ok(msgs.includes('greylist store closed'), JSON.stringify(msgs));
    assert.ok(msgs.includes('stopped'), JSON.stringify(msgs));
  } finally {
    feeding = false;
    if (d.child.exitCode === null && d.child.signalCode === null) d.child.kill('SIGKILL');
    await open(d.fifo, 'r+').then((h) => h.close()).catch(() => undefined);
    rmSync(d.dir, { recursive: true, force: true });
  }
});

s.run();
