// `serve --config FILE` with a FILE relative to the folder it was started in: `reload --config`
// run from another folder compares its FILE with the daemon's file as an absolute path, so it says
// when it named another file (the daemon never reads that one) and stays quiet when it named the
// daemon's own. Real daemon and CLI processes on loopback; bounded waits; every process stopped.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DAEMON_ADDRESS, MXSENTRY_BIN, freeLoopbackPort } from '../helpers/daemon.js';

const s = suite('e2e/reload-relative-config');
let child: ChildProcess | undefined;
let dir = '';
s.after(() => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function cli(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, [MXSENTRY_BIN, ...args], { timeout: 15_000, cwd }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      done({ code, stdout, stderr });
    });
  });
}

s('reload --config from another folder: the note when FILE is another file, none when it is the daemon\'s', async () => {
  dir = mkdtempSync(join(tmpdir(), 'mxsentry-e2e-'));
  const started = join(dir, 'started');
  const other = join(dir, 'other');
  mkdirSync(started);
  mkdirSync(other);
  const data = join(dir, 'data');
  const body = `dns-listen: ${DAEMON_ADDRESS}:${await freeLoopbackPort()}\npolicy-listen: ${DAEMON_ADDRESS}:${await freeLoopbackPort()}\ndata-dir: ${data}\n`;
  writeFileSync(join(started, 'mx.conf'), body);
  writeFileSync(join(other, 'mx.conf'), `${body}greylist-delay: 9\n`);
  child = spawn(process.execPath, [MXSENTRY_BIN, 'serve', '--config', 'mx.conf'], { cwd: started, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  for (let i = 0; i < 150 && !out.includes('"mxsentry started"'); i++) await new Promise((r) => setTimeout(r, 100));
  assert.ok(out.includes('"mxsentry started"'), `the daemon did not start: ${out.slice(-2000)}`);
  const socket = ['--control-socket', join(data, 'control.sock')];

  // The daemon's own file, named from another folder by its absolute path: no note.
  const same = await cli(['reload', '--config', join(started, 'mx.conf'), ...socket], other);
  assert.is(same.code, 0, same.stderr);
  assert.match(same.stdout, new RegExp(`reloaded ${join(started, 'mx.conf').replace(/[.]/g, '\\.')}; changed: nothing`));
  assert.not.match(same.stderr, /note:/);

  // Another file with the same name, relative to the CLI's own folder: the note says so.
  const elsewhere = await cli(['reload', '--config', 'mx.conf', ...socket], other);
  assert.is(elsewhere.code, 0, elsewhere.stderr);
  assert.match(elsewhere.stderr, /note: the daemon re-read .*started\/mx\.conf, not mx\.conf; mx\.conf was used only to find its control socket/);

  child.kill('SIGTERM');
  const code = await new Promise<number | null>((r) => child!.once('exit', (c) => r(c)));
  assert.is(code, 0);
});

s.run();
