// systemd socket activation end to end: this process binds a UDP socket and a TCP listener on
// 127.0.0.1, hands their fds to a child as fds 3 and 4 with LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES
// set the way systemd sets them, closes its own copies, and queries the child's DnsServer.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeMessage } from '../../../src/dns/wire/message.js';
import { rdataToData } from '../../../src/dns/wire/rdata.js';
import { RRType } from '../../../src/dns/wire/types.js';
import { LOOPBACK, buildQuery, tcpQuery, udpQuery } from './dns-test-client.js';

const childPath = join(dirname(fileURLToPath(import.meta.url)), 'socket-activation-child.js');

/** The OS fd behind a Node socket (Node has no public accessor; tests only). */
function fdOf(handleOwner: object): number {
  const quiet = process.noDeprecation;
  process.noDeprecation = true; // dgram's _handle getter is deprecated (DEP0112); reading it is harmless here
  try {
    const fd = (handleOwner as { _handle?: { fd?: number } })._handle?.fd;
    assert.type(fd, 'number');
    return fd as number;
  } finally {
    process.noDeprecation = quiet;
  }
}

/**
 * A UDP socket and a TCP listener on one port number, as a systemd socket unit makes them. The
 * port the kernel picked for UDP may be taken for TCP by another process: then another try.
 */
async function udpTcpPair(): Promise<{ udp: dgram.Socket; tcp: net.Server; port: number }> {
  for (let attempt = 1; ; attempt++) {
    const udp = dgram.createSocket('udp4');
    await new Promise<void>((r) => udp.bind(0, LOOPBACK, () => r()));
    const port = udp.address().port;
    const tcp = net.createServer();
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen({ port, host: LOOPBACK }, () => resolve());
      });
      return { udp, tcp, port };
    } catch (err) {
      udp.close();
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 10) throw err;
    }
  }
}

const s = suite('dns/server/socket-activation');

s('adopts inherited UDP and TCP sockets named by LISTEN_FDNAMES', async () => {
  const { udp, tcp, port } = await udpTcpPair();
  let child: ChildProcess | null = null;
  try {
    child = spawn(
      'sh',
      ['-c', 'LISTEN_PID=$$ LISTEN_FDS=2 LISTEN_FDNAMES=dns-udp:dns-tcp exec "$0" "$1"', process.execPath, childPath],
      { stdio: ['ignore', 'pipe', 'inherit', fdOf(udp), fdOf(tcp)] },
    );
    // The child holds duplicates now; closing ours leaves its copies listening.
    udp.close();
    await new Promise<void>((r) => tcp.close(() => r()));
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`child did not report in time: ${out}`)), 10_000);
      child?.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) {
          clearTimeout(timer);
          resolve(out.slice(0, out.indexOf('\n')));
        }
      });
      child?.once('exit', (code) => reject(new Error(`child exited early with ${code}: ${out}`)));
    });
    const report = JSON.parse(line) as { fds: Array<{ fd: number; name: string }>; envLeft: string[]; addresses: Array<{ transport: string; port: number; address: string }> };
    assert.equal(report.fds, [{ fd: 3, name: 'dns-udp' }, { fd: 4, name: 'dns-tcp' }]);
    assert.equal(report.envLeft, [], 'LISTEN_* removed from the environment');
    assert.equal(report.addresses.map((a) => `${a.transport} ${a.address}:${a.port}`), [`udp ${LOOPBACK}:${port}`, `tcp ${LOOPBACK}:${port}`]);

    const u = decodeMessage((await udpQuery(port, buildQuery('activated.example'))) as Buffer);
    assert.is(rdataToData(RRType.A, u.answers[0]?.rdata as Buffer), '192.0.2.99');
    const t = decodeMessage(await tcpQuery(port, buildQuery('activated.example')));
    assert.is(rdataToData(RRType.A, t.answers[0]?.rdata as Buffer), '192.0.2.99');

    const exited = new Promise<number | null>((r) => child?.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    assert.is(await exited, 0, 'clean exit after close()');
    child = null;
  } finally {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    try {
      udp.close();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ERR_SOCKET_DGRAM_NOT_RUNNING') throw err;
    }
    if (tcp.listening) tcp.close();
  }
});

s.run();
