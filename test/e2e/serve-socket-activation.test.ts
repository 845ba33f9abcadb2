// The whole daemon under socket activation: the policy socket (mxsentry-policy.socket): `serve` gets a listening
// TCP socket as fd 3 with LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES=policy set as systemd sets them,
// answers Postfix on it instead of policy-listen, and its start-up log names that address. Also DNS
// activation with the UDP socket alone, which must warn that DNS over TCP is not served.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DAEMON_ADDRESS, MXSENTRY_BIN, freeLoopbackPort, type DaemonLogLine } from '../helpers/daemon.js';

const s = suite('e2e/serve-socket-activation');

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

interface Activated {
  child: ChildProcess;
  lines: DaemonLogLine[];
  started: DaemonLogLine;
}

/** Starts `serve` with `fds` as fds 3.. named `names` (LISTEN_FDNAMES), as systemd passes them; resolves once started. */
async function startActivated(dir: string, fds: number[], names: string[], args: string[]): Promise<Activated> {
  const argv = [MXSENTRY_BIN, 'serve', '--data-dir', join(dir, 'data'), '--log-level', 'info', ...args];
  const env = `LISTEN_PID=$$ LISTEN_FDS=${fds.length} LISTEN_FDNAMES=${names.join(':')}`;
  const child = spawn('sh', ['-c', `${env} exec "$0" "$@"`, process.execPath, ...argv], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe', ...fds] });
  const lines: DaemonLogLine[] = [];
  const started = await new Promise<DaemonLogLine>((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`no start in time:\n${out}\n${err}`)), 15_000);
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const complete = out.split('\n');
      out = complete.pop() ?? '';
      for (const l of complete) if (l.startsWith('{')) lines.push(JSON.parse(l) as DaemonLogLine);
      const line = lines.find((l) => l.msg === 'mxsentry started');
      if (line) {
        clearTimeout(timer);
        resolve(line);
      }
    });
    child.once('exit', (code) => reject(new Error(`daemon exited with ${code}:\n${out}\n${err}`)));
  });
  return { child, lines, started };
}

async function stopClean(child: ChildProcess): Promise<void> {
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  child.kill('SIGTERM');
  assert.is(await exited, 0, 'clean exit on SIGTERM');
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
    const run = await startActivated(dir, [fdOf(listener)], ['policy'], ['--dns-listen', `${DAEMON_ADDRESS}:${await freeLoopbackPort()}`]);
    child = run.child;
    // The child holds a duplicate now; closing ours leaves its copy listening.
    await new Promise<void>((r) => listener.close(() => r()));
    assert.equal(run.started.policy, [`${DAEMON_ADDRESS}:${port} (fd:3)`]);

    const answer = await ask(port, 'request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=192.0.2.1\nhelo_name=mx.example.org\nsender=a@example.org\nrecipient=b@example.com\n\n');
    assert.match(answer, /^action=DEFER_IF_PERMIT /);
    await stopClean(run.child);
    child = null;
  } finally {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    if (listener.listening) listener.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

s('DNS socket activation with the UDP socket alone: a warning says DNS over TCP is not served', async () => {
  const udp = dgram.createSocket('udp4');
  await new Promise<void>((r) => udp.bind(0, DAEMON_ADDRESS, () => r()));
  const fd = (udp as unknown as { _handle?: { fd?: number } })._handle?.fd;
  assert.type(fd, 'number');
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-e2e-'));
  let child: ChildProcess | null = null;
  try {
    const run = await startActivated(dir, [fd as number], ['dns-udp'], ['--policy-listen', `${DAEMON_ADDRESS}:${await freeLoopbackPort()}`]);
    child = run.child;
    udp.close();
    const warning = run.lines.find((l) => l.level === 'warn' && l.missing === 'dns-tcp');
    assert.ok(warning, JSON.stringify(run.lines));
    assert.match(String(warning.msg), 'DNS over TCP is not served (enable mxsentry-dns-tcp.socket too)');
    assert.not.ok(run.lines.some((l) => l.missing === 'dns-udp'));
    await stopClean(run.child);
    child = null;
  } finally {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

s.run();
