// The control socket server and client: line-delimited JSON, mode 0660, refusal of unsafe paths,
// stale-socket clean-up, a live daemon's socket never taken over, and the client's error codes for
// "not running" and "permission denied" (checked as a real unprivileged user when run as root).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sendControlRequest } from '../../src/control/control-client.js';
import { ControlError } from '../../src/control/control-error.js';
import { CONTROL_SOCKET_MODE, ControlServer, prepareControlSocketPath } from '../../src/control/control-server.js';
import { createSilentLogger } from '../../src/util/logger.js';

const s = suite('control/control-server');
const logger = createSilentLogger();
let dir = '';

s.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'mxsentry-ctl-'));
});
s.after.each(() => {
  rmSync(dir, { recursive: true, force: true });
});

function server(path: string): ControlServer {
  return new ControlServer({
    path,
    logger,
    handlers: {
      echo: (req) => ({ got: req.arg ?? null }),
      fail: () => {
        throw new ControlError('CONTROL_ERR_FAILED', 'it broke');
      },
      crash: () => {
        throw new Error('plain error');
      },
    },
  });
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return err instanceof ControlError ? err.code : `other: ${String(err)}`;
  }
  return 'no error';
}

/** Sends raw text, returns everything the server wrote until it closes or 1 s passes. */
function raw(path: string, text: string): Promise<string> {
  return new Promise((done) => {
    const c = net.connect({ path });
    let out = '';
    const timer = setTimeout(() => c.destroy(), 1000);
    c.on('data', (d) => (out += d.toString()));
    c.on('close', () => {
      clearTimeout(timer);
      done(out);
    });
    c.on('error', () => undefined);
    c.on('connect', () => c.write(text));
    // Half-close once the answers had time to come: the server then ends the connection.
    setTimeout(() => c.end(), 200);
  });
}

s('answers requests, one JSON line each, with mode 0660 on the socket', async () => {
  const path = join(dir, 'control.sock');
  const srv = server(path);
  await srv.listen();
  try {
    assert.is(statSync(path).mode & 0o777, CONTROL_SOCKET_MODE);
    assert.ok(statSync(path).isSocket());
    assert.equal(await sendControlRequest(path, { command: 'echo', arg: 'x' }), { got: 'x' });
    assert.is(await codeOf(sendControlRequest(path, { command: 'fail' })), 'CONTROL_ERR_FAILED');
    assert.is(await codeOf(sendControlRequest(path, { command: 'crash' })), 'CONTROL_ERR_FAILED');
    assert.is(await codeOf(sendControlRequest(path, { command: 'nope' })), 'CONTROL_ERR_BAD_REQUEST');
    // Two requests on one connection, plus garbage: three answers in order.
    const text = await raw(path, '{"command":"echo","arg":1}\nnot json\n{"command":"echo","arg":2}\n');
    const lines = text.trim().split('\n').map((l) => JSON.parse(l) as { ok: boolean; result?: unknown; error?: { code: string } });
    assert.is(lines.length, 3);
    assert.equal(lines[0], { ok: true, result: { got: 1 } });
    assert.is(lines[1]?.error?.code, 'CONTROL_ERR_BAD_REQUEST');
    assert.equal(lines[2], { ok: true, result: { got: 2 } });
  } finally {
    await srv.close();
  }
  assert.not.ok(existsSync(path), 'socket file removed on close');
});

s('an over-long request line is refused and the connection closed', async () => {
  const path = join(dir, 'c.sock');
  const srv = new ControlServer({ path, logger, handlers: {}, maxLineBytes: 100 });
  await srv.listen();
  try {
    const out = await raw(path, 'x'.repeat(500));
    assert.match(out, /CONTROL_ERR_BAD_REQUEST/);
  } finally {
    await srv.close();
  }
});

s('a connection over the cap that the client resets unread does not take the server down', async () => {
  const path = join(dir, 'c.sock');
  const srv = new ControlServer({ path, logger, handlers: { echo: (req) => ({ got: req.arg ?? null }) }, maxConnections: 1 });
  await srv.listen();
  const holder = net.connect({ path });
  holder.on('error', () => undefined);
  try {
    await new Promise<void>((resolve) => holder.on('connect', () => resolve()));
    await new Promise((r) => setTimeout(r, 50));
    // Over the cap: the server writes its refusal; the client closes without reading it (a reset).
    // Paused before it connects: the refusal stays unread in the kernel's buffer and the close resets.
    const extra = net.connect({ path }).pause();
    extra.on('error', () => undefined);
    await new Promise<void>((resolve) => extra.on('connect', () => resolve()));
    await new Promise((r) => setTimeout(r, 100));
    extra.destroy();
    await new Promise((r) => setTimeout(r, 100));
    holder.destroy();
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(await sendControlRequest(path, { command: 'echo', arg: 'still here' }), { got: 'still here' });
    // A refused client that never reads does not hold up a shutdown for the refusal timeout.
    const holder2 = net.connect({ path });
    holder2.on('error', () => undefined);
    await new Promise((r) => setTimeout(r, 50));
    const stuck = net.connect({ path }).pause();
    stuck.on('error', () => undefined);
    await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    await srv.close();
    assert.ok(Date.now() - t0 < 2000, `closed in ${Date.now() - t0} ms`);
    stuck.destroy();
    holder2.destroy();
  } finally {
    holder.destroy();
    await srv.close();
  }
});

