// The whole daemon under policy socket activation (mxsentry-policy.socket): `serve` gets a listening
// TCP socket as fd 3 with LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES=policy set as systemd sets them,
// answers Postfix on it instead of policy-listen, and its start-up log names that address.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DAEMON_ADDRESS, MXSENTRY_BIN, freeLoopbackPort, type DaemonLogLine } from '../helpers/daemon.js';

const s = suite('e2e/policy-socket-activation');

/** The OS fd behind a listening net.Server (Node has no public accessor; tests only). */
function fdOf(server: net.Server): number {
  const fd = (server as unknown as { _handle?: { fd?: number } })._handle?.fd;
  assert.type(fd, 'number');
  return fd as number;
}

function ask(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect(port, DAEMON_ADDRESS);
    let out = '';
    c.on('data', (d) => {
      out += d.toString();
      if (out.endsWith('\n\n')) {
        c.end();
        resolve(out);
      }
    });
    c.on('error', reject);
    c.write(text);
  });
}

s('an inherited policy socket is served, and "mxsentry started" names its address, not policy-listen', async () => {
  const listener = net.createServer();
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen({ port: 0, host: DAEMON_ADDRESS }, () => resolve());
  });
  const port = (listener.address() as net.AddressInfo).port;
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-e2e-'));
  let child: ChildProcess | null = null;
  try {
    const args = [
      MXSENTRY_BIN, 'serve', '--dns-listen', `${DAEMON_ADDRESS}:${await freeLoopbackPort()}`,
      '--data-dir', join(dir, 'data'), '--log-level', 'info',
    ];
    child = spawn('sh', ['-c', 'LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=policy exec "$0" "$@"', process.execPath, ...args], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe', fdOf(listener)],
    });
    // The child holds a duplicate now; closing ours leaves its copy listening.
    await new Promise<void>((r) => listener.close(() => r()));
    const started = await new Promise<DaemonLogLine>((resolve, reject) => {
      let out = '';
      let err = '';
      const timer = setTimeout(() => reject(new Error(`no start in time:\n${out}\n${err}`)), 15_000);
      child?.stderr?.on('data', (d: Buffer) => (err += d.toString()));
      child?.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        const line = out.split('\n').map((l) => (l.startsWith('{') ? (JSON.parse(l) as DaemonLogLine) : null)).find((l) => l?.msg === 'mxsentry started');
        if (line) {
          clearTimeout(timer);
          resolve(line);
        }
      });
      child?.once('exit', (code) => reject(new Error(`daemon exited with ${code}:\n${out}\n${err}`)));
    });
    assert.equal(started.policy, [`${DAEMON_ADDRESS}:${port} (fd:3)`]);

    const answer = await ask(port, 'request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=192.0.2.1\nhelo_name=mx.example.org\nsender=a@example.org\nrecipient=b@example.com\n\n');
    assert.match(answer, /^action=DEFER_IF_PERMIT /);

    const exited = new Promise<number | null>((r) => child?.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    assert.is(await exited, 0, 'clean exit on SIGTERM');
    child = null;
  } finally {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    if (listener.listening) listener.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

s.run();