s('a client that pipelines requests and reads nothing is not read further, and its queue dies with it', async () => {
  // Every line was queued as it arrived while the answers waited for the client to read:
  // memory grew by ~100 MB/s and, once the client went away, the server ran every queued command.
  const path = join(dir, 'p.sock');
  let calls = 0;
  const big = 'x'.repeat(64 * 1024);
  const srv = new ControlServer({ path, logger, handlers: { stats: () => { calls++; return big; } } });
  await srv.listen();
  const c = net.connect({ path });
  try {
    c.on('error', () => undefined);
    await new Promise<void>((done) => c.once('connect', () => done()));
    c.pause();
    c.write('{"command":"stats"}\n'.repeat(200_000));
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(c.writableLength > 2_000_000, `the server read all but ${c.writableLength} bytes of 4 MB`);
    const before = calls;
    c.destroy();
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(calls - before <= 1, `${calls - before} commands run after the client left`);
  } finally {
    c.destroy();
    await srv.close();
  }
});

s('client: no socket and a dead socket mean "not running"', async () => {
  assert.is(await codeOf(sendControlRequest(join(dir, 'missing.sock'), { command: 'stats' })), 'CONTROL_ERR_NOT_RUNNING');
  // A socket file nobody listens on (a crashed daemon): connect() gets ECONNREFUSED.
  const stale = await makeStaleSocket(join(dir, 'stale.sock'));
  assert.is(await codeOf(sendControlRequest(stale, { command: 'stats' })), 'CONTROL_ERR_NOT_RUNNING');
});

/** A socket file left without a listener: a child process binds it and is killed with SIGKILL. */
async function makeStaleSocket(path: string): Promise<string> {
  const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((done) => child.stdout.once('data', () => done()));
  child.kill('SIGKILL');
  await new Promise<void>((done) => child.once('exit', () => done()));
  assert.ok(statSync(path).isSocket(), 'stale socket file remains after SIGKILL');
  return path;
}

s('a stale socket is replaced; a live one is refused', async () => {
  const path = await makeStaleSocket(join(dir, 'control.sock'));
  const first = server(path);
  await first.listen();
  try {
    assert.equal(await sendControlRequest(path, { command: 'echo', arg: 'a' }), { got: 'a' });
    const second = server(path);
    assert.is(await codeOf(second.listen()), 'CONTROL_ERR_IN_USE');
    // The first daemon still answers.
    assert.equal(await sendControlRequest(path, { command: 'echo', arg: 'b' }), { got: 'b' });
  } finally {
    await first.close();
  }
});

s('unsafe paths are refused', async () => {
  const file = join(dir, 'plain');
  writeFileSync(file, 'data');
  assert.is(await codeOf(prepareControlSocketPath(file)), 'CONTROL_ERR_UNSAFE_PATH', 'regular file');
  const link = join(dir, 'link.sock');
  symlinkSync(join(dir, 'elsewhere.sock'), link);
  assert.is(await codeOf(prepareControlSocketPath(link)), 'CONTROL_ERR_UNSAFE_PATH', 'symlink');
  const open = join(dir, 'open');
  mkdirSync(open);
  chmodSync(open, 0o777);
  assert.is(await codeOf(prepareControlSocketPath(join(open, 'c.sock'))), 'CONTROL_ERR_UNSAFE_PATH', 'world-writable folder');
  chmodSync(open, 0o1777);
  assert.is(await prepareControlSocketPath(join(open, 'c.sock')), join(open, 'c.sock'), 'sticky folder accepted');
  assert.is(await codeOf(prepareControlSocketPath(join(dir, 'no', 'such', 'c.sock'))), 'CONTROL_ERR_UNSAFE_PATH', 'missing folder');
  assert.is(await codeOf(prepareControlSocketPath(join(dir, 'x'.repeat(120)))), 'CONTROL_ERR_UNSAFE_PATH', 'over-long path');
  // Nothing was deleted on the way.
  assert.ok(existsSync(file));
});

s('a user outside the socket\'s owner and group is refused (permission denied)', async () => {
  if (process.getuid?.() !== 0) {
    console.log('  SKIP permission check: needs root to run a client as user nobody');
    return;
  }
  chmodSync(dir, 0o755); // the folder is searchable: only the socket's own mode stands in the way
  const path = join(dir, 'control.sock');
  const srv = server(path);
  await srv.listen();
  try {
    const clientModule = new URL('../../src/control/control-client.js', import.meta.url).pathname;
    const script = `import(${JSON.stringify(clientModule)}).then((m) => m.sendControlRequest(${JSON.stringify(path)}, { command: 'echo' }))` +
      `.then(() => console.log('CONNECTED'), (e) => console.log(e.code))`;
    const out = await new Promise<string>((done, fail) => {
      const child = spawn(process.execPath, ['-e', script], { uid: 65534, gid: 65534, stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        fail(new Error('client as nobody did not finish in 10 s'));
      }, 10_000);
      child.stdout.on('data', (d) => (text += d.toString()));
      child.stderr.on('data', (d) => (text += d.toString()));
      child.on('exit', () => {
        clearTimeout(timer);
        done(text.trim());
      });
    });
    assert.is(out, 'CONTROL_ERR_PERMISSION', out);
    // Root (the owner) still gets in.
    assert.equal(await sendControlRequest(path, { command: 'echo', arg: 1 }), { got: 1 });
  } finally {
    await srv.close();
  }
});

s.run();
